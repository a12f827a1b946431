//! SMTP parts for the email destination and alerts: lettre over tokio and rustls,
//! STARTTLS (`smtp://`, required) or implicit TLS (`smtps://`), optional AUTH, certificate
//! verification always on (plus an optional extra CA file).
//!
//! Every attachment is sent base64, whatever its type: lettre would send text/* as 7bit
//! and line endings would come back as CRLF; base64 keeps the bytes exact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::job::mail::SmtpUrl;

/// An SMTP server to send through.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: SmtpUrl,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A transport (connections are pooled and reused across sends).
pub fn transport(s: &Server) -> Result<Transport> {
    let mut tls = TlsParameters::builder(s.url.host.clone());
    if let Some(p) = &s.ca_file {
        let pem =
            std::fs::read(p).with_context(|| format!("cannot read the CA file {}", p.display()))?;
        for block in split_pem(&pem) {
            tls = tls.add_root_certificate(
                Certificate::from_pem(&block)
                    .map_err(|e| anyhow!("bad certificate in {}: {e}", p.display()))?,
            );
        }
    }
    let tls = tls.build_rustls().map_err(|e| anyhow!("TLS setup: {e}"))?;
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.url.host.clone())
        .port(s.url.port)
        .timeout(Some(s.timeout))
        .tls(if s.url.implicit_tls {
            Tls::Wrapper(tls)
        } else {
            Tls::Required(tls)
        });
    if let Some(u) = &s.url.user {
        b = b.credentials(Credentials::new(
            u.clone(),
            s.password.clone().unwrap_or_default(),
        ));
    }
    Ok(b.build())
}

/// lettre takes one certificate per call: split a PEM bundle.
fn split_pem(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            cur.clear();
        }
        cur.push_str(line);
        cur.push('\n');
        if line.starts_with("-----END CERTIFICATE") {
            out.push(cur.clone().into_bytes());
        }
    }
    out
}

/// One file to attach.
#[derive(Debug, Clone)]
pub struct FilePart {
    pub name: String,
    pub path: PathBuf,
}

/// What one mail says.
#[derive(Debug, Clone)]
pub struct Letter {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Without the angle brackets.
    pub message_id: String,
    pub files: Vec<FilePart>,
}

/// Builds the message: a text body and every file as a base64 attachment.
///
/// Buffered: each file's bytes and their base64 form while the message is built (mail
/// is not for big files; the job's `max_size` bounds it).
pub fn build(l: &Letter) -> Result<Message> {
    let from: Mailbox = l
        .from
        .parse()
        .map_err(|e| anyhow!("`from` {:?} is not an address: {e}", l.from))?;
    let mut b = Message::builder()
        .from(from)
        .subject(l.subject.clone())
        .message_id(Some(format!("<{}>", l.message_id)))
        .date_now();
    for t in &l.to {
        b = b.to(t
            .parse()
            .map_err(|e| anyhow!("{t:?} is not an address: {e}"))?);
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(l.body.clone());
    if l.files.is_empty() {
        return Ok(b.singlepart(text)?);
    }
    let mut mp = MultiPart::mixed().singlepart(text);
    for f in &l.files {
        mp = mp.singlepart(attachment(&f.name, &f.path)?);
    }
    Ok(b.multipart(mp)?)
}

fn attachment(name: &str, path: &Path) -> Result<SinglePart> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let body = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
        .map_err(|_| anyhow!("cannot encode {} as base64", path.display()))?;
    Ok(Attachment::new(name.to_string()).body(body, content_type_for(name)))
}

/// A content type from the file name's extension (the bytes travel base64 either way).
pub fn content_type_for(name: &str) -> ContentType {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let t = match ext.as_deref() {
        Some("csv") => "text/csv",
        Some("txt") => "text/plain",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("html") | Some("htm") => "text/html",
        _ => "application/octet-stream",
    };
    ContentType::parse(t).unwrap_or(ContentType::TEXT_PLAIN)
}

/// Sends one message.
pub async fn send(t: &Transport, m: &Message) -> Result<()> {
    t.send(m.clone()).await.map_err(|e| match e.status() {
        Some(code) => anyhow::Error::new(Reply {
            code: u16::from(code),
            text: e.to_string(),
        }),
        None => anyhow!("{e}"),
    })?;
    Ok(())
}

/// A failed send that the server answered with a reply code (what the caller sorts by:
/// `outputs::failure::of_smtp_reply`).
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_base64() {
        let dir = std::env::temp_dir().join(format!("ferry-smtp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.csv");
        std::fs::write(&p, b"a;b\n1;2\n").unwrap();
        let m = build(&Letter {
            from: "ferry@example.test".into(),
            to: vec!["ap@example.test".into()],
            subject: "Results".into(),
            body: "see attached".into(),
            message_id: "abc@example.test".into(),
            files: vec![FilePart {
                name: "a.csv".into(),
                path: p,
            }],
        })
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <abc@example.test>"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: base64"), "{raw}");
        let parsed = crate::protocol::mime::parse(raw.as_bytes()).unwrap();
        assert_eq!(parsed.attachments[0].bytes, b"a;b\n1;2\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
