//! Remote outputs as adapters around the local engine (docs/remote.md has the reasons).
//!
//! A remote **destination** is a local outbox plus a [`Deliverer`]. The engine writes the
//! output into the outbox like any folder output (durably, atomically), so the original
//! is archived only once every output is safe on local disk. A deliverer thread per
//! (job, output) sends each outbox file, journals it in `deliveries`, and removes it.
//! Failures are retried with [`Backoff`]; one dead destination blocks nothing else.
//!
//! Everything here is protocol-neutral: a kind only implements [`Deliverer`]. The email
//! output ([`super::email`]) sends from an outbox the same way, with one mail per file or
//! batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use super::{Delivered, Deliverer};
use crate::fsutil;
use crate::job::remote::RemoteTarget;
use crate::job::template::Vars;
use crate::job::{Exists, Job};
use crate::journal::{Journal, now_ms};
use crate::protocol::RemoteError;
use crate::protocol::backoff::Backoff;
use crate::readiness::Meta;
use crate::sources::staging::{free_text, int, text};

pub(crate) const CREATE_DELIVERIES: &str = "CREATE TABLE IF NOT EXISTS deliveries (
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

/// One output's deliverer: sends outbox files, with backoff after failures.
pub struct DeliveryRunner {
    /// (this connection, of how many): the share of the outbox this runner sends.
    share: (usize, usize),
    job: Arc<Job>,
    idx: usize,
    pub(crate) target: RemoteTarget,
    exists: Exists,
    journal: Arc<Journal>,
    deliverer: Box<dyn Deliverer>,
    pub backoff: Backoff,
    last_error: Option<String>,
    /// Counts each failed send (`/metrics`' `ferry_output_failed_total`).
    failures: prometheus_client::metrics::counter::Counter,
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
        let backoff = backoff_of(&job.retry);
        Some(DeliveryRunner {
            share,
            deliverer: super::deliverer(&target.endpoint, &job, idx, &journal),
            exists: out.exists,
            target,
            job,
            idx,
            journal,
            backoff,
            last_error: None,
            failures: Default::default(),
        })
    }

    /// Counts this output's failed sends on `c` (the job's series, from the runtime).
    pub fn count_failures_on(&mut self, c: prometheus_client::metrics::counter::Counter) {
        self.failures = c;
    }

    /// Outbox files, oldest first, as (path, relative name).
    pub(crate) fn pending(&self) -> Vec<(PathBuf, String, Meta)> {
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
        // The destination's pause is over (another connection of this output may have
        // recorded it).
        let _ = self.journal.exec(
            "DELETE FROM retry_paused WHERE job = ?1 AND dest = ?2",
            vec![text(&self.job.name), text(&self.target.endpoint.display())],
            false,
        );
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
                if let Err(end) = self.send(path, rel, m, removed) {
                    return Some(end);
                }
            }
        }
        None
    }

    /// Sends one outbox file and records how it went; `Err` ends the round (the
    /// destination failed for a reason that may pass).
    fn send(
        &mut self,
        path: PathBuf,
        rel: String,
        m: Meta,
        removed: &mut Vec<(PathBuf, String, Meta, &'static str)>,
    ) -> Result<(), RoundEnd> {
        let done_name = self.done_name(&rel);
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
                self.failures.inc();
                tracing::error!(file = %rel, error = %msg, "Cannot be delivered; moved to the error folder.");
                self.to_error_folder(&path, &rel, &msg);
                self.record(&rel, m, "failed", None, Some(&msg), false);
            }
            // Stays `delivering`: the rename may have happened before the error.
            Err(e) => return Err(self.failed(e)),
        }
        Ok(())
    }

    /// The name of the done file sent after the outbox file `rel` (`done_file`), beside it.
    fn done_name(&self, rel: &str) -> Option<String> {
        let t = self.target.done_file.as_ref()?;
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let rendered = t.render(&Vars {
            name,
            dir,
            job: &self.job.name,
            seq: 0,
            taken: chrono::Local::now(),
            record: None,
            mail: None,
        });
        Some(if dir.is_empty() {
            rendered
        } else {
            format!("{dir}/{rendered}")
        })
    }

    fn failed(&mut self, e: RemoteError) -> RoundEnd {
        self.failures.inc();
        self.deliverer.disconnect();
        let wait = self.backoff.fail();
        let wait = wait.max(self.deliverer.retry_after().unwrap_or_default());
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
        // The destination's pause, for `ferry status` (the deliverer is the circuit breaker
        // of its destination: one try per pause, whatever the number of files waiting).
        let _ = self.journal.exec(
            "INSERT OR REPLACE INTO retry_paused (job, dest, failures, until_ms, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                text(&self.job.name),
                text(&self.target.endpoint.display()),
                int(i64::from(self.backoff.failures())),
                int(now_ms() + wait.as_millis() as i64),
                free_text(&msg),
            ],
            false,
        );
        for (path, rel, m) in expired(&self.job, &self.pending()) {
            let why = format!(
                "gave up after [retry] for = \"{}\": the destination {} still fails: {msg}",
                crate::job::retry::humanize(self.job.retry.give_up_after.unwrap_or_default()),
                self.target.endpoint.display()
            );
            tracing::error!(file = %rel, error = %why, "Not delivered in time; moved to the error folder.");
            self.to_error_folder(&path, &rel, &why);
            self.record(&rel, m, "failed", None, Some(&why), false);
        }
        if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::error!(remote = %self.target.endpoint.display(), error = %msg, pending = self.pending().len(), "Delivery failed; the files stay in the outbox and are retried with backoff.");
            self.last_error = Some(msg);
        }
        RoundEnd::RetryIn(wait)
    }

    fn to_error_folder(&self, path: &Path, rel: &str, msg: &str) {
        to_error_folder(
            &self.job,
            self.idx,
            &self.target.endpoint.display(),
            path,
            rel,
            msg,
            &self.journal,
        );
    }

    pub fn disconnect(&mut self) {
        self.deliverer.disconnect();
    }

    pub fn warm_up(&mut self) {
        self.deliverer.warm_up();
    }
}

/// Moves the outbox file `path` (`rel` in the outbox) of output `idx` to the job's error
/// folder with a report (and an alert, with `[alert]`), on record in the journal for
/// `ferry retry` ([`super::given_up`]).
pub(crate) fn to_error_folder(
    job: &Job,
    idx: usize,
    destination: &str,
    path: &Path,
    rel: &str,
    msg: &str,
    journal: &Journal,
) {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let dir = job.after.error.render(&Vars {
        name,
        dir: "",
        job: &job.name,
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
        .find(|p| !fsutil::exists(p) && !fsutil::exists(&fsutil::report_path(p)));
    if let Some(dest) = dest
        && fsutil::rename_noreplace(path, &dest).is_ok()
    {
        let report = format!(
            "file: {name}\njob: {}\noutput: {}\ndestination: {}\nerror: {msg}\n",
            job.name,
            idx + 1,
            destination
        );
        let _ = fsutil::write_new_durable(&fsutil::report_path(&dest), report.as_bytes());
        let _ = fsutil::sync_dir(&dir);
        super::given_up::record(journal, &job.name, idx, path, &dest, msg);
        super::alerts::outbox_failure(job, idx, name, &report);
    }
}

/// The backoff of a remote output: without a `[retry]` table, quick reconnects (1 s
/// doubling to 5 min, a dropped connection is usually momentary); with one, its `every`
/// and `max`, as for folder outputs.
pub fn backoff_of(retry: &crate::job::retry::Retry) -> Backoff {
    let mut b = Backoff::default();
    if retry.written {
        b.min = retry.every;
        b.max = retry.max;
    }
    b
}

/// When a file entered the outbox (ms since the epoch): its inode's change time on Unix,
/// its creation time elsewhere.
fn entered_ms(md: &std::fs::Metadata) -> Option<i64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(md.ctime() * 1000 + md.ctime_nsec() / 1_000_000)
    }
    #[cfg(not(unix))]
    {
        let t = md.created().ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
    }
}

/// The outbox files of `files` that waited longer than the job's `[retry] for`, counted
/// from when the file was put into the outbox (its inode's change time: set by the link
/// or rename that put it there, kept across restarts).
pub fn expired(job: &Job, files: &[(PathBuf, String, Meta)]) -> Vec<(PathBuf, String, Meta)> {
    let Some(limit) = job.retry.give_up_after.filter(|_| job.retry.enabled()) else {
        return Vec::new();
    };
    let now = now_ms();
    files
        .iter()
        .filter(|(p, ..)| {
            std::fs::symlink_metadata(p)
                .ok()
                .and_then(|md| entered_ms(&md))
                .is_some_and(|since| now.saturating_sub(since) >= limit.as_millis() as i64)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
