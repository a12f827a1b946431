//! The durable record of the mail adapters, as journal tables: which messages were taken
//! (by UIDVALIDITY + UID, and message-id), which staged files came from them, and which
//! outbox mails were sent. The mail counterpart of `remote_items` / `deliveries`: a
//! message is one item with several staged files.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

use crate::journal::Journal;

/// The mail tables, in the journal (written through its writer thread, read through its
/// reader connection).
pub struct Store {
    journal: Arc<Journal>,
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

const CREATE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS mail_messages (
        job TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        meta TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        at INTEGER NOT NULL,
        PRIMARY KEY (job, uidvalidity, uid)
    )",
    "CREATE INDEX IF NOT EXISTS mail_messages_mid ON mail_messages (job, message_id)",
    "CREATE TABLE IF NOT EXISTS mail_files (
        job TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        part TEXT NOT NULL,
        staged TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS mail_files_msg ON mail_files (job, uidvalidity, uid)",
    "CREATE INDEX IF NOT EXISTS mail_files_staged ON mail_files (staged)",
    "CREATE TABLE IF NOT EXISTS mail_sent (
        job TEXT NOT NULL,
        output INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        files TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (job, output, message_id)
    )",
];

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

type R<T> = anyhow::Result<T>;

impl Store {
    /// Creates the mail tables when missing (waited for).
    pub fn open(journal: &Arc<Journal>) -> R<Store> {
        for sql in CREATE {
            journal.exec(sql, Vec::new(), false)?;
        }
        journal.flush()?;
        Ok(Store {
            journal: journal.clone(),
        })
    }

    /// The journal it writes to.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The UIDs of this folder generation already known (taken, skipped or disposed).
    pub fn known_uids(&self, job: &str, uidvalidity: u32) -> R<std::collections::HashSet<u32>> {
        Ok(self.journal.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT uid FROM mail_messages WHERE job = ?1 AND uidvalidity = ?2",
            )?;
            let rows = st.query_map(params![job, uidvalidity], |r| r.get::<_, u32>(0))?;
            rows.collect()
        })?)
    }

    /// Whether a message with this message-id was taken already (under any UID).
    pub fn message_id_known(&self, job: &str, message_id: &str) -> R<bool> {
        if message_id.is_empty() {
            return Ok(false);
        }
        Ok(self.journal.read(|c| {
            c.prepare_cached(
                "SELECT 1 FROM mail_messages WHERE job = ?1 AND message_id = ?2 AND state IN ('fetched', 'disposed') LIMIT 1",
            )?
            .query_row(params![job, message_id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
        })?)
    }

    /// Records a message and its staged files (before they are renamed into place),
    /// `state`: `fetched` (disposal pending), `skipped` (nothing matched), `duplicate`
    /// (message-id taken before) or `failed` (moved to the error folder). The files go
    /// first and the message row last: until that row is durable the message counts as
    /// not taken. With `wait`, returns once this and everything before it is durable.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        job: &str,
        uidvalidity: u32,
        uid: u32,
        message_id: &str,
        meta: &str,
        state: &str,
        files: &[StagedFile],
        wait: bool,
    ) -> R<()> {
        let key = || vec![text(job), int(i64::from(uidvalidity)), int(i64::from(uid))];
        self.journal.exec(
            "DELETE FROM mail_files WHERE job = ?1 AND uidvalidity = ?2 AND uid = ?3",
            key(),
            false,
        )?;
        for f in files {
            let mut p = key();
            p.push(text(&f.part));
            p.push(text(&f.staged));
            self.journal.exec(
                "INSERT INTO mail_files (job, uidvalidity, uid, part, staged) VALUES (?1, ?2, ?3, ?4, ?5)",
                p,
                false,
            )?;
        }
        let mut p = key();
        p.extend([
            text(message_id),
            text(meta),
            text(state),
            int(crate::journal::now_ms()),
        ]);
        self.journal.exec(
            "INSERT OR REPLACE INTO mail_messages (job, uidvalidity, uid, message_id, meta, state, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            p,
            wait,
        )?;
        Ok(())
    }

    /// Messages fetched and not disposed of yet, with their files.
    pub fn pending(&self, job: &str) -> R<Vec<Pending>> {
        Ok(self.journal.read(|c| {
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
        })?)
    }

    /// Whether a staged path is in use by a message not disposed of yet.
    pub fn staged_in_use(&self, staged: &str) -> R<bool> {
        Ok(self.journal.read(|c| {
            c.prepare_cached(
                "SELECT 1 FROM mail_files f JOIN mail_messages m USING (job, uidvalidity, uid) WHERE f.staged = ?1 AND m.state = 'fetched' LIMIT 1",
            )?
            .query_row(params![staged], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
        })?)
    }

    /// All part files of pending messages (to finish renames and to spot strays at start).
    pub fn pending_parts(&self, job: &str) -> R<Vec<StagedFile>> {
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
        wait: bool,
    ) -> R<()> {
        self.journal.exec(
            "UPDATE mail_messages SET state = 'disposed', detail = ?4, at = ?5 WHERE job = ?1 AND uidvalidity = ?2 AND uid = ?3",
            vec![
                text(job),
                int(i64::from(uidvalidity)),
                int(i64::from(uid)),
                text(&crate::redact::scrub(detail)),
                int(crate::journal::now_ms()),
            ],
            wait,
        )?;
        Ok(())
    }

    /// The engine's verdict on a staged file: `Some((true, id))` done, `Some((false, id))`
    /// failed (in the error folder with its report), `None` not finished yet.
    pub fn verdict(&self, job: &str, path: &str) -> R<Option<(bool, i64)>> {
        let row: Option<(i64, String)> = self.journal.read(|c| {
            c.prepare_cached(
                "SELECT id, state FROM files WHERE job = ?1 AND path = ?2 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![job, path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })?;
        Ok(match row {
            Some((id, s)) if s == "done" => Some((true, id)),
            Some((id, s)) if s == "failed" => Some((false, id)),
            _ => None,
        })
    }

    pub fn was_sent(&self, job: &str, output: u32, message_id: &str) -> R<bool> {
        Ok(self.journal.read(|c| {
            c.prepare_cached(
                "SELECT 1 FROM mail_sent WHERE job = ?1 AND output = ?2 AND message_id = ?3",
            )?
            .query_row(params![job, output, message_id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
        })?)
    }

    pub fn sent(&self, job: &str, output: u32, message_id: &str, files: &str) -> R<()> {
        self.journal.exec(
            "INSERT OR REPLACE INTO mail_sent (job, output, message_id, files, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                text(job),
                int(i64::from(output)),
                text(message_id),
                text(files),
                int(crate::journal::now_ms()),
            ],
            true,
        )?;
        Ok(())
    }
}

/// The message a staged file came from (for names, transforms and history), if any.
pub fn meta_of_staged(journal: &Journal, staged: &str) -> Option<crate::job::mail::MailMeta> {
    let json: Option<String> = journal
        .read(|c| {
            c.prepare_cached(
                "SELECT m.meta FROM mail_files f JOIN mail_messages m USING (job, uidvalidity, uid) WHERE f.staged = ?1 ORDER BY m.at DESC LIMIT 1",
            )?
            .query_row(params![staged], |r| r.get(0))
            .optional()
        })
        .ok()
        .flatten();
    json.and_then(|j| serde_json::from_str(&j).ok())
}
