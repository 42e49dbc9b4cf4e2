//! Reading a download's body: timed to its last byte (Goose stops at the headers),
//! optionally paced like a slow client or abandoned part-way, and checked: the length
//! the headers promised, the zip's end record, and the export times in the manifest.

use std::time::{Duration, Instant};

use chrono::DateTime;
use reqwest::Response;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap};

/// Bytes kept from the end of a body: the manifest, central directory and end record
/// of any archive with fewer than a few hundred devices.
const TAIL_BYTES: usize = 64 * 1024;

/// Length of a zip end-of-central-directory record without a comment.
const EOCD_LEN: usize = 22;
const EOCD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";

/// How to read a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadPlan {
    /// Bytes per second to read at, like a slow client; `None` reads at once.
    pub rate: Option<u64>,
    /// Stop (and drop the connection) after this many bytes.
    pub stop_after: Option<u64>,
    /// Stop when the run is ending.
    pub deadline: Option<Instant>,
}

/// A body as read.
#[derive(Debug)]
pub struct Body {
    pub received: u64,
    /// The last bytes received, at most [`TAIL_BYTES`].
    pub tail: Vec<u8>,
    /// From the request being sent to the last byte read.
    pub elapsed: Duration,
    pub ending: Ending,
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The body ended.
    Complete,
    /// `stop_after` bytes were read and the rest left unread.
    Abandoned,
    /// The run ended first.
    RunEnded,
}

/// Reads `response`'s body as `plan` says; `started` is when its request was sent.
pub async fn read(
    mut response: Response,
    started: Instant,
    plan: ReadPlan,
) -> Result<Body, reqwest::Error> {
    let mut body = Body {
        received: 0,
        tail: Vec::with_capacity(TAIL_BYTES),
        elapsed: Duration::ZERO,
        ending: Ending::Complete,
    };

    while let Some(chunk) = response.chunk().await? {
        body.received += chunk.len() as u64;
        keep_tail(&mut body.tail, &chunk);

        if plan.stop_after.is_some_and(|limit| body.received >= limit) {
            body.ending = Ending::Abandoned;
            break;
        }
        if past(plan.deadline) {
            body.ending = Ending::RunEnded;
            break;
        }
        pace(plan, body.received, started).await;
    }

    body.elapsed = started.elapsed();
    Ok(body)
}

fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(chunk);
    if tail.len() > 2 * TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Sleeps until `received` bytes are due at the plan's rate.
async fn pace(plan: ReadPlan, received: u64, started: Instant) {
    let Some(rate) = plan.rate.filter(|&r| r > 0) else {
        return;
    };
    let due = started + Duration::from_secs_f64(received as f64 / rate as f64);
    let due = plan.deadline.map_or(due, |deadline| due.min(deadline));
    tokio::time::sleep_until(due.into()).await;
}

/// The `Content-Length` header, if present and a number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks a complete archive: as long as promised, ending in a zip end record.
pub fn check_archive(promised: Option<u64>, body: &Body) -> Result<(), String> {
    check_length(promised, body.received)?;

    let ends_with_eocd = body.tail.len() >= EOCD_LEN
        && body.tail[body.tail.len() - EOCD_LEN..].starts_with(EOCD_SIGNATURE);
    if !ends_with_eocd {
        return Err("the archive does not end with a zip end-of-central-directory record".into());
    }
    Ok(())
}

/// Checks a `206` answer to `Range: bytes=first-last` of an archive of `total` bytes.
pub fn check_range(
    headers: &HeaderMap,
    body: &Body,
    first: u64,
    last: u64,
    total: u64,
) -> Result<(), String> {
    let expected = format!("bytes {first}-{last}/{total}");
    let content_range = headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok());
    if content_range != Some(expected.as_str()) {
        return Err(format!(
            "Content-Range is {content_range:?}, expected '{expected}'"
        ));
    }

    let promised = content_length(headers);
    if promised != Some(last - first + 1) {
        return Err(format!(
            "Content-Length is {promised:?} for a range of {} bytes",
            last - first + 1
        ));
    }
    check_length(promised, body.received)
}

fn check_length(promised: Option<u64>, received: u64) -> Result<(), String> {
    match promised {
        Some(length) if length == received => Ok(()),
        Some(length) => Err(format!(
            "Content-Length promised {length} bytes, {received} arrived"
        )),
        None => Err("the download has no Content-Length".into()),
    }
}

/// How long the service took from order to ready, from `created_at` and `ready_at`
/// in the archive's `manifest.json` (stored uncompressed just before the central
/// directory, so it lies in the tail).
pub fn manifest_export_time(tail: &[u8]) -> Option<Duration> {
    let created = last_time_of(tail, "\"created_at\"")?;
    let ready = last_time_of(tail, "\"ready_at\"")?;
    (ready - created).to_std().ok()
}

fn last_time_of(tail: &[u8], key: &str) -> Option<DateTime<chrono::FixedOffset>> {
    let at = rfind(tail, key.as_bytes())? + key.len();
    let window = &tail[at..(at + 80).min(tail.len())];
    let rest = String::from_utf8_lossy(window);

    let value = rest.split('"').nth(1)?;
    DateTime::parse_from_rfc3339(value).ok()
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &[u8]) -> Body {
        let mut tail = Vec::new();
        keep_tail(&mut tail, bytes);
        Body {
            received: bytes.len() as u64,
            tail,
            elapsed: Duration::from_millis(1),
            ending: Ending::Complete,
        }
    }

    fn archive() -> Vec<u8> {
        let mut bytes = b"PK\x03\x04 local entries ... central directory".to_vec();
        bytes.extend_from_slice(b"PK\x05\x06");
        bytes.extend_from_slice(&[0; 18]);
        bytes
    }

    #[test]
    fn a_whole_archive_passes() {
        let bytes = archive();
        assert_eq!(
            check_archive(Some(bytes.len() as u64), &body(&bytes)),
            Ok(())
        );
    }

    #[test]
    fn a_short_or_unterminated_archive_fails() {
        let bytes = archive();
        let short = &bytes[..bytes.len() - 1];

        assert!(check_archive(Some(bytes.len() as u64), &body(short)).is_err());
        assert!(check_archive(Some(short.len() as u64), &body(short)).is_err());
        assert!(check_archive(None, &body(&bytes)).is_err());
    }

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let mut tail = Vec::new();
        for _ in 0..5 {
            keep_tail(&mut tail, &[7; TAIL_BYTES]);
        }
        keep_tail(&mut tail, b"end");

        assert!(tail.len() <= 2 * TAIL_BYTES);
        assert!(tail.ends_with(b"end"));
    }

    #[test]
    fn a_range_answer_must_match_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, "bytes 10-19/100".parse().expect("value"));
        headers.insert(CONTENT_LENGTH, "10".parse().expect("value"));

        assert_eq!(check_range(&headers, &body(&[0; 10]), 10, 19, 100), Ok(()));
        assert!(check_range(&headers, &body(&[0; 9]), 10, 19, 100).is_err());
        assert!(check_range(&headers, &body(&[0; 10]), 10, 20, 100).is_err());
    }

    #[test]
    fn the_export_time_comes_from_the_manifest() {
        let manifest = br#"deflated bytes {
  "request_id": "x",
  "created_at": "2026-12-03T10:00:00.250Z",
  "ready_at": "2026-12-03T10:00:02.750Z",
  "entries": []
}PK"#;

        assert_eq!(
            manifest_export_time(manifest),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(manifest_export_time(b"no manifest"), None);
    }
}
