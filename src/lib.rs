//! `insight` prepares and serves copies of the data a contact-tracing backend holds
//! about one phone number.
//!
//! The layout follows the system's parts:
//!
//! - [`api`]: the HTTP service (`insight serve`): ordering, polling and downloading.
//! - [`auth`]: the API key and Helsenorge's bearer tokens.
//! - [`source`]: the PostgreSQL side: source rows, migrations, seeding, access log.
//! - [`store`]: the Redis side: requests, the job queue with leases, stored chunks.
//! - [`export`]: the worker (`insight worker`) that turns source rows into stored,
//!   deflated device documents.
//! - [`archive`]: the zip framing built at download time, and byte-range arithmetic.
//! - [`orders`]: the rules of ordering, finding and deleting exports.
//! - [`config`] and [`cli`]: settings and subcommands.

pub mod api;
pub mod archive;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod export;
pub mod orders;
pub mod source;
pub mod store;
pub mod telemetry;
