//! Protocol sessions, apart from the engine: FTP/FTPS ([`ftp`]), IMAP ([`imap`]), SMTP
//! ([`smtp`]), WebDAV ([`webdav`]), TLS set-up ([`tls`]), retry [`backoff`] and the MIME parts of a message
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
pub mod webdav;

/// One file in a remote listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The path relative to the remote folder, `/`-separated.
    pub key: String,
    pub size: u64,
    /// Modification time as the server reports it (ns since the epoch; 0 if unknown).
    pub mtime_ns: i64,
    /// The server's version tag of the file (WebDAV's `ETag`); `None` where the protocol
    /// has none (FTP).
    pub etag: Option<String>,
}

impl Listed {
    /// The version that tells a changed remote file from the one taken before.
    pub fn version(&self) -> String {
        match &self.etag {
            None => format!("{}:{}", self.size, self.mtime_ns),
            Some(e) => format!("{}:{}:{e}", self.size, self.mtime_ns),
        }
    }

    /// The time readiness compares between listings, changed too when only the `ETag`
    /// changed (a rewrite of the same size within the server's time resolution).
    pub fn change_stamp(&self) -> i64 {
        let Some(e) = &self.etag else {
            return self.mtime_ns;
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in e.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.mtime_ns ^ (h as i64)
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
