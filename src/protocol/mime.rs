//! Attachments out of one mail message (mail-parser), with untrusted names made safe.
//!
//! What is buffered: the raw message (one IMAP FETCH, bounded by the job's
//! `max_message_size`) and mail-parser's decoded parts of that one message. Each
//! attachment is then written to its own file; nothing else of the mailbox is held.
//!
//! Which parts count: every leaf part that carries a name (`Content-Disposition:
//! filename`, RFC 2231 `filename*`, or `Content-Type: name`), every non-text part
//! (attachments and inline binaries such as images) and every part of a nested
//! `message/rfc822` (recursively, up to mail-parser's depth limit). The message's own
//! body text (unnamed text/plain or text/html that is the body) is not an attachment.
//!
//! Bytes: mail-parser decodes text parts into UTF-8 strings through their charset; an
//! attachment must keep its bytes, so for text parts the raw part is decoded again here
//! by its transfer encoding only (base64 / quoted-printable / none).

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

pub use crate::job::mail::MailMeta;

/// One attachment: its safe file name, the name as the sender wrote it (decoded), and its
/// bytes.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub original_name: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A parsed message: metadata and every attachment (matching or not; the caller filters on
/// `name`).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub meta: MailMeta,
    pub attachments: Vec<Attachment>,
}

/// Parses a raw RFC 5322 message. `None` when it is not a message at all.
pub fn parse(raw: &[u8]) -> Option<Parsed> {
    let msg = MessageParser::default().parse(raw)?;
    let meta = meta_of(&msg);
    let mut attachments = Vec::new();
    let mut n = 0u32;
    collect(&msg, &mut attachments, &mut n, 0);
    // Names unique within the message: a.csv, a_1.csv, ...
    let mut seen = std::collections::HashSet::new();
    for a in &mut attachments {
        let mut i = 0;
        let base = a.name.clone();
        while !seen.insert(a.name.to_ascii_lowercase()) {
            i += 1;
            a.name = numbered(&base, i);
        }
    }
    Some(Parsed { meta, attachments })
}

pub fn meta_of(msg: &Message<'_>) -> MailMeta {
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    MailMeta {
        from: clean_text(&from),
        subject: clean_text(msg.subject().unwrap_or_default()),
        date: msg.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        message_id: clean_text(msg.message_id().unwrap_or_default()),
    }
}

/// Header text for logs and history: control characters become spaces.
fn clean_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn collect(msg: &Message<'_>, out: &mut Vec<Attachment>, n: &mut u32, depth: u32) {
    let body_parts: std::collections::HashSet<u32> = msg
        .text_body
        .iter()
        .chain(msg.html_body.iter())
        .copied()
        .collect();
    for (idx, part) in msg.parts.iter().enumerate() {
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => {
                if depth < 8 {
                    collect(nested, out, n, depth + 1);
                }
            }
            body => {
                let named = part.attachment_name().is_some();
                let is_text = matches!(body, PartType::Text(_) | PartType::Html(_));
                let is_body = body_parts.contains(&(idx as u32));
                if is_text && is_body && !named {
                    continue;
                }
                if is_text && !named && idx == 0 {
                    continue; // a single-part text message: its body
                }
                *n += 1;
                let bytes = if is_text {
                    raw_bytes(msg, part).unwrap_or_else(|| part.contents().to_vec())
                } else {
                    part.contents().to_vec()
                };
                let content_type = part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(s) => format!("{}/{}", ct.ctype(), s),
                        None => ct.ctype().to_string(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into())
                    .to_ascii_lowercase();
                let original_name = part.attachment_name().map(str::to_string);
                let name = match &original_name {
                    Some(raw) => safe_name(raw).unwrap_or_else(|| unnamed(*n, &content_type)),
                    None => unnamed(*n, &content_type),
                };
                out.push(Attachment {
                    name,
                    original_name,
                    content_type,
                    bytes,
                });
            }
        }
    }
}

/// The part's bytes after transfer decoding only (no charset conversion).
fn raw_bytes(msg: &Message<'_>, part: &MessagePart<'_>) -> Option<Vec<u8>> {
    let raw = msg.raw_message.as_ref();
    let (s, e) = (part.offset_body as usize, part.offset_end as usize);
    let slice = raw.get(s..e)?;
    match part.encoding {
        Encoding::Base64 => base64_decode(slice),
        Encoding::QuotedPrintable => quoted_printable_decode(slice),
        Encoding::None => Some(slice.to_vec()),
    }
}

/// A safe file name from an untrusted attachment name (already RFC 2047/2231 decoded by
/// mail-parser): the last path component only (both `/` and `\`), no control characters,
/// no `.`/`..`, no leading dots (hidden files, which sources skip), characters Windows
/// refuses replaced, reserved device names defused, at most 255 bytes. `None` when nothing
/// usable is left.
pub fn safe_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() || trimmed == ".." {
        return None;
    }
    let portable = crate::fsutil::portable_component(trimmed);
    let fitted = crate::fsutil::fit_component(&portable);
    if fitted.is_empty() || fitted == "_" && trimmed != "_" || fitted.starts_with('.') {
        return None;
    }
    Some(fitted)
}

/// A name for a part that has none (or none usable): `attachment-N.<ext by type>`.
pub fn unnamed(n: u32, content_type: &str) -> String {
    let ext = match content_type {
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/html" => "html",
        "text/xml" | "application/xml" => "xml",
        "application/json" => "json",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "message/rfc822" => "eml",
        _ => "bin",
    };
    format!("attachment-{n}.{ext}")
}

fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = crate::fsutil::split_name(name);
    if ext.is_empty() {
        format!("{stem}_{n}")
    } else {
        format!("{stem}_{n}.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(parts: &str) -> Vec<u8> {
        format!(
            "From: Supplier <orders@supplier.example>\r\nTo: x@example.test\r\nSubject: =?UTF-8?Q?Orders_f=C3=BCr_May?=\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@supplier.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nHello\r\n{parts}--B--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn metadata_and_bytes_kept() {
        let csv_b64 = "aWQ7bmFtZQ0KMTtN/GxsZXINCg=="; // "id;name\r\n1;M\xfcller\r\n" in latin-1
        let raw = mail(&format!(
            "--B\r\nContent-Type: text/csv; charset=iso-8859-1; name=\"orders.csv\"\r\nContent-Disposition: attachment; filename=\"orders.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{csv_b64}\r\n\
             --B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
             --B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline; filename=\"notes.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline=3D1\r\nend\r\n"
        ));
        let p = parse(&raw).unwrap();
        assert_eq!(p.meta.from, "orders@supplier.example");
        assert_eq!(p.meta.subject, "Orders für May");
        assert_eq!(p.meta.message_id, "m1@supplier.example");
        assert!(p.meta.date.starts_with("2026-11-23T10:00:00"));
        let names: Vec<_> = p.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["orders.csv", "scan.pdf", "notes.txt"]);
        assert_eq!(p.attachments[0].bytes, b"id;name\r\n1;M\xfcller\r\n");
        assert_eq!(p.attachments[1].bytes, b"%PDF-1.4\n");
        assert_eq!(p.attachments[2].bytes, b"line=1\r\nend");
    }

    #[test]
    fn rfc2047_and_2231_names_decoded() {
        let raw = mail(
            "--B\r\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?UmVjaG51bmfDnyAyMDI2LnhtbA==?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEvPg==\r\n\
             --B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''Pr%C3%BCfung%20A.csv\r\nContent-Transfer-Encoding: base64\r\n\r\nYQ==\r\n",
        );
        let p = parse(&raw).unwrap();
        let names: Vec<_> = p.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Rechnungß 2026.xml", "Prüfung A.csv"]);
    }

    #[test]
    fn hostile_names_made_safe() {
        assert_eq!(safe_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(
            safe_name("C:\\Windows\\evil.bat").as_deref(),
            Some("evil.bat")
        );
        assert_eq!(safe_name("..").as_deref(), None);
        assert_eq!(safe_name("../").as_deref(), None);
        assert_eq!(safe_name(".bashrc").as_deref(), Some("bashrc"));
        assert_eq!(safe_name("a\u{0}b\r\n.csv").as_deref(), Some("ab.csv"));
        assert_eq!(
            safe_name("inv\u{202e}fdp.exe").as_deref(),
            Some("invfdp.exe")
        );
        assert_eq!(safe_name("con.csv").as_deref(), Some("con_.csv"));
        assert_eq!(safe_name("a:b?.csv").as_deref(), Some("a_b_.csv"));
        assert_eq!(safe_name("   ").as_deref(), None);
        let long = format!("{}.csv", "x".repeat(400));
        let s = safe_name(&long).unwrap();
        assert!(s.len() <= 255 && s.ends_with(".csv"));
    }

    #[test]
    fn nested_messages_and_unnamed_parts() {
        let inner = "From: a@b.example\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"I\"\r\n\r\n--I\r\nContent-Type: text/plain\r\n\r\nbody\r\n--I\r\nContent-Type: text/xml; name=\"inner.xml\"\r\n\r\n<x/>\r\n--I--\r\n";
        let raw = mail(&format!(
            "--B\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n\
             --B\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n\
             --B\r\nContent-Type: application/json; name=\"../../x.json\"\r\n\r\n{{}}\r\n\
             --B\r\nContent-Type: application/json; name=\"x.json\"\r\n\r\n[]\r\n"
        ));
        let p = parse(&raw).unwrap();
        let names: Vec<_> = p.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["inner.xml", "attachment-2.png", "x.json", "x_1.json"]
        );
        assert_eq!(p.attachments[0].bytes, b"<x/>");
        assert_eq!(p.attachments[1].bytes, b"\x89PNG");
    }

    #[test]
    fn garbage_is_not_a_panic() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--",
        ] {
            let _ = parse(raw);
        }
    }
}
