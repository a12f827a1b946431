//! FTP and FTPS drop folders (issue 5) against real servers on 127.0.0.1: vsftpd (Unix LIST
//! lines) and pure-ftpd (MLSD), each test with its own server instance on free ports.

mod ftp_server;
mod util;

use std::time::Duration;

use ftp_server::{PASSWORD, Server};
use util::*;

const LONG: Duration = Duration::from_secs(60);

fn vsftpd_ok() -> bool {
    ftp_server::available(ftp_server::vsftpd_path(), "vsftpd")
}

/// A deployment whose ferry processes get the FTP password from the environment.
fn run_once(d: &Deployment) -> std::process::Output {
    d.cmd(&["run", "--once"])
        .env("FTP_PW", PASSWORD)
        .output()
        .unwrap()
}

fn daemon(d: &Deployment) -> Daemon {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let n = std::fs::read_dir(d.path("var")).unwrap().count();
    let log = std::fs::File::create(d.path(&format!("var/ferry-{n}.log"))).unwrap();
    let child = d
        .cmd(&["run"])
        .env("FTP_PW", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon { child }
}

fn source_job(url: &str, extra: &str) -> String {
    format!(
        "[source]\nftp = \"{url}\"\npassword = \"${{env:FTP_PW}}\"\nsettle = \"0s\"\npoll = \"200ms\"\n{extra}\n\n[[output]]\nfolder = \"out\"\nexists = \"unique\"\n"
    )
}

#[test]
fn pickup_with_delete_move_and_keep() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-pickup");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    let body_a = pseudo_random(100_000, 1);
    srv.put("del/a.csv", &body_a);
    srv.put("del/b.csv", b"line1\nline2\r\nline3\n");
    srv.put("mv/c.csv", b"c\n");
    srv.put("keep/k.csv", b"k1\n");
    d.job("del", &source_job(&srv.url("ftp", "del"), ""));
    d.job(
        "mv",
        &source_job(
            &srv.url("ftp", "mv"),
            "success = \"move\"\nmove_to = \"archive\"",
        )
        .replace("folder = \"out\"", "folder = \"out-mv\""),
    );
    d.job(
        "keep",
        &source_job(&srv.url("ftp", "keep"), "success = \"keep\"")
            .replace("folder = \"out\"", "folder = \"out-keep\""),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    // delete: taken byte for byte (binary mode: no CRLF rewriting), gone from the server.
    assert_eq!(d.files("out"), vec!["a.csv", "b.csv"]);
    assert_eq!(read(&d.path("out/a.csv")), body_a);
    assert_eq!(read(&d.path("out/b.csv")), b"line1\nline2\r\nline3\n");
    assert!(srv.files("del").is_empty(), "{:?}", srv.files("del"));
    // move: in the remote archive folder.
    assert_eq!(d.files("out-mv"), vec!["c.csv"]);
    // move_to is relative to the source folder (as Camel's `move`).
    assert_eq!(srv.files("mv"), vec!["archive/c.csv"]);
    // keep: still there, and not taken again by later runs while unchanged.
    assert_eq!(d.files("out-keep"), vec!["k.csv"]);
    assert_eq!(srv.files("keep"), vec!["k.csv"]);
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.files("out-keep"), vec!["k.csv"]);
    // Changed on the server: a new version, taken again.
    srv.put("keep/k.csv", b"k2 longer\n");
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.files("out-keep"), vec!["k.csv", "k_1.csv"]);
    assert_eq!(read(&d.path("out-keep/k_1.csv")), b"k2 longer\n");
    // The staging folders hold nothing once the files are processed.
    assert!(
        d.files("var/staging").is_empty(),
        "{:?}",
        d.files("var/staging")
    );
}

#[test]
fn a_file_still_being_uploaded_is_not_taken_early() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-slow");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("in");
    d.job(
        "slow",
        &source_job(&srv.url("ftp", "in"), "").replace("settle = \"0s\"", "settle = \"3s\""),
    );
    let mut ferry = daemon(&d);
    // A partner uploading slowly: the file grows in steps well inside `settle`.
    let full = pseudo_random(50_000, 7);
    let path = srv.put("in/slow.bin", &full[..10_000]);
    for i in 2..=5 {
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(&path, &full[..i * 10_000]).unwrap();
    }
    wait_for("the file is taken", LONG, || {
        d.files("out").len() == 1 && srv.files("in").is_empty()
    });
    ferry.stop();
    assert_eq!(
        read(&d.path("out/slow.bin")),
        full,
        "taken only once complete"
    );
    assert_eq!(d.files("out"), vec!["slow.bin"]);
    assert!(srv.files("in").is_empty());
}

#[test]
fn a_kill_during_a_download_loses_and_duplicates_nothing() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-kill");
    // Throttled so the download is surely in progress when the kill comes.
    let srv = Server::vsftpd(&d.path("srv"), None, 4_000_000);
    let big = pseudo_random(12_000_000, 3);
    srv.put("in/big.bin", &big);
    srv.put("in/small.csv", b"s\n");
    d.job("k", &source_job(&srv.url("ftp", "in"), ""));
    let mut ferry = daemon(&d);
    let part_seen = || {
        d.files("var/staging/k")
            .iter()
            .any(|f| f.starts_with(".ferry-part-"))
    };
    wait_for("a download in progress", LONG, part_seen);
    ferry.stop_with(libc::SIGKILL);
    let mut ferry = daemon(&d);
    wait_for("both files taken", LONG, || {
        d.files("out").len() == 2 && srv.files("in").is_empty()
    });
    ferry.stop();
    assert_eq!(d.files("out"), vec!["big.bin", "small.csv"]);
    assert_eq!(sha256_hex(&read(&d.path("out/big.bin"))), sha256_hex(&big));
    assert!(
        d.files("var/staging/k").is_empty(),
        "{:?}",
        d.files("var/staging/k")
    );
    let h = d.history();
    assert_eq!(h.len(), 2, "{h:?}");
}

fn dest_job(url: &str, extra: &str) -> String {
    format!(
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nftp = \"{url}\"\npassword = \"${{env:FTP_PW}}\"\n{extra}\n"
    )
}

#[test]
fn upload_under_a_temporary_name_then_rename_with_done_file_and_new_folders() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-upload");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    let body = pseudo_random(300_000, 5);
    d.write("in/inv 1.xml", &body);
    d.write("in/two.csv", b"a\r\nb\n");
    d.job(
        "up",
        &dest_job(
            &srv.url("ftp", "inbound/deep"),
            "name = \"{date:%Y}/{name}\"\ndone_file = \"{name}.done\"",
        ),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    let year = chrono::Local::now().format("%Y").to_string();
    let mut want = vec![
        format!("{year}/inv 1.xml"),
        format!("{year}/inv 1.xml.done"),
        format!("{year}/two.csv"),
        format!("{year}/two.csv.done"),
    ];
    want.sort();
    assert_eq!(srv.files("inbound/deep"), want);
    assert_eq!(
        read(&srv.root.join(format!("inbound/deep/{year}/inv 1.xml"))),
        body
    );
    assert_eq!(
        read(&srv.root.join(format!("inbound/deep/{year}/two.csv"))),
        b"a\r\nb\n"
    );
    // The partner never sees a partial file under its final name: it was stored under a
    // hidden temporary name and renamed.
    let log = srv.log();
    assert!(
        log.contains("STOR") && log.contains(".two.csv.ferry-part"),
        "{log}"
    );
    assert!(log.contains("RNTO"), "{log}");
    assert!(
        d.files("var/outbox").is_empty(),
        "{:?}",
        d.files("var/outbox")
    );
    assert!(d.files("in").is_empty());
}

#[test]
fn a_server_stopped_mid_batch_gets_every_file_exactly_once() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-outage");
    // Throttled so the outage surely falls in the middle of the batch.
    let mut srv = Server::vsftpd(&d.path("srv"), None, 200_000);
    srv.mkdir("inbound");
    let n = 30;
    for i in 0..n {
        d.write(
            &format!("in/f{i:02}.bin"),
            pseudo_random(100_000, i as u64 + 1),
        );
    }
    d.job(
        "out",
        &dest_job(
            &srv.url("ftp", "inbound"),
            "exists = \"unique\"\nconnections = 3",
        ),
    );
    let mut ferry = daemon(&d);
    wait_for("some files delivered", LONG, || {
        !srv.files("inbound").is_empty()
    });
    srv.stop();
    wait_for("the failure noticed", LONG, || {
        d.logs().contains("Delivery failed")
    });
    assert!(
        srv.files("inbound")
            .iter()
            .filter(|f| !f.starts_with('.'))
            .count()
            < n,
        "the outage came after the batch"
    );
    srv.start();
    wait_for("every file delivered", Duration::from_secs(120), || {
        d.files("var/outbox").is_empty()
    });
    ferry.stop();
    let got: Vec<String> = srv
        .files("inbound")
        .into_iter()
        .filter(|f| !f.starts_with('.'))
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("f{i:02}.bin")).collect();
    assert_eq!(
        got, want,
        "each exactly once (a duplicate would be f01_1.bin)"
    );
    for i in 0..n {
        assert_eq!(
            read(&srv.root.join(format!("inbound/f{i:02}.bin"))),
            pseudo_random(100_000, i as u64 + 1)
        );
    }
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_file_is_kept() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-badpw");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    srv.put("in/a.csv", b"a\n");
    srv.mkdir("inbound");
    d.job("src", &source_job(&srv.url("ftp", "in"), ""));
    d.write("local/b.csv", b"b\n");
    d.job(
        "dst",
        &dest_job(&srv.url("ftp", "inbound"), "").replace("folder = \"in\"", "folder = \"local\""),
    );
    let secret = "wrong-Pa55-word-XYZ";
    let o = d
        .cmd(&["run", "--once"])
        .env("FTP_PW", secret)
        .env("FERRY_DELIVERY_WAIT", "2s")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(err.contains("login refused for user ferryftp"), "{err}");
    assert!(err.contains("530"), "{err}");
    assert!(!err.contains(secret), "the password leaked: {err}");
    assert!(!stdout(&o).contains(secret));
    // Nothing lost: the source file stays on the server, the output waits in the outbox.
    assert_eq!(srv.files("in"), vec!["a.csv"]);
    assert_eq!(d.files("var/outbox/dst/1"), vec!["b.csv"]);
    assert!(srv.files("inbound").is_empty());
    let st = d.run(&["status"]);
    assert!(!stdout(&st).contains(secret) && !stderr(&st).contains(secret));
    // The waiting delivery and why it waits are visible.
    let text = stdout(&st);
    let line = text
        .lines()
        .find(|l| l.starts_with("dst") && l.contains("output 1"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("1 pending") && line.contains("login refused"),
        "{text}"
    );
    // With the right password, the next run delivers it.
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(srv.files("inbound"), vec!["b.csv"]);
    assert!(srv.files("in").is_empty());
}

#[test]
fn ftps_is_verified_and_a_certificate_that_does_not_match_is_refused() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftps");
    let tls = d.path("tls");
    ftp_server::make_tls(&tls, "DNS:localhost,IP:127.0.0.1");
    let srv = Server::vsftpd(&d.path("srv"), Some(&tls), 0);
    let body = pseudo_random(70_000, 9);
    srv.put("in/a.bin", &body);
    srv.mkdir("inbound");
    let ca = tls.join("ca.pem").display().to_string();
    d.job(
        "s",
        &source_job(&srv.url("ftps", "in"), &format!("ca_file = \"{ca}\"")),
    );
    d.write("local/b.csv", b"b\n");
    d.job(
        "u",
        &dest_job(&srv.url("ftps", "inbound"), &format!("ca_file = \"{ca}\""))
            .replace("folder = \"in\"", "folder = \"local\""),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&d.path("out/a.bin")), body);
    assert_eq!(srv.files("inbound"), vec!["b.csv"]);

    // A certificate for another name, from the same trusted CA: refused.
    let d2 = Deployment::new("ftps-mismatch");
    let tls2 = d2.path("tls");
    ftp_server::make_tls(&tls2, "DNS:other.example.test");
    let srv2 = Server::vsftpd(&d2.path("srv"), Some(&tls2), 0);
    srv2.put("in/a.bin", b"x");
    let ca2 = tls2.join("ca.pem").display().to_string();
    d2.job(
        "s",
        &source_job(&srv2.url("ftps", "in"), &format!("ca_file = \"{ca2}\"")),
    );
    let o = run_once(&d2);
    let err = stderr(&o);
    assert!(err.contains("TLS refused"), "{err}");
    assert!(d2.files("out").is_empty());
    assert_eq!(srv2.files("in"), vec!["a.bin"]);
    // Not trusted at all (no ca_file): refused too.
    d2.job("s", &source_job(&srv2.url("ftps", "in"), ""));
    let o = run_once(&d2);
    assert!(stderr(&o).contains("TLS refused"), "{}", stderr(&o));
    // Verification off: works, and says so at every start.
    d2.job(
        "s",
        &source_job(&srv2.url("ftps", "in"), "tls_verify = false"),
    );
    let o = run_once(&d2);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("verification is OFF"), "{}", stderr(&o));
    assert_eq!(d2.files("out"), vec!["a.bin"]);
}

#[test]
fn names_with_spaces_and_unicode() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-names");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    let names = [
        "order 1.csv",
        "Straße ü.csv",
        "日本 語.txt",
        "a  two  spaces.csv",
    ];
    for (i, n) in names.iter().enumerate() {
        srv.put(&format!("in/{n}"), format!("{i}\n").as_bytes());
    }
    srv.mkdir("inbound");
    d.job(
        "s",
        &source_job(&srv.url("ftp", "in"), "").replace(
            "[[output]]\nfolder = \"out\"\nexists = \"unique\"",
            &format!(
                "[[output]]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"",
                srv.url("ftp", "inbound")
            ),
        ),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(srv.files("inbound"), want);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            read(&srv.root.join(format!("inbound/{n}"))),
            format!("{i}\n").as_bytes()
        );
    }
    assert!(srv.files("in").is_empty());
}

#[test]
fn check_warns_about_a_literal_password_and_loads_the_example() {
    let d = Deployment::new("ftp-check");
    d.job(
        "lit",
        "[source]\nftp = \"ftp://u@127.0.0.1:1/in\"\npassword = \"hunter2\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    let o = d.run(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning:") && err.contains("literal password"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !stdout(&o).contains("hunter2"));
    // The documented example job.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/ftp");
    let o = std::process::Command::new(BIN)
        .args(["check", "--jobs"])
        .arg(example.join("jobs"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

fn pure_ftpd_ok() -> bool {
    ftp_server::available(ftp_server::pure_ftpd_path(), "pure-ftpd")
}

/// pure-ftpd lists with MLSD (exact sizes and times) where vsftpd has only LIST: the same
/// pickup and delivery work on both. pure-ftpd logs the account in to its home folder,
/// which is changed for the server's lifetime: one test holds every pure-ftpd check.
#[test]
fn pure_ftpd_with_mlsd_pickup_delivery_and_ftps() {
    if !pure_ftpd_ok() {
        return;
    }
    let d = Deployment::new("pure-ftpd");
    let tls = d.path("tls");
    ftp_server::make_tls(&tls, "DNS:localhost,IP:127.0.0.1");
    let srv = Server::pure_ftpd(&d.path("srv"), Some(&tls));
    let body = pseudo_random(250_000, 11);
    srv.put("in/a b ü.bin", &body);
    srv.put("in/sub/deep.csv", b"deep\n");
    srv.put("in/skip.tmp", b"partial");
    srv.mkdir("inbound");
    let ca = tls.join("ca.pem").display().to_string();
    d.job(
        "p",
        &source_job(
            &srv.url("ftps", "in"),
            &format!(
                "ca_file = \"{ca}\"\nrecursive = true\nsuccess = \"move\"\nmove_to = \"done\""
            ),
        ),
    );
    d.write("local/up load.csv", b"u\r\n");
    d.job(
        "u",
        &dest_job(
            &srv.url("ftps", "inbound/new"),
            &format!("ca_file = \"{ca}\"\npassive = true"),
        )
        .replace("folder = \"in\"", "folder = \"local\""),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}\n{}", stderr(&o), srv.log());
    assert_eq!(d.files("out"), vec!["a b ü.bin", "deep.csv"]);
    assert_eq!(read(&d.path("out/a b ü.bin")), body);
    assert_eq!(
        srv.files("in"),
        vec!["done/a b ü.bin", "done/sub/deep.csv", "skip.tmp"]
    );
    assert_eq!(srv.files("inbound/new"), vec!["up load.csv"]);
    assert_eq!(read(&srv.root.join("inbound/new/up load.csv")), b"u\r\n");
    // Moved originals are never listed as input again.
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.files("out").len(), 2);
}

/// The inode of a file (two names of one file have the same).
fn ino(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn an_original_is_linked_into_the_outbox_and_a_same_looking_resend_is_sent_again() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-link");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("inbound");
    let body = pseudo_random(200_000, 11);
    // A producer that keeps file times (cp -p, rsync -t, unzip): a re-send looks the same.
    let when = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let drop_file = |rel: &str| {
        let p = d.write(rel, &body);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    drop_file("in/a.dat");
    drop_file("keep/k.dat");
    d.job("up", &dest_job(&srv.url("ftp", "inbound"), ""));
    d.job(
        "kept",
        &dest_job(&srv.url("ftp", "inbound/k"), "")
            .replace("folder = \"in\"", "folder = \"keep\"")
            .replace(
                "poll = \"200ms\"",
                "poll = \"200ms\"\n\n[after]\nsuccess = \"keep\"",
            ),
    );
    // First the server refuses the login: the files wait in the outboxes.
    let o = d
        .cmd(&["run", "--once"])
        .env("FTP_PW", "wrong")
        .env("FERRY_DELIVERY_WAIT", "1s")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("login refused"), "{}", stderr(&o));
    let archived = d.files("var/archive/up");
    assert_eq!(archived, vec!["a.dat"]);
    let outbox = d.path("var/outbox/up/1/a.dat");
    // The original was archived by ferry: the outbox copy is the same file (a hard link),
    // not a second copy of the bytes.
    assert_eq!(ino(&outbox), ino(&d.path("var/archive/up/a.dat")));
    assert_eq!(read(&outbox), body);
    // With `success = "keep"` the producer may rewrite the original in place: copied.
    assert_ne!(
        ino(&d.path("var/outbox/kept/1/k.dat")),
        ino(&d.path("keep/k.dat"))
    );
    // The server accepts the login again: both are delivered.
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(srv.files("inbound"), vec!["a.dat", "k/k.dat"]);
    assert_eq!(read(&srv.root.join("inbound/a.dat")), body);
    // The partner takes the file; the producer sends the very same file again (same name,
    // size and time): it is a new file and is delivered again, not taken for the first.
    std::fs::remove_file(srv.root.join("inbound/a.dat")).unwrap();
    drop_file("in/a.dat");
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(srv.files("inbound"), vec!["a.dat", "k/k.dat"]);
    assert!(d.files("var/outbox/up").is_empty());
    assert_eq!(d.files("var/archive/up").len(), 2);
}

#[test]
fn parallel_downloads_and_overlapped_disposal_take_every_file_once() {
    if !vsftpd_ok() {
        return;
    }
    let d = Deployment::new("ftp-parallel");
    let srv = Server::vsftpd(&d.path("srv"), None, 0);
    let mut want = Vec::new();
    for i in 0..150 {
        let name = format!("p{i:03}.dat");
        srv.put(&format!("par/{name}"), &pseudo_random(3000 + i, i as u64));
        want.push(name);
    }
    for i in 0..20 {
        srv.put(
            &format!("one/o{i:02}.dat"),
            &pseudo_random(100, 1000 + i as u64),
        );
    }
    // Four connections (the default): three download while one lists and deletes.
    d.job("par", &source_job(&srv.url("ftp", "par"), ""));
    d.job(
        "one",
        &source_job(&srv.url("ftp", "one"), "connections = 1")
            .replace("folder = \"out\"", "folder = \"out1\""),
    );
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    // Every file once, with its bytes; every original deleted by the end of the run.
    assert_eq!(d.files("out"), want);
    for (i, name) in want.iter().enumerate() {
        assert_eq!(
            read(&d.path(&format!("out/{name}"))),
            pseudo_random(3000 + i, i as u64)
        );
    }
    assert_eq!(d.files("out1").len(), 20);
    assert!(srv.files("par").is_empty(), "{:?}", srv.files("par"));
    assert!(srv.files("one").is_empty(), "{:?}", srv.files("one"));
    assert!(d.files("var/staging").is_empty());
    // Several download connections were used.
    let log = srv.log();
    let logins = log.matches("OK LOGIN").count();
    assert!(logins >= 4, "{logins} logins:\n{log}");
    // A second run finds nothing to take.
    let o = run_once(&d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.files("out").len(), 150);
}
