//! The email deliverer: sends the files the engine wrote into an email output's outbox
//! folder (one mail per file, or one per batch), then removes them.
//!
//! Each mail has a deterministic Message-ID made of the job, the output and the outbox
//! files (name, size, mtime). Order: send, then record `sent` durably, then remove the
//! file. A crash after the server accepted the mail but before the record re-sends it at
//! the next start with the same Message-ID (recipients and most mail systems recognise
//! the repeat); a crash after the record only removes the file. Nothing is lost: a file
//! leaves the outbox only after its mail was accepted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::fsutil;
use crate::job::Job;
use crate::job::mail::{EmailOutput, Per};
use crate::journal::Journal;
use crate::protocol::smtp::{self, FilePart, Letter};
use crate::sources::mail_store::Store;

/// The record key of a job's alert outbox (outputs use their index).
pub const ALERTS: u32 = u32::MAX;

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Files waiting in an outbox (hidden and temporary names skipped), oldest first.
fn waiting(dir: &Path) -> Vec<(PathBuf, String, u64, i64)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return v;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        let m = crate::sources::folder::meta_of(&md);
        v.push((e.path(), name, m.size, m.mtime_ns));
    }
    v.sort_by_key(|x| (x.3, x.1.clone()));
    v
}

fn message_id(job: &Job, idx: u32, files: &[(PathBuf, String, u64, i64)], from: &str) -> String {
    let mut h = Sha256::new();
    h.update(job.name.as_bytes());
    h.update([0]);
    h.update(idx.to_le_bytes());
    for (_, name, size, mtime) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(size.to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    let domain = from.rsplit_once('@').map_or("ferry.invalid", |(_, d)| d);
    let domain = domain.trim_end_matches('>');
    format!("ferry.{}@{domain}", &hex::encode(h.finalize())[..32])
}

fn render(tpl: &str, job: &Job, names: &[String], first: &Path) -> Result<String> {
    let env = minijinja::Environment::new();
    // `content`: the first file's text, when it is small UTF-8 text (alerts put their
    // report in the body this way).
    let content = std::fs::metadata(first)
        .ok()
        .filter(|m| m.len() <= 64 * 1024)
        .and_then(|_| std::fs::read(first).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let ctx = minijinja::context! {
        job => job.name.clone(),
        name => names.first().cloned().unwrap_or_default(),
        names => names.to_vec(),
        count => names.len(),
        content => content,
    };
    Ok(env.render_str(tpl, ctx)?)
}

/// Sends what is waiting in one outbox. `idx` tells the outboxes of a job apart in the
/// record (the output's index, or [`ALERTS`]).
pub async fn deliver(
    job: &Job,
    idx: u32,
    e: &EmailOutput,
    t: &smtp::Transport,
    store: &Store,
) -> Result<Sent> {
    let dir = e.outbox.clone();
    let files = blocking(|| waiting(&dir));
    let mut sent = Sent::default();
    if files.is_empty() {
        return Ok(sent);
    }
    let groups: Vec<Group> = match e.per {
        Per::File => files.into_iter().map(|f| vec![f]).collect(),
        Per::Batch => vec![files],
    };
    // Up to SENDERS mails in flight on pooled connections: an SMTP server spends most of
    // its time per message on its own queue fsyncs, so one at a time leaves it idle.
    use futures_util::StreamExt;
    let dir = &dir;
    let results: Vec<Result<Option<usize>>> = futures_util::stream::iter(groups)
        .map(|g| async move { send_group(job, idx, e, t, store, dir, g).await })
        .buffer_unordered(SENDERS)
        .collect()
        .await;
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Some(n)) => {
                sent.mails += 1;
                sent.files += n;
            }
            Ok(None) => sent.refused += 1,
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    match first_err {
        Some(err) => Err(err),
        None => Ok(sent),
    }
}

/// What one [`deliver`] pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub mails: usize,
    pub files: usize,
    /// Mails the server refused for good: their files went to the error folder.
    pub refused: u64,
}

const SENDERS: usize = 8;

type Group = Vec<(PathBuf, String, u64, i64)>;

/// Sends one mail (unless the record says it was sent), records it, removes its files;
/// the number of files sent, `None` when the server refused the mail for good (its files
/// then went to the error folder).
async fn send_group(
    job: &Job,
    idx: u32,
    e: &EmailOutput,
    t: &smtp::Transport,
    store: &Store,
    dir: &Path,
    g: Group,
) -> Result<Option<usize>> {
    let mid = message_id(job, idx, &g, &e.from);
    let names: Vec<String> = g.iter().map(|f| f.1.clone()).collect();
    let already = blocking(|| store.was_sent(&job.name, idx, &mid))?;
    if !already {
        let letter = Letter {
            from: e.from.clone(),
            to: e.to.clone(),
            subject: render(&e.subject, job, &names, &g[0].0)?,
            body: render(&e.body, job, &names, &g[0].0)?,
            message_id: mid.clone(),
            files: g
                .iter()
                .map(|f| FilePart {
                    name: f.1.clone(),
                    path: f.0.clone(),
                })
                .collect(),
        };
        let msg = blocking(|| smtp::build(&letter))?;
        if let Err(err) = smtp::send(t, &msg).await {
            let Some(code) = refused_for_good(&err).filter(|_| idx != ALERTS) else {
                return Err(err);
            };
            let why = format!(
                "the mail server {} refused the mail ({code}), which sending again will not change: {err:#}",
                e.smtp.display()
            );
            tracing::error!(files = %names.join(", "), error = %why, "Mail refused; its files go to the error folder.");
            blocking(|| {
                for f in &g {
                    super::outbox::to_error_folder(
                        job,
                        idx as usize,
                        &e.smtp.display(),
                        &f.0,
                        &f.1,
                        &why,
                        store.journal(),
                    );
                }
            });
            return Ok(None);
        }
        blocking(|| store.sent(&job.name, idx, &mid, &names.join("\n")))?;
        tracing::info!(files = %names.join(", "), to = %e.to.join(", "), message_id = %mid, "Sent by email.");
    }
    blocking(|| -> Result<()> {
        for f in &g {
            match std::fs::remove_file(&f.0) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).context("cannot remove a sent outbox file"),
            }
        }
        fsutil::sync_dir(dir)?;
        Ok(())
    })?;
    Ok(Some(g.len()))
}

/// The reply code of a send the server refused for this mail itself: a 5xx answer to its
/// sender, a recipient or its data (550 to 554: no such mailbox, not local, too big, name
/// not allowed, transaction failed). Other 5xx replies (530/535 authentication, 5xx to the
/// greeting) are a matter of the server or ferry's settings, the same for every mail: they
/// stay retried, like 4xx, until `[retry] for`.
fn refused_for_good(err: &anyhow::Error) -> Option<u16> {
    let reply = err.downcast_ref::<smtp::Reply>()?;
    let permanent = crate::outputs::failure::of_smtp_reply(u32::from(reply.code))
        == crate::outputs::failure::Kind::Permanent;
    (permanent && (550..=554).contains(&reply.code)).then_some(reply.code)
}

fn server(e: &EmailOutput) -> Result<smtp::Server> {
    let password = match &e.password {
        Some(p) => Some(p.resolve().map_err(anyhow::Error::msg)?),
        None => None,
    };
    Ok(smtp::Server {
        url: e.smtp.clone(),
        password,
        ca_file: e.ca_file.clone(),
        timeout: Duration::from_secs(60),
    })
}

/// The daemon loop of one email output: delivers every couple of seconds, retries with
/// backoff (1 s doubling to 5 min), logs once per change of error, until `stop`; then one
/// last pass.
pub async fn run(
    job: Arc<Job>,
    idx: u32,
    e: EmailOutput,
    journal: Arc<Journal>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    failures: prometheus_client::metrics::counter::Counter,
) {
    let store = match blocking(|| Store::open(&journal)) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "Cannot open the mail record; the outbox is not sent.");
            return;
        }
    };
    let mut backoff = super::outbox::backoff_of(&job.retry);
    let mut last_error = String::new();
    let mut transport = None;
    loop {
        let stopping = *stop.borrow();
        let res = async {
            if transport.is_none() {
                transport = Some(smtp::transport(&server(&e)?)?);
            }
            deliver(&job, idx, &e, transport.as_ref().expect("set"), &store).await
        }
        .await;
        let wait = match res {
            Ok(sent) => {
                failures.inc_by(sent.refused);
                if !last_error.is_empty() {
                    tracing::info!(server = %e.smtp.display(), "Mail server reachable again; outbox sent.");
                    last_error.clear();
                }
                backoff.succeed();
                Duration::from_secs(1)
            }
            Err(err) => {
                failures.inc();
                transport = None;
                let msg = format!("{err:#}");
                give_up_old(&job, idx, &e, &msg, &journal);
                if msg != last_error {
                    tracing::warn!(server = %e.smtp.display(), error = %msg, "Sending by email failed; the files stay in the outbox and are retried with backoff.");
                    last_error = msg;
                }
                backoff.fail()
            }
        };
        if stopping {
            break;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Outbox files that waited longer than `[retry] for` go to the error folder with a report
/// (and an alert). Not for the alert outbox itself: an alert is never given up on.
fn give_up_old(job: &Job, idx: u32, e: &EmailOutput, msg: &str, journal: &Journal) {
    if idx == ALERTS {
        return;
    }
    let files: Vec<(PathBuf, String, crate::readiness::Meta)> = waiting(&e.outbox)
        .into_iter()
        .map(|(p, rel, size, mtime_ns)| (p, rel, crate::readiness::Meta { size, mtime_ns }))
        .collect();
    for (path, rel, _) in super::outbox::expired(job, &files) {
        let why = format!(
            "gave up after [retry] for = \"{}\": the mail server {} still fails: {msg}",
            crate::job::retry::humanize(job.retry.give_up_after.unwrap_or_default()),
            e.smtp.display()
        );
        tracing::error!(file = %rel, error = %why, "Not sent in time; moved to the error folder.");
        super::outbox::to_error_folder(
            job,
            idx as usize,
            &e.smtp.display(),
            &path,
            &rel,
            &why,
            journal,
        );
    }
}

/// For `run --once`: try to send everything waiting, a few times, then leave the rest in
/// the outbox (sent by the next run) and say so.
pub async fn once(job: &Job, idx: u32, e: &EmailOutput, journal: &Arc<Journal>) -> Result<usize> {
    let e = e.clone();
    let store = blocking(|| Store::open(journal))?;
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
        let r = async {
            let t = smtp::transport(&server(&e)?)?;
            deliver(job, idx, &e, &t, &store).await
        }
        .await;
        match r {
            Ok(sent) => return Ok(sent.files),
            Err(err) => last = Some(err),
        }
    }
    let left = blocking(|| waiting(&e.outbox)).len();
    tracing::warn!(server = %e.smtp.display(), waiting = left, error = %format!("{:#}", last.expect("an error")), "Could not send by email; the files stay in the outbox for the next run.");
    Ok(0)
}
