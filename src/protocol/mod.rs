//! Protocol sessions, apart from the engine: FTP/FTPS ([`ftp`]), IMAP ([`imap`]), SMTP
//! ([`smtp`]), TLS set-up ([`tls`]), retry [`backoff`] and the MIME parts of a message
//! ([`mime`]). They read their endpoint's configuration from [`crate::job`] and know nothing
//! of staging, outboxes or the journal; the adapters in [`crate::sources`] and
//! [`crate::outputs`] do.

pub mod backoff;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod mime;
pub mod smtp;
pub mod tls;

/// One file in a remote listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The path relative to the remote folder, `/`-separated.
    pub key: String,
    pub size: u64,
    /// Modification time as the server reports it (ns since the epoch; 0 if unknown).
    pub mtime_ns: i64,
}

impl Listed {
    /// The version that tells a changed remote file from the one taken before.
    pub fn version(&self) -> String {
        format!("{}:{}", self.size, self.mtime_ns)
    }
}

/// Errors of remote operations, split by consequence.
#[derive(Debug, Clone)]
pub enum RemoteError {
    /// Try again later (network, server down, login refused, disk full there).
    Transient(String),
    /// This item can never succeed as configured (e.g. the name exists and `exists = "fail"`).
    Permanent(String),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Transient(s) | RemoteError::Permanent(s) => f.write_str(s),
        }
    }
}

pub type RResult<T> = Result<T, RemoteError>;
