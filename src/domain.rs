//! Domain types parsed once at the edge: phone numbers, request ids, channels and
//! export time windows. Inner code never handles the raw strings.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A phone number in E.164 form (`+` followed by 8 to 15 digits).
///
/// `Debug` and `Display` mask it (`+47XXXXX678`) so that it cannot reach a log by
/// accident; [`PhoneNumber::as_str`] gives the full number to code that must store it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a phone number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a phone number must be in E.164 form: '+' followed by 8 to 15 digits")]
pub struct InvalidPhoneNumber;

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidPhoneNumber> {
        let digits = raw.strip_prefix('+').ok_or(InvalidPhoneNumber)?;
        let valid = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidPhoneNumber)
        }
    }

    /// The full number. Only for storage and queries, never for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the country code and the last three digits hidden.
    pub fn masked(&self) -> String {
        let keep_head = 3.min(self.0.len());
        let keep_tail = 3.min(self.0.len() - keep_head);
        let hidden = self.0.len() - keep_head - keep_tail;
        format!(
            "{}{}{}",
            &self.0[..keep_head],
            "X".repeat(hidden),
            &self.0[self.0.len() - keep_tail..]
        )
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// The identifier of one export request: a random (v4) UUID, written in its
/// hyphenated lower-case form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Uuid);

impl RequestId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for RequestId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Who ordered an export. A request is only visible through its own channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Helsenorge,
    Fhi,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Helsenorge => "helsenorge",
            Channel::Fhi => "fhi",
        }
    }

    /// The organization written to the access log for orders through this channel.
    pub fn organization(self) -> &'static str {
        match self {
            Channel::Helsenorge => "Norsk Helsenett",
            Channel::Fhi => "Folkehelseinstituttet",
        }
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "helsenorge" => Ok(Channel::Helsenorge),
            "fhi" => Ok(Channel::Fhi),
            other => Err(format!("unknown channel '{other}'")),
        }
    }
}

/// An optional export window. GPS events overlapping it (ends included) and
/// Bluetooth contacts inside it are exported; an open side is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Why a time window was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("time_from must not be after time_to")]
pub struct InvertedWindow;

impl TimeWindow {
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, InvertedWindow> {
        match (from, to) {
            (Some(f), Some(t)) if f > t => Err(InvertedWindow),
            _ => Ok(Self { from, to }),
        }
    }

    pub fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneNumber::parse("+4791234567").is_ok());
        assert!(PhoneNumber::parse("4791234567").is_err());
        assert!(PhoneNumber::parse("+47 9123 4567").is_err());
        assert!(PhoneNumber::parse("+4712").is_err());
        assert!(PhoneNumber::parse("+").is_err());
    }

    #[test]
    fn phone_numbers_are_masked_in_logs() {
        let phone = PhoneNumber::parse("+4791234678").unwrap();
        assert_eq!(phone.masked(), "+47XXXXX678");
        assert_eq!(format!("{phone}"), "+47XXXXX678");
        assert_eq!(format!("{phone:?}"), "+47XXXXX678");
    }

    #[test]
    fn request_ids_round_trip_and_reject_garbage() {
        let id = RequestId::new();
        assert_eq!(id.to_string().parse::<RequestId>().unwrap(), id);
        assert!("not-a-uuid".parse::<RequestId>().is_err());
    }

    #[test]
    fn inverted_windows_are_refused() {
        let early = "2020-04-01T00:00:00Z".parse().ok();
        let late = "2020-05-01T00:00:00Z".parse().ok();
        assert!(TimeWindow::new(early, late).is_ok());
        assert_eq!(TimeWindow::new(late, early), Err(InvertedWindow));
    }
}
