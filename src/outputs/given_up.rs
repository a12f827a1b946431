//! FTP and email outbox files that went to the error folder (their delivery gave up after
//! `[retry] for`, or the server refused them for good), on record so that `ferry retry`
//! can put them back into their outbox (docs/design.md, "The retry queue").
//!
//! One row per file in the error folder, in `outbox_given_up` (made when first needed, as
//! `deliveries` is: only installations with remote outputs have it): the job, the output,
//! the path the file had in its outbox, where it went, and the journal record of the
//! original it was made from (found through `outputs`, when known), whose history gets an
//! event. The row is removed when `ferry retry` moves the file back.

use std::path::Path;

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::journal::{Journal, now_ms};
use crate::sources::staging::{int, text};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS outbox_given_up (
    error TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    idx INTEGER NOT NULL,
    outbox TEXT NOT NULL,
    file_id INTEGER,
    at INTEGER NOT NULL
)";

/// Records that the outbox file `outbox` of output `idx` was moved to `error` (its copy
/// in the error folder) because of `why`.
pub fn record(journal: &Journal, job: &str, idx: usize, outbox: &Path, error: &Path, why: &str) {
    let outbox_s = outbox.to_string_lossy().into_owned();
    let file_id: Option<i64> = journal
        .read(|c| {
            c.query_row(
                "SELECT file_id FROM outputs WHERE final = ?1 ORDER BY file_id DESC LIMIT 1",
                [&outbox_s],
                |r| r.get(0),
            )
            .optional()
        })
        .ok()
        .flatten();
    let _ = journal.exec(CREATE, Vec::new(), false);
    let written = journal.exec(
        "INSERT OR REPLACE INTO outbox_given_up (error, job, idx, outbox, file_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        vec![
            text(&error.to_string_lossy()),
            text(job),
            int(idx as i64),
            text(&outbox_s),
            file_id.map_or(Value::Null, Value::Integer),
            int(now_ms()),
        ],
        true,
    );
    if let Err(e) = written {
        tracing::warn!(error = %e, "Cannot record the outbox file in the journal; `ferry retry` will not find it (move it back into the outbox by hand).");
    }
    if let Some(id) = file_id {
        let _ = journal.event(
            id,
            "outbox-failed",
            format!(
                "output {}: {} went to the error folder as {}: {}",
                idx + 1,
                outbox.display(),
                error.display(),
                crate::redact::scrub(why)
            ),
        );
    }
}

/// An outbox file in the error folder, as the journal has it.
pub struct GivenUp {
    pub job: String,
    pub idx: i64,
    pub outbox: std::path::PathBuf,
    pub error: std::path::PathBuf,
    pub file_id: Option<i64>,
}

/// The given-up outbox files of the file record `id`, of `job`, or all (both `None`),
/// whose copy is still in the error folder.
pub fn list(
    conn: &rusqlite::Connection,
    id: Option<i64>,
    job: Option<&str>,
) -> rusqlite::Result<Vec<GivenUp>> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_given_up')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT job, idx, outbox, error, file_id FROM outbox_given_up
         WHERE (?1 IS NULL OR file_id = ?1) AND (?2 IS NULL OR job = ?2) ORDER BY at",
    )?;
    let rows = st.query_map(rusqlite::params![id, job], |r| {
        Ok(GivenUp {
            job: r.get(0)?,
            idx: r.get(1)?,
            outbox: r.get::<_, String>(2)?.into(),
            error: r.get::<_, String>(3)?.into(),
            file_id: r.get(4)?,
        })
    })?;
    let mut out = Vec::new();
    for g in rows {
        let g = g?;
        if crate::fsutil::exists(&g.error) {
            out.push(g);
        }
    }
    Ok(out)
}

/// Moves a given-up outbox file back into its outbox (never over a file there), removes
/// its report, and forgets its row; the output's deliverer sends it at its next round.
pub fn put_back(conn: &rusqlite::Connection, g: &GivenUp) -> anyhow::Result<String> {
    use anyhow::Context;
    let outbox_dir = g.outbox.parent().context("an outbox file has a folder")?;
    crate::fsutil::create_dir_all_durable(outbox_dir)
        .with_context(|| format!("cannot make the outbox folder {}", outbox_dir.display()))?;
    crate::fsutil::rename_noreplace(&g.error, &g.outbox).with_context(|| {
        format!(
            "cannot move {} back to {}",
            g.error.display(),
            g.outbox.display()
        )
    })?;
    let _ = crate::fsutil::sync_dir(outbox_dir);
    let _ = std::fs::remove_file(crate::fsutil::report_path(&g.error));
    if let Some(dir) = g.error.parent() {
        let _ = crate::fsutil::sync_dir(dir);
    }
    conn.execute(
        "DELETE FROM outbox_given_up WHERE error = ?1",
        [g.error.to_string_lossy()],
    )?;
    let what = format!(
        "output {} {} (from {}): sent again from the outbox",
        g.idx + 1,
        g.outbox.display(),
        g.error.display()
    );
    if let Some(id) = g.file_id {
        conn.execute(
            "INSERT INTO events (file_id, at, state, detail) VALUES (?1, ?2, 'outbox-retried', ?3)",
            rusqlite::params![id, now_ms(), format!("put back by `ferry retry`: {what}")],
        )?;
    }
    Ok(what)
}
