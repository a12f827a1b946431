//! Review before release, the admin's side (issue 15; docs/review.md): what waits in the
//! pending area ([`Entry`], read from the journal's `reviews` table), what it would change
//! ([`diff`]), and the decisions (`ferry approve`, `ferry reject`: [`decide`]), written into
//! the journal durably before anything moves. Carrying a decision out is the engine's
//! (`runtime::review`).

pub mod diff;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::runtime::review::{Dest, ORIGINAL, has_table, now_ms};

/// A file of a reviewed job, held in the pending area (or decided and being carried out).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub job: String,
    pub name: String,
    /// Where the file was taken from.
    pub path: String,
    /// Its pending folder.
    pub held: String,
    pub dests: Vec<Dest>,
    /// What happens to the original once approved: `archive` (into `archive`) or `delete`.
    pub disposition: String,
    pub archive: Option<String>,
    pub error_dir: String,
    pub key: Option<String>,
    pub expires_ms: i64,
    /// When it was held (ms since the epoch).
    pub held_at: i64,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub why: Option<String>,
    pub finished_at: Option<i64>,
    /// What carrying out the decision did, or its last error while it is not done.
    pub outcome: Option<String>,
    /// The file's state in the journal (`done` once it is held).
    pub file_state: String,
}

impl Entry {
    /// Held and waiting for a decision.
    pub fn is_waiting(&self) -> bool {
        self.decision.is_none() && self.file_state == "done"
    }

    /// Whether it waits longer than its job's `expires` at `now`.
    pub fn is_overdue(&self, now: i64) -> bool {
        self.is_waiting() && now - self.held_at > self.expires_ms
    }

    /// The held original.
    pub fn original(&self) -> PathBuf {
        Path::new(&self.held).join(ORIGINAL).join(&self.name)
    }

    /// "waiting", "approved, being delivered", "rejected", ...
    pub fn state(&self) -> String {
        match (&self.decision, self.finished_at, self.file_state.as_str()) {
            (None, _, "done") => "waiting".into(),
            (None, _, s) => format!("being held ({s})"),
            (Some(d), None, _) => format!("{d}, being carried out"),
            (Some(d), Some(_), _) if d == "approved" => "approved and delivered".into(),
            (Some(d), Some(_), _) => d.clone(),
        }
    }
}

const SELECT: &str = "SELECT r.id, r.job, r.name, r.path, r.held, r.dests, r.disposition, r.archive, r.error_dir, r.key, r.expires_ms, r.held_at, r.decision, r.decided_by, r.decided_at, r.why, r.finished_at, r.outcome, COALESCE(f.state, 'gone')
     FROM reviews r LEFT JOIN files f ON f.id = r.id";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: r.get(0)?,
        job: r.get(1)?,
        name: r.get(2)?,
        path: r.get(3)?,
        held: r.get(4)?,
        dests: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        disposition: r.get(6)?,
        archive: r.get(7)?,
        error_dir: r.get(8)?,
        key: r.get(9)?,
        expires_ms: r.get(10)?,
        held_at: r.get(11)?,
        decision: r.get(12)?,
        decided_by: r.get(13)?,
        decided_at: r.get(14)?,
        why: r.get(15)?,
        finished_at: r.get(16)?,
        outcome: r.get(17)?,
        file_state: r.get(18)?,
    })
}

/// What is pending: every file held and waiting, and every decision not carried out yet,
/// oldest first.
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<Entry>> {
    if has_table(conn)?.is_none() {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(&format!(
        "{SELECT} WHERE r.finished_at IS NULL AND f.state = 'done' ORDER BY r.held_at, r.id"
    ))?;
    st.query_map([], entry)?.collect()
}

/// The review record of file `id`, whatever its state.
pub fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Entry>> {
    if has_table(conn)?.is_none() {
        return Ok(None);
    }
    conn.query_row(&format!("{SELECT} WHERE r.id = ?1"), [id], entry)
        .optional()
}

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "no pending file has id {0}: `ferry pending` lists the files that wait for a decision (ids as in `ferry history`)"
    )]
    Unknown(i64),
    #[error(
        "file {id} ({name}) is still being processed into the pending area (journal state `{state}`); decide once `ferry pending` lists it"
    )]
    NotHeld {
        id: i64,
        name: String,
        state: String,
    },
    /// Decided already: what, by whom, when, and why the new decision cannot be taken.
    #[error("{0}")]
    Decided(String),
    #[error("a rejection needs a reason: --why \"...\" (it goes into the error report)")]
    NoReason,
    #[error(transparent)]
    Journal(#[from] rusqlite::Error),
}

/// Records the decision on file `id` (`approved`, or `rejected` with `why`) by `who`, with
/// its event in the file's history, in one durable transaction; refused when the file is
/// not waiting. Works beside a running daemon (its own connection; the daemon's writer
/// waits for it, as for `ferry retry`).
pub fn decide(
    conn: &mut Connection,
    id: i64,
    decision: &str,
    who: &str,
    why: Option<&str>,
) -> Result<Entry, Refused> {
    if decision == "rejected" && why.is_none_or(|w| w.trim().is_empty()) {
        return Err(Refused::NoReason);
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let e = by_id(&tx, id)?.ok_or(Refused::Unknown(id))?;
    if let Some(d) = &e.decision {
        let what = match (d.as_str(), decision) {
            ("approved", "approved") => "it is not approved twice",
            ("approved", _) => "an approved file cannot be rejected any more",
            (_, "approved") => "a rejected file cannot be approved",
            _ => "it is not rejected twice",
        };
        return Err(Refused::Decided(format!(
            "file {id} ({}) was already {d} by {} on {}{}; {what}",
            e.name,
            e.decided_by.unwrap_or_default(),
            e.decided_at
                .map(crate::journal::fmt_time)
                .unwrap_or_default(),
            e.why.map(|w| format!(" ({w})")).unwrap_or_default(),
        )));
    }
    if e.file_state != "done" {
        return Err(Refused::NotHeld {
            id,
            name: e.name,
            state: e.file_state,
        });
    }
    let now = now_ms();
    tx.execute(
        "UPDATE reviews SET decision = ?2, decided_by = ?3, decided_at = ?4, why = ?5 WHERE id = ?1 AND decision IS NULL",
        params![id, decision, who, now, why],
    )?;
    let detail = match why {
        Some(w) => format!("by {who}: {w}"),
        None => format!("by {who}"),
    };
    tx.execute(
        "INSERT INTO events (file_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, now, decision, detail],
    )?;
    tx.execute(
        "UPDATE files SET updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    tx.commit()?;
    Ok(by_id(conn, id)?.unwrap_or(e))
}

/// The OS user running this command, for the record of who decided.
pub fn os_user() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getpwuid_r writes into the buffers given, sized as passed.
        unsafe {
            let uid = libc::geteuid();
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 4096];
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) == 0
                && !out.is_null()
                && !pw.pw_name.is_null()
            {
                return std::ffi::CStr::from_ptr(pw.pw_name)
                    .to_string_lossy()
                    .into_owned();
            }
            format!("uid {uid}")
        }
    }
    #[cfg(not(unix))]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into());
        match std::env::var("USERDOMAIN") {
            Ok(d) if !d.is_empty() => format!("{d}\\{user}"),
            _ => user,
        }
    }
}

/// How many files wait per job, and how many of them longer than `expires`, for
/// `ferry status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobPending {
    pub job: String,
    pub waiting: usize,
    pub overdue: usize,
    /// When the oldest waiting file was held.
    pub oldest: Option<String>,
}

pub fn status(conn: &Connection) -> rusqlite::Result<Vec<JobPending>> {
    let now = now_ms();
    let mut out: Vec<JobPending> = Vec::new();
    for e in pending(conn)?.iter().filter(|e| e.is_waiting()) {
        let i = match out.iter().position(|j| j.job == e.job) {
            Some(i) => i,
            None => {
                out.push(JobPending {
                    job: e.job.clone(),
                    oldest: Some(crate::journal::fmt_time(e.held_at)),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        out[i].waiting += 1;
        if e.is_overdue(now) {
            out[i].overdue += 1;
        }
    }
    out.sort_by(|a, b| a.job.cmp(&b.job));
    Ok(out)
}
