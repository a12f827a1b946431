//! ferry: a watched-folder file integration engine.
//!
//! # Layout
//!
//! The pipeline reads top to bottom:
//!
//! - [`job`]: job files, read into a checked [`job::Job`] with every problem reported at
//!   file:line:column.
//! - [`sources`]: where files come from; [`sources::folder`] lists local folders and shares
//!   and turns file-system events into hints.
//! - [`readiness`]: "is this file completely written?" as a state machine.
//! - [`formats`]: file contents as records: readers (CSV, ...), writers (JSON, ...), and
//!   streaming text decoding.
//! - [`journal`]: the durable SQLite record of every file: claims, plans, outputs, history;
//!   its identity (a lost journal is refused), backup and restore.
//! - [`outputs`]: atomic delivery (temporary name, fsync, rename).
//! - [`transform`]: filters, computed fields and lookups (minijinja expressions).
//! - [`runtime`]: the daemon: per-job runners, the worker pool, processing of one file
//!   ([`runtime::process`]), crash recovery, hot reload and shutdown.
//! - [`remote`]: remote sources and destinations (FTP/FTPS, IMAP mailboxes, SMTP) as
//!   adapters around local staging and outbox folders; [`secrets`] resolves `${env:..}` /
//!   `${file:..}` passwords; [`redact`] scrubs their values from everything ferry writes.
//! - [`fsutil`]: the file-system primitives the guarantees rest on; [`hashing`]: sha256 of
//!   big streams on a thread of their own.
//! - [`cli`]: the `check`, `test`, `history` and `status` commands.
//! - [`service`]: running under systemd: readiness and watchdog notifications, logs for
//!   journald or a rotating file.

pub mod cli;
pub mod formats;
pub mod fsutil;
pub mod hashing;
pub mod job;
pub mod journal;
pub mod outputs;
pub mod readiness;
pub mod redact;
pub mod remote;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod sources;
pub mod transform;
