//! The daemon: one runner per job watching its source, a shared pool of workers that
//! process ready files, hot reload of job files, and graceful shutdown.
//!
//! Theory of operation: each job's runner owns its readiness [`Tracker`]. Events from the
//! file system and periodic rescans feed observations into it; files that become ready wait
//! in the runner's queue until a worker permit is free (permits are shared by all jobs and
//! handed out fairly). Processing runs on a blocking thread ([`process::process`], which
//! delivers a file in the named steps of [`deliver`]); its outcome goes back to the runner,
//! which updates the tracker. Stopping a runner stops its intake at once and returns when
//! its in-flight files are finished.

pub mod combine;
pub mod deliver;
pub mod expect;
pub mod extract;
pub mod late_hash;
pub mod naming;
mod once;
pub mod original;
pub mod pipeline;
pub mod process;
pub mod progress;
pub mod recovery;
pub mod remote;
pub mod retry;
pub mod review;
pub mod runs;
pub mod sets;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::job::{self, Job, Ready, Success, Watch};
use crate::journal::{Identity, Journal, now_ms};
use crate::readiness::{Tracker, Verdict};
use crate::sources::folder::{self, Found};
use crate::sources::watch as events;
use process::Outcome;

/// How `ferry run` was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub once: bool,
    pub workers: usize,
    /// How long shutdown waits for in-flight files.
    pub grace: Duration,
    /// Accept a journal that was lost or replaced (`--new-journal`).
    pub new_journal: bool,
    /// ferry.toml: what jobs inherit, read again when it changes (settings::live).
    pub settings: crate::settings::live::Live,
    /// Serve `/healthz`, `/readyz` and `/metrics` here (`--http`, ferry.toml's `http`).
    pub http: Option<std::net::SocketAddr>,
    /// Served beside them: the web console (`crate::console::pages`).
    pub pages: Option<crate::web::Pages>,
}

/// What a run ended with, for the exit code.
#[derive(Debug, Default)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
    pub invalid_jobs: usize,
    /// `--once`: answers that matched no request and requests found overdue (runtime::expect).
    pub expect_problems: usize,
}

#[derive(Default)]
struct Counters {
    done: AtomicUsize,
    failed: AtomicUsize,
    /// Files being processed now; after a stop, those abandoned at the grace period's end.
    in_flight: AtomicUsize,
    /// Files the stopped runners left waiting in their sources.
    waiting_left: AtomicUsize,
}

/// Everything a runner shares with the rest of the daemon.
#[derive(Clone)]
struct Shared {
    journal: Arc<Journal>,
    /// The one file-system watcher, shared by every job.
    hub: Arc<events::Hub>,
    workers: Arc<Semaphore>,
    counters: Arc<Counters>,
    once: bool,
    /// What `/metrics` shows (counted with or without `--http`).
    metrics: Arc<crate::metrics::Metrics>,
    /// The jobs running now, for the HTTP endpoint.
    board: Arc<crate::web::board::Board>,
}

/// Opens the journal, loads the jobs and finishes what the last stop interrupted: files
/// in progress (recovery) and decisions on reviewed files made while ferry was stopped.
fn open_and_recover(opts: &RunOptions) -> anyhow::Result<(Arc<Journal>, job::Loaded)> {
    let journal = Journal::open(&opts.state_dir, opts.new_journal)?;
    // Jobs first: recovery disposes of originals through their source folders' handles.
    let loaded = load_jobs(&opts.jobs_dir, opts.settings.defaults());
    let recovered = recovery::recover(&journal, &loaded.jobs)?;
    if recovered != recovery::Recovered::default() {
        tracing::info!(
            completed = recovered.completed,
            retaken = recovered.retaken,
            failed = recovered.failed,
            "Recovered files interrupted by the last stop."
        );
    }
    // Decisions on reviewed files made while ferry was stopped, or interrupted (issue 15).
    review::tick(&journal, loaded.jobs.values());
    Ok((journal, loaded))
}

impl Shared {
    /// What every job's runner shares, for a run with `opts` on `journal`.
    fn new(opts: &RunOptions, journal: &Arc<Journal>) -> Shared {
        Shared {
            journal: journal.clone(),
            hub: events::Hub::new(),
            workers: Arc::new(Semaphore::new(opts.workers.max(1))),
            counters: Arc::default(),
            once: opts.once,
            metrics: Arc::new(crate::metrics::Metrics::new(Some(crate::journal::db_path(
                &opts.state_dir,
            )))),
            board: Arc::default(),
        }
    }
}

/// Runs every job until a shutdown signal (or, with `once`, until the files present at start
/// are handled).
pub async fn run(opts: RunOptions) -> anyhow::Result<Summary> {
    // The stop signals are caught from the first instant: one that arrives while the
    // journal opens or recovery runs stops the daemon cleanly once it is up, instead of
    // killing it half way.
    let signals = (!opts.once).then(StopSignals::new);
    if let Some(addr) = opts.http {
        crate::web::check_bind(addr, opts.settings.current())?;
    }
    // Nothing is created (not even the state folder) when there is nothing to run: a
    // `ferry run` started in the wrong folder says so and leaves it as it was.
    if !opts.jobs_dir.is_dir() {
        anyhow::bail!(
            "the jobs folder {} does not exist (or is not a folder); run ferry in the deployment folder that holds jobs/, or give --jobs DIR",
            opts.jobs_dir.display()
        );
    }
    let (journal, mut loaded) = tokio::task::block_in_place(|| open_and_recover(&opts))?;
    late_hash::start(journal.clone());
    let shared = Shared::new(&opts, &journal);
    let invalid_jobs = loaded.broken.len();
    log_start(&opts, &loaded);
    let mut running: HashMap<String, Running> = HashMap::new();
    expect::set_jobs(loaded.jobs.values());
    for job in std::mem::take(&mut loaded.jobs).into_values() {
        let name = job.name.clone();
        running.insert(name, Running::start(Arc::new(job), shared.clone(), None));
    }
    show_on_board(&shared, &running, &loaded);
    let web = match opts.http {
        Some(addr) => Some(start_web(addr, &opts, &shared).await?),
        None => None,
    };
    let progress = opts
        .once
        .then(|| progress::Progress::start(shared.board.clone()))
        .flatten();

    let mut expect_problems = 0;
    if opts.once {
        for (_, r) in running.drain() {
            let _ = r.handle.await;
        }
        expect_problems = expect::once(&journal).await;
    } else {
        let signals = signals.expect("installed for a daemon");
        let (expect_stop, expect_rx) = watch::channel(false);
        let answers = tokio::spawn(expect::run(journal.clone(), expect_rx));
        crate::service::ready(running.len());
        supervise(&opts, &shared, &mut running, signals).await;
        shutdown(running, opts.grace).await;
        let _ = expect_stop.send(true);
        let _ = answers.await;
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    if let Some(web) = web {
        web.stop().await;
    }
    tokio::task::block_in_place(|| {
        late_hash::finish();
        journal.close()
    });
    let summary = Summary {
        done: shared.counters.done.load(Ordering::SeqCst),
        failed: shared.counters.failed.load(Ordering::SeqCst),
        invalid_jobs,
        expect_problems,
    };
    log_stop(&opts, &summary, &shared.counters);
    Ok(summary)
}

/// Shows the jobs running now and the job files left out to the HTTP endpoint.
fn show_on_board(shared: &Shared, running: &HashMap<String, Running>, loaded: &job::Loaded) {
    let views = running.values().map(|r| crate::web::board::JobView {
        job: r.job.clone(),
        metrics: r.metrics.clone(),
    });
    shared.board.set(views, loaded);
    shared.metrics.set_invalid_job_files(loaded.broken.len());
}

/// Starts the HTTP endpoint (`--http`) on this runtime.
async fn start_web(
    addr: std::net::SocketAddr,
    opts: &RunOptions,
    shared: &Shared,
) -> anyhow::Result<crate::web::Server> {
    let state = crate::web::WebState::new(
        shared.journal.clone(),
        &opts.jobs_dir,
        shared.board.clone(),
        shared.metrics.clone(),
        opts.settings.current().clone(),
    );
    crate::web::start(addr, state, opts.pages.as_ref()).await
}

/// What the daemon runs, said once at start: every job with the folder it watches, and
/// the job files that are left out.
fn log_start(opts: &RunOptions, loaded: &job::Loaded) {
    let names: Vec<&str> = loaded.jobs.keys().map(String::as_str).collect();
    tracing::info!(
        jobs = %names.join(", "),
        jobs_folder = %opts.jobs_dir.display(),
        state = %opts.state_dir.display(),
        workers = opts.workers.max(1),
        settings = %match opts.settings.path() {
            p if p.exists() => p.display().to_string(),
            _ => "none".to_string(),
        },
        mode = if opts.once { "once" } else { "daemon" },
        "ferry started: {} job(s), {} invalid job file(s) left out.",
        names.len(),
        loaded.broken.len()
    );
    for job in loaded.jobs.values() {
        let outputs: Vec<String> = job
            .outputs
            .iter()
            .map(|o| o.folder.as_str().to_string())
            .collect();
        tracing::info!(
            job = %job.name,
            source = %job.source.folder.display(),
            recursive = job.source.recursive,
            events = job.source.watch == Watch::Auto && !opts.once,
            poll = ?job.source.poll,
            outputs = %outputs.join(", "),
            "Watching the job's source folder."
        );
    }
    for (name, file) in &loaded.broken {
        tracing::warn!(job = %name, file = %file.display(), "Job file left out: it has errors (see above; `ferry check` lists them).");
    }
    if loaded.jobs.is_empty() && !opts.once {
        tracing::warn!(jobs = %opts.jobs_dir.display(), "No valid job yet; waiting for job files.");
    }
}

/// What a run finished and what it left, said once at its end.
fn log_stop(opts: &RunOptions, s: &Summary, c: &Counters) {
    let left = c.in_flight.load(Ordering::SeqCst);
    let waiting = c.waiting_left.load(Ordering::SeqCst);
    tracing::info!(
        done = s.done,
        failed = s.failed,
        in_progress_left = left,
        waiting_left = waiting,
        "{}: {} file(s) done, {} failed; {} left in progress (redone at the next start), {} waiting in the sources.",
        if opts.once { "Run finished" } else { "Stopped" },
        s.done,
        s.failed,
        left,
        waiting
    );
}

fn load_jobs(dir: &Path, defaults: &crate::settings::JobDefaults) -> job::Loaded {
    match job::load_dir_with(dir, defaults) {
        Ok(l) => {
            // Before anything about these jobs is logged: their secrets are redacted.
            l.jobs.values().for_each(crate::job::secrets::learn_job);
            for d in &l.diags {
                tracing::error!(problem = %d, "Invalid job file.");
            }
            for (name, why) in &l.left_out {
                tracing::error!(job = %name, why = %why, "The job is left out.");
            }
            l
        }
        Err(e) => {
            tracing::error!(jobs = %dir.display(), error = %e, "Cannot read the jobs folder.");
            job::Loaded::default()
        }
    }
}

struct Running {
    job: Arc<Job>,
    metrics: Arc<crate::metrics::JobMetrics>,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a runner; when it replaces `previous`, it first waits for that one's
    /// in-flight files, so the two never take the same file.
    fn start(job: Arc<Job>, shared: Shared, previous: Option<Running>) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let j = job.clone();
        let metrics = shared.metrics.job(&job);
        let m = metrics.clone();
        let span = tracing::info_span!("job", job = %job.name);
        let handle = tokio::spawn(
            async move {
                if let Some(p) = previous {
                    let _ = p.stop.send(true);
                    let _ = p.handle.await;
                }
                run_job(j, shared, m, stop_rx).await;
            }
            .instrument(span),
        );
        Running {
            job,
            metrics,
            stop,
            handle,
        }
    }
}

/// Watches the jobs folder and applies edits: a changed valid file replaces its job, a
/// broken edit is logged and the previous version keeps running, a new file starts a job,
/// a deleted file stops its job once its in-flight files are done.
async fn supervise(
    opts: &RunOptions,
    shared: &Shared,
    running: &mut HashMap<String, Running>,
    mut signals: StopSignals,
) {
    let (ev_tx, mut ev_rx) = mpsc::channel::<PathBuf>(64);
    let _watch = shared.hub.subscribe(&opts.jobs_dir, false, ev_tx).ok();
    let mut last = dir_fingerprint(&opts.jobs_dir);
    let mut settings = opts.settings.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    // Both listeners live across iterations: a signal that arrives while the loop body runs
    // (e.g. during the pause below) is kept for the next `select!`, not lost.
    loop {
        tokio::select! {
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
            _ = signals.hup.recv() => {
                crate::service::reload_by_signal(|| {
                    last = dir_fingerprint(&opts.jobs_dir);
                    settings.reload();
                    reload(opts, shared, running, settings.defaults());
                    running.len()
                });
                continue;
            }
            _ = tick.tick() => {
                // Decisions on reviewed files that `ferry approve`/`reject` wrote (issue 15).
                tokio::task::block_in_place(|| {
                    review::tick(&shared.journal, running.values().map(|r| &*r.job))
                });
            }
            Some(_) = ev_rx.recv() => {
                // Editors write in several steps: let them finish.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while ev_rx.try_recv().is_ok() {}
            }
        }
        let now = dir_fingerprint(&opts.jobs_dir);
        // ferry.toml is looked at with the jobs folder; new job defaults re-read the jobs.
        let inherited = settings.changed() && settings.reload();
        if now == last && !inherited {
            continue;
        }
        last = now;
        reload(opts, shared, running, settings.defaults());
    }
    tracing::info!("Shutting down: no new files are taken; waiting for files in progress.");
    crate::service::stopping();
}

fn reload(
    opts: &RunOptions,
    shared: &Shared,
    running: &mut HashMap<String, Running>,
    defaults: &crate::settings::JobDefaults,
) {
    let mut loaded = load_jobs(&opts.jobs_dir, defaults);
    for (name, job) in std::mem::take(&mut loaded.jobs) {
        match running.remove(&name) {
            Some(r) if r.job.fingerprint == job.fingerprint => {
                running.insert(name, r);
            }
            Some(r) => {
                tracing::info!(job = %name, "Job file changed; the new version takes over after in-flight files.");
                running.insert(name, Running::start(Arc::new(job), shared.clone(), Some(r)));
            }
            None => {
                tracing::info!(job = %name, "New job file; starting the job.");
                running.insert(name, Running::start(Arc::new(job), shared.clone(), None));
            }
        }
    }
    let names: Vec<String> = running.keys().cloned().collect();
    for name in names {
        if loaded.broken.contains_key(&name) {
            if !running.contains_key(&name) {
                continue;
            }
            if loaded.left_out.contains_key(&name) {
                tracing::warn!(job = %name, "The job is left out; the running version keeps running.");
            } else {
                tracing::warn!(job = %name, "The job file has errors; the previous version keeps running.");
            }
            continue;
        }
        let still = running.get(&name).is_some_and(|r| r.job.file.exists());
        if !still && let Some(r) = running.remove(&name) {
            tracing::info!(job = %name, "Job file removed; the job stops after its in-flight files.");
            let _ = r.stop.send(true);
            shared.metrics.forget_job(&name);
        }
    }
    expect::set_jobs(running.values().map(|r| &*r.job));
    show_on_board(shared, running, &loaded);
}

async fn shutdown(running: HashMap<String, Running>, grace: Duration) {
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    let all = async {
        for (_, r) in running {
            let _ = r.handle.await;
        }
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            grace = ?grace,
            "Files still in progress after the grace period; they are redone safely at the next start."
        );
    }
}

/// The daemon's listeners for SIGINT and SIGTERM, and SIGHUP (reload the job files).
#[cfg(unix)]
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn new() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
        }
    }
}

/// The daemon's stop and reload requests on Windows: Ctrl-C, and Ctrl-Break or the service
/// control manager's Stop/Shutdown ([`crate::scm::StopRequest`]), stop it; there is
/// no SIGHUP, so `hup` never fires.
#[cfg(not(unix))]
struct StopSignals {
    int: tokio::signal::windows::CtrlC,
    term: crate::scm::StopRequest,
    hup: NeverSignal,
}

#[cfg(not(unix))]
impl StopSignals {
    fn new() -> StopSignals {
        StopSignals {
            int: tokio::signal::windows::ctrl_c().expect("Ctrl-C handler"),
            term: crate::scm::StopRequest::default(),
            hup: NeverSignal,
        }
    }
}

/// A signal that never arrives (SIGHUP where there is none).
#[cfg(not(unix))]
struct NeverSignal;

#[cfg(not(unix))]
impl NeverSignal {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

/// Names, sizes and mtimes of the job files: a cheap "did anything change".
fn dir_fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, i64)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .filter_map(|e| {
                    let m = folder::meta_of(&e.metadata().ok()?);
                    Some((e.path(), (m.size, m.mtime_ns)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One job's runner: starts what feeds the job (events, remote fetchers and deliverers,
/// mail adapters), takes its files until it is told to stop (or, with `--once`, until the
/// files present at start are handled), then finishes what is in flight and what a
/// `--once` run leaves for its end.
async fn run_job(
    job: Arc<Job>,
    shared: Shared,
    metrics: Arc<crate::metrics::JobMetrics>,
    stop: watch::Receiver<bool>,
) {
    if job.source.remote.is_some() || job.source.mailbox.is_some() || job.source.polled() {
        // The staging folder is ferry's own: make it, so it can be watched from the start.
        let _ = crate::fsutil::create_dir_all_durable(&job.source.folder);
    }
    known_success(&job, &shared.journal, &metrics);
    let mut st = JobState::new(&job, &shared, metrics);
    let (ev_tx, ev_rx) = mpsc::channel::<PathBuf>(8192);
    let _watch = watch_source(&job, &shared, ev_tx);
    let remote = RemoteParts::start(&job, &shared, &mut st);
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(Found, Outcome)>();
    let mut adapters = start_mail_adapters(&job, &shared, &st.metrics, &stop).await;
    let db_runs = start_database(&job, &shared, &stop, &mut adapters).await;
    let gate = runs::Gate::new(&job, &shared.journal, shared.once);
    let mut r = Runner {
        job,
        shared,
        st,
        stop,
        ev_rx,
        staged_rx: remote.staged_rx,
        done_tx,
        done_rx,
        in_flight: JoinSet::new(),
        next_scan: tokio::time::Instant::now(),
        last_status: (usize::MAX, Instant::now()),
        last_status_check: Instant::now(),
        folder_missing_warned: false,
        gate,
        gate_at: tokio::time::Instant::now(),
        db_runs,
    };
    r.take_files().await;
    r.finish_in_flight(remote.once_fetch).await;
    let Runner { job, shared, .. } = r;
    if let Some(tasks) = remote.tasks {
        let once = shared.once;
        let _ =
            tokio::task::spawn_blocking(move || if once { tasks.finish() } else { tasks.stop() })
                .await;
    }
    if shared.once {
        finish_once(&job, &shared).await;
    }
    let mut adapters = adapters;
    while adapters.join_next().await.is_some() {}
}

/// Subscribes to the file-system events of the job's source folder (unless the job only
/// polls, or in `--once` mode); `None`: rescans only.
fn watch_source(
    job: &Job,
    shared: &Shared,
    ev_tx: mpsc::Sender<PathBuf>,
) -> Option<events::Subscription> {
    if job.source.watch == Watch::Auto && !shared.once {
        match shared
            .hub
            .subscribe(&job.source.folder, job.source.recursive, ev_tx)
        {
            Ok(sub) => Some(sub),
            Err(e) => {
                tracing::warn!(folder = %job.source.folder.display(), error = %e, hint = events::error_hint(&e), "Cannot watch the source folder for events; relying on rescans.");
                None
            }
        }
    } else {
        drop(ev_tx);
        None
    }
}

/// Remote parts (docs/remote.md): fetcher and deliverer threads run beside the runner.
struct RemoteParts {
    /// With `--once`, the fetcher tells the runner each file it stages (the run ends once
    /// it is done fetching and every staged file is processed)...
    staged_rx: Option<mpsc::UnboundedReceiver<PathBuf>>,
    /// ...and disposes of originals as the runner reports them finished.
    once_fetch: Option<remote::OnceFetch>,
    /// The deliverers; with `--once` they drain the outboxes at the end.
    tasks: Option<remote::RemoteTasks>,
}

impl RemoteParts {
    fn start(job: &Arc<Job>, shared: &Shared, st: &mut JobState) -> RemoteParts {
        let mut staged_rx = None;
        let once_fetch = if shared.once && job.source.remote.is_some() {
            let (staged_tx, rx) = mpsc::unbounded_channel::<PathBuf>();
            let (finished_tx, finished_rx) = std::sync::mpsc::channel::<PathBuf>();
            staged_rx = Some(rx);
            st.finished_tx = Some(finished_tx);
            remote::OnceFetch::start(job, &shared.journal, staged_tx, finished_rx)
        } else {
            None
        };
        let tasks = if remote::is_remote(job) {
            remote::RemoteTasks::spawn(job, &shared.journal, shared.once, &st.metrics)
        } else {
            None
        };
        RemoteParts {
            staged_rx,
            once_fetch,
            tasks,
        }
    }
}

/// Mail adapters: a fetcher for a mailbox source (with `--once`, the mailbox is read
/// once, now), a deliverer per email output, and the alerts of the job.
async fn start_mail_adapters(
    job: &Arc<Job>,
    shared: &Shared,
    metrics: &crate::metrics::JobMetrics,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut adapters: JoinSet<()> = JoinSet::new();
    if job.source.mailbox.is_some() {
        if shared.once {
            match crate::sources::mailbox::once_fetch(job, &shared.journal).await {
                Ok(r) => tracing::info!(
                    messages = r.messages,
                    files = r.files,
                    skipped = r.skipped,
                    "Mailbox read."
                ),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "Cannot read the mailbox; staged files are still processed.")
                }
            }
        } else {
            adapters.spawn(
                crate::sources::mailbox::run(job.clone(), shared.journal.clone(), stop.clone())
                    .in_current_span(),
            );
        }
    }
    if !shared.once {
        for (i, o) in job.outputs.iter().enumerate() {
            if let Some(e) = &o.email {
                adapters.spawn(
                    crate::outputs::email::run(
                        job.clone(),
                        i as u32,
                        e.clone(),
                        shared.journal.clone(),
                        stop.clone(),
                        metrics.output_failures(i as u32),
                    )
                    .in_current_span(),
                );
            }
        }
        if let Some(a) = &job.alert {
            adapters.spawn(
                crate::outputs::alerts::run(job.clone(), shared.journal.clone(), stop.clone())
                    .in_current_span(),
            );
            adapters.spawn(
                crate::outputs::email::run(
                    job.clone(),
                    crate::outputs::email::ALERTS,
                    a.email.clone(),
                    shared.journal.clone(),
                    stop.clone(),
                    Default::default(),
                )
                .in_current_span(),
            );
        }
    }
    adapters
}

/// A database or REST source (issues 16, 17): with `--once`, one query now (its rows are staged before
/// the runner looks); in the daemon, its task, which a scheduled job's gate asks for a run
/// (the returned sender) and which otherwise runs the query every `poll`.
async fn start_database(
    job: &Arc<Job>,
    shared: &Shared,
    stop: &watch::Receiver<bool>,
    adapters: &mut JoinSet<()>,
) -> Option<mpsc::Sender<crate::sources::database::RunRequest>> {
    if !job.source.polled() {
        return None;
    }
    if shared.once {
        if !crate::sources::database::once_fetch(job, &shared.journal).await {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        return None;
    }
    let (tx, rx) = if job.source.timing.is_scheduled() {
        let (tx, rx) = mpsc::channel(1);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    adapters.spawn(
        crate::sources::database::daemon(job.clone(), shared.journal.clone(), stop.clone(), rx)
            .in_current_span(),
    );
    tx
}

/// A runner's loop: what it waits on and what it has in flight.
struct Runner {
    job: Arc<Job>,
    shared: Shared,
    st: JobState,
    stop: watch::Receiver<bool>,
    ev_rx: mpsc::Receiver<PathBuf>,
    /// `--once` with a remote source: the files the fetcher stages; `None` once it is done.
    staged_rx: Option<mpsc::UnboundedReceiver<PathBuf>>,
    done_tx: mpsc::UnboundedSender<(Found, Outcome)>,
    done_rx: mpsc::UnboundedReceiver<(Found, Outcome)>,
    in_flight: JoinSet<()>,
    next_scan: tokio::time::Instant,
    /// The waiting count last written to the journal, and when.
    last_status: (usize, Instant),
    last_status_check: Instant,
    folder_missing_warned: bool,
    /// A scheduled job's runs, or its `active` windows (`None`: files go as they are ready).
    gate: Option<runs::Gate>,
    /// When the gate looks at its clock next.
    gate_at: tokio::time::Instant,
    /// A scheduled database source: asked for a run (the query's rows staged) at each run.
    db_runs: Option<mpsc::Sender<crate::sources::database::RunRequest>>,
}

impl Runner {
    /// Takes the job's files until the runner is told to stop (with `--once`: until the
    /// files present at start, and every file the fetcher staged, are handled).
    async fn take_files(&mut self) {
        loop {
            self.hand_out_ready();
            if self.shared.once
                && self.st.once_finished()
                && self.in_flight.is_empty()
                && self.staged_rx.is_none()
            {
                break;
            }
            self.report_waiting();
            let next_wake = self
                .st
                .wakes
                .peek()
                .map(|Reverse((t, _))| tokio::time::Instant::from_std(*t));
            // A combining job's run is handed out whole at the top of the loop (the gate's tick
            // wakes it at least once a second when the workers were busy).
            let want_permit = !self.st.queue.is_empty() && self.may_take() && !self.job.combines();
            let scan_due = !self.shared.once || self.st.once_pending.is_none();
            let once_until = self.st.once_until.map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = self.stop.changed() => break,
                Some(p) = self.ev_rx.recv() => {
                    self.st.on_event(&p);
                    // Drain a burst of events at once.
                    while let Ok(p) = self.ev_rx.try_recv() {
                        self.st.on_event(&p);
                    }
                }
                Some((found, outcome)) = self.done_rx.recv() => {
                    if let Some(g) = &mut self.gate {
                        g.outcome(&found.path, &outcome);
                    }
                    self.st.on_outcome(found, outcome, &self.shared)
                }
                _ = tokio::time::sleep_until(self.gate_at), if self.gate.is_some() => self.on_gate().await,
                staged = recv_opt(&mut self.staged_rx), if self.staged_rx.is_some() => match staged {
                    Some(p) => {
                        self.st.on_staged(p);
                        while let Some(Ok(p)) = self.staged_rx.as_mut().map(|rx| rx.try_recv()) {
                            self.st.on_staged(p);
                        }
                    }
                    // The fetcher is done: what it staged is known.
                    None => self.staged_rx = None,
                },
                Some(_) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {}
                _ = tokio::time::sleep_until(self.next_scan), if scan_due => self.rescan().await,
                _ = sleep_until_opt(next_wake) => self.st.on_wake(),
                _ = sleep_until_opt(once_until), if once_until.is_some() => {
                    self.st.once_until = None;
                    self.st.once_leave_settling();
                }
                permit = self.shared.workers.clone().acquire_owned(), if want_permit => {
                    if let Ok(permit) = permit
                        && self.may_take()
                        && let Some((found, first_seen)) = self.st.queue.pop_front()
                    {
                        self.dispatch(found, first_seen, permit);
                    }
                }
            }
        }
    }

    /// Whether ready files may go to workers now (a gated job's run or window).
    fn may_take(&self) -> bool {
        self.gate.as_ref().is_none_or(runs::Gate::may_take)
    }

    /// The gate's clock: a run starts with a rescan, and takes what is ready then.
    async fn on_gate(&mut self) {
        let Some(gate) = &mut self.gate else { return };
        let start = gate.tick();
        self.gate_at = tokio::time::Instant::now() + gate.nap();
        if let Some((why, slot)) = start {
            if let Some(tx) = &self.db_runs {
                let (reply, done) = tokio::sync::oneshot::channel();
                if tx.send(reply).await.is_ok() {
                    let _ = done.await;
                }
            }
            self.rescan().await;
            let ready = self.st.queue.len();
            if let Some(gate) = &mut self.gate {
                gate.open(why, slot, ready);
            }
        } else if self.job.combines() {
            self.retry_run();
        }
    }

    /// Hands ready files to free workers.
    fn hand_out_ready(&mut self) {
        if self.job.combines() {
            return self.hand_out_batch();
        }
        while !self.st.queue.is_empty() && self.may_take() {
            let Ok(permit) = self.shared.workers.clone().try_acquire_owned() else {
                break;
            };
            let (found, first_seen) = self.st.queue.pop_front().expect("queue is not empty");
            self.dispatch(found, first_seen, permit);
        }
    }

    /// A combining job's run: its files go to one worker together (`runtime::combine`).
    fn hand_out_batch(&mut self) {
        let Some(g) = &self.gate else { return };
        if self.st.queue.is_empty() || !g.may_take() {
            return;
        }
        // `--once`: the run is what was there at start, once it is all ready.
        let all_ready = self
            .st
            .once_pending
            .as_ref()
            .is_some_and(|p| p.len() <= self.st.queue.len());
        if self.shared.once && !all_ready {
            return;
        }
        let Ok(permit) = self.shared.workers.clone().try_acquire_owned() else {
            return;
        };
        let n = g.run_left().min(self.st.queue.len());
        let files: Vec<(Found, i64)> = self.st.queue.drain(..n).collect();
        if let Some(g) = &mut self.gate {
            for (f, _) in &files {
                g.took(&f.path);
            }
        }
        let slot = self
            .gate
            .as_ref()
            .and_then(runs::Gate::run_slot)
            .map(|t| t.as_millisecond());
        combine::dispatch(
            &mut self.in_flight,
            &self.job,
            &self.shared.journal,
            files,
            slot,
            permit,
            self.done_tx.clone(),
        );
    }

    /// A combining job's retry run: its queued originals whose pause is over, together
    /// (`runtime::combine`; docs/schedules.md "A combined run's retries").
    fn retry_run(&mut self) {
        if !self.gate.as_ref().is_some_and(runs::Gate::may_retry) {
            return;
        }
        let Ok(permit) = self.shared.workers.clone().try_acquire_owned() else {
            return;
        };
        let files = self.st.retry_due();
        let Some(g) = self.gate.as_mut().filter(|_| !files.is_empty()) else {
            return;
        };
        let slot = g.retry_slot();
        g.open(runs::Why::Retry, slot, files.len());
        for (f, _) in &files {
            g.took(&f.path);
        }
        combine::dispatch(
            &mut self.in_flight,
            &self.job,
            &self.shared.journal,
            files,
            Some(slot.as_millisecond()),
            permit,
            self.done_tx.clone(),
        );
    }

    /// Hands one ready file to a worker thread; its outcome comes back on `done_rx`.
    fn dispatch(
        &mut self,
        found: Found,
        first_seen: i64,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        if let Some(g) = &mut self.gate {
            g.took(&found.path);
        }
        let job = self.job.clone();
        let metrics = self.st.metrics.clone();
        let journal = self.shared.journal.clone();
        let counters = self.shared.counters.clone();
        let done = self.done_tx.clone();
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        self.in_flight.spawn_blocking(move || {
            let started = Instant::now();
            let outcome = process::process(&job, &found, first_seen, &journal);
            metrics.processed(started.elapsed());
            counters.in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            let _ = done.send((found, outcome));
        });
    }

    /// Writes how many files wait to the journal (for `ferry status`) when it changed or
    /// every 30 s. Counting the waiting files walks every file the tracker knows: at most
    /// once a second, not once per finished file (that made a large backlog quadratic).
    fn report_waiting(&mut self) {
        if self.last_status_check.elapsed() <= Duration::from_secs(1) {
            return;
        }
        self.last_status_check = Instant::now();
        let mut waiting = self.st.tracker.waiting();
        if self.gate.as_ref().is_some_and(runs::Gate::holds_files) {
            // Ready files waiting for a run or a window wait too.
            waiting += self.st.queue.len();
        }
        self.st.update_gauges(waiting);
        if waiting != self.last_status.0 || self.last_status.1.elapsed() > Duration::from_secs(30) {
            let _ = self.shared.journal.job_status(
                &self.job.name,
                &crate::sources::database::status_source(&self.job),
                waiting as u64,
            );
            self.last_status = (waiting, Instant::now());
        }
    }

    /// Lists the source folder (the truth; events are hints) and schedules the next scan.
    async fn rescan(&mut self) {
        let (source, root) = (self.job.source.clone(), self.st.root.clone());
        let scanned = tokio::task::spawn_blocking(move || {
            let listed = root.get().and_then(|dir| folder::scan(&source, &dir));
            // A held folder that was removed still lists (empty): /readyz says it is gone.
            (listed, source.folder.is_dir())
        })
        .await;
        match scanned {
            Ok((Ok(found), there)) => {
                self.folder_missing_warned = false;
                self.st.metrics.set_source_ok(there);
                self.st.on_scan(found, self.shared.once);
            }
            Ok((Err(e), _)) => {
                self.st.metrics.set_source_ok(false);
                if !self.folder_missing_warned {
                    tracing::warn!(folder = %self.job.source.folder.display(), error = %e, "Cannot list the source folder; trying again at every poll.");
                    self.folder_missing_warned = true;
                }
                if self.shared.once {
                    self.st.once_pending = Some(HashSet::new());
                }
            }
            Err(e) => tracing::error!(error = %e, "Scan task failed."),
        }
        self.next_scan = tokio::time::Instant::now() + self.job.source.poll;
    }

    /// Stopped: no new files; finishes what is in flight, lets the `--once` fetcher
    /// dispose of what it was told, and records how many files are left waiting.
    async fn finish_in_flight(&mut self, once_fetch: Option<remote::OnceFetch>) {
        while self.in_flight.join_next().await.is_some() {}
        while let Ok((found, outcome)) = self.done_rx.try_recv() {
            if let Some(g) = &mut self.gate {
                g.outcome(&found.path, &outcome);
            }
            self.st.on_outcome(found, outcome, &self.shared);
        }
        if let Some(g) = &mut self.gate {
            g.stop();
        }
        // The once-mode fetcher disposes of what it was told, then ends.
        self.st.finished_tx = None;
        if let Some(f) = once_fetch {
            let _ = tokio::task::spawn_blocking(move || f.join()).await;
        }
        // Only files still in the source wait: members of a document set that were taken
        // along with their lead are gone, though the tracker has not seen them leave.
        let waiting = self
            .st
            .tracker
            .settling()
            .iter()
            .filter(|p| crate::fsutil::exists(p))
            .count();
        self.shared
            .counters
            .waiting_left
            .fetch_add(waiting, Ordering::SeqCst);
        self.st.update_gauges(waiting);
        let _ = self.shared.journal.job_status(
            &self.job.name,
            &crate::sources::database::status_source(&self.job),
            waiting as u64,
        );
    }
}

/// The end of a `--once` run of a job, after its files: the remote fetcher's last
/// dispositions, email outputs and alerts sent, mailbox messages disposed of.
async fn finish_once(job: &Arc<Job>, shared: &Shared) {
    if job.source.remote.is_some() {
        let (j, jr) = (job.clone(), shared.journal.clone());
        let _ = tokio::task::spawn_blocking(move || remote::finish_once(&j, &jr)).await;
    }
    if job.source.polled() {
        crate::sources::database::once_finish(job, &shared.journal).await;
    }
    let _ = shared.journal.flush();
    for (i, o) in job.outputs.iter().enumerate() {
        if let Some(e) = &o.email
            && let Err(e) = crate::outputs::email::once(job, i as u32, e, &shared.journal).await
        {
            tracing::warn!(error = %format!("{e:#}"), "Email output failed.");
        }
    }
    if let Some(a) = &job.alert {
        if let Err(e) = crate::outputs::alerts::once(job, &shared.journal) {
            tracing::warn!(error = %format!("{e:#}"), "Cannot prepare alerts.");
        }
        if let Err(e) = crate::outputs::email::once(
            job,
            crate::outputs::email::ALERTS,
            &a.email,
            &shared.journal,
        )
        .await
        {
            tracing::warn!(error = %format!("{e:#}"), "Alert mail failed.");
        }
    }
    if job.source.mailbox.is_some()
        && let Err(e) = crate::sources::mailbox::once_dispose(job, &shared.journal).await
    {
        tracing::warn!(error = %format!("{e:#}"), "Cannot dispose of the mail messages; done at the next run.");
    }
}

/// The job's last delivered file in the journal, for `/metrics` after a restart (looked up
/// off the runner's thread: a large journal takes a moment).
fn known_success(job: &Job, journal: &Arc<Journal>, metrics: &Arc<crate::metrics::JobMetrics>) {
    let (name, journal, metrics) = (job.name.clone(), journal.clone(), metrics.clone());
    tokio::task::spawn_blocking(move || {
        let last: Option<i64> = journal
            .read(|c| {
                c.query_row(
                    "SELECT MAX(finished_at) FROM files WHERE job = ?1 AND state = 'done'",
                    [&name],
                    |r| r.get(0),
                )
            })
            .ok()
            .flatten();
        if let Some(ms) = last {
            metrics.known_success(ms / 1000);
        }
    });
}

async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<PathBuf>>) -> Option<PathBuf> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

struct JobState {
    job: Arc<Job>,
    tracker: Tracker,
    /// When to look at a settling file again.
    wakes: BinaryHeap<Reverse<(Instant, PathBuf)>>,
    queue: VecDeque<(Found, i64)>,
    /// In `--once` mode: the files present at start that are not handled yet.
    once_pending: Option<HashSet<PathBuf>>,
    /// In `--once` mode: when files still settling are left for the next run ([`once`]),
    /// and those left.
    once_until: Option<Instant>,
    once_left: HashSet<PathBuf>,
    journal: Arc<Journal>,
    /// `run --once` with a remote source: staged files finished (done, or failed into the
    /// error folder), for the fetcher to dispose of their originals.
    finished_tx: Option<std::sync::mpsc::Sender<PathBuf>>,
    /// The source folder, held open (docs/design.md, "Folders as handles").
    root: Arc<crate::sources::dir::SourceRoot>,
    /// Files in the retry queue and their destinations' pauses ([`retry`]).
    holds: retry::holds::Holds,
    metrics: Arc<crate::metrics::JobMetrics>,
}

impl JobState {
    fn new(job: &Arc<Job>, shared: &Shared, metrics: Arc<crate::metrics::JobMetrics>) -> JobState {
        let settle = match job.source.ready {
            Ready::Settle => job.source.settle,
            Ready::DoneFile(_) => Duration::ZERO,
        };
        JobState {
            job: job.clone(),
            tracker: Tracker::new(settle),
            wakes: BinaryHeap::new(),
            queue: VecDeque::new(),
            once_pending: None,
            once_until: None,
            once_left: HashSet::new(),
            journal: shared.journal.clone(),
            finished_tx: None,
            root: Arc::new(crate::sources::dir::SourceRoot::new(&job.source.folder)),
            holds: retry::load(job, &shared.journal),
            metrics,
        }
    }

    /// The job's gauges for `/metrics`: its queue, waiting files and retry queue.
    fn update_gauges(&self, waiting: usize) {
        let oldest = self
            .queue
            .front()
            .map(|(_, first_seen)| Duration::from_millis((now_ms() - first_seen).max(0) as u64))
            .unwrap_or_default();
        let m = &self.metrics;
        m.set_queue(self.queue.len(), oldest);
        m.set_waiting(waiting);
        m.set_retry(self.holds.len(), self.holds.paused(Instant::now()).len());
    }

    fn once_finished(&self) -> bool {
        self.once_pending.as_ref().is_some_and(HashSet::is_empty) && self.queue.is_empty()
    }

    fn resolve_once(&mut self, p: &Path) {
        if let Some(set) = &mut self.once_pending {
            set.remove(p);
        }
    }

    fn gate_open(&self, f: &Found) -> bool {
        match &self.job.source.ready {
            Ready::Settle => true,
            Ready::DoneFile(_) => self
                .job
                .source
                .done_files(&f.name)
                .iter()
                .any(|n| f.path.with_file_name(n).exists()),
        }
    }

    fn observe(&mut self, f: Found) {
        if self.once_left.contains(&f.path) {
            return;
        }
        if self.retry_held(&f) {
            return;
        }
        if !self.tracker.is_known(&f.path) && self.job.after.success == Success::Keep {
            let id = Identity {
                path: f.path.to_string_lossy().into_owned(),
                size: f.meta.size,
                mtime_ns: f.meta.mtime_ns,
            };
            if self
                .journal
                .was_finished(&self.job.name, &id)
                .unwrap_or(false)
            {
                self.tracker.mark_finished(&f.path, f.meta, now_ms());
                self.resolve_once(&f.path);
                return;
            }
        }
        let gate = self.gate_open(&f);
        match self
            .tracker
            .observe(&f.path, f.meta, Instant::now(), gate, now_ms())
        {
            Verdict::Ready { first_seen_ms } => self.queue.push_back((f, first_seen_ms)),
            Verdict::WaitUntil(t) => self.wakes.push(Reverse((t, f.path))),
            Verdict::Blocked => {
                // In --once mode a file whose done-file is missing is not complete: skip it.
                if self.once_pending.is_some() {
                    tracing::info!(file = %f.path.display(), "No done-file yet; left for a later run.");
                    self.resolve_once(&f.path);
                }
            }
            Verdict::Ignore => {}
        }
    }

    /// `path` as a candidate, looked at through the held source folder.
    fn stat(&self, path: &Path) -> Option<Found> {
        let root = self.root.get().ok()?;
        folder::stat(&self.job.source, &root, path)
    }

    fn on_event(&mut self, p: &Path) {
        match self.stat(p) {
            Some(f) => self.observe(f),
            None => {
                if !p.exists() {
                    self.tracker.vanished(p);
                }
                // A done-file appeared (or anything else): look at files waiting for one.
                if matches!(self.job.source.ready, Ready::DoneFile(_)) {
                    for path in self.tracker.settling() {
                        if let Some(f) = self.stat(&path) {
                            self.observe(f);
                        }
                    }
                }
            }
        }
    }

    /// `run --once`: the fetcher staged `p`. Before the first scan there is nothing to do
    /// (the file is in place already, so the scan finds it).
    fn on_staged(&mut self, p: PathBuf) {
        if self.once_pending.is_none() || self.tracker.is_known(&p) {
            return;
        }
        if let Some(f) = self.stat(&p) {
            if let Some(set) = &mut self.once_pending {
                set.insert(p);
            }
            self.observe(f);
        }
    }

    fn report_finished(&self, p: &Path) {
        if let Some(tx) = &self.finished_tx {
            let _ = tx.send(p.to_path_buf());
        }
    }

    fn on_scan(&mut self, found: Vec<Found>, once: bool) {
        let seen: HashSet<PathBuf> = found.iter().map(|f| f.path.clone()).collect();
        if once && self.once_pending.is_none() {
            self.once_pending = Some(seen.clone());
            self.once_until = Some(self.once_bound(Instant::now()));
        }
        self.tracker.forget_missing(&seen);
        self.retry_forget_missing(&seen);
        for f in found {
            self.observe(f);
        }
    }

    fn on_wake(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, _))) = self.wakes.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, path)) = self.wakes.pop().expect("peeked");
            match self.stat(&path) {
                Some(f) => self.observe(f),
                None => {
                    self.tracker.vanished(&path);
                    self.resolve_once(&path);
                }
            }
        }
    }

    fn on_outcome(&mut self, found: Found, outcome: Outcome, shared: &Shared) {
        match outcome {
            Outcome::Done { kept, outputs } => {
                shared.counters.done.fetch_add(1, Ordering::Relaxed);
                self.metrics.delivered(found.meta.size, &outputs);
                self.tracker.finished(&found.path, kept);
                self.retry_delivered(&found.path);
                self.resolve_once(&found.path);
                self.report_finished(&found.path);
            }
            Outcome::Failed { kept, output } => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.failed();
                if let Some(i) = output {
                    self.metrics.output_failed(i);
                }
                self.tracker.finished(&found.path, kept);
                self.retry_released(&found.path);
                self.resolve_once(&found.path);
                self.report_finished(&found.path);
            }
            Outcome::Queued {
                dest,
                first_failed_ms,
                error,
                output,
            } => {
                self.metrics.queued();
                if let Some(i) = output {
                    self.metrics.output_failed(i);
                }
                self.retry_queued(&found, &dest, first_failed_ms, &error)
            }
            Outcome::Stuck => {
                self.retry_released(&found.path);
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.failed();
                self.resolve_once(&found.path);
            }
            Outcome::Ignored { meta } => {
                self.tracker.finished(&found.path, Some(meta));
                self.resolve_once(&found.path);
            }
            Outcome::Waiting if self.once_pending.is_some() => {
                tracing::info!(file = %found.path.display(), "Waiting for the rest of its document set; left for a later run.");
                self.tracker.released(&found.path, Instant::now());
                self.resolve_once(&found.path);
            }
            Outcome::Released | Outcome::Waiting => {
                self.retry_released(&found.path);
                // Look again after a pause, so a file that cannot be taken now never spins.
                let now = Instant::now();
                self.tracker.released(&found.path, now);
                let again = now + self.job.source.settle.max(Duration::from_millis(500));
                self.wakes.push(Reverse((again, found.path)));
            }
        }
    }
}
