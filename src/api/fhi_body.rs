//! The FHI order body, validated field by field so that a refusal names the field.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::domain::{Channel, PhoneNumber, TimeWindow};
use crate::orders::Order;
use crate::source::access_log::Requester;

/// Parses an FHI order: `phone_number`, `person_name`, `legal_means` required;
/// `person_id`, `person_organization`, `time_from`, `time_to` optional.
pub fn parse_fhi_order(body: &[u8]) -> Result<Order, ApiError> {
    let fields = json_object(body)?;

    let phone = required_text(&fields, "phone_number")?;
    let phone = PhoneNumber::parse(phone)
        .map_err(|e| ApiError::bad_request("phone_number", e.to_string()))?;
    let person_name = required_text(&fields, "person_name")?.to_owned();
    let legal_means = required_text(&fields, "legal_means")?.to_owned();
    let person_id = optional_text(&fields, "person_id")?;
    let person_organization = optional_text(&fields, "person_organization")?;
    let from = optional_time(&fields, "time_from")?;
    let to = optional_time(&fields, "time_to")?;
    let window =
        TimeWindow::new(from, to).map_err(|e| ApiError::bad_request("time_to", e.to_string()))?;

    Ok(Order {
        channel: Channel::Fhi,
        requester: Requester {
            phone,
            person_name,
            person_id,
            person_organization,
            legal_means,
        },
        window,
    })
}

/// Checks a Helsenorge order body: empty, or a JSON object whose fields (old paging
/// and time-range fields) are ignored.
pub fn check_helsenorge_order(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    json_object(body).map(|_| ())
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        message: format!("the body is not valid JSON: {e}"),
        field: None,
    })?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::BadRequest {
            message: "the body must be a JSON object".into(),
            field: None,
        }),
    }
}

fn required_text<'a>(
    fields: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(ApiError::bad_request(name, format!("{name} is required"))),
        Some(Value::String(text)) if text.trim().is_empty() => Err(ApiError::bad_request(
            name,
            format!("{name} must not be empty"),
        )),
        Some(Value::String(text)) => Ok(text.trim()),
        Some(_) => Err(ApiError::bad_request(
            name,
            format!("{name} must be a string"),
        )),
    }
}

fn optional_text(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Some(_) => Err(ApiError::bad_request(
            name,
            format!("{name} must be a string"),
        )),
    }
}

fn optional_time(
    fields: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = optional_text(fields, name)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::bad_request(
                name,
                format!("{name} must be an RFC 3339 time, like 2020-04-16T08:00:00Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<&'static str> {
        match parse_fhi_order(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => panic!("{body} was accepted"),
        }
    }

    #[test]
    fn a_complete_body_is_an_order() {
        let order = parse_fhi_order(
            br#"{"phone_number": "+4791234567", "person_name": "Ola", "legal_means": "smittesporing",
                 "person_id": "1", "person_organization": null,
                 "time_from": "2020-04-01T00:00:00+02:00", "time_to": "2020-04-02T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(order.requester.phone.as_str(), "+4791234567");
        assert_eq!(order.requester.person_organization, None);
        assert_eq!(
            order.window.from,
            Some("2020-03-31T22:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn every_refusal_names_its_field() {
        assert_eq!(
            field_of(r#"{"person_name": "Ola", "legal_means": "x"}"#),
            Some("phone_number")
        );
        assert_eq!(
            field_of(r#"{"phone_number": "4791234567", "person_name": "Ola", "legal_means": "x"}"#),
            Some("phone_number")
        );
        assert_eq!(
            field_of(r#"{"phone_number": 4791234567, "person_name": "Ola", "legal_means": "x"}"#),
            Some("phone_number")
        );
        assert_eq!(
            field_of(r#"{"phone_number": "+4791234567", "person_name": " ", "legal_means": "x"}"#),
            Some("person_name")
        );
        assert_eq!(
            field_of(r#"{"phone_number": "+4791234567", "person_name": "Ola"}"#),
            Some("legal_means")
        );
        assert_eq!(
            field_of(
                r#"{"phone_number": "+4791234567", "person_name": "Ola", "legal_means": "x", "person_id": 5}"#
            ),
            Some("person_id")
        );
        assert_eq!(
            field_of(
                r#"{"phone_number": "+4791234567", "person_name": "Ola", "legal_means": "x", "time_from": "yesterday"}"#
            ),
            Some("time_from")
        );
        assert_eq!(
            field_of(
                r#"{"phone_number": "+4791234567", "person_name": "Ola", "legal_means": "x", "time_from": "2020-04-02T00:00:00Z", "time_to": "2020-04-01T00:00:00Z"}"#
            ),
            Some("time_to")
        );
        assert_eq!(field_of("[1]"), None);
        assert_eq!(field_of("{not json"), None);
    }

    #[test]
    fn a_helsenorge_order_may_be_empty_or_an_object() {
        assert!(check_helsenorge_order(b"").is_ok());
        assert!(check_helsenorge_order(b"{}").is_ok());
        assert!(check_helsenorge_order(br#"{"page": 2}"#).is_ok());
        assert!(check_helsenorge_order(b"{").is_err());
        assert!(check_helsenorge_order(b"42").is_err());
    }
}
