//! The device document, written field by field as rows arrive:
//!
//! `{"uuid":…,"device":{…},"gps_events":[…],"bluetooth_contacts":[…]}`
//!
//! The JSON is handed out in batches of about [`BATCH_SIZE`] bytes to be deflated;
//! only the batch being filled is held.

use std::io;

use serde::Serialize;
use uuid::Uuid;

use crate::source::rows::{BluetoothContact, DeviceInfo, GpsEvent};

/// JSON bytes handed to the deflate stream at a time: large enough that handing
/// over costs nothing next to compressing, small enough to hold two of.
pub const BATCH_SIZE: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Gps,
    Bluetooth,
}

/// Writes one device document as JSON.
pub struct DocumentWriter {
    json: Vec<u8>,
    section: Section,
    gps_events: u64,
    bluetooth_contacts: u64,
}

/// The end of a document: its last batch of JSON and its event counts.
pub struct FinishedDocument {
    pub last_batch: Vec<u8>,
    pub gps_events: u64,
    pub bluetooth_contacts: u64,
}

impl DocumentWriter {
    /// Starts a document with its uuid and device fields (`null` when the device row
    /// is gone).
    pub fn begin(uuid: Uuid, device: Option<&DeviceInfo>) -> io::Result<Self> {
        let mut writer = Self {
            json: Vec::with_capacity(BATCH_SIZE + 1024),
            section: Section::Gps,
            gps_events: 0,
            bluetooth_contacts: 0,
        };
        writer.json.extend_from_slice(b"{\"uuid\":");
        serde_json::to_writer(&mut writer.json, &uuid)?;
        writer.json.extend_from_slice(b",\"device\":");
        serde_json::to_writer(&mut writer.json, &device)?;
        writer.json.extend_from_slice(b",\"gps_events\":[");
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
            self.start_bluetooth();
        }
        let first = self.bluetooth_contacts == 0;
        self.bluetooth_contacts += 1;
        self.element(first, contact)
    }

    /// A batch of JSON, once at least [`BATCH_SIZE`] bytes have gathered.
    pub fn take_batch(&mut self) -> Option<Vec<u8>> {
        if self.json.len() < BATCH_SIZE {
            return None;
        }
        Some(std::mem::replace(
            &mut self.json,
            Vec::with_capacity(BATCH_SIZE + 1024),
        ))
    }

    pub fn finish(mut self) -> FinishedDocument {
        if self.section == Section::Gps {
            self.start_bluetooth();
        }
        self.json.extend_from_slice(b"]}");
        FinishedDocument {
            last_batch: self.json,
            gps_events: self.gps_events,
            bluetooth_contacts: self.bluetooth_contacts,
        }
    }

    fn start_bluetooth(&mut self) {
        self.section = Section::Bluetooth;
        self.json.extend_from_slice(b"],\"bluetooth_contacts\":[");
    }

    fn element(&mut self, first: bool, value: &impl Serialize) -> io::Result<()> {
        if !first {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, value)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    use super::*;

    fn time(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    fn parse(doc: FinishedDocument, mut earlier: Vec<Vec<u8>>) -> Value {
        earlier.push(doc.last_batch);
        serde_json::from_slice(&earlier.concat()).unwrap()
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
        let mut writer = DocumentWriter::begin(uuid, Some(&device)).unwrap();
        let mut batches = Vec::new();
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
            batches.extend(writer.take_batch());
        }
        writer
            .bluetooth_contact(&BluetoothContact {
                paired_time: time("2020-04-16T09:00:00Z"),
                rssi: Some(-70),
                tx_power: None,
            })
            .unwrap();
        let doc = writer.finish();
        assert_eq!((doc.gps_events, doc.bluetooth_contacts), (3, 1));

        let value = parse(doc, batches);
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
        let writer = DocumentWriter::begin(Uuid::nil(), None).unwrap();
        let value = parse(writer.finish(), Vec::new());
        assert_eq!(
            value,
            json!({"uuid": "00000000-0000-0000-0000-000000000000", "device": null,
                   "gps_events": [], "bluetooth_contacts": []})
        );
    }
}
