//! Zip framing built at download time from stored entries, and byte-range arithmetic.
//!
//! The worker stores each device document deflated once; at download time nothing is
//! compressed again. [`Layout`] computes every byte of the archive that is not stored
//! data (local headers, central directory, end records), so the HTTP layer knows the
//! exact length up front and can serve any byte range by asking [`Layout::pieces`]
//! which framing bytes and which slices of stored data the range needs.
//!
//! Nothing here does I/O. The archive never uses data descriptors, so every reader,
//! macOS Archive Utility and Windows Explorer included, can open it; zip64 structures
//! appear exactly when sizes, offsets or the entry count need them.

mod entry;
mod layout;
mod range;
mod records;

#[cfg(test)]
mod tests;

pub use entry::{Entry, LayoutError, Method};
pub use layout::{Layout, Piece, Pieces};
pub use range::{RangeRequest, content_range, parse_range, unsatisfied_range};
