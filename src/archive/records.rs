//! The bytes of zip records (APPNOTE.TXT): local and central file headers with their
//! extra fields, and the end-of-central-directory records, zip64 ones included.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};

use super::entry::{Entry, Method};

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const END_SIGNATURE: u32 = 0x0605_4b50;

/// A 32-bit field holding this value says "the real value is in a zip64 field", so
/// the value itself already needs zip64.
const MARK_32: u64 = 0xFFFF_FFFF;
const MARK_16: u64 = 0xFFFF;

const ZIP64_EXTRA_ID: u16 = 0x0001;
const TIMESTAMP_EXTRA_ID: u16 = 0x5455;
const TIMESTAMP_HAS_MTIME: u8 = 1;

/// Bit 11: names are UTF-8. Bit 3 (data descriptor) is never set: sizes and CRC are
/// known before the header is written.
const FLAGS: u16 = 1 << 11;

const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;

/// Host Unix (3), so that the external attributes carry a file mode; the lower byte
/// is the newest specification version this writer uses.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;

const LOCAL_FIXED_LEN: usize = 30;
const CENTRAL_FIXED_LEN: usize = 46;
const TIMESTAMP_EXTRA_LEN: u16 = 4 + 5;
const LOCAL_ZIP64_EXTRA_LEN: u16 = 4 + 16;
const ZIP64_END_LEN: u64 = 56;

/// One entry with a checked name, placed at `offset`: everything its two headers say.
pub(super) struct Record<'a> {
    pub entry: &'a Entry,
    pub name_len: u16,
    pub offset: u64,
}

impl Record<'_> {
    /// Length of the local header, which the entry's data follows.
    pub fn local_len(&self) -> usize {
        LOCAL_FIXED_LEN + usize::from(self.name_len) + usize::from(self.local_extra_len())
    }

    /// Length of the central directory header.
    pub fn central_len(&self) -> usize {
        CENTRAL_FIXED_LEN + usize::from(self.name_len) + usize::from(self.central_extra_len())
    }

    /// Appends the local file header.
    pub fn put_local(&self, out: &mut BytesMut) {
        let (date, time) = dos_date_time(self.entry.modified);

        out.put_u32_le(LOCAL_HEADER_SIGNATURE);
        out.put_u16_le(self.version_needed());
        out.put_u16_le(FLAGS);
        out.put_u16_le(method_code(self.entry.method));
        out.put_u16_le(time);
        out.put_u16_le(date);
        out.put_u32_le(self.entry.crc32);

        // The spec wants both sizes in a local zip64 field once either overflows.
        if self.sizes_need_zip64() {
            out.put_u32_le(u32::MAX);
            out.put_u32_le(u32::MAX);
        } else {
            out.put_u32_le(field_32(self.entry.compressed_size));
            out.put_u32_le(field_32(self.entry.uncompressed_size));
        }

        out.put_u16_le(self.name_len);
        out.put_u16_le(self.local_extra_len());
        out.put_slice(self.entry.name.as_bytes());

        if self.sizes_need_zip64() {
            out.put_u16_le(ZIP64_EXTRA_ID);
            out.put_u16_le(16);
            out.put_u64_le(self.entry.uncompressed_size);
            out.put_u64_le(self.entry.compressed_size);
        }
        put_timestamp(out, self.entry.modified);
    }

    /// Appends the central directory header.
    pub fn put_central(&self, out: &mut BytesMut) {
        let (date, time) = dos_date_time(self.entry.modified);

        out.put_u32_le(CENTRAL_HEADER_SIGNATURE);
        out.put_u16_le(MADE_BY);
        out.put_u16_le(self.version_needed());
        out.put_u16_le(FLAGS);
        out.put_u16_le(method_code(self.entry.method));
        out.put_u16_le(time);
        out.put_u16_le(date);
        out.put_u32_le(self.entry.crc32);
        out.put_u32_le(field_32(self.entry.compressed_size));
        out.put_u32_le(field_32(self.entry.uncompressed_size));
        out.put_u16_le(self.name_len);
        out.put_u16_le(self.central_extra_len());

        // Comment length, disk number start, internal attributes.
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(0);

        out.put_u32_le(EXTERNAL_ATTRIBUTES);
        out.put_u32_le(field_32(self.offset));
        out.put_slice(self.entry.name.as_bytes());

        // Only the overflowing values, in the order the spec fixes.
        let overflowing = self.central_zip64_values();
        if !overflowing.is_empty() {
            out.put_u16_le(ZIP64_EXTRA_ID);
            out.put_u16_le(8 * overflowing.len() as u16);
            overflowing.iter().for_each(|&value| out.put_u64_le(value));
        }
        put_timestamp(out, self.entry.modified);
    }

    fn sizes_need_zip64(&self) -> bool {
        needs_zip64(self.entry.compressed_size) || needs_zip64(self.entry.uncompressed_size)
    }

    /// 4.5 as soon as any header of the entry uses zip64, so that its local and central
    /// headers agree.
    fn version_needed(&self) -> u16 {
        if self.sizes_need_zip64() || needs_zip64(self.offset) {
            VERSION_ZIP64
        } else {
            VERSION_DEFAULT
        }
    }

    fn local_extra_len(&self) -> u16 {
        let zip64 = if self.sizes_need_zip64() {
            LOCAL_ZIP64_EXTRA_LEN
        } else {
            0
        };

        zip64 + TIMESTAMP_EXTRA_LEN
    }

    fn central_extra_len(&self) -> u16 {
        let zip64 = match self.central_zip64_values().len() {
            0 => 0,
            n => 4 + 8 * n as u16,
        };

        zip64 + TIMESTAMP_EXTRA_LEN
    }

    /// The values the central header's zip64 field carries: uncompressed size,
    /// compressed size, local header offset, each only when it overflows.
    fn central_zip64_values(&self) -> Vec<u64> {
        let candidates = [
            self.entry.uncompressed_size,
            self.entry.compressed_size,
            self.offset,
        ];

        candidates.into_iter().filter(|&v| needs_zip64(v)).collect()
    }
}

/// Appends the end records for a central directory of `count` headers, `size` bytes
/// long, starting at `offset`; the records follow the directory immediately.
pub(super) fn put_end_records(out: &mut BytesMut, count: u64, offset: u64, size: u64) {
    let zip64 = count >= MARK_16 || needs_zip64(size) || needs_zip64(offset);

    if zip64 {
        put_zip64_end(out, count, offset, size);
    }

    let count_16 = u16::try_from(count)
        .ok()
        .filter(|&c| u64::from(c) < MARK_16);

    out.put_u32_le(END_SIGNATURE);

    // This disk, and the disk where the central directory starts.
    out.put_u16_le(0);
    out.put_u16_le(0);

    out.put_u16_le(count_16.unwrap_or(u16::MAX));
    out.put_u16_le(count_16.unwrap_or(u16::MAX));
    out.put_u32_le(field_32(size));
    out.put_u32_le(field_32(offset));

    // No archive comment.
    out.put_u16_le(0);
}

fn put_zip64_end(out: &mut BytesMut, count: u64, offset: u64, size: u64) {
    // Saturating only matters for archives over 2^64 bytes, which the layout refuses.
    let record_at = offset.saturating_add(size);

    out.put_u32_le(ZIP64_END_SIGNATURE);

    // The record's length after this field.
    out.put_u64_le(ZIP64_END_LEN - 12);

    out.put_u16_le(MADE_BY);
    out.put_u16_le(VERSION_ZIP64);

    // This disk, and the disk where the central directory starts.
    out.put_u32_le(0);
    out.put_u32_le(0);

    out.put_u64_le(count);
    out.put_u64_le(count);
    out.put_u64_le(size);
    out.put_u64_le(offset);

    out.put_u32_le(ZIP64_LOCATOR_SIGNATURE);

    // The disk holding the zip64 end record, its offset, and the number of disks.
    out.put_u32_le(0);
    out.put_u64_le(record_at);
    out.put_u32_le(1);
}

/// The extended timestamp (Info-ZIP "UT") with the modification time only; local and
/// central headers carry the same bytes.
fn put_timestamp(out: &mut BytesMut, modified: DateTime<Utc>) {
    out.put_u16_le(TIMESTAMP_EXTRA_ID);
    out.put_u16_le(TIMESTAMP_EXTRA_LEN - 4);
    out.put_u8(TIMESTAMP_HAS_MTIME);
    out.put_u32_le(unix_time(modified));
}

fn needs_zip64(value: u64) -> bool {
    value >= MARK_32
}

/// The value for a 32-bit header field: itself, or the zip64 mark.
fn field_32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn method_code(method: Method) -> u16 {
    match method {
        Method::Stored => 0,
        Method::Deflated => 8,
    }
}

/// MS-DOS date and time fields, read as UTC here. They cover 1980 to 2107 in steps of
/// two seconds; times outside are clamped to the nearest end.
pub(super) fn dos_date_time(time: DateTime<Utc>) -> (u16, u16) {
    if time.year() < 1980 {
        return (dos_date(1980, 1, 1), 0);
    }

    if time.year() > 2107 {
        return (dos_date(2107, 12, 31), dos_time(23, 59, 58));
    }

    let date = dos_date(time.year(), time.month(), time.day());
    let clock = dos_time(time.hour(), time.minute(), time.second());

    (date, clock)
}

fn dos_date(year: i32, month: u32, day: u32) -> u16 {
    let years_since_1980 = (year - 1980).clamp(0, 127) as u16;

    (years_since_1980 << 9) | ((month as u16) << 5) | day as u16
}

fn dos_time(hour: u32, minute: u32, second: u32) -> u16 {
    ((hour as u16) << 11) | ((minute as u16) << 5) | (second.min(59) as u16 / 2)
}

/// Unix seconds for the extended timestamp. Readers disagree on whether the field is
/// signed; most (Info-ZIP unzip via the DOS date, libarchive, Go, 7-Zip) read it as
/// unsigned, so times are clamped to 1970..=2106.
pub(super) fn unix_time(time: DateTime<Utc>) -> u32 {
    let seconds = time.timestamp().clamp(0, i64::from(u32::MAX));

    u32::try_from(seconds).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn dos_time_keeps_fields_and_halves_seconds() {
        let (date, time) = dos_date_time(at(2020, 4, 16, 8, 30, 59));

        assert_eq!(date, (40 << 9) | (4 << 5) | 16);
        assert_eq!(time, (8 << 11) | (30 << 5) | 29);
    }

    #[test]
    fn dos_time_clamps_before_1980_to_its_first_day() {
        assert_eq!(dos_date_time(at(1979, 12, 31, 23, 59, 59)), (0x0021, 0));
        assert_eq!(dos_date_time(at(1900, 6, 1, 12, 0, 0)), (0x0021, 0));
    }

    #[test]
    fn dos_time_clamps_after_2107_to_its_last_second() {
        let last = dos_date_time(at(2107, 12, 31, 23, 59, 59));

        assert_eq!(dos_date_time(at(2108, 1, 1, 0, 0, 0)), last);
        assert_eq!(dos_date_time(at(3000, 1, 1, 0, 0, 0)), last);
    }

    #[test]
    fn unix_time_clamps_to_the_unsigned_32_bit_range() {
        assert_eq!(unix_time(at(2020, 4, 16, 8, 0, 0)), 1_587_024_000);
        assert_eq!(unix_time(at(1969, 12, 31, 23, 59, 59)), 0);
        assert_eq!(unix_time(at(2106, 2, 7, 6, 28, 15)), u32::MAX);
        assert_eq!(unix_time(at(2200, 1, 1, 0, 0, 0)), u32::MAX);
    }

    fn end_records_len(count: u64, offset: u64, size: u64) -> usize {
        let mut out = BytesMut::new();
        put_end_records(&mut out, count, offset, size);
        out.len()
    }

    #[test]
    fn end_records_grow_by_the_zip64_records_exactly_at_the_thresholds() {
        assert_eq!(end_records_len(0xFFFE, 0xFFFF_FFFE - 1, 1), 22);
        assert_eq!(end_records_len(0xFFFF, 0, 0), 22 + 56 + 20);
        assert_eq!(end_records_len(1, 0xFFFF_FFFF, 0), 22 + 56 + 20);
        assert_eq!(end_records_len(1, 0, 0xFFFF_FFFF), 22 + 56 + 20);
    }
}
