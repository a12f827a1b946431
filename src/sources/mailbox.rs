//! The mailbox fetcher: takes matching attachments from an IMAP folder into the job's
//! staging folder, and disposes of each message once the engine has finished every file
//! taken from it.
//!
//! Crash safety (the shared remote design, mail flavour):
//! 1. each attachment is written to `staging/.ferry-part-<uidvalidity>-<uid>-<n>` (hidden:
//!    the folder scanner skips it) and fsynced;
//! 2. one durable transaction records the message (UIDVALIDITY, UID, message-id, metadata)
//!    and its staged names (`mail.sqlite`);
//! 3. the part files are renamed to their staged names and the folder fsynced.
//!
//! A crash before 2 leaves stray part files, removed at the next start; a crash between 2
//! and 3 is finished at the next start (the rename is redone). A message is never taken
//! twice: its (UIDVALIDITY, UID) is recorded, and a message-id already taken is not taken
//! again under a new UID. The message itself is only marked seen / moved / deleted once
//! the journal says every staged file is `done` (or moved to the error folder with its
//! report: then the message goes to the remote error folder).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::mail_store::{StagedFile, Store};
use crate::fsutil;
use crate::job::Job;
use crate::job::mail::{MailSuccess, MailboxSource, NoMatch};
use crate::journal::Journal;
use crate::protocol::imap::{self, Caps, Session};
use crate::protocol::mime;

const PART_PREFIX: &str = ".ferry-part-";

/// Counts of one round, for logs and `run --once`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub messages: usize,
    pub files: usize,
    pub skipped: usize,
    pub disposed: usize,
    pub idle: bool,
}

fn mailbox(job: &Job) -> &MailboxSource {
    job.source.mailbox.as_ref().expect("a mailbox job")
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// At start: finish renames recorded but not done; remove part files never recorded.
pub fn recover(job: &Job, store: &Store) -> Result<()> {
    let staging = &job.source.folder;
    fsutil::create_dir_all_durable(staging)?;
    let pending = store.pending_parts(&job.name)?;
    let mut wanted: HashSet<String> = HashSet::new();
    for f in &pending {
        let part = staging.join(&f.part);
        wanted.insert(f.part.clone());
        if part.exists() {
            let to = Path::new(&f.staged);
            if !fsutil::exists(to) {
                std::fs::rename(&part, to)?;
            } else {
                std::fs::remove_file(&part)?;
            }
        }
    }
    for e in std::fs::read_dir(staging)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PART_PREFIX) && !wanted.contains(&name) {
            std::fs::remove_file(e.path()).ok();
        }
    }
    fsutil::sync_dir(staging).ok();
    Ok(())
}

fn connect_settings(m: &MailboxSource) -> Result<imap::Connect> {
    let password = m.password.resolve().map_err(anyhow::Error::msg)?;
    Ok(imap::Connect {
        url: m.url.clone(),
        password,
        ca_file: m.ca_file.clone(),
        timeout: Duration::from_secs(60),
    })
}

/// One round: connect, dispose of finished messages, take new ones. Returns the session
/// (for IDLE) and what it did.
pub async fn round(
    job: &Job,
    store: &Store,
    journal: &Arc<Journal>,
) -> Result<(Session, Caps, Round)> {
    let m = mailbox(job);
    let mut s = imap::connect(&connect_settings(m)?).await?;
    let caps = imap::caps(&mut s).await?;
    let uidvalidity = imap::select(&mut s, &m.url.folder).await?;
    let mut r = Round::default();
    r.disposed += dispose(job, store, journal, &mut s, caps, uidvalidity).await?;
    let known = blocking(|| store.known_uids(&job.name, uidvalidity))?;
    let uids: Vec<u32> = imap::candidates(&mut s, m.all)
        .await?
        .into_iter()
        .filter(|u| !known.contains(u))
        .collect();
    if uids.is_empty() {
        return Ok((s, caps, r));
    }
    let sizes = imap::sizes(&mut s, &uids).await?;
    // Batches of up to 100 messages or 32 MiB per FETCH.
    let mut batch: Vec<u32> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut batches = Vec::new();
    for (uid, size) in sizes {
        if u64::from(size) > m.max_message_size {
            tracing::warn!(uid, size, max = m.max_message_size, folder = %m.error_folder, "Message larger than max_message_size; moved to the error folder.");
            imap::move_to(&mut s, &[uid], &m.error_folder, caps.r#move).await?;
            blocking(|| store.record(&job.name, uidvalidity, uid, "", "{}", "failed", &[], false))?;
            continue;
        }
        if !batch.is_empty() && (batch.len() >= 100 || batch_bytes + u64::from(size) > 32 << 20) {
            batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch.push(uid);
        batch_bytes += u64::from(size);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    for b in batches {
        let msgs = imap::fetch(&mut s, &b).await?;
        let mut batch = Batch::default();
        for (uid, raw) in msgs {
            take_message(
                job,
                store,
                &mut s,
                caps,
                uidvalidity,
                uid,
                &raw,
                &mut r,
                &mut batch,
            )
            .await?;
        }
        blocking(|| commit(job, store, uidvalidity, batch))?;
    }
    // Files just staged may be finished by the time of the next round; nothing to dispose now.
    Ok((s, caps, r))
}

/// Messages of one FETCH whose parts are written and fsynced, to be recorded together.
#[derive(Default)]
struct Batch {
    prepared: Vec<(u32, String, String, Vec<StagedFile>)>,
    /// Staged names given out in this batch.
    names: HashSet<PathBuf>,
    /// Message-ids taken in this batch.
    message_ids: HashSet<String>,
}

/// Records the batch (one durable wait for all of it: the journal's writer commits in
/// order), then renames its files into place and fsyncs the staging folder once.
fn commit(job: &Job, store: &Store, uidvalidity: u32, batch: Batch) -> Result<()> {
    let n = batch.prepared.len();
    for (i, (uid, mid, meta, files)) in batch.prepared.iter().enumerate() {
        store.record(
            &job.name,
            uidvalidity,
            *uid,
            mid,
            meta,
            "fetched",
            files,
            i + 1 == n,
        )?;
    }
    let staging = &job.source.folder;
    for (uid, _, meta, files) in &batch.prepared {
        for f in files {
            fsutil::rename_noreplace(&staging.join(&f.part), Path::new(&f.staged))?;
        }
        tracing::info!(uid, files = files.len(), message = %meta, "Took attachments from a message.");
    }
    if n > 0 {
        fsutil::sync_dir(staging)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn take_message(
    job: &Job,
    store: &Store,
    s: &mut Session,
    caps: Caps,
    uidvalidity: u32,
    uid: u32,
    raw: &[u8],
    r: &mut Round,
    batch: &mut Batch,
) -> Result<()> {
    let m = mailbox(job);
    let staging = &job.source.folder;
    let Some(parsed) = mime::parse(raw) else {
        tracing::warn!(uid, folder = %m.error_folder, "Not a mail message; moved to the error folder.");
        imap::move_to(s, &[uid], &m.error_folder, caps.r#move).await?;
        blocking(|| store.record(&job.name, uidvalidity, uid, "", "{}", "failed", &[], false))?;
        return Ok(());
    };
    let meta = &parsed.meta;
    let meta_json = serde_json::to_string(meta)?;
    // A message none of whose parts is taken: remembered, so it is not looked at again.
    let record_without_files = |state: &str| {
        blocking(|| {
            store.record(
                &job.name,
                uidvalidity,
                uid,
                &meta.message_id,
                &meta_json,
                state,
                &[],
                false,
            )
        })
    };
    let dup = (!meta.message_id.is_empty() && batch.message_ids.contains(&meta.message_id))
        || blocking(|| store.message_id_known(&job.name, &meta.message_id))?;
    if dup {
        tracing::info!(uid, message_id = %meta.message_id, "Message-id taken before (under another UID); not taken again.");
        record_without_files("duplicate")?;
        r.skipped += 1;
        return Ok(());
    }
    let sender_ok = m.from.as_ref().is_none_or(|g| g.is_match(&meta.from));
    let subject_ok = m.subject.as_ref().is_none_or(|g| g.is_match(&meta.subject));
    let wanted: Vec<&mime::Attachment> = if sender_ok && subject_ok {
        parsed
            .attachments
            .iter()
            .filter(|a| job.source.matches(&a.name))
            .collect()
    } else {
        Vec::new()
    };
    if wanted.is_empty() {
        if m.no_match == NoMatch::Move {
            imap::move_to(s, &[uid], &m.no_match_folder, caps.r#move).await?;
        }
        record_without_files("skipped")?;
        r.skipped += 1;
        return Ok(());
    }
    // Parts written and fsynced now; recorded and renamed with the batch.
    let mut files = Vec::with_capacity(wanted.len());
    let taken_names = &mut batch.names;
    blocking(|| -> Result<()> {
        for (i, a) in wanted.iter().enumerate() {
            let part = format!("{PART_PREFIX}{uidvalidity}-{uid}-{i}");
            let part_path = staging.join(&part);
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&part_path)
                    .with_context(|| format!("cannot write {}", part_path.display()))?;
                f.write_all(&a.bytes)?;
                f.sync_all()?;
            }
            let staged = unique_staged(staging, &a.name, taken_names, store)?;
            taken_names.insert(staged.clone());
            files.push(StagedFile {
                part,
                staged: staged.to_string_lossy().into_owned(),
            });
        }
        Ok(())
    })?;
    r.messages += 1;
    r.files += files.len();
    if !meta.message_id.is_empty() {
        batch.message_ids.insert(meta.message_id.clone());
    }
    batch
        .prepared
        .push((uid, meta.message_id.clone(), meta_json, files));
    Ok(())
}

/// A staged name not in use: the attachment's name, else name_1, name_2, ...
fn unique_staged(
    staging: &Path,
    name: &str,
    taken: &HashSet<PathBuf>,
    store: &Store,
) -> Result<PathBuf> {
    let base = staging.join(name);
    for n in 0..100_000 {
        let p = fsutil::numbered(&base, n);
        if taken.contains(&p) || fsutil::exists(&p) {
            continue;
        }
        if store.staged_in_use(&p.to_string_lossy())? {
            continue;
        }
        return Ok(p);
    }
    anyhow::bail!("no free name for {name} in {}", staging.display())
}

/// Disposes of every pending message whose files are all finished. Returns how many.
async fn dispose(
    job: &Job,
    store: &Store,
    journal: &Arc<Journal>,
    s: &mut Session,
    caps: Caps,
    uidvalidity: u32,
) -> Result<usize> {
    let m = mailbox(job);
    let pending = blocking(|| store.pending(&job.name))?;
    if pending.is_empty() {
        return Ok(0);
    }
    // Decide every finished message first, then act per kind with one command each.
    let mut ready: Vec<(super::mail_store::Pending, bool, Vec<i64>)> = Vec::new();
    for p in pending {
        let mut all_done = true;
        let mut any_failed = false;
        let mut ids = Vec::new();
        for f in &p.files {
            match blocking(|| store.verdict(&job.name, &f.staged))? {
                Some((ok, id)) => {
                    any_failed |= !ok;
                    ids.push(id);
                }
                None => all_done = false,
            }
        }
        if all_done {
            ready.push((p, any_failed, ids));
        }
    }
    let uids = |pred: &dyn Fn(&super::mail_store::Pending, bool) -> bool| -> Vec<u32> {
        ready
            .iter()
            .filter(|(p, failed, _)| pred(p, *failed))
            .map(|(p, _, _)| p.uid)
            .collect()
    };
    let current = |p: &super::mail_store::Pending| p.uidvalidity == uidvalidity;
    let failed = uids(&|p, f| current(p) && f);
    let succeeded = uids(&|p, f| current(p) && !f);
    for chunk in failed.chunks(1000) {
        imap::move_to(s, chunk, &m.error_folder, caps.r#move).await?;
    }
    let success_detail = if succeeded.is_empty() {
        String::new()
    } else {
        match m.success {
            // In chunks: a UID set of scattered UIDs must fit in one command line.
            MailSuccess::Seen => {
                for chunk in succeeded.chunks(1000) {
                    imap::mark_seen(s, chunk).await?;
                }
                "marked seen".into()
            }
            MailSuccess::Move => {
                for chunk in succeeded.chunks(1000) {
                    imap::move_to(s, chunk, &m.move_to, caps.r#move).await?;
                }
                format!("moved to {}", m.move_to)
            }
            MailSuccess::Delete => {
                for chunk in succeeded.chunks(1000) {
                    imap::delete(s, chunk, caps.uidplus).await?;
                }
                "deleted".into()
            }
        }
    };
    let n = ready.len();
    for (i, (p, any_failed, ids)) in ready.into_iter().enumerate() {
        let detail = if !current(&p) {
            // The folder was recreated: the UID means another message now; leave it.
            "left as it is (the folder's UIDVALIDITY changed)".to_string()
        } else if any_failed {
            format!("moved to {}", m.error_folder)
        } else {
            success_detail.clone()
        };
        for id in ids {
            let _ = journal.event(
                id,
                "mail",
                format!(
                    "{} (UID {} of {}); message {detail}",
                    p.meta,
                    p.uid,
                    m.url.display()
                ),
            );
        }
        let last = i + 1 == n;
        blocking(|| store.disposed(&job.name, p.uidvalidity, p.uid, &detail, last))?;
    }
    Ok(n)
}

/// A final disposal pass (for `run --once`, after the engine finished the staged files).
pub async fn dispose_only(job: &Job, store: &Store, journal: &Arc<Journal>) -> Result<usize> {
    let m = mailbox(job);
    let mut s = imap::connect(&connect_settings(m)?).await?;
    let caps = imap::caps(&mut s).await?;
    let uv = imap::select(&mut s, &m.url.folder).await?;
    let n = dispose(job, store, journal, &mut s, caps, uv).await?;
    let _ = s.logout().await;
    Ok(n)
}

/// The daemon's fetcher loop for one job: a round every `poll` (sooner when IDLE reports a
/// change), until `stop`. Errors are logged once per change of message and retried with
/// backoff.
pub async fn run(
    job: Arc<Job>,
    journal: Arc<Journal>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let m = mailbox(&job).clone();
    let store = match blocking(|| Store::open(&journal)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Cannot open the mail record; the mailbox is not read.");
            return;
        }
    };
    if let Err(e) = blocking(|| recover(&job, &store)) {
        tracing::error!(error = %e, "Cannot recover the staging folder.");
    }
    let mut backoff = crate::protocol::backoff::Backoff::default();
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match round(&job, &store, &journal).await {
            Ok((session, caps, r)) => {
                if !last_error.is_empty() {
                    tracing::info!(mailbox = %m.url.display(), "Mailbox reachable again.");
                    last_error.clear();
                }
                backoff.succeed();
                if r.messages + r.disposed + r.skipped > 0 {
                    tracing::debug!(?r, "Mailbox round.");
                }
                if caps.idle {
                    // Wake on a change, or after `poll`; the next round lists anyway.
                    let idle = imap::wait_for_change(session, m.poll);
                    tokio::select! {
                        _ = stop.changed() => break,
                        res = idle => {
                            if let Ok(s) = res {
                                let mut s = s;
                                let _ = s.logout().await;
                            }
                        }
                    }
                    Duration::from_millis(200)
                } else {
                    let mut s = session;
                    let _ = s.logout().await;
                    m.poll
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if msg != last_error {
                    tracing::warn!(mailbox = %m.url.display(), error = %msg, "Mailbox round failed; retrying with backoff.");
                    last_error = msg;
                }
                // A mailbox is retried at least every `poll` (and sooner at first).
                backoff.fail().min(m.poll.max(Duration::from_secs(1)))
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// For `run --once`: one fetch round before the engine reads the staging folder.
pub async fn once_fetch(job: &Job, journal: &Arc<Journal>) -> Result<Round> {
    let store = blocking(|| Store::open(journal))?;
    blocking(|| recover(job, &store))?;
    let (mut s, _, r) = round(job, &store, journal).await?;
    let _ = s.logout().await;
    Ok(r)
}

/// For `run --once`: dispose of what the engine finished.
pub async fn once_dispose(job: &Job, journal: &Arc<Journal>) -> Result<usize> {
    let store = blocking(|| Store::open(journal))?;
    blocking(|| journal.flush())?;
    dispose_only(job, &store, journal).await
}
