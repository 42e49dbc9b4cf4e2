//! A small zip parser for the tests, written from APPNOTE.TXT independently of the
//! writer. It reads only framing bytes, so archives with multi-gigabyte entries can be
//! checked without their data ever existing.

use std::ops::Range;

use bytes::Bytes;
use chrono::{Datelike, Timelike};

use crate::archive::{Entry, Layout, Method, Piece};

const MARK_32: u64 = 0xFFFF_FFFF;

/// The framing bytes of an archive at their positions, and where data would go.
pub struct Framing {
    pub len: u64,
    literals: Vec<(u64, Bytes)>,
    data: Vec<(u64, usize, u64)>,
}

impl Framing {
    pub fn of(layout: &Layout) -> Framing {
        let mut framing = Framing {
            len: layout.len(),
            literals: Vec::new(),
            data: Vec::new(),
        };
        let mut pos = 0;

        for piece in layout.pieces(0..layout.len()) {
            match piece {
                Piece::Literal(bytes) => {
                    let len = bytes.len() as u64;
                    framing.literals.push((pos, bytes));
                    pos += len;
                }
                Piece::Data { entry, offset, len } => {
                    assert_eq!(offset, 0, "a whole-archive walk gives whole entries");
                    framing.data.push((pos, entry, len));
                    pos += len;
                }
            }
        }

        assert_eq!(pos, framing.len, "pieces cover the archive exactly");
        framing
    }

    /// `len` framing bytes at `pos`, which must lie inside one literal piece.
    pub fn at(&self, pos: u64, len: u64) -> &[u8] {
        let index = self.literals.partition_point(|(start, _)| *start <= pos);
        let (start, bytes) = &self.literals[index.checked_sub(1).expect("framing at pos")];
        let from = (pos - start) as usize;

        assert!(
            from + len as usize <= bytes.len(),
            "{len} bytes at {pos} are framing"
        );
        &bytes[from..from + len as usize]
    }

    /// Bytes `range` of the archive, with data bytes made up by `fill(entry, offset)`,
    /// assembled from the whole-archive walk rather than from a range query.
    pub fn window(&self, range: Range<u64>, fill: impl Fn(usize, u64) -> u8) -> Vec<u8> {
        range.map(|pos| self.byte(pos, &fill)).collect()
    }

    fn byte(&self, pos: u64, fill: &impl Fn(usize, u64) -> u8) -> u8 {
        let data = self
            .data
            .iter()
            .find(|(at, _, len)| (*at..at + len).contains(&pos));
        match data {
            Some(&(at, entry, _)) => fill(entry, pos - at),
            None => self.at(pos, 1)[0],
        }
    }

    /// Where entry `entry`'s data lies, if it has any.
    fn data_of(&self, entry: usize) -> Option<(u64, usize, u64)> {
        let index = self.data.partition_point(|(_, e, _)| *e < entry);
        self.data
            .get(index)
            .filter(|(_, e, _)| *e == entry)
            .copied()
    }

    /// Where each literal piece starts: every local header, then the central directory.
    pub fn literal_starts(&self) -> Vec<u64> {
        self.literals.iter().map(|(start, _)| *start).collect()
    }
}

/// Little-endian fields, read front to back.
pub struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    pub fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields(bytes)
    }

    pub fn has_more(&self) -> bool {
        !self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take(2).try_into().expect("2 bytes"))
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub id: u16,
    pub data: Vec<u8>,
}

/// What the fixed parts of local and central headers share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    pub version_needed: u16,
    pub flags: u16,
    pub method: u16,
    pub time: u16,
    pub date: u16,
    pub crc: u32,
    pub compressed_32: u32,
    pub uncompressed_32: u32,
    pub name: String,
    pub extras: Vec<Extra>,
}

#[derive(Debug)]
pub struct Local {
    pub common: Common,
    pub len: u64,
}

#[derive(Debug)]
pub struct Central {
    pub made_by: u16,
    pub common: Common,
    pub comment_len: u16,
    pub disk_start: u16,
    pub internal: u16,
    pub external: u32,
    pub offset_32: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct End {
    pub disk: u16,
    pub cd_disk: u16,
    pub count_on_disk: u16,
    pub count: u16,
    pub cd_size: u32,
    pub cd_offset: u32,
    pub comment_len: u16,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Zip64End {
    pub record_len: u64,
    pub made_by: u16,
    pub version_needed: u16,
    pub disk: u32,
    pub cd_disk: u32,
    pub count_on_disk: u64,
    pub count: u64,
    pub cd_size: u64,
    pub cd_offset: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Locator {
    pub end_disk: u32,
    pub end_offset: u64,
    pub disks: u32,
}

/// Everything the framing says, each local header read at the offset its central
/// header records.
pub struct Parsed {
    pub locals: Vec<Local>,
    pub centrals: Vec<Central>,
    pub end: End,
    pub zip64: Option<(Zip64End, Locator)>,
    pub cd: Range<u64>,
}

impl Common {
    pub fn extra(&self, id: u16) -> Option<&[u8]> {
        self.extras
            .iter()
            .find(|extra| extra.id == id)
            .map(|extra| extra.data.as_slice())
    }

    fn read(fields: &mut Fields, lens: &mut (u16, u16)) -> Common {
        let version_needed = fields.u16();
        let flags = fields.u16();
        let method = fields.u16();
        let time = fields.u16();
        let date = fields.u16();
        let crc = fields.u32();
        let compressed_32 = fields.u32();
        let uncompressed_32 = fields.u32();
        *lens = (fields.u16(), fields.u16());

        Common {
            version_needed,
            flags,
            method,
            time,
            date,
            crc,
            compressed_32,
            uncompressed_32,
            name: String::new(),
            extras: Vec::new(),
        }
    }

    fn read_name_and_extras(&mut self, fields: &mut Fields, (name, extras): (u16, u16)) {
        self.name = String::from_utf8(fields.take(name.into()).to_vec()).expect("UTF-8 name");

        let mut block = Fields(fields.take(extras.into()));
        while !block.0.is_empty() {
            let id = block.u16();
            let len = block.u16();
            let data = block.take(len.into()).to_vec();
            self.extras.push(Extra { id, data });
        }
    }
}

pub fn parse(framing: &Framing) -> Parsed {
    let end_at = framing.len - 22;
    let end = read_end(framing.at(end_at, 22));
    let zip64 = read_zip64(framing, end_at);

    let count = resolve_16(end.count, zip64.as_ref().map(|z| z.0.count));
    let cd_size = resolve_32(end.cd_size, zip64.as_ref().map(|z| z.0.cd_size));
    let cd_offset = resolve_32(end.cd_offset, zip64.as_ref().map(|z| z.0.cd_offset));

    let centrals = read_central_directory(framing.at(cd_offset, cd_size), count);
    let locals = centrals
        .iter()
        .map(|central| read_local(framing, central.resolved().2))
        .collect();

    Parsed {
        locals,
        centrals,
        end,
        zip64,
        cd: cd_offset..cd_offset + cd_size,
    }
}

fn read_end(bytes: &[u8]) -> End {
    let mut fields = Fields(bytes);
    assert_eq!(
        fields.u32(),
        0x0605_4b50,
        "end of central directory signature"
    );

    End {
        disk: fields.u16(),
        cd_disk: fields.u16(),
        count_on_disk: fields.u16(),
        count: fields.u16(),
        cd_size: fields.u32(),
        cd_offset: fields.u32(),
        comment_len: fields.u16(),
    }
}

fn read_zip64(framing: &Framing, end_at: u64) -> Option<(Zip64End, Locator)> {
    let locator_at = end_at.checked_sub(20)?;
    let mut fields = Fields(framing.at(locator_at, 20));
    if fields.u32() != 0x0706_4b50 {
        return None;
    }

    let locator = Locator {
        end_disk: fields.u32(),
        end_offset: fields.u64(),
        disks: fields.u32(),
    };

    let mut fields = Fields(framing.at(locator.end_offset, 56));
    assert_eq!(fields.u32(), 0x0606_4b50, "zip64 end record signature");

    let record = Zip64End {
        record_len: fields.u64(),
        made_by: fields.u16(),
        version_needed: fields.u16(),
        disk: fields.u32(),
        cd_disk: fields.u32(),
        count_on_disk: fields.u64(),
        count: fields.u64(),
        cd_size: fields.u64(),
        cd_offset: fields.u64(),
    };
    Some((record, locator))
}

fn resolve_16(field: u16, zip64: Option<u64>) -> u64 {
    match field {
        u16::MAX => zip64.expect("a 0xFFFF field needs the zip64 end record"),
        value => u64::from(value),
    }
}

fn resolve_32(field: u32, zip64: Option<u64>) -> u64 {
    match field {
        u32::MAX => zip64.expect("a 0xFFFFFFFF field needs the zip64 end record"),
        value => u64::from(value),
    }
}

fn read_central_directory(bytes: &[u8], count: u64) -> Vec<Central> {
    let mut fields = Fields(bytes);
    let mut centrals = Vec::new();

    while !fields.0.is_empty() {
        centrals.push(read_central(&mut fields));
    }

    assert_eq!(
        centrals.len() as u64,
        count,
        "entry count of the end record"
    );
    centrals
}

fn read_central(fields: &mut Fields) -> Central {
    assert_eq!(fields.u32(), 0x0201_4b50, "central header signature");

    let made_by = fields.u16();
    let mut lens = (0, 0);
    let mut common = Common::read(fields, &mut lens);
    let comment_len = fields.u16();
    let disk_start = fields.u16();
    let internal = fields.u16();
    let external = fields.u32();
    let offset_32 = fields.u32();
    common.read_name_and_extras(fields, lens);
    fields.take(comment_len.into());

    Central {
        made_by,
        common,
        comment_len,
        disk_start,
        internal,
        external,
        offset_32,
    }
}

fn read_local(framing: &Framing, offset: u64) -> Local {
    let mut fields = Fields(framing.at(offset, 30));
    assert_eq!(
        fields.u32(),
        0x0403_4b50,
        "local header signature at {offset}"
    );

    let mut lens = (0, 0);
    let mut common = Common::read(&mut fields, &mut lens);
    let variable = u64::from(lens.0) + u64::from(lens.1);
    common.read_name_and_extras(&mut Fields(framing.at(offset + 30, variable)), lens);

    Local {
        common,
        len: 30 + variable,
    }
}

impl Central {
    /// Uncompressed size, compressed size and local header offset, reading from the
    /// zip64 field exactly those whose 32-bit field is 0xFFFFFFFF, in spec order.
    pub fn resolved(&self) -> (u64, u64, u64) {
        let fields_32 = [
            self.common.uncompressed_32,
            self.common.compressed_32,
            self.offset_32,
        ];
        let marked = fields_32.iter().filter(|&&f| f == u32::MAX).count();
        let extra = self.common.extra(0x0001);

        match extra {
            None => assert_eq!(marked, 0, "{}: marked fields need zip64", self.common.name),
            Some(data) => assert_eq!(data.len(), 8 * marked, "{}: zip64 length", self.common.name),
        }

        let mut zip64 = Fields(extra.unwrap_or_default());
        let [uncompressed, compressed, offset] = fields_32.map(|field| match field {
            u32::MAX => zip64.u64(),
            value => u64::from(value),
        });
        (uncompressed, compressed, offset)
    }
}

impl Local {
    /// Uncompressed and compressed size; a local zip64 field carries both or none.
    pub fn resolved(&self) -> (u64, u64) {
        let common = &self.common;

        match common.extra(0x0001) {
            None => (common.uncompressed_32.into(), common.compressed_32.into()),
            Some(data) => {
                assert_eq!(
                    data.len(),
                    16,
                    "{}: local zip64 holds both sizes",
                    common.name
                );
                assert_eq!(
                    (common.uncompressed_32, common.compressed_32),
                    (u32::MAX, u32::MAX)
                );

                let mut zip64 = Fields(data);
                (zip64.u64(), zip64.u64())
            }
        }
    }
}

/// Checks every field of the framing against the entries it was built from and the
/// zip specification. Returns the parse for further, test-specific checks.
pub fn check(layout: &Layout, entries: &[Entry]) -> Parsed {
    let framing = Framing::of(layout);
    let parsed = parse(&framing);
    let starts = framing.literal_starts();

    assert_eq!(parsed.centrals.len(), entries.len());
    for (i, entry) in entries.iter().enumerate() {
        check_entry(&framing, &parsed, i, entry, starts[i]);
    }

    check_end(&parsed, entries.len() as u64, framing.len);
    assert_eq!(
        starts.last(),
        Some(&parsed.cd.start),
        "central directory starts the tail"
    );
    parsed
}

fn check_entry(framing: &Framing, parsed: &Parsed, i: usize, entry: &Entry, start: u64) {
    let (local, central) = (&parsed.locals[i], &parsed.centrals[i]);
    let (uncompressed, compressed, offset) = central.resolved();

    // The recorded offset is where the layout actually put the local header.
    assert_eq!(offset, start, "{}: local header offset", entry.name);
    assert_eq!(local.resolved(), (uncompressed, compressed));
    assert_eq!(
        (uncompressed, compressed),
        (entry.uncompressed_size, entry.compressed_size)
    );

    check_common(&local.common, entry);
    check_common(&central.common, entry);
    check_zip64_use(local, central, entry, offset);
    check_central_only_fields(central);

    // The data follows the local header, and the next structure follows the data.
    let data_at = offset + local.len;
    let expected_data = (compressed > 0).then_some((data_at, i, compressed));
    let data = framing.data_of(i);
    assert_eq!(data, expected_data, "{}: data placement", entry.name);

    let next = parsed
        .locals
        .get(i + 1)
        .map_or(parsed.cd.start, |_| parsed.centrals[i + 1].resolved().2);
    assert_eq!(
        next,
        data_at + compressed,
        "{}: what follows the data",
        entry.name
    );
}

fn check_common(common: &Common, entry: &Entry) {
    let method = match entry.method {
        Method::Stored => 0,
        Method::Deflated => 8,
    };

    assert_eq!(common.name, entry.name);
    assert_eq!(common.flags, 1 << 11, "UTF-8 names, no data descriptor");
    assert_eq!(common.method, method);
    assert_eq!(common.crc, entry.crc32);
    check_dos_time(common, entry);

    // The extended timestamp: flags (mtime only), then Unix seconds.
    let timestamp = common.extra(0x5455).expect("extended timestamp");
    let mut fields = Fields(timestamp);
    assert_eq!(timestamp.len(), 5);
    assert_eq!(fields.u8(), 1);
    assert_eq!(
        i64::from(fields.u32()),
        entry.modified.timestamp().clamp(0, i64::from(u32::MAX))
    );
}

fn check_dos_time(common: &Common, entry: &Entry) {
    let modified = entry.modified;
    if !(1980..=2107).contains(&modified.year()) {
        return;
    }

    let date = (
        1980 + i32::from(common.date >> 9),
        u32::from(common.date >> 5 & 0xF),
        u32::from(common.date & 0x1F),
    );
    let time = (
        u32::from(common.time >> 11),
        u32::from(common.time >> 5 & 0x3F),
        u32::from(common.time & 0x1F) * 2,
    );

    assert_eq!(date, (modified.year(), modified.month(), modified.day()));
    assert_eq!(
        time,
        (
            modified.hour(),
            modified.minute(),
            modified.second() / 2 * 2
        )
    );
}

/// Zip64 fields appear exactly when values overflow; the version says so.
fn check_zip64_use(local: &Local, central: &Central, entry: &Entry, offset: u64) {
    let sizes_overflow = entry.compressed_size >= MARK_32 || entry.uncompressed_size >= MARK_32;
    let any_overflow = sizes_overflow || offset >= MARK_32;
    let version = if any_overflow { 45 } else { 20 };

    assert_eq!(
        local.common.extra(0x0001).is_some(),
        sizes_overflow,
        "{}",
        entry.name
    );
    assert_eq!(
        central.common.extra(0x0001).is_some(),
        any_overflow,
        "{}",
        entry.name
    );
    assert_eq!(local.common.version_needed, version, "{}", entry.name);
    assert_eq!(central.common.version_needed, version, "{}", entry.name);

    let marked = |value: u64, field: u32| (value >= MARK_32) == (field == u32::MAX);
    assert!(marked(
        entry.uncompressed_size,
        central.common.uncompressed_32
    ));
    assert!(marked(entry.compressed_size, central.common.compressed_32));
    assert!(marked(offset, central.offset_32));
}

fn check_central_only_fields(central: &Central) {
    assert_eq!(central.made_by, 0x032D, "Unix host, spec 4.5");
    assert_eq!(central.external, 0o100_644 << 16, "regular file, rw-r--r--");
    assert_eq!(
        (central.comment_len, central.disk_start, central.internal),
        (0, 0, 0)
    );
}

fn check_end(parsed: &Parsed, count: u64, len: u64) {
    let (cd_offset, cd_size) = (parsed.cd.start, parsed.cd.end - parsed.cd.start);
    let zip64_needed = count >= 0xFFFF || cd_size >= MARK_32 || cd_offset >= MARK_32;
    let tail_len = if zip64_needed { 56 + 20 + 22 } else { 22 };

    assert_eq!(
        parsed.cd.end + tail_len,
        len,
        "end records close the archive"
    );
    assert_eq!(parsed.zip64.is_some(), zip64_needed);

    let end = &parsed.end;
    assert_eq!((end.disk, end.cd_disk, end.comment_len), (0, 0, 0));
    assert_eq!(end.count_on_disk, end.count);
    assert_eq!(end.count == u16::MAX, count >= 0xFFFF);
    assert_eq!(end.cd_size == u32::MAX, cd_size >= MARK_32);
    assert_eq!(end.cd_offset == u32::MAX, cd_offset >= MARK_32);

    if let Some((record, locator)) = &parsed.zip64 {
        let expected = Zip64End {
            record_len: 44,
            made_by: 0x032D,
            version_needed: 45,
            disk: 0,
            cd_disk: 0,
            count_on_disk: count,
            count,
            cd_size,
            cd_offset,
        };
        assert_eq!(record, &expected);

        let expected = Locator {
            end_disk: 0,
            end_offset: parsed.cd.end,
            disks: 1,
        };
        assert_eq!(locator, &expected);
    }
}
