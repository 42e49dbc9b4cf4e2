//! The device document, written field by field as rows arrive:
//!
//! `{"uuid":…,"device":{…},"gps_events":[…],"bluetooth_contacts":[…]}`
//!
//! Only the row being encoded is held; the output goes straight into the deflate
//! stream.

use std::io;

use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use super::deflate::{ChunkedDeflate, Deflated};
use crate::source::rows::{BluetoothContact, DeviceInfo, GpsEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Gps,
    Bluetooth,
}

/// Writes one device document into a [`ChunkedDeflate`].
pub struct DocumentWriter {
    out: ChunkedDeflate,
    scratch: Vec<u8>,
    section: Section,
    gps_events: u64,
    bluetooth_contacts: u64,
}

/// A finished document: the last chunks, checksum, sizes and event counts.
pub struct FinishedDocument {
    pub chunks: Vec<Bytes>,
    pub deflated: Deflated,
    pub gps_events: u64,
    pub bluetooth_contacts: u64,
}

impl DocumentWriter {
    /// Starts a document with its uuid and device fields (`null` when the device row
    /// is gone).
    pub fn begin(
        uuid: Uuid,
        device: Option<&DeviceInfo>,
        chunk_size: usize,
        level: u32,
    ) -> io::Result<Self> {
        let mut writer = Self {
            out: ChunkedDeflate::new(chunk_size, level),
            scratch: Vec::with_capacity(512),
            section: Section::Gps,
            gps_events: 0,
            bluetooth_contacts: 0,
        };
        writer.scratch.extend_from_slice(b"{\"uuid\":");
        serde_json::to_writer(&mut writer.scratch, &uuid)?;
        writer.scratch.extend_from_slice(b",\"device\":");
        serde_json::to_writer(&mut writer.scratch, &device)?;
        writer.scratch.extend_from_slice(b",\"gps_events\":[");
        writer.flush_scratch()?;
        Ok(writer)
    }

    pub fn gps_event(&mut self, event: &GpsEvent) -> io::Result<()> {
        debug_assert_eq!(self.section, Section::Gps);
        let first = self.gps_events == 0;
        self.gps_events += 1;
        self.element(first, event)
    }

    pub fn bluetooth_contact(&mut self, contact: &BluetoothContact) -> io::Result<()> {
        if self.section == Section::Gps {
            self.start_bluetooth()?;
        }
        let first = self.bluetooth_contacts == 0;
        self.bluetooth_contacts += 1;
        self.element(first, contact)
    }

    /// A full chunk of compressed output, when one is ready to store.
    pub fn take_chunk(&mut self) -> Option<Bytes> {
        self.out.take_chunk()
    }

    pub fn finish(mut self) -> io::Result<FinishedDocument> {
        if self.section == Section::Gps {
            self.start_bluetooth()?;
        }
        self.out.write(b"]}")?;
        let (chunks, deflated) = self.out.finish()?;
        Ok(FinishedDocument {
            chunks,
            deflated,
            gps_events: self.gps_events,
            bluetooth_contacts: self.bluetooth_contacts,
        })
    }

    fn start_bluetooth(&mut self) -> io::Result<()> {
        self.section = Section::Bluetooth;
        self.out.write(b"],\"bluetooth_contacts\":[")
    }

    fn element(&mut self, first: bool, value: &impl Serialize) -> io::Result<()> {
        if !first {
            self.scratch.push(b',');
        }
        serde_json::to_writer(&mut self.scratch, value)?;
        self.flush_scratch()
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        self.out.write(&self.scratch)?;
        self.scratch.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    use super::*;

    fn time(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    fn inflate(doc: FinishedDocument, mut earlier: Vec<Bytes>) -> Value {
        earlier.extend(doc.chunks);
        let joined: Vec<u8> = earlier.iter().flat_map(|c| c.iter().copied()).collect();
        let mut text = String::new();
        flate2::read::DeflateDecoder::new(&joined[..])
            .read_to_string(&mut text)
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_document_has_the_contract_shape() {
        let uuid = Uuid::nil();
        let device = DeviceInfo {
            platform: Some("android".into()),
            os_version: Some("14".into()),
            app_version: Some("1.2.0".into()),
            model: Some("Pixel «Ærlig» 日本".into()),
            created_at: time("2020-04-16T08:00:00Z"),
        };
        let mut writer = DocumentWriter::begin(uuid, Some(&device), 64, 6).unwrap();
        let mut chunks = Vec::new();
        for minute in 0..3 {
            writer
                .gps_event(&GpsEvent {
                    time_from: time(&format!("2020-04-16T08:0{minute}:00Z")),
                    time_to: time(&format!("2020-04-16T08:0{minute}:30.25Z")),
                    latitude: Some(59.91),
                    longitude: Some(10.75),
                    accuracy: Some(12.5),
                    speed: None,
                    speed_accuracy: Some(0.1),
                    altitude: Some(20.0),
                    altitude_accuracy: Some(3.0),
                })
                .unwrap();
            chunks.extend(writer.take_chunk());
        }
        writer
            .bluetooth_contact(&BluetoothContact {
                paired_time: time("2020-04-16T09:00:00Z"),
                rssi: Some(-70),
                tx_power: None,
            })
            .unwrap();
        let doc = writer.finish().unwrap();
        assert_eq!((doc.gps_events, doc.bluetooth_contacts), (3, 1));

        let value = inflate(doc, chunks);
        assert_eq!(value["uuid"], json!("00000000-0000-0000-0000-000000000000"));
        assert_eq!(value["device"]["model"], json!("Pixel «Ærlig» 日本"));
        assert_eq!(value["device"]["created_at"], json!("2020-04-16T08:00:00Z"));
        assert_eq!(
            value["gps_events"][1]["time_from"],
            json!("2020-04-16T08:01:00Z")
        );
        assert_eq!(
            value["gps_events"][1]["time_to"],
            json!("2020-04-16T08:01:30.250Z")
        );
        assert_eq!(value["gps_events"][0]["speed"], Value::Null);
        assert_eq!(value["gps_events"][0]["accuracy"], json!(12.5));
        assert_eq!(value["gps_events"][0]["speed_accuracy"], json!(0.1));
        assert_eq!(
            value["bluetooth_contacts"],
            json!([{"paired_time": "2020-04-16T09:00:00Z", "rssi": -70, "tx_power": null}])
        );
    }

    #[test]
    fn a_device_without_rows_has_empty_lists() {
        let writer = DocumentWriter::begin(Uuid::nil(), None, 1024, 6).unwrap();
        let value = inflate(writer.finish().unwrap(), Vec::new());
        assert_eq!(
            value,
            json!({"uuid": "00000000-0000-0000-0000-000000000000", "device": null,
                   "gps_events": [], "bluetooth_contacts": []})
        );
    }
}
