//! The daemon's HTTP endpoint (`ferry run --http ADDR:PORT`, or `http = "..."` in
//! ferry.toml): `/healthz`, `/readyz` and `/metrics` (docs/metrics.md), served from the
//! daemon's own tokio runtime and stopped with it.
//!
//! [`router`] is the contract that checks outside the project use; [`app`] is everything
//! served, where other pages are merged in with the same [`WebState`].
//!
//! Security: the endpoint binds to loopback unless authentication is configured
//! ([`auth_configured`]); [`check_bind`] refuses any other address before the daemon
//! starts.

pub mod board;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::settings::Settings;
use board::{Board, Snapshot};

/// What every page can reach: the journal, the jobs running now and their metrics, the
/// settings. Cheap to clone.
#[derive(Clone)]
pub struct WebState(Arc<Inner>);

struct Inner {
    journal: Arc<Journal>,
    jobs_dir: PathBuf,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl WebState {
    pub fn new(
        journal: Arc<Journal>,
        jobs_dir: &Path,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> WebState {
        WebState(Arc::new(Inner {
            journal,
            jobs_dir: jobs_dir.to_path_buf(),
            board,
            metrics,
            settings,
        }))
    }

    /// The journal (read with [`Journal::read`]).
    pub fn journal(&self) -> &Arc<Journal> {
        &self.0.journal
    }

    /// The state folder, where the journal is.
    pub fn state_dir(&self) -> &Path {
        self.0.journal.state_dir()
    }

    pub fn jobs_dir(&self) -> &Path {
        &self.0.jobs_dir
    }

    /// The jobs running now (with their metrics) and the job files left out.
    pub fn jobs(&self) -> Snapshot {
        self.0.board.snapshot()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// ferry.toml as the daemon started with it.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
}

/// Whether ferry.toml configures who may use the endpoint: `[[http.users]]` or
/// `http.token` (the console's authentication, `crate::console::auth`).
pub fn auth_configured(settings: &Settings) -> bool {
    !settings.http_access.is_empty()
}

/// Refuses an address that other machines can reach while no authentication is set.
pub fn check_bind(addr: SocketAddr, settings: &Settings) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || auth_configured(settings) {
        return Ok(());
    }
    anyhow::bail!(
        "--http {addr}: refusing to serve on an address other machines can reach without authentication; \
         add [[http.users]] or http.token to ferry.toml (docs/console.md), or use a loopback address such as 127.0.0.1:{}",
        addr.port()
    )
}

/// The endpoints of the contract: `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What is served beside the endpoints of the contract (the web console), given by the
/// binary, so that neither this module nor the runtime that starts it depends on it: it
/// takes the contract's router and returns everything to serve, its authentication
/// included.
#[derive(Clone)]
pub struct Pages(pub Arc<PagesFn>);

/// See [`Pages`].
pub type PagesFn = dyn Fn(Router, &WebState, SocketAddr) -> anyhow::Result<Router> + Send + Sync;

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

/// Everything the daemon serves: the endpoints of the contract, and `pages` (the web
/// console, which puts its authentication in front of `/metrics` too). Without `pages`
/// only loopback is served: nothing else would check who asks.
pub fn app(state: WebState, addr: SocketAddr, pages: Option<&Pages>) -> anyhow::Result<Router> {
    let contract = router(state.clone());
    match pages {
        Some(p) => (p.0)(contract, &state, addr),
        None if addr.ip().is_loopback() => Ok(contract),
        None => {
            anyhow::bail!("--http {addr}: no authentication is built in; use a loopback address")
        }
    }
}

/// The server, running: stopped by [`Server::stop`].
pub struct Server {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and serves [`app`] on the current runtime.
pub async fn start(
    addr: SocketAddr,
    state: WebState,
    pages: Option<&Pages>,
) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--http {addr}: cannot listen there: {e}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    let (stop, mut stop_rx) = watch::channel(false);
    let app = app(state, local, pages)?;
    let handle = tokio::spawn(async move {
        // The client's address reaches the handlers (the console's login throttle).
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.changed().await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "The HTTP endpoint stopped.");
        }
    });
    tracing::info!(address = %local, "Serving the web console, /healthz, /readyz and /metrics on http://{local}.");
    Ok(Server { stop, handle })
}

impl Server {
    /// Stops taking connections; requests in progress get a moment to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.handle).await;
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 "ready" when every job's source can be listed, no job file is left out and the
/// journal can be written; else 503 with one line per problem.
async fn readyz(State(state): State<WebState>) -> impl IntoResponse {
    let problems = not_ready(&state);
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        let mut body = String::from("not ready:\n");
        for p in &problems {
            body.push_str(p);
            body.push('\n');
        }
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// What keeps the daemon from being ready, one line each.
pub fn not_ready(state: &WebState) -> Vec<String> {
    let snap = state.jobs();
    let mut problems = Vec::new();
    for (name, b) in &snap.broken {
        let first = b.problems.first().map(String::as_str).unwrap_or("");
        problems.push(format!(
            "job {name}: the job file {} has errors and is left out: {first}",
            b.file.display()
        ));
    }
    for (name, v) in &snap.jobs {
        if !v.metrics.source_ok() {
            problems.push(format!(
                "job {name}: the source folder {} cannot be listed",
                v.job.source.folder.display()
            ));
        }
    }
    let db = crate::journal::db_path(state.state_dir());
    for p in [state.state_dir(), db.as_path()] {
        if let Err(e) = writable(p) {
            problems.push(format!("journal: {} is not writable: {e}", p.display()));
        }
    }
    problems
}

#[cfg(unix)]
fn writable(p: &Path) -> std::io::Result<()> {
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn writable(p: &Path) -> std::io::Result<()> {
    if std::fs::metadata(p)?.permissions().readonly() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "read-only",
        ));
    }
    Ok(())
}

async fn metrics(State(state): State<WebState>) -> impl IntoResponse {
    let m = state.metrics().clone();
    let body = tokio::task::spawn_blocking(move || m.encode())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
