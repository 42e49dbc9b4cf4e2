//! Criterion benchmarks of the hot paths, each reporting throughput:
//!
//! - `encode`: GPS and Bluetooth rows into the device document's JSON;
//! - `deflate`: that JSON through the chunked deflate stream at the chosen level;
//! - `framing`: building the zip layout of a request with 200 devices, and mapping
//!   a byte range onto framing bytes and chunk reads.
//!
//! Run with `cargo bench --bench hot_paths`; add `-- encode` (or `deflate`,
//! `framing`) to run one group. Figures land in `target/criterion/`.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use insight::archive::{Entry, Layout, Method, RangeRequest, parse_range};
use insight::export::DEFLATE_LEVEL;
use insight::export::deflate::ChunkedDeflate;
use insight::export::document::DocumentWriter;
use insight::source::rows::{BluetoothContact, DeviceInfo, GpsEvent};
use uuid::Uuid;

const GPS_ROWS: usize = 20_000;
const CONTACTS: usize = 5_000;

fn at(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(1_585_699_200 + seconds, (seconds % 7) as u32 * 250_000_000)
}

fn gps_rows() -> Vec<GpsEvent> {
    (0..GPS_ROWS as i64)
        .map(|i| GpsEvent {
            time_from: at(i * 60),
            time_to: at(i * 60 + 30),
            latitude: Some(59.9 + i as f64 * 1.3e-5),
            longitude: Some(10.7 - i as f64 * 0.7e-5),
            accuracy: Some(5.0 + (i % 40) as f32 * 0.5),
            speed: (i % 9 != 0).then_some((i % 30) as f32 * 0.1),
            speed_accuracy: Some(0.4),
            altitude: Some(20.0 + (i % 100) as f32),
            altitude_accuracy: Some(3.0),
        })
        .collect()
}

fn contacts() -> Vec<BluetoothContact> {
    (0..CONTACTS as i64)
        .map(|i| BluetoothContact {
            paired_time: at(i * 97),
            rssi: Some(-40 - (i % 60) as i32),
            tx_power: (i % 5 != 0).then_some(12),
        })
        .collect()
}

fn device() -> DeviceInfo {
    DeviceInfo {
        platform: Some("android".into()),
        os_version: Some("14".into()),
        app_version: Some("1.2.0".into()),
        model: Some("Pixel 7".into()),
        created_at: at(0),
    }
}

/// The document's JSON, batches joined.
fn encode(gps: &[GpsEvent], contacts: &[BluetoothContact], device: &DeviceInfo) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = DocumentWriter::begin(Uuid::nil(), Some(device)).expect("begin");
    for event in gps {
        writer.gps_event(event).expect("gps");
        if let Some(batch) = writer.take_batch() {
            out.extend_from_slice(&batch);
        }
    }
    for contact in contacts {
        writer.bluetooth_contact(contact).expect("contact");
    }
    out.extend_from_slice(&writer.finish().last_batch);
    out
}

fn bench_encode(c: &mut Criterion) {
    let (gps, contacts, device) = (gps_rows(), contacts(), device());
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements((GPS_ROWS + CONTACTS) as u64));
    group.bench_function("device document rows", |b| {
        b.iter(|| black_box(encode(&gps, &contacts, &device)))
    });
    group.finish();
}

fn bench_deflate(c: &mut Criterion) {
    let json = encode(&gps_rows(), &contacts(), &device());
    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.sample_size(20);
    group.bench_function(format!("level {DEFLATE_LEVEL}, 128 KiB batches"), |b| {
        b.iter(|| {
            let mut stream = ChunkedDeflate::new(256 * 1024, DEFLATE_LEVEL);
            for batch in json.chunks(128 * 1024) {
                stream.write(batch).expect("deflate");
                while stream.take_chunk().is_some() {}
            }
            black_box(stream.finish().expect("finish"))
        })
    });
    group.finish();
}

fn entries(devices: usize) -> Vec<Entry> {
    let modified = at(0).unwrap_or_default();
    let mut entries: Vec<Entry> = (0..devices)
        .map(|i| Entry {
            name: format!("{}.json", Uuid::from_u128(i as u128 + 1)),
            method: Method::Deflated,
            crc32: i as u32,
            compressed_size: 3_000_000 + i as u64,
            uncompressed_size: 18_000_000 + i as u64,
            modified,
        })
        .collect();
    entries.push(Entry {
        name: "manifest.json".into(),
        method: Method::Stored,
        crc32: 7,
        compressed_size: 20_000,
        uncompressed_size: 20_000,
        modified,
    });
    entries
}

fn bench_framing(c: &mut Criterion) {
    let entries = entries(200);
    let layout = Layout::new(&entries).expect("layout");
    let len = layout.len();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("layout of 200 devices", |b| {
        b.iter(|| black_box(Layout::new(black_box(&entries)).expect("layout")))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("map a range onto pieces", |b| {
        b.iter_batched(
            || format!("bytes={}-{}", len / 3, len / 3 + 10_000_000),
            |header| match parse_range(Some(&header), len) {
                RangeRequest::Partial(range) => black_box(layout.pieces(range).count()),
                _ => 0,
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_encode, bench_deflate, bench_framing);
criterion_main!(benches);
