//! Zip64 exactly when needed, checked on synthetic entries whose multi-gigabyte data
//! never exists: only the framing is parsed. The entry-count case is small enough to
//! build for real and hand to the independent readers too.

use std::process::Command;

use super::parse::{self, Fields};
use super::{Sample, modified, temp_archive};
use crate::archive::{Entry, Layout, Method};

const GIB: u64 = 1 << 30;
const MARK: u64 = 0xFFFF_FFFF;

/// A deflated entry with the given sizes, whose data only the framing knows about.
fn synthetic(name: &str, compressed: u64, uncompressed: u64) -> Entry {
    Entry {
        name: name.to_owned(),
        method: Method::Deflated,
        crc32: 0x1234_5678,
        compressed_size: compressed,
        uncompressed_size: uncompressed,
        modified: modified(),
    }
}

fn build(entries: &[Entry]) -> parse::Parsed {
    let layout = Layout::new(entries).expect("valid entries");
    parse::check(&layout, entries)
}

/// The values of a zip64 extra field.
fn zip64_values(extra: Option<&[u8]>) -> Vec<u64> {
    let mut fields = Fields::new(extra.expect("a zip64 field"));
    std::iter::from_fn(|| fields.has_more().then(|| fields.u64())).collect()
}

#[test]
fn entry_over_4_gib_gets_zip64_sizes_in_both_headers() {
    let parsed = build(&[
        synthetic("before.json", 100, 600),
        synthetic("big.json", 5 * GIB, 30 * GIB),
        synthetic("after.json", 100, 600),
    ]);
    let (local, central) = (&parsed.locals[1], &parsed.centrals[1]);

    assert_eq!(local.common.version_needed, 45);
    assert_eq!(zip64_values(local.common.extra(1)), [30 * GIB, 5 * GIB]);

    // Its offset still fits, so the central field holds only the sizes.
    assert_eq!(zip64_values(central.common.extra(1)), [30 * GIB, 5 * GIB]);
    assert_ne!(central.offset_32, u32::MAX);

    assert!(parsed.locals[0].common.extra(1).is_none());
    assert_eq!(parsed.centrals[0].common.version_needed, 20);
}

#[test]
fn entry_after_a_big_one_gets_only_its_offset_in_zip64() {
    let parsed = build(&[
        synthetic("big.json", 5 * GIB, 30 * GIB),
        synthetic("after.json", 100, 600),
    ]);
    let (local, central) = (&parsed.locals[1], &parsed.centrals[1]);

    assert!(
        local.common.extra(1).is_none(),
        "offsets are not in local headers"
    );
    assert_eq!(local.common.version_needed, 45);
    assert_eq!(
        (central.common.compressed_32, central.common.uncompressed_32),
        (100, 600)
    );
    assert_eq!(central.offset_32, u32::MAX);
    assert_eq!(
        zip64_values(central.common.extra(1)),
        [central.resolved().2]
    );
    assert!(central.resolved().2 > 5 * GIB);
}

#[test]
fn only_the_local_header_offset_overflows() {
    let parsed = build(&[
        synthetic("almost.json", MARK - 1, MARK - 1),
        synthetic("after.json", 100, 600),
    ]);

    // The first entry needs nothing; the second only its offset.
    assert!(parsed.centrals[0].common.extra(1).is_none());
    assert_eq!(parsed.centrals[0].common.version_needed, 20);
    assert_eq!(zip64_values(parsed.centrals[1].common.extra(1)).len(), 1);
    assert_eq!(parsed.centrals[1].offset_32, u32::MAX);
}

#[test]
fn a_size_of_exactly_0xffffffff_already_needs_zip64() {
    let parsed = build(&[
        synthetic("compressed.json", MARK, MARK - 1),
        synthetic("uncompressed.json", 100, MARK),
    ]);

    // A local zip64 field holds both sizes; a central one only the overflowing size.
    let first = &parsed.centrals[0];
    assert_eq!(
        zip64_values(parsed.locals[0].common.extra(1)),
        [MARK - 1, MARK]
    );
    assert_eq!(first.common.uncompressed_32, u32::MAX - 1);
    assert_eq!(zip64_values(first.common.extra(1)), [MARK]);

    // The second entry's offset overflows too: uncompressed size, then offset.
    let second = &parsed.centrals[1];
    let offset = second.resolved().2;
    assert_eq!(second.common.compressed_32, 100);
    assert_eq!(zip64_values(second.common.extra(1)), [MARK, offset]);
}

#[test]
fn central_directory_at_exactly_0xffffffff_needs_zip64_end_records() {
    // Local header: 30 fixed bytes, the name, the 9-byte timestamp field.
    let name = "a.json";
    let data_len = MARK - (30 + name.len() as u64 + 9);
    let parsed = build(&[synthetic(name, data_len, data_len)]);

    assert_eq!(parsed.cd.start, MARK);
    assert_eq!(parsed.end.cd_offset, u32::MAX);
    assert_eq!(parsed.end.count, 1);
    assert_ne!(parsed.end.cd_size, u32::MAX);
    assert!(parsed.zip64.is_some());
}

#[test]
fn no_zip64_structure_appears_below_the_thresholds() {
    let name = "a.json";
    let data_len = MARK - 1 - (30 + name.len() as u64 + 9);
    let parsed = build(&[synthetic(name, data_len, MARK - 1)]);

    assert_eq!(parsed.cd.start, MARK - 1);
    assert!(parsed.zip64.is_none());
    assert!(parsed.locals[0].common.extra(1).is_none());
    assert!(parsed.centrals[0].common.extra(1).is_none());
    assert_eq!(parsed.centrals[0].common.version_needed, 20);
}

fn empty_entries(count: usize) -> Vec<Entry> {
    (0..count)
        .map(|i| Entry {
            method: Method::Stored,
            ..synthetic(&format!("{i:05}.json"), 0, 0)
        })
        .collect()
}

#[test]
fn entry_count_of_0xfffe_fits_the_classic_end_record() {
    let parsed = build(&empty_entries(0xFFFE));

    assert!(parsed.zip64.is_none());
    assert_eq!(parsed.end.count, 0xFFFE);
}

#[test]
fn entry_count_of_0xffff_needs_zip64_end_records() {
    let parsed = build(&empty_entries(0xFFFF));
    let (record, _) = parsed.zip64.as_ref().expect("zip64 end records");

    assert_eq!(
        (parsed.end.count, parsed.end.count_on_disk),
        (u16::MAX, u16::MAX)
    );
    assert_eq!(record.count, 0xFFFF);
}

fn many_small_files(count: usize) -> Sample {
    let mut sample = Sample::new();

    for i in 0..count {
        let content = format!("{{\"n\": {i}}}");
        let method = if i % 2 == 0 {
            Method::Stored
        } else {
            Method::Deflated
        };
        sample.add(&format!("{i:05}.json"), method, content.as_bytes());
    }
    sample
}

#[tokio::test]
async fn seventy_thousand_entries_use_zip64_end_records_that_readers_accept() {
    let sample = many_small_files(70_000);
    let parsed = parse::check(&sample.layout(), &sample.entries);
    let (record, _) = parsed.zip64.as_ref().expect("zip64 end records");

    // Only the count overflows; size and offset stay in the classic record as well.
    assert_eq!(parsed.end.count, u16::MAX);
    assert_eq!(record.count, 70_000);
    assert_eq!(u64::from(parsed.end.cd_offset), parsed.cd.start);
    assert_eq!(
        u64::from(parsed.end.cd_size),
        parsed.cd.end - parsed.cd.start
    );

    let archive = sample.archive();
    let file = temp_archive(&archive);
    let unzip = Command::new("unzip")
        .args(["-tqq"])
        .arg(file.path())
        .output()
        .expect("unzip runs");
    assert!(
        unzip.status.success(),
        "{}",
        String::from_utf8_lossy(&unzip.stdout)
    );

    let python = Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&python.stdout);
    assert!(
        python.status.success() && !stdout.contains("corrupted"),
        "{stdout}"
    );

    super::readers::read_with_read1(archive, &sample).await;
}
