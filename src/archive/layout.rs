//! Where every byte of an archive comes from: the framing computed once per download,
//! and the pieces (framing or stored data) that make up any byte range of it.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::entry::{self, Entry, LayoutError};
use super::records::{self, Record};

/// The framing of one archive: all bytes that are not stored data, and where the
/// stored data of each entry goes. Building it is deterministic: the same entries
/// always give the same archive.
///
/// Cloning is cheap (the buffers are shared), so a download stream can own one.
#[derive(Clone)]
pub struct Layout {
    placed: Arc<[Placed]>,

    /// Every local header, back to back.
    locals: Bytes,

    /// The central directory and the end records, which close the archive.
    tail: Bytes,
    tail_at: u64,
}

/// Where one entry sits: its local header at `offset`, then its data.
#[derive(Debug, Clone, Copy)]
struct Placed {
    offset: u64,
    header: (usize, usize),
    data_len: u64,
}

impl Placed {
    fn header_len(&self) -> u64 {
        (self.header.1 - self.header.0) as u64
    }

    fn data_at(&self) -> u64 {
        self.offset + self.header_len()
    }

    fn end(&self) -> u64 {
        self.data_at() + self.data_len
    }
}

/// One contiguous part of a byte range of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Framing bytes, already cut to the range.
    Literal(Bytes),
    /// Bytes `[offset, offset + len)` of the stored data of entry number `entry`.
    Data {
        /// Index of the entry in the slice the layout was built from.
        entry: usize,
        /// First byte wanted, counted from the start of the entry's data.
        offset: u64,
        /// Number of bytes wanted; never zero.
        len: u64,
    },
}

impl Layout {
    /// Frames `entries`, in this order, as one archive.
    pub fn new(entries: &[Entry]) -> Result<Layout, LayoutError> {
        let name_lens = check_all(entries)?;

        let mut locals = BytesMut::with_capacity(estimated_framing_len(entries));
        let mut placed = Vec::with_capacity(entries.len());
        let mut offset = 0u64;

        for (entry, &name_len) in entries.iter().zip(&name_lens) {
            let record = Record {
                entry,
                name_len,
                offset,
            };
            let start = locals.len();
            record.put_local(&mut locals);
            placed.push(Placed {
                offset,
                header: (start, locals.len()),
                data_len: entry.compressed_size,
            });

            let data_at = checked_add(offset, record.local_len() as u64)?;
            offset = checked_add(data_at, entry.compressed_size)?;
        }

        let tail = central_directory(entries, &name_lens, &placed, offset);
        checked_add(offset, tail.len() as u64)?;

        Ok(Layout {
            placed: placed.into(),
            locals: locals.freeze(),
            tail: tail.freeze(),
            tail_at: offset,
        })
    }

    /// The exact length of the archive in bytes.
    pub fn len(&self) -> u64 {
        self.tail_at + self.tail.len() as u64
    }

    /// Never true: even an archive without entries holds its end record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces that make up `range` of the archive, in order. Filling each `Data`
    /// piece from its entry's stored data and concatenating gives exactly that slice.
    /// The part of `range` beyond the end of the archive is ignored.
    ///
    /// Framing bytes are shared with the layout, not copied.
    pub fn pieces(&self, range: Range<u64>) -> Pieces {
        let end = range.end.min(self.len());
        let first_entry = self.placed.partition_point(|p| p.end() <= range.start);

        Pieces {
            layout: self.clone(),
            part: 2 * first_entry,
            pos: range.start,
            end,
        }
    }

    /// Which part of the archive number `part` is: entry `n` has its header as part
    /// `2n` and its data as part `2n + 1`; the tail follows the last entry's data.
    fn part(&self, part: usize) -> Option<Part> {
        let entry = part / 2;

        match (self.placed.get(entry), part % 2) {
            (Some(placed), 0) => Some(Part::Header(*placed)),
            (Some(placed), _) => Some(Part::Data(entry, *placed)),
            (None, _) => (part == 2 * self.placed.len()).then_some(Part::Tail),
        }
    }

    /// Where a part lies in the archive.
    fn span(&self, part: Part) -> Range<u64> {
        match part {
            Part::Header(placed) => placed.offset..placed.data_at(),
            Part::Data(_, placed) => placed.data_at()..placed.end(),
            Part::Tail => self.tail_at..self.len(),
        }
    }

    /// Bytes `within` (counted from the part's start) of a part.
    fn cut(&self, part: Part, within: Range<u64>) -> Piece {
        let bytes = to_index(within.start)..to_index(within.end);

        match part {
            Part::Header(placed) => {
                let at = placed.header.0;
                Piece::Literal(self.locals.slice(at + bytes.start..at + bytes.end))
            }
            Part::Data(entry, _) => Piece::Data {
                entry,
                offset: within.start,
                len: within.end - within.start,
            },
            Part::Tail => Piece::Literal(self.tail.slice(bytes)),
        }
    }
}

/// One contiguous part of the archive that a piece can come from.
#[derive(Debug, Clone, Copy)]
enum Part {
    Header(Placed),
    Data(usize, Placed),
    Tail,
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("entries", &self.placed.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The pieces of one byte range, from [`Layout::pieces`]. Owns a (shared) copy of the
/// layout, so it can live in a response stream.
#[derive(Debug, Clone)]
pub struct Pieces {
    layout: Layout,
    part: usize,
    pos: u64,
    end: u64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        while self.pos < self.end {
            let part = self.layout.part(self.part)?;
            let span = self.layout.span(part);
            self.part += 1;

            // Empty parts (an empty entry's data) and parts before the range give nothing.
            if span.end <= self.pos {
                continue;
            }

            let stop = span.end.min(self.end);
            let piece = self
                .layout
                .cut(part, self.pos - span.start..stop - span.start);
            self.pos = stop;
            return Some(piece);
        }

        None
    }
}

/// Checks every entry and that names are unique; returns the names' lengths.
fn check_all(entries: &[Entry]) -> Result<Vec<u16>, LayoutError> {
    let mut seen = HashSet::with_capacity(entries.len());

    entries
        .iter()
        .map(|entry| {
            let len = entry::check(entry)?;

            if !seen.insert(entry.name.as_str()) {
                return Err(LayoutError::DuplicateName {
                    name: entry.name.clone(),
                });
            }
            Ok(len)
        })
        .collect()
}

/// The central directory for entries placed as in `placed`, starting at `cd_offset`,
/// followed by the end records.
fn central_directory(
    entries: &[Entry],
    name_lens: &[u16],
    placed: &[Placed],
    cd_offset: u64,
) -> BytesMut {
    let records = entries
        .iter()
        .zip(name_lens)
        .zip(placed)
        .map(|((entry, &name_len), placed)| Record {
            entry,
            name_len,
            offset: placed.offset,
        });

    let size: usize = records.clone().map(|r| r.central_len()).sum();
    let mut tail = BytesMut::with_capacity(size + 22 + 56 + 20);
    records.for_each(|record| record.put_central(&mut tail));

    records::put_end_records(&mut tail, entries.len() as u64, cd_offset, size as u64);
    tail
}

/// Room for the local headers, so the buffer is allocated once.
fn estimated_framing_len(entries: &[Entry]) -> usize {
    entries.iter().map(|e| 30 + e.name.len() + 20 + 9).sum()
}

fn checked_add(a: u64, b: u64) -> Result<u64, LayoutError> {
    a.checked_add(b).ok_or(LayoutError::TooLarge)
}

/// Positions inside framing buffers, which are in memory and so fit a `usize`.
fn to_index(position: u64) -> usize {
    usize::try_from(position).expect("framing positions fit in memory")
}
