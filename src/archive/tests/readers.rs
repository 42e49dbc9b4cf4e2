//! Real archives, assembled from their pieces, read by independent readers: both of
//! async_zip's readers, Info-ZIP's unzip and zipinfo, and Python's zipfile.

use std::process::Command;

use async_zip::base::read1::seek::ZipArchiveReader;
use futures_util::io::{AsyncReadExt, Cursor};

use super::{Sample, modified, parse, realistic, temp_archive};
use crate::archive::Method;

/// Reads every entry with async_zip's `read1` reader, which checks local headers
/// against the central directory and CRC and size at the end of each file.
pub async fn read_with_read1(archive: Vec<u8>, sample: &Sample) {
    let mut reader = ZipArchiveReader::open(Cursor::new(archive))
        .await
        .expect("read1 opens the archive");
    assert_eq!(reader.cdrs().len(), sample.entries.len());

    for (i, entry) in sample.entries.iter().enumerate() {
        let cdr = &reader.cdrs()[i];
        assert_eq!(cdr.insecure_file_name.as_str(), Some(entry.name.as_str()));
        assert!(!cdr.cdrh.gpf.data_descriptor());

        let mut content = Vec::new();
        let mut file = reader.file(i).await.expect("read1 opens the entry");
        file.read_to_end(&mut content)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
        assert_eq!(content, sample.contents[i], "{}", entry.name);
    }
}

#[tokio::test]
async fn async_zip_read1_reads_every_entry() {
    let sample = realistic();
    read_with_read1(sample.archive(), &sample).await;
}

#[tokio::test]
async fn async_zip_read1_notices_a_wrong_crc() {
    let mut sample = realistic();
    sample.entries[0].crc32 ^= 1;

    let mut reader = ZipArchiveReader::open(Cursor::new(sample.archive()))
        .await
        .expect("read1 opens the archive");
    let mut file = reader.file(0).await.expect("read1 opens the entry");
    let read = file.read_to_end(&mut Vec::new()).await;

    assert!(read.is_err(), "the test reader must check CRCs");
}

#[tokio::test]
#[expect(deprecated, reason = "the older reader is a second, independent check")]
async fn async_zip_entry_reader_checks_crc_and_reads_metadata() {
    let sample = realistic();
    let reader = async_zip::base::read::mem::ZipFileReader::new(sample.archive())
        .await
        .expect("the entry reader opens the archive");

    for (i, expected) in sample.entries.iter().enumerate() {
        let mut entry_reader = reader.reader_with_entry(i).await.expect("opens entry");
        let mut content = Vec::new();
        entry_reader
            .read_to_end_checked(&mut content)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", expected.name));
        assert_eq!(content, sample.contents[i]);

        let entry = entry_reader.entry();
        assert_eq!(entry.filename().as_str().ok(), Some(expected.name.as_str()));
        assert_eq!(entry.compressed_size(), expected.compressed_size);
        assert_eq!(entry.uncompressed_size(), expected.uncompressed_size);
        assert_eq!(entry.unix_permissions(), Some(0o100_644));

        // DOS time holds even seconds only.
        let date = entry.last_modification_date();
        assert_eq!((date.year(), date.month(), date.day()), (2026, 3, 4));
        assert_eq!((date.hour(), date.minute(), date.second()), (10, 20, 30));
    }
}

#[test]
fn unzip_tests_the_archive_without_errors() {
    let file = temp_archive(&realistic().archive());

    let output = Command::new("unzip")
        .arg("-t")
        .arg(file.path())
        .output()
        .expect("unzip runs");
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("No errors detected"), "{stdout}");
}

#[test]
fn zipinfo_shows_the_extended_timestamp_and_file_mode() {
    let file = temp_archive(&realistic().archive());

    // -T prints the time as yyyymmdd.hhmmss; the odd second comes from the
    // extended timestamp, as DOS time cannot hold it.
    let output = Command::new("zipinfo")
        .args(["-T"])
        .arg(file.path())
        .arg("manifest.json")
        .env("TZ", "UTC")
        .output()
        .expect("zipinfo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("-rw-r--r--"), "{stdout}");
    assert!(stdout.contains("20260304.102031"), "{stdout}");
    assert!(stdout.contains(" unx "), "{stdout}");
}

#[test]
fn python_zipfile_tests_the_archive() {
    let file = temp_archive(&realistic().archive());

    let output = Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Done testing"), "{stdout}");
    assert!(!stdout.contains("corrupted"), "{stdout}");
}

/// Python reads each entry (checking its CRC) and reports what it sees.
const PYTHON_LISTING: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    print(json.dumps([
        [info.filename, info.compress_type, info.file_size, info.CRC,
         list(info.date_time), info.external_attr >> 16, info.flag_bits,
         len(archive.read(info))]
        for info in archive.infolist()
    ]))
"#;

#[test]
fn python_zipfile_reads_names_sizes_and_times() {
    let sample = realistic();
    let file = temp_archive(&sample.archive());

    let output = Command::new("python3")
        .args(["-c", PYTHON_LISTING])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let listing: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("python prints JSON");
    let expected: Vec<_> = sample
        .entries
        .iter()
        .map(|entry| {
            let method = if entry.method == Method::Stored { 0 } else { 8 };
            serde_json::json!([
                entry.name,
                method,
                entry.uncompressed_size,
                entry.crc32,
                [2026, 3, 4, 10, 20, 30],
                0o100_644,
                0x800,
                entry.uncompressed_size
            ])
        })
        .collect();

    assert_eq!(listing, serde_json::Value::Array(expected));
}

#[test]
fn realistic_archive_framing_matches_the_specification() {
    let sample = realistic();
    let parsed = parse::check(&sample.layout(), &sample.entries);

    assert!(parsed.zip64.is_none());
    assert_eq!(
        modified().timestamp() % 2,
        1,
        "the sample time has odd seconds"
    );
}

#[test]
fn times_outside_the_zip_ranges_are_clamped_and_still_read() {
    let mut sample = Sample::new();
    sample
        .add("old.json", Method::Stored, b"1960")
        .add("future.json", Method::Stored, b"2200");
    sample.entries[0].modified = "1960-05-01T00:00:00Z".parse().expect("a time");
    sample.entries[1].modified = "2200-05-01T00:00:00Z".parse().expect("a time");
    let file = temp_archive(&sample.archive());

    let output = Command::new("python3")
        .args(["-c", PYTHON_LISTING])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    let listing: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("python prints JSON");

    assert_eq!(listing[0][4], serde_json::json!([1980, 1, 1, 0, 0, 0]));
    assert_eq!(listing[1][4], serde_json::json!([2107, 12, 31, 23, 59, 58]));
    parse::check(&sample.layout(), &sample.entries);
}
