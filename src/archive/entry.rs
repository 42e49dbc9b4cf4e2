//! One file of an archive as the caller describes it, and the checks it must pass.

use chrono::{DateTime, Utc};

/// How an entry's stored data is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The data is the file itself (zip method 0).
    Stored,
    /// The data is a raw deflate stream, without a zlib header (zip method 8).
    Deflated,
}

/// One file in the archive: its name, and facts about the data the caller supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative UTF-8 path inside the archive, e.g. `"<uuid>.json"`.
    pub name: String,
    /// How the stored data is compressed.
    pub method: Method,
    /// CRC-32 of the uncompressed file.
    pub crc32: u32,
    /// Bytes of stored data the caller will supply for this entry.
    pub compressed_size: u64,
    /// Length of the file once decompressed.
    pub uncompressed_size: u64,
    /// Modification time shown by unzip tools.
    pub modified: DateTime<Utc>,
}

/// Why a set of entries cannot be framed as a zip archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A file needs a name.
    #[error("an entry has an empty name")]
    EmptyName,

    /// Zip headers record the name's length in 16 bits.
    #[error("an entry name is {len} bytes long; zip allows at most 65535")]
    NameTooLong {
        /// Length of the name in bytes.
        len: usize,
    },

    /// Names that could escape the extraction directory, or that tools read as
    /// directories, are refused rather than handed to a citizen's unzip tool.
    #[error("entry name {name:?} is not a plain relative file path")]
    UnsafeName {
        /// The refused name.
        name: String,
    },

    /// Two entries with one name would leave readers to pick one of them.
    #[error("entry name {name:?} appears more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },

    /// A stored entry's data is the file itself, so both sizes must agree.
    #[error(
        "stored entry {name:?} has {compressed} bytes of data but {uncompressed} bytes of content"
    )]
    StoredSizeMismatch {
        /// The entry's name.
        name: String,
        /// Its compressed size.
        compressed: u64,
        /// Its uncompressed size.
        uncompressed: u64,
    },

    /// The archive's length must fit in 64 bits.
    #[error("the archive would be longer than 2^64 - 1 bytes")]
    TooLarge,
}

/// Checks what the zip headers cannot represent or readers would mishandle, and
/// returns the name's length as the headers record it.
pub(super) fn check(entry: &Entry) -> Result<u16, LayoutError> {
    let len = u16::try_from(entry.name.len()).map_err(|_| LayoutError::NameTooLong {
        len: entry.name.len(),
    })?;

    if entry.name.is_empty() {
        return Err(LayoutError::EmptyName);
    }

    if !is_plain_relative_path(&entry.name) {
        return Err(LayoutError::UnsafeName {
            name: entry.name.clone(),
        });
    }

    if entry.method == Method::Stored && entry.compressed_size != entry.uncompressed_size {
        return Err(LayoutError::StoredSizeMismatch {
            name: entry.name.clone(),
            compressed: entry.compressed_size,
            uncompressed: entry.uncompressed_size,
        });
    }

    Ok(len)
}

/// True for `a.json` or `dir/a.json`; false for anything absolute, with `.`/`..` or
/// empty components, a trailing slash (a directory), backslashes (a path separator on
/// Windows) or control characters.
fn is_plain_relative_path(name: &str) -> bool {
    let no_odd_characters = !name.chars().any(|c| c == '\\' || c.is_control());

    let components_are_plain = name
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");

    no_odd_characters && components_are_plain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            method: Method::Deflated,
            crc32: 0,
            compressed_size: 2,
            uncompressed_size: 0,
            modified: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn plain_names_pass() {
        for name in [
            "a.json",
            "dir/a.json",
            "tømmerstokk-日本.json",
            "..a",
            "a..b",
        ] {
            assert!(check(&named(name)).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_that_could_escape_or_confuse_are_refused() {
        for name in [
            "/etc/x", "../x", "a/../x", "./x", "a//b", "dir/", "a\\b", "a\0b", ".",
        ] {
            assert!(
                matches!(check(&named(name)), Err(LayoutError::UnsafeName { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn empty_name_is_refused() {
        assert_eq!(check(&named("")), Err(LayoutError::EmptyName));
    }

    #[test]
    fn name_of_65535_bytes_passes_and_one_more_is_refused() {
        assert_eq!(check(&named(&"a".repeat(65_535))), Ok(65_535));

        assert_eq!(
            check(&named(&"a".repeat(65_536))),
            Err(LayoutError::NameTooLong { len: 65_536 })
        );
    }

    #[test]
    fn stored_entry_sizes_must_agree() {
        let entry = Entry {
            method: Method::Stored,
            ..named("a.txt")
        };

        assert!(matches!(
            check(&entry),
            Err(LayoutError::StoredSizeMismatch { .. })
        ));
    }
}
