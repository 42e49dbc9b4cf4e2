//! One attempt at one request: every device not yet recorded is exported in order.

use bytes::Bytes;
use futures_util::TryStreamExt;
use sqlx::PgConnection;
use uuid::Uuid;

use super::DEFLATE_LEVEL;
use super::deflate::BackgroundDeflate;
use super::document::DocumentWriter;
use crate::source::rows;
use crate::store::{EntryRecord, Lease, StoreError};

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading source rows: {0}")]
    Source(#[from] sqlx::Error),
    #[error("storing the export: {0}")]
    Store(#[from] StoreError),
    #[error("encoding a document: {0}")]
    Encode(#[from] std::io::Error),
}

impl ExportError {
    /// True when the lease was lost: another worker (or a delete) owns the request
    /// now, so this attempt neither succeeded nor failed.
    pub fn is_fenced(&self) -> bool {
        matches!(self, ExportError::Store(StoreError::Fenced))
    }
}

/// What one attempt wrote, for logs and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportTotals {
    pub devices: usize,
    pub events: u64,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

/// Exports every device of the lease's request that has no entry yet.
pub async fn export_request(
    lease: &Lease,
    conn: &mut PgConnection,
    recorded: &[usize],
    chunk_size: usize,
) -> Result<ExportTotals, ExportError> {
    let request = lease.request();
    let mut totals = ExportTotals::default();
    for (index, &uuid) in request.devices.iter().enumerate() {
        if recorded.contains(&index) {
            continue;
        }
        let entry = export_device(lease, conn, index, uuid, chunk_size).await?;
        totals.devices += 1;
        totals.events += entry.gps_events + entry.bluetooth_contacts;
        totals.uncompressed_bytes += entry.uncompressed_size;
        totals.compressed_bytes += entry.compressed_size;
    }
    Ok(totals)
}

/// Streams one device's rows into its document, stores the chunks, then records
/// the entry: until that last step the device is invisible to downloads.
async fn export_device(
    lease: &Lease,
    conn: &mut PgConnection,
    index: usize,
    uuid: Uuid,
    chunk_size: usize,
) -> Result<EntryRecord, ExportError> {
    let window = lease.request().window;
    lease.reset_device(index).await?;
    let mut out = DeviceOutput {
        lease,
        index,
        deflate: BackgroundDeflate::new(chunk_size, DEFLATE_LEVEL),
        stored: 0,
    };

    let device = rows::device_info(conn, uuid).await?;
    let mut doc = DocumentWriter::begin(uuid, device.as_ref())?;

    let mut gps = rows::gps_events(conn, uuid, window);
    while let Some(event) = gps.try_next().await? {
        doc.gps_event(&event)?;
        out.pass_on(&mut doc).await?;
    }
    drop(gps);

    let mut contacts = rows::bluetooth_contacts(conn, uuid, window);
    while let Some(contact) = contacts.try_next().await? {
        doc.bluetooth_contact(&contact)?;
        out.pass_on(&mut doc).await?;
    }
    drop(contacts);

    let finished = doc.finish();
    let (chunks, deflated) = out.deflate.finish(finished.last_batch).await?;
    out.store(chunks).await?;
    let entry = EntryRecord {
        uuid,
        crc32: deflated.crc32,
        compressed_size: deflated.compressed_size,
        uncompressed_size: deflated.uncompressed_size,
        chunk_size: chunk_size as u64,
        chunks: out.stored,
        gps_events: finished.gps_events,
        bluetooth_contacts: finished.bluetooth_contacts,
    };
    lease.record_entry(index, &entry).await?;
    Ok(entry)
}

/// Where a device's document goes: deflated in the background, stored in chunks.
struct DeviceOutput<'a> {
    lease: &'a Lease,
    index: usize,
    deflate: BackgroundDeflate,
    stored: u64,
}

impl DeviceOutput<'_> {
    /// Hands a full batch of JSON to the deflate stream, storing what it completed.
    async fn pass_on(&mut self, doc: &mut DocumentWriter) -> Result<(), ExportError> {
        if let Some(batch) = doc.take_batch() {
            let chunks = self.deflate.write(batch).await?;
            self.store(chunks).await?;
        }
        Ok(())
    }

    async fn store(&mut self, chunks: Vec<Bytes>) -> Result<(), StoreError> {
        for chunk in chunks {
            self.lease
                .store_chunk(self.index, self.stored, chunk)
                .await?;
            self.stored += 1;
        }
        Ok(())
    }
}
