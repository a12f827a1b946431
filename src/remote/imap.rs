//! IMAP client parts for the mailbox source: connect over TLS (implicit `imaps://` or
//! STARTTLS `imap://`; certificate verification always on, with an optional extra CA
//! file), select a folder, list candidate messages by UID, fetch them size-bounded, and
//! dispose of them (seen / move / delete). Built on async-imap with tokio and rustls.
//!
//! Polling is the truth: every round lists the folder again. IDLE, when the server offers
//! it, only wakes the fetcher early (see [`wait_for_change`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types};

/// Where and how to reach a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxUrl {
    /// `imaps://` (TLS from the first byte) or `imap://` (STARTTLS, required).
    pub implicit_tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub folder: String,
}

impl MailboxUrl {
    /// Parses `imaps://user@host[:port]/FOLDER` or `imap://...`. A password in the URL is
    /// refused (use `password = "${env:..}"`). The folder defaults to INBOX.
    pub fn parse(s: &str) -> Result<MailboxUrl, String> {
        let (implicit_tls, rest) = if let Some(r) = s.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(format!(
                "expected a mailbox URL like \"imaps://user@host/INBOX\", found {:?}",
                crate::redact::url_for_message(s)
            ));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
            return Err(format!(
                "the mailbox URL {s:?} names no user: write \"imaps://USER@host/INBOX\""
            ));
        };
        if userinfo.contains(':') {
            return Err(
                "the mailbox URL must not carry a password: use `password = \"${env:NAME}\"`"
                    .into(),
            );
        }
        let user = percent_decode(userinfo)?;
        let (host, port) = split_host_port(hostport, if implicit_tls { 993 } else { 143 })?;
        let folder = percent_decode(path.trim_end_matches('/'))?;
        Ok(MailboxUrl {
            implicit_tls,
            host,
            port,
            user,
            folder: if folder.is_empty() {
                "INBOX".into()
            } else {
                folder
            },
        })
    }

    /// The URL for logs: never a password (there is none in it).
    pub fn display(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            if self.implicit_tls { "imaps" } else { "imap" },
            self.user,
            self.host,
            self.port,
            self.folder
        )
    }
}

pub(crate) fn split_host_port(hostport: &str, default: u16) -> Result<(String, u16), String> {
    if hostport.is_empty() {
        return Err("the URL names no host".into());
    }
    if let Some(rest) = hostport.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("bad host {hostport:?}"))?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port in {hostport:?}"))?,
            None => default,
        };
        return Ok((h.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse().map_err(|_| format!("bad port in {hostport:?}"))?,
        )),
        None => Ok((hostport.to_string(), default)),
    }
}

pub(crate) fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// A rustls client configuration: the Mozilla roots plus the certificates of `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    use pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = ca_file {
        let mut n = 0;
        for cert in pki_types::CertificateDer::pem_file_iter(p)
            .with_context(|| format!("cannot read the CA file {}", p.display()))?
        {
            let cert = cert.with_context(|| format!("bad certificate in {}", p.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("unusable certificate in {}", p.display()))?;
            n += 1;
        }
        if n == 0 {
            bail!("the CA file {} holds no certificate", p.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

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
        let connector = TlsConnector::from(tls_config(c.ca_file.as_deref())?);
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
    fn urls() {
        let u = MailboxUrl::parse("imaps://orders@mail.example.test/INBOX").unwrap();
        assert_eq!(
            (
                u.implicit_tls,
                u.host.as_str(),
                u.port,
                u.user.as_str(),
                u.folder.as_str()
            ),
            (true, "mail.example.test", 993, "orders", "INBOX")
        );
        let u = MailboxUrl::parse("imap://a%40b.example@127.0.0.1:10143/Orders/In").unwrap();
        assert_eq!(
            (u.implicit_tls, u.port, u.user.as_str(), u.folder.as_str()),
            (false, 10143, "a@b.example", "Orders/In")
        );
        assert_eq!(
            MailboxUrl::parse("imaps://u@h").unwrap().folder,
            "INBOX".to_string()
        );
        assert!(MailboxUrl::parse("imaps://u:pw@h/INBOX").is_err());
        assert!(MailboxUrl::parse("imaps://h/INBOX").is_err());
        assert!(MailboxUrl::parse("pop3://u@h/").is_err());
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
    }
}
