//! Where files come from. Each source lists candidate files and says when one may be ready;
//! readiness itself is decided in [`crate::readiness`].
//!
//! - [`folder`]: local folders and shares (with [`dir`] and [`watch`]).
//! - [`ftp`]: FTP/FTPS, a [`Fetcher`] that [`staging`] runs into the job's staging folder.
//! - [`webdav`]: WebDAV folders, a [`Fetcher`] as well.
//! - [`mailbox`]: IMAP attachments, staged by its own runner ([`mail_store`] journals them).
//! - [`database`]: the rows of a query, staged as one CSV file per run (issue 16).
//! - [`rest`]: the records of a REST service, page by page, staged as one JSON-lines file
//!   per run by the database source's run lifecycle (issue 17).
//!
//! A remote kind is a [`Fetcher`]; [`fetcher`] is the one place where those kinds are
//! listed (docs/design.md, "How to add a source or an output").

pub mod database;
pub mod dir;
pub mod folder;
pub mod ftp;
pub mod mail_store;
pub mod mailbox;
pub mod rest;
pub mod staging;
pub mod watch;
pub mod webdav;

use std::sync::atomic::AtomicBool;

use crate::job::remote::{Disposal, Endpoint};
use crate::protocol::{Listed, RResult};

/// The source side of a protocol: list, fetch, dispose. Implementations keep their
/// connection open between calls and reconnect after an error.
pub trait Fetcher: Send {
    /// Every file below the remote folder (its subfolders too with `recursive`).
    fn list(&mut self, recursive: bool) -> RResult<Vec<Listed>>;
    /// Whether a done-file name is present beside `key` in the last listing is decided by
    /// the caller; this downloads `item` into `out`, returning the byte count. Stops early
    /// (with an error) when `stop` is set.
    fn fetch(&mut self, item: &Listed, out: &mut std::fs::File, stop: &AtomicBool) -> RResult<u64>;
    /// Deletes or moves the remote original. Something already gone is fine.
    fn dispose(&mut self, key: &str, how: &Disposal) -> RResult<()>;
    /// Drops the connection (after an error, or when idle).
    fn disconnect(&mut self);
}

/// The fetcher of a remote source's endpoint.
pub fn fetcher(endpoint: &Endpoint) -> Box<dyn Fetcher> {
    match endpoint {
        Endpoint::Ftp(e) => Box::new(crate::protocol::ftp::FtpClient::new(e.clone())),
        Endpoint::Http(_) => unreachable!("the job reader makes no HTTP source"),
        Endpoint::Webdav(e) => Box::new(crate::protocol::webdav::Dav::new((**e).clone())),
    }
}
