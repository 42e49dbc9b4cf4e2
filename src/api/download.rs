//! Serving a ready export: the zip is framed on the fly from the manifest, and each
//! device's stored chunks are streamed from Redis with a small, bounded read-ahead.
//! The length, `ETag` and every byte range are known before any chunk is read.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::archive::{self, Entry, Layout, Method as ZipMethod, Piece, RangeRequest};
use crate::domain::RequestId;
use crate::source::download_log::DownloadLog;
use crate::store::{EntryRecord, RequestRecord, Store};

/// Chunks fetched ahead of the one being sent. Two hide one Redis round trip per
/// chunk; more would help on a high-latency Redis at the cost of memory per client.
const READ_AHEAD: usize = 2;

/// A ready export, framed.
pub struct Archive {
    request_id: RequestId,
    layout: Layout,
    sources: Vec<Source>,
    etag: String,
    last_modified: DateTime<Utc>,
}

/// Where an archive entry's data comes from.
enum Source {
    /// A device document stored in chunks under the device's key.
    Device { index: usize, entry: EntryRecord },
    /// A small document built at serve time (`manifest.json`).
    Inline(Bytes),
}

/// One step of a response body.
enum Part {
    Bytes(Bytes),
    Chunk {
        device: usize,
        chunk: u64,
        expected_len: u64,
        skip: usize,
        take: usize,
    },
}

impl Archive {
    /// Frames the recorded entries of a ready request, device documents first in
    /// device order, then `manifest.json`.
    pub fn build(
        request: &RequestRecord,
        entries: Vec<(usize, EntryRecord)>,
    ) -> Result<Self, ApiError> {
        if entries.len() != request.devices.len() {
            tracing::error!(
                request_id = %request.id,
                recorded = entries.len(),
                devices = request.devices.len(),
                "a ready export lacks device entries"
            );
            return Err(ApiError::Internal);
        }
        let modified = request.ready_at.unwrap_or(request.created_at);
        let manifest = manifest_json(request, &entries, modified);

        let mut zip_entries = Vec::with_capacity(entries.len() + 1);
        let mut sources = Vec::with_capacity(entries.len() + 1);
        for (index, entry) in entries {
            zip_entries.push(Entry {
                name: format!("{}.json", entry.uuid),
                method: ZipMethod::Deflated,
                crc32: entry.crc32,
                compressed_size: entry.compressed_size,
                uncompressed_size: entry.uncompressed_size,
                modified,
            });
            sources.push(Source::Device { index, entry });
        }
        zip_entries.push(Entry {
            name: "manifest.json".to_owned(),
            method: ZipMethod::Stored,
            crc32: crc32fast::hash(&manifest),
            compressed_size: manifest.len() as u64,
            uncompressed_size: manifest.len() as u64,
            modified,
        });
        sources.push(Source::Inline(manifest));

        let layout = Layout::new(&zip_entries).map_err(|e| {
            tracing::error!(request_id = %request.id, error = %e, "cannot frame the archive");
            ApiError::Internal
        })?;
        Ok(Self {
            request_id: request.id,
            etag: etag(request.id, &zip_entries, layout.len()),
            layout,
            sources,
            last_modified: modified,
        })
    }

    pub fn len(&self) -> u64 {
        self.layout.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The chunk reads and framing bytes that make up `range`, in order.
    fn parts(self: &Arc<Self>, range: std::ops::Range<u64>) -> impl Iterator<Item = Part> + use<> {
        let archive = Arc::clone(self);
        self.layout
            .pieces(range)
            .flat_map(move |piece| archive.parts_of(piece))
    }

    fn parts_of(&self, piece: Piece) -> Vec<Part> {
        let (entry, offset, len) = match piece {
            Piece::Literal(bytes) => return vec![Part::Bytes(bytes)],
            Piece::Data { entry, offset, len } => (entry, offset, len),
        };
        match &self.sources[entry] {
            Source::Inline(bytes) => {
                vec![Part::Bytes(
                    bytes.slice(offset as usize..(offset + len) as usize),
                )]
            }
            Source::Device { index, entry } => chunk_parts(*index, entry, offset, len),
        }
    }
}

/// The chunk reads covering bytes `[offset, offset + len)` of a device's data.
fn chunk_parts(device: usize, entry: &EntryRecord, offset: u64, len: u64) -> Vec<Part> {
    let size = entry.chunk_size.max(1);
    let end = offset + len;
    (offset / size..end.div_ceil(size))
        .map(|chunk| {
            let start = chunk * size;
            let expected_len = size.min(entry.compressed_size - start);
            let from = offset.max(start) - start;
            let to = end.min(start + expected_len) - start;
            Part::Chunk {
                device,
                chunk,
                expected_len,
                skip: from as usize,
                take: (to - from) as usize,
            }
        })
        .collect()
}

fn manifest_json(
    request: &RequestRecord,
    entries: &[(usize, EntryRecord)],
    modified: DateTime<Utc>,
) -> Bytes {
    let files: Vec<_> = entries
        .iter()
        .map(|(_, e)| {
            json!({
                "name": format!("{}.json", e.uuid),
                "uuid": e.uuid,
                "gps_events": e.gps_events,
                "bluetooth_contacts": e.bluetooth_contacts,
                "size": e.uncompressed_size,
            })
        })
        .collect();
    let manifest = json!({
        "request_id": request.id,
        "created_at": request.created_at,
        "ready_at": modified,
        "time_from": request.window.from,
        "time_to": request.window.to,
        "entries": files,
    });
    serde_json::to_vec_pretty(&manifest)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// A strong validator: it changes whenever any byte of the archive could.
fn etag(id: RequestId, entries: &[Entry], len: u64) -> String {
    let mut hash = Sha256::new();
    hash.update(id.to_string().as_bytes());
    hash.update(len.to_be_bytes());
    for entry in entries {
        hash.update(entry.name.as_bytes());
        hash.update(entry.crc32.to_be_bytes());
        hash.update(entry.compressed_size.to_be_bytes());
        hash.update(entry.modified.timestamp().to_be_bytes());
    }
    format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
}

/// Answers a GET or HEAD for a ready request: `200`, `206` or `416`.
pub async fn respond(
    store: &Store,
    download_log: &DownloadLog,
    downloads: &Arc<Semaphore>,
    request: &RequestRecord,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let entries = store.entries(request.id).await?;
    let archive = Arc::new(Archive::build(request, entries)?);
    let len = archive.len();

    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_allows(headers, &archive));
    let (status, range) = match archive::parse_range(range_header, len) {
        RangeRequest::Full => (StatusCode::OK, 0..len),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, range),
        RangeRequest::Unsatisfiable => return Ok(unsatisfiable(&archive)),
    };

    let mut response = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        let slot = DownloadSlot::take(downloads)?;
        let complete = range.end == len;
        Response::new(body(
            store.clone(),
            download_log.clone(),
            slot,
            Arc::clone(&archive),
            range.clone(),
            complete,
        ))
    };
    *response.status_mut() = status;
    let out = response.headers_mut();
    common_headers(out, &archive);
    out.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            out,
            header::CONTENT_RANGE,
            &archive::content_range(&range, len),
        );
    }
    Ok(response)
}

/// `If-Range` lets the range through only when it names this very archive.
fn if_range_allows(headers: &HeaderMap, archive: &Archive) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(validator) => validator.trim() == archive.etag(),
    }
}

fn unsatisfiable(archive: &Archive) -> Response {
    let body = json!({ "message": format!("the range lies outside the archive's {} bytes", archive.len()) });
    let mut response = (StatusCode::RANGE_NOT_SATISFIABLE, axum::Json(body)).into_response();
    let out = response.headers_mut();
    insert(
        out,
        header::CONTENT_RANGE,
        &archive::unsatisfied_range(archive.len()),
    );
    insert(out, header::ETAG, archive.etag());
    response
}

fn common_headers(out: &mut HeaderMap, archive: &Archive) {
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    insert(
        out,
        header::CONTENT_DISPOSITION,
        &format!(
            "attachment; filename=\"insight-{}.zip\"",
            archive.request_id
        ),
    );
    insert(out, header::ETAG, archive.etag());
    insert(
        out,
        header::LAST_MODIFIED,
        &archive
            .last_modified
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The response body: framing bytes and chunks in order, `READ_AHEAD` chunk reads
/// in flight. An error ends the stream with an error, which makes the server abort
/// the connection instead of ending the body: a client never mistakes a truncated
/// archive for a whole one. When the archive's last byte has been handed to the
/// connection, the download is logged.
fn body(
    store: Store,
    download_log: DownloadLog,
    slot: DownloadSlot,
    archive: Arc<Archive>,
    range: std::ops::Range<u64>,
    complete: bool,
) -> Body {
    let id = archive.request_id;
    let mut remaining = range.end - range.start;
    let reads = stream::iter(archive.parts(range))
        .map(move |part| read_part(store.clone(), id, part))
        .buffered(READ_AHEAD)
        .inspect_ok(move |bytes| {
            metrics::counter!("insight_download_bytes_total").increment(bytes.len() as u64);
            remaining = remaining.saturating_sub(bytes.len() as u64);
            if remaining == 0 && complete {
                metrics::counter!("insight_downloads_total").increment(1);
                tracing::info!(request_id = %id, "download complete");
                download_log.completed(id);
            }
        })
        .inspect_err(move |e| {
            tracing::error!(request_id = %id, error = %e, "download aborted");
            metrics::counter!("insight_downloads_aborted_total").increment(1);
        })
        // The slot is given back when the body is dropped: finished, failed or
        // abandoned by its client.
        .map(move |item| {
            let _held = &slot;
            item
        });
    Body::from_stream(reads)
}

/// One of the `INSIGHT_MAX_DOWNLOADS` downloads allowed at once, held by a body
/// for as long as it exists.
struct DownloadSlot {
    _permit: OwnedSemaphorePermit,
}

impl DownloadSlot {
    fn take(downloads: &Arc<Semaphore>) -> Result<Self, ApiError> {
        let permit = Arc::clone(downloads).try_acquire_owned().map_err(|_| {
            metrics::counter!("insight_downloads_refused_total").increment(1);
            ApiError::TooManyDownloads
        })?;
        metrics::gauge!("insight_downloads_open").increment(1.0);
        Ok(Self { _permit: permit })
    }
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        metrics::gauge!("insight_downloads_open").decrement(1.0);
    }
}

async fn read_part(store: Store, id: RequestId, part: Part) -> io::Result<Bytes> {
    let (device, chunk, expected_len, skip, take) = match part {
        Part::Bytes(bytes) => return Ok(bytes),
        Part::Chunk {
            device,
            chunk,
            expected_len,
            skip,
            take,
        } => (device, chunk, expected_len, skip, take),
    };
    let bytes = store
        .chunk(id, device, chunk)
        .await
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other(format!("chunk {chunk} of device {device} is missing")))?;
    if bytes.len() as u64 != expected_len {
        return Err(io::Error::other(format!(
            "chunk {chunk} of device {device} holds {} bytes, not {expected_len}",
            bytes.len()
        )));
    }
    // A copy, not a slice: the Redis client hands out replies as views into its
    // read buffer, and a view keeps the whole buffer alive for as long as hyper
    // queues it. Copying costs about 3 % more CPU per byte served and saves about
    // a third of a slow download's memory (measured with the load test's 500 slow
    // readers: 662 MiB of RSS with views, 448 MiB with copies).
    Ok(Bytes::copy_from_slice(&bytes[skip..skip + take]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(compressed_size: u64, chunk_size: u64) -> EntryRecord {
        EntryRecord {
            uuid: uuid::Uuid::nil(),
            crc32: 0,
            compressed_size,
            uncompressed_size: compressed_size * 6,
            chunk_size,
            chunks: compressed_size.div_ceil(chunk_size),
            gps_events: 0,
            bluetooth_contacts: 0,
        }
    }

    fn spans(parts: &[Part]) -> Vec<(u64, u64, usize, usize)> {
        parts
            .iter()
            .map(|p| match p {
                Part::Chunk {
                    chunk,
                    expected_len,
                    skip,
                    take,
                    ..
                } => (*chunk, *expected_len, *skip, *take),
                Part::Bytes(_) => panic!("bytes in a chunk span"),
            })
            .collect()
    }

    #[test]
    fn a_range_reads_only_the_chunks_it_covers() {
        let entry = entry(2_500, 1_000);
        assert_eq!(
            spans(&chunk_parts(0, &entry, 0, 2_500)),
            [(0, 1000, 0, 1000), (1, 1000, 0, 1000), (2, 500, 0, 500)]
        );
        assert_eq!(
            spans(&chunk_parts(0, &entry, 999, 2)),
            [(0, 1000, 999, 1), (1, 1000, 0, 1)]
        );
        assert_eq!(
            spans(&chunk_parts(0, &entry, 2_100, 400)),
            [(2, 500, 100, 400)]
        );
        assert_eq!(
            spans(&chunk_parts(0, &entry, 1_000, 1_000)),
            [(1, 1000, 0, 1000)]
        );
    }
}
