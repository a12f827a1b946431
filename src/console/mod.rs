//! The web console (issue 18; docs/console.md): server-rendered pages of the jobs, the
//! audit log, one file's history, the error folders and the files waiting for review,
//! and the admin's actions on them (retry, approve, reject, trigger), served by the daemon
//! beside `/metrics` (`ferry run --http ADDR`).
//!
//! Layout: [`auth`] (users, sessions, CSRF, roles), [`search`] (the audit log's keyset
//! pagination), [`pages`] (the GET handlers), [`actions`] (the POST handlers, which call
//! the same functions as the CLI commands), [`chart`] (the per-hour SVG), [`view`] (the
//! templates, embedded in the binary).
//!
//! Every page reads the journal through its own read-only connection, in a blocking task,
//! so the daemon's writer is never held up; every page is passed through
//! [`crate::redact::scrub`] before it leaves, so no secret of a job file is shown.

pub mod actions;
pub mod auth;
pub mod chart;
pub mod pages;
pub mod search;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use auth::{AuthConfig, Identity, Role, User};

/// What the console serves from.
#[derive(Debug)]
pub struct Console {
    pub jobs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub auth: AuthConfig,
    /// Anyone who reaches it is the admin `local`: bound to loopback, with no users and no
    /// token configured.
    pub open: bool,
    /// The address it serves, for the Host check of an open console.
    addr: SocketAddr,
    sessions: auth::Sessions,
    throttle: auth::Throttle,
}

/// The console refuses to serve an address other than loopback without users or a token.
#[derive(Debug, thiserror::Error)]
#[error(
    "the console on {0} is reachable from other machines, so it needs authentication: add [[http.users]] (name, password_hash from `ferry hash-password`, role) or http.token to ferry.toml, or bind it to 127.0.0.1"
)]
pub struct NeedsAuth(pub SocketAddr);

impl Console {
    pub fn new(
        jobs_dir: PathBuf,
        state_dir: PathBuf,
        auth: AuthConfig,
        addr: SocketAddr,
    ) -> Result<Console, NeedsAuth> {
        let loopback = addr.ip().is_loopback();
        if !loopback && auth.is_empty() {
            return Err(NeedsAuth(addr));
        }
        Ok(Console {
            jobs_dir,
            state_dir,
            open: loopback && auth.is_empty(),
            auth,
            addr,
            sessions: Default::default(),
            throttle: Default::default(),
        })
    }
}

/// The console's routes, behind [`authenticate`]. `/healthz` and `/readyz` are not the
/// console's: they stay open.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/jobs") }))
        .route("/style.css", get(view::style))
        .route("/login", get(pages::login_form).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{job}", get(pages::job))
        .route("/jobs/{job}/trigger", post(actions::trigger))
        .route("/files", get(pages::files))
        .route("/files/{id}", get(pages::file))
        .route("/files/{id}/retry", post(actions::retry))
        .route("/errors", get(pages::errors))
        .route("/review", get(pages::review))
        .route("/review/{id}/approve", post(actions::approve))
        .route("/review/{id}/reject", post(actions::reject))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            authenticate,
        ))
        .with_state(console)
}

/// The web console and its authentication around the contract's endpoints (`/metrics`
/// gets the token; `/healthz` and `/readyz` stay open): the daemon's [`crate::web::Pages`].
pub fn pages(
    contract: Router,
    state: &crate::web::WebState,
    addr: SocketAddr,
) -> anyhow::Result<Router> {
    let access =
        AuthConfig::from_access(&state.settings().http_access).map_err(anyhow::Error::msg)?;
    let console = Arc::new(Console::new(
        state.jobs_dir().to_path_buf(),
        state.state_dir().to_path_buf(),
        access,
        addr,
    )?);
    let guarded = contract.layer(axum::middleware::from_fn_with_state(
        console.clone(),
        authenticate,
    ));
    Ok(guarded.merge(router(console)))
}

/// Paths anyone may open: the login form and the style sheet.
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/style.css")
}

/// The session id from the request's cookie.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == auth::COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for session `id`.
fn cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict",
        auth::COOKIE
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What the `Authorization: Bearer` header says: `None` without one.
fn bearer(c: &Console, headers: &HeaderMap) -> Option<Result<Identity, ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    let ok = c
        .auth
        .token
        .as_deref()
        .is_some_and(|t| auth::same_secret(t, token));
    Some(if ok {
        Ok(Identity {
            user: "token".into(),
            role: Role::Read,
            csrf: String::new(),
        })
    } else {
        Err(())
    })
}

/// Finds who is asking (bearer token, session cookie, or a new session) and turns away
/// whoever is not logged in: a page request goes to the login form, anything else gets 401.
/// The handlers find the [`Identity`] in the request's extensions.
pub async fn authenticate(State(c): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if matches!(path.as_str(), "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    if c.open && !local_host(req.headers(), c.addr) {
        return Problem::forbidden(
            "an open console answers only requests for 127.0.0.1, [::1] or localhost at its port",
        )
        .into_response();
    }
    // Scrapers get no session: one per scrape would pile up.
    let scrape = path == "/metrics";
    let headers = req.headers();
    let mut new_cookie = None;
    let found = match bearer(&c, headers) {
        Some(Ok(who)) => Some(who),
        Some(Err(())) => return unauthorized(),
        None => session_cookie(headers).and_then(|id| c.sessions.get(&id, c.open)),
    };
    let who = match found {
        Some(who) => who,
        None if scrape && c.open => Identity {
            user: "local".into(),
            role: Role::Read,
            csrf: String::new(),
        },
        None if scrape => return unauthorized(),
        None => {
            let (id, who) = c.sessions.create(c.open);
            new_cookie = Some(cookie(&id));
            who
        }
    };
    if !auth::logged_in(&who) && !is_public(&path) {
        let wants_page = req.method() == axum::http::Method::GET;
        let mut resp = if wants_page {
            let next = url_escape(&path);
            Redirect::to(&format!("/login?next={next}")).into_response()
        } else {
            unauthorized()
        };
        if let Some(v) = new_cookie {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        return resp;
    }
    req.extensions_mut().insert(who);
    let mut resp = next.run(req).await;
    if let Some(v) = new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Whether the request names this machine's loopback in its Host header. An open console
/// checks it so that a web page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
/// cannot read it or act through the visitor's browser.
fn local_host(headers: &HeaderMap, addr: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = addr.port();
    ["127.0.0.1", "[::1]", "localhost"]
        .iter()
        .any(|name| host.eq_ignore_ascii_case(&format!("{name}:{port}")))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 Unauthorized: log in at /login, or send Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

/// `s` with everything but unreserved characters and `/` percent-escaped.
pub fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A page that could not be made, as a plain-text response with its status.
#[derive(Debug)]
pub struct Problem(pub StatusCode, pub String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let text = crate::redact::scrub(&self.1).into_owned();
        (self.0, format!("{} {text}\n", self.0)).into_response()
    }
}

impl Problem {
    pub fn forbidden(why: &str) -> Problem {
        Problem(StatusCode::FORBIDDEN, why.to_string())
    }
    pub fn not_found(what: String) -> Problem {
        Problem(StatusCode::NOT_FOUND, what)
    }
    pub fn internal(e: impl std::fmt::Display) -> Problem {
        Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Runs `f` on a blocking thread (journal reads, file moves), turning a panic into a 500.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Problem::internal)?
}

#[cfg(test)]
mod tests;
