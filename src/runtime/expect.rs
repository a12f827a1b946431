//! Two-way exchanges (`[expect]`, issue 15): every file a job delivers expects an answer
//! that arrives through another job (`from`) within a time; ferry links each answer to its
//! request, and reports what stays unanswered past its deadline, and answers that match no
//! request. Decisions and their reasons: docs/expect.md.
//!
//! Theory of operation, in three parts that meet only in the journal
//! (`journal::expect`'s tables):
//!
//! 1. **Recording** ([`record`], called by the delivery before its plan is made durable):
//!    a request file records what it expects (the answer's name, or each distinct value of
//!    the field), with its deadline; a file of an answering job records its name and the
//!    values of the fields requests match by. Both are lazy journal writes sent before the
//!    plan, which is waited for, so they are durable whenever the file's outputs can be
//!    visible. Rows of a file that then fails are never looked at: only requests whose
//!    plan is durable (`planned` or `done`) expect anything, only answers that are `done`
//!    are linked.
//! 2. **Linking and deadlines** ([`pass`]): one place, on one task, looks at the journal:
//!    each new answer is linked to the oldest open expectation it fits (or, when it fits
//!    none, reported unmatched); each open expectation past its deadline is reported
//!    overdue once (log, journal event, the admin alert). A late answer is still linked,
//!    as late.
//! 3. **Showing**: `ferry status` and `ferry history` read the tables
//!    (`journal::expect::status`, `journal::expect::for_file`).
//!
//! The daemon runs a pass every second (every 50 ms with a test clock); `run --once` runs
//! one at its end, after every job's files, so that answers and requests of the same run
//! meet. Times are the schedule clock's (`FERRY_TEST_CLOCK` in tests).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rusqlite::types::Value;

use crate::job::Job;
use crate::job::expect::Match;
use crate::job::template::Vars;
use crate::journal::Journal;
use crate::schedule::clock::Clock;
use crate::sources::folder::Found;

/// The most expectations one request may have (distinct values of its field): beyond it
/// the request fails, since what it expects could not be tracked with flat memory.
pub const MAX_VALUES: usize = 10_000;

/// An answer that fits no request is reported unmatched once it has been done this long
/// (on the schedule clock), or at the end of a `run --once`: a request and its answer can
/// be taken at the same moment (both already waiting at start), and the answer must not be
/// called unmatched because its request's plan was made a moment after it.
pub const UNMATCHED_AFTER_MS: i64 = 60_000;

/// The jobs as last loaded: which answer others (with the fields their files must report:
/// the jobs named by some `[expect] from`), and every job by name (for the admin alert).
static JOBS: RwLock<Option<Loaded>> = RwLock::new(None);

#[derive(Default)]
struct Loaded {
    answering: HashMap<String, Vec<String>>,
    jobs: HashMap<String, Arc<Job>>,
}

/// Records the jobs that run now (called with every load of the jobs folder, before their
/// files are taken).
pub fn set_jobs<'a>(jobs: impl Iterator<Item = &'a Job>) {
    let mut l = Loaded::default();
    for j in jobs {
        l.jobs.insert(j.name.clone(), Arc::new(j.clone()));
        let Some(e) = &j.expect else { continue };
        let fields = l.answering.entry(e.from.clone()).or_default();
        if let Match::Field(f) = &e.answer
            && !fields.contains(f)
        {
            fields.push(f.clone());
        }
    }
    *JOBS.write().expect("expect jobs") = Some(l);
}

fn answer_fields(job: &str) -> Option<Vec<String>> {
    JOBS.read()
        .expect("expect jobs")
        .as_ref()
        .and_then(|l| l.answering.get(job).cloned())
}

fn current_jobs() -> HashMap<String, Arc<Job>> {
    JOBS.read()
        .expect("expect jobs")
        .as_ref()
        .map(|l| l.jobs.clone())
        .unwrap_or_default()
}

/// Milliseconds since the epoch on the schedule clock.
pub fn now_ms(clock: &Clock) -> i64 {
    clock.now().as_millisecond()
}

/// Step 1: records what a file about to be delivered expects (a request) and what it
/// carries (an answer). Called once the file is claimed, before anything is written; the
/// writes are lazy and become durable with the file's plan. `Err`: the request cannot be
/// tracked (its records lack the field), and the file fails with this reason.
pub fn record(
    job: &Job,
    found: &Found,
    vars: &Vars<'_>,
    id: i64,
    journal: &Journal,
) -> Result<(), String> {
    let request = job.expect.as_ref();
    let answering = answer_fields(&job.name);
    if request.is_none() && answering.is_none() {
        return Ok(());
    }
    let now = now_ms(&Clock::from_env());
    let meta =
        crate::runtime::naming::meta(job, &found.path, &found.name, &found.rel_dir, vars.taken);
    if let Some(e) = request {
        let keys = request_keys(job, e, found, vars, meta.clone())?;
        send(
            journal,
            "DELETE FROM expect_requests WHERE file_id = ?1",
            vec![Value::Integer(id)],
        );
        let within = crate::job::retry::humanize(e.within);
        let deadline = now.saturating_add(e.within.as_millis() as i64);
        for (kind, field, key) in keys {
            send(
                journal,
                "INSERT INTO expect_requests (file_id, job, from_job, kind, field, key, within, sent_at, deadline)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                vec![
                    Value::Integer(id),
                    Value::Text(job.name.clone()),
                    Value::Text(e.from.clone()),
                    Value::Text(kind.into()),
                    Value::Text(field),
                    Value::Text(key),
                    Value::Text(within.clone()),
                    Value::Integer(now),
                    Value::Integer(deadline),
                ],
            );
        }
    }
    if let Some(fields) = answering {
        let pairs = answer_values(job, found, &fields, meta);
        send(
            journal,
            "INSERT OR REPLACE INTO expect_answers (file_id, job, name, at, fields, state, matched) VALUES (?1, ?2, ?3, ?4, ?5, 'new', '')",
            vec![
                Value::Integer(id),
                Value::Text(job.name.clone()),
                Value::Text(found.name.clone()),
                Value::Integer(now),
                Value::Text(serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())),
            ],
        );
    }
    Ok(())
}

fn send(journal: &Journal, sql: &'static str, params: Vec<Value>) {
    if let Err(e) = journal.exec(sql, params, false) {
        tracing::error!(error = %e, "Cannot record the exchange in the journal.");
    }
}

/// What a request expects: `(kind, field, key)` rows, one per expected name or value.
fn request_keys(
    job: &Job,
    e: &crate::job::expect::Expect,
    found: &Found,
    vars: &Vars<'_>,
    meta: std::collections::BTreeMap<String, String>,
) -> Result<Vec<(&'static str, String, String)>, String> {
    let fields = e.request_fields();
    let tuples = if fields.is_empty() {
        Default::default()
    } else {
        let file = found
            .reader()
            .map_err(|err| format!("cannot read the file for [expect]: {err}"))?;
        let t =
            crate::runtime::pipeline::distinct_values(job, file, meta, &fields, true, MAX_VALUES)
                .map_err(|err| {
                format!(
                    "[expect]: cannot read {} from the records: {err}",
                    fields.join(", ")
                )
            })?;
        if t.is_empty() {
            return Err(format!(
                "[expect]: the file has no record to take {} from, so no answer could be matched to it",
                fields.join(", ")
            ));
        }
        if let Some(blank) = t.iter().find(|v| v.iter().any(String::is_empty)) {
            let missing: Vec<&str> = fields
                .iter()
                .zip(blank)
                .filter(|(_, v)| v.is_empty())
                .map(|(f, _)| f.as_str())
                .collect();
            return Err(format!(
                "[expect]: a record has no value for {}, so its answer could not be matched",
                missing.join(", ")
            ));
        }
        t
    };
    Ok(match &e.answer {
        Match::Field(f) => tuples
            .into_iter()
            .map(|v| ("field", f.clone(), v.into_iter().next().unwrap_or_default()))
            .collect(),
        Match::Name(tpl) if fields.is_empty() => vec![("name", String::new(), tpl.render(vars))],
        Match::Name(tpl) => {
            let names: std::sync::Arc<[String]> = fields.clone().into();
            let mut keys: Vec<(&'static str, String, String)> = tuples
                .into_iter()
                .map(|values| {
                    let rec = crate::formats::Record {
                        names: names.clone(),
                        values,
                        ..Default::default()
                    };
                    let v = Vars {
                        record: Some(&rec),
                        ..vars.clone()
                    };
                    ("name", String::new(), tpl.render(&v))
                })
                .collect();
            keys.dedup();
            keys
        }
    })
}

/// What an answer carries: its records' `(field, value)` pairs, as read (before its
/// job's transform). An answer whose records cannot be read carries only its name.
fn answer_values(
    job: &Job,
    found: &Found,
    fields: &[String],
    meta: std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    if fields.is_empty() || job.input.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in fields {
        let read = found.reader().map_err(|e| e.to_string()).and_then(|file| {
            crate::runtime::pipeline::distinct_values(
                job,
                file,
                meta.clone(),
                std::slice::from_ref(f),
                false,
                MAX_VALUES,
            )
            .map_err(|e| e.to_string())
        });
        match read {
            Ok(values) => out.extend(
                values
                    .into_iter()
                    .filter_map(|v| v.into_iter().next())
                    .filter(|v| !v.is_empty())
                    .map(|v| (f.clone(), v)),
            ),
            Err(e) => {
                tracing::warn!(field = %f, error = %e, "Cannot read the answer's field; it is matched by its name only.");
            }
        }
    }
    out
}

/// What a pass found: for the log and `run --once`'s exit code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub linked: usize,
    pub late: usize,
    pub unmatched: usize,
    pub overdue: usize,
}

/// Step 2: links new answers, reports unmatched answers and overdue requests. `jobs`:
/// the running jobs (for their admin alert). `last`: the end of a `run --once`, when an
/// answer that fits nothing is unmatched at once.
pub fn pass(
    journal: &Journal,
    now: i64,
    jobs: &HashMap<String, Arc<Job>>,
    last: bool,
) -> crate::journal::Result<Report> {
    let mut report = Report::default();
    let announced = announce(journal)?;
    let seen = link_answers(journal, now, last, &mut report)?;
    report_overdue(journal, now, jobs, &mut report)?;
    // What this pass wrote is durable before the next pass reads: nothing is said twice.
    if announced || seen || report != Report::default() {
        journal.flush()?;
    }
    Ok(report)
}

/// A request whose plan became durable gets an event that says what it waits for.
/// Returns whether there was any.
fn announce(journal: &Journal) -> crate::journal::Result<bool> {
    let rows: Vec<(i64, i64, String, String, String, String, i64)> = journal.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT e.id, e.file_id, e.kind, e.field, e.key, e.from_job, e.deadline
             FROM expect_requests e JOIN files f ON f.id = e.file_id
             WHERE e.announced = 0 AND f.state IN ('planned', 'done') ORDER BY e.id LIMIT 1000",
        )?;
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect()
    })?;
    let any = !rows.is_empty();
    for (id, file_id, kind, field, key, from, deadline) in rows {
        let what = if kind == "field" {
            format!("{field} {key}")
        } else {
            key
        };
        journal.event(
            file_id,
            "expecting",
            format!(
                "an answer {what} from {from} by {}",
                crate::journal::fmt_time(deadline)
            ),
        )?;
        journal.exec(
            "UPDATE expect_requests SET announced = 1 WHERE id = ?1",
            vec![Value::Integer(id)],
            false,
        )?;
    }
    Ok(any)
}

/// An open expectation a new answer may fit.
struct Open {
    id: i64,
    file_id: i64,
    job: String,
    name: String,
    what: String,
    deadline: i64,
}

fn find_open(
    c: &rusqlite::Connection,
    from: &str,
    kind: &str,
    field: &str,
    key: &str,
) -> rusqlite::Result<Option<Open>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(
        "SELECT e.id, e.file_id, e.job, f.name, e.deadline FROM expect_requests e JOIN files f ON f.id = e.file_id
         WHERE e.answer_id IS NULL AND e.from_job = ?1 AND e.kind = ?2 AND e.field = ?3 AND e.key = ?4
           AND f.state IN ('planned', 'done')
         ORDER BY e.id LIMIT 1",
    )?
    .query_row(rusqlite::params![from, kind, field, key], |r| {
        Ok(Open {
            id: r.get(0)?,
            file_id: r.get(1)?,
            job: r.get(2)?,
            name: r.get(3)?,
            what: if kind == "field" {
                format!("{field} {key}")
            } else {
                key.to_string()
            },
            deadline: r.get(4)?,
        })
    })
    .optional()
}

/// Links new answers; returns whether it wrote anything.
fn link_answers(
    journal: &Journal,
    now: i64,
    last: bool,
    report: &mut Report,
) -> crate::journal::Result<bool> {
    let mut wrote = false;
    let answers: Vec<(i64, String, String, i64, String)> = journal.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT a.file_id, a.job, a.name, a.at, a.fields FROM expect_answers a JOIN files f ON f.id = a.file_id
             WHERE a.state = 'new' AND f.state = 'done' ORDER BY a.file_id LIMIT 1000",
        )?;
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect()
    })?;
    for (answer_id, job, name, at, fields) in answers {
        let pairs: Vec<(String, String)> = serde_json::from_str(&fields).unwrap_or_default();
        // The links of one answer are made in one go: each is marked taken before the
        // next lookup, which reads committed rows only.
        let mut linked: Vec<Open> = Vec::new();
        let mut candidates: Vec<(&str, &str, &str)> = vec![("name", "", name.as_str())];
        candidates.extend(pairs.iter().map(|(f, v)| ("field", f.as_str(), v.as_str())));
        for (kind, field, key) in candidates {
            let open = journal.read(|c| find_open(c, &job, kind, field, key))?;
            let Some(open) = open else { continue };
            journal.exec(
                "UPDATE expect_requests SET answer_id = ?2, answer_name = ?3, answered_at = ?4 WHERE id = ?1 AND answer_id IS NULL",
                vec![
                    Value::Integer(open.id),
                    Value::Integer(answer_id),
                    Value::Text(name.clone()),
                    Value::Integer(at),
                ],
                // Lazy: one answer's candidates never fit the same expectation (each is
                // another kind, field or value); the flush below precedes the next answer.
                false,
            )?;
            linked.push(open);
        }
        wrote |= !linked.is_empty();
        if linked.is_empty() {
            if !last && at.saturating_add(UNMATCHED_AFTER_MS) > now {
                continue;
            }
            journal.event(
                answer_id,
                "unmatched",
                "this answer matches no request that waits for one".into(),
            )?;
            journal.exec(
                "UPDATE expect_answers SET state = 'unmatched' WHERE file_id = ?1",
                vec![Value::Integer(answer_id)],
                false,
            )?;
            journal.flush()?;
            tracing::warn!(job = %job, file = %name, answer = answer_id, "Answer matches no request: no file that expects it is waiting (it was processed normally).");
            report.unmatched += 1;
            wrote = true;
            continue;
        }
        let mut said = Vec::new();
        for o in &linked {
            let late = at > o.deadline;
            let detail = format!(
                "{}: #{answer_id} {name} ({job}) at {}{}",
                o.what,
                crate::journal::fmt_time(at),
                if late { ", after the deadline" } else { "" }
            );
            if late {
                report.late += 1;
            }
            said.push((o, late));
            journal.event(
                o.file_id,
                if late { "answered late" } else { "answered" },
                detail,
            )?;
            report.linked += 1;
        }
        let summary: Vec<String> = linked
            .iter()
            .map(|o| format!("#{} {} ({})", o.file_id, o.name, o.what))
            .collect();
        journal.event(answer_id, "answers", summary.join(", "))?;
        journal.exec(
            "UPDATE expect_answers SET state = 'matched', matched = ?2 WHERE file_id = ?1",
            vec![Value::Integer(answer_id), Value::Text(summary.join(", "))],
            false,
        )?;
        // Said once it is on record: whoever reads the log finds it in the journal.
        journal.flush()?;
        for (o, late) in said {
            if late {
                tracing::warn!(job = %o.job, file = %o.name, answer = %name, "Late answer linked to its request.");
            } else {
                tracing::info!(job = %o.job, file = %o.name, answer = %name, "Answer linked to its request.");
            }
        }
    }
    Ok(wrote)
}

/// Reports every open expectation past its deadline, once: one log line, one event and
/// one alert per request (a request of a thousand orders is one mail, not a thousand).
fn report_overdue(
    journal: &Journal,
    now: i64,
    jobs: &HashMap<String, Arc<Job>>,
    report: &mut Report,
) -> crate::journal::Result<()> {
    struct Due {
        id: i64,
        what: String,
        within: String,
        deadline: i64,
        sent: i64,
    }
    let rows: Vec<(i64, String, String, Due)> = journal.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT e.id, e.file_id, e.job, f.name, e.kind, e.field, e.key, e.within, e.deadline, e.sent_at
             FROM expect_requests e JOIN files f ON f.id = e.file_id
             WHERE e.answer_id IS NULL AND e.overdue_at IS NULL AND e.deadline <= ?1
               AND f.state IN ('planned', 'done')
             ORDER BY e.file_id, e.id LIMIT 10000",
        )?;
        st.query_map([now], |r| {
            let (kind, field, key): (String, String, String) = (r.get(4)?, r.get(5)?, r.get(6)?);
            Ok((
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                Due {
                    id: r.get(0)?,
                    what: if kind == "field" {
                        format!("{field} {key}")
                    } else {
                        key
                    },
                    within: r.get(7)?,
                    deadline: r.get(8)?,
                    sent: r.get(9)?,
                },
            ))
        })?
        .collect()
    })?;
    let mut by_request: Vec<(i64, String, String, Vec<Due>)> = Vec::new();
    for (file_id, job, name, due) in rows {
        match by_request.last_mut() {
            Some(last) if last.0 == file_id => last.3.push(due),
            _ => by_request.push((file_id, job, name, vec![due])),
        }
    }
    for (file_id, job, name, dues) in by_request {
        let first = &dues[0];
        let within = first.within.clone();
        let mut what: Vec<&str> = dues.iter().take(20).map(|d| d.what.as_str()).collect();
        let more = dues.len().saturating_sub(20);
        let more_text = format!("and {more} more");
        if more > 0 {
            what.push(&more_text);
        }
        let what = what.join(", ");
        let due = crate::journal::fmt_time(dues.iter().map(|d| d.deadline).min().unwrap_or(0));
        let from = jobs
            .get(&job)
            .and_then(|j| j.expect.as_ref())
            .map_or("its answering job".to_string(), |e| {
                format!("job {}", e.from)
            });
        if let Some(j) = jobs.get(&job) {
            let text = format!(
                "ferry job {job}: no answer after {within}.\n\nRequest: #{file_id} {name}, sent {}\nExpected: {what} from {from}\nDue: {due}\n\nThe request was delivered; its answer has not arrived. `ferry history --job {job}` shows it, and links the answer if it still comes.\n",
                crate::journal::fmt_time(first.sent),
            );
            crate::outputs::alerts::notice(j, &format!("overdue-{:09}-{name}", first.id), &text);
        }
        journal.event(
            file_id,
            "overdue",
            format!("no answer after {within}: {what} from {from}, due {due}"),
        )?;
        for d in &dues {
            journal.exec(
                "UPDATE expect_requests SET overdue_at = ?2 WHERE id = ?1",
                vec![Value::Integer(d.id), Value::Integer(now)],
                false,
            )?;
        }
        journal.flush()?;
        tracing::error!(job = %job, file = %name, expected = %what, due = %due, "No answer after {within}: the answer {what} from {from} is overdue.");
        report.overdue += dues.len();
    }
    Ok(())
}

/// The daemon's task: a pass every second (50 ms with a test clock) until `stop`.
pub async fn run(journal: Arc<Journal>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let clock = Clock::from_env();
    let mut last_error = String::new();
    loop {
        let now = now_ms(&clock);
        let jobs = current_jobs();
        match tokio::task::block_in_place(|| pass(&journal, now, &jobs, false)) {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!(error = %msg, "Cannot check the answers of two-way exchanges; trying again.");
                    last_error = msg;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(clock.nap(None)) => {}
        }
    }
}

/// The end of `run --once`, after every job's files: one last pass (an answer that fits
/// no request is unmatched now), and the alert mails it wrote are sent. Returns how many
/// answers were unmatched and requests found overdue in it: they make the run's exit
/// code 1, as a failed file does.
pub async fn once(journal: &Arc<Journal>) -> usize {
    let jobs = current_jobs();
    let now = now_ms(&Clock::from_env());
    let report = match tokio::task::block_in_place(|| pass(journal, now, &jobs, true)) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot check the answers of two-way exchanges.");
            return 0;
        }
    };
    if report != Report::default() {
        tracing::info!(
            linked = report.linked,
            late = report.late,
            unmatched = report.unmatched,
            overdue = report.overdue,
            "Two-way exchanges checked."
        );
    }
    if report.overdue > 0 {
        for job in jobs.values() {
            if let (Some(a), Some(_)) = (&job.alert, &job.expect)
                && let Err(e) = crate::outputs::email::once(
                    job,
                    crate::outputs::email::ALERTS,
                    &a.email,
                    journal,
                )
                .await
            {
                tracing::warn!(job = %job.name, error = %format!("{e:#}"), "Alert mail failed.");
            }
        }
    }
    report.unmatched + report.overdue
}
