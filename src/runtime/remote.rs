//! The remote threads of a job: the staging fetcher ([`crate::sources::staging`]) and one
//! outbox deliverer per remote output ([`crate::outputs::outbox`]), in the daemon and in
//! `run --once`, and what `ferry status` shows of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::job::Job;
use crate::journal::Journal;
use crate::outputs::outbox::{CREATE_DELIVERIES, DeliveryRunner, RoundEnd};
use crate::sources::staging::{CREATE_ITEMS, SourceRunner};

/// Creates the remote tables when missing. Waited for.
pub fn init_journal(journal: &Journal) -> anyhow::Result<()> {
    journal.exec(CREATE_ITEMS, Vec::new(), false)?;
    journal.exec(crate::outputs::http::CREATE_HTTP_SENT, Vec::new(), false)?;
    journal.exec(CREATE_DELIVERIES, Vec::new(), true)?;
    Ok(())
}

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

/// A fetcher thread's life: recovers what an earlier run left staged, then fetches ready
/// files every `poll` (sooner when a file is due to be looked at again) until `stop`.
fn fetch_until_stopped(mut src: SourceRunner, poll: Duration, stop: &AtomicBool) {
    src.recover();
    while !stop.load(Ordering::Relaxed) {
        let next = src.round(stop);
        let wait = next
            .map(|t| t.saturating_duration_since(Instant::now()))
            .map_or(poll, |d| d.min(poll));
        nap(stop, wait.max(Duration::from_millis(50)));
    }
    src.disconnect();
}

/// A deliverer thread's life: sends the outbox round after round, with backoff after a
/// failure, until `stop`; once `drain` is set (`run --once` ending), until the outbox is
/// empty or the next retry would come after the run's bound. An idle connection is
/// closed after a minute.
fn deliver_until_stopped(mut d: DeliveryRunner, once: bool, stop: &AtomicBool, drain: &AtomicBool) {
    if once {
        d.warm_up();
    }
    let mut idle_since = Instant::now();
    let mut deadline: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if deadline.is_none() && drain.load(Ordering::Relaxed) {
            deadline = Some(Instant::now() + once_delivery_bound());
        }
        match d.round(stop) {
            RoundEnd::Empty if deadline.is_some() => break,
            RoundEnd::RetryIn(w) if deadline.is_some_and(|end| Instant::now() + w > end) => {
                tracing::warn!(pending = d.pending().len(), outbox = %d.target.outbox.display(), "Deliveries still failing; the files stay in the outbox for the next run.");
                break;
            }
            RoundEnd::Empty if once => nap(drain, Duration::from_millis(50)),
            RoundEnd::Empty => {
                if idle_since.elapsed() > Duration::from_secs(60) {
                    d.disconnect();
                }
                nap(stop, Duration::from_millis(200));
            }
            RoundEnd::RetryIn(w) => {
                idle_since = Instant::now();
                nap(stop, w);
            }
            RoundEnd::Stopped => break,
        }
        if d.has_pending() {
            idle_since = Instant::now();
        }
    }
    d.disconnect();
}

impl RemoteTasks {
    /// Starts the fetcher and the deliverers of a job, if it has any. With `once`, only
    /// the deliverers (they overlap the local pass; [`RemoteTasks::finish`] drains them).
    pub fn spawn(
        job: &Arc<Job>,
        journal: &Arc<Journal>,
        once: bool,
        metrics: &crate::metrics::JobMetrics,
    ) -> Option<RemoteTasks> {
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
        if let Some(src) = fetcher {
            let stop = stop.clone();
            let poll = job.source.poll;
            let span = tracing::info_span!("job", job = %job.name);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ferry-fetch-{}", job.name))
                    .spawn(move || {
                        let _g = span.enter();
                        fetch_until_stopped(src, poll, &stop);
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
            d.count_failures_on(metrics.output_failures(idx as u32));
            let stop = stop.clone();
            let drain = drain.clone();
            let span = tracing::info_span!("job", job = %job.name, output = idx + 1);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ferry-deliver-{}-{}-{k}", job.name, idx + 1))
                    .spawn(move || {
                        let _g = span.enter();
                        deliver_until_stopped(d, once, &stop, &drain);
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
