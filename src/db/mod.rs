//! Databases as destinations (and, with the source half, as sources): connections by URL,
//! column types, and exactly-once loads (docs/databases.md).
//!
//! - [`connect`]: URL parsing (passwords through `${env:..}`/`${file:..}`), TLS with
//!   `ca_file`, connecting with a timeout, errors that never show a password and say
//!   whether they may pass. The one connection API for PostgreSQL, MySQL/MariaDB and
//!   SQLite.
//! - [`types`]: the column types a database reports and the conversion of record values to
//!   them.
//! - [`load`]: the spool (a file's converted records) and its load into a table in one
//!   transaction with a row of the load table.
//!
//! Nothing here knows jobs or the engine: `outputs::database` puts it into a file's
//! delivery.

pub mod connect;
pub mod load;
pub mod types;
