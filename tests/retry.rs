//! The retry queue (issue 14): a folder output on a share that goes away (a tmpfs remounted
//! read-only) and comes back; `[retry] for` running out; restarts; `ferry retry`.
//!
//! Backoff timing itself is tested with a clock the tests control
//! (`runtime::retry::holds`, `protocol::backoff`); here `every` is short so that nothing
//! sleeps long.

mod util;

use util::{Daemon, Deployment, Share, WAIT, stderr, stdout, wait_for};

fn status_json(d: &Deployment) -> serde_json::Value {
    let o = d.run(&["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn queued(d: &Deployment, job: &str) -> usize {
    status_json(d)["retry"]["queued"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["job"] == job)
        .count()
}

/// The history records of the file whose path ends with `name`, oldest first.
fn attempts(d: &Deployment, name: &str) -> Vec<serde_json::Value> {
    d.history()
        .into_iter()
        .filter(|f| f["path"].as_str().unwrap().ends_with(name))
        .collect()
}

fn share_job(for_: &str, exists: &str) -> String {
    format!(
        "[source]\nfolder = \"in/share\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n\
         [[output]]\nfolder = \"out/local\"\n\n\
         [[output]]\nfolder = \"mnt/out\"\nexists = \"{exists}\"\n\n\
         [retry]\nevery = \"200ms\"\nmax = \"1s\"\nfor = \"{for_}\"\n"
    )
}

const LOCAL_JOB: &str = "[source]\nfolder = \"in/local\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"out/other\"\n";

#[test]
fn issue_14_a_share_that_goes_read_only_and_comes_back_gets_every_file_exactly_once() {
    let d = Deployment::new("retry-outage");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("share", &share_job("forever", "fail"));
    d.job("local", LOCAL_JOB);
    d.mkdir("in/share");
    d.mkdir("in/local");
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("Watching", 1);

    share.remount("ro");
    let names: Vec<String> = (0..6).map(|i| format!("order-{i}.csv")).collect();
    for n in &names {
        d.drop_file(&format!("in/share/{n}"), format!("id\n{n}\n"));
    }
    wait_for("6 files queued", WAIT, || queued(&d, "share") == 6);
    // The other job goes on while the share is away.
    for i in 0..3 {
        d.drop_file(&format!("in/local/x{i}.csv"), "x\n");
    }
    wait_for("the other job's files", WAIT, || {
        d.files("out/other").len() == 3
    });
    // The originals wait in their source; nothing reached the share or the error folder.
    assert_eq!(d.files("in/share").len(), 6);
    assert!(d.files("mnt/out").is_empty());
    assert!(
        d.files("var/error").is_empty(),
        "{:?}",
        d.files("var/error")
    );
    let st = status_json(&d);
    let paused = st["retry"]["paused"].as_array().unwrap();
    assert_eq!(paused.len(), 1, "{st}");
    assert!(
        paused[0]["destination"]
            .as_str()
            .unwrap()
            .ends_with("mnt/out"),
        "{st}"
    );
    // A few pauses pass: still queued, still one probe per pause (not one try per file).
    d.wait_log("Destination paused", 3);

    share.remount("rw");
    wait_for("every file on the share", WAIT, || {
        d.files("mnt/out").len() == 6 && d.files("in/share").is_empty()
    });
    wait_for("the queue empty", WAIT, || queued(&d, "share") == 0);
    // Each output exactly once: the share's, and the local output the failed tries also
    // wrote temporarily.
    assert_eq!(d.files("mnt/out"), names);
    assert_eq!(d.files("out/local"), names);
    assert_eq!(d.files("var/archive/share").len(), 6);
    for n in &names {
        assert_eq!(
            std::fs::read_to_string(d.path(&format!("mnt/out/{n}"))).unwrap(),
            format!("id\n{n}\n")
        );
        let h = attempts(&d, n);
        assert_eq!(h.last().unwrap()["state"], "done", "{h:?}");
        assert!(
            h.iter().filter(|f| f["state"] == "queued").count() >= 1,
            "an earlier try is recorded: {h:?}"
        );
    }
    let st = status_json(&d);
    assert!(st["retry"]["paused"].as_array().unwrap().is_empty(), "{st}");
    daemon.stop();
}

#[test]
fn issue_14_retry_for_runs_out_into_the_error_folder_and_ferry_retry_puts_it_back() {
    let d = Deployment::new("retry-expiry");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("share", &share_job("1s", "fail"));
    d.mkdir("in/share");
    share.remount("ro");
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("Watching", 1);
    d.drop_file("in/share/late.csv", "id\n1\n");
    wait_for("the error folder", WAIT, || {
        d.files("var/error/share") == ["late.csv", "late.csv.error.txt"]
    });
    let report = std::fs::read_to_string(d.path("var/error/share/late.csv.error.txt")).unwrap();
    assert!(report.contains("gave up after"), "{report}");
    assert!(report.contains("[retry] for = \"1s\""), "{report}");
    assert!(report.contains("Read-only file system"), "{report}");
    assert!(d.files("in/share").is_empty());
    assert!(
        d.files("out/local").is_empty(),
        "no output of a failed file stays"
    );
    assert_eq!(queued(&d, "share"), 0);

    // Back, and put back while the daemon runs.
    share.remount("rw");
    let o = d.run(&["retry", "--job", "share"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("late.csv"), "{}", stdout(&o));
    d.wait_exists("mnt/out/late.csv");
    wait_for("the original archived", WAIT, || {
        d.files("var/archive/share") == ["late.csv"]
    });
    assert!(d.files("var/error/share").is_empty(), "report removed too");
    assert_eq!(d.files("out/local"), ["late.csv"]);
    wait_for("the new attempt recorded done", WAIT, || {
        attempts(&d, "late.csv").last().unwrap()["state"] == "done"
    });
    let h = attempts(&d, "late.csv");
    let states: Vec<&str> = h.iter().map(|f| f["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"queued"), "{h:?}");
    assert!(
        states.contains(&"retried"),
        "the failed attempt stays on record: {h:?}"
    );
    assert_eq!(states.last(), Some(&"done"), "{h:?}");
    let retried = h.iter().find(|f| f["state"] == "retried").unwrap();
    assert!(
        retried["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "retried"),
        "{retried}"
    );
    // Nothing left to retry.
    let o = d.run(&["retry", "--all-failed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no failed files"), "{}", stdout(&o));
    daemon.stop();
}

#[test]
fn issue_14_the_queue_survives_a_restart() {
    let d = Deployment::new("retry-restart");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("share", &share_job("forever", "fail"));
    d.mkdir("in/share");
    share.remount("ro");
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("Watching", 1);
    d.drop_file("in/share/a.csv", "id\n1\n");
    d.drop_file("in/share/b.csv", "id\n2\n");
    wait_for("2 files queued", WAIT, || queued(&d, "share") == 2);
    daemon.stop();
    // Stopped: the queue is in the journal, `ferry status` shows it with the next try.
    let st = status_json(&d);
    let q = st["retry"]["queued"].as_array().unwrap();
    assert_eq!(q.len(), 2, "{st}");
    assert!(q.iter().all(|f| f["next_attempt"].is_string()), "{st}");
    let o = d.run(&["status"]);
    assert!(
        stdout(&o).contains("RETRY QUEUE (2 file(s))"),
        "{}",
        stdout(&o)
    );

    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("Files wait in the retry queue.", 1);
    share.remount("rw");
    wait_for("both delivered", WAIT, || d.files("mnt/out").len() == 2);
    wait_for("the queue empty", WAIT, || queued(&d, "share") == 0);
    assert_eq!(d.files("mnt/out"), ["a.csv", "b.csv"]);
    assert_eq!(d.files("out/local"), ["a.csv", "b.csv"]);
    daemon.stop();
}

#[test]
fn issue_14_ferry_retry_by_id_without_a_daemon() {
    let d = Deployment::new("retry-by-id");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    // A name collision under exists = "fail" does not pass by waiting: error folder at once.
    d.write("out/a.csv", "old\n");
    d.write("in/a.csv", "new\n");
    d.write("in/sub-b.csv", "b\n");
    d.write("out/sub-b.csv", "old b\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        d.files("var/error/j"),
        [
            "a.csv",
            "a.csv.error.txt",
            "sub-b.csv",
            "sub-b.csv.error.txt"
        ]
    );
    let h = attempts(&d, "/a.csv");
    assert_eq!(h.len(), 1);
    let id = h[0]["id"].as_i64().unwrap().to_string();
    // A retry whose name is still taken in the source is refused, the file left alone.
    d.write("in/a.csv", "someone else's\n");
    let o = d.run(&["retry", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("is in the source already"),
        "{}",
        stderr(&o)
    );
    assert!(d.path("var/error/j/a.csv").exists());
    std::fs::remove_file(d.path("in/a.csv")).unwrap();

    std::fs::remove_file(d.path("out/a.csv")).unwrap();
    let o = d.run(&["retry", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("in/a.csv")).unwrap(),
        "new\n"
    );
    assert_eq!(d.files("var/error/j"), ["sub-b.csv", "sub-b.csv.error.txt"]);
    // Twice is refused: it is not failed any more.
    let o = d.run(&["retry", &id]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(d.path("out/a.csv")).unwrap(),
        "new\n"
    );
    let states: Vec<String> = attempts(&d, "/a.csv")
        .iter()
        .map(|f| f["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["retried", "done"]);

    std::fs::remove_file(d.path("out/sub-b.csv")).unwrap();
    let o = d.run(&["retry", "--all-failed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.csv", "sub-b.csv"]);
    assert!(d.files("var/error/j").is_empty());
}

mod ftp_server;

/// The FTP server stopped: the FTP destination is paused (shown by `ferry status`), a file
/// that waits longer than `[retry] for` goes to the error folder with its report, another
/// job goes on; restarted: the next file goes through and the pause is gone.
#[test]
fn issue_14_an_ftp_destination_that_is_down_is_paused_and_given_up_on_after_for() {
    if !ftp_server::available(ftp_server::vsftpd_path(), "vsftpd") {
        return;
    }
    let d = Deployment::new("retry-ftp");
    let mut srv = ftp_server::Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("inbound");
    d.job(
        "up",
        &format!(
            "[source]\nfolder = \"in/up\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n\
             [[output]]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\n\n\
             [retry]\nevery = \"200ms\"\nmax = \"500ms\"\nfor = \"3s\"\n",
            srv.url("ftp", "inbound")
        ),
    );
    d.job("local", LOCAL_JOB);
    d.mkdir("in/up");
    d.mkdir("in/local");
    srv.stop();
    std::fs::create_dir_all(d.path("var")).unwrap();
    let log = std::fs::File::create(d.path("var/ferry-0.log")).unwrap();
    let child = d
        .cmd(&["run"])
        .env("FTP_PW", ftp_server::PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    d.wait_log("Watching", 2);
    d.drop_file("in/up/a.csv", "a\n");
    wait_for("the FTP destination paused", WAIT, || {
        status_json(&d)["retry"]["paused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["job"] == "up" && p["destination"].as_str().unwrap().starts_with("ftp://"))
    });
    d.drop_file("in/local/x.csv", "x\n");
    d.wait_exists("out/other/x.csv");
    wait_for("a.csv given up on", WAIT, || {
        d.files("var/error/up") == ["a.csv", "a.csv.error.txt"]
    });
    let report = std::fs::read_to_string(d.path("var/error/up/a.csv.error.txt")).unwrap();
    assert!(
        report.contains("gave up after [retry] for = \"3s\""),
        "{report}"
    );
    assert!(!report.contains(ftp_server::PASSWORD), "{report}");
    assert!(d.files("var/outbox/up").is_empty());

    srv.start();
    d.drop_file("in/up/b.csv", "b\n");
    wait_for("b.csv delivered", WAIT, || {
        srv.files("inbound") == ["b.csv"]
    });
    wait_for("the pause lifted", WAIT, || {
        status_json(&d)["retry"]["paused"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    daemon.stop();
}

/// An output that an earlier try delivered (recorded in the queue row, as a rename that
/// failed halfway records it) is not written again: with `exists = "fail"` a second write
/// would fail the file; the try writes only the missing output.
#[test]
fn issue_14_a_retry_writes_only_the_outputs_not_delivered_before() {
    let d = Deployment::new("retry-partial");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.job("share", &share_job("forever", "fail"));
    d.mkdir("in/share");
    share.remount("ro");
    d.write("in/share/a.csv", "id\n1\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(queued(&d, "share"), 1);
    assert!(d.files("out/local").is_empty());
    // As if the earlier try had renamed output 1 into place before output 2 failed.
    d.write("out/local/a.csv", "id\n1\n");
    {
        let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
        c.execute_batch("UPDATE retry_queue SET delivered = '0'; DELETE FROM retry_paused;")
            .unwrap();
    }
    share.remount("rw");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("mnt/out"), ["a.csv"]);
    assert_eq!(d.files("out/local"), ["a.csv"]);
    assert!(
        d.files("var/error").is_empty(),
        "{:?}",
        d.files("var/error")
    );
    assert_eq!(d.files("var/archive/share"), ["a.csv"]);
    assert_eq!(queued(&d, "share"), 0);
}
