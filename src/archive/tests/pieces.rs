//! Byte ranges: the pieces of any range are that slice of the whole archive, and
//! framing bytes are shared rather than copied.

use std::ops::Range;

use proptest::prelude::*;

use super::parse::Framing;
use super::{Sample, assemble, modified, readers, realistic};
use crate::archive::{Entry, Layout, LayoutError, Method, Piece};

#[test]
fn whole_archive_alternates_headers_and_data_then_the_tail() {
    let sample = realistic();
    let layout = sample.layout();
    let kinds: String = layout
        .pieces(0..layout.len())
        .map(|piece| match piece {
            Piece::Literal(_) => 'L',
            Piece::Data { .. } => 'D',
        })
        .collect();

    // Entry 5 is stored and empty: a header and no data piece. (Entry 3 is empty
    // too, but deflated, and even an empty deflate stream takes two bytes.)
    assert_eq!(kinds, "LDLDLDLDLDLLDL");
}

#[test]
fn every_piece_is_non_empty() {
    let sample = realistic();
    let layout = sample.layout();

    for piece in layout.pieces(0..layout.len()) {
        match piece {
            Piece::Literal(bytes) => assert!(!bytes.is_empty()),
            Piece::Data { len, .. } => assert!(len > 0),
        }
    }
}

#[test]
fn empty_ranges_and_ranges_past_the_end_give_nothing() {
    let layout = realistic().layout();
    let len = layout.len();

    assert_eq!(layout.pieces(0..0).count(), 0);
    assert_eq!(layout.pieces(7..7).count(), 0);
    assert_eq!(layout.pieces(len..len + 10).count(), 0);
    assert_eq!(layout.pieces(u64::MAX - 1..u64::MAX).count(), 0);
}

#[test]
fn range_inside_one_entry_asks_for_that_slice_of_its_data() {
    let sample = realistic();
    let layout = sample.layout();
    let data_at = 30 + sample.entries[0].name.len() as u64 + 9;

    let pieces: Vec<_> = layout.pieces(data_at + 100..data_at + 164).collect();

    assert_eq!(
        pieces,
        [Piece::Data {
            entry: 0,
            offset: 100,
            len: 64
        }]
    );
}

#[test]
fn literal_pieces_share_the_layout_buffers() {
    let layout = realistic().layout();
    let whole: Vec<_> = layout.pieces(0..layout.len()).collect();
    let part: Vec<_> = layout.pieces(5..10).collect();

    let (Piece::Literal(first), [Piece::Literal(cut)]) = (&whole[0], part.as_slice()) else {
        panic!("framing at the start");
    };
    assert_eq!(cut.as_ptr(), first[5..].as_ptr());
}

#[test]
fn pieces_outlive_the_layout_that_made_them() {
    let sample = realistic();
    let layout = sample.layout();
    let expected = assemble(&layout, 0..layout.len(), &sample.data);

    let pieces = layout.pieces(0..layout.len());
    drop(layout);
    let literal_len: usize = pieces
        .filter_map(|piece| match piece {
            Piece::Literal(bytes) => Some(bytes.len()),
            Piece::Data { .. } => None,
        })
        .sum();

    let data_len: usize = sample.data.iter().map(Vec::len).sum();
    assert_eq!(literal_len + data_len, expected.len());
}

#[test]
fn same_entries_give_the_same_bytes() {
    let first = realistic().archive();
    let second = realistic().archive();

    assert_eq!(first, second);
}

#[test]
fn archive_without_entries_is_its_end_record() {
    let layout = Layout::new(&[]).expect("no entries is fine");
    let bytes = assemble(&layout, 0..layout.len(), &[]);

    let mut expected = vec![0x50, 0x4b, 0x05, 0x06];
    expected.resize(22, 0);
    assert_eq!(bytes, expected);
    assert!(!layout.is_empty());
}

#[test]
fn repeated_names_are_refused() {
    let mut sample = Sample::new();
    sample
        .add("a.json", Method::Deflated, b"1")
        .add("a.json", Method::Deflated, b"2");

    assert_eq!(
        Layout::new(&sample.entries).err(),
        Some(LayoutError::DuplicateName {
            name: "a.json".to_owned()
        })
    );
}

#[test]
fn archive_longer_than_u64_is_refused() {
    let huge = |name: &str| Entry {
        name: name.to_owned(),
        method: Method::Deflated,
        crc32: 0,
        compressed_size: u64::MAX / 2,
        uncompressed_size: u64::MAX / 2,
        modified: modified(),
    };

    assert_eq!(
        Layout::new(&[huge("a"), huge("b")]).err(),
        Some(LayoutError::TooLarge)
    );
    assert_eq!(
        Layout::new(&[huge("a"), huge("b"), huge("c")]).err(),
        Some(LayoutError::TooLarge)
    );
}

#[test]
fn name_longer_than_65535_bytes_is_refused() {
    let mut sample = Sample::new();
    sample.add(&"n".repeat(65_536), Method::Stored, b"");

    assert_eq!(
        Layout::new(&sample.entries).err(),
        Some(LayoutError::NameTooLong { len: 65_536 })
    );
}

/// Up to six files with unique, partly non-ASCII names and random content.
fn arbitrary_sample() -> impl Strategy<Value = Sample> {
    let file = (
        any::<bool>(),
        "[a-zæøå日]{1,8}",
        prop::collection::vec(any::<u8>(), 0..300),
    );

    prop::collection::vec(file, 0..6).prop_map(|files| {
        let mut sample = Sample::new();
        for (i, (stored, name, content)) in files.into_iter().enumerate() {
            let method = if stored {
                Method::Stored
            } else {
                Method::Deflated
            };
            sample.add(&format!("{i}-{name}.json"), method, &content);
        }
        sample
    })
}

/// A range of `len + 10` positions' worth, so that some reach past the end.
fn range_in(len: u64, a: u64, b: u64) -> Range<u64> {
    let start = a % (len + 10);
    let end = start + b % (len + 10 - start + 1);
    start..end
}

proptest! {
    #[test]
    fn any_range_is_that_slice_of_the_whole(
        sample in arbitrary_sample(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let layout = sample.layout();
        let whole = assemble(&layout, 0..layout.len(), &sample.data);
        prop_assert_eq!(whole.len() as u64, layout.len());

        let range = range_in(layout.len(), a, b);
        let clamped = range.start.min(layout.len()) as usize..range.end.min(layout.len()) as usize;
        let slice = assemble(&layout, range, &sample.data);

        prop_assert_eq!(&slice[..], &whole[clamped]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_archives_read_back_with_async_zip(sample in arbitrary_sample()) {
        let archive = sample.archive();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");

        runtime.block_on(readers::read_with_read1(archive, &sample));
        super::parse::check(&sample.layout(), &sample.entries);
    }
}

/// Stand-in data for entries too large to exist.
fn made_up(entry: usize, offset: u64) -> u8 {
    (entry as u64 * 131 + offset * 7 + offset / 251) as u8
}

fn assemble_made_up(layout: &Layout, range: Range<u64>) -> Vec<u8> {
    let mut out = Vec::new();

    for piece in layout.pieces(range) {
        match piece {
            Piece::Literal(bytes) => out.extend_from_slice(&bytes),
            Piece::Data { entry, offset, len } => {
                out.extend((offset..offset + len).map(|at| made_up(entry, at)));
            }
        }
    }
    out
}

fn zip64_layout() -> (Layout, Vec<Entry>) {
    let entry = |name: &str, size: u64| Entry {
        name: name.to_owned(),
        method: Method::Deflated,
        crc32: 7,
        compressed_size: size,
        uncompressed_size: size * 3,
        modified: modified(),
    };
    let entries = vec![
        entry("a.json", 1_000),
        entry("b.json", 5 << 30),
        entry("c.json", 0),
        entry("d.json", 0xFFFF_FFFF),
        entry("e.json", 10),
    ];

    (Layout::new(&entries).expect("valid entries"), entries)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ranges_of_a_zip64_archive_match_its_whole_walk(
        around in 0usize..12,
        shift in -2_000i64..2_000,
        len in 0u64..3_000,
    ) {
        let (layout, _) = zip64_layout();
        let framing = Framing::of(&layout);

        // Start near a boundary between structures, where mistakes would show.
        let mut boundaries = framing.literal_starts();
        boundaries.push(layout.len());
        let at = boundaries[around % boundaries.len()].saturating_add_signed(shift);
        let range = at.min(layout.len())..(at + len).min(layout.len());

        let expected = framing.window(range.clone(), made_up);
        prop_assert_eq!(assemble_made_up(&layout, range), expected);
    }
}
