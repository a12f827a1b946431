//! IMAP client parts for the mailbox source: connect over TLS (implicit `imaps://` or
//! STARTTLS `imap://`; certificate verification always on, with an optional extra CA
//! file), select a folder, list candidate messages by UID, fetch them size-bounded, and
//! dispose of them (seen / move / delete). Built on async-imap with tokio and rustls.
//!
//! Polling is the truth: every round lists the folder again. IDLE, when the server offers
//! it, only wakes the fetcher early (see [`wait_for_change`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types;

use crate::job::mail::MailboxUrl;

pub type Session = async_imap::Session<TlsStream<TcpStream>>;

/// Connection settings besides the URL.
#[derive(Debug, Clone)]
pub struct Connect {
    pub url: MailboxUrl,
    pub password: String,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// Connects, secures (implicit TLS or STARTTLS) and logs in.
pub async fn connect(c: &Connect) -> Result<Session> {
    let fut = async {
        let tcp = TcpStream::connect((c.url.host.as_str(), c.url.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", c.url.host, c.url.port))?;
        tcp.set_nodelay(true).ok();
        let connector = TlsConnector::from(super::tls::tls_config(c.ca_file.as_deref())?);
        let name = pki_types::ServerName::try_from(c.url.host.clone())
            .map_err(|_| anyhow!("{:?} is not a valid TLS server name", c.url.host))?;
        let tls = if c.url.implicit_tls {
            let tls = connector
                .connect(name, tcp)
                .await
                .context("TLS handshake failed")?;
            let mut client = async_imap::Client::new(tls);
            greeting(&mut client).await?;
            client
        } else {
            let mut plain = async_imap::Client::new(tcp);
            greeting(&mut plain).await?;
            plain
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("the server refused STARTTLS (ferry never logs in without TLS)")?;
            let tcp = plain.into_inner();
            let tls = connector
                .connect(name, tcp)
                .await
                .context("TLS handshake failed")?;
            async_imap::Client::new(tls)
        };
        let session = tls
            .login(&c.url.user, &c.password)
            .await
            .map_err(|(e, _)| anyhow!("IMAP login as {} failed: {e}", c.url.user))?;
        Ok::<_, anyhow::Error>(session)
    };
    tokio::time::timeout(c.timeout, fut)
        .await
        .map_err(|_| anyhow!("no answer from {} within {:?}", c.url.display(), c.timeout))?
}

async fn greeting<T>(client: &mut async_imap::Client<T>) -> Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match client.read_response().await? {
        Some(_) => Ok(()),
        None => bail!("the server closed the connection before its greeting"),
    }
}

/// Selects the folder; returns its UIDVALIDITY.
pub async fn select(s: &mut Session, folder: &str) -> Result<u32> {
    let mb = s
        .select(folder)
        .await
        .with_context(|| format!("cannot open the folder {folder:?}"))?;
    mb.uid_validity
        .ok_or_else(|| anyhow!("the server gave no UIDVALIDITY for {folder:?}"))
}

/// UIDs of the candidate messages, ascending: not deleted, and unseen unless `all`.
pub async fn candidates(s: &mut Session, all: bool) -> Result<Vec<u32>> {
    let q = if all { "UNDELETED" } else { "UNSEEN UNDELETED" };
    let mut v: Vec<u32> = s.uid_search(q).await?.into_iter().collect();
    v.sort_unstable();
    Ok(v)
}

/// Message sizes (RFC822.SIZE) by UID.
pub async fn sizes(s: &mut Session, uids: &[u32]) -> Result<Vec<(u32, u32)>> {
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(500) {
        let set = uid_set(chunk);
        let stream = s.uid_fetch(&set, "(UID RFC822.SIZE)").await?;
        let v: Vec<_> = stream.try_collect().await?;
        for f in v {
            if let (Some(u), Some(z)) = (f.uid, f.size) {
                out.push((u, z));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The raw bytes of these messages (BODY.PEEK[]: fetching does not set \Seen). Messages
/// that vanished meanwhile are missing from the result.
pub async fn fetch(s: &mut Session, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
    let set = uid_set(uids);
    let stream = s.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
    let v: Vec<_> = stream.try_collect().await?;
    let mut out = Vec::with_capacity(v.len());
    for f in v {
        if let (Some(u), Some(b)) = (f.uid, f.body()) {
            out.push((u, b.to_vec()));
        }
    }
    Ok(out)
}

/// Marks messages seen.
pub async fn mark_seen(s: &mut Session, uids: &[u32]) -> Result<()> {
    let v: Vec<_> = s
        .uid_store(uid_set(uids), "+FLAGS.SILENT (\\Seen)")
        .await?
        .try_collect()
        .await?;
    drop(v);
    Ok(())
}

/// Moves messages to a folder (created when missing), with MOVE when offered, else
/// COPY + \Deleted + UID EXPUNGE. A message already gone counts as moved.
pub async fn move_to(s: &mut Session, uids: &[u32], folder: &str, has_move: bool) -> Result<()> {
    ensure_folder(s, folder).await?;
    if has_move {
        s.uid_mv(uid_set(uids), folder)
            .await
            .with_context(|| format!("cannot move the message to {folder:?}"))?;
        return Ok(());
    }
    s.uid_copy(uid_set(uids), folder)
        .await
        .with_context(|| format!("cannot copy the message to {folder:?}"))?;
    delete(s, uids, true).await
}

/// Deletes a message (\Deleted, then UID EXPUNGE of that message only when `uidplus`, else
/// EXPUNGE).
pub async fn delete(s: &mut Session, uids: &[u32], uidplus: bool) -> Result<()> {
    let v: Vec<_> = s
        .uid_store(uid_set(uids), "+FLAGS.SILENT (\\Deleted)")
        .await?
        .try_collect()
        .await?;
    drop(v);
    if uidplus {
        let v: Vec<_> = s.uid_expunge(uid_set(uids)).await?.try_collect().await?;
        drop(v);
    } else {
        let v: Vec<_> = s.expunge().await?.try_collect().await?;
        drop(v);
    }
    Ok(())
}

/// Creates a folder when it does not exist yet.
pub async fn ensure_folder(s: &mut Session, folder: &str) -> Result<()> {
    let exists = {
        let list: Vec<_> = s.list(None, Some(folder)).await?.try_collect().await?;
        !list.is_empty()
    };
    if !exists {
        s.create(folder)
            .await
            .with_context(|| format!("cannot create the folder {folder:?}"))?;
    }
    Ok(())
}

/// What the server offers that changes how ferry talks to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub idle: bool,
    pub r#move: bool,
    pub uidplus: bool,
}

pub async fn caps(s: &mut Session) -> Result<Caps> {
    let c = s.capabilities().await?;
    Ok(Caps {
        idle: c.has_str("IDLE"),
        r#move: c.has_str("MOVE"),
        uidplus: c.has_str("UIDPLUS"),
    })
}

/// Waits in IDLE for up to `max` (the server says something changed, or the time is up),
/// then returns the session. Polling stays the truth: the caller lists the folder again
/// either way.
pub async fn wait_for_change(s: Session, max: Duration) -> Result<Session> {
    let mut idle = s.idle();
    idle.init().await?;
    let (fut, _stop) = idle.wait_with_timeout(max);
    let _ = fut.await?;
    Ok(idle.done().await?)
}

/// A UID set like `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
    }
}
