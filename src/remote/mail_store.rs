//! The durable record of the mail adapters (state dir `mail.sqlite`): which messages were
//! taken (by UIDVALIDITY + UID, and message-id), which staged files came from them, and
//! which outbox files were sent. Kept apart from the main journal (its one writer thread
//! stays the engine's); every write here is a synchronous, durable transaction.
//!
//! GENERIC: this is the `remote_items` / `delivered` part of docs/remote-design; when the
//! shared remote plumbing lands, these tables move into the journal.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

pub struct Store {
    conn: std::sync::Mutex<Connection>,
}

/// A staged file of a fetched message.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub part: String,
    pub staged: String,
}

/// A message fetched and not yet disposed of.
#[derive(Debug, Clone)]
pub struct Pending {
    pub uidvalidity: u32,
    pub uid: u32,
    pub meta: String,
    pub files: Vec<StagedFile>,
}

impl Store {
    fn c(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(state_dir: &Path) -> rusqlite::Result<Store> {
        std::fs::create_dir_all(state_dir).ok();
        let conn = Connection::open(state_dir.join("mail.sqlite"))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS mail_messages (
                job TEXT NOT NULL,
                uidvalidity INTEGER NOT NULL,
                uid INTEGER NOT NULL,
                message_id TEXT NOT NULL,
                meta TEXT NOT NULL,
                state TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '',
                at INTEGER NOT NULL,
                PRIMARY KEY (job, uidvalidity, uid)
             );
             CREATE INDEX IF NOT EXISTS mail_messages_mid ON mail_messages (job, message_id);
             CREATE TABLE IF NOT EXISTS mail_files (
                job TEXT NOT NULL,
                uidvalidity INTEGER NOT NULL,
                uid INTEGER NOT NULL,
                part TEXT NOT NULL,
                staged TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS mail_files_msg ON mail_files (job, uidvalidity, uid);
             CREATE INDEX IF NOT EXISTS mail_files_staged ON mail_files (staged);
             CREATE TABLE IF NOT EXISTS mail_sent (
                job TEXT NOT NULL,
                output INTEGER NOT NULL,
                message_id TEXT NOT NULL,
                files TEXT NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (job, output, message_id)
             );",
        )?;
        Ok(Store {
            conn: std::sync::Mutex::new(conn),
        })
    }

    /// The UIDs of this folder generation already known (taken, skipped or disposed).
    pub fn known_uids(
        &self,
        job: &str,
        uidvalidity: u32,
    ) -> rusqlite::Result<std::collections::HashSet<u32>> {
        let c = self.c();
        let mut st =
            c.prepare_cached("SELECT uid FROM mail_messages WHERE job = ?1 AND uidvalidity = ?2")?;
        let rows = st.query_map(params![job, uidvalidity], |r| r.get::<_, u32>(0))?;
        rows.collect()
    }

    /// Whether a message with this message-id was taken already (under any UID).
    pub fn message_id_known(&self, job: &str, message_id: &str) -> rusqlite::Result<bool> {
        if message_id.is_empty() {
            return Ok(false);
        }
        self.c()
            .prepare_cached(
                "SELECT 1 FROM mail_messages WHERE job = ?1 AND message_id = ?2 LIMIT 1",
            )?
            .query_row(params![job, message_id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    }

    /// Records a fetched message and its staged files (before they are renamed into place).
    /// `state`: `fetched` (disposal pending), or `skipped` (nothing matched; disposed).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        job: &str,
        uidvalidity: u32,
        uid: u32,
        message_id: &str,
        meta: &str,
        state: &str,
        files: &[StagedFile],
    ) -> rusqlite::Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO mail_messages (job, uidvalidity, uid, message_id, meta, state, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![job, uidvalidity, uid, message_id, meta, state, crate::journal::now_ms()],
        )?;
        for f in files {
            tx.execute(
                "INSERT INTO mail_files (job, uidvalidity, uid, part, staged) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job, uidvalidity, uid, f.part, f.staged],
            )?;
        }
        tx.commit()
    }

    /// Messages fetched and not disposed of yet, with their files.
    pub fn pending(&self, job: &str) -> rusqlite::Result<Vec<Pending>> {
        let c = self.c();
        let mut st = c.prepare_cached(
            "SELECT uidvalidity, uid, meta FROM mail_messages WHERE job = ?1 AND state = 'fetched' ORDER BY uidvalidity, uid",
        )?;
        let msgs: Vec<(u32, u32, String)> = st
            .query_map(params![job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(msgs.len());
        let mut fst = c.prepare_cached(
            "SELECT part, staged FROM mail_files WHERE job = ?1 AND uidvalidity = ?2 AND uid = ?3",
        )?;
        for (uv, uid, meta) in msgs {
            let files = fst
                .query_map(params![job, uv, uid], |r| {
                    Ok(StagedFile {
                        part: r.get(0)?,
                        staged: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            out.push(Pending {
                uidvalidity: uv,
                uid,
                meta,
                files,
            });
        }
        Ok(out)
    }

    /// Whether a staged path is in use by a message not disposed of yet.
    pub fn staged_in_use(&self, staged: &str) -> rusqlite::Result<bool> {
        self.c()
            .prepare_cached(
                "SELECT 1 FROM mail_files f JOIN mail_messages m USING (job, uidvalidity, uid) WHERE f.staged = ?1 AND m.state = 'fetched' LIMIT 1",
            )?
            .query_row(params![staged], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    }

    /// All part files of pending messages (to finish renames and to spot strays at start).
    pub fn pending_parts(&self, job: &str) -> rusqlite::Result<Vec<StagedFile>> {
        Ok(self
            .pending(job)?
            .into_iter()
            .flat_map(|p| p.files)
            .collect())
    }

    pub fn disposed(
        &self,
        job: &str,
        uidvalidity: u32,
        uid: u32,
        detail: &str,
    ) -> rusqlite::Result<()> {
        self.c().execute(
            "UPDATE mail_messages SET state = 'disposed', detail = ?4, at = ?5 WHERE job = ?1 AND uidvalidity = ?2 AND uid = ?3",
            params![job, uidvalidity, uid, detail, crate::journal::now_ms()],
        )?;
        Ok(())
    }

    /// The message metadata of a staged file (for history and templates).
    pub fn meta_of_staged(&self, staged: &str) -> rusqlite::Result<Option<String>> {
        self.c()
            .prepare_cached(
                "SELECT m.meta FROM mail_files f JOIN mail_messages m USING (job, uidvalidity, uid) WHERE f.staged = ?1 ORDER BY m.at DESC LIMIT 1",
            )?
            .query_row(params![staged], |r| r.get(0))
            .optional()
    }

    pub fn was_sent(&self, job: &str, output: u32, message_id: &str) -> rusqlite::Result<bool> {
        self.c()
            .prepare_cached(
                "SELECT 1 FROM mail_sent WHERE job = ?1 AND output = ?2 AND message_id = ?3",
            )?
            .query_row(params![job, output, message_id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    }

    pub fn sent(
        &self,
        job: &str,
        output: u32,
        message_id: &str,
        files: &str,
    ) -> rusqlite::Result<()> {
        self.c().execute(
            "INSERT OR REPLACE INTO mail_sent (job, output, message_id, files, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job, output, message_id, files, crate::journal::now_ms()],
        )?;
        Ok(())
    }
}
