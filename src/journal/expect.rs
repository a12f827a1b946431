//! The journal's tables of two-way exchanges (`[expect]`, issue 15; the tracking is
//! `crate::runtime::expect`): what each delivered request expects, what each answer carried, and
//! how they were linked. The read side for `ferry status` and `ferry history` is here too.
//!
//! Times in these tables (`sent_at`, `deadline`, `at`, `answered_at`, `overdue_at`) are
//! milliseconds since the epoch from the schedule clock (`FERRY_TEST_CLOCK` in tests), so
//! that a test can move past a deadline without waiting for it.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::fmt_time;

/// Schema step of the `expect` part (issue 15, two-way exchanges): its own tables, nothing
/// else changes. `expect_requests`: one row per expected answer of a request file (a
/// request with three order numbers expects three); `expect_answers`: one row per file of
/// an answering job, with the values it carried, until it is linked or found unmatched.
pub(super) fn migrate_expect(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS expect_requests (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL,
            job TEXT NOT NULL,
            from_job TEXT NOT NULL,
            kind TEXT NOT NULL,
            field TEXT NOT NULL DEFAULT '',
            key TEXT NOT NULL,
            within TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            deadline INTEGER NOT NULL,
            announced INTEGER NOT NULL DEFAULT 0,
            answer_id INTEGER,
            answer_name TEXT,
            answered_at INTEGER,
            overdue_at INTEGER
        );
        CREATE INDEX IF NOT EXISTS expect_requests_file ON expect_requests (file_id);
        CREATE INDEX IF NOT EXISTS expect_requests_open ON expect_requests (from_job, kind, key)
            WHERE answer_id IS NULL;
        CREATE INDEX IF NOT EXISTS expect_requests_due ON expect_requests (deadline)
            WHERE answer_id IS NULL AND overdue_at IS NULL;
        CREATE INDEX IF NOT EXISTS expect_requests_new ON expect_requests (id)
            WHERE announced = 0;
        CREATE TABLE IF NOT EXISTS expect_answers (
            file_id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            name TEXT NOT NULL,
            at INTEGER NOT NULL,
            fields TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'new',
            matched TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS expect_answers_state ON expect_answers (state);",
    )
}

/// What one request expects, as `ferry history` and `ferry status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    pub id: i64,
    /// The request's journal id, job and file name.
    pub file_id: i64,
    pub job: String,
    pub name: String,
    pub from: String,
    /// `name` (the answer's file name is `key`) or `field` (`field` = `key`).
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub key: String,
    pub within: String,
    pub sent: String,
    pub due: String,
    /// `waiting`, `overdue`, `answered` or `late`.
    pub state: String,
    pub answer: Option<AnswerRef>,
    /// When it was reported overdue.
    pub overdue_reported: Option<String>,
}

/// The answer linked to a request.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerRef {
    pub file_id: i64,
    pub name: String,
    pub at: String,
}

impl Expected {
    /// `ORDRSP_1001.xml` or `OrderNo 1001`: what is expected, for people.
    pub fn what(&self) -> String {
        match self.kind.as_str() {
            "field" => format!("{} {}", self.field, self.key),
            _ => self.key.clone(),
        }
    }

    /// One line for `ferry history`: what is expected and what came of it.
    pub fn line(&self) -> String {
        let head = format!("{} from {}", self.what(), self.from);
        match (&self.answer, self.state.as_str()) {
            (Some(a), "late") => format!(
                "{head}: no answer after {} (due {}); late answer #{} {} at {}",
                self.within, self.due, a.file_id, a.name, a.at
            ),
            (Some(a), _) => format!("{head}: answered by #{} {} at {}", a.file_id, a.name, a.at),
            (None, "overdue") => {
                format!("{head}: no answer after {} (due {})", self.within, self.due)
            }
            (None, _) => format!("{head}: waiting, due {}", self.due),
        }
    }
}

const EXPECTED_COLUMNS: &str = "e.id, e.file_id, e.job, e.from_job, e.kind, e.field, e.key, e.within, e.sent_at, e.deadline, e.answer_id, e.answer_name, e.answered_at, e.overdue_at, (SELECT name FROM files WHERE id = e.file_id)";

fn expected_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<Expected> {
    let deadline: i64 = r.get(9)?;
    let answer_id: Option<i64> = r.get(10)?;
    let answered_at: Option<i64> = r.get(12)?;
    let overdue_at: Option<i64> = r.get(13)?;
    let state = match (answer_id, answered_at) {
        (Some(_), Some(at)) if at > deadline => "late",
        (Some(_), _) => "answered",
        (None, _) if overdue_at.is_some() || deadline <= now => "overdue",
        (None, _) => "waiting",
    };
    Ok(Expected {
        id: r.get(0)?,
        file_id: r.get(1)?,
        job: r.get(2)?,
        name: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
        from: r.get(3)?,
        kind: r.get(4)?,
        field: r.get(5)?,
        key: r.get(6)?,
        within: r.get(7)?,
        sent: fmt_time(r.get(8)?),
        due: fmt_time(deadline),
        state: state.into(),
        answer: match answer_id {
            Some(id) => Some(AnswerRef {
                file_id: id,
                name: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                at: answered_at.map(fmt_time).unwrap_or_default(),
            }),
            None => None,
        },
        overdue_reported: overdue_at.map(fmt_time),
    })
}

/// Whether the journal has the tables (a read-only look at a journal from before them).
fn has_tables(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'expect_requests')",
        [],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(false)
}

/// What a file of the journal expects (a request) and what it answered (an answer).
#[derive(Debug, Default, Serialize)]
pub struct FileExchange {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expects: Vec<Expected>,
    /// For an answer: `matched` (with the requests it answers), `unmatched`, or `new`
    /// (not looked at yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerState>,
}

#[derive(Debug, Serialize)]
pub struct AnswerState {
    pub state: String,
    pub answers: Vec<Expected>,
}

impl FileExchange {
    pub fn is_empty(&self) -> bool {
        self.expects.is_empty() && self.answer.is_none()
    }

    /// The lines `ferry history` prints under the file.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .expects
            .iter()
            .map(|e| format!("answer   {}", e.line()))
            .collect();
        if let Some(a) = &self.answer {
            match a.state.as_str() {
                "unmatched" => {
                    out.push("answers  no request: this answer matches none (unmatched)".into())
                }
                "new" => out.push("answers  not linked yet".into()),
                _ => out.extend(a.answers.iter().map(|e| {
                    format!(
                        "answers  #{} {} {} ({}){}",
                        e.file_id,
                        e.job,
                        e.name,
                        e.what(),
                        if e.state == "late" { ", late" } else { "" }
                    )
                })),
            }
        }
        out
    }
}

/// The exchange of one file, for `ferry history`; `now` (ms) tells waiting from overdue.
pub fn for_file(conn: &Connection, file_id: i64, now: i64) -> rusqlite::Result<FileExchange> {
    if !has_tables(conn) {
        return Ok(FileExchange::default());
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EXPECTED_COLUMNS} FROM expect_requests e WHERE e.file_id = ?1 ORDER BY e.id"
    ))?;
    let expects = st
        .query_map([file_id], |r| expected_row(r, now))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM expect_answers WHERE file_id = ?1",
            [file_id],
            |r| r.get(0),
        )
        .optional()?;
    let answer = match state {
        None => None,
        Some(state) => {
            let mut st = conn.prepare_cached(&format!(
                "SELECT {EXPECTED_COLUMNS} FROM expect_requests e WHERE e.answer_id = ?1 ORDER BY e.id"
            ))?;
            let answers = st
                .query_map([file_id], |r| expected_row(r, now))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Some(AnswerState { state, answers })
        }
    };
    Ok(FileExchange { expects, answer })
}

/// `ferry status`: per job, its requests' answers; and what needs a look.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub jobs: Vec<JobExchange>,
    /// Requests without an answer past their deadline (the oldest 50).
    pub overdue: Vec<Expected>,
    /// Answers that matched no request (the newest 50).
    pub unmatched: Vec<Unmatched>,
}

#[derive(Debug, Default, Serialize)]
pub struct JobExchange {
    pub job: String,
    pub from: String,
    pub waiting: u64,
    pub overdue: u64,
    pub answered: u64,
    pub late: u64,
    /// Answers that arrived through `from` and matched no request.
    pub unmatched: u64,
}

#[derive(Debug, Serialize)]
pub struct Unmatched {
    pub file_id: i64,
    pub job: String,
    pub name: String,
    pub at: String,
}

/// The exchanges' state for `ferry status`. Only requests whose delivery is committed
/// (planned or done) count; `now` (ms, the schedule clock) tells waiting from overdue.
pub fn status(conn: &Connection, now: i64) -> rusqlite::Result<Status> {
    let mut s = Status::default();
    if !has_tables(conn) {
        return Ok(s);
    }
    let mut st = conn.prepare(
        "SELECT e.job, e.from_job,
            COALESCE(SUM(e.answer_id IS NULL AND e.deadline > ?1 AND e.overdue_at IS NULL), 0),
            COALESCE(SUM(e.answer_id IS NULL AND (e.deadline <= ?1 OR e.overdue_at IS NOT NULL)), 0),
            COALESCE(SUM(e.answer_id IS NOT NULL AND e.answered_at <= e.deadline), 0),
            COALESCE(SUM(e.answer_id IS NOT NULL AND e.answered_at > e.deadline), 0)
         FROM expect_requests e JOIN files f ON f.id = e.file_id
         WHERE f.state IN ('planned', 'done')
         GROUP BY e.job, e.from_job ORDER BY e.job, e.from_job",
    )?;
    s.jobs = st
        .query_map([now], |r| {
            Ok(JobExchange {
                job: r.get(0)?,
                from: r.get(1)?,
                waiting: r.get::<_, i64>(2)? as u64,
                overdue: r.get::<_, i64>(3)? as u64,
                answered: r.get::<_, i64>(4)? as u64,
                late: r.get::<_, i64>(5)? as u64,
                unmatched: 0,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT job, COUNT(*) FROM expect_answers WHERE state = 'unmatched' GROUP BY job",
    )?;
    let counts: Vec<(String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (job, n) in counts {
        match s.jobs.iter_mut().find(|j| j.from == job) {
            Some(j) => j.unmatched = n as u64,
            None => s.jobs.push(JobExchange {
                job: String::new(),
                from: job,
                unmatched: n as u64,
                ..Default::default()
            }),
        }
    }
    let mut st = conn.prepare(&format!(
        "SELECT {EXPECTED_COLUMNS} FROM expect_requests e JOIN files f ON f.id = e.file_id
         WHERE f.state IN ('planned', 'done') AND e.answer_id IS NULL
           AND (e.deadline <= ?1 OR e.overdue_at IS NOT NULL)
         ORDER BY e.deadline, e.id LIMIT 50"
    ))?;
    s.overdue = st
        .query_map([now], |r| expected_row(r, now))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT file_id, job, name, at FROM expect_answers WHERE state = 'unmatched'
         ORDER BY file_id DESC LIMIT 50",
    )?;
    s.unmatched = st
        .query_map([], |r| {
            Ok(Unmatched {
                file_id: r.get(0)?,
                job: r.get(1)?,
                name: r.get(2)?,
                at: fmt_time(r.get(3)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(s)
}

/// Prints the exchanges' part of `ferry status` (nothing when no job has had any).
pub fn print_status(s: &Status) {
    if s.jobs.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<20} {:<20} {:>8} {:>8} {:>9} {:>6} {:>10}",
        "ANSWERS FOR", "FROM", "WAITING", "OVERDUE", "ANSWERED", "LATE", "UNMATCHED"
    );
    for j in &s.jobs {
        println!(
            "{:<20} {:<20} {:>8} {:>8} {:>9} {:>6} {:>10}",
            if j.job.is_empty() { "-" } else { &j.job },
            j.from,
            j.waiting,
            j.overdue,
            j.answered,
            j.late,
            j.unmatched
        );
    }
    for e in &s.overdue {
        println!(
            "OVERDUE   {} #{} {} ({}): no answer after {} (due {})",
            e.job,
            e.file_id,
            e.name,
            e.what(),
            e.within,
            e.due
        );
    }
    for u in &s.unmatched {
        println!(
            "UNMATCHED {} #{} {} (arrived {}): matches no request",
            u.job, u.file_id, u.name, u.at
        );
    }
}
