//! Deflates a document once, as it is written, and cuts the compressed bytes into
//! fixed-size chunks; keeps the CRC-32 and sizes a zip entry needs.

use std::io::{self, Write};

use bytes::{BufMut, Bytes, BytesMut};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use tokio::task::JoinHandle;

/// Sizes and checksum of a finished document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflated {
    pub crc32: u32,
    pub uncompressed_size: u64,
    pub compressed_size: u64,
}

/// A raw-deflate stream whose output is handed out in chunks of `chunk_size` bytes.
/// It holds at most about one chunk of compressed output.
pub struct ChunkedDeflate {
    encoder: DeflateEncoder<bytes::buf::Writer<BytesMut>>,
    crc: crc32fast::Hasher,
    uncompressed: u64,
    handed_out: u64,
    chunk_size: usize,
}

impl ChunkedDeflate {
    pub fn new(chunk_size: usize, level: u32) -> Self {
        let sink = BytesMut::with_capacity(chunk_size * 2).writer();
        Self {
            encoder: DeflateEncoder::new(sink, Compression::new(level)),
            crc: crc32fast::Hasher::new(),
            uncompressed: 0,
            handed_out: 0,
            chunk_size: chunk_size.max(1),
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.uncompressed += data.len() as u64;
        self.encoder.write_all(data)
    }

    /// A full chunk, when the compressed output has reached one.
    pub fn take_chunk(&mut self) -> Option<Bytes> {
        let buffered = self.encoder.get_mut().get_mut();
        if buffered.len() < self.chunk_size {
            return None;
        }
        self.handed_out += self.chunk_size as u64;
        Some(buffered.split_to(self.chunk_size).freeze())
    }

    /// Ends the stream: the remaining chunks (the last one may be short) and the
    /// document's checksum and sizes.
    pub fn finish(self) -> io::Result<(Vec<Bytes>, Deflated)> {
        let mut rest = self.encoder.finish()?.into_inner().freeze();
        let compressed_size = self.handed_out + rest.len() as u64;
        let mut chunks = Vec::new();
        while rest.len() > self.chunk_size {
            chunks.push(rest.split_to(self.chunk_size));
        }
        if !rest.is_empty() {
            chunks.push(rest);
        }
        let summary = Deflated {
            crc32: self.crc.finalize(),
            uncompressed_size: self.uncompressed,
            compressed_size,
        };
        Ok((chunks, summary))
    }
}

/// A [`ChunkedDeflate`] that compresses each batch on a blocking thread, so that
/// deflating one batch overlaps with reading and encoding the rows of the next:
/// on a machine with two cores that is most of the export's work done twice as fast.
/// At most one batch is in flight.
pub struct BackgroundDeflate {
    idle: Option<ChunkedDeflate>,
    running: Option<JoinHandle<(ChunkedDeflate, io::Result<()>)>>,
}

impl BackgroundDeflate {
    pub fn new(chunk_size: usize, level: u32) -> Self {
        Self {
            idle: Some(ChunkedDeflate::new(chunk_size, level)),
            running: None,
        }
    }

    /// Waits for the batch in flight, starts compressing `batch`, and answers the
    /// chunks the previous batch completed.
    pub async fn write(&mut self, batch: Vec<u8>) -> io::Result<Vec<Bytes>> {
        let (mut stream, chunks) = self.settle().await?;
        self.running = Some(tokio::task::spawn_blocking(move || {
            let written = stream.write(&batch);
            (stream, written)
        }));
        Ok(chunks)
    }

    /// Compresses the last batch and ends the stream: the remaining chunks and the
    /// document's checksum and sizes.
    pub async fn finish(&mut self, last: Vec<u8>) -> io::Result<(Vec<Bytes>, Deflated)> {
        let (mut stream, mut chunks) = self.settle().await?;
        let (rest, deflated) = tokio::task::spawn_blocking(move || {
            stream.write(&last)?;
            stream.finish()
        })
        .await
        .map_err(io::Error::other)??;
        chunks.extend(rest);
        Ok((chunks, deflated))
    }

    /// The stream once no batch is in flight, with the full chunks it holds.
    async fn settle(&mut self) -> io::Result<(ChunkedDeflate, Vec<Bytes>)> {
        let mut stream = match (self.idle.take(), self.running.take()) {
            (Some(stream), _) => stream,
            (None, Some(running)) => {
                let (stream, written) = running.await.map_err(io::Error::other)?;
                written?;
                stream
            }
            (None, None) => {
                return Err(io::Error::other(
                    "the deflate stream was lost to an earlier failure",
                ));
            }
        };
        let chunks = std::iter::from_fn(|| stream.take_chunk()).collect();
        Ok((stream, chunks))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn join_and_inflate(chunks: &[Bytes]) -> (Vec<u8>, Vec<u8>) {
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&joined[..])
            .read_to_end(&mut inflated)
            .unwrap();
        (joined, inflated)
    }

    fn deflate_all(data: &[u8], chunk_size: usize) -> (Vec<Bytes>, Deflated) {
        let mut stream = ChunkedDeflate::new(chunk_size, 6);
        let mut chunks = Vec::new();
        for piece in data.chunks(777) {
            stream.write(piece).unwrap();
            chunks.extend(stream.take_chunk());
        }
        let (rest, summary) = stream.finish().unwrap();
        chunks.extend(rest);
        (chunks, summary)
    }

    #[test]
    fn chunks_inflate_back_to_the_input() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i * 7919 % 251).to_le_bytes())
            .collect();
        let (chunks, summary) = deflate_all(&data, 4096);

        let (joined, inflated) = join_and_inflate(&chunks);
        assert_eq!(inflated, data);
        assert_eq!(summary.compressed_size, joined.len() as u64);
        assert_eq!(summary.uncompressed_size, data.len() as u64);
        assert_eq!(summary.crc32, crc32fast::hash(&data));
    }

    #[test]
    fn every_chunk_but_the_last_is_full() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i ^ (i >> 3)).to_le_bytes())
            .collect();
        let (chunks, _) = deflate_all(&data, 1000);
        assert!(chunks.len() > 2);
        let (last, full) = chunks.split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == 1000));
        assert!(!last.is_empty() && last.len() <= 1000);
    }

    #[test]
    fn an_empty_document_is_one_short_chunk() {
        let (chunks, summary) = deflate_all(b"", 1000);
        assert_eq!(chunks.len(), 1);
        assert_eq!(summary.uncompressed_size, 0);
        assert_eq!(summary.crc32, 0);
    }

    #[tokio::test]
    async fn background_batches_give_the_same_stream() {
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i % 977).to_le_bytes())
            .collect();
        let mut background = BackgroundDeflate::new(4096, 6);
        let mut chunks = Vec::new();
        let mut batches = data.chunks(50_000).map(<[u8]>::to_vec).collect::<Vec<_>>();
        let last = batches.pop().unwrap();
        for batch in batches {
            chunks.extend(background.write(batch).await.unwrap());
        }
        let (rest, summary) = background.finish(last).await.unwrap();
        chunks.extend(rest);

        let (joined, inflated) = join_and_inflate(&chunks);
        assert_eq!(inflated, data);
        assert_eq!(summary.crc32, crc32fast::hash(&data));
        assert_eq!(summary.compressed_size, joined.len() as u64);
        let (_, full) = chunks.split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == 4096));
    }
}
