//! `ferry pending [--json]`, `ferry pending show ID`, `ferry approve ID`,
//! `ferry reject ID --why TEXT`, and the pending part of `ferry status` (issue 15;
//! docs/review.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::job::{self, Job};
use crate::journal::{self, Journal};
use crate::review::diff::{self, Change, Diff};
use crate::review::{self, Entry, Refused};
use crate::runtime::review as engine;

use super::{Say, exit};

/// A waiting file's records and what they would change, as far as they can be known.
#[derive(Debug, serde::Serialize)]
pub struct Compared {
    pub records: Option<u64>,
    pub diff: Option<Diff>,
    /// Why there is no comparison (no `key`, the job is not loaded, a record without the
    /// key, a base too large).
    pub diff_error: Option<String>,
}

/// The valid jobs of `jobs_dir`, with ferry.toml's defaults.
pub fn jobs(jobs_dir: &Path) -> BTreeMap<String, Job> {
    let defaults = crate::settings::load(jobs_dir)
        .map(|s| s.jobs)
        .unwrap_or_default();
    job::load_dir_with(jobs_dir, &defaults)
        .map(|l| l.jobs)
        .unwrap_or_default()
}

/// The message for a job whose `[review]` names no key.
fn no_key(job: &str) -> String {
    format!(
        "job `{job}` has no `key` in its [review] table, so ferry cannot compare its files' records with the last approved file; add `key = \"FIELD\"` (the field that identifies a record) to compare"
    )
}

/// What a pending file would change, as `ferry pending show` and the console show it.
pub fn compare(e: &Entry, jobs: &BTreeMap<String, Job>, state: &Path, details: usize) -> Compared {
    let job = jobs.get(&e.job);
    let original = e.original();
    let count = |job: &Job| {
        std::fs::File::open(&original)
            .ok()
            .and_then(|f| crate::runtime::pipeline::each_record(job, f, |_, _| Ok(())).ok())
    };
    let Some(key) = &e.key else {
        return Compared {
            records: job.filter(|j| j.input.is_some()).and_then(count),
            diff: None,
            diff_error: Some(no_key(&e.job)),
        };
    };
    let Some(job) = job.filter(|j| j.input.is_some()) else {
        return Compared {
            records: None,
            diff: None,
            diff_error: Some(format!(
                "the job file of `{}` is not loaded (missing or invalid: `ferry check`), so its records cannot be read",
                e.job
            )),
        };
    };
    let base = engine::base_path(state, &e.job);
    let limits = diff::Limits {
        max_details: details,
        ..Default::default()
    };
    match diff::compare(job, key, base.exists().then_some(&*base), &original, limits) {
        Ok(mut d) => Compared {
            records: Some(d.records),
            diff: {
                // A listing shows counts only.
                d.truncated &= details > 0;
                Some(d)
            },
            diff_error: None,
        },
        Err(err) => Compared {
            records: count(job),
            diff: None,
            diff_error: Some(err),
        },
    }
}

fn open(state: &Path) -> Result<Option<rusqlite::Connection>, i32> {
    Journal::open_read_only(state).map_err(|e| {
        eprintln!("error: cannot open the journal: {e}");
        exit::FATAL
    })
}

/// `ferry pending [--json]`.
pub fn list(jobs_dir: &Path, state: &Path, json: bool) -> i32 {
    let conn = match open(state) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let entries = match conn.as_ref().map(review::pending).transpose() {
        Ok(e) => e.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: cannot read the journal: {e}");
            return exit::FATAL;
        }
    };
    let jobs = jobs(jobs_dir);
    let now = engine::now_ms();
    let out = &mut std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let c = compare(e, &jobs, state, 0);
                let mut v = serde_json::to_value(e).unwrap_or_default();
                v["state"] = e.state().into();
                v["overdue"] = e.is_overdue(now).into();
                v["since"] = journal::fmt_time(e.held_at).into();
                v["records"] = serde_json::to_value(c.records).unwrap_or_default();
                v["changes"] = serde_json::to_value(&c.diff).unwrap_or_default();
                v["diff_error"] = serde_json::to_value(&c.diff_error).unwrap_or_default();
                v
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(rows));
        return exit::OK;
    }
    if entries.is_empty() {
        let _ = writeln!(out, "nothing is pending");
        return exit::OK;
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<16} {:<28} {:<23} {:>8}  CHANGES",
        "ID", "JOB", "FILE", "HELD", "RECORDS"
    );
    for e in &entries {
        let c = compare(e, &jobs, state, 0);
        let changes = match (&c.diff, &c.diff_error) {
            (Some(d), _) => d.summary(),
            (None, Some(_)) if e.key.is_none() => "not compared (no [review] key)".into(),
            (None, Some(err)) => format!("not compared: {err}"),
            (None, None) => "-".into(),
        };
        let mut flags = String::new();
        if e.is_overdue(now) {
            flags.push_str(&format!(
                "  OVERDUE (expires = {})",
                engine::humantime(e.expires_ms)
            ));
        }
        if !e.is_waiting() {
            flags.push_str(&format!("  [{}]", e.state()));
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<16} {:<28} {:<23} {:>8}  {changes}{flags}",
            e.id,
            e.job,
            e.name,
            journal::fmt_time(e.held_at),
            c.records.map_or("-".into(), |n| n.to_string()),
        );
    }
    let _ = writeln!(
        out,
        "\n`ferry pending show ID` for the details; `ferry approve ID` or `ferry reject ID --why \"...\"` to decide."
    );
    exit::OK
}

/// `ferry pending show ID [--json]`. Exits 2 when the job names no `key` (what would change
/// cannot be shown; an empty comparison would look like "nothing changes").
pub fn show(jobs_dir: &Path, state: &Path, id: i64, json: bool) -> i32 {
    let conn = match open(state) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("error: {}", Refused::Unknown(id));
            return exit::FILE_FAILED;
        }
        Err(code) => return code,
    };
    let e = match review::by_id(&conn, id) {
        Ok(Some(e)) => e,
        Ok(None) => {
            eprintln!("error: {}", Refused::Unknown(id));
            return exit::FILE_FAILED;
        }
        Err(e) => {
            eprintln!("error: cannot read the journal: {e}");
            return exit::FATAL;
        }
    };
    let jobs = jobs(jobs_dir);
    let c = if e.finished_at.is_none() {
        compare(&e, &jobs, state, diff::Limits::default().max_details)
    } else {
        Compared {
            records: None,
            diff: None,
            diff_error: Some("the decision was carried out: the file is no longer held".into()),
        }
    };
    let code = if e.key.is_none() && e.finished_at.is_none() {
        exit::INVALID
    } else {
        exit::OK
    };
    let now = engine::now_ms();
    let out = &mut std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(&e).unwrap_or_default();
        v["state"] = e.state().into();
        v["overdue"] = e.is_overdue(now).into();
        v["since"] = journal::fmt_time(e.held_at).into();
        v["outputs"] = serde_json::to_value(held_outputs(&e)).unwrap_or_default();
        v["records"] = serde_json::to_value(c.records).unwrap_or_default();
        v["changes"] = serde_json::to_value(&c.diff).unwrap_or_default();
        v["diff_error"] = serde_json::to_value(&c.diff_error).unwrap_or_default();
        let _ = writeln!(out, "{v}");
    } else {
        print_entry(out, &e, &c, now);
    }
    if code != exit::OK
        && let Some(err) = &c.diff_error
    {
        eprintln!("error: {err}");
    }
    code
}

/// Each held output file and where it goes once approved.
pub fn held_outputs(e: &Entry) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in &e.dests {
        let from = Path::new(&e.held).join(d.n.to_string());
        for f in walkdir::WalkDir::new(&from)
            .sort_by_file_name()
            .into_iter()
            .flatten()
            .filter(|f| f.file_type().is_file())
        {
            let rel = f.path().strip_prefix(&from).unwrap_or(f.path());
            out.push((
                f.path().display().to_string(),
                Path::new(&d.dir).join(rel).display().to_string(),
            ));
        }
    }
    out
}

fn print_entry(out: &mut impl Write, e: &Entry, c: &Compared, now: i64) {
    let _ = writeln!(out, "pending file {} of job {}: {}", e.id, e.job, e.state());
    let _ = writeln!(out, "  file      {}", e.path);
    let mut held = journal::fmt_time(e.held_at);
    if e.is_overdue(now) {
        held.push_str(&format!(
            "  OVERDUE: waiting longer than expires = {}",
            engine::humantime(e.expires_ms)
        ));
    }
    let _ = writeln!(out, "  held      {held}");
    let _ = writeln!(out, "  held in   {}", e.held);
    if let (Some(d), Some(by), Some(at)) = (&e.decision, &e.decided_by, e.decided_at) {
        let why = e
            .why
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  decision  {d} by {by} on {}{why}",
            journal::fmt_time(at)
        );
    }
    if let Some(o) = &e.outcome {
        let _ = writeln!(out, "  outcome   {o}");
    }
    for (from, to) in held_outputs(e) {
        let _ = writeln!(out, "  output    {from}\n         -> {to}");
    }
    let original = match (e.disposition.as_str(), &e.archive) {
        ("archive", Some(a)) => format!("archived to {a} once approved"),
        ("keep", _) => "stays in the source (success = \"keep\"; a copy is held)".into(),
        _ => "deleted once approved".into(),
    };
    let _ = writeln!(
        out,
        "  original  {original}; to {} if rejected",
        e.error_dir
    );
    if let Some(n) = c.records {
        let _ = writeln!(out, "  records   {n}");
    }
    match (&c.diff, &c.diff_error) {
        (Some(d), _) => {
            let _ = writeln!(
                out,
                "  changes   {} (by {}{})",
                d.summary(),
                e.key.as_deref().unwrap_or("-"),
                if d.compared_with_approved {
                    ", against the last approved file"
                } else {
                    ""
                }
            );
            for ch in &d.details {
                match ch {
                    Change::Added { key } => {
                        let _ = writeln!(out, "    + {key}");
                    }
                    Change::Removed { key } => {
                        let _ = writeln!(out, "    - {key}");
                    }
                    Change::Changed { key, fields } => {
                        let _ = writeln!(out, "    ~ {key}");
                        for f in fields {
                            let _ = writeln!(
                                out,
                                "        {}: {} -> {}",
                                f.field,
                                shown(f.old.as_deref()),
                                shown(f.new.as_deref())
                            );
                        }
                    }
                }
            }
            if d.truncated {
                let _ = writeln!(
                    out,
                    "    ... (the first {} differences are shown)",
                    d.details.len()
                );
            }
        }
        (None, Some(err)) if e.key.is_some() => {
            let _ = writeln!(out, "  changes   not compared: {err}");
        }
        _ => {}
    }
}

fn shown(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(none)".into(),
    }
}

/// `ferry approve ID`.
pub fn approve(state: &Path, id: i64) -> i32 {
    decide_as(
        state,
        id,
        "approved",
        &review::os_user(),
        None,
        &mut super::print,
    )
}

/// `ferry reject ID --why TEXT`.
pub fn reject(state: &Path, id: i64, why: &str) -> i32 {
    decide_as(
        state,
        id,
        "rejected",
        &review::os_user(),
        Some(why),
        &mut super::print,
    )
}

/// Records `who`'s decision (`approved`, or `rejected` with `why`) on pending file `id`
/// and carries it out (or leaves it to the running ferry), saying what happened through
/// `say`. Returns the exit code of `ferry approve` / `ferry reject`. The web console calls
/// it with its user.
pub fn decide_as(
    state: &Path,
    id: i64,
    decision: &str,
    who: &str,
    why: Option<&str>,
    say: &mut dyn FnMut(Say),
) -> i32 {
    let db = journal::db_path(state);
    if !db.exists() {
        say(Say::Err(format!("error: {}", Refused::Unknown(id))));
        return exit::FILE_FAILED;
    }
    let mut conn = match rusqlite::Connection::open(&db).and_then(|c| {
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            say(Say::Err(format!("error: cannot open the journal: {e}")));
            return exit::FATAL;
        }
    };
    let e = match review::decide(&mut conn, id, decision, who, why) {
        Ok(e) => e,
        Err(r @ Refused::NoReason) => {
            say(Say::Err(format!("error: {r}")));
            return exit::INVALID;
        }
        Err(Refused::Journal(e)) => {
            say(Say::Err(format!(
                "error: cannot record the decision in the journal: {e}"
            )));
            return exit::FATAL;
        }
        Err(r) => {
            say(Say::Err(format!("error: {r}")));
            return exit::FILE_FAILED;
        }
    };
    drop(conn);
    say(Say::Out(format!(
        "file {id} ({}) {decision} by {who}",
        e.name
    )));
    carry_out(state, id, say)
}

/// Carries the decision out now when no ferry runs (taking the state folder's lock);
/// otherwise the running one does within seconds.
fn carry_out(state: &Path, id: i64, say: &mut dyn FnMut(Say)) -> i32 {
    if let Some(pid) = journal::running_pid(state) {
        say(Say::Out(format!(
            "the running ferry (pid {pid}) carries it out within seconds (`ferry history` shows when)"
        )));
        return exit::OK;
    }
    let j = match Journal::open(state, false) {
        Ok(j) => j,
        Err(journal::JournalError::Locked(_, pid)) => {
            say(Say::Out(format!(
                "ferry (pid {pid}) started meanwhile and carries it out within seconds"
            )));
            return exit::OK;
        }
        Err(e) => {
            say(Say::Err(format!(
                "warning: the decision is recorded, but cannot be carried out now: {e}; the next `ferry run` carries it out"
            )));
            return exit::FATAL;
        }
    };
    engine::tick(&j, std::iter::empty::<&Job>());
    j.close();
    let after = journal::Journal::open_read_only(state)
        .ok()
        .flatten()
        .and_then(|c| review::by_id(&c, id).ok().flatten());
    match after {
        Some(e) if e.finished_at.is_some() => {
            say(Say::Out(e.outcome.unwrap_or_default()));
            exit::OK
        }
        Some(e) => {
            say(Say::Err(format!(
                "warning: the decision is recorded, but it could not be carried out yet: {}; ferry tries again (the daemon every few seconds, or the next `ferry run`)",
                e.outcome.unwrap_or_default()
            )));
            exit::FILE_FAILED
        }
        None => exit::OK,
    }
}

/// The pending part of `ferry status --json`.
pub fn status_json(conn: Option<&rusqlite::Connection>) -> serde_json::Value {
    let rows = conn
        .and_then(|c| review::status(c).ok())
        .unwrap_or_default();
    serde_json::to_value(rows).unwrap_or_default()
}

/// The pending part of `ferry status`: per reviewed job, how many files wait and how many
/// of them longer than `expires`.
pub fn print_status(conn: Option<&rusqlite::Connection>) {
    let rows = conn
        .and_then(|c| review::status(c).ok())
        .unwrap_or_default();
    if rows.is_empty() {
        return;
    }
    println!();
    println!("Pending review (`ferry pending`):");
    for r in rows {
        let overdue = if r.overdue > 0 {
            format!(", {} OVERDUE (waiting longer than `expires`)", r.overdue)
        } else {
            String::new()
        };
        println!(
            "  {}: {} waiting since {}{overdue}",
            r.job,
            r.waiting,
            r.oldest.unwrap_or_default()
        );
    }
}
