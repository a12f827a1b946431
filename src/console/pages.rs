//! The console's pages (GET): what they read and show. Nothing here changes anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Html;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{Console, Identity, Problem, blocking, chart, search, view};
use crate::job::{self, Job};
use crate::journal::{self, Journal};
use crate::redact::scrub;

/// A job as the Jobs page shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub name: String,
    /// Where it takes files from (redacted).
    pub source: String,
    /// Where its outputs go (redacted).
    pub outputs: Vec<String>,
    /// `watching`, `scheduled`, `paused` or `broken`.
    pub state: String,
    /// The state in words: the next run, the paused destination and until when, ...
    pub detail: String,
    /// A broken job file's problems, at file:line:column.
    pub errors: Vec<String>,
    pub scheduled: bool,
    pub today: i64,
    pub failed_today: i64,
    pub failed: u64,
    /// Files waiting in the source (as the daemon last said), and in the retry queue.
    pub waiting: Option<u64>,
    pub retry_queue: usize,
}

/// A read-only connection to the journal; `None` before the first file.
pub fn read_journal(state_dir: &Path) -> Result<Option<Connection>, Problem> {
    Journal::open_read_only(state_dir).map_err(Problem::internal)
}

/// Where a job takes files from, for people (no password: URLs are shown without theirs).
fn source_text(job: &Job) -> String {
    let s = &job.source;
    let text = if let Some(r) = &s.remote {
        r.endpoint.display()
    } else if let Some(m) = &s.mailbox {
        m.url.display()
    } else if let Some(d) = &s.database {
        d.display()
    } else {
        s.folder.display().to_string()
    };
    scrub(&text).into_owned()
}

/// Where each output of a job goes, for people (no password).
fn output_texts(job: &Job) -> Vec<String> {
    let text = |o: &job::Output| match (&o.deliver, &o.email) {
        (Some(d), _) => d.endpoint.display(),
        (None, Some(e)) => format!("mailto:{} via {}", e.to.join(","), e.smtp.display()),
        (None, None) => format!("{}/{}", o.folder.as_str(), o.name.as_str()),
    };
    job.outputs
        .iter()
        .map(|o| scrub(&text(o)).into_owned())
        .collect()
}

/// Local midnight today, in ms since the epoch.
fn today_ms() -> i64 {
    use chrono::TimeZone;
    let midnight = chrono::Local::now().date_naive().and_hms_opt(0, 0, 0);
    midnight
        .and_then(|m| chrono::Local.from_local_datetime(&m).earliest())
        .map_or(0, |t| t.timestamp_millis())
}

/// Files first seen today, and how many of them failed, per job.
fn today_counts(conn: &Connection, job: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(state = 'failed'), 0) FROM files
         WHERE job = ?1 AND first_seen >= ?2",
        rusqlite::params![job, today_ms()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Every job, valid or broken, with its state and counts.
pub fn overview(c: &Console) -> Result<Vec<JobView>, Problem> {
    let conn = read_journal(&c.state_dir)?;
    let defaults = crate::settings::load(&c.jobs_dir)
        .map(|s| s.jobs)
        .unwrap_or_default();
    let loaded = job::load_dir_with(&c.jobs_dir, &defaults).map_err(Problem::internal)?;
    let status = conn
        .as_ref()
        .map(journal::job_status)
        .transpose()
        .map_err(Problem::internal)?
        .unwrap_or_default();
    let (queued, paused) = conn
        .as_ref()
        .and_then(|c| crate::runtime::retry::status(c).ok())
        .unwrap_or_default();
    let running = journal::running_pid(&c.state_dir).is_some();
    let waiting = |name: &str| {
        let row = status.iter().find(|r| r.job == name);
        row.and_then(|r| r.waiting).filter(|_| running)
    };
    let schedules = crate::cli::runs::schedules(conn.as_ref(), &loaded.jobs, &waiting, running);
    let mut out = Vec::new();
    for (name, job) in &loaded.jobs {
        let (today, failed_today) = match &conn {
            Some(conn) => today_counts(conn, name).map_err(Problem::internal)?,
            None => (0, 0),
        };
        let pause: Vec<String> = paused
            .iter()
            .filter(|p| &p.job == name)
            .map(|p| format!("{} paused until {}: {}", p.destination, p.until, p.error))
            .collect();
        let schedule = schedules.iter().find(|s| &s.job == name);
        let (state, detail) = if !pause.is_empty() {
            ("paused", pause.join("; "))
        } else if let Some(s) = schedule.filter(|_| job.source.timing.is_scheduled()) {
            let next = s
                .next_run
                .as_deref()
                .map(local_time)
                .unwrap_or("none".into());
            ("scheduled", format!("{}; next run {next}", s.schedule))
        } else {
            ("watching", "takes files as they are ready".to_string())
        };
        out.push(JobView {
            name: name.clone(),
            source: source_text(job),
            outputs: output_texts(job),
            state: state.into(),
            detail: scrub(&detail).into_owned(),
            errors: Vec::new(),
            scheduled: job.source.timing.is_scheduled(),
            today,
            failed_today,
            failed: status
                .iter()
                .find(|r| &r.job == name)
                .map_or(0, |r| r.failed),
            waiting: waiting(name),
            retry_queue: queued.iter().filter(|q| &q.job == name).count(),
        });
    }
    out.extend(broken(&loaded));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The broken job files, with their problems.
fn broken(loaded: &job::Loaded) -> Vec<JobView> {
    let mut out = Vec::new();
    for (name, file) in &loaded.broken {
        let mut errors: Vec<String> = loaded
            .diags
            .iter()
            .filter(|d| &d.file == file)
            .map(|d| scrub(&d.to_string()).into_owned())
            .collect();
        if let Some(why) = loaded.left_out.get(name) {
            errors.push(scrub(why).into_owned());
        }
        out.push(JobView {
            name: name.clone(),
            source: scrub(&file.display().to_string()).into_owned(),
            outputs: Vec::new(),
            state: "broken".into(),
            detail: "the job file has errors; the job does not run".into(),
            errors,
            scheduled: false,
            today: 0,
            failed_today: 0,
            failed: 0,
            waiting: None,
            retry_queue: 0,
        });
    }
    out
}

/// An RFC 3339 time as local time for people.
fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// `GET /jobs`.
pub async fn jobs(
    State(c): State<Arc<Console>>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let jobs = blocking(move || overview(&c)).await?;
    view::page(
        "jobs.html",
        "jobs",
        &who,
        serde_json::json!({ "jobs": jobs }),
    )
}

/// `GET /jobs/{job}`: the job, its chart, its newest files.
pub async fn job(
    State(c): State<Arc<Console>>,
    UrlPath(name): UrlPath<String>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let (job, svg, page) = blocking(move || {
        let job = overview(&c)?
            .into_iter()
            .find(|j| j.name == name)
            .ok_or_else(|| Problem::not_found(format!("no job `{name}`")))?;
        let conn = read_journal(&c.state_dir)?;
        let Some(conn) = conn else {
            return Ok((job, chart::svg(&chart::Series::default()), None));
        };
        let series = chart::series(&conn, &name, chart::DAYS).map_err(Problem::internal)?;
        let q = search::Query {
            job: name,
            ..Default::default()
        };
        let page = search::search(&conn, &q).map_err(Problem::internal)?;
        Ok((job, chart::svg(&series), Some(page)))
    })
    .await?;
    view::page(
        "job.html",
        "jobs",
        &who,
        serde_json::json!({ "job": job, "chart": svg, "page": page, "days": chart::DAYS }),
    )
}

/// `GET /files?job=&name=&status=&from=&to=&hash=&before=&after=`.
pub async fn files(
    State(c): State<Arc<Console>>,
    Query(q): Query<search::Query>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let query = q.clone();
    let (page, error, jobs) = blocking(move || {
        let conn = read_journal(&c.state_dir)?;
        let jobs = crate::cli::job_file_names(&c.jobs_dir);
        let Some(conn) = conn else {
            return Ok((None, None, jobs));
        };
        match search::search(&conn, &query) {
            Ok(p) => Ok((Some(p), None, jobs)),
            Err(search::SearchError::Date(e)) => Ok((None, Some(e.to_string()), jobs)),
            Err(e) => Err(Problem::internal(e)),
        }
    })
    .await?;
    let mut filters = q.clone();
    filters.before = None;
    filters.after = None;
    view::page(
        "files.html",
        "files",
        &who,
        serde_json::json!({
            "q": q,
            "page": page,
            "error": error,
            "jobs": jobs,
            "filters": serde_urlencoded(&filters),
            "states": ["done", "failed", "retried", "taken", "planned", "failing"],
        }),
    )
}

/// The non-empty filters as a query string, for the page links.
fn serde_urlencoded(q: &search::Query) -> String {
    let pairs = [
        ("job", &q.job),
        ("name", &q.name),
        ("status", &q.status),
        ("from", &q.from),
        ("to", &q.to),
        ("hash", &q.hash),
    ];
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::url_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An error report beside a file in an error folder, if it is there (at most 64 KiB).
pub fn report_of(error_copy: &str) -> Option<String> {
    use std::io::Read;
    let path = crate::fsutil::report_path(Path::new(error_copy));
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    Some(scrub(&text).into_owned())
}

/// `GET /files/{id}`: everything the journal knows about one file.
pub async fn file(
    State(c): State<Arc<Console>>,
    UrlPath(id): UrlPath<i64>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let (history, report, review) = blocking(move || {
        let missing = || Problem::not_found(format!("no file with id {id}"));
        let conn = read_journal(&c.state_dir)?.ok_or_else(missing)?;
        let h = journal::file_history(&conn, id)
            .map_err(Problem::internal)?
            .ok_or_else(missing)?;
        let report = match (h.state.as_str(), &h.original) {
            ("failed", Some(copy)) => report_of(copy),
            _ => None,
        };
        let review = crate::review::by_id(&conn, id).map_err(Problem::internal)?;
        Ok((h, report, review))
    })
    .await?;
    let review_state = review.as_ref().map(|r| r.state());
    let name = Path::new(&history.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    view::page(
        "file.html",
        "files",
        &who,
        serde_json::json!({
            "name": name,
            "f": history,
            "report": report,
            "review": review,
            "review_state": review_state,
        }),
    )
}

/// A file in an error folder, with its report.
#[derive(Debug, Serialize)]
struct ErrorView {
    id: i64,
    job: String,
    name: String,
    copy: String,
    when: String,
    error: Option<String>,
    report: Option<String>,
}

/// The failed files whose copy is still in its error folder, newest first (at most 500).
fn error_files(conn: &Connection) -> rusqlite::Result<Vec<ErrorView>> {
    let mut st = conn.prepare(
        "SELECT id, job, name, error_dest, updated_at, error FROM files
         WHERE state = 'failed' AND error_dest IS NOT NULL ORDER BY id DESC LIMIT 500",
    )?;
    let rows = st.query_map([], |r| {
        Ok(ErrorView {
            id: r.get(0)?,
            job: r.get(1)?,
            name: scrub(&r.get::<_, String>(2)?).into_owned(),
            copy: r.get(3)?,
            when: journal::fmt_time(r.get(4)?),
            error: r
                .get::<_, Option<String>>(5)?
                .map(|e| scrub(&e).into_owned()),
            report: None,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let mut e = row?;
        if !crate::fsutil::exists(Path::new(&e.copy)) {
            continue;
        }
        e.report = report_of(&e.copy);
        e.copy = scrub(&e.copy).into_owned();
        out.push(e);
    }
    Ok(out)
}

/// `GET /errors`.
pub async fn errors(
    State(c): State<Arc<Console>>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let files = blocking(move || match read_journal(&c.state_dir)? {
        Some(conn) => error_files(&conn).map_err(Problem::internal),
        None => Ok(Vec::new()),
    })
    .await?;
    view::page(
        "errors.html",
        "errors",
        &who,
        serde_json::json!({ "files": files }),
    )
}

/// A pending file with what it would change.
#[derive(Debug, Serialize)]
struct ReviewView {
    entry: crate::review::Entry,
    state: String,
    held: String,
    compared: crate::cli::pending::Compared,
    outputs: Vec<(String, String)>,
}

/// `GET /review`.
pub async fn review(
    State(c): State<Arc<Console>>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    let files = blocking(move || {
        let Some(conn) = read_journal(&c.state_dir)? else {
            return Ok(Vec::new());
        };
        let entries = crate::review::pending(&conn).map_err(Problem::internal)?;
        let jobs: BTreeMap<String, Job> = crate::cli::pending::jobs(&c.jobs_dir);
        Ok(entries
            .into_iter()
            .map(|e| ReviewView {
                state: e.state(),
                held: journal::fmt_time(e.held_at),
                compared: crate::cli::pending::compare(&e, &jobs, &c.state_dir, 200),
                outputs: crate::cli::pending::held_outputs(&e),
                entry: e,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    view::page(
        "review.html",
        "review",
        &who,
        serde_json::json!({ "files": files }),
    )
}

/// The login form's query string.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    pub next: String,
    pub failed: bool,
}

/// `GET /login`.
pub async fn login_form(
    Query(q): Query<LoginQuery>,
    Extension(who): Extension<Identity>,
) -> Result<Html<String>, Problem> {
    view::page(
        "login.html",
        "login",
        &who,
        serde_json::json!({ "next": safe_next(&q.next), "failed": q.failed }),
    )
}

/// Where to go after logging in: a path of this console, never another site.
pub fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/jobs".to_string()
    }
}
