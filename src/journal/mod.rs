//! The journal: the durable record of every file ferry takes, in SQLite (WAL mode,
//! `synchronous = FULL`).
//!
//! Theory of operation: one writer thread owns the write connection and applies operations
//! in the order they were sent. It drains whatever is queued into one transaction and
//! commits it with one fsync (group commit), then answers the callers that asked to wait.
//! Most operations do not wait ("lazy"): they become durable with the next commit, and
//! because the writer keeps their order, a later operation that was waited for makes every
//! earlier one durable too. Only the step that must be durable before anything becomes
//! visible outside ferry — the *plan* of a file's outputs and disposition — is waited for,
//! and so is the *claim*, because it names the temporary files that recovery must remove.
//!
//! File ids and `{seq}` numbers are handed out from memory; concurrent claims share commits.

pub mod backup;
pub mod expect;
mod identity;
pub mod runs;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// A journal failure: ferry cannot promise durability, so callers stop the file (and the
/// daemon stops taking new ones).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("journal: {0}")]
    Io(#[from] std::io::Error),
    #[error("journal writer has stopped")]
    Closed,
    #[error(
        "the state folder {0} is in use by another ferry process (pid {1}); stop it first or use another --state folder"
    )]
    Locked(PathBuf, String),
    #[error(transparent)]
    Lost(#[from] LostJournal),
    #[error(transparent)]
    Newer(#[from] schema::NewerJournal),
}

pub type Result<T> = std::result::Result<T, JournalError>;

/// Milliseconds since the Unix epoch, UTC: how the journal stores time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The identity of a file as found in its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// What a claim returns: the file's id, its `{seq}` and which attempt this is.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    pub id: i64,
    pub seq: u64,
    pub attempts: u32,
}

/// One output as planned: written and fsynced under `temp`, to be renamed to `final_path`.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedOutput {
    pub idx: u32,
    pub temp: String,
    pub final_path: String,
    pub hash: String,
    pub size: u64,
    /// The output's `exists` policy, applied again if the name is taken at rename time.
    pub policy: String,
}

/// Everything that will happen to a file once its plan is durable.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub hash: String,
    pub outputs: Vec<PlannedOutput>,
    /// `archive`, `delete` or `keep`.
    pub disposition: String,
    /// The archive path, for `archive`.
    pub dest: Option<String>,
    /// A done-file to remove with the original.
    pub trigger: Option<String>,
}

/// A file the journal knows is not finished: what recovery works on.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub id: i64,
    pub job: String,
    pub identity: Identity,
    pub state: String,
    pub attempts: u32,
    pub seq: u64,
    pub hash: Option<String>,
    pub temps: Vec<String>,
    pub outputs: Vec<PlannedOutput>,
    pub disposition: Option<String>,
    pub dest: Option<String>,
    pub trigger: Option<String>,
    pub error: Option<String>,
    pub error_dest: Option<String>,
}

/// A file taken, as the writer records it.
struct ClaimRecord {
    id: i64,
    /// The record of an interrupted attempt at the same file is taken again.
    reuse: bool,
    job: String,
    identity: Identity,
    name: String,
    dir: String,
    seq: u64,
    attempts: u32,
    first_seen: i64,
    temps: Vec<String>,
    next_seq: u64,
}

enum Op {
    Claim(ClaimRecord),
    Plan {
        id: i64,
        plan: Plan,
    },
    /// The plans of every file of a document set, in one transaction.
    PlanSet {
        plans: Vec<(i64, Plan)>,
    },
    OutputMoved {
        id: i64,
        idx: u32,
        final_path: String,
    },
    Done {
        id: i64,
        detail: String,
    },
    Hashed {
        id: i64,
        hash: String,
    },
    Failing {
        id: i64,
        error: String,
        dest: String,
        keep: bool,
    },
    Failed {
        id: i64,
        detail: String,
    },
    Released {
        id: i64,
        detail: String,
    },
    Unplan {
        id: i64,
        detail: String,
    },
    /// The plans of a combined run's originals, withdrawn in one transaction (combine).
    UnplanSet {
        ids: Vec<i64>,
        detail: String,
    },
    Event {
        id: i64,
        state: String,
        detail: String,
    },
    JobStatus {
        job: String,
        source: String,
        waiting: u64,
    },
    /// One statement on another module's tables (remote items, deliveries), in order with
    /// every other write.
    Exec {
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
    },
    Flush,
}

struct Msg {
    op: Op,
    at: i64,
    reply: Option<mpsc::SyncSender<std::result::Result<(), String>>>,
}

/// A handle to the journal; cheap to share between threads.
pub struct Journal {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Mutex<Connection>,
    next_id: AtomicI64,
    seqs: Mutex<HashMap<String, u64>>,
    interrupted: Mutex<HashMap<(String, String), Unfinished>>,
    dir: PathBuf,
    _lock: Option<std::fs::File>,
}

/// Removes the temporary files (`.ferry-tmp-*`, [`crate::fsutil::temp_name`]) that a
/// process killed while writing in the state folder left there. Only called with the
/// state folder's lock held, so none of them is being written.
fn remove_stale_temporaries(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::fsutil::TEMP_PREFIX) && e.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Opens the journal for writing once it is known to be the one this state folder had,
/// migrating it, and records its id beside it.
fn open_verified(state_dir: &Path, path: &Path, new_journal: bool) -> Result<Connection> {
    // Before anything is read or written: a journal of a newer ferry is left as it is.
    schema::refuse_newer(path)?;
    let recorded = identity::recorded(state_dir)?;
    let found = identity::inspect(path)?;
    let id_for_new = identity::judge(state_dir, path, recorded.clone(), &found, new_journal)?;
    if matches!(found, identity::Found::Missing | identity::Found::Empty) {
        // What a lost journal left behind must not be replayed into the new one.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
    }
    let mut conn = open_conn(path)?;
    schema::migrate(&mut conn, &id_for_new)?;
    let id = schema::journal_id(&conn)?.unwrap_or(id_for_new);
    if recorded.as_deref() != Some(id.as_str()) {
        identity::record(state_dir, &id)?;
    }
    Ok(conn)
}

/// The journal's id, as recorded in the journal (`None` before its first start).
pub fn journal_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    schema::journal_id(conn)
}

/// The journal's database file in a state folder.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.sqlite")
}

impl Journal {
    /// Opens (creating if needed) the journal in `state_dir` for writing, taking the folder's
    /// lock so that two ferry processes never share it. A journal that was lost (deleted,
    /// emptied or replaced: see [`identity`]) is refused unless `new_journal` accepts it.
    pub fn open(state_dir: &Path, new_journal: bool) -> Result<Arc<Journal>> {
        crate::fsutil::create_dir_all_durable(state_dir)?;
        let lock = lock_state_dir(state_dir)?;
        // Held by this process alone now: a temporary file a killed start left is litter.
        remove_stale_temporaries(state_dir);
        Self::open_inner(state_dir, Some(lock), new_journal)
    }

    /// Opens the journal only to read it (history, status, dry runs); no lock is taken.
    /// Returns `None` when no journal exists yet.
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Connection>> {
        let p = db_path(state_dir);
        if !p.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &p,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A daemon starting on a fresh state folder creates the file a moment before its
        // tables; until they are committed there is no journal to read yet.
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        give_sidecars_to_owner(&p);
        if version == 0 {
            return Ok(None);
        }
        schema::check_version(&p, version)?;
        Ok(Some(conn))
    }

    fn open_inner(
        state_dir: &Path,
        lock: Option<std::fs::File>,
        new_journal: bool,
    ) -> Result<Arc<Journal>> {
        let path = db_path(state_dir);
        let conn = open_verified(state_dir, &path, new_journal)?;
        let max_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM files", [], |r| r.get(0))?;
        let reader = open_conn(&path)?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let writer = std::thread::Builder::new()
            .name("ferry-journal".into())
            .spawn(move || writer_loop(conn, rx))?;
        Ok(Arc::new(Journal {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
            next_id: AtomicI64::new(max_id + 1),
            seqs: Mutex::new(HashMap::new()),
            interrupted: Mutex::new(HashMap::new()),
            dir: state_dir.to_path_buf(),
            _lock: lock,
        }))
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    fn send(&self, op: Op, wait: bool) -> Result<()> {
        let (reply, rx) = if wait {
            let (t, r) = mpsc::sync_channel(1);
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let msg = Msg {
            op,
            at: now_ms(),
            reply,
        };
        {
            let tx = self.tx.lock().expect("journal sender");
            let tx = tx.as_ref().ok_or(JournalError::Closed)?;
            tx.send(msg).map_err(|_| JournalError::Closed)?;
        }
        match rx {
            Some(rx) => match rx.recv() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(JournalError::Io(std::io::Error::other(e))),
                Err(_) => Err(JournalError::Closed),
            },
            None => Ok(()),
        }
    }

    /// Records that a file is taken. Reuses the record of an earlier, interrupted attempt at
    /// the same file (same path, size and mtime), counting the attempt. Waited for.
    pub fn claim(
        &self,
        job: &str,
        identity: &Identity,
        name: &str,
        dir: &str,
        first_seen: i64,
        temps_for: impl FnOnce(&Claim) -> Vec<String>,
    ) -> Result<Claim> {
        let earlier = {
            let mut map = self.interrupted.lock().expect("interrupted map");
            match map.get(&(job.to_string(), identity.path.clone())) {
                Some(u) if u.identity == *identity => {
                    map.remove(&(job.to_string(), identity.path.clone()))
                }
                _ => None,
            }
        };
        let (claim, reuse) = match earlier {
            Some(u) => (
                Claim {
                    id: u.id,
                    seq: u.seq,
                    attempts: u.attempts + 1,
                },
                true,
            ),
            None => (
                Claim {
                    id: self.next_id.fetch_add(1, Ordering::SeqCst),
                    seq: self.next_seq(job)?,
                    attempts: 1,
                },
                false,
            ),
        };
        let temps = temps_for(&claim);
        self.send(
            Op::Claim(ClaimRecord {
                id: claim.id,
                reuse,
                job: job.to_string(),
                identity: identity.clone(),
                name: name.to_string(),
                dir: dir.to_string(),
                seq: claim.seq,
                attempts: claim.attempts,
                first_seen,
                temps,
                next_seq: claim.seq + 1,
            }),
            // Waited for: the caller creates the temporary files next, and recovery can
            // only remove those of a claim that is durable.
            true,
        )?;
        Ok(claim)
    }

    fn next_seq(&self, job: &str) -> Result<u64> {
        let mut seqs = self.seqs.lock().expect("seqs");
        if let Some(n) = seqs.get_mut(job) {
            let v = *n;
            *n += 1;
            return Ok(v);
        }
        let stored: Option<i64> = self
            .reader
            .lock()
            .expect("reader")
            .query_row("SELECT next FROM seqs WHERE job = ?1", [job], |r| r.get(0))
            .optional()?;
        let v = stored.map_or(1, |n| n.max(1) as u64);
        seqs.insert(job.to_string(), v + 1);
        Ok(v)
    }

    /// The `{seq}` the next file of `job` would get, without taking it (dry runs).
    pub fn peek_seq(conn: Option<&Connection>, job: &str) -> u64 {
        conn.and_then(|c| {
            c.query_row("SELECT next FROM seqs WHERE job = ?1", [job], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        })
        .map_or(1, |n| n.max(1) as u64)
    }

    /// Makes the plan durable. Nothing of the file is visible outside ferry before this
    /// returns.
    pub fn plan(&self, id: i64, plan: Plan) -> Result<()> {
        self.send(Op::Plan { id, plan }, true)
    }

    /// The plans of a document set's files, durable together or not at all: recovery
    /// never finishes part of a set. Waited for.
    pub fn plan_set(&self, plans: Vec<(i64, Plan)>) -> Result<()> {
        self.send(Op::PlanSet { plans }, true)
    }

    /// An output had to take another name than planned (`exists = "unique"` and someone
    /// took the planned one meanwhile). Waited for: the rename comes next.
    pub fn output_moved(&self, id: i64, idx: u32, final_path: &str) -> Result<()> {
        self.send(
            Op::OutputMoved {
                id,
                idx,
                final_path: final_path.to_string(),
            },
            true,
        )
    }

    pub fn done(&self, id: i64, detail: String) -> Result<()> {
        self.send(Op::Done { id, detail }, false)
    }

    /// The sha256 of an original whose plan was made before its hash was known (a big
    /// file whose outputs are all links to it: see `deliver::DEFER_HASH_FROM`); also the
    /// hash of those outputs.
    pub fn hashed(&self, id: i64, hash: String) -> Result<()> {
        self.send(Op::Hashed { id, hash }, false)
    }

    /// The file is about to be moved to `dest` in the error folder. Waited for, so that
    /// recovery knows where to look.
    pub fn failing(&self, id: i64, error: &str, dest: &str, keep: bool) -> Result<()> {
        self.send(
            Op::Failing {
                id,
                error: error.to_string(),
                dest: dest.to_string(),
                keep,
            },
            true,
        )
    }

    pub fn failed(&self, id: i64, detail: String) -> Result<()> {
        self.send(Op::Failed { id, detail }, false)
    }

    /// Withdraws a plan before its outputs are rolled back (a rename failed), so that
    /// recovery never finishes a plan whose outputs were removed. Waited for.
    pub fn unplan(&self, id: i64, detail: String) -> Result<()> {
        self.send(Op::Unplan { id, detail }, true)
    }

    /// Withdraws the plans of a combined run's originals together (combine): recovery
    /// finishes all of them or none. Waited for.
    pub fn unplan_set(&self, ids: Vec<i64>, detail: String) -> Result<()> {
        self.send(Op::UnplanSet { ids, detail }, true)
    }

    /// The file was given back before anything became visible (it changed while being
    /// taken); a later claim makes a new record.
    pub fn released(&self, id: i64, detail: String) -> Result<()> {
        self.send(Op::Released { id, detail }, false)
    }

    pub fn event(&self, id: i64, state: &str, detail: String) -> Result<()> {
        self.send(
            Op::Event {
                id,
                state: state.to_string(),
                detail,
            },
            false,
        )
    }

    pub fn job_status(&self, job: &str, source: &str, waiting: u64) -> Result<()> {
        self.send(
            Op::JobStatus {
                job: job.to_string(),
                source: source.to_string(),
                waiting,
            },
            false,
        )
    }

    /// Runs one statement on the writer thread, in order with every other write; with
    /// `wait`, returns once it is durable. For the tables of other modules (`sources::staging`, `outputs::outbox`).
    pub fn exec(
        &self,
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
        wait: bool,
    ) -> Result<()> {
        self.send(Op::Exec { sql, params }, wait)
    }

    /// Reads through the journal's reader connection (committed data only).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.reader.lock().expect("reader");
        Ok(f(&conn)?)
    }

    /// Waits until everything sent so far is durable.
    pub fn flush(&self) -> Result<()> {
        self.send(Op::Flush, true)
    }

    /// Whether this exact file (path, size, mtime) was finished by `job` before, done or
    /// failed: a file kept in its source (`success = "keep"`) is not taken again while it is
    /// unchanged.
    pub fn was_finished(&self, job: &str, identity: &Identity) -> Result<bool> {
        let found: Option<i64> = self
            .reader
            .lock()
            .expect("reader")
            .query_row(
                "SELECT 1 FROM files WHERE job = ?1 AND path = ?2 AND size = ?3 AND mtime_ns = ?4 AND state IN ('done', 'failed') LIMIT 1",
                params![job, identity.path, identity.size as i64, identity.mtime_ns],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Every file that is not finished, oldest first: what recovery must complete.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>> {
        let conn = self.reader.lock().expect("reader");
        let mut stmt = conn.prepare(
            "SELECT id, job, path, size, mtime_ns, state, attempts, seq, hash, temps, disposition, dest, trigger, error, error_dest
             FROM files WHERE state IN ('taken', 'planned', 'failing') ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Unfinished {
                id: r.get(0)?,
                job: r.get(1)?,
                identity: Identity {
                    path: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    mtime_ns: r.get(4)?,
                },
                state: r.get(5)?,
                attempts: r.get::<_, i64>(6)? as u32,
                seq: r.get::<_, i64>(7)? as u64,
                hash: r.get(8)?,
                temps: serde_json::from_str(&r.get::<_, Option<String>>(9)?.unwrap_or_default())
                    .unwrap_or_default(),
                outputs: Vec::new(),
                disposition: r.get(10)?,
                dest: r.get(11)?,
                trigger: r.get(12)?,
                error: r.get(13)?,
                error_dest: r.get(14)?,
            })
        })?;
        let mut out: Vec<Unfinished> = rows.collect::<std::result::Result<_, _>>()?;
        let mut ostmt = conn.prepare(
            "SELECT idx, temp, final, hash, size, policy FROM outputs WHERE file_id = ?1 ORDER BY idx",
        )?;
        for u in &mut out {
            u.outputs = ostmt
                .query_map([u.id], |r| {
                    Ok(PlannedOutput {
                        idx: r.get::<_, i64>(0)? as u32,
                        temp: r.get(1)?,
                        final_path: r.get(2)?,
                        hash: r.get(3)?,
                        size: r.get::<_, i64>(4)? as u64,
                        policy: r.get(5)?,
                    })
                })?
                .collect::<std::result::Result<_, _>>()?;
        }
        Ok(out)
    }

    /// Remembers an interrupted claim, so that the next claim of the same file counts as a
    /// further attempt of the same record.
    pub fn remember_interrupted(&self, u: Unfinished) {
        self.interrupted
            .lock()
            .expect("interrupted map")
            .insert((u.job.clone(), u.identity.path.clone()), u);
    }

    /// Stops the writer after it has committed everything sent so far.
    pub fn close(&self) {
        let _ = self.flush();
        self.tx.lock().expect("journal sender").take();
        if let Some(h) = self.writer.lock().expect("writer").take() {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reading a WAL database makes SQLite create its `-wal` and `-shm` files when they are
/// missing. When root runs `ferry history` on a state folder that belongs to the service
/// user, those files must not end up owned by root, or the service could not open its own
/// journal any more: give them the database file's owner.
fn give_sidecars_to_owner(db: &Path) {
    // Windows has no file owners to give.
    #[cfg(not(unix))]
    let _ = db;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(md) = std::fs::metadata(db) else {
            return;
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || md.uid() == 0 {
            return;
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = db.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if let Ok(smd) = std::fs::metadata(&side)
                && smd.uid() != md.uid()
            {
                let _ = std::os::unix::fs::chown(&side, Some(md.uid()), Some(md.gid()));
            }
        }
    }
}

/// Takes an exclusive, advisory lock on `state_dir/ferry.lock`, writing our pid into it.
fn lock_state_dir(state_dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = state_dir.join("ferry.lock");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    if let Err(e) = f.try_lock() {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        let _ = e;
        return Err(JournalError::Locked(
            state_dir.to_path_buf(),
            pid.trim().to_string(),
        ));
    }
    f.set_len(0)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    write!(f, "{}", std::process::id())?;
    Ok(f)
}

/// Whether a ferry process holds the state folder's lock now, and its pid.
pub fn running_pid(state_dir: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(state_dir.join("ferry.lock")).ok()?;
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            None
        }
        Err(_) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Some(pid.trim().to_string())
        }
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Msg>) {
    const MAX_BATCH: usize = 4096;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let result = apply_batch(&mut conn, &batch);
        if let Err(e) = &result {
            tracing::error!(error = %e, ops = batch.len(), "Journal commit failed; files in this batch will be redone.");
        }
        for m in batch {
            if let Some(reply) = m.reply {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
        }
    }
}

fn apply_batch(conn: &mut Connection, batch: &[Msg]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for m in batch {
        if let Err(e) = apply(&tx, m) {
            tracing::error!(error = %e, "Journal operation failed.");
            return Err(e);
        }
    }
    tx.commit()
}

/// Applies one operation inside the transaction of its batch.
fn apply(tx: &rusqlite::Transaction<'_>, m: &Msg) -> rusqlite::Result<()> {
    let w = Writer { tx, at: m.at };
    match &m.op {
        Op::Claim(c) => w.claim(c),
        Op::Plan { id, plan } => w.plan(*id, plan),
        Op::PlanSet { plans } => plans.iter().try_for_each(|(id, plan)| w.plan(*id, plan)),
        Op::OutputMoved {
            id,
            idx,
            final_path,
        } => w.output_moved(*id, *idx, final_path),
        Op::Hashed { id, hash } => w.hashed(*id, hash),
        Op::Done { id, detail } => w.finished(*id, "done", detail),
        Op::Failing {
            id,
            error,
            dest,
            keep,
        } => w.failing(*id, error, dest, *keep),
        Op::Failed { id, detail } => w.finished(*id, "failed", detail),
        Op::Released { id, detail } => w.finished(*id, "released", detail),
        Op::UnplanSet { ids, detail } => ids.iter().try_for_each(|id| w.unplan(*id, detail)),
        Op::Unplan { id, detail } => w.unplan(*id, detail),
        Op::Event { id, state, detail } => w.event(*id, state, detail),
        Op::JobStatus {
            job,
            source,
            waiting,
        } => w.job_status(job, source, *waiting),
        Op::Exec { sql, params } => {
            w.tx.prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params.iter()))?;
            Ok(())
        }
        Op::Flush => Ok(()),
    }
}

/// The statements of one operation, in the transaction of its batch; `at` is when the
/// operation was sent.
struct Writer<'a, 'c> {
    tx: &'a rusqlite::Transaction<'c>,
    at: i64,
}

impl Writer<'_, '_> {
    /// Adds a line to a file's history. Free texts (details, errors) may quote a server's
    /// reply: no secret is stored.
    fn history(&self, id: i64, state: &str, detail: &str) -> rusqlite::Result<()> {
        let detail = crate::redact::scrub(detail);
        self.tx
            .prepare_cached(
                "INSERT INTO events (file_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, self.at, state, detail])?;
        Ok(())
    }

    /// A file is taken: a new record, or the record of its interrupted attempt taken again.
    fn claim(&self, c: &ClaimRecord) -> rusqlite::Result<()> {
        let temps = serde_json::to_string(&c.temps).unwrap_or_default();
        if c.reuse {
            self.tx.prepare_cached(
                "UPDATE files SET state = 'taken', attempts = ?2, taken_at = ?3, updated_at = ?3, temps = ?4 WHERE id = ?1",
            )?
            .execute(params![c.id, c.attempts, self.at, temps])?;
        } else {
            self.insert_file(c, &temps)?;
        }
        self.history(
            c.id,
            "taken",
            &format!(
                "attempt {}, {} bytes, seen {}",
                c.attempts,
                c.identity.size,
                crate::journal::schema::fmt_time(c.first_seen)
            ),
        )
    }

    /// The record of a file taken for the first time, and its job's next `{seq}`.
    fn insert_file(&self, c: &ClaimRecord, temps: &str) -> rusqlite::Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO files (id, job, path, name, dir, size, mtime_ns, seq, state, attempts, first_seen, taken_at, updated_at, temps)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'taken', ?9, ?10, ?11, ?11, ?12)",
        )?
        .execute(params![
            c.id,
            c.job,
            c.identity.path,
            c.name,
            c.dir,
            c.identity.size as i64,
            c.identity.mtime_ns,
            c.seq as i64,
            c.attempts,
            c.first_seen,
            self.at,
            temps
        ])?;
        self.tx.prepare_cached(
            "INSERT INTO seqs (job, next) VALUES (?1, ?2) ON CONFLICT(job) DO UPDATE SET next = MAX(next, excluded.next)",
        )?
        .execute(params![c.job, c.next_seq as i64])?;
        Ok(())
    }

    /// A file's plan: its outputs (replacing any earlier ones) and disposition.
    fn plan(&self, id: i64, plan: &Plan) -> rusqlite::Result<()> {
        self.tx.prepare_cached(
            "UPDATE files SET state = 'planned', hash = ?2, disposition = ?3, dest = ?4, trigger = ?5, updated_at = ?6 WHERE id = ?1",
        )?
        .execute(params![
            id,
            // Empty: not known yet (recorded by `hashed`).
            (!plan.hash.is_empty()).then_some(&plan.hash),
            plan.disposition,
            plan.dest,
            plan.trigger,
            self.at
        ])?;
        self.tx
            .prepare_cached("DELETE FROM outputs WHERE file_id = ?1")?
            .execute([id])?;
        for o in &plan.outputs {
            self.tx.prepare_cached(
                "INSERT INTO outputs (file_id, idx, temp, final, hash, size, policy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![id, o.idx, o.temp, o.final_path, o.hash, o.size as i64, o.policy])?;
        }
        self.history(
            id,
            "planned",
            &format!(
                "sha256 {}, {} output(s), then {}",
                if plan.hash.is_empty() {
                    "computed while the outputs are delivered"
                } else {
                    &plan.hash
                },
                plan.outputs.len(),
                plan.disposition
            ),
        )
    }

    fn output_moved(&self, id: i64, idx: u32, final_path: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("UPDATE outputs SET final = ?3 WHERE file_id = ?1 AND idx = ?2")?
            .execute(params![id, idx, final_path])?;
        Ok(())
    }

    /// The hash of a file planned before it was known, and of its outputs that link to it.
    fn hashed(&self, id: i64, hash: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("UPDATE files SET hash = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, hash, self.at])?;
        self.tx
            .prepare_cached("UPDATE outputs SET hash = ?2 WHERE file_id = ?1 AND hash = ''")?
            .execute(params![id, hash])?;
        self.history(id, "hashed", &format!("sha256 {hash}"))
    }

    /// A file reaches an end `state`: `done`, `failed` or `released`.
    fn finished(&self, id: i64, state: &str, detail: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE files SET state = ?3, finished_at = ?2, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, self.at, state])?;
        self.history(id, state, detail)
    }

    fn failing(&self, id: i64, error: &str, dest: &str, keep: bool) -> rusqlite::Result<()> {
        // A job that keeps its originals copies failed files to the error folder.
        let disposition = if keep { Some("keep") } else { None };
        self.tx.prepare_cached(
            "UPDATE files SET state = 'failing', error = ?2, error_dest = ?3, disposition = ?5, updated_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, crate::redact::scrub(error), dest, self.at, disposition])?;
        Ok(())
    }

    fn unplan(&self, id: i64, detail: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("UPDATE files SET state = 'taken', updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, self.at])?;
        self.tx
            .prepare_cached("DELETE FROM outputs WHERE file_id = ?1")?
            .execute([id])?;
        self.history(id, "unplanned", detail)
    }

    /// Something happened to a file that does not change its state.
    fn event(&self, id: i64, state: &str, detail: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("UPDATE files SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, self.at])?;
        self.history(id, state, detail)
    }

    fn job_status(&self, job: &str, source: &str, waiting: u64) -> rusqlite::Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO job_status (job, source, waiting, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(job) DO UPDATE SET source = excluded.source, waiting = excluded.waiting, updated_at = excluded.updated_at",
        )?
        .execute(params![job, source, waiting as i64, self.at])?;
        Ok(())
    }
}

pub use identity::{ID_FILE, LostJournal, recorded as recorded_id};
pub use schema::{
    FileHistory, HistoryFilter, JobStatusRow, NewerJournal, file_history, fmt_time, history,
    job_status,
};
