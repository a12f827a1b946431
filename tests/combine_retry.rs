//! What is left of issue 14 around combined runs and the retry queue: a combined run whose
//! folder output fails for a reason that may pass is retried whole after its `[retry]`
//! backoff (not at the next slot), survives a restart, and is given up on after `for`;
//! `run --once` leaves a file that never settles; a combined FTP output; `ferry retry`
//! of given-up outbox files; a requeued file of a scheduled job waits for its run.
//!
//! The schedule's time is the clock the tests control (`FERRY_TEST_CLOCK`); the backoff is
//! real time, with `every` short (as in tests/retry.rs).

mod util;

use std::path::PathBuf;
use std::process::Output;

use util::{
    Daemon, Deployment, Share, WAIT, ferry, read, set_clock, start_clocked, stderr, stdout,
    wait_for,
};

/// `ferry run` with the test clock (and `TZ=UTC`: `{date}` is in the machine's zone).
fn start(d: &Deployment) -> Daemon {
    start_clocked(d, &[("TZ", "UTC")])
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap()
}

fn queued(d: &Deployment, job: &str) -> usize {
    json(&ferry(d, &["status", "--json"]))["retry"]["queued"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["job"] == job)
        .count()
}

/// `ferry runs --json`, newest first.
fn runs(d: &Deployment) -> Vec<serde_json::Value> {
    let o = ferry(d, &["runs", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn nightly(retry_for: &str) -> String {
    format!(
        r#"[source]
folder = "in"
settle = "0s"
poll = "100ms"
schedule = "0 23 * * *"
timezone = "UTC"

[input]
format = "csv"

[[output]]
folder = "mnt/out"
name = "night_{{date:%Y%m%d}}.csv"
format = "csv"
combine = true

[retry]
every = "200ms"
max = "500ms"
for = "{retry_for}"
"#
    )
}

/// A nightly combined run whose share is read-only at 23:00: its originals are queued
/// (`ferry runs` says `queued`, `ferry status` lists them and the paused share), the run is
/// retried after the backoff while the clock stays at 23:00 (no next slot), through a
/// restart; a file dropped after the failure is not added to the retry. Back: the night's
/// file holds each record of the run exactly once, named after the failed run's slot.
#[test]
fn issue_14_a_combined_run_whose_share_fails_is_retried_after_backoff_not_at_the_next_slot() {
    let d = Deployment::new("combine-retry");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("nightly", &nightly("forever"));
    d.mkdir("in");
    set_clock(&d, "2027-01-14T22:59:00Z");
    d.write("in/a.csv", "id,amount\n1,10\n2,5\n");
    d.write("in/b.csv", "id,amount\n3,1\n");
    share.remount("ro");
    let mut daemon = start(&d);
    d.wait_log("Scheduled job", 1);
    set_clock(&d, "2027-01-14T23:00:00Z");
    wait_for("the run's originals queued", WAIT, || {
        queued(&d, "nightly") == 2
    });
    let r = runs(&d);
    assert_eq!(r.last().unwrap()["result"], "queued", "{r:?}");
    wait_for(
        "ferry status to say the run waits for a retry",
        WAIT,
        || stdout(&ferry(&d, &["status"])).contains("files of it wait in the retry queue"),
    );
    // Tried again after the backoff, at 23:00 still: retry runs, not the next slot's.
    d.wait_log("Destination paused", 3);
    wait_for("retry runs", WAIT, || {
        runs(&d).iter().filter(|r| r["why"] == "retry").count() >= 2
    });
    d.drop_file("in/late.csv", "id,amount\n9,9\n");
    let st = json(&ferry(&d, &["status", "--json"]));
    assert_eq!(st["retry"]["paused"].as_array().unwrap().len(), 1, "{st}");
    assert!(
        d.files("var/error").is_empty(),
        "{:?}",
        d.files("var/error")
    );
    daemon.stop();

    // Stopped: the queue is in the journal.
    assert_eq!(queued(&d, "nightly"), 2);
    let o = ferry(&d, &["status"]);
    assert!(
        stdout(&o).contains("RETRY QUEUE (2 file(s))"),
        "{}",
        stdout(&o)
    );
    let mut daemon = start(&d);
    d.wait_log("Files wait in the retry queue.", 1);
    share.remount("rw");
    wait_for("the night's file", WAIT, || {
        d.files("mnt/out") == ["night_20270114.csv"]
    });
    wait_for("the originals archived", WAIT, || {
        d.files("var/archive/nightly") == ["a.csv", "b.csv"]
    });
    wait_for("the queue empty", WAIT, || queued(&d, "nightly") == 0);
    let st = json(&ferry(&d, &["status", "--json"]));
    assert!(st["retry"]["paused"].as_array().unwrap().is_empty(), "{st}");
    daemon.stop();
    let text = String::from_utf8(read(&d.path("mnt/out/night_20270114.csv"))).unwrap();
    assert_eq!(text, "id,amount\n1,10\n2,5\n3,1\n", "every record once");
    // The late file waits for the next slot; nothing failed.
    assert_eq!(d.files("in"), ["late.csv"]);
    assert!(d.files("var/error").is_empty());
    let r = runs(&d);
    let last = &r[0];
    assert_eq!(
        (&last["why"], &last["result"]),
        (&"retry".into(), &"ok".into()),
        "{r:?}"
    );
    assert_eq!(last["delivered"], 2, "{r:?}");
    for f in ["a.csv", "b.csv"] {
        let h: Vec<_> = d
            .history()
            .into_iter()
            .filter(|x| x["path"].as_str().unwrap().ends_with(f))
            .collect();
        assert_eq!(h.last().unwrap()["state"], "done", "{h:?}");
        assert!(h.iter().any(|x| x["state"] == "queued"), "{h:?}");
    }
}

/// Past `[retry] for`, the run's originals go to the error folder with their reports,
/// as single files do.
#[test]
fn issue_14_a_combined_run_is_given_up_on_after_retry_for() {
    let d = Deployment::new("combine-giveup");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("nightly", &nightly("1s"));
    d.mkdir("in");
    set_clock(&d, "2027-01-14T22:59:00Z");
    d.write("in/a.csv", "id,amount\n1,10\n");
    d.write("in/b.csv", "id,amount\n3,1\n");
    share.remount("ro");
    let mut daemon = start(&d);
    d.wait_log("Scheduled job", 1);
    set_clock(&d, "2027-01-14T23:00:00Z");
    wait_for("the originals in the error folder", WAIT, || {
        d.files("var/error/nightly") == ["a.csv", "a.csv.error.txt", "b.csv", "b.csv.error.txt"]
    });
    daemon.stop();
    let report = std::fs::read_to_string(d.path("var/error/nightly/a.csv.error.txt")).unwrap();
    assert!(report.contains("gave up after"), "{report}");
    assert!(report.contains("Read-only file system"), "{report}");
    assert!(d.files("in").is_empty());
    assert!(d.files("mnt/out").is_empty());
    assert_eq!(queued(&d, "nightly"), 0);
    assert_eq!(runs(&d)[0]["result"], "failed");
}

/// Appends a line to `path` every 100 ms until dropped: a file that never settles.
struct Grower {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Grower {
    fn start(path: PathBuf, line: &'static str) -> Grower {
        use std::io::Write;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(line.as_bytes()).unwrap();
                drop(f);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Grower {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Grower {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `ferry run --once` to its end (killed, and the test failed, after 2 minutes).
fn run_once(d: &Deployment) -> Output {
    let child = d
        .clocked(&["run", "--once"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("ferry run --once did not end with a file that never settles");
        }
    }
}

/// A file that a writer keeps growing does not hold `run --once`: after its settle time
/// and the grace it is left for the next run (said in the log), the other files are
/// delivered, and the run ends; for a plain job and for a combining one alike.
#[test]
fn issue_14_run_once_leaves_a_file_that_never_settles_for_the_next_run() {
    let d = Deployment::new("once-bound");
    d.job(
        "plain",
        "[source]\nfolder = \"in/plain\"\nsettle = \"1s\"\n\n[[output]]\nfolder = \"out/plain\"\n",
    );
    d.job(
        "nightly",
        r#"[source]
folder = "in/nightly"
settle = "1s"
schedule = "0 23 * * *"
timezone = "UTC"

[input]
format = "csv"

[[output]]
folder = "out/nightly"
name = "night.csv"
format = "csv"
combine = true
"#,
    );
    set_clock(&d, "2027-01-14T12:00:00Z");
    d.write("in/plain/done.txt", "done\n");
    d.write("in/plain/growing.txt", "x\n");
    d.write("in/nightly/a.csv", "id\n1\n");
    d.write("in/nightly/growing.csv", "id\n");
    let _g1 = Grower::start(d.path("in/plain/growing.txt"), "x\n");
    let _g2 = Grower::start(d.path("in/nightly/growing.csv"), "2\n");
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out/plain"), ["done.txt"]);
    assert_eq!(
        String::from_utf8(read(&d.path("out/nightly/night.csv"))).unwrap(),
        "id\n1\n",
        "the combined run without the growing file"
    );
    assert_eq!(d.files("in/plain"), ["growing.txt"]);
    assert_eq!(d.files("in/nightly"), ["growing.csv"]);
    assert!(d.files("var/error").is_empty());
    let said = stderr(&o)
        .matches(
            "Still not ready after its settle time and the --once grace; left for the next run.",
        )
        .count();
    assert_eq!(said, 2, "{}", stderr(&o));
}

/// The `schedules` entry of `ferry status --json` for `job`.
fn waiting(d: &Deployment, job: &str) -> serde_json::Value {
    json(&ferry(d, &["status", "--json"]))["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["job"] == job)
        .map(|s| s["waiting"].clone())
        .unwrap_or_default()
}

/// A failed file of a scheduled job put back by `ferry retry` while the daemon runs is
/// not taken at once: it waits for the job's next run, as any new file does.
#[test]
fn issue_14_a_file_put_back_by_ferry_retry_waits_for_the_next_run_of_its_scheduled_job() {
    let d = Deployment::new("retry-gate");
    d.job(
        "sched",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\nschedule = \"0 23 * * *\"\ntimezone = \"UTC\"\n\n[[output]]\nfolder = \"out\"\nexists = \"fail\"\n",
    );
    d.write("out/a.csv", "someone else's\n");
    d.write("in/a.csv", "ours\n");
    set_clock(&d, "2027-01-14T22:59:00Z");
    let mut daemon = start(&d);
    d.wait_log("Scheduled job", 1);
    set_clock(&d, "2027-01-14T23:00:00Z");
    wait_for("the error folder", WAIT, || {
        d.files("var/error/sched") == ["a.csv", "a.csv.error.txt"]
    });
    wait_for("the failure on record", WAIT, || {
        d.history().iter().any(|f| f["state"] == "failed")
    });
    std::fs::remove_file(d.path("out/a.csv")).unwrap();
    let o = ferry(&d, &["retry", "--job", "sched"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("a.csv"), "{}", stdout(&o));
    wait_for("the file waiting for the run", WAIT, || {
        waiting(&d, "sched") == 1
    });
    assert!(d.files("out").is_empty(), "taken before its run");
    assert_eq!(d.files("in"), ["a.csv"]);
    set_clock(&d, "2027-01-15T23:00:00Z");
    d.wait_exists("out/a.csv");
    wait_for("archived", WAIT, || {
        d.files("var/archive/sched") == ["a.csv"]
    });
    daemon.stop();
    assert_eq!(read(&d.path("out/a.csv")), b"ours\n");
}

mod ftp_server;

/// `ferry run` with the FTP password in its environment.
fn start_ftp(d: &Deployment) -> Daemon {
    start_clocked(d, &[("FTP_PW", ftp_server::PASSWORD)])
}

/// Outbox files given up on after `[retry] for` (the FTP server was down) are put back by
/// `ferry retry FILE-ID` (the original's record) and `--all-failed`, and each reaches the
/// restarted server exactly once.
#[test]
fn issue_14_ferry_retry_puts_given_up_ftp_outbox_files_back_and_they_are_delivered_once() {
    if !ftp_server::available(ftp_server::vsftpd_path(), "vsftpd") {
        return;
    }
    let d = Deployment::new("retry-outbox");
    let mut srv = ftp_server::Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("inbound");
    d.job(
        "up",
        &format!(
            "[source]\nfolder = \"in/up\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n\
             [[output]]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\n\n\
             [retry]\nevery = \"200ms\"\nmax = \"500ms\"\nfor = \"2s\"\n",
            srv.url("ftp", "inbound")
        ),
    );
    d.mkdir("in/up");
    set_clock(&d, "2027-01-14T12:00:00Z");
    srv.stop();
    let mut daemon = start_ftp(&d);
    d.wait_log("Watching", 1);
    d.drop_file("in/up/a.csv", "a\n");
    d.drop_file("in/up/b.csv", "b\n");
    wait_for("both given up on", WAIT, || {
        d.files("var/error/up") == ["a.csv", "a.csv.error.txt", "b.csv", "b.csv.error.txt"]
    });
    let a = d
        .history()
        .into_iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("a.csv"))
        .unwrap();
    wait_for("the give-up on record", WAIT, || {
        d.history().iter().any(|f| {
            f["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["state"] == "outbox-failed")
        })
    });
    srv.start();
    let o = ferry(&d, &["retry", &a["id"].as_i64().unwrap().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("a.csv"), "{}", stdout(&o));
    wait_for("a.csv delivered", WAIT, || {
        srv.files("inbound") == ["a.csv"]
    });
    assert_eq!(d.files("var/error/up"), ["b.csv", "b.csv.error.txt"]);
    let o = ferry(&d, &["retry", "--all-failed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("b.csv"), "{}", stdout(&o));
    wait_for("b.csv delivered", WAIT, || {
        srv.files("inbound") == ["a.csv", "b.csv"]
    });
    wait_for("the outbox empty", WAIT, || {
        d.files("var/outbox/up").is_empty()
    });
    daemon.stop();
    assert_eq!(
        std::fs::read(srv.root.join("inbound/a.csv")).unwrap(),
        b"a\n"
    );
    assert_eq!(
        std::fs::read(srv.root.join("inbound/b.csv")).unwrap(),
        b"b\n"
    );
    assert!(d.files("var/error/up").is_empty());
    // Nothing is put back twice.
    let o = ferry(&d, &["retry", "--all-failed"]);
    assert!(stdout(&o).contains("no failed files"), "{}", stdout(&o));
    let h = d
        .history()
        .into_iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("a.csv"))
        .unwrap();
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "outbox-retried"),
        "{h}"
    );
}

/// A combined run with an FTP output: the night's one file goes through the outbox and
/// reaches the server once, with every record of the run.
#[test]
fn issue_14_a_combined_ftp_output_goes_through_the_outbox() {
    if !ftp_server::available(ftp_server::vsftpd_path(), "vsftpd") {
        return;
    }
    let d = Deployment::new("combine-ftp");
    let srv = ftp_server::Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("inbound");
    d.job(
        "nightly",
        &format!(
            r#"[source]
folder = "in"
settle = "0s"
schedule = "0 23 * * *"
timezone = "UTC"

[input]
format = "csv"

[[output]]
ftp = "{}"
password = "${{env:FTP_PW}}"
name = "night_{{seq}}.csv"
format = "csv"
combine = true
"#,
            srv.url("ftp", "inbound")
        ),
    );
    set_clock(&d, "2027-01-14T12:00:00Z");
    d.write("in/a.csv", "id,amount\n1,10\n");
    d.write("in/b.csv", "id,amount\n2,20\n3,30\n");
    let o = d
        .clocked(&["run", "--once"])
        .env("FTP_PW", ftp_server::PASSWORD)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(srv.files("inbound"), ["night_1.csv"]);
    assert_eq!(
        std::fs::read_to_string(srv.root.join("inbound/night_1.csv")).unwrap(),
        "id,amount\n1,10\n2,20\n3,30\n"
    );
    assert!(d.files("var/outbox/nightly").is_empty());
    assert_eq!(d.files("var/archive/nightly"), ["a.csv", "b.csv"]);
}

const ONCE_NIGHTLY: &str = r#"[source]
folder = "in"
settle = "0s"
schedule = "0 23 * * *"
timezone = "UTC"

[input]
format = "csv"

[[output]]
folder = "out"
name = "night.csv"
format = "csv"
combine = true
exists = "fail"

[retry]
every = "100ms"
max = "100ms"
for = "forever"
"#;

/// `ferry run --once` with the debug builds' hook that disturbs the run's first output
/// between its plan and its rename.
fn run_once_disturbed(d: &Deployment, what: &str) -> Output {
    d.clocked(&["run", "--once"])
        .env("FERRY_TEST_BEFORE_RENAME", what)
        .output()
        .unwrap()
}

/// The output's name taken between the plan and the rename (`exists = "fail"`): the run
/// is withdrawn whole (no plan left for recovery to finish, no temporary left), and every
/// original goes to the error folder with the reason.
#[test]
fn issue_14_a_run_whose_name_is_taken_before_the_rename_is_withdrawn() {
    let d = Deployment::new("combine-withdraw");
    d.job("nightly", ONCE_NIGHTLY);
    set_clock(&d, "2027-01-14T12:00:00Z");
    d.write("in/a.csv", "id\n1\n");
    d.write("in/b.csv", "id\n2\n");
    let o = run_once_disturbed(&d, "take");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        d.files("out"),
        ["night.csv"],
        "only the other writer's file"
    );
    assert_eq!(read(&d.path("out/night.csv")), b"taken\n");
    assert_eq!(
        d.files("var/error/nightly"),
        ["a.csv", "a.csv.error.txt", "b.csv", "b.csv.error.txt"]
    );
    let report = std::fs::read_to_string(d.path("var/error/nightly/b.csv.error.txt")).unwrap();
    assert!(
        report.contains("cannot commit the run's output 1"),
        "{report}"
    );
    assert!(d.files("in").is_empty());
    // Nothing left planned: a start finds nothing to recover.
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["night.csv"]);
    assert_eq!(read(&d.path("out/night.csv")), b"taken\n");
}

/// Waits until no destination of the journal is paused any more.
fn wait_pause_over(d: &Deployment) {
    wait_for("the pause over", WAIT, || {
        let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
        let until: i64 = c
            .query_row(
                "SELECT COALESCE(MAX(until_ms), 0) FROM retry_paused",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        until < now
    });
}

/// A rename that fails for a reason that may pass (its temporary gone, as on a share that
/// was remounted): the run is withdrawn and queued; the next `run --once` after the
/// backoff retries it and writes the night's file once.
#[test]
fn issue_14_a_run_withdrawn_for_a_reason_that_may_pass_is_queued_and_retried() {
    let d = Deployment::new("combine-withdraw-retry");
    d.job("nightly", ONCE_NIGHTLY);
    set_clock(&d, "2027-01-14T12:00:00Z");
    d.write("in/a.csv", "id\n1\n");
    d.write("in/b.csv", "id\n2\n");
    let o = run_once_disturbed(&d, "lose-temp");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.files("out").is_empty(), "{:?}", d.files("out"));
    assert_eq!(queued(&d, "nightly"), 2);
    assert_eq!(d.files("in"), ["a.csv", "b.csv"]);
    wait_pause_over(&d);
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["night.csv"]);
    assert_eq!(read(&d.path("out/night.csv")), b"id\n1\n2\n");
    assert_eq!(d.files("var/archive/nightly"), ["a.csv", "b.csv"]);
    assert_eq!(queued(&d, "nightly"), 0);
}
