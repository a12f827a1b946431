//! ferry: a watched-folder file integration engine.
//!
//! # Layout
//!
//! The pipeline reads top to bottom:
//!
//! - [`job`]: job files, read into a checked [`job::Job`] with every problem reported at
//!   file:line:column; every key they may have is declared once in [`job::keys`].
//! - [`sources`]: where files arrive: [`sources::folder`] lists local folders and shares and
//!   turns file-system events into hints; FTP and mailboxes are fetched into a local staging
//!   folder ([`sources::staging`], [`sources::mailbox`]); a database query's rows are staged
//!   as one CSV file per run ([`sources::database`]), a REST service's records as one
//!   JSON-lines file per run by the same lifecycle ([`sources::rest`]).
//! - [`readiness`]: "is this file completely written?" as a state machine.
//! - [`formats`]: file contents as records: readers (CSV, ...), writers (JSON, ...), and
//!   streaming text decoding.
//! - [`journal`]: the durable SQLite record of every file: claims, plans, outputs, history;
//!   its identity (a lost journal is refused), backup and restore.
//! - [`outputs`]: where files leave: atomic delivery into folders (temporary name, fsync,
//!   rename); FTP, HTTP (REST and SOAP, [`outputs::http`]) and email send from a local
//!   outbox ([`outputs::outbox`], [`outputs::email`]); alerts by email.
//! - [`db`]: databases: connections by URL (TLS, secrets), column types, and a file's
//!   records loaded into a table exactly once (the database output).
//! - [`transform`]: filters, computed fields and lookups (minijinja expressions).
//! - [`filters`]: ferry's minijinja filters (`num`, `decimal`, `date`), shared by
//!   transform expressions and output templates.
//! - [`runtime`]: the daemon: per-job runners, the worker pool, processing of one file
//!   ([`runtime::process`]), crash recovery, hot reload and shutdown.
//! - [`schedule`]: when a scheduled job runs (cron in a time zone, `every`) and its
//!   `active` windows; the runs themselves are [`runtime::runs`].
//! - [`protocol`]: the sessions of remote kinds (FTP/FTPS, IMAP, SMTP, HTTP), TLS set-up, backoff
//!   and MIME, apart from the engine; [`secrets`] resolves `${env:..}` / `${file:..}`
//!   passwords; [`redact`] scrubs their values from everything ferry writes.
//! - [`url`]: the parts of an FTP or database URL (`user:password@host:port/path`).
//! - [`fsutil`]: the file-system primitives the guarantees rest on; [`hashing`]: sha256 of
//!   big streams on a thread of their own.
//! - [`cli`]: the `check`, `test`, `history` and `status` commands.
//! - [`settings`]: the optional installation-wide `ferry.toml` (state folder, workers, log,
//!   the admin alert address, job defaults), read like a job file.
//! - [`console`]: the web console (pages of the jobs, the audit log, errors and reviews;
//!   retry, approve, reject, trigger; users, sessions, CSRF), served beside [`web`]'s
//!   endpoints; [`say`]: the lines a command says, for the terminal or a console page.
//! - [`web`]: the daemon's HTTP endpoint (`--http`): `/healthz`, `/readyz`, `/metrics`;
//!   [`metrics`]: the numbers it serves, counted by the runtime.
//! - [`service`]: running under systemd: readiness and watchdog notifications, logs for
//!   journald or a rotating file.
//! - [`service_command`]: `ferry service ...`, the Windows service (its SCM calls are
//!   built on Windows only); `scm` (Windows only) is what the daemon shares with the
//!   service control manager: the stop request and the state reports.

pub mod cli;
pub mod console;
pub mod db;
pub mod filters;
pub mod formats;
pub mod fsutil;
pub mod hashing;
pub mod job;
pub mod journal;
pub mod metrics;
pub mod outputs;
pub mod protocol;
pub mod readiness;
pub mod redact;
pub mod review;
pub mod runtime;
pub mod say;
pub mod schedule;
#[cfg(windows)]
pub mod scm;
pub mod secrets;
pub mod service;
pub mod service_command;
pub mod settings;
pub mod sources;
pub mod transform;
pub mod url;
pub mod web;
