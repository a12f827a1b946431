//! Mailbox source and email output against real dovecot + postfix on 127.0.0.1, started
//! per test by scripts/mail-servers.sh (own folder, own ports).

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use util::*;

struct MailServers {
    dir: PathBuf,
    base: u16,
}

impl MailServers {
    /// Starts dovecot + postfix, or `None` (skip) when they cannot be installed and tools
    /// are not required.
    fn start(name: &str) -> Option<MailServers> {
        Self::start_at(name, None)
    }

    fn dir_for(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ferry-mail-{name}-{}", std::process::id()))
    }

    /// Starts on `at` (only there), or on free ports.
    fn start_at(name: &str, at: Option<u16>) -> Option<MailServers> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mail-servers.sh");
        let dir = Self::dir_for(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for attempt in 0..20u32 {
            let base = at.unwrap_or_else(|| free_base(name, attempt));
            let out = Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(&dir)
                .arg(base.to_string())
                .output()
                .unwrap();
            if out.status.success() {
                return Some(MailServers { dir, base });
            }
            let _ = Command::new("bash")
                .arg(&script)
                .arg("stop")
                .arg(&dir)
                .output();
            if attempt == 19 || at.is_some() {
                let msg = format!(
                    "cannot start the mail servers: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if require_tools() {
                    panic!("{msg}");
                }
                eprintln!("skipped: {msg}");
                return None;
            }
        }
        None
    }
    fn imap(&self) -> u16 {
        self.base
    }
    fn imaps(&self) -> u16 {
        self.base + 1
    }
    fn submission(&self) -> u16 {
        self.base + 5
    }
    fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }
    fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let base = self.dir.join("mail").join(user).join("Maildir");
        if folder == "INBOX" {
            base
        } else {
            base.join(format!(".{folder}"))
        }
    }
    /// Puts a message straight into a user's INBOX (Maildir `new/`), as delivery would.
    fn deliver(&self, user: &str, n: usize, raw: &[u8]) {
        let dir = self.maildir(user, "INBOX");
        let tmp = dir.join("tmp").join(format!("{n}.ferrytest"));
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, dir.join("new").join(format!("{n}.ferrytest"))).unwrap();
    }
    /// Messages in a folder (new + cur), with the Maildir flags of each file name.
    fn messages(&self, user: &str, folder: &str) -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir(user, folder).join(sub)) {
                for e in rd.flatten() {
                    // dovecot renames a message file when its flags change (new/ to cur/,
                    // `:2,S`): one listed a moment ago may be gone; it is read under its new
                    // name by the next look (callers wait for the count they expect).
                    match std::fs::read(e.path()) {
                        Ok(bytes) => v.push((e.file_name().to_string_lossy().into_owned(), bytes)),
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => panic!("{}: {err}", e.path().display()),
                    }
                }
            }
        }
        v
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mail-servers.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A base port with 7 free ports after it.
/// Each test starts from its own place (its name), so tests of one run do not race for
/// the same ports.
fn free_base(name: &str, attempt: u32) -> u16 {
    let h = name
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(131).wrapping_add(b as u64));
    let seed = (std::process::id() as u64 * 7919 + h + attempt as u64 * 104_729) % 2000;
    for i in 0..2000u64 {
        let base = 30_000 + ((seed + i * 13) % 2000) as u16 * 10;
        if (0..7).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok()) {
            return base;
        }
    }
    panic!("no free ports");
}

const B64_PDF: &str = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK";

fn order_mail(id: &str, from: &str, subject: &str, csv: &str) -> Vec<u8> {
    use std::fmt::Write;
    let mut b64 = String::new();
    let enc = base64_encode(csv.as_bytes());
    for chunk in enc.as_bytes().chunks(76) {
        writeln!(b64, "{}\r", std::str::from_utf8(chunk).unwrap()).unwrap();
    }
    format!(
        "From: {from}\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nPlease find the orders attached.\r\n\
         --XX\r\nContent-Type: text/csv; name=\"orders-{id}.csv\"\r\nContent-Disposition: attachment; filename=\"orders-{id}.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\
         --XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan-{id}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{B64_PDF}\r\n\
         --XX\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
         --XX--\r\n"
    )
    .into_bytes()
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

fn mailbox_job(m: &MailServers, success: &str, extra: &str) -> String {
    format!(
        r#"[source]
mailbox = "imaps://alice@127.0.0.1:{port}/INBOX"
password = "${{env:FERRY_TEST_IMAP_PW}}"
ca_file = "{ca}"
include = ["*.csv", "*.pdf"]
success = "{success}"
poll = "500ms"
{extra}

[[output]]
folder = "var/out"
"#,
        port = m.imaps(),
        ca = m.ca().display(),
    )
}

fn run_once(d: &Deployment) -> std::process::Output {
    let out = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_IMAP_PW", "secret")
        .env("FERRY_TEST_SMTP_PW", "secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "ferry failed: {}", stderr(&out));
    out
}

#[test]
fn attachments_taken_only_matching_and_message_moved() {
    let Some(m) = MailServers::start("move") else {
        return;
    };
    let d = Deployment::new("mail-move");
    // A second output named from the message: sender, date and subject.
    let job = format!(
        "{}\n[[output]]\nfolder = \"var/bymail\"\nname = \"{{mail:from}}/{{mail:date}}-{{mail:subject}}-{{name}}\"\n",
        mailbox_job(&m, "move", "from = [\"*@supplier.example\"]")
    );
    d.job("orders", &job);
    let csv = "id;qty\n1;5\n2;7\n";
    m.deliver(
        "alice",
        1,
        &order_mail(
            "m1@supplier.example",
            "orders@supplier.example",
            "Orders",
            csv,
        ),
    );
    m.deliver(
        "alice",
        2,
        &order_mail("m2@other.example", "x@other.example", "Orders", csv),
    );
    let o = run_once(&d);
    let mut out = d.files("var/out");
    out.sort();
    assert_eq!(
        out,
        [
            "orders-m1@supplier.example.csv",
            "scan-m1@supplier.example.pdf"
        ],
        "{}",
        stderr(&o)
    );
    assert_eq!(
        read(&d.path("var/out/orders-m1@supplier.example.csv")),
        csv.as_bytes()
    );
    assert_eq!(
        read(&d.path("var/out/scan-m1@supplier.example.pdf")),
        b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    );
    assert_eq!(
        d.files("var/bymail/orders@supplier.example"),
        [
            "20261123-100000-Orders-orders-m1@supplier.example.csv",
            "20261123-100000-Orders-scan-m1@supplier.example.pdf"
        ]
    );
    // The taken message moved; the one from another sender left alone.
    assert_eq!(m.messages("alice", "ferry-done").len(), 1);
    assert_eq!(m.messages("alice", "INBOX").len(), 1);
    // The history of the staged file names the message.
    let h = stdout(&d.run(&["history", "--json"]));
    assert!(h.contains(r#"\"subject\":\"Orders\""#), "{h}");
    assert!(h.contains("message moved to ferry-done"), "{h}");
    // A second run takes nothing again.
    run_once(&d);
    assert_eq!(d.files("var/out").len(), 2);
}

/// A supplier mails a Factur-X invoice: the PDF attachment is taken from the mailbox and
/// its embedded invoice XML comes out byte-identical to what pdfdetach extracts, with a CSV
/// summary line read from that XML.
#[test]
fn a_factur_x_pdf_mailed_in_flows_through_to_its_invoice_xml() {
    let Some(m) = MailServers::start("facturx") else {
        return;
    };
    let d = Deployment::new("mail-facturx");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pdf/factur-x");
    let pdf = read(&data.join("EN16931_Einfach.pdf"));
    let expected = read(&data.join("expected/EN16931_Einfach/factur-x.xml"));
    let job = format!(
        r#"[source]
mailbox = "imaps://alice@127.0.0.1:{port}/INBOX"
password = "${{env:FERRY_TEST_IMAP_PW}}"
ca_file = "{ca}"
include = ["*.pdf"]
success = "move"
poll = "500ms"

[input]
format = "xml"
attachment = "factur-x.xml"
record = "/"
[input.fields]
InvoiceNo = "/CrossIndustryInvoice/ExchangedDocument/ID"

[transform.fields]
Invoice = "InvoiceNo"
From = "meta.mail_from"

[[output]]
folder = "var/xml"
name = "{{stem}}.xml"
extract = "attachments"
attachments = ["factur-x.xml"]

[[output]]
folder = "var/summary"
name = "{{stem}}.csv"
format = "csv"
"#,
        port = m.imaps(),
        ca = m.ca().display(),
    );
    d.job("invoices", &job);
    let mut b64 = String::new();
    for chunk in base64_encode(&pdf).as_bytes().chunks(76) {
        b64.push_str(std::str::from_utf8(chunk).unwrap());
        b64.push_str("\r\n");
    }
    let mail = format!(
        "From: billing@supplier.example\r\nTo: alice@example.test\r\nSubject: Invoice 471102\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <inv-471102@supplier.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nYour invoice.\r\n\
         --XX\r\nContent-Type: application/pdf; name=\"EN16931_Einfach.pdf\"\r\nContent-Disposition: attachment; filename=\"EN16931_Einfach.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}--XX--\r\n"
    );
    m.deliver("alice", 1, mail.as_bytes());
    let o = run_once(&d);
    assert_eq!(
        d.files("var/xml"),
        ["EN16931_Einfach.xml"],
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&d.path("var/xml/EN16931_Einfach.xml")), expected);
    let summary = String::from_utf8(read(&d.path("var/summary/EN16931_Einfach.csv"))).unwrap();
    assert_eq!(
        summary.replace("\r\n", "\n"),
        "Invoice,From\n471102,billing@supplier.example\n"
    );
    assert_eq!(m.messages("alice", "ferry-done").len(), 1);
}

#[test]
fn seen_then_nothing_twice_and_delete() {
    let Some(m) = MailServers::start("seen") else {
        return;
    };
    let d = Deployment::new("mail-seen");
    // STARTTLS on the plain IMAP port this time.
    let job = mailbox_job(&m, "seen", "").replace(
        &format!("imaps://alice@127.0.0.1:{}", m.imaps()),
        &format!("imap://alice@127.0.0.1:{}", m.imap()),
    );
    assert!(job.contains("imap://"));
    d.job("orders", &job);
    for i in 0..3 {
        m.deliver(
            "alice",
            i,
            &order_mail(&format!("s{i}@x.example"), "a@x.example", "Orders", "a\n"),
        );
    }
    run_once(&d);
    assert_eq!(d.files("var/out").len(), 6);
    let msgs = m.messages("alice", "INBOX");
    assert_eq!(msgs.len(), 3);
    assert!(
        msgs.iter()
            .all(|(n, _)| n.contains(":2,") && n.rsplit(":2,").next().unwrap().contains('S')),
        "{:?}",
        msgs.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    // Marked unseen again by someone: still not taken twice (UIDVALIDITY + UID recorded).
    for (n, _) in &msgs {
        let p = m.maildir("alice", "INBOX").join("cur").join(n);
        let unseen = p.with_file_name(n.replace(":2,S", ":2,"));
        std::fs::rename(&p, unseen).unwrap();
    }
    run_once(&d);
    assert_eq!(d.files("var/out").len(), 6);

    let d2 = Deployment::new("mail-delete");
    d2.job("orders", &mailbox_job(&m, "delete", ""));
    run_once(&d2);
    assert_eq!(d2.files("var/out").len(), 6);
    assert_eq!(m.messages("alice", "INBOX").len(), 0);
}

#[test]
fn hostile_attachment_names_stay_in_the_staging_folder() {
    let Some(m) = MailServers::start("hostile") else {
        return;
    };
    let d = Deployment::new("mail-hostile");
    d.job("orders", &mailbox_job(&m, "seen", ""));
    let raw = "From: a@x.example\r\nSubject: evil\r\nMessage-ID: <evil@x.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"E\"\r\n\r\n--E\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--E\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"../../../../tmp/ferry-evil.csv\"\r\n\r\nx\r\n\
--E\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"..\\\\..\\\\win.csv\"\r\n\r\ny\r\n\
--E\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename*=UTF-8''%2E%2E%2Fenc%0D%0A.csv\r\n\r\nz\r\n\
--E\r\nContent-Type: application/pdf; name=\"=?UTF-8?B?Li4vLi4vcmVwb3J0LnBkZg==?=\"\r\n\r\n%PDF\r\n\
--E--\r\n";
    m.deliver("alice", 1, raw.as_bytes());
    run_once(&d);
    let mut out = d.files("var/out");
    out.sort();
    assert_eq!(out, ["enc.csv", "ferry-evil.csv", "report.pdf", "win.csv"]);
    assert!(!Path::new("/tmp/ferry-evil.csv").exists());
}

#[test]
fn results_sent_by_smtp_arrive_byte_identical() {
    let Some(m) = MailServers::start("smtp") else {
        return;
    };
    let d = Deployment::new("mail-smtp");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    d.write("var/in/data.bin", &bytes);
    d.write("var/in/lines.csv", b"a;b\n1;2\r\nno newline at end");
    d.job(
        "send",
        &format!(
            r#"[source]
folder = "var/in"
settle = "0s"

[[output]]
email = "mailto:bob@example.test"
smtp = "smtp://alice@127.0.0.1:{port}"
password = "${{env:FERRY_TEST_SMTP_PW}}"
ca_file = "{ca}"
from = "alice@example.test"
subject = "Results {{{{ name }}}}"
"#,
            port = m.submission(),
            ca = m.ca().display()
        ),
    );
    run_once(&d);
    wait_for("two mails for bob", Duration::from_secs(30), || {
        m.messages("bob", "INBOX").len() == 2
    });
    let mut got = std::collections::BTreeMap::new();
    for (_, raw) in m.messages("bob", "INBOX") {
        let s = String::from_utf8_lossy(&raw).into_owned();
        assert!(s.contains("Subject: Results "), "{s}");
        assert!(s.contains("Message-ID: <ferry."), "{s}");
        let (name, body) = attachment_of(&raw);
        got.insert(name, body);
    }
    assert_eq!(got["data.bin"], bytes);
    assert_eq!(got["lines.csv"], b"a;b\n1;2\r\nno newline at end");
    assert!(d.files("var/outbox/send/1").is_empty());
}

/// The first attachment of a raw message (name, bytes), decoded by hand (base64).
fn attachment_of(raw: &[u8]) -> (String, Vec<u8>) {
    let s = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let i = s.find("filename=").expect("an attachment");
    let rest = &s[i + 9..];
    let name = rest
        .trim_start_matches('"')
        .split(['"', '\n'])
        .next()
        .unwrap()
        .to_string();
    let body_start = rest.find("\n\n").unwrap() + 2;
    let body = &rest[body_start..];
    let end = body.find("\n--").unwrap();
    let b64: String = body[..end].split_whitespace().collect();
    (name, base64_decode(&b64))
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let mut out = Vec::new();
    for c in s.as_bytes().chunks(4) {
        let n = c.iter().fold(0u32, |a, &b| a << 6 | val(b));
        out.push((n >> 16) as u8);
        if c[2] != b'=' {
            out.push((n >> 8) as u8);
        }
        if c[3] != b'=' {
            out.push(n as u8);
        }
    }
    out
}

/// A job reading its password from a file (`${file:..}`), for daemons.
fn daemon_job(d: &Deployment, m: &MailServers, success: &str) -> String {
    let pw = d.write("var/imap.pw", "secret\n");
    mailbox_job(m, success, "")
        .replace(
            "${env:FERRY_TEST_IMAP_PW}",
            &format!("${{file:{}}}", pw.display()),
        )
        .replace("poll = \"500ms\"", "poll = \"200ms\"")
        .replace(
            "folder = \"var/out\"",
            // Killed again and again: a file interrupted 3 times would be set aside as
            // poison (max_attempts); here every kill is the test's.
            "folder = \"var/out\"\nexists = \"unique\"\n\n[after]\nmax_attempts = 1000",
        )
}

#[test]
fn sigkill_at_any_time_loses_and_duplicates_nothing() {
    let Some(m) = MailServers::start("kill") else {
        return;
    };
    let d = Deployment::new("mail-kill");
    d.job("orders", &daemon_job(&d, &m, "seen"));
    let n = 40;
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..n {
        let id = format!("k{i}@x.example");
        let csv = format!("order;{i}\n{}\n", "x".repeat(i * 37));
        m.deliver("alice", i, &order_mail(&id, "a@x.example", "Orders", &csv));
        expected.insert(format!("orders-{id}.csv"), csv.into_bytes());
        expected.insert(
            format!("scan-{id}.pdf"),
            b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".to_vec(),
        );
    }
    // Kill the daemon whenever it has made progress, again and again.
    let mut kills = 0;
    while kills < 12 && d.files("var/out").len() < expected.len() {
        let before = d.files("var/out").len();
        let mut daemon = Daemon::start(&d, &[]);
        wait_for("progress", Duration::from_secs(60), || {
            d.files("var/out").len() > before
        });
        daemon.stop_with(libc::SIGKILL);
        kills += 1;
    }
    let mut daemon = Daemon::start(&d, &[]);
    wait_for(
        "every attachment and every message seen",
        Duration::from_secs(120),
        || {
            d.files("var/out").len() >= expected.len()
                && m.messages("alice", "INBOX").iter().all(|(name, _)| {
                    name.rsplit(":2,")
                        .next()
                        .is_some_and(|f| f.contains('S') && name.contains(":2,"))
                })
        },
    );
    daemon.stop();
    let got: std::collections::BTreeMap<String, Vec<u8>> = d
        .files("var/out")
        .into_iter()
        .map(|f| {
            let b = read(&d.path(&format!("var/out/{f}")));
            (f, b)
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "after {kills} kills\n{}",
        d.logs()
    );
    assert!(got == expected, "contents differ after {kills} kills");
    assert!(d.files("var/staging/orders").is_empty());
}

#[test]
fn a_mailbox_with_5000_messages() {
    let Some(m) = MailServers::start("5000") else {
        return;
    };
    let d = Deployment::new("mail-5000");
    d.job(
        "orders",
        &mailbox_job(&m, "seen", "")
            .replace("include = [\"*.csv\", \"*.pdf\"]", "include = [\"*.csv\"]"),
    );
    let n = 5000;
    for i in 0..n {
        m.deliver(
            "alice",
            i,
            &order_mail(
                &format!("b{i}@x.example"),
                "a@x.example",
                "Orders",
                &format!("n;{i}\n"),
            ),
        );
    }
    run_once(&d);
    let out = d.files("var/out");
    assert_eq!(out.len(), n);
    assert_eq!(
        read(&d.path("var/out/orders-b4321@x.example.csv")),
        b"n;4321\n"
    );
    // Every message seen, none taken twice by a second run.
    run_once(&d);
    assert_eq!(d.files("var/out").len(), n);
}

#[test]
fn alerts_mail_the_error_report_and_a_daily_summary() {
    let Some(m) = MailServers::start("alert") else {
        return;
    };
    let d = Deployment::new("mail-alert");
    d.write("var/in/a.csv", "x\n");
    d.write("var/out/a.csv", "already there\n");
    d.job(
        "feed",
        &format!(
            r#"[source]
folder = "var/in"
settle = "0s"

[[output]]
folder = "var/out"
exists = "fail"

[alert]
email = "mailto:bob@example.test"
smtp = "smtps://alice@127.0.0.1:{port}"
password = "${{env:FERRY_TEST_SMTP_PW}}"
ca_file = "{ca}"
from = "alice@example.test"
daily = "00:00"
"#,
            port = m.base + 6,
            ca = m.ca().display()
        ),
    );
    // A failed file makes the exit status say so.
    let run = || {
        d.cmd(&["run", "--once"])
            .env("FERRY_TEST_SMTP_PW", "secret")
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(
        d.files("var/error/feed").len(),
        2,
        "the file and its report: {}",
        stderr(&o)
    );
    wait_for("alert and summary for bob", Duration::from_secs(30), || {
        m.messages("bob", "INBOX").len() == 2
    });
    let all: Vec<String> = m
        .messages("bob", "INBOX")
        .into_iter()
        .map(|(_, raw)| String::from_utf8_lossy(&raw).into_owned())
        .collect();
    let alert = all
        .iter()
        .find(|s| s.contains("Subject: ferry feed: ") && s.contains(".error.txt"))
        .expect("an alert");
    assert!(alert.contains("a.csv"), "{alert}");
    let summary = all
        .iter()
        .find(|s| s.contains("Subject: ferry feed: summary-"))
        .expect("a summary");
    assert!(summary.contains("failed: 1"), "{summary}");
    // Not sent twice.
    run();
    assert_eq!(m.messages("bob", "INBOX").len(), 2);
}

#[test]
fn mail_examples_pass_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let out = Command::new(BIN)
        .args(["check", "--jobs"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    let n = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(text.contains(&format!("{n} job file(s) valid")), "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn mail_keys_are_checked_with_positions() {
    let d = Deployment::new("mail-check");
    d.job(
        "bad",
        r#"[source]
mailbox = "imaps://orders:hunter2@mail.example.test/INBOX"
password = "${env:X}"
success = "archive"

[[output]]
email = "ap@partner.example.test"
from = "ferry@example.test"
"#,
    );
    let out = d.run(&["check"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("bad.toml:2:"), "{text}");
    assert!(text.contains("must not carry a password"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is never printed: {text}"
    );
    assert!(text.contains("source.success"), "{text}");
    assert!(text.contains("mailto:"), "{text}");
    assert!(text.contains("missing `smtp`"), "{text}");
    // A literal password works but is warned about.
    d.job(
        "bad",
        r#"[source]
mailbox = "imaps://orders@mail.example.test/INBOX"
password = "hunter2"

[[output]]
folder = "var/out"
"#,
    );
    let out = d.run(&["check"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("literal password"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_failed_attachment_sends_its_message_to_the_error_folder() {
    let Some(m) = MailServers::start("fail") else {
        return;
    };
    let d = Deployment::new("mail-fail");
    d.job(
        "orders",
        &mailbox_job(&m, "delete", "").replace(
            "folder = \"var/out\"",
            "folder = \"var/out\"\nexists = \"fail\"",
        ),
    );
    // The CSV's output name is taken already: that file fails, the PDF is fine.
    d.write("var/out/orders-f1@x.example.csv", "taken\n");
    m.deliver(
        "alice",
        1,
        &order_mail("f1@x.example", "a@x.example", "Orders", "a\n"),
    );
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_IMAP_PW", "secret")
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a failed file shows in the exit status"
    );
    assert!(
        d.files("var/error/orders")
            .contains(&"orders-f1@x.example.csv".to_string())
    );
    // Not deleted: kept in the remote error folder for a person to look at.
    assert_eq!(m.messages("alice", "INBOX").len(), 0);
    assert_eq!(
        m.messages("alice", "ferry-error").len(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_mail_server_that_is_down_loses_nothing() {
    let base = free_base("down", 0);
    let dir = MailServers::dir_for("down");
    let d = Deployment::new("mail-down");
    d.write("var/in/result.csv", "id;total\n1;9.90\n");
    d.write("var/smtp.pw", "secret\n");
    d.job(
        "send",
        &format!(
            r#"[source]
folder = "var/in"
settle = "0s"

[[output]]
email = "mailto:bob@example.test"
smtp = "smtp://alice@127.0.0.1:{port}"
password = "${{file:{pw}}}"
ca_file = "{ca}"
from = "alice@example.test"
"#,
            port = base + 5,
            pw = d.path("var/smtp.pw").display(),
            ca = dir.join("tls/ca.pem").display()
        ),
    );
    let mut daemon = Daemon::start(&d, &[]);
    // The server is down: the file waits in the outbox, the original is archived.
    wait_for("the output in the outbox", Duration::from_secs(60), || {
        d.files("var/outbox/send/1") == ["result.csv"] && d.files("var/archive/send").len() == 1
    });
    wait_for("a logged retry", Duration::from_secs(60), || {
        d.logs().contains("retried with backoff")
    });
    let Some(m) = MailServers::start_at("down", Some(base)) else {
        return;
    };
    wait_for(
        "the mail, once the server is up",
        Duration::from_secs(120),
        || m.messages("bob", "INBOX").len() == 1,
    );
    wait_for("the outbox emptied", Duration::from_secs(30), || {
        d.files("var/outbox/send/1").is_empty()
    });
    daemon.stop();
    let (_, raw) = &m.messages("bob", "INBOX")[0];
    let (name, body) = attachment_of(raw);
    assert_eq!(name, "result.csv");
    assert_eq!(body, b"id;total\n1;9.90\n");
}

/// Issue 11, "secrets reach logs": at trace level with the IMAP library's own protocol trace
/// on, no password (IMAP from the environment, SMTP from a file, a wrong literal for each
/// that the server refuses) appears in the log (text and JSON), the journal, `status` or
/// `history`. The FTP protocols: tests/secrets.rs.
#[test]
fn issue_11_no_mail_password_anywhere_at_trace_level() {
    let Some(m) = MailServers::start("secrets") else {
        return;
    };
    const PW: &str = "Mail-Pw-q8Z4nx";
    const WRONG_IMAP: &str = "Wrong-Imap-Pw-j5T";
    const WRONG_SMTP: &str = "Wrong-Smtp-Pw-r2D";
    // A distinctive password for alice (dovecot reads its passwd-file again when it changes).
    std::fs::write(
        m.dir.join("dovecot/users"),
        format!("alice:{{PLAIN}}{PW}::::::\nbob:{{PLAIN}}secret::::::\n"),
    )
    .unwrap();
    let d = Deployment::new("mail-secrets");
    d.job("imap", &mailbox_job(&m, "seen", ""));
    d.job(
        "imapwrong",
        &mailbox_job(&m, "seen", "")
            .replace("alice@", "bob@")
            .replace("${env:FERRY_TEST_IMAP_PW}", WRONG_IMAP)
            .replace("var/out", "var/out-wrong"),
    );
    let pw_file = d.write("secret/smtp.pw", format!("{PW}\n"));
    let smtp_job = |source: &str, password: &str| {
        format!(
            "[source]\nfolder = \"{source}\"\nsettle = \"0s\"\n\n[[output]]\nemail = \"mailto:bob@example.test\"\nsmtp = \"smtp://alice@127.0.0.1:{}\"\npassword = \"{password}\"\nca_file = \"{}\"\nfrom = \"alice@example.test\"\n",
            m.submission(),
            m.ca().display()
        )
    };
    d.job(
        "smtp",
        &smtp_job("in-smtp", &format!("${{file:{}}}", pw_file.display())),
    );
    d.job("smtpwrong", &smtp_job("in-wrong", WRONG_SMTP));
    d.write("in-smtp/result.csv", "id\n1\n");
    d.write("in-wrong/held.csv", "id\n2\n");
    m.deliver(
        "alice",
        1,
        &order_mail("k1@x.example", "a@x.example", "Orders", "a\n"),
    );
    let run = |format: &str| {
        d.cmd(&[
            "run",
            "--once",
            "--log",
            "trace,async_imap=trace,lettre=trace,rustls=trace",
            "--log-format",
            format,
        ])
        .env("FERRY_TEST_IMAP_PW", PW)
        .env("FERRY_DELIVERY_WAIT", "2s")
        .output()
        .unwrap()
    };
    let o = run("human");
    let log = stderr(&o);
    assert_eq!(d.files("var/out").len(), 2, "{log}");
    wait_for("the mail for bob", Duration::from_secs(30), || {
        m.messages("bob", "INBOX").len() == 1
    });
    assert_eq!(d.files("var/outbox/smtpwrong/1"), ["held.csv"], "{log}");
    // The IMAP library traced the LOGIN command, with a mask for the password.
    let login = log
        .lines()
        .find(|l| l.contains("LOGIN") && l.contains("alice"))
        .unwrap_or_else(|| panic!("no LOGIN trace:\n{log}"));
    assert!(login.contains("***"), "{login}");
    m.deliver(
        "alice",
        2,
        &order_mail("k2@x.example", "a@x.example", "Orders", "b\n"),
    );
    let o2 = run("json");
    let json_log = stderr(&o2);
    assert_eq!(d.files("var/out").len(), 4, "{json_log}");
    assert!(
        json_log.contains("LOGIN") && json_log.contains("***"),
        "{json_log}"
    );
    let mut texts = vec![
        ("text log".to_string(), log + &stdout(&o)),
        ("JSON log".to_string(), json_log + &stdout(&o2)),
    ];
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["history", "--limit", "0"],
        &["history", "--json", "--limit", "0"],
    ] {
        let o = d.cmd(args).env("FERRY_TEST_IMAP_PW", PW).output().unwrap();
        texts.push((args.join(" "), stdout(&o) + &stderr(&o)));
    }
    for rel in d.files("var") {
        let bytes = read(&d.path(&format!("var/{rel}")));
        texts.push((rel, String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (what, text) in &texts {
        for pw in [PW, WRONG_IMAP, WRONG_SMTP] {
            assert!(!text.contains(pw), "{what} holds {pw}:\n{text}");
        }
    }
}

/// A mail the server refuses for good (550: no such mailbox) is not retried until `[retry]
/// for`: its file goes to the error folder at once, with a report naming the reply; a mail
/// to a real mailbox of the same job still arrives.
#[test]
fn a_mail_refused_with_550_goes_to_the_error_folder_with_its_reply() {
    let Some(m) = MailServers::start("smtp") else {
        return;
    };
    let d = Deployment::new("mail-smtp-550");
    d.write("var/in/nobody/refused.csv", b"a;b\n1;2\n");
    d.write("var/in/bob/kept.csv", b"a;b\n3;4\n");
    for (name, to) in [("nobody", "nobody"), ("bob", "bob")] {
        d.job(
            name,
            &format!(
                r#"[source]
folder = "var/in/{name}"
settle = "0s"

[[output]]
email = "mailto:{to}@example.test"
smtp = "smtp://alice@127.0.0.1:{port}"
password = "${{env:FERRY_TEST_SMTP_PW}}"
ca_file = "{ca}"
from = "alice@example.test"
"#,
                port = m.submission(),
                ca = m.ca().display()
            ),
        );
    }
    run_once(&d);
    wait_for("the mail for bob", Duration::from_secs(30), || {
        m.messages("bob", "INBOX").len() == 1
    });
    assert_eq!(
        d.files("var/error/nobody"),
        ["refused.csv", "refused.csv.error.txt"]
    );
    let report = std::fs::read_to_string(d.path("var/error/nobody/refused.csv.error.txt")).unwrap();
    assert!(report.contains("refused the mail (550)"), "{report}");
    assert!(report.contains("nobody@example.test"), "{report}");
    assert!(d.files("var/outbox/nobody/1").is_empty());
    assert!(d.files("var/error/bob").is_empty());
}
