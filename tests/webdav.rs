//! WebDAV outputs and sources (issue 17) against a real WebDAV server on 127.0.0.1
//! (wsgidav from PyPI, tests/webdav_server), started once for this test binary. Each test
//! works in a folder of its own on the server.

mod http_server;
mod util;
mod webdav_server;

use std::time::Duration;

use util::*;
use webdav_server::{DavServer, PASSWORD};

const LONG: Duration = Duration::from_secs(60);

fn server() -> Option<&'static DavServer> {
    webdav_server::server()
}

fn run_once(d: &Deployment) -> std::process::Output {
    d.cmd(&["run", "--once"])
        .env("DAV_PW", PASSWORD)
        .env("FERRY_DELIVERY_WAIT", "20s")
        .output()
        .unwrap()
}

fn daemon(d: &Deployment, pw: &str) -> Daemon {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let n = std::fs::read_dir(d.path("var")).unwrap().count();
    let log = std::fs::File::create(d.path(&format!("var/ferry-{n}.log"))).unwrap();
    let child = d
        .cmd(&["run"])
        .env("DAV_PW", pw)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon { child }
}

/// A job taking local `in/` to a WebDAV output.
fn dest_job(url: &str, extra: &str) -> String {
    format!(
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nwebdav = \"{url}\"\n{extra}\n"
    )
}

/// A job taking a WebDAV folder to local `out/`.
fn source_job(url: &str, extra: &str) -> String {
    format!(
        "[source]\nwebdav = \"{url}\"\nsettle = \"0s\"\npoll = \"200ms\"\n{extra}\n\n[[output]]\nfolder = \"out\"\nexists = \"unique\"\n"
    )
}

/// The files below a server folder (relative, sorted), hidden ones included.
fn remote_files(s: &DavServer, path: &str) -> Vec<String> {
    let base = s.local(path);
    if !base.exists() {
        return Vec::new();
    }
    files_below(&base)
}

#[test]
fn delivery_puts_a_temporary_name_then_moves_it_making_folders_and_keeps_the_password_secret() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-out");
    d.job(
        "up",
        &dest_job(
            &format!("http://127.0.0.1:{}/auth/t-out/inbox", s.http),
            "user = \"ferry\"\npassword = \"${env:DAV_PW}\"\nname = \"2026/12/{name}\"",
        ),
    );
    let body = pseudo_random(300_000, 11);
    d.write("in/order 1.bin", &body);
    d.write("in/b.csv", "b\n");
    let o = d
        .cmd(&["run", "--once"])
        .env("DAV_PW", PASSWORD)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        remote_files(s, "/auth/t-out"),
        ["inbox/2026/12/b.csv", "inbox/2026/12/order 1.bin"]
    );
    assert_eq!(read(&s.local("/auth/t-out/inbox/2026/12/order 1.bin")), body);
    // The folders were made level by level, and each file went PUT (temporary name) then
    // MOVE (final name).
    let reqs = s.requests("t-out");
    let made: Vec<&str> = reqs
        .iter()
        .filter(|r| r["method"] == "MKCOL" && r["status"] == 201)
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        made,
        [
            "/auth/t-out",
            "/auth/t-out/inbox",
            "/auth/t-out/inbox/2026",
            "/auth/t-out/inbox/2026/12"
        ],
        "{reqs:#?}"
    );
    for name in ["order%201.bin", "b.csv"] {
        let put = reqs
            .iter()
            .position(|r| r["method"] == "PUT")
            .filter(|_| true);
        assert!(put.is_some());
        let puts: Vec<_> = reqs
            .iter()
            .enumerate()
            .filter(|(_, r)| r["method"] == "PUT" && r["status"] == 201)
            .filter(|(_, r)| {
                r["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/.{}.ferry-part", name.replace("%20", " ")))
            })
            .collect();
        assert_eq!(puts.len(), 1, "{name}: {reqs:#?}");
        let moves: Vec<_> = reqs
            .iter()
            .enumerate()
            .filter(|(_, r)| r["method"] == "MOVE" && (200..300).contains(&r["status"].as_u64().unwrap()))
            .filter(|(_, r)| r["destination"].as_str().unwrap().ends_with(&format!("/inbox/2026/12/{name}")))
            .collect();
        assert_eq!(moves.len(), 1, "{name}: {reqs:#?}");
        assert!(puts[0].0 < moves[0].0, "PUT before MOVE");
        assert_eq!(moves[0].1["path"], puts[0].1["path"], "the temporary name is moved");
        assert_eq!(moves[0].1["overwrite"], "F", "exists = fail by default: Overwrite: F");
    }
    assert!(reqs.iter().all(|r| r["auth"] == true));
    // The password is in no log line, journal row or history.
    assert!(!err.contains(PASSWORD) && !err.contains("44kq"), "{err}");
    assert!(!stdout(&d.run(&["history", "--json", "--limit", "0"])).contains(PASSWORD));
    for f in files_below(&d.path("var")) {
        let bytes = read(&d.path(&format!("var/{f}")));
        assert!(!String::from_utf8_lossy(&bytes).contains(PASSWORD), "var/{f}");
    }
    // Originals archived, the outbox empty.
    assert!(d.files("in").is_empty());
    assert!(d.files("var/outbox").is_empty());
}

#[test]
fn exists_policies_use_overwrite_f_and_a_check() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-exists");
    std::fs::create_dir_all(s.local("/open/t-exists/u")).unwrap();
    std::fs::create_dir_all(s.local("/open/t-exists/f")).unwrap();
    std::fs::create_dir_all(s.local("/open/t-exists/o")).unwrap();
    for dir in ["u", "f", "o"] {
        std::fs::write(s.local(&format!("/open/t-exists/{dir}/a.csv")), "old\n").unwrap();
    }
    let url = |dir: &str| format!("http://127.0.0.1:{}/open/t-exists/{dir}", s.http);
    d.job("u", &dest_job(&url("u"), "exists = \"unique\"").replace("\"in\"", "\"in-u\""));
    d.job("f", &dest_job(&url("f"), "exists = \"fail\"").replace("\"in\"", "\"in-f\""));
    d.job("o", &dest_job(&url("o"), "exists = \"overwrite\"").replace("\"in\"", "\"in-o\""));
    for dir in ["in-u", "in-f", "in-o"] {
        d.write(&format!("{dir}/a.csv"), "new\n");
    }
    let o = run_once(&d);
    let err = stderr(&o);
    assert_eq!(remote_files(s, "/open/t-exists/u"), ["a.csv", "a_1.csv"], "{err}");
    assert_eq!(read(&s.local("/open/t-exists/u/a_1.csv")), b"new\n");
    assert_eq!(read(&s.local("/open/t-exists/u/a.csv")), b"old\n");
    assert_eq!(read(&s.local("/open/t-exists/o/a.csv")), b"new\n");
    // fail: the server's file kept, ours in the error folder with a report.
    assert_eq!(remote_files(s, "/open/t-exists/f"), ["a.csv"], "no temporary file left");
    assert_eq!(read(&s.local("/open/t-exists/f/a.csv")), b"old\n");
    let errors = files_below(&d.path("var/error"));
    let report = errors
        .iter()
        .find(|f| f.ends_with(".error.txt"))
        .unwrap_or_else(|| panic!("{errors:?}\n{err}"));
    let text = std::fs::read_to_string(d.path(&format!("var/error/{report}"))).unwrap();
    assert!(text.contains("exists on the server already"), "{text}");
    let overwrite_moves: Vec<_> = s
        .requests("t-exists/o")
        .into_iter()
        .filter(|r| r["method"] == "MOVE")
        .collect();
    assert_eq!(overwrite_moves.len(), 1);
    assert_eq!(overwrite_moves[0]["overwrite"], "T");
}

#[test]
fn a_refusal_fails_the_file_with_the_status_and_a_dead_server_is_retried_until_it_is_back() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-faults");
    std::fs::create_dir_all(s.local("/open/t-403")).unwrap();
    s.fail("t-403/.a.csv", 403, 100);
    d.job(
        "refused",
        &dest_job(&format!("http://127.0.0.1:{}/open/t-403", s.http), ""),
    );
    // A server that is not there yet: a free port, started later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir_all(s.local("/open/t-down")).unwrap();
    d.job(
        "down",
        &dest_job(&format!("http://127.0.0.1:{port}/open/t-down"), "")
            .replace("\"in\"", "\"in-down\""),
    );
    d.write("in/a.csv", "a\n");
    for i in 0..5 {
        d.write(&format!("in-down/d{i}.csv"), format!("{i}\n"));
    }
    let mut ferry = daemon(&d, PASSWORD);
    wait_for("the refusal reported", LONG, || {
        files_below(&d.path("var/error")).iter().any(|f| f.ends_with(".error.txt"))
    });
    let report = files_below(&d.path("var/error"))
        .into_iter()
        .find(|f| f.ends_with(".error.txt"))
        .unwrap();
    let text = std::fs::read_to_string(d.path(&format!("var/error/{report}"))).unwrap();
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(text.contains("injected fault"), "the answer's start: {text}");
    wait_for("the dead server noticed", LONG, || {
        d.logs().contains("Delivery failed")
    });
    assert_eq!(d.files("var/outbox/down/1").len(), 5, "waiting in the outbox");
    // The server comes up: every file delivered, once.
    let mut keeper = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    s.start_on(port, keeper.id());
    wait_for("every file delivered", Duration::from_secs(120), || {
        d.files("var/outbox").is_empty()
    });
    ferry.stop();
    let _ = keeper.kill();
    let _ = keeper.wait();
    assert_eq!(
        remote_files(s, "/open/t-down"),
        ["d0.csv", "d1.csv", "d2.csv", "d3.csv", "d4.csv"]
    );
    assert!(remote_files(s, "/open/t-403").is_empty());
}

#[test]
fn a_kill_mid_upload_delivers_exactly_once_after_the_restart() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-kill");
    std::fs::create_dir_all(s.local("/open/t-slow-kill")).unwrap();
    d.job(
        "k",
        &dest_job(&format!("http://127.0.0.1:{}/open/t-slow-kill", s.http), ""),
    );
    // The server reads "slow" uploads at about 2 MB/s: 8 MB takes about 4 s.
    let big = pseudo_random(8_000_000, 5);
    d.write("in/big.bin", &big);
    let mut ferry = daemon(&d, PASSWORD);
    let started = || {
        std::fs::read_to_string(s.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("t-slow-kill/.big.bin") && l.contains("\"PUT\""))
    };
    wait_for("the upload in progress", LONG, started);
    ferry.stop_with(libc::SIGKILL);
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(remote_files(s, "/open/t-slow-kill"), ["big.bin"], "no temporary left, no copy");
    assert_eq!(sha256_hex(&read(&s.local("/open/t-slow-kill/big.bin"))), sha256_hex(&big));
    let moves = s
        .requests("t-slow-kill")
        .into_iter()
        .filter(|r| r["method"] == "MOVE" && r["status"].as_u64().is_some_and(|c| c < 300))
        .count();
    assert_eq!(moves, 1, "moved into place once");
    assert_eq!(d.history().len(), 1);
}

#[test]
fn tls_is_verified_against_ca_file_and_an_untrusted_certificate_is_refused() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-tls");
    std::fs::create_dir_all(s.local("/open/t-tls")).unwrap();
    let url = format!("https://127.0.0.1:{}/open/t-tls", s.https);
    d.job(
        "good",
        &dest_job(&url, &format!("ca_file = \"{}\"", s.ca().display())),
    );
    d.job(
        "bad",
        &dest_job(&url, &format!("ca_file = \"{}\"\nname = \"bad-{{name}}\"", s.other_ca().display()))
            .replace("\"in\"", "\"in-bad\""),
    );
    d.write("in/ok.csv", "ok\n");
    d.write("in-bad/no.csv", "no\n");
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_DELIVERY_WAIT", "3s")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(remote_files(s, "/open/t-tls"), ["ok.csv"], "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(d.files("var/outbox/bad/1"), ["no.csv"], "kept for a retry");
}

#[test]
fn pickup_downloads_then_deletes_or_moves_and_ignores_hostile_names() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-src");
    let a = pseudo_random(200_000, 9);
    std::fs::create_dir_all(s.local("/auth/t-src-del")).unwrap();
    std::fs::create_dir_all(s.local("/open/t-src-mv")).unwrap();
    std::fs::create_dir_all(s.local("/open/t-src-hostile")).unwrap();
    std::fs::write(s.local("/auth/t-src-del/a.bin"), &a).unwrap();
    std::fs::write(s.local("/auth/t-src-del/b.csv"), "b\n").unwrap();
    std::fs::write(s.local("/open/t-src-mv/c.csv"), "c\n").unwrap();
    std::fs::write(s.local("/open/t-src-hostile/h.csv"), "h\n").unwrap();
    d.job(
        "del",
        &source_job(
            &format!("http://127.0.0.1:{}/auth/t-src-del", s.http),
            "user = \"ferry\"\npassword = \"${env:DAV_PW}\"",
        ),
    );
    d.job(
        "mv",
        &source_job(
            &format!("http://127.0.0.1:{}/open/t-src-mv", s.http),
            "success = \"move\"\nmove_to = \"done\"",
        )
        .replace("\"out\"", "\"out-mv\""),
    );
    d.job(
        "hostile",
        &source_job(&format!("http://127.0.0.1:{}/open/t-src-hostile", s.http), "")
            .replace("\"out\"", "\"out-h\""),
    );
    let o = run_once(&d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(d.files("out"), ["a.bin", "b.csv"]);
    assert_eq!(read(&d.path("out/a.bin")), a);
    assert!(remote_files(s, "/auth/t-src-del").is_empty());
    assert_eq!(d.files("out-mv"), ["c.csv"]);
    assert_eq!(remote_files(s, "/open/t-src-mv"), ["done/c.csv"]);
    // Names a hostile server lists with `..` or `/` are ignored and said so; nothing
    // lands outside the staging folder.
    assert_eq!(d.files("out-h"), ["h.csv"]);
    assert!(err.contains("not plain file names"), "{err}");
    let all = files_below(&d.path(""));
    assert!(
        !all.iter().any(|f| f.contains("escaped")),
        "{all:?}"
    );
    assert!(!err.contains(PASSWORD));
    assert!(d.files("var/staging").is_empty(), "{:?}", d.files("var/staging"));
}

#[test]
fn a_file_still_being_written_on_the_server_is_not_taken_early() {
    let Some(s) = server() else { return };
    let d = Deployment::new("dav-settle");
    std::fs::create_dir_all(s.local("/open/t-settle")).unwrap();
    d.job(
        "slow",
        &source_job(&format!("http://127.0.0.1:{}/open/t-settle", s.http), "")
            .replace("settle = \"0s\"", "settle = \"3s\""),
    );
    let mut ferry = daemon(&d, PASSWORD);
    let full = pseudo_random(50_000, 7);
    let path = s.local("/open/t-settle/slow.bin");
    std::fs::write(&path, &full[..10_000]).unwrap();
    for i in 2..=5 {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(&path, &full[..i * 10_000]).unwrap();
    }
    wait_for("the file is taken", LONG, || {
        d.files("out").len() == 1 && remote_files(s, "/open/t-settle").is_empty()
    });
    ferry.stop();
    assert_eq!(read(&d.path("out/slow.bin")), full, "taken only once complete");
}
