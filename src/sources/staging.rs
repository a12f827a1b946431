//! Remote sources as adapters around the local engine, which stays the one place where
//! files are processed (docs/remote.md has the reasons).
//!
//! A remote **source** is a [`Fetcher`] plus a local staging folder. The job's
//! `source.folder` *is* the staging folder; the normal runner takes files from it. A
//! fetcher thread per job polls the remote listing, decides readiness (size and time
//! unchanged for `settle`, or a done-file), downloads into `staging/.ferry-part-*`
//! (hidden, so the runner never sees it), checks the size, fsyncs, records the item in the
//! journal (`remote_items`, waited), then renames it into place. Only after the local
//! engine finished the staged file (done, or failed into the error folder) is the remote
//! original deleted, moved or kept ([`Disposal`]). The journal key (job, remote key,
//! version) keeps an item from being taken twice, even with `keep` and after a restart.
//!
//! Everything here is protocol-neutral: a kind only implements [`Fetcher`]. Mail
//! (docs/mail.md) is message-shaped rather than file-shaped: one message gives several
//! files and is disposed of once all of them are finished, so the mailbox has its own
//! fetcher ([`super::mailbox`]) built on the same staging rules and journal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use super::Fetcher;
use crate::fsutil;
use crate::job::remote::{Disposal, RemoteSource};
use crate::job::{Job, Ready};
use crate::journal::{Identity, Journal, now_ms};
use crate::protocol::{Listed, RResult, RemoteError};
use crate::readiness::{Meta, Tracker, Verdict};

pub(crate) const CREATE_ITEMS: &str = "CREATE TABLE IF NOT EXISTS remote_items (
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

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// An error or other free text for the journal: secrets scrubbed (a server's reply may
/// echo one).
pub(crate) fn free_text(s: &str) -> Value {
    Value::Text(crate::redact::scrub(s).into_owned())
}

pub(crate) fn int(i: i64) -> Value {
    Value::Integer(i)
}

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
        let fetcher = super::fetcher(&remote.endpoint);
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
                Ready::DoneFile(_) => self.remote.ready.done_files(name).iter().any(|d| {
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
                mtime_ns: item.change_stamp(),
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
            pool.push(super::fetcher(&self.remote.endpoint));
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
    #[cfg(not(target_os = "linux"))]
    let _ = staging;
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
