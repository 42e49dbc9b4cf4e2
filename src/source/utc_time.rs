//! RFC 3339 UTC timestamps for exported rows, written byte by byte. The result is
//! exactly chrono's own (`Z`, and milli-, micro- or nanoseconds only when
//! present), several times faster: an export writes two per GPS row.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// Serializes an optional timestamp; `None` stays `null`.
pub fn serialize<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        None => serializer.serialize_none(),
        Some(time) => {
            let mut buf = [0u8; 32];
            match format(time, &mut buf) {
                Some(text) => serializer.serialize_str(text),
                None => {
                    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                }
            }
        }
    }
}

/// Writes `time` into `buf`; `None` for what the fast path does not cover (years
/// outside 0–9999 and leap seconds), which chrono then formats.
fn format<'b>(time: &DateTime<Utc>, buf: &'b mut [u8; 32]) -> Option<&'b str> {
    let year = u32::try_from(time.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }

    put(&mut buf[0..4], year);
    buf[4] = b'-';
    put(&mut buf[5..7], time.month());
    buf[7] = b'-';
    put(&mut buf[8..10], time.day());
    buf[10] = b'T';
    put(&mut buf[11..13], time.hour());
    buf[13] = b':';
    put(&mut buf[14..16], time.minute());
    buf[16] = b':';
    put(&mut buf[17..19], time.second());

    let mut end = 19;
    let (fraction, digits) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if digits > 0 {
        buf[end] = b'.';
        put(&mut buf[end + 1..end + 1 + digits], fraction);
        end += 1 + digits;
    }
    buf[end] = b'Z';
    std::str::from_utf8(&buf[..=end]).ok()
}

/// Writes `value` as decimal digits filling `out`, zero-padded on the left.
fn put(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ours(time: DateTime<Utc>) -> String {
        let mut buf = [0u8; 32];
        format(&time, &mut buf)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    #[test]
    fn known_times_read_as_chrono_writes_them() {
        for text in [
            "2020-04-16T08:00:00Z",
            "2020-04-16T08:00:00.250Z",
            "2020-04-16T08:00:00.000250Z",
            "2020-04-16T08:00:00.000000250Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let time: DateTime<Utc> = text.parse().unwrap();
            assert_eq!(ours(time), text);
        }
    }

    proptest! {
        #[test]
        fn every_time_reads_as_chrono_writes_it(secs in 0i64..253_402_300_799, nanos in prop_oneof![
            Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000
        ]) {
            let time = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(ours(time), time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
}
