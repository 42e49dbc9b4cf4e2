//! HTTP byte ranges (RFC 9110, section 14): which part of a representation of known
//! length a `Range` header asks for, and the `Content-Range` values that answer it.

use std::ops::Range;

/// What a `Range` header asks of a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: answer `200` with everything. Invalid headers, other units
    /// and multiple ranges end up here, as the RFC lets a server ignore them.
    Full,
    /// One satisfiable range, never empty and never past the end: answer `206`.
    Partial(Range<u64>),
    /// A valid range that lies wholly past the end: answer `416`.
    Unsatisfiable,
}

/// One `range-spec` as written, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// Reads a `Range` header for a representation of `len` bytes.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(specs) = header.and_then(parse_specs) else {
        return RangeRequest::Full;
    };

    // Nothing is satisfiable in an empty representation, however it is asked for.
    if len == 0 {
        return RangeRequest::Unsatisfiable;
    }

    match specs.as_slice() {
        [spec] => resolve(*spec, len),
        _ => RangeRequest::Full,
    }
}

/// `Content-Range` of a `206` answer: `bytes first-last/len`. `range` must not be empty.
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    debug_assert!(!range.is_empty(), "an empty range has no Content-Range");

    format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        len
    )
}

/// `Content-Range` of a `416` answer: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// The range specs of a syntactically valid `bytes=` header, or `None`.
fn parse_specs(header: &str) -> Option<Vec<Spec>> {
    let (unit, set) = header.trim_matches(is_ows).split_once('=')?;

    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }

    // A list may hold empty elements, which recipients must skip, but not only those.
    let specs = set
        .split(',')
        .map(|element| element.trim_matches(is_ows))
        .filter(|element| !element.is_empty())
        .map(parse_spec)
        .collect::<Option<Vec<_>>>()?;

    (!specs.is_empty()).then_some(specs)
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;

    if first.is_empty() {
        return parse_position(last).map(Spec::Suffix);
    }

    let first = parse_position(first)?;
    let last = match last {
        "" => None,
        last => Some(parse_position(last)?),
    };

    // The RFC calls a range whose last position precedes its first invalid.
    if last.is_some_and(|last| last < first) {
        return None;
    }

    Some(Spec::From { first, last })
}

/// `1*DIGIT`. Positions too large for `u64` saturate: they lie past the end of any
/// representation anyway.
fn parse_position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }

    Some(digits.bytes().fold(0u64, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

/// Applies a spec to a representation of `len` (> 0) bytes.
fn resolve(spec: Spec, len: u64) -> RangeRequest {
    match spec {
        Spec::From { first, .. } if first >= len => RangeRequest::Unsatisfiable,

        Spec::From { first, last } => {
            let end = last.map_or(len, |last| last.saturating_add(1).min(len));
            RangeRequest::Partial(first..end)
        }

        Spec::Suffix(0) => RangeRequest::Unsatisfiable,

        Spec::Suffix(suffix) => RangeRequest::Partial(len.saturating_sub(suffix)..len),
    }
}

/// Optional whitespace (RFC 9110, section 5.6.3): spaces and horizontal tabs.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str, len: u64) -> RangeRequest {
        parse_range(Some(header), len)
    }

    fn partial(range: Range<u64>) -> RangeRequest {
        RangeRequest::Partial(range)
    }

    #[test]
    fn no_header_means_everything() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(parse_range(None, 0), RangeRequest::Full);
    }

    #[test]
    fn closed_range_includes_both_ends() {
        assert_eq!(parse("bytes=0-0", 100), partial(0..1));
        assert_eq!(parse("bytes=10-19", 100), partial(10..20));
        assert_eq!(parse("bytes=0-99", 100), partial(0..100));
    }

    #[test]
    fn last_position_past_the_end_is_clamped() {
        assert_eq!(parse("bytes=90-200", 100), partial(90..100));
        assert_eq!(parse("bytes=5-18446744073709551615", 100), partial(5..100));
        assert_eq!(
            parse("bytes=5-99999999999999999999999", 100),
            partial(5..100)
        );
    }

    #[test]
    fn open_range_runs_to_the_end() {
        assert_eq!(parse("bytes=0-", 100), partial(0..100));
        assert_eq!(parse("bytes=99-", 100), partial(99..100));
    }

    #[test]
    fn suffix_range_takes_the_last_bytes() {
        assert_eq!(parse("bytes=-1", 100), partial(99..100));
        assert_eq!(parse("bytes=-100", 100), partial(0..100));
    }

    #[test]
    fn suffix_longer_than_the_representation_means_all_of_it() {
        assert_eq!(parse("bytes=-500", 100), partial(0..100));
        assert_eq!(
            parse("bytes=-99999999999999999999999", 100),
            partial(0..100)
        );
    }

    #[test]
    fn empty_suffix_is_unsatisfiable() {
        assert_eq!(parse("bytes=-0", 100), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn start_at_or_past_the_end_is_unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse("bytes=99999999999999999999999-", 100),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn any_valid_range_of_an_empty_representation_is_unsatisfiable() {
        for header in [
            "bytes=0-",
            "bytes=0-0",
            "bytes=-1",
            "bytes=-0",
            "bytes=0-1,2-3",
        ] {
            assert_eq!(parse(header, 0), RangeRequest::Unsatisfiable, "{header}");
        }
    }

    #[test]
    fn invalid_headers_of_an_empty_representation_are_ignored() {
        assert_eq!(parse("bytes=x", 0), RangeRequest::Full);
        assert_eq!(parse("items=0-1", 0), RangeRequest::Full);
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(parse("Bytes=1-2", 100), partial(1..3));
        assert_eq!(parse("BYTES=1-2", 100), partial(1..3));
    }

    #[test]
    fn whitespace_is_tolerated_around_the_value_and_list_elements() {
        assert_eq!(parse("  bytes=1-2\t", 100), partial(1..3));
        assert_eq!(parse("bytes= 1-2 ", 100), partial(1..3));
        assert_eq!(parse("bytes=\t-5", 100), partial(95..100));
        assert_eq!(parse("bytes=1-2, ", 100), partial(1..3));
        assert_eq!(parse("bytes=,1-2", 100), partial(1..3));
    }

    #[test]
    fn whitespace_inside_a_range_or_around_the_unit_is_invalid() {
        for header in ["bytes=1 - 2", "bytes =1-2", "bytes=- 5", "bytes=1- 2"] {
            assert_eq!(parse(header, 100), RangeRequest::Full, "{header}");
        }
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse("items=0-1", 100), RangeRequest::Full);
        assert_eq!(parse("bytesx=0-1", 100), RangeRequest::Full);
    }

    #[test]
    fn syntactically_invalid_headers_are_ignored() {
        let invalid = [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=1",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=0x10-20",
            "=0-1",
            "bytes=5-4",
            "bytes=0-1,x",
        ];

        for header in invalid {
            assert_eq!(parse(header, 100), RangeRequest::Full, "{header:?}");
        }
    }

    #[test]
    fn multiple_ranges_answer_everything() {
        assert_eq!(parse("bytes=0-1,5-6", 100), RangeRequest::Full);
        assert_eq!(parse("bytes=0-1, -5", 100), RangeRequest::Full);
        assert_eq!(parse("bytes=200-300,400-", 100), RangeRequest::Full);
    }

    #[test]
    fn content_range_names_the_last_byte_inclusively() {
        assert_eq!(content_range(&(0..1), 100), "bytes 0-0/100");
        assert_eq!(content_range(&(10..20), 100), "bytes 10-19/100");
        assert_eq!(content_range(&(0..100), 100), "bytes 0-99/100");
    }

    #[test]
    fn unsatisfied_range_names_the_length() {
        assert_eq!(unsatisfied_range(100), "bytes */100");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }
}
