//! Where results go. Every output is delivered atomically: written under a temporary name,
//! made durable, then renamed (see [`folder`]).
//!
//! - [`folder`]: local folders and shares.
//! - [`ftp`]: FTP/FTPS, a [`Deliverer`] that [`outbox`] feeds from the output's local outbox.
//! - [`http`]: REST and SOAP requests, a [`Deliverer`] too (one request per file or record).
//! - [`webdav`]: WebDAV folders, a [`Deliverer`] (temporary name, then `MOVE`).
//! - [`database`]: records loaded into a database table, exactly once, when the output is
//!   committed (its spool is written like a temporary output).
//! - [`failure`]: whether a failed delivery may pass (retried) or not (error folder).
//! - [`email`]: mails from an outbox, one per file or batch; [`alerts`] uses it for the
//!   admin's alert mails.
//! - [`given_up`]: outbox files sent to the error folder, on record for `ferry retry`.
//!
//! A remote kind is a [`Deliverer`]; [`deliverer`] is the one place where those kinds are
//! listed (docs/design.md, "How to add a source or an output").

pub mod alerts;
pub mod database;
pub mod email;
pub mod failure;
pub mod folder;
pub mod ftp;
pub mod given_up;
pub mod http;
pub mod outbox;
pub mod webdav;

use std::path::Path;

use crate::job::Exists;
use crate::job::remote::Endpoint;
use crate::protocol::RResult;

/// What a delivery ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Sent; the final remote name.
    Sent(String),
    /// Not sent: the name exists and `exists = "skip"`.
    Skipped,
}

/// The destination side of a protocol.
pub trait Deliverer: Send {
    /// Sends the local file as `name` (relative, `/`-separated) under the remote folder.
    fn deliver(
        &mut self,
        local: &Path,
        name: &str,
        size: u64,
        exists: Exists,
        done_file: Option<&str>,
    ) -> RResult<Delivered>;
    /// After a crash between sending and journaling: whether `name` is there already with
    /// this size (then it was delivered, and sending again would duplicate it).
    /// this size and these bytes (then it was delivered, and sending again would duplicate it).
    fn is_there(&mut self, name: &str, local: &Path, size: u64) -> RResult<bool>;
    /// Connects (and logs in) ahead of the first file, so that `run --once` does it while
    /// the local pass writes the outbox. Errors are left to the first delivery.
    fn warm_up(&mut self) {}
    fn disconnect(&mut self);
    /// After a failed delivery: the wait the server asked for (HTTP `Retry-After`), which
    /// the backoff then does not go below.
    fn retry_after(&mut self) -> Option<std::time::Duration> {
        None
    }
}

/// The deliverer of a remote output's endpoint (output `idx` of `job`).
pub fn deliverer(
    endpoint: &Endpoint,
    job: &std::sync::Arc<crate::job::Job>,
    idx: usize,
    journal: &std::sync::Arc<crate::journal::Journal>,
) -> Box<dyn Deliverer> {
    match endpoint {
        Endpoint::Ftp(e) => Box::new(crate::protocol::ftp::FtpClient::new(e.clone())),
        Endpoint::Http(e) => Box::new(http::HttpDeliverer::new(
            job.clone(),
            idx,
            (**e).clone(),
            journal.clone(),
        )),
        Endpoint::Webdav(e) => Box::new(crate::protocol::webdav::Dav::new((**e).clone())),
    }
}
