//! `ferry retry FILE-ID | --job NAME | --all-failed`: files in an error folder go back
//! into their source as a new attempt.
//!
//! Each failed file whose copy is still where the journal says it went is moved back to
//! the path it was taken from, through folder handles (the error folder and the source
//! folder are opened as directories and the file is renamed between them without following
//! a symlink, `renameat2(RENAME_NOREPLACE)`: a name in the source is never replaced), then
//! its report is removed and the journal records `retried` on the earlier attempt. The
//! runner (a daemon now, or the next `run`) finds it like any new file and takes it again:
//! a new record in `ferry history`, beside every earlier one of the same path. A move is
//! atomic, so at any instant the file is in the error folder or in the source, never in
//! neither; a crash between the move and the journal write leaves the earlier record
//! saying `failed` (its copy gone), and the file is taken again all the same.
//!
//! FTP and email outbox files whose delivery was given up on ([`crate::outputs::given_up`])
//! are moved back into their outbox the same way (never over a file there); the output's
//! deliverer (the daemon's, or the next `run`'s) sends them as any outbox file. `FILE-ID`
//! is then the original's record, whose outputs they were.
//!
//! Works with or without a running daemon: it writes the journal through its own SQLite
//! connection (the daemon's writer waits for it, as for a backup), never holds the lock.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, params};

use crate::journal::now_ms;
use crate::say::Say;
use crate::sources::dir::Dir;

/// Which failed files to put back.
#[derive(Debug, Clone)]
pub enum Which {
    Id(i64),
    Job(String),
    AllFailed,
}

/// A failed file as the journal has it.
struct Failed {
    id: i64,
    job: String,
    path: PathBuf,
    name: String,
    dir: String,
    went: Option<PathBuf>,
    disposition: Option<String>,
}

/// `quiet`: the file `FILE-ID` names may not be failed (its remote delivery was given up
/// on instead), so say nothing about its state.
fn failed(
    conn: &Connection,
    which: &Which,
    quiet: bool,
    say: &mut dyn FnMut(Say),
) -> rusqlite::Result<Vec<Failed>> {
    let (cond, arg): (&str, rusqlite::types::Value) = match which {
        Which::Id(id) => ("id = ?1", (*id).into()),
        Which::Job(j) => ("job = ?1 AND state = 'failed'", j.clone().into()),
        Which::AllFailed => (
            "state = 'failed' AND ?1 IS NULL",
            rusqlite::types::Value::Null,
        ),
    };
    let mut st = conn.prepare(&format!(
        "SELECT id, job, path, name, dir, error_dest, state, disposition FROM files WHERE {cond} ORDER BY id"
    ))?;
    let rows = st.query_map([arg], |r| {
        Ok((
            Failed {
                id: r.get(0)?,
                job: r.get(1)?,
                path: PathBuf::from(r.get::<_, String>(2)?),
                name: r.get(3)?,
                dir: r.get(4)?,
                went: r.get::<_, Option<String>>(5)?.map(PathBuf::from),
                disposition: r.get(7)?,
            },
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (f, state) = row?;
        if state == "failed" {
            out.push(f);
        } else if matches!(which, Which::Id(_)) && !quiet {
            say(Say::Err(format!(
                "file {} ({}) is {state}, not failed: nothing to retry",
                f.id,
                f.path.display()
            )));
        }
    }
    Ok(out)
}

/// The source folder a file was taken from: its path without its `dir` and name.
fn source_root(f: &Failed) -> PathBuf {
    let mut root = f.path.parent().unwrap_or(Path::new("")).to_path_buf();
    for _ in Path::new(&f.dir).components() {
        root.pop();
    }
    root
}

/// Moves one failed file back into its source; the journal is told by the caller.
fn put_back(f: &Failed) -> Result<String> {
    let went = f
        .went
        .as_ref()
        .context("the journal does not say where it went")?;
    let keep = f.disposition.as_deref() == Some("keep");
    let (err_dir, err_name) = match (went.parent(), went.file_name()) {
        (Some(d), Some(n)) => (d, n.to_string_lossy().into_owned()),
        _ => bail!("{} is not a file path", went.display()),
    };
    let errors =
        Dir::open(err_dir).with_context(|| format!("cannot open {}", err_dir.display()))?;
    errors
        .stat(&err_name)
        .with_context(|| format!("it is no longer in the error folder ({})", went.display()))?;
    if keep {
        // A `keep` job copied it to the error folder; the original never left its source.
        errors.unlink(&err_name)?;
    } else {
        let root = source_root(f);
        let source = Dir::open(&root)
            .and_then(|d| {
                if f.dir.is_empty() {
                    Ok(d)
                } else {
                    d.create_beneath(Path::new(&f.dir))
                }
            })
            .with_context(|| format!("cannot open the source folder {}", root.display()))?;
        errors
            .rename_noreplace(&err_name, &source, &f.name)
            .with_context(|| match source.stat(&f.name) {
                Ok(_) => format!(
                    "a file named {} is in the source already; retry once it is taken",
                    f.name
                ),
                Err(_) => format!(
                    "cannot move {} back to {}",
                    went.display(),
                    f.path.display()
                ),
            })?;
        let _ = source.sync();
    }
    if let Some(report) = crate::fsutil::report_path(went).file_name() {
        let _ = errors.unlink(&report.to_string_lossy());
    }
    let _ = errors.sync();
    Ok(if keep {
        format!(
            "{} (kept in its source; taken again at the next start)",
            f.path.display()
        )
    } else {
        format!("{} (from {})", f.path.display(), went.display())
    })
}

/// Puts the chosen failed files back into their sources, saying each on stdout or stderr.
/// Returns how many were put back and how many could not be.
pub fn run(state_dir: &Path, which: &Which) -> Result<(usize, usize)> {
    run_with(state_dir, which, "`ferry retry`", &mut crate::say::print)
}

/// [`run`], saying what it does through `say`; `by` names who asked, in the history.
/// The web console calls it with its user.
pub fn run_with(
    state_dir: &Path,
    which: &Which,
    by: &str,
    say: &mut dyn FnMut(Say),
) -> Result<(usize, usize)> {
    // Refuses a journal of a newer ferry, as the other commands do.
    if crate::journal::Journal::open_read_only(state_dir)?.is_none() {
        bail!(
            "no journal in {}: nothing has failed yet",
            state_dir.display()
        );
    }
    let conn = Connection::open(crate::journal::db_path(state_dir))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let outbox = match which {
        Which::Id(id) => crate::outputs::given_up::list(&conn, Some(*id), None)?,
        Which::Job(j) => crate::outputs::given_up::list(&conn, None, Some(j))?,
        Which::AllFailed => crate::outputs::given_up::list(&conn, None, None)?,
    };
    let files = failed(&conn, which, !outbox.is_empty(), say)?;
    let (mut ok, mut bad) = (0, 0);
    for g in &outbox {
        match crate::outputs::given_up::put_back(&conn, g) {
            Ok(what) => {
                say(Say::Out(format!("retry [{}]: {what}", g.job)));
                ok += 1;
            }
            Err(e) => {
                say(Say::Err(format!(
                    "cannot retry [{}] {}: {e:#}",
                    g.job,
                    g.error.display()
                )));
                bad += 1;
            }
        }
    }
    if files.is_empty() && !outbox.is_empty() {
        return Ok((ok, bad));
    }
    if files.is_empty() {
        match which {
            Which::Id(id) => bail!("no failed file with id {id} (see `ferry history`)"),
            Which::Job(j) => say(Say::Out(format!("no failed files of job {j}"))),
            Which::AllFailed => say(Say::Out("no failed files".into())),
        }
        return Ok((0, 0));
    }
    for f in files {
        match put_back(&f) {
            Ok(what) => {
                let at = now_ms();
                conn.execute(
                    "UPDATE files SET state = 'retried', updated_at = ?2 WHERE id = ?1",
                    params![f.id, at],
                )?;
                conn.execute(
                    "INSERT INTO events (file_id, at, state, detail) VALUES (?1, ?2, 'retried', ?3)",
                    params![f.id, at, format!("put back into its source by {by}: {what}")],
                )?;
                say(Say::Out(format!("retry {} [{}]: {what}", f.id, f.job)));
                ok += 1;
            }
            Err(e) => {
                say(Say::Err(format!(
                    "cannot retry {} [{}] {}: {e:#}",
                    f.id,
                    f.job,
                    f.path.display()
                )));
                bad += 1;
            }
        }
    }
    Ok((ok, bad))
}
