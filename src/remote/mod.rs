//! Remote sources and destinations (FTP today; IMAP and SMTP plug into the same parts), as
//! adapters around the local engine, which stays the one place where files are processed.
//!
//! Theory of operation (docs/remote.md has the reasons):
//!
//! - A remote **source** is a [`Fetcher`] plus a local staging folder. The job's
//!   `source.folder` *is* the staging folder; the normal runner takes files from it. A
//!   fetcher thread per job polls the remote listing, decides readiness (size and time
//!   unchanged for `settle`, or a done-file), downloads into `staging/.ferry-part-*`
//!   (hidden, so the runner never sees it), checks the size, fsyncs, records the item in the
//!   journal (`remote_items`, waited), then renames it into place. Only after the local
//!   engine finished the staged file (done, or failed into the error folder) is the remote
//!   original deleted, moved or kept ([`Disposal`]). The journal key (job, remote key,
//!   version) keeps an item from being taken twice, even with `keep` and after a restart.
//! - A remote **destination** is a local outbox plus a [`Deliverer`]. The engine writes the
//!   output into the outbox like any folder output (durably, atomically), so the original
//!   is archived only once every output is safe on local disk. A deliverer thread per
//!   (job, output) sends each outbox file, journals it in `deliveries`, and removes it.
//!   Failures are retried with [`Backoff`]; one dead destination blocks nothing else.
//!
//! Protocol modules implement the two traits; everything else here is protocol-neutral.
//!
//! Mail (docs/mail.md) is message-shaped rather than file-shaped: one message gives several
//! files and is disposed of once all of them are finished, so the mailbox has its own
//! fetcher ([`mail_source`]) built on the same staging rules and journal; the email output
//! ([`mail_output`]) sends from an outbox the same way, with one mail per file or batch.

pub mod alerts;
pub mod ftp;
pub mod imap;
pub mod mail_config;
pub mod mail_output;
pub mod mail_source;
pub mod mail_store;
pub mod mime;
pub mod smtp;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::fsutil;
use crate::job::template::{Template, Vars};
use crate::job::{Exists, Job, Ready};
use crate::journal::{Identity, Journal, now_ms};
use crate::readiness::{Meta, Tracker, Verdict};

/// What happens to a remote original once its staged copy is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    Delete,
    /// Moved into this remote folder (relative to the source folder unless absolute, as
    /// Camel's `move`); never listed as input, even with `recursive`.
    Move(String),
    /// Left in place; the journal keeps it from being taken again while unchanged.
    Keep,
}

impl Disposal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Disposal::Delete => "delete",
            Disposal::Move(_) => "move",
            Disposal::Keep => "keep",
        }
    }
}

/// A remote endpoint of any protocol.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Ftp(ftp::FtpEndpoint),
}

impl Endpoint {
    /// For logs and status: never contains a password.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Ftp(e) => e.display(),
        }
    }

    /// Where a literal password was written, for `ferry check`'s warning.
    pub fn literal_password(&self) -> bool {
        match self {
            Endpoint::Ftp(e) => e.password.as_ref().is_some_and(|p| p.is_literal()),
        }
    }

    fn fetcher(&self) -> Box<dyn Fetcher> {
        match self {
            Endpoint::Ftp(e) => Box::new(ftp::FtpClient::new(e.clone())),
        }
    }

    fn deliverer(&self) -> Box<dyn Deliverer> {
        match self {
            Endpoint::Ftp(e) => Box::new(ftp::FtpClient::new(e.clone())),
        }
    }

    /// A warning to log at every start, if any (TLS verification turned off).
    pub fn start_warning(&self) -> Option<String> {
        match self {
            Endpoint::Ftp(e) if e.secure && !e.tls_verify => Some(format!(
                "TLS certificate verification is OFF for {}: anyone on the path can read and change the transfer",
                e.display()
            )),
            _ => None,
        }
    }
}

/// A job's remote source: the local `source.folder` is its staging folder.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    pub endpoint: Endpoint,
    pub success: Disposal,
    /// Remote readiness (the staging folder itself is read at once).
    pub settle: Duration,
    pub ready: Ready,
    /// Connections to the server: with more than one, one lists and disposes of originals
    /// while the others download in parallel.
    pub connections: usize,
}

/// `connections` of a remote source when the job does not say.
pub const DEFAULT_SOURCE_CONNECTIONS: usize = 4;
/// `connections` of a remote output when the job does not say.
pub const DEFAULT_OUTPUT_CONNECTIONS: usize = 4;

/// An output delivered to a remote place; its `folder` is the local outbox.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    pub endpoint: Endpoint,
    /// A done-file written after each file, e.g. `{name}.done`.
    pub done_file: Option<Template>,
    /// The outbox folder (the output's `folder`, without placeholders).
    pub outbox: PathBuf,
    /// Parallel connections (each sends the files whose name hashes to it, so one name
    /// always goes through the same connection, in order).
    pub connections: usize,
}

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
}

/// Exponential backoff: 1 s doubling to 5 min, with ±20% jitter so that many failing
/// deliveries do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            failures: 0,
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = (f64::from(nanos % 1000) / 1000.0 - 0.5) * 0.4; // -0.2 .. 0.2
        base.mul_f64(1.0 + jitter)
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

// ---------------------------------------------------------------------------------------
// Journal tables

const CREATE_ITEMS: &str = "CREATE TABLE IF NOT EXISTS remote_items (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    staged TEXT NOT NULL,
    part TEXT NOT NULL,
    state TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    remote TEXT NOT NULL,
    disposition TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    disposed_at INTEGER,
    error TEXT,
    PRIMARY KEY (job, key, version)
)";

const CREATE_DELIVERIES: &str = "CREATE TABLE IF NOT EXISTS deliveries (
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    remote TEXT NOT NULL,
    final TEXT,
    error TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job, idx, file, size, mtime_ns)
)";

/// Creates the remote tables when missing. Waited for.
pub fn init_journal(journal: &Journal) -> anyhow::Result<()> {
    journal.exec(CREATE_ITEMS, Vec::new(), false)?;
    journal.exec(CREATE_DELIVERIES, Vec::new(), true)?;
    Ok(())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// An error or other free text for the journal: secrets scrubbed (a server's reply may
/// echo one).
fn free_text(s: &str) -> Value {
    Value::Text(crate::redact::scrub(s).into_owned())
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

// ---------------------------------------------------------------------------------------
// Source side

/// A downloaded file, not yet committed.
struct Part {
    item: Listed,
    part_name: String,
    part: PathBuf,
    staged: PathBuf,
    meta: Meta,
}

/// One job's fetcher: polls, downloads to staging, disposes of finished originals.
pub struct SourceRunner {
    job: Arc<Job>,
    remote: RemoteSource,
    journal: Arc<Journal>,
    /// Lists and disposes of originals (and downloads, with one connection).
    fetcher: Box<dyn Fetcher>,
    /// The download connections when `connections` > 1 (made on first use, kept).
    pool: Vec<Box<dyn Fetcher>>,
    tracker: Tracker,
    /// (key, version) already in the journal: not taken again.
    known: HashSet<(String, String)>,
    last_error: Option<String>,
    /// Told the path of every file renamed into staging (`run --once`: the runner takes it
    /// at once instead of waiting for the end of the download phase).
    pub on_staged: Option<tokio::sync::mpsc::UnboundedSender<PathBuf>>,
    /// Staged files the runner has finished (`run --once`): their originals are disposed
    /// of while the downloads go on.
    pub finished_rx: Option<std::sync::mpsc::Receiver<PathBuf>>,
    /// Finished staged files whose journal record was not readable yet: looked at again.
    finished_wait: Vec<PathBuf>,
}

impl SourceRunner {
    pub fn new(job: Arc<Job>, journal: Arc<Journal>) -> Option<SourceRunner> {
        let remote = job.source.remote.clone()?;
        let fetcher = remote.endpoint.fetcher();
        Some(SourceRunner {
            tracker: Tracker::new(remote.settle),
            job,
            remote,
            journal,
            fetcher,
            pool: Vec::new(),
            known: HashSet::new(),
            last_error: None,
            on_staged: None,
            finished_rx: None,
            finished_wait: Vec::new(),
        })
    }

    fn staging(&self) -> &Path {
        &self.job.source.folder
    }

    /// At start: finishes renames the journal recorded, removes part files it did not.
    pub fn recover(&mut self) {
        let job = self.job.name.clone();
        let rows: Vec<(String, String, String, String)> = self
            .journal
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT key, version, staged, part FROM remote_items WHERE job = ?1 AND state = 'fetched'",
                )?;
                st.query_map([&job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .unwrap_or_default();
        let mut parts_kept = HashSet::new();
        for (key, version, staged, part) in rows {
            let Ok(staged_path) = fsutil::safe_join(self.staging(), &staged, false) else {
                continue;
            };
            let part_path = staged_path.with_file_name(&part);
            let state = if fsutil::exists(&staged_path) {
                "staged"
            } else if fsutil::exists(&part_path)
                && fsutil::rename_noreplace(&part_path, &staged_path).is_ok()
            {
                let _ = fsutil::sync_dir(staged_path.parent().unwrap_or(self.staging()));
                tracing::info!(file = %staged, "Finished staging a file fetched before the stop.");
                "staged"
            } else {
                parts_kept.insert(part_path);
                "lost"
            };
            let _ = self.journal.exec(
                "UPDATE remote_items SET state = ?4 WHERE job = ?1 AND key = ?2 AND version = ?3",
                vec![text(&job), text(&key), text(&version), text(state)],
                false,
            );
            if state == "lost" {
                // Neither the part nor the staged file is there: take it again.
                let _ = self.journal.exec(
                    "DELETE FROM remote_items WHERE job = ?1 AND key = ?2 AND version = ?3",
                    vec![text(&job), text(&key), text(&version)],
                    false,
                );
            }
        }
        let _ = self.journal.flush();
        for e in walkdir::WalkDir::new(self.staging())
            .into_iter()
            .filter_map(Result::ok)
        {
            let name = e.file_name().to_string_lossy();
            if e.file_type().is_file() && name.starts_with(".ferry-part-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// One poll: dispose of finished items, list, fetch what is ready. Returns when the
    /// next look is useful (the earliest settle deadline), if any.
    pub fn round(&mut self, stop: &AtomicBool) -> Option<Instant> {
        let result = self.dispose_finished().and_then(|_| self.fetch_ready(stop));
        match result {
            Ok(next) => {
                if self.last_error.take().is_some() {
                    tracing::info!(remote = %self.remote.endpoint.display(), "The remote source works again.");
                }
                next
            }
            Err(e) => {
                self.disconnect();
                let msg = e.to_string();
                if self.last_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(remote = %self.remote.endpoint.display(), error = %msg, "Cannot take files from the remote source; trying again at every poll.");
                    let _ = self.journal.job_status(
                        &self.job.name,
                        &format!("{} (error: {msg})", self.remote.endpoint.display()),
                        0,
                    );
                    self.last_error = Some(msg);
                }
                None
            }
        }
    }

    /// Items staged earlier whose local processing has finished: dispose of the originals.
    pub fn dispose_finished(&mut self) -> RResult<()> {
        let job = self.job.name.clone();
        let rows: Vec<(String, String, String, i64, i64)> = self
            .journal
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT key, version, staged, size, mtime_ns FROM remote_items WHERE job = ?1 AND state = 'staged'",
                )?;
                st.query_map([&job], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .map_err(|e| RemoteError::Transient(format!("journal: {e}")))?;
        for (key, version, staged, size, mtime_ns) in rows {
            self.dispose_row(&key, &version, &staged, size, mtime_ns)?;
        }
        Ok(())
    }

    /// Disposes of one staged item's original if the journal shows its staged copy
    /// finished; `Ok(false)` when it does not (yet).
    fn dispose_row(
        &mut self,
        key: &str,
        version: &str,
        staged: &str,
        size: i64,
        mtime_ns: i64,
    ) -> RResult<bool> {
        let job = self.job.name.clone();
        let Ok(path) = fsutil::safe_join(self.staging(), staged, false) else {
            return Ok(false);
        };
        let id = Identity {
            path: path.to_string_lossy().into_owned(),
            size: size as u64,
            mtime_ns,
        };
        if !self.journal.was_finished(&job, &id).unwrap_or(false) {
            return Ok(false);
        }
        self.fetcher.dispose(key, &self.remote.success)?;
        if self.remote.success != Disposal::Keep {
            tracing::info!(remote_file = %key, disposition = self.remote.success.as_str(), "Remote original disposed of.");
        }
        let _ = self.journal.exec(
            "UPDATE remote_items SET state = 'disposed', disposed_at = ?4 WHERE job = ?1 AND key = ?2 AND version = ?3",
            vec![text(&job), text(key), text(version), int(now_ms())],
            false,
        );
        Ok(true)
    }

    /// `run --once`: disposes of the originals of the staged files the runner reported
    /// finished (the same journal check as [`SourceRunner::dispose_finished`], per item).
    /// Returns whether the runner is still reporting.
    pub fn dispose_reported(&mut self, wait: Duration) -> RResult<bool> {
        let mut open = true;
        let mut paths = std::mem::take(&mut self.finished_wait);
        if let Some(rx) = &self.finished_rx {
            let first = if paths.is_empty() {
                match rx.recv_timeout(wait) {
                    Ok(p) => Some(p),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else {
                None
            };
            paths.extend(first);
            loop {
                match rx.try_recv() {
                    Ok(p) => paths.push(p),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        } else {
            open = false;
        }
        let job = self.job.name.clone();
        let mut later = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let Ok(rel) = p.strip_prefix(self.staging()) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            // A file is staged under its remote key (`commit`): the lookup uses the
            // primary key's (job, key) prefix, not a scan of every row ever fetched.
            let rows: Vec<(String, String, i64, i64)> = self
                .journal
                .read(|c| {
                    let mut st = c.prepare_cached(
                        "SELECT key, version, size, mtime_ns FROM remote_items WHERE job = ?1 AND key = ?2 AND staged = ?2 AND state IN ('fetched', 'staged')",
                    )?;
                    st.query_map([&job, &rel], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                })
                .map_err(|e| RemoteError::Transient(format!("journal: {e}")))?;
            // No row: not fetched by this job (or disposed of already); the final pass
            // of `finish_once` looks at every staged row anyway.
            let mut all = true;
            for (key, version, size, mtime_ns) in rows {
                match self.dispose_row(&key, &version, &rel, size, mtime_ns) {
                    Ok(done) => all &= done,
                    Err(e) => {
                        self.finished_wait.extend(paths[i..].iter().cloned());
                        self.finished_wait.extend(later);
                        return Err(e);
                    }
                }
            }
            if !all {
                // Not readable in the journal yet (its writes are in flight): next time.
                later.push(p.clone());
            }
        }
        self.finished_wait = later;
        Ok(open)
    }

    fn is_known(&mut self, item: &Listed) -> bool {
        let k = (item.key.clone(), item.version());
        if self.known.contains(&k) {
            return true;
        }
        let keep = self.remote.success == Disposal::Keep;
        let found: Option<String> = self
            .journal
            .read(|c| {
                c.query_row(
                    "SELECT state FROM remote_items WHERE job = ?1 AND key = ?2 AND version = ?3",
                    [&self.job.name, &k.0, &k.1],
                    |r| r.get(0),
                )
                .optional()
            })
            .ok()
            .flatten();
        // A deleted or moved original that shows up again is a new file, even with the
        // same size and time; a kept one is the same file.
        let known = match found.as_deref() {
            None => false,
            Some("disposed") => keep,
            Some(_) => true,
        };
        if known {
            self.known.insert(k);
        }
        known
    }

    fn fetch_ready(&mut self, stop: &AtomicBool) -> RResult<Option<Instant>> {
        let listed = self.fetcher.list(self.job.source.recursive)?;
        let names: HashSet<&str> = listed.iter().map(|l| l.key.as_str()).collect();
        let mut seen = HashSet::new();
        let mut ready = Vec::new();
        let mut next: Option<Instant> = None;
        let now = Instant::now();
        for item in &listed {
            let (dir, name) = match item.key.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", item.key.as_str()),
            };
            if !self.job.source.matches(name) || dir.split('/').any(|c| c.starts_with('.')) {
                continue;
            }
            if let Disposal::Move(to) = &self.remote.success
                && (dir == to || dir.starts_with(&format!("{to}/")))
            {
                continue;
            }
            let path = PathBuf::from(&item.key);
            seen.insert(path.clone());
            if self.is_known(item) {
                continue;
            }
            let gate = match &self.remote.ready {
                Ready::Settle => true,
                Ready::DoneFile(list) => done_names(list, name).iter().any(|d| {
                    let k = if dir.is_empty() {
                        d.clone()
                    } else {
                        format!("{dir}/{d}")
                    };
                    names.contains(k.as_str())
                }),
            };
            let meta = Meta {
                size: item.size,
                mtime_ns: item.mtime_ns,
            };
            match self.tracker.observe(&path, meta, now, gate, now_ms()) {
                Verdict::Ready { .. } => ready.push(item.clone()),
                Verdict::WaitUntil(t) => next = Some(next.map_or(t, |n| n.min(t))),
                Verdict::Blocked | Verdict::Ignore => {}
            }
        }
        self.tracker.forget_missing(&seen);
        let workers = self.remote.connections.saturating_sub(1).min(ready.len());
        if workers > 1 || (workers == 1 && self.finished_rx.is_some()) {
            return self.fetch_parallel(ready, workers, stop).map(|()| next);
        }
        // Downloaded files are committed in small batches: one durable journal write and
        // one folder fsync per batch, not per file (a batch also ends after a second, so
        // big files do not wait for each other).
        let mut batch: Vec<Part> = Vec::new();
        let mut batch_started = Instant::now();
        let mut result = Ok(next);
        let mut rest = ready.into_iter();
        for item in rest.by_ref() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Whatever happens, the tracker lets go of the item: a file not fetched now
            // (the previous version is still staged, it changed, an error) is looked at
            // again, and settles again, from the next listing on.
            self.tracker.finished(Path::new(&item.key), None);
            match download(self.fetcher.as_mut(), &self.job.source.folder, &item, stop) {
                Ok(Some(part)) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    batch.push(part);
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if batch.len() >= 64 || batch_started.elapsed() > Duration::from_secs(1) {
                self.commit(std::mem::take(&mut batch))?;
                // `run --once`: originals of finished files, between downloads.
                if self.finished_rx.is_some() {
                    self.dispose_reported(Duration::ZERO)?;
                }
            }
        }
        for item in rest {
            self.tracker.finished(Path::new(&item.key), None);
        }
        self.commit(batch)?;
        result
    }

    /// Downloads `ready` over `workers` connections of their own (a thread each, taking
    /// the next item as they go) while this thread commits what they hand back in batches
    /// and, in `run --once`, disposes of finished originals on the main connection. The
    /// first error stops the handing out; what was downloaded is still committed, and the
    /// error is returned.
    fn fetch_parallel(
        &mut self,
        ready: Vec<Listed>,
        workers: usize,
        stop: &AtomicBool,
    ) -> RResult<()> {
        let mut pool = std::mem::take(&mut self.pool);
        while pool.len() < workers {
            pool.push(self.remote.endpoint.fetcher());
        }
        let staging = self.staging().to_path_buf();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let mut first_err: Option<RemoteError> = None;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<RResult<Option<Part>>>();
            for f in pool.iter_mut().take(workers) {
                let tx = tx.clone();
                let (ready, next, abort, staging) = (&ready, &next, &abort, &staging);
                let span = tracing::Span::current();
                s.spawn(move || {
                    let _g = span.enter();
                    while !stop.load(Ordering::Relaxed) && !abort.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = ready.get(i) else { break };
                        let r = download(f.as_mut(), staging, item, stop);
                        if r.is_err() {
                            f.disconnect();
                            abort.store(true, Ordering::Relaxed);
                        }
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut batch: Vec<Part> = Vec::new();
            let mut batch_started = Instant::now();
            let mut disposing = self.finished_rx.is_some();
            loop {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(Ok(Some(part))) => {
                        if batch.is_empty() {
                            batch_started = Instant::now();
                        }
                        batch.push(part);
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if (batch.len() >= 64
                    || (!batch.is_empty() && batch_started.elapsed() > Duration::from_secs(1)))
                    && let Err(e) = self.commit(std::mem::take(&mut batch))
                {
                    abort.store(true, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
                if disposing && let Err(e) = self.dispose_reported(Duration::ZERO) {
                    // The main connection failed: the downloads go on; disposal is tried
                    // again after them.
                    tracing::warn!(error = %e, "Cannot dispose of remote originals now; trying again later.");
                    self.fetcher.disconnect();
                    disposing = false;
                }
            }
            if let Err(e) = self.commit(batch) {
                first_err.get_or_insert(e);
            }
        });
        self.pool = pool;
        // Every item (downloaded, refused or never handed out) leaves the tracker: the
        // next listing decides again, from the journal and from scratch.
        for item in &ready {
            self.tracker.finished(Path::new(&item.key), None);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records a batch of downloaded parts (durably), then renames them into place.
    fn commit(&mut self, parts: Vec<Part>) -> RResult<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let local = |e: std::io::Error| RemoteError::Transient(format!("staging: {e}"));
        // The parts' bytes first, then the journal, then the renames: a crash after the
        // journal write finishes the renames at start.
        sync_files(self.staging(), &parts).map_err(local)?;
        let n = parts.len();
        for (i, p) in parts.iter().enumerate() {
            let r = self.journal.exec(
                "INSERT OR REPLACE INTO remote_items (job, key, version, staged, part, state, size, mtime_ns, remote, disposition, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'fetched', ?6, ?7, ?8, ?9, ?10)",
                vec![
                    text(&self.job.name),
                    text(&p.item.key),
                    text(&p.item.version()),
                    text(&p.item.key),
                    text(&p.part_name),
                    int(p.meta.size as i64),
                    int(p.meta.mtime_ns),
                    text(&self.remote.endpoint.display()),
                    text(self.remote.success.as_str()),
                    int(now_ms()),
                ],
                i + 1 == n,
            );
            if let Err(e) = r {
                for p in &parts {
                    let _ = std::fs::remove_file(&p.part);
                }
                return Err(RemoteError::Transient(format!("journal: {e}")));
            }
        }
        let mut dirs = HashSet::new();
        for p in &parts {
            fsutil::rename_noreplace(&p.part, &p.staged).map_err(local)?;
            dirs.insert(p.staged.parent().unwrap_or(self.staging()).to_path_buf());
        }
        for d in dirs {
            fsutil::sync_dir(&d).map_err(local)?;
        }
        for p in parts {
            let _ = self.journal.exec(
                "UPDATE remote_items SET state = 'staged' WHERE job = ?1 AND key = ?2 AND version = ?3",
                vec![
                    text(&self.job.name),
                    text(&p.item.key),
                    text(&p.item.version()),
                ],
                false,
            );
            self.known.insert((p.item.key.clone(), p.item.version()));
            tracing::info!(remote_file = %p.item.key, size = p.item.size, "Fetched from the remote source.");
            if let Some(tx) = &self.on_staged {
                let _ = tx.send(p.staged.clone());
            }
        }
        Ok(())
    }

    pub fn disconnect(&mut self) {
        self.fetcher.disconnect();
        for f in &mut self.pool {
            f.disconnect();
        }
    }
}

/// Downloads one item into a hidden part file in staging (made durable by the batch's
/// commit). `None`: not now.
fn download(
    fetcher: &mut dyn Fetcher,
    staging: &Path,
    item: &Listed,
    stop: &AtomicBool,
) -> RResult<Option<Part>> {
    let staged = fsutil::safe_join(staging, &item.key, false)
        .map_err(|e| RemoteError::Permanent(format!("{}: {e}", item.key)))?;
    if fsutil::exists(&staged) {
        // The previous file of that name is still being processed: keep the name (it
        // feeds output names) and take this one after.
        return Ok(None);
    }
    let dir = staged.parent().unwrap_or(staging).to_path_buf();
    let local = |e: std::io::Error| RemoteError::Transient(format!("staging: {e}"));
    fsutil::create_dir_all_durable(&dir).map_err(local)?;
    let part_name = format!(".ferry-part-{}", &fsutil::temp_name()[11..]);
    let part = dir.join(&part_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .map_err(local)?;
    let got = match fetcher.fetch(item, &mut f, stop) {
        Ok(n) => n,
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if got != item.size {
        drop(f);
        let _ = std::fs::remove_file(&part);
        tracing::info!(remote_file = %item.key, listed = item.size, got, "The remote file changed while it was fetched; it settles again.");
        return Ok(None);
    }
    // Made durable with the rest of its batch in `commit` (one syncfs, not an fsync
    // per file).
    let synced = f.metadata();
    drop(f);
    let md = match synced {
        Ok(md) => md,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(local(e));
        }
    };
    Ok(Some(Part {
        item: item.clone(),
        part_name,
        part,
        staged,
        meta: crate::sources::folder::meta_of(&md),
    }))
}

/// Makes the parts' contents durable: one `syncfs` for the whole batch on Linux (the
/// staging folder's file system), an fsync per file elsewhere.
fn sync_files(staging: &Path, parts: &[Part]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(staging)?;
        // SAFETY: syncfs(2) on a file descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
            return Ok(());
        }
    }
    for p in parts {
        std::fs::File::open(&p.part)?.sync_all()?;
    }
    Ok(())
}

fn done_names(list: &[Template], name: &str) -> Vec<String> {
    list.iter()
        .map(|t| {
            t.render(&Vars {
                name,
                dir: "",
                job: "",
                seq: 0,
                taken: chrono::Local::now(),
                record: None,
                mail: None,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Destination side

/// One output's deliverer: sends outbox files, with backoff after failures.
pub struct DeliveryRunner {
    /// (this connection, of how many): the share of the outbox this runner sends.
    share: (usize, usize),
    job: Arc<Job>,
    idx: usize,
    target: RemoteTarget,
    exists: Exists,
    journal: Arc<Journal>,
    deliverer: Box<dyn Deliverer>,
    pub backoff: Backoff,
    last_error: Option<String>,
}

/// Which of `n` connections sends the outbox file `rel` (FNV-1a of the name: stable
/// across runs, so an interrupted file is checked by the connection that sent it).
fn share_of(rel: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rel.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// What one delivery round left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// The outbox is empty.
    Empty,
    /// A failure: retry after this long.
    RetryIn(Duration),
    /// Stopped before the end.
    Stopped,
}

impl DeliveryRunner {
    pub fn new(
        job: Arc<Job>,
        idx: usize,
        journal: Arc<Journal>,
        share: (usize, usize),
    ) -> Option<DeliveryRunner> {
        let out = job.outputs.get(idx)?;
        let target = out.deliver.clone()?;
        Some(DeliveryRunner {
            share,
            deliverer: target.endpoint.deliverer(),
            exists: out.exists,
            target,
            job,
            idx,
            journal,
            backoff: Backoff::default(),
            last_error: None,
        })
    }

    /// Outbox files, oldest first, as (path, relative name).
    fn pending(&self) -> Vec<(PathBuf, String, Meta)> {
        let mut out: Vec<(PathBuf, String, Meta)> = walkdir::WalkDir::new(&self.target.outbox)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(&self.target.outbox)
                    .ok()?
                    .to_string_lossy()
                    .replace('\\', "/");
                if self.share.1 > 1 && share_of(&rel, self.share.1) != self.share.0 {
                    return None;
                }
                let md = e.metadata().ok()?;
                Some((
                    e.path().to_path_buf(),
                    rel,
                    crate::sources::folder::meta_of(&md),
                ))
            })
            .collect();
        out.sort_by(|a, b| (a.2.mtime_ns, &a.1).cmp(&(b.2.mtime_ns, &b.1)));
        out
    }

    pub fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    fn row_state(&self, rel: &str, m: Meta) -> Option<String> {
        self.journal
            .read(|c| {
                c.query_row(
                    "SELECT state FROM deliveries WHERE job = ?1 AND idx = ?2 AND file = ?3 AND size = ?4 AND mtime_ns = ?5",
                    rusqlite::params![self.job.name, self.idx as i64, rel, m.size as i64, m.mtime_ns],
                    |r| r.get(0),
                )
                .optional()
            })
            .ok()
            .flatten()
    }

    fn record(
        &self,
        rel: &str,
        m: Meta,
        state: &str,
        fin: Option<&str>,
        err: Option<&str>,
        wait: bool,
    ) {
        let _ = self.journal.exec(
            "INSERT INTO deliveries (job, idx, file, size, mtime_ns, state, attempts, remote, final, error, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?6 = 'delivering' THEN 1 ELSE 0 END, ?7, ?8, ?9, ?10)
             ON CONFLICT (job, idx, file, size, mtime_ns) DO UPDATE SET state = excluded.state,
               attempts = attempts + CASE WHEN excluded.state = 'delivering' THEN 1 ELSE 0 END,
               final = COALESCE(excluded.final, final), error = excluded.error, updated_at = excluded.updated_at",
            vec![
                text(&self.job.name),
                int(self.idx as i64),
                text(rel),
                int(m.size as i64),
                int(m.mtime_ns),
                text(state),
                text(&self.target.endpoint.display()),
                fin.map_or(Value::Null, text),
                err.map_or(Value::Null, free_text),
                int(now_ms()),
            ],
            wait,
        );
    }

    /// Removes the outbox file unless it was replaced meanwhile (then the new one is
    /// delivered next round). Whether it was removed.
    fn remove_sent(&self, path: &Path, m: Meta) -> bool {
        let same = std::fs::symlink_metadata(path)
            .map(|md| crate::sources::folder::meta_of(&md) == m)
            .unwrap_or(false);
        // No folder fsync here: a removal undone by a power loss finds the journal's
        // `delivered` (or `delivering` and the same bytes on the server): not sent again.
        same && std::fs::remove_file(path).is_ok()
    }

    /// Makes the removals of sent outbox files durable (one fsync per folder), then marks
    /// their rows `+removed`: from then on a file with the same name, size and time in the
    /// outbox is a new file (an original linked into the outbox keeps the original's
    /// time, so a partner's identical re-send can look the same) and is sent.
    fn settle_removed(&self, removed: &mut Vec<(PathBuf, String, Meta, &'static str)>) {
        if removed.is_empty() {
            return;
        }
        let mut dirs: Vec<&Path> = removed.iter().filter_map(|(p, ..)| p.parent()).collect();
        dirs.sort();
        dirs.dedup();
        if dirs.iter().any(|d| fsutil::sync_dir(d).is_err()) {
            // Left `delivered`: a same-looking file is then taken for this one (the
            // behaviour before), never sent twice.
            removed.clear();
            return;
        }
        for (_, rel, m, state) in removed.drain(..) {
            let _ = self.journal.exec(
                "UPDATE deliveries SET state = ?6 WHERE job = ?1 AND idx = ?2 AND file = ?3 AND size = ?4 AND mtime_ns = ?5",
                vec![
                    text(&self.job.name),
                    int(self.idx as i64),
                    text(&rel),
                    int(m.size as i64),
                    int(m.mtime_ns),
                    text(&format!("{state}+removed")),
                ],
                false,
            );
        }
    }

    /// Sends every outbox file once, in order. Stops at the first failure (the destination
    /// is probably down: the rest would fail the same way).
    pub fn round(&mut self, stop: &AtomicBool) -> RoundEnd {
        let files = self.pending();
        if files.is_empty() {
            return RoundEnd::Empty;
        }
        let mut removed: Vec<(PathBuf, String, Meta, &'static str)> = Vec::new();
        let end = self.round_files(&files, stop, &mut removed);
        self.settle_removed(&mut removed);
        if let Some(end) = end {
            return end;
        }
        if self.last_error.take().is_some() {
            tracing::info!(remote = %self.target.endpoint.display(), "The destination works again.");
        }
        self.backoff.succeed();
        if self.has_pending() {
            RoundEnd::RetryIn(Duration::ZERO)
        } else {
            RoundEnd::Empty
        }
    }

    /// The body of [`DeliveryRunner::round`]; `Some` when it ended early. Sent files whose
    /// outbox copy was removed are added to `removed`.
    fn round_files(
        &mut self,
        files: &[(PathBuf, String, Meta)],
        stop: &AtomicBool,
        removed: &mut Vec<(PathBuf, String, Meta, &'static str)>,
    ) -> Option<RoundEnd> {
        for chunk in files.chunks(64) {
            self.settle_removed(removed);
            let mut todo = Vec::with_capacity(chunk.len());
            for (path, rel, m) in chunk {
                match self.row_state(rel, *m).as_deref() {
                    Some("delivering") => {
                        // Interrupted after sending? Then the final name is there already.
                        match self.deliverer.is_there(rel, path, m.size) {
                            Ok(true) => {
                                tracing::info!(file = %rel, "Delivered before the stop; not sent again.");
                                self.record(rel, *m, "delivered", Some(rel), None, false);
                                if self.remove_sent(path, *m) {
                                    removed.push((path.clone(), rel.clone(), *m, "delivered"));
                                }
                                continue;
                            }
                            Ok(false) => {}
                            Err(e) => return Some(self.failed(e)),
                        }
                    }
                    // Sent, but the removal of the outbox copy may have been undone by a power
                    // loss (rows whose removal was made durable are `+removed`: a file that
                    // looks the same is then a new one, and is sent).
                    Some(state @ ("delivered" | "skipped")) => {
                        if self.remove_sent(path, *m) {
                            let state = if state == "delivered" {
                                "delivered"
                            } else {
                                "skipped"
                            };
                            removed.push((path.clone(), rel.clone(), *m, state));
                        }
                        continue;
                    }
                    _ => {}
                }
                todo.push((path.clone(), rel.clone(), *m));
            }
            // One durable journal write per batch, not per file. After a crash, a file
            // marked `delivering` is compared with the server's copy byte for byte
            // (`is_there`) instead of being sent again, so marking a few files early is safe.
            for (i, (_, rel, m)) in todo.iter().enumerate() {
                self.record(rel, *m, "delivering", None, None, i + 1 == todo.len());
            }
            for (path, rel, m) in todo {
                if stop.load(Ordering::Relaxed) {
                    return Some(RoundEnd::Stopped);
                }
                let done_name = self.target.done_file.as_ref().map(|t| {
                    let (dir, name) = match rel.rsplit_once('/') {
                        Some((d, n)) => (d.to_string(), n),
                        None => (String::new(), rel.as_str()),
                    };
                    let rendered = t.render(&Vars {
                        name,
                        dir: &dir,
                        job: &self.job.name,
                        seq: 0,
                        taken: chrono::Local::now(),
                        record: None,
                        mail: None,
                    });
                    if dir.is_empty() {
                        rendered
                    } else {
                        format!("{dir}/{rendered}")
                    }
                });
                match self
                    .deliverer
                    .deliver(&path, &rel, m.size, self.exists, done_name.as_deref())
                {
                    Ok(Delivered::Sent(fin)) => {
                        tracing::info!(file = %rel, remote = %self.target.endpoint.display(), remote_name = %fin, "Delivered.");
                        self.record(&rel, m, "delivered", Some(&fin), None, false);
                        if self.remove_sent(&path, m) {
                            removed.push((path, rel, m, "delivered"));
                        }
                    }
                    Ok(Delivered::Skipped) => {
                        tracing::info!(file = %rel, "The remote name exists; skipped (exists = \"skip\").");
                        self.record(&rel, m, "skipped", None, None, false);
                        if self.remove_sent(&path, m) {
                            removed.push((path, rel, m, "skipped"));
                        }
                    }
                    Err(RemoteError::Permanent(msg)) => {
                        tracing::error!(file = %rel, error = %msg, "Cannot be delivered; moved to the error folder.");
                        self.to_error_folder(&path, &rel, &msg);
                        self.record(&rel, m, "failed", None, Some(&msg), false);
                    }
                    Err(e) => {
                        // Stays `delivering`: the rename may have happened before the error.
                        return Some(self.failed(e));
                    }
                }
            }
        }
        None
    }

    fn failed(&mut self, e: RemoteError) -> RoundEnd {
        self.deliverer.disconnect();
        let wait = self.backoff.fail();
        let msg = e.to_string();
        // For `ferry status`: the error on the files waiting for this output.
        let _ = self.journal.exec(
            "UPDATE deliveries SET error = ?3, updated_at = ?4 WHERE job = ?1 AND idx = ?2 AND state = 'delivering'",
            vec![
                text(&self.job.name),
                int(self.idx as i64),
                free_text(&msg),
                int(now_ms()),
            ],
            false,
        );
        if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::error!(remote = %self.target.endpoint.display(), error = %msg, pending = self.pending().len(), "Delivery failed; the files stay in the outbox and are retried with backoff.");
            self.last_error = Some(msg);
        }
        RoundEnd::RetryIn(wait)
    }

    fn to_error_folder(&self, path: &Path, rel: &str, msg: &str) {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let dir = self.job.after.error.render(&Vars {
            name,
            dir: "",
            job: &self.job.name,
            seq: 0,
            taken: chrono::Local::now(),
            record: None,
            mail: None,
        });
        let dir = PathBuf::from(dir);
        if fsutil::create_dir_all_durable(&dir).is_err() {
            return;
        }
        let dest = (0..10_000)
            .map(|n| fsutil::numbered(&dir.join(name), n))
            .find(|p| {
                !fsutil::exists(p) && !fsutil::exists(&crate::runtime::process::report_path(p))
            });
        if let Some(dest) = dest
            && fsutil::rename_noreplace(path, &dest).is_ok()
        {
            let report = format!(
                "file: {name}\njob: {}\noutput: {}\ndestination: {}\nerror: {msg}\n",
                self.job.name,
                self.idx + 1,
                self.target.endpoint.display()
            );
            let _ = fsutil::write_new_durable(
                &crate::runtime::process::report_path(&dest),
                report.as_bytes(),
            );
            let _ = fsutil::sync_dir(&dir);
        }
    }

    pub fn disconnect(&mut self) {
        self.deliverer.disconnect();
    }

    pub fn warm_up(&mut self) {
        self.deliverer.warm_up();
    }
}

// ---------------------------------------------------------------------------------------
// Threads

/// The remote threads of one job (daemon mode).
pub struct RemoteTasks {
    stop: Arc<AtomicBool>,
    /// `run --once`: deliver what is in the outbox, then end (bounded in time).
    drain: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Sleeps up to `d`, waking early when `stop` is set.
fn nap(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

fn log_start_warnings(job: &Job) {
    let eps = job.source.remote.iter().map(|r| &r.endpoint).chain(
        job.outputs
            .iter()
            .filter_map(|o| o.deliver.as_ref().map(|d| &d.endpoint)),
    );
    for ep in eps {
        if let Some(w) = ep.start_warning() {
            tracing::warn!(job = %job.name, "{w}");
        }
    }
}

/// Whether a job has anything remote.
pub fn is_remote(job: &Job) -> bool {
    job.source.remote.is_some() || job.outputs.iter().any(|o| o.deliver.is_some())
}

impl RemoteTasks {
    /// Starts the fetcher and the deliverers of a job, if it has any. With `once`, only
    /// the deliverers (they overlap the local pass; [`RemoteTasks::finish`] drains them).
    pub fn spawn(job: &Arc<Job>, journal: &Arc<Journal>, once: bool) -> Option<RemoteTasks> {
        if !is_remote(job) {
            return None;
        }
        if let Err(e) = init_journal(journal) {
            tracing::error!(job = %job.name, error = %e, "Cannot prepare the journal for remote transfers.");
            return None;
        }
        if !once || job.source.remote.is_none() {
            log_start_warnings(job);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let fetcher = if once {
            None
        } else {
            SourceRunner::new(job.clone(), journal.clone())
        };
        if let Some(mut src) = fetcher {
            let stop = stop.clone();
            let poll = job.source.poll;
            let span = tracing::info_span!("job", job = %job.name);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ferry-fetch-{}", job.name))
                    .spawn(move || {
                        let _g = span.enter();
                        src.recover();
                        while !stop.load(Ordering::Relaxed) {
                            let next = src.round(&stop);
                            let wait = next
                                .map(|t| t.saturating_duration_since(Instant::now()))
                                .map_or(poll, |d| d.min(poll));
                            nap(&stop, wait.max(Duration::from_millis(50)));
                        }
                        src.disconnect();
                    })
                    .expect("fetcher thread"),
            );
        }
        let shares = job.outputs.iter().enumerate().flat_map(|(idx, o)| {
            let n = o.deliver.as_ref().map_or(0, |d| d.connections.max(1));
            (0..n).map(move |k| (idx, k, n))
        });
        for (idx, k, n) in shares {
            let Some(mut d) = DeliveryRunner::new(job.clone(), idx, journal.clone(), (k, n)) else {
                continue;
            };
            let stop = stop.clone();
            let drain = drain.clone();
            let span = tracing::info_span!("job", job = %job.name, output = idx + 1);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ferry-deliver-{}-{}-{k}", job.name, idx + 1))
                    .spawn(move || {
                        let _g = span.enter();
                        if once {
                            d.warm_up();
                        }
                        let mut idle_since = Instant::now();
                        let mut deadline: Option<Instant> = None;
                        while !stop.load(Ordering::Relaxed) {
                            if deadline.is_none() && drain.load(Ordering::Relaxed) {
                                deadline = Some(Instant::now() + once_delivery_bound());
                            }
                            match d.round(&stop) {
                                RoundEnd::Empty if deadline.is_some() => break,
                                RoundEnd::RetryIn(w)
                                    if deadline.is_some_and(|end| Instant::now() + w > end) =>
                                {
                                    tracing::warn!(pending = d.pending().len(), outbox = %d.target.outbox.display(), "Deliveries still failing; the files stay in the outbox for the next run.");
                                    break;
                                }
                                RoundEnd::Empty if once => nap(&drain, Duration::from_millis(50)),
                                RoundEnd::Empty => {
                                    // Close an idle connection after a while.
                                    if idle_since.elapsed() > Duration::from_secs(60) {
                                        d.disconnect();
                                    }
                                    nap(&stop, Duration::from_millis(200));
                                }
                                RoundEnd::RetryIn(w) => {
                                    idle_since = Instant::now();
                                    nap(&stop, w);
                                }
                                RoundEnd::Stopped => break,
                            }
                            if d.has_pending() {
                                idle_since = Instant::now();
                            }
                        }
                        d.disconnect();
                    })
                    .expect("deliverer thread"),
            );
        }
        Some(RemoteTasks {
            stop,
            drain,
            threads,
        })
    }

    /// `run --once`: lets the deliverers send what is in the outboxes (retrying up to
    /// [`ONCE_DELIVERY_BOUND`] or `FERRY_DELIVERY_WAIT`), then waits for them.
    pub fn finish(self) {
        self.drain.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Stops the threads (an in-flight transfer is abandoned safely) and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// `run --once` with a remote source: the fetcher on a thread of its own, as in the
/// daemon, so that the runner takes each batch as soon as it is staged and the originals
/// are disposed of as the runner finishes their staged copies, instead of three phases
/// one after the other (download all, process all, dispose of all).
pub struct OnceFetch {
    thread: std::thread::JoinHandle<()>,
}

impl OnceFetch {
    /// Fetches what is ready now (two listings `settle` apart, so that a file still
    /// growing is left for a later run), telling `staged` the path of each staged file;
    /// then, until the runner drops its end of `finished`, disposes of the originals of
    /// the files it reports finished. [`finish_once`] makes a last full pass after.
    pub fn start(
        job: &Arc<Job>,
        journal: &Arc<Journal>,
        staged: tokio::sync::mpsc::UnboundedSender<PathBuf>,
        finished: std::sync::mpsc::Receiver<PathBuf>,
    ) -> Option<OnceFetch> {
        let mut src = SourceRunner::new(job.clone(), journal.clone())?;
        if let Err(e) = init_journal(journal) {
            tracing::error!(job = %job.name, error = %e, "Cannot prepare the journal for remote transfers.");
            return None;
        }
        log_start_warnings(job);
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name(format!("ferry-fetch-{}", job.name))
            .spawn(move || {
                let _g = span.enter();
                src.on_staged = Some(staged);
                src.finished_rx = Some(finished);
                let stop = AtomicBool::new(false);
                src.recover();
                if let Some(t) = src.round(&stop) {
                    while Instant::now() < t {
                        let left = t.saturating_duration_since(Instant::now());
                        let wait = left.min(Duration::from_millis(100));
                        if src.dispose_reported(wait).is_err() {
                            src.disconnect();
                            std::thread::sleep(wait);
                        }
                    }
                    src.round(&stop);
                }
                // Fetching is over: the runner learns it when this end is dropped.
                src.on_staged = None;
                loop {
                    match src.dispose_reported(Duration::from_millis(100)) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "Cannot dispose of remote originals now; trying again at the end of the run.");
                            break;
                        }
                    }
                }
                src.disconnect();
            })
            .ok()?;
        Some(OnceFetch { thread })
    }

    /// Waits for the thread (after the runner dropped its end of `finished`).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// How long `run --once` keeps retrying deliveries before leaving them in the outbox;
/// the environment variable `FERRY_DELIVERY_WAIT` (a duration like "2m") changes it.
pub const ONCE_DELIVERY_BOUND: Duration = Duration::from_secs(30);

fn once_delivery_bound() -> Duration {
    std::env::var("FERRY_DELIVERY_WAIT")
        .ok()
        .and_then(|v| crate::job::toml_reader::parse_duration(&v).ok())
        .unwrap_or(ONCE_DELIVERY_BOUND)
}

/// `run --once`, after the local pass: dispose of the remote originals whose staged
/// copies are finished.
pub fn finish_once(job: &Arc<Job>, journal: &Arc<Journal>) {
    if job.source.remote.is_none() || init_journal(journal).is_err() {
        return;
    }
    // The local pass's last records must be visible to the reader.
    let _ = journal.flush();
    if let Some(mut src) = SourceRunner::new(job.clone(), journal.clone()) {
        if let Err(e) = src.dispose_finished() {
            tracing::error!(error = %e, "Cannot dispose of remote originals; done at the next run.");
        }
        src.disconnect();
    }
    let _ = journal.flush();
}

// ---------------------------------------------------------------------------------------
// Status

/// One remote place of a job, for `ferry status`.
#[derive(Debug, serde::Serialize)]
pub struct RemoteStatus {
    pub job: String,
    /// "source" or "output N".
    pub part: String,
    pub remote: String,
    /// Source: fetched files whose remote original is not disposed of yet. Output: files
    /// waiting in the outbox.
    pub pending: usize,
    pub last_error: Option<String>,
}

/// The remote parts of the jobs, with what waits and the last delivery error.
pub fn status(conn: Option<&rusqlite::Connection>, jobs: &[&Job]) -> Vec<RemoteStatus> {
    let mut out = Vec::new();
    for job in jobs {
        if let Some(r) = &job.source.remote {
            let pending = conn
                .and_then(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM remote_items WHERE job = ?1 AND state IN ('fetched', 'staged')",
                        [&job.name],
                        |r| r.get::<_, i64>(0),
                    )
                    .ok()
                })
                .unwrap_or(0);
            out.push(RemoteStatus {
                job: job.name.clone(),
                part: "source".into(),
                remote: r.endpoint.display(),
                pending: pending as usize,
                last_error: None,
            });
        }
        for (idx, o) in job.outputs.iter().enumerate() {
            let Some(d) = &o.deliver else { continue };
            let pending = walkdir::WalkDir::new(&d.outbox)
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')
                })
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .count();
            let last_error = conn.and_then(|c| {
                c.query_row(
                    "SELECT error FROM deliveries WHERE job = ?1 AND idx = ?2 AND state = 'delivering' AND error IS NOT NULL ORDER BY updated_at DESC LIMIT 1",
                    rusqlite::params![job.name, idx as i64],
                    |r| r.get::<_, String>(0),
                )
                .ok()
            });
            out.push(RemoteStatus {
                job: job.name.clone(),
                part: format!("output {}", idx + 1),
                remote: d.endpoint.display(),
                pending,
                last_error: last_error
                    .filter(|_| pending > 0)
                    .map(|e| crate::redact::scrub(&e).into_owned()),
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Job file keys

use crate::job::toml_reader::{Diag, Doc, Str, TableReader};

/// Reads a remote URL (`ftp = "ftp://..."` / `ftps://`) and the endpoint keys beside it.
pub fn read_endpoint(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    url: &Str,
) -> Option<Endpoint> {
    let password = t.str(doc, "password");
    let ca_file = t.str(doc, "ca_file");
    let tls_verify = t.bool(doc, "tls_verify");
    let passive = t.bool(doc, "passive");
    let (mut ep, url_password) = match ftp::FtpEndpoint::parse(&url.value) {
        Ok(x) => x,
        Err(e) => {
            doc.error(url.span.clone(), &url.key, e);
            return None;
        }
    };
    let mut ok = true;
    ep.password = match (password, url_password) {
        (Some(_), Some(_)) => {
            doc.error(
                url.span.clone(),
                &url.key,
                "a password is given both in the URL and in `password`: keep only `password = \"${env:NAME}\"`",
            );
            ok = false;
            None
        }
        (Some(p), None) => match crate::secrets::Secret::parse(&p.value) {
            Ok(s) => Some(s),
            Err(e) => {
                doc.error(p.span.clone(), &p.key, e);
                ok = false;
                None
            }
        },
        (None, Some(p)) => Some(crate::secrets::Secret::Literal(p)),
        (None, None) => None,
    };
    if let Some(ca) = ca_file {
        if !ep.secure {
            doc.error(
                ca.span.clone(),
                &ca.key,
                "`ca_file` only matters for `ftps://` URLs",
            );
            ok = false;
        }
        ep.ca_file = Some(PathBuf::from(ca.value));
    }
    if let Some(v) = tls_verify {
        ep.tls_verify = v;
    }
    if let Some(p) = passive {
        ep.passive = p;
    }
    ok.then_some(Endpoint::Ftp(ep))
}

/// Warnings for `ferry check`: literal passwords in job files.
pub fn check_warnings(job: &Job) -> Vec<Diag> {
    let text = std::fs::read_to_string(&job.file).unwrap_or_default();
    let line_of = |needle: &str, nth: usize| -> usize {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(needle))
            .nth(nth)
            .map_or(1, |(i, _)| i + 1)
    };
    let mut out = Vec::new();
    let mut warn = |key: String, line: usize, what: &str| {
        out.push(Diag {
            file: job.file.clone(),
            line,
            col: 1,
            key,
            message: format!(
                "a literal password {what}: anyone who reads the job file has it; use `password = \"${{env:NAME}}\"` or `\"${{file:/path}}\"`"
            ),
        });
    };
    if let Some(r) = &job.source.remote
        && r.endpoint.literal_password()
    {
        warn("source.password".into(), line_of("ftp", 0), "in the source");
    }
    if job
        .source
        .mailbox
        .as_ref()
        .is_some_and(|m| m.password.is_literal())
    {
        warn(
            "source.password".into(),
            line_of("mailbox", 0),
            "in the source",
        );
    }
    for (i, o) in job.outputs.iter().enumerate() {
        if o.email
            .as_ref()
            .and_then(|e| e.password.as_ref())
            .is_some_and(|p| p.is_literal())
        {
            warn(
                format!("output[{}].password", i + 1),
                line_of("email", i),
                "in this output",
            );
        }
    }
    let mut nth = usize::from(job.source.remote.is_some());
    for (i, o) in job.outputs.iter().enumerate() {
        if let Some(d) = &o.deliver {
            if d.endpoint.literal_password() {
                warn(
                    format!("output[{}].password", i + 1),
                    line_of("ftp", nth),
                    "in this output",
                );
            }
            nth += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<Job, Vec<String>> {
        crate::job::compile(
            std::path::Path::new("jobs/t.toml"),
            std::path::Path::new("/srv/ferry"),
            src,
        )
        .map_err(|d| d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn ftp_job_keys() {
        let job = compile(
            "[source]\nftp = \"ftps://u@h:2121/out box\"\npassword = \"${env:PW}\"\nsettle = \"7s\"\nsuccess = \"move\"\nmove_to = \"done/\"\n\n[[output]]\nftp = \"ftp://w@h/in\"\npassword = \"lit\"\nconnections = 2\ndone_file = \"{name}.ok\"\n",
        )
        .unwrap();
        assert_eq!(
            job.source.folder,
            std::path::Path::new("/srv/ferry/var/staging/t")
        );
        assert_eq!(job.source.settle, Duration::ZERO, "staging is read at once");
        let r = job.source.remote.as_ref().unwrap();
        assert_eq!(r.settle, Duration::from_secs(7));
        assert_eq!(r.success, Disposal::Move("done".into()));
        assert!(!r.endpoint.literal_password());
        let d = job.outputs[0].deliver.as_ref().unwrap();
        assert_eq!(d.outbox, std::path::Path::new("/srv/ferry/var/outbox/t/1"));
        assert_eq!(d.connections, 2);
        assert!(d.endpoint.literal_password());
        assert_eq!(r.connections, DEFAULT_SOURCE_CONNECTIONS);
        let job = compile("[source]\nftp = \"ftp://u@h/x\"\nconnections = 1\n\n[[output]]\nftp = \"ftp://w@h/in\"\n").unwrap();
        assert_eq!(job.source.remote.as_ref().unwrap().connections, 1);
        assert_eq!(
            job.outputs[0].deliver.as_ref().unwrap().connections,
            DEFAULT_OUTPUT_CONNECTIONS
        );
        assert_eq!(
            job.outputs[0].folder.literal_prefix(),
            "/srv/ferry/var/outbox/t/1"
        );
    }

    #[test]
    fn ftp_job_mistakes_are_reported() {
        let errs = compile(
            "[source]\nftp = \"ftp://u@h/x\"\nfolder = \"in\"\nsuccess = \"move\"\n\n[[output]]\nftp = \"sftp://h/x\"\nconnections = 99\n",
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(
            all.contains("jobs/t.toml:3:10: source.folder: a remote source stages"),
            "{all}"
        );
        assert!(
            all.contains("source.move_to: `success = \"move\"` needs `move_to`"),
            "{all}"
        );
        assert!(all.contains("output[1].ftp: expected a URL like"), "{all}");
        assert!(
            all.contains("output[1].connections: expected 1 to 16"),
            "{all}"
        );
        let errs = compile("[source]\nfolder = \"in\"\nsuccess = \"delete\"\n").unwrap_err();
        assert!(errs[0].contains("unknown key `success`"), "{errs:?}");
    }

    #[test]
    fn connection_shares_are_stable_and_spread() {
        let n = 4;
        let mut counts = [0usize; 4];
        for i in 0..1000 {
            let k = share_of(&format!("f{i:05}.dat"), n);
            assert_eq!(k, share_of(&format!("f{i:05}.dat"), n));
            counts[k] += 1;
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..12).map(|_| b.fail()).collect();
        assert!(waits[0] >= Duration::from_millis(800) && waits[0] <= Duration::from_millis(1200));
        assert!(waits[1] >= Duration::from_millis(1600) && waits[1] <= Duration::from_millis(2400));
        assert!(waits[11] <= Duration::from_secs(360) && waits[11] >= Duration::from_secs(240));
        b.succeed();
        assert!(b.fail() <= Duration::from_millis(1200));
    }
}
