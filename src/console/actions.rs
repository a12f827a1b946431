//! The console's actions (POST): logging in and out, and the admin's retry, approve,
//! reject and trigger, which call the very functions of `ferry retry`, `ferry approve`,
//! `ferry reject` and `ferry trigger` and show what they said.
//!
//! Every POST carries the session's CSRF token in a hidden field `csrf`; one without it or
//! with another is refused (403) before anything else is looked at. Only admins act (403).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::auth::{self, Identity, Role};
use super::{Console, Problem, blocking, view};
use crate::cli::Say;

/// A form with only the CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Plain {
    pub csrf: String,
}

/// The reject form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RejectForm {
    pub csrf: String,
    pub why: String,
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub csrf: String,
    pub name: String,
    pub password: String,
    pub next: String,
}

/// Refuses a form whose CSRF token is not the session's.
fn check_csrf(who: &Identity, sent: &str) -> Result<(), Problem> {
    if who.csrf.is_empty() || !auth::same_secret(&who.csrf, sent) {
        return Err(Problem::forbidden(
            "the form's CSRF token is missing or wrong: reload the page and try again",
        ));
    }
    Ok(())
}

/// Refuses a form that is not an admin's, or whose CSRF token is wrong.
fn check_admin(who: &Identity, csrf: &str) -> Result<(), Problem> {
    check_csrf(who, csrf)?;
    if who.role != Role::Admin {
        return Err(Problem::forbidden(&format!(
            "only admins may do this; {} is a read-only user",
            who.user
        )));
    }
    Ok(())
}

/// Who acted, as the journal records it.
fn actor(who: &Identity) -> String {
    format!("{} (console)", who.user)
}

/// The page that shows what an action said.
fn said(
    who: &Identity,
    title: &str,
    ok: bool,
    lines: Vec<Say>,
    back: (&str, &str),
) -> Result<Html<String>, Problem> {
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| match l {
            Say::Out(t) => serde_json::json!({ "text": t, "problem": false }),
            Say::Err(t) => serde_json::json!({ "text": t, "problem": true }),
        })
        .collect();
    view::page(
        "done.html",
        "",
        who,
        serde_json::json!({ "title": title, "ok": ok, "lines": lines, "back": back.0, "back_text": back.1 }),
    )
}

/// Runs `f` with a collector of what it says, on a blocking thread.
async fn collect<T: Send + 'static>(
    f: impl FnOnce(&mut dyn FnMut(Say)) -> T + Send + 'static,
) -> Result<(T, Vec<Say>), Problem> {
    blocking(move || {
        let mut lines = Vec::new();
        let out = f(&mut |l| lines.push(l));
        Ok((out, lines))
    })
    .await
}

/// `POST /files/{id}/retry`: `ferry retry ID`.
pub async fn retry(
    State(c): State<Arc<Console>>,
    UrlPath(id): UrlPath<i64>,
    Extension(who): Extension<Identity>,
    Form(form): Form<Plain>,
) -> Result<Html<String>, Problem> {
    check_admin(&who, &form.csrf)?;
    let by = format!("the web console (user {})", who.user);
    let (result, mut lines) = collect(move |say| {
        use crate::runtime::retry::requeue::{Which, run_with};
        run_with(&c.state_dir, &Which::Id(id), &by, say)
    })
    .await?;
    let ok = match result {
        Ok((_, 0)) => true,
        Ok(_) => false,
        Err(e) => {
            lines.push(Say::Err(format!("error: {e:#}")));
            false
        }
    };
    tracing::info!(file_id = id, user = %who.user, ok, "Retry asked from the console.");
    let back = format!("/files/{id}");
    said(
        &who,
        &format!("Retry file {id}"),
        ok,
        lines,
        (&back, "the file's history"),
    )
}

/// `POST /review/{id}/approve`: `ferry approve ID`, as the console user.
pub async fn approve(
    State(c): State<Arc<Console>>,
    UrlPath(id): UrlPath<i64>,
    Extension(who): Extension<Identity>,
    Form(form): Form<Plain>,
) -> Result<Html<String>, Problem> {
    check_admin(&who, &form.csrf)?;
    decide(c, id, who, "approved", None).await
}

/// `POST /review/{id}/reject`: `ferry reject ID --why TEXT`, as the console user.
pub async fn reject(
    State(c): State<Arc<Console>>,
    UrlPath(id): UrlPath<i64>,
    Extension(who): Extension<Identity>,
    Form(form): Form<RejectForm>,
) -> Result<Html<String>, Problem> {
    check_admin(&who, &form.csrf)?;
    decide(c, id, who, "rejected", Some(form.why)).await
}

async fn decide(
    c: Arc<Console>,
    id: i64,
    who: Identity,
    decision: &'static str,
    why: Option<String>,
) -> Result<Html<String>, Problem> {
    let by = actor(&who);
    let (code, lines) = collect(move |say| {
        crate::cli::pending::decide_as(&c.state_dir, id, decision, &by, why.as_deref(), say)
    })
    .await?;
    tracing::info!(file_id = id, user = %who.user, decision, code, "Review decision from the console.");
    let title = format!("File {id} {decision}");
    said(
        &who,
        &title,
        code == 0,
        lines,
        ("/review", "the review page"),
    )
}

/// `POST /jobs/{job}/trigger`: `ferry trigger JOB`.
pub async fn trigger(
    State(c): State<Arc<Console>>,
    UrlPath(job): UrlPath<String>,
    Extension(who): Extension<Identity>,
    Form(form): Form<Plain>,
) -> Result<Html<String>, Problem> {
    check_admin(&who, &form.csrf)?;
    let name = job.clone();
    let (code, lines) =
        collect(move |say| crate::cli::runs::trigger_with(&c.jobs_dir, &c.state_dir, &name, say))
            .await?;
    tracing::info!(job = %job, user = %who.user, code, "Run triggered from the console.");
    let back = format!("/jobs/{}", super::url_escape(&job));
    said(
        &who,
        &format!("Run {job} now"),
        code == 0,
        lines,
        (&back, "the job"),
    )
}

/// `POST /login`: checks the password (argon2, on a blocking thread), then starts a new
/// session for the user and goes where the form was asked for. A user name or client
/// address with too many recent failures is refused first ([`auth::Throttle`]).
pub async fn login(
    State(c): State<Arc<Console>>,
    Extension(who): Extension<Identity>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, Problem> {
    check_csrf(&who, &form.csrf)?;
    let next = super::pages::safe_next(&form.next);
    let old = super::session_cookie(&headers);
    let addr = client.map(|Extension(ConnectInfo(a))| a.ip());
    let keys = auth::throttle_keys(&form.name, addr);
    if let Some(left) = c.throttle.refused_for(&keys, Instant::now()) {
        let minutes = left.as_secs().div_ceil(60).max(1);
        tracing::warn!(client = ?addr, "Console login refused: too many failed logins; not checked.");
        return Err(Problem(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed logins for this user or from this address. Try again in {minutes} minute(s)."
            ),
        ));
    }
    let c2 = c.clone();
    let user =
        blocking(move || Ok(auth::check_password(&c2.auth, &form.name, &form.password).cloned()))
            .await?;
    let Some(user) = user else {
        c.throttle.failed(&keys, Instant::now());
        tracing::warn!(client = ?addr, "Console login refused (wrong user name or password).");
        let back = format!("/login?failed=true&next={}", super::url_escape(&next));
        return Ok(Redirect::to(&back).into_response());
    };
    c.throttle.succeeded(&keys[0]);
    tracing::info!(user = %user.name, "Console login.");
    let id = c.sessions.login(old.as_deref(), &user);
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, super::cookie(&id));
    Ok(resp)
}

/// `POST /logout`.
pub async fn logout(
    State(c): State<Arc<Console>>,
    Extension(who): Extension<Identity>,
    headers: HeaderMap,
    Form(form): Form<Plain>,
) -> Result<Response, Problem> {
    check_csrf(&who, &form.csrf)?;
    if let Some(id) = super::session_cookie(&headers) {
        c.sessions.logout(&id);
    }
    Ok(Redirect::to("/login").into_response())
}
