//! The journal's identity: noticing a journal that was lost.
//!
//! Without its journal ferry cannot know which files it already took: a `keep` job would
//! deliver every file in its source again, and `{seq}` would start over. A deleted or
//! emptied journal looks exactly like a first start, so the journal is given an id when
//! it is made, stored in the journal (table `meta`) and beside it in the state folder
//! (`journal.id`). At start, an id file without a journal, or a journal with another id,
//! means the journal was lost or replaced: ferry refuses to start and says how to go on
//! (restore a backup, or `--new-journal`). Losing only the id file is harmless: it is
//! written again from the journal.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The file in the state folder that remembers the journal's id.
pub const ID_FILE: &str = "journal.id";

/// What was found where the journal should be.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// No journal file.
    Missing,
    /// A journal file without tables (truncated to 0 bytes, or never written).
    Empty,
    /// A journal, with its id (`None`: made before journals had ids).
    Journal(Option<String>),
}

/// How a journal was lost; the error that stops ferry from starting.
#[derive(Debug)]
pub struct LostJournal {
    pub db: PathBuf,
    pub id_file: PathBuf,
    /// The id the state folder recorded.
    pub recorded: String,
    /// The id of the journal found instead (`None`: no journal, or an empty one).
    pub found: Option<String>,
    pub empty: bool,
}

impl std::fmt::Display for LostJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (db, rec, idf) = (self.db.display(), &self.recorded, self.id_file.display());
        match &self.found {
            None => {
                let what = if self.empty {
                    "is empty (it was truncated, or replaced by an empty file)"
                } else {
                    "is missing (it was deleted or moved)"
                };
                write!(
                    f,
                    "the journal {db} {what}, but this state folder had a journal (id {rec}, recorded in {idf}). \
                     Without it ferry does not know which files it already took: files kept in their source \
                     (success = \"keep\") would be delivered again. Restore the journal from a backup \
                     (`ferry journal restore BACKUP`), or start with `ferry run --new-journal` to begin a new \
                     journal, accepting that kept files will be taken again"
                )
            }
            Some(found) => write!(
                f,
                "the journal {db} is not the one this state folder had: its id is {found}, but {idf} \
                 records {rec}; it was replaced by another journal. Restore the right journal from a \
                 backup (`ferry journal restore BACKUP`), or start with `ferry run --new-journal` to go on \
                 with this one, accepting that kept files it does not know will be taken again"
            ),
        }
    }
}

impl std::error::Error for LostJournal {}

/// The id recorded in the state folder, if any.
pub fn recorded(state_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(state_dir.join(ID_FILE)) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the id file durably (a temporary file, fsynced, renamed over the old one).
pub(super) fn record(state_dir: &Path, id: &str) -> std::io::Result<()> {
    let tmp = state_dir.join(crate::fsutil::temp_name());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{id}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, state_dir.join(ID_FILE))?;
        crate::fsutil::sync_dir(state_dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new random id: 128 bits, hex.
pub(super) fn new_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        use sha2::Digest;
        let seed = format!(
            "{:?} {} {:?}",
            std::time::SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        );
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    hex::encode(bytes)
}

/// Looks at the journal file without changing it (a refused start leaves it as it was).
pub(super) fn inspect(db: &Path) -> rusqlite::Result<Found> {
    if !crate::fsutil::exists(db) {
        return Ok(Found::Missing);
    }
    let open = |flags: OpenFlags| -> rusqlite::Result<(Connection, i64)> {
        let conn = Connection::open_with_flags(db, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok((conn, version))
    };
    let (conn, version) = match open(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        // A process killed while creating the journal left a hot rollback journal, which
        // a read-only connection cannot roll back: SQLite's own recovery needs write
        // access (it restores the file as it was before that transaction).
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
        {
            open(OpenFlags::SQLITE_OPEN_READ_WRITE)?
        }
        other => other?,
    };
    if version == 0 {
        return Ok(Found::Empty);
    }
    Ok(Found::Journal(super::schema::journal_id(&conn)?))
}

/// Decides whether the journal found may be used. Returns the id to give the journal if it
/// has none yet, or the error that refuses the start. `new_journal` (`--new-journal`)
/// accepts a lost or replaced journal.
pub(super) fn judge(
    state_dir: &Path,
    db: &Path,
    recorded: Option<String>,
    found: &Found,
    new_journal: bool,
) -> Result<String, LostJournal> {
    let Some(recorded) = recorded else {
        // A first start, or the id file was lost (harmless: the journal's id is kept).
        return Ok(new_id());
    };
    let lost = |found: Option<String>, empty: bool| LostJournal {
        db: db.to_path_buf(),
        id_file: state_dir.join(ID_FILE),
        recorded: recorded.clone(),
        found,
        empty,
    };
    match found {
        Found::Missing | Found::Empty if !new_journal => Err(lost(None, *found == Found::Empty)),
        Found::Missing | Found::Empty => {
            tracing::warn!(
                journal = %db.display(),
                "Starting a new journal as asked (--new-journal): files kept in their sources will be taken again."
            );
            Ok(new_id())
        }
        Found::Journal(Some(id)) if *id != recorded && !new_journal => {
            Err(lost(Some(id.clone()), false))
        }
        Found::Journal(Some(id)) if *id != recorded => {
            tracing::warn!(
                journal = %db.display(),
                "Going on with a journal that is not the one this state folder had, as asked (--new-journal)."
            );
            Ok(id.clone())
        }
        // A journal made before ids takes the one the state folder recorded.
        Found::Journal(_) => Ok(recorded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (recorded id, what is found, --new-journal) -> Ok(id to give a journal without
    /// one) or Err(what the refusal says).
    #[test]
    fn lost_replaced_and_accepted_journals() {
        let dir = Path::new("/srv/ferry/var/state");
        let db = dir.join("journal.sqlite");
        let j = |id: &str| Found::Journal(Some(id.to_string()));
        /// `Ok(None)`: a new id; `Ok(Some(id))`: that id; `Err(text)`: refused, saying it.
        type Expected = Result<Option<&'static str>, &'static str>;
        let cases: Vec<(Option<&str>, Found, bool, Expected)> = vec![
            // A first start: a new id.
            (None, Found::Missing, false, Ok(None)),
            (None, Found::Empty, false, Ok(None)),
            // The id file alone was lost: harmless.
            (None, j("a"), false, Ok(None)),
            (Some("a"), j("a"), false, Ok(Some("a"))),
            // A journal made before ids takes the recorded one.
            (Some("a"), Found::Journal(None), false, Ok(Some("a"))),
            (
                Some("a"),
                Found::Missing,
                false,
                Err("is missing (it was deleted or moved)"),
            ),
            (
                Some("a"),
                Found::Empty,
                false,
                Err("is empty (it was truncated"),
            ),
            (Some("a"), j("b"), false, Err("its id is b, but")),
            (Some("a"), Found::Missing, true, Ok(None)),
            (Some("a"), Found::Empty, true, Ok(None)),
            (Some("a"), j("b"), true, Ok(Some("b"))),
        ];
        for (recorded, found, accept, expected) in cases {
            let got = judge(dir, &db, recorded.map(String::from), &found, accept);
            let what = format!("{recorded:?} {found:?} accept={accept}");
            match (got, expected) {
                (Ok(id), Ok(Some(want))) => assert_eq!(id, want, "{what}"),
                // A new id: 32 hex digits, not the recorded one.
                (Ok(id), Ok(None)) => {
                    assert_eq!(id.len(), 32, "{what}");
                    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{what}");
                    assert_ne!(Some(id.as_str()), recorded, "{what}");
                }
                (Err(e), Err(want)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{what}: {msg}");
                    assert!(msg.contains("--new-journal"), "{what}: {msg}");
                    assert!(
                        msg.contains("/srv/ferry/var/state/journal.id"),
                        "{what}: {msg}"
                    );
                }
                (got, want) => panic!("{what}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn new_ids_differ() {
        assert_ne!(new_id(), new_id());
    }
}
