//! `ferry journal backup` and `ferry journal restore`.
//!
//! A backup is made with SQLite's online backup API from a read-only connection: it reads
//! one consistent snapshot of the journal while the daemon goes on writing (WAL readers do
//! not block the writer), so it is safe at any time. It is written to a temporary name,
//! checked, fsynced and renamed, so a backup file is always complete. A restore needs the
//! daemon stopped (it takes the state folder's lock), copies the backup the same way, drops
//! the old journal's `-wal` and `-shm` (they must never be replayed into another journal)
//! and records the backup's id beside it, so the next start accepts it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use super::{Journal, db_path, identity, schema};

/// What a backup or restore copied.
#[derive(Debug)]
pub struct Copied {
    /// Where the copy is.
    pub path: PathBuf,
    /// How many files the copied journal records.
    pub files: i64,
    /// The newest activity it records (ms since the epoch).
    pub newest: Option<i64>,
    /// Something the operator should know (a restore of another journal than the one the
    /// state folder had).
    pub note: Option<String>,
}

/// Copies the journal of `state_dir` to `dest` (a file, or a folder to put a dated file in).
pub fn backup(state_dir: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let Some(src) = Journal::open_read_only(state_dir)? else {
        bail!("there is no journal in {} to back up", state_dir.display());
    };
    let dest = if dest.is_dir() {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        dest.join(format!("journal-{stamp}.sqlite"))
    } else {
        dest.to_path_buf()
    };
    if same_file(&dest, &db_path(state_dir)) {
        bail!(
            "{} is the journal itself; give a path outside the state folder",
            dest.display()
        );
    }
    copy_into(&src, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    describe(dest)
}

/// Puts the backup `from` back as the journal of `state_dir`. Refused while ferry runs.
pub fn restore(state_dir: &Path, from: &Path) -> anyhow::Result<Copied> {
    crate::fsutil::create_dir_all_durable(state_dir)?;
    let _lock = super::lock_state_dir(state_dir)?;
    let src = open_read_only(from)?;
    let version: i64 = src.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        bail!(
            "{} is not a ferry journal (it has no tables)",
            from.display()
        );
    }
    let id = schema::journal_id(&src)?;
    let note = match (identity::recorded(state_dir)?, &id) {
        (Some(had), Some(id)) if had != *id => Some(format!(
            "the backup is of journal {id}, not of {had}, the journal this state folder had"
        )),
        _ => None,
    };
    let db = db_path(state_dir);
    copy_into_then(&src, &db, || {
        for suffix in ["-wal", "-shm"] {
            let mut side = db.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::remove_file(PathBuf::from(side)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
    .with_context(|| format!("cannot restore {} to {}", from.display(), db.display()))?;
    if let Some(id) = id {
        identity::record(state_dir, &id)?;
    }
    Ok(Copied {
        note,
        ..describe(db)?
    })
}

/// Whether two paths name the same existing file (device and inode).
#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn open_read_only(p: &Path) -> anyhow::Result<Connection> {
    if !p.is_file() {
        bail!("no backup file {}", p.display());
    }
    let conn = Connection::open_with_flags(
        p,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", p.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

fn copy_into(src: &Connection, dest: &Path) -> anyhow::Result<()> {
    copy_into_then(src, dest, || Ok(()))
}

/// Copies `src` to a temporary file beside `dest`, checks and fsyncs it, runs `before` and
/// renames it over `dest`.
fn copy_into_then(
    src: &Connection,
    dest: &Path,
    before: impl FnOnce() -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(crate::fsutil::temp_name());
    let result = (|| -> anyhow::Result<()> {
        online_copy(src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        before()?;
        std::fs::rename(&tmp, dest)?;
        crate::fsutil::sync_dir(dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// SQLite's online backup of `src` into a new database file `to`, then a quick check of it.
fn online_copy(src: &Connection, to: &Path) -> anyhow::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let mut dst = Connection::open(to)?;
    {
        let b = Backup::new(src, &mut dst)?;
        // All pages in one step: one read snapshot, so the copy is consistent even while the
        // daemon commits (a paged copy would restart at every commit of another connection).
        let start = Instant::now();
        loop {
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if start.elapsed() > Duration::from_secs(60) => {
                    bail!("the journal stayed locked for a minute")
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the copy fails SQLite's check: {check}");
    }
    // The copy is one self-contained file, whatever mode the journal is in.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

fn describe(path: PathBuf) -> anyhow::Result<Copied> {
    let conn = open_read_only(&path)?;
    let (files, newest) =
        conn.query_row("SELECT COUNT(*), MAX(updated_at) FROM files", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(Copied {
        path,
        files,
        newest,
        note: None,
    })
}
