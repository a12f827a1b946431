//! Issue 11, "secrets reach logs": at trace level, with the FTP library's own protocol
//! trace switched on, no configured password (from the environment, from a file, literal in
//! a URL, a wrong one the server refuses) appears in anything ferry writes: its logs (text
//! and JSON), the journal database, error reports, `status` and `history`. Against a real
//! vsftpd (FTP and FTPS) on 127.0.0.1. The mail protocols are in tests/mail.rs.

mod ftp_server;
mod util;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use ftp_server::{PASSWORD, Server, USER};
use util::*;

/// A literal password the server refuses (the failing login's error paths).
const WRONG: &str = "Wrong-Pw-k7Q2zx";
/// The password of a job added while the daemon runs (hot reload).
const RELOADED: &str = "Reload-Pw-m3V8wd";

/// Library traces on: the redactor, not the library caps, is what keeps them clean.
const TRACE_ALL: &str = "trace,suppaftp=trace,async_imap=trace,rustls=trace";

fn vsftpd_ok() -> bool {
    ftp_server::available(ftp_server::vsftpd_path(), "vsftpd")
}

fn run_once(d: &Deployment, args: &[&str]) -> Output {
    let mut all = vec!["run", "--once"];
    all.extend_from_slice(args);
    d.cmd(&all)
        .env("FTP_PW", PASSWORD)
        .env("FERRY_DELIVERY_WAIT", "2s")
        .output()
        .unwrap()
}

/// Every place under `var/` and every command output that holds one of `secrets`.
fn leaks(d: &Deployment, outputs: &[(&str, String)], secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for rel in d.files("var") {
        let bytes = read(&d.path(&format!("var/{rel}")));
        for s in secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                found.push(format!("var/{rel} holds {s}"));
            }
        }
    }
    for (what, text) in outputs {
        for s in secrets {
            if text.contains(s) {
                found.push(format!("{what} holds {s}:\n{text}"));
            }
        }
    }
    found
}

/// `status` and `history`, text and JSON.
fn reports(d: &Deployment) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (what, args) in [
        ("status", &["status"][..]),
        ("status --json", &["status", "--json"][..]),
        ("history", &["history", "--limit", "0"][..]),
        ("history --json", &["history", "--json", "--limit", "0"][..]),
    ] {
        let o = d.cmd(args).env("FTP_PW", PASSWORD).output().unwrap();
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        out.push((what, stdout(&o) + &stderr(&o)));
    }
    out
}

/// The jobs: an FTP source with the password from the environment, an FTPS source with it
/// literal in the URL, an FTPS output with it from a file, an output the server refuses
/// (a wrong literal), and a local job whose file fails with the password in its error
/// text (as a server reply echoing it would).
fn deploy(d: &Deployment, srv: &Server, ca: &str) {
    let port = srv.port;
    let out = "[[output]]\nfolder = \"var/out/{job}\"\n";
    d.job(
        "env",
        &format!(
            "[source]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n{out}",
            srv.url("ftp", "env")
        ),
    );
    d.job(
        "url",
        &format!(
            "[source]\nftp = \"ftps://{USER}:{PASSWORD}@127.0.0.1:{port}/url\"\nca_file = \"{ca}\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n{out}"
        ),
    );
    let pw_file = d.write("secret/ftp.pw", format!("{PASSWORD}\n"));
    d.job(
        "file",
        &format!(
            "[source]\nfolder = \"in-file\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nftp = \"{}\"\npassword = \"${{file:{}}}\"\nca_file = \"{ca}\"\n",
            srv.url("ftps", "inbound"),
            pw_file.display()
        ),
    );
    d.job(
        "wrong",
        &format!(
            "[source]\nfolder = \"in-wrong\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nftp = \"{}\"\npassword = \"{WRONG}\"\n",
            srv.url("ftp", "inbound")
        ),
    );
    d.job(
        "echo",
        "[source]\nfolder = \"in-echo\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[input]\nformat = \"csv\"\ndelimiter = \";\"\n\n[transform.fields]\nQty = \"qty | num\"\n\n[[output]]\nfolder = \"var/out/echo\"\nformat = \"csv\"\n\n[after]\nerror = \"failed\"\n",
    );
}

#[test]
fn issue_11_no_ftp_password_anywhere_at_trace_level() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("secrets-ftp");
    let tls = d.path("tls");
    ftp_server::make_tls(&tls, "DNS:localhost,IP:127.0.0.1");
    let srv = Server::vsftpd(&d.path("srv"), Some(&tls), 0);
    no_password_anywhere(&d, &srv, &tls);
}

/// The same against pure-ftpd (MLSD listings, its own replies). It logs the account in to
/// its home folder, changed for the server's lifetime: one pure-ftpd test in this file.
#[test]
fn issue_11_no_ftp_password_anywhere_at_trace_level_pure_ftpd() {
    if !ftp_server::available(ftp_server::pure_ftpd_path(), "pure-ftpd") {
        return;
    }
    let d = Deployment::new("secrets-pure-ftpd");
    let tls = d.path("tls");
    ftp_server::make_tls(&tls, "DNS:localhost,IP:127.0.0.1");
    let srv = Server::pure_ftpd(&d.path("srv"), Some(&tls));
    no_password_anywhere(&d, &srv, &tls);
}

/// Three runs (text log, JSON log, library traces capped), then every file under `var/`,
/// every log, `status` and `history` are searched for the passwords.
fn no_password_anywhere(d: &Deployment, srv: &Server, tls: &Path) {
    let ca = tls.join("ca.pem").display().to_string();
    srv.put("env/a.csv", b"a\n");
    srv.put("url/b.csv", b"b\n");
    srv.mkdir("inbound");
    d.write("in-file/c.csv", b"c\n");
    d.write("in-wrong/w.csv", b"w\n");
    d.write("in-echo/bad.csv", format!("id;qty\n1;{PASSWORD}\n"));
    deploy(d, srv, &ca);

    // Human log at trace level, the FTP library's protocol trace included.
    let o = run_once(d, &["--log", TRACE_ALL]);
    let log = stderr(&o);
    assert_eq!(d.files("var/out/env"), ["a.csv"], "{log}");
    assert_eq!(d.files("var/out/url"), ["b.csv"], "{log}");
    assert_eq!(srv.files("inbound"), ["c.csv"], "{log}");
    assert!(log.contains("login refused"), "{log}");
    // The trace that used to print the password ran, and printed a mask.
    assert!(log.contains("CC OUT: PASS ***"), "{log}");
    // The echoing error text: in the report, the journal and history, masked.
    let report = String::from_utf8(read(&d.path("failed/bad.csv.error.txt"))).unwrap();
    assert!(report.contains("\"***\" is not a number"), "{report}");

    // JSON log: new files, so every source logs in again; the refused output retries.
    srv.put("env/a2.csv", b"a2\n");
    srv.put("url/b2.csv", b"b2\n");
    d.write("in-file/c2.csv", b"c2\n");
    let o2 = run_once(d, &["--log", TRACE_ALL, "--log-format", "json"]);
    let json_log = stderr(&o2);
    assert!(json_log.contains("CC OUT: PASS ***"), "{json_log}");
    assert_eq!(srv.files("inbound"), ["c.csv", "c2.csv"], "{json_log}");

    // Without naming the library, its protocol trace is not logged at all.
    srv.put("env/a3.csv", b"a3\n");
    let o3 = run_once(d, &["--log", "trace"]);
    let capped = stderr(&o3);
    assert_eq!(
        d.files("var/out/env"),
        ["a.csv", "a2.csv", "a3.csv"],
        "{capped}"
    );
    assert!(!capped.contains("CC OUT"), "{capped}");

    let mut outputs = vec![
        ("run (text log)", log + &stdout(&o)),
        ("run (JSON log)", json_log + &stdout(&o2)),
        ("run (capped)", capped + &stdout(&o3)),
    ];
    let shown = reports(d);
    let history = &shown[2].1;
    assert!(history.contains("\"***\" is not a number"), "{history}");
    assert!(shown[0].1.contains("login refused"), "{}", shown[0].1);
    outputs.extend(shown);
    let found = leaks(d, &outputs, &[PASSWORD, WRONG]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn issue_11_a_job_added_while_running_has_its_password_scrubbed() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("secrets-reload");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    srv.put("env/a.csv", b"a\n");
    d.job(
        "env",
        &format!(
            "[source]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"var/out\"\n",
            srv.url("ftp", "env")
        ),
    );
    std::fs::create_dir_all(d.path("var")).unwrap();
    let log_path = d.path("var/daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = d
        .cmd(&["run", "--log", TRACE_ALL, "--log-format", "json"])
        .env("FTP_PW", PASSWORD)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    let deadline = Duration::from_secs(60);
    wait_for("the first file", deadline, || {
        d.files("var/out") == ["a.csv"]
    });
    // A new job with a wrong literal password, picked up by the hot reload.
    d.write("in/x.csv", b"x\n");
    d.job(
        "added",
        &format!(
            "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nftp = \"{}\"\npassword = \"{RELOADED}\"\n",
            srv.url("ftp", "inbound")
        ),
    );
    let logged = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for("the added job's refused login", deadline, || {
        let l = logged(&log_path);
        l.contains("login refused") && l.matches("CC OUT: PASS ***").count() >= 2
    });
    daemon.stop();
    let found = leaks(&d, &reports(&d), &[PASSWORD, RELOADED]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
