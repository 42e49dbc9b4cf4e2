//! The export worker (`insight worker`): takes jobs from the queue and turns each
//! device's source rows into a deflated JSON document stored in chunks.

pub mod deflate;
pub mod document;
mod job;
pub mod worker;

pub use worker::Worker;

/// Bytes per stored chunk. Small enough that a download holds a few of them per
/// client without noticing, large enough that Redis round trips do not dominate.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;

/// Deflate level of the stored documents; see `benches/deflate.rs` for the figures
/// behind this choice.
pub const DEFLATE_LEVEL: u32 = 3;
