//! The daemon's numbers for monitoring: what `/metrics` shows in Prometheus' text format
//! (docs/metrics.md names every metric).
//!
//! Theory of operation: [`Metrics`] holds one registry of metric families, built once at
//! start. A job's runner asks for its [`JobMetrics`] when it starts: the handles of its
//! series, looked up once, so that counting a file afterwards is an atomic add (the
//! processing-time histogram takes prometheus-client's short lock). The runner counts
//! where outcomes arrive (`runtime::JobState::on_outcome`) and sets its gauges where it
//! already looks at its queue (once a second). The metrics are counted whether or not
//! `--http` serves them: a few atomics per file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabels {
    job: String,
    /// The output's place among the job's `[[output]]` tables, from 1.
    output: String,
}

type Counters = Family<JobLabel, Counter>;
type Gauges = Family<JobLabel, Gauge>;
type Histograms = Family<JobLabel, Histogram, fn() -> Histogram>;

/// Processing time of one file: 1 ms to about 9 minutes, doubling.
fn processing_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Every metric family, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    counts: Counts,
    outputs: PerOutput,
    levels: Levels,
    journal_bytes: Gauge,
    invalid_job_files: Gauge,
    /// The journal's files, measured at each scrape.
    journal: Option<PathBuf>,
}

/// The per-job counters and the processing time.
struct Counts {
    taken: Counters,
    delivered: Counters,
    failed: Counters,
    bytes_in: Counters,
    bytes_out: Counters,
    processing: Histograms,
}

/// The per-output counters.
struct PerOutput {
    files: Family<OutputLabels, Counter>,
    bytes: Family<OutputLabels, Counter>,
    failed: Family<OutputLabels, Counter>,
}

/// The per-job gauges, set by the runner once a second.
struct Levels {
    queue: Gauges,
    queue_oldest: Gauges,
    waiting: Gauges,
    retry_queue: Gauges,
    paused: Gauges,
    last_success: Gauges,
    source_up: Gauges,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

/// Registers a family under `name` and gives it back.
fn register<F: Default + Clone + prometheus_client::registry::Metric>(
    r: &mut Registry,
    name: &str,
    help: &str,
) -> F {
    let f = F::default();
    r.register(name, help, f.clone());
    f
}

impl Counts {
    fn register(r: &mut Registry) -> Counts {
        let processing = Histograms::new_with_constructor(processing_histogram);
        r.register(
            "ferry_processing_seconds",
            "Time from a worker taking a file to its outcome.",
            processing.clone(),
        );
        Counts {
            taken: register(
                r,
                "ferry_files_taken",
                "Files a job took and processed to an end (delivered, failed, queued for a retry or stuck), each attempt counted.",
            ),
            delivered: register(
                r,
                "ferry_files_delivered",
                "Files delivered: every output committed and the original disposed of.",
            ),
            failed: register(
                r,
                "ferry_files_failed",
                "Files that failed: sent to the error folder (or stuck there, for recovery).",
            ),
            bytes_in: register(
                r,
                "ferry_bytes_in",
                "Bytes of the originals of delivered files.",
            ),
            bytes_out: register(
                r,
                "ferry_bytes_out",
                "Bytes of the outputs written for delivered files.",
            ),
            processing,
        }
    }
}

impl PerOutput {
    fn register(r: &mut Registry) -> PerOutput {
        PerOutput {
            files: register(
                r,
                "ferry_output_files",
                "Outputs committed, per job and output (remote outputs: into their outbox).",
            ),
            bytes: register(
                r,
                "ferry_output_bytes",
                "Bytes of the outputs committed, per job and output.",
            ),
            failed: register(
                r,
                "ferry_output_failed",
                "Failed writes or sends to an output, per job and output: each failure counts, whether the file is retried (a destination that may come back) or sent to the error folder.",
            ),
        }
    }

    /// Every output series of job `name` (their outputs are numbered from 1, without gaps).
    fn forget(&self, name: &str) {
        for f in [&self.files, &self.bytes, &self.failed] {
            let mut n = 1;
            while f.remove(&OutputLabels {
                job: name.into(),
                output: n.to_string(),
            }) {
                n += 1;
            }
        }
    }
}

impl Levels {
    fn register(r: &mut Registry) -> Levels {
        Levels {
            queue: register(
                r,
                "ferry_queue_files",
                "Files ready and waiting for a worker (or for a scheduled job's run).",
            ),
            queue_oldest: register(
                r,
                "ferry_queue_oldest_age_seconds",
                "How long the oldest file of the queue has been seen, in seconds (0: empty queue).",
            ),
            waiting: register(
                r,
                "ferry_files_waiting",
                "Files in the source not taken yet: still being written, or queued (ferry status' waiting).",
            ),
            retry_queue: register(
                r,
                "ferry_retry_queue_files",
                "Files in the retry queue: their delivery failed for a reason that may pass.",
            ),
            paused: register(
                r,
                "ferry_paused_destinations",
                "Destinations paused by the circuit breaker after failures.",
            ),
            last_success: register(
                r,
                "ferry_last_success_timestamp_seconds",
                "Unix time of the job's last delivered file (0: none yet in the journal).",
            ),
            source_up: register(
                r,
                "ferry_source_up",
                "1 while the job's source folder can be listed, else 0.",
            ),
        }
    }

    fn all(&self) -> [&Gauges; 7] {
        [
            &self.queue,
            &self.queue_oldest,
            &self.waiting,
            &self.retry_queue,
            &self.paused,
            &self.last_success,
            &self.source_up,
        ]
    }
}

impl Metrics {
    /// The registry with every family; `journal` is the journal's file (`journal::db_path`).
    pub fn new(journal: Option<PathBuf>) -> Metrics {
        let mut r = Registry::default();
        let counts = Counts::register(&mut r);
        let outputs = PerOutput::register(&mut r);
        let levels = Levels::register(&mut r);
        let journal_bytes = register(
            &mut r,
            "ferry_journal_bytes",
            "Size of the journal (database, write-ahead log) in bytes.",
        );
        let invalid_job_files = register(
            &mut r,
            "ferry_invalid_job_files",
            "Job files left out because they have errors.",
        );
        Metrics {
            registry: r,
            counts,
            outputs,
            levels,
            journal_bytes,
            invalid_job_files,
            journal,
        }
    }

    /// The handles of one job's series, made (at 0) when the job first starts.
    pub fn job(&self, job: &crate::job::Job) -> Arc<JobMetrics> {
        let l = JobLabel {
            job: job.name.clone(),
        };
        let outputs = (1..=job.outputs.len())
            .map(|i| {
                let o = OutputLabels {
                    job: job.name.clone(),
                    output: i.to_string(),
                };
                OutputMetrics {
                    files: self.outputs.files.get_or_create_owned(&o),
                    bytes: self.outputs.bytes.get_or_create_owned(&o),
                    failed: self.outputs.failed.get_or_create_owned(&o),
                }
            })
            .collect();
        let (c, g) = (&self.counts, &self.levels);
        let source_up = g.source_up.get_or_create_owned(&l);
        source_up.set(1);
        Arc::new(JobMetrics {
            taken: c.taken.get_or_create_owned(&l),
            delivered: c.delivered.get_or_create_owned(&l),
            failed: c.failed.get_or_create_owned(&l),
            bytes_in: c.bytes_in.get_or_create_owned(&l),
            bytes_out: c.bytes_out.get_or_create_owned(&l),
            processing: c.processing.get_or_create_owned(&l),
            queue: g.queue.get_or_create_owned(&l),
            queue_oldest: g.queue_oldest.get_or_create_owned(&l),
            waiting: g.waiting.get_or_create_owned(&l),
            retry_queue: g.retry_queue.get_or_create_owned(&l),
            paused: g.paused.get_or_create_owned(&l),
            last_success: g.last_success.get_or_create_owned(&l),
            source_up,
            source_ok: AtomicBool::new(true),
            outputs,
        })
    }

    /// A job that no longer runs (its file removed): its series go.
    pub fn forget_job(&self, name: &str) {
        let l = JobLabel { job: name.into() };
        let c = &self.counts;
        for f in [&c.taken, &c.delivered, &c.failed, &c.bytes_in, &c.bytes_out] {
            f.remove(&l);
        }
        for f in self.levels.all() {
            f.remove(&l);
        }
        c.processing.remove(&l);
        self.outputs.forget(name);
    }

    /// How many job files are left out for their errors.
    pub fn set_invalid_job_files(&self, n: usize) {
        self.invalid_job_files.set(n as i64);
    }

    /// Everything in Prometheus' text format (the journal's size measured now).
    pub fn encode(&self) -> String {
        if let Some(db) = &self.journal {
            self.journal_bytes.set(journal_size(db) as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The journal's database and its write-ahead log, in bytes.
fn journal_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.as_os_str().to_owned(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// One output's series.
#[derive(Debug)]
struct OutputMetrics {
    files: Counter,
    bytes: Counter,
    failed: Counter,
}

/// One job's series: what its runner counts.
#[derive(Debug)]
pub struct JobMetrics {
    taken: Counter,
    delivered: Counter,
    failed: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    processing: Histogram,
    queue: Gauge,
    queue_oldest: Gauge,
    waiting: Gauge,
    retry_queue: Gauge,
    paused: Gauge,
    last_success: Gauge,
    source_up: Gauge,
    source_ok: AtomicBool,
    outputs: Vec<OutputMetrics>,
}

/// An output a delivered file committed: its index among the job's outputs (from 0) and
/// its size.
pub type Written = (u32, u64);

impl JobMetrics {
    /// A file delivered: `size` bytes in, `outputs` out.
    pub fn delivered(&self, size: u64, outputs: &[Written]) {
        self.taken.inc();
        self.delivered.inc();
        self.bytes_in.inc_by(size);
        for (idx, bytes) in outputs {
            self.bytes_out.inc_by(*bytes);
            if let Some(o) = self.outputs.get(*idx as usize) {
                o.files.inc();
                o.bytes.inc_by(*bytes);
            }
        }
        self.last_success.set(crate::journal::now_ms() / 1000);
    }

    /// A file failed (or is stuck for recovery).
    pub fn failed(&self) {
        self.taken.inc();
        self.failed.inc();
    }

    /// A file whose delivery failed for a reason that may pass: queued for a retry.
    pub fn queued(&self) {
        self.taken.inc();
    }

    /// A write or send to output `idx` (from 0) failed.
    pub fn output_failed(&self, idx: u32) {
        self.output_failures(idx).inc();
    }

    /// Output `idx`'s failure counter, for the threads that send its outbox (a detached
    /// counter for an index the job does not have: alerts, rejects).
    pub fn output_failures(&self, idx: u32) -> Counter {
        self.outputs
            .get(idx as usize)
            .map(|o| o.failed.clone())
            .unwrap_or_default()
    }

    /// How long a worker spent on a file.
    pub fn processed(&self, took: Duration) {
        self.processing.observe(took.as_secs_f64());
    }

    /// The runner's queue: its length, and how long its oldest file has been seen.
    pub fn set_queue(&self, len: usize, oldest: Duration) {
        self.queue.set(len as i64);
        self.queue_oldest.set(oldest.as_secs() as i64);
    }

    /// Files in the source not taken yet (`ferry status`' waiting).
    pub fn set_waiting(&self, n: usize) {
        self.waiting.set(n as i64);
    }

    /// The retry queue's length and the destinations paused now.
    pub fn set_retry(&self, queued: usize, paused: usize) {
        self.retry_queue.set(queued as i64);
        self.paused.set(paused as i64);
    }

    /// Whether the source folder could be listed at the last look.
    pub fn set_source_ok(&self, ok: bool) {
        self.source_ok.store(ok, Ordering::Relaxed);
        self.source_up.set(i64::from(ok));
    }

    pub fn source_ok(&self) -> bool {
        self.source_ok.load(Ordering::Relaxed)
    }

    /// For a progress line: files delivered, failed, and waiting in the source.
    pub fn progress(&self) -> (u64, u64, u64) {
        let waiting = self.waiting.get().max(self.queue.get()).max(0) as u64;
        (self.delivered.get(), self.failed.get(), waiting)
    }

    /// Paused destinations now (for readiness pages).
    pub fn paused(&self) -> i64 {
        self.paused.get()
    }

    /// The last success the journal knows of (unix seconds), unless one was counted since.
    pub fn known_success(&self, unix_s: i64) {
        self.last_success
            .inner()
            .fetch_max(unix_s, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_file_counts_per_job_and_output() {
        let m = Metrics::new(None);
        let root = std::path::Path::new("/tmp/ferry-metrics-test");
        let job = crate::job::compile_with(
            &root.join("jobs/j.toml"),
            root,
            "[source]\nfolder = \"in\"\n[[output]]\nfolder = \"a\"\n[[output]]\nfolder = \"b\"\n",
            &Default::default(),
        )
        .unwrap();
        let jm = m.job(&job);
        jm.delivered(10, &[(0, 10), (1, 4)]);
        jm.failed();
        jm.output_failed(1);
        jm.output_failures(0).inc();
        jm.output_failed(u32::MAX);
        jm.processed(Duration::from_millis(3));
        let text = m.encode();
        for line in [
            "ferry_files_taken_total{job=\"j\"} 2",
            "ferry_files_delivered_total{job=\"j\"} 1",
            "ferry_files_failed_total{job=\"j\"} 1",
            "ferry_bytes_out_total{job=\"j\"} 14",
            "ferry_output_bytes_total{job=\"j\",output=\"2\"} 4",
            "ferry_output_failed_total{job=\"j\",output=\"1\"} 1",
            "ferry_output_failed_total{job=\"j\",output=\"2\"} 1",
            "ferry_processing_seconds_count{job=\"j\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        m.forget_job("j");
        assert!(!m.encode().contains("job=\"j\""));
    }
}
