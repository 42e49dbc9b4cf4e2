//! Archive tests: real archives checked by independent readers, zip64 framing checked
//! by a small parser written for the tests, and properties of byte ranges.

mod parse;
mod pieces;
mod readers;
mod zip64;

use std::io::Write;
use std::ops::Range;

use chrono::{DateTime, TimeZone, Utc};
use flate2::write::DeflateEncoder;

use super::{Entry, Layout, Method, Piece};

/// Entries and the stored data the caller would supply for each.
#[derive(Debug)]
pub struct Sample {
    pub entries: Vec<Entry>,
    pub data: Vec<Vec<u8>>,
    pub contents: Vec<Vec<u8>>,
}

impl Sample {
    pub fn new() -> Sample {
        Sample {
            entries: Vec::new(),
            data: Vec::new(),
            contents: Vec::new(),
        }
    }

    /// Adds a file, deflating it or storing it as it is.
    pub fn add(&mut self, name: &str, method: Method, content: &[u8]) -> &mut Sample {
        let data = match method {
            Method::Stored => content.to_vec(),
            Method::Deflated => deflate(content),
        };

        self.entries.push(Entry {
            name: name.to_owned(),
            method,
            crc32: crc32fast::hash(content),
            compressed_size: data.len() as u64,
            uncompressed_size: content.len() as u64,
            modified: modified(),
        });
        self.data.push(data);
        self.contents.push(content.to_vec());
        self
    }

    pub fn layout(&self) -> Layout {
        Layout::new(&self.entries).expect("sample entries are valid")
    }

    /// The whole archive, assembled from its pieces.
    pub fn archive(&self) -> Vec<u8> {
        let layout = self.layout();
        assemble(&layout, 0..layout.len(), &self.data)
    }
}

/// An archive like the service's: device documents, a manifest, and the odd cases
/// (non-ASCII name, empty entries, stored entries).
pub fn realistic() -> Sample {
    let mut sample = Sample::new();

    sample
        .add(
            "5d3c1f7e-8a2b-4c1d-9e0f-112233445566.json",
            Method::Deflated,
            &device_document(3_000),
        )
        .add(
            "0b9e2c44-1f3a-4d5e-8b6c-778899aabbcc.json",
            Method::Deflated,
            &device_document(3),
        )
        .add(
            "tømmerstokk-æøå-日本語.json",
            Method::Deflated,
            b"{\"ok\": true}",
        )
        .add("empty.json", Method::Deflated, b"")
        .add("stored.txt", Method::Stored, b"kept as it is\n")
        .add("empty-stored.txt", Method::Stored, b"")
        .add("manifest.json", Method::Deflated, br#"{"entries": 5}"#);

    sample
}

/// A device document with `events` GPS events, in the service's shape.
pub fn device_document(events: usize) -> Vec<u8> {
    let gps: Vec<_> = (0..events)
        .map(|i| {
            serde_json::json!({
                "time_from": format!("2020-04-16T08:{:02}:{:02}Z", i / 60 % 60, i % 60),
                "time_to": format!("2020-04-16T09:{:02}:{:02}Z", i / 60 % 60, i % 60),
                "latitude": 59.91 + i as f64 * 1e-5,
                "longitude": 10.75 - i as f64 * 1e-5,
                "accuracy": 12.5, "speed": null, "speed_accuracy": 0.1,
                "altitude": 20.0, "altitude_accuracy": 3.0,
            })
        })
        .collect();

    let document = serde_json::json!({
        "uuid": "5d3c1f7e-8a2b-4c1d-9e0f-112233445566",
        "device": {"platform": "android", "os_version": "10", "app_version": "1.2",
                   "model": null, "created_at": "2020-04-01T10:00:00Z"},
        "gps_events": gps,
        "bluetooth_contacts": [{"paired_time": "2020-04-16T08:00:00Z", "rssi": -70,
                                "tx_power": 12}],
    });

    serde_json::to_vec(&document).expect("a JSON value serializes")
}

/// Raw deflate, as the worker stores documents.
pub fn deflate(content: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(content).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

/// An odd second, which DOS time cannot hold but the extended timestamp can.
pub fn modified() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 10, 20, 31)
        .single()
        .expect("valid time")
}

/// The bytes of `range`, with data pieces filled from `data`.
pub fn assemble(layout: &Layout, range: Range<u64>, data: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();

    for piece in layout.pieces(range) {
        match piece {
            Piece::Literal(bytes) => out.extend_from_slice(&bytes),
            Piece::Data { entry, offset, len } => {
                let start = offset as usize;
                out.extend_from_slice(&data[entry][start..start + len as usize]);
            }
        }
    }
    out
}

/// Writes an archive to a temporary file for command-line tools.
pub fn temp_archive(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".zip")
        .tempfile()
        .expect("temporary file");
    file.write_all(bytes).expect("writing the archive");
    file.flush().expect("flushing the archive");
    file
}
