//! Review before release (issue 15): a job with `[review]` holds its outputs in the
//! pending area until an admin decides, through the CLI as an admin would: `ferry pending
//! [--json]`, `ferry pending show ID`, `ferry approve ID`, `ferry reject ID --why TEXT`.
//! Real files, a real daemon killed with SIGKILL, a real FTP server, a test clock for
//! `expires`.

mod ftp_server;
mod util;

use std::process::{Output, Stdio};

use serde_json::Value;
use util::*;

const CSV_JOB: &str = r#"[source]
folder = "in"
settle = "0s"
poll = "100ms"

[input]
format = "csv"

[[output]]
folder = "out"
format = "csv"

[[output]]
folder = "out-json"
format = "json"
name = "{stem}.json"

[review]
key = "ArticleNo"
expires = "1h"
"#;

/// A ferry command with the test clock (when the test wrote one) and its output.
fn ferry(d: &Deployment, args: &[&str]) -> Output {
    let mut c = d.cmd(args);
    if d.path("clock").exists() {
        c.env("FERRY_TEST_CLOCK", d.path("clock"));
    }
    c.output().unwrap()
}

fn run_once(d: &Deployment) -> Output {
    let o = ferry(d, &["run", "--once"]);
    assert!(o.status.success(), "run --once: {}", stderr(&o));
    o
}

/// `ferry pending --json`.
fn pending(d: &Deployment) -> Vec<Value> {
    let o = ferry(d, &["pending", "--json"]);
    assert!(o.status.success(), "pending: {}", stderr(&o));
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn show_json(d: &Deployment, id: i64) -> Value {
    let o = ferry(d, &["pending", "show", &id.to_string(), "--json"]);
    assert!(o.status.success(), "pending show: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn me() -> String {
    let o = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn events(d: &Deployment, id: i64) -> Vec<(String, String)> {
    let h = d.history();
    let f = h
        .iter()
        .find(|f| f["id"] == id)
        .expect("the file's history");
    f["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const PRICES_1: &str = "ArticleNo,Name,Price\nA1,Bolt,1.00\nA2,Nut,0.50\nA3,Washer,0.10\n";
const PRICES_2: &str = "ArticleNo,Name,Price\nA1,Bolt,1.20\nA3,Washer,0.10\nA4,Screw,0.05\n";

#[test]
fn approve_delivers_each_output_once_and_compares_with_the_last_approved_file() {
    let d = Deployment::new("review-approve");
    d.job("prices", CSV_JOB);
    d.drop_file("in/prices-1.csv", PRICES_1);
    run_once(&d);
    // Nothing reaches the destinations before approval; the original waits too.
    assert!(d.files("out").is_empty() && d.files("out-json").is_empty());
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert!(d.files("var/archive").is_empty());
    let p = pending(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    let id = p[0]["id"].as_i64().unwrap();
    assert_eq!(p[0]["job"], "prices");
    assert_eq!(p[0]["name"], "prices-1.csv");
    assert_eq!(p[0]["records"], 3);
    assert_eq!(p[0]["state"], "waiting");
    // The first file of a job: every record is new.
    assert_eq!(p[0]["changes"]["added"], 3);
    assert_eq!(p[0]["changes"]["compared_with_approved"], false);

    let o = ferry(&d, &["approve", &id.to_string()]);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    assert_eq!(d.files("out"), ["prices-1.csv"]);
    assert_eq!(d.files("out-json"), ["prices-1.json"]);
    assert_eq!(read(&d.path("out/prices-1.csv")), PRICES_1.as_bytes());
    assert_eq!(d.files("var/archive/prices"), ["prices-1.csv"]);
    assert!(pending(&d).is_empty());
    assert!(
        d.files("var/state/pending").is_empty(),
        "{:?}",
        d.files("var/state/pending")
    );
    // Who and when, in the history.
    let ev = events(&d, id);
    let who = me();
    assert!(
        ev.iter()
            .any(|(s, dt)| s == "approved" && *dt == format!("by {who}")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|(s, dt)| s == "released" && dt.contains("out/prices-1.csv")),
        "{ev:?}"
    );
    // Approving twice, or rejecting what was approved, is refused; nothing moves.
    let o = ferry(&d, &["approve", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already approved") && stderr(&o).contains("not approved twice"),
        "{}",
        stderr(&o)
    );
    let o = ferry(&d, &["reject", &id.to_string(), "--why", "late"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be rejected"), "{}", stderr(&o));
    run_once(&d);
    assert_eq!(d.files("out"), ["prices-1.csv"]);

    // The next file is compared with the approved one by ArticleNo.
    d.drop_file("in/prices-2.csv", PRICES_2);
    run_once(&d);
    let p = pending(&d);
    assert_eq!(p.len(), 1);
    let id2 = p[0]["id"].as_i64().unwrap();
    let c = &p[0]["changes"];
    assert_eq!(
        (&c["added"], &c["removed"], &c["changed"], &c["unchanged"]),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1)
        ),
        "{c}"
    );
    let s = show_json(&d, id2);
    let details = s["changes"]["details"].as_array().unwrap();
    assert_eq!(
        details[0],
        serde_json::json!({"kind": "changed", "key": "A1", "fields": [{"field": "Price", "old": "1.00", "new": "1.20"}]})
    );
    assert!(details.contains(&serde_json::json!({"kind": "added", "key": "A4"})));
    assert!(details.contains(&serde_json::json!({"kind": "removed", "key": "A2"})));
    // As text, for the admin.
    let o = ferry(&d, &["pending", "show", &id2.to_string()]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("~ A1") && text.contains("Price: \"1.00\" -> \"1.20\""),
        "{text}"
    );
    assert!(text.contains("+ A4") && text.contains("- A2"), "{text}");
    let o = ferry(&d, &["pending"]);
    assert!(
        stdout(&o).contains("1 added, 1 removed, 1 changed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn reject_sends_the_original_to_the_error_folder_with_the_reason() {
    let d = Deployment::new("review-reject");
    d.job("prices", CSV_JOB);
    d.drop_file("in/prices-1.csv", PRICES_1);
    run_once(&d);
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    // A rejection needs a reason.
    let o = ferry(&d, &["reject", &id.to_string(), "--why", " "]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ferry(&d, &["reject", &id.to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = ferry(
        &d,
        &[
            "reject",
            &id.to_string(),
            "--why",
            "prices of group 7 are wrong",
        ],
    );
    assert!(o.status.success(), "reject: {}", stderr(&o));
    assert!(d.files("out").is_empty() && d.files("out-json").is_empty());
    assert_eq!(
        d.files("var/error/prices"),
        ["prices-1.csv", "prices-1.csv.error.txt"]
    );
    assert_eq!(
        read(&d.path("var/error/prices/prices-1.csv")),
        PRICES_1.as_bytes()
    );
    let report =
        std::fs::read_to_string(d.path("var/error/prices/prices-1.csv.error.txt")).unwrap();
    assert!(
        report.contains(&format!("rejected by {}", me()))
            && report.contains("prices of group 7 are wrong"),
        "{report}"
    );
    assert!(pending(&d).is_empty());
    assert!(d.files("var/state/pending").is_empty());
    let ev = events(&d, id);
    assert!(
        ev.iter()
            .any(|(s, dt)| s == "rejected"
                && dt == &format!("by {}: prices of group 7 are wrong", me())),
        "{ev:?}"
    );
    // A rejected file cannot be approved.
    let o = ferry(&d, &["approve", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a rejected file cannot be approved"),
        "{}",
        stderr(&o)
    );
    run_once(&d);
    assert!(d.files("out").is_empty());
}

#[test]
fn diff_on_xml_records() {
    let d = Deployment::new("review-xml");
    d.job(
        "articles",
        r#"[source]
folder = "in"
settle = "0s"

[input]
format = "xml"
record = "/Articles/Article"

[input.fields]
No = "No"
Name = "Name"
Price = "Price"

[[output]]
folder = "out"

[review]
key = "No"
"#,
    );
    let xml = |items: &[(&str, &str, &str)]| {
        let mut s = String::from("<?xml version=\"1.0\"?>\n<Articles>\n");
        for (no, name, price) in items {
            s.push_str(&format!(
                "  <Article><No>{no}</No><Name>{name}</Name><Price>{price}</Price></Article>\n"
            ));
        }
        s.push_str("</Articles>\n");
        s
    };
    d.drop_file(
        "in/a1.xml",
        xml(&[("1", "Bolt", "1.00"), ("2", "Nut", "0.50")]),
    );
    run_once(&d);
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    assert!(ferry(&d, &["approve", &id.to_string()]).status.success());
    assert_eq!(d.files("out"), ["a1.xml"]);
    d.drop_file(
        "in/a2.xml",
        xml(&[("1", "Bolt M8", "1.10"), ("3", "Washer", "0.10")]),
    );
    run_once(&d);
    let p = pending(&d);
    let s = show_json(&d, p[0]["id"].as_i64().unwrap());
    let c = &s["changes"];
    assert_eq!(
        (&c["added"], &c["removed"], &c["changed"]),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{c}"
    );
    assert_eq!(
        c["details"][0],
        serde_json::json!({"kind": "changed", "key": "1", "fields": [
            {"field": "Name", "old": "Bolt", "new": "Bolt M8"},
            {"field": "Price", "old": "1.00", "new": "1.10"}]})
    );
}

#[test]
fn approve_after_sigkill_between_the_decision_and_the_delivery() {
    let d = Deployment::new("review-crash");
    d.job("prices", CSV_JOB);
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in/prices-1.csv", PRICES_1);
    wait_for("the file to be held", WAIT, || {
        ferry(&d, &["pending", "--json"]).status.success() && pending(&d).len() == 1
    });
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    // The daemon is frozen, so the decision is recorded but not carried out; then killed.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGSTOP) };
    let o = ferry(&d, &["approve", &id.to_string()]);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    assert!(stdout(&o).contains("the running ferry"), "{}", stdout(&o));
    daemon.stop_with(libc::SIGKILL);
    assert!(d.files("out").is_empty(), "{:?}", d.files("out"));
    assert_eq!(pending(&d)[0]["state"], "approved, being carried out");
    // A second approval is refused: the decision is durable.
    assert_eq!(
        ferry(&d, &["approve", &id.to_string()]).status.code(),
        Some(1)
    );
    // The next start carries it out, once.
    run_once(&d);
    assert_eq!(d.files("out"), ["prices-1.csv"]);
    assert_eq!(d.files("out-json"), ["prices-1.json"]);
    assert_eq!(d.files("var/archive/prices"), ["prices-1.csv"]);
    run_once(&d);
    assert_eq!(d.files("out"), ["prices-1.csv"]);
    let released = events(&d, id)
        .into_iter()
        .filter(|(s, _)| s == "released")
        .count();
    assert_eq!(released, 1);

    // A running daemon picks up a decision made by the CLI.
    let _daemon = Daemon::start(&d, &[]);
    d.drop_file("in/prices-2.csv", PRICES_2);
    wait_for("the second file to be held", WAIT, || {
        pending(&d).len() == 1
    });
    let id2 = pending(&d)[0]["id"].as_i64().unwrap();
    let o = ferry(&d, &["approve", &id2.to_string()]);
    assert!(o.status.success(), "approve: {}", stderr(&o));
    d.wait_exists("out/prices-2.csv");
    wait_for("the decision to be finished", WAIT, || {
        pending(&d).is_empty()
    });
    assert_eq!(d.files("out"), ["prices-1.csv", "prices-2.csv"]);
}

/// Kills the daemon at random moments while it releases approved files: every output ends
/// up delivered exactly once, whatever instant the kill hit.
#[test]
fn a_release_killed_at_any_moment_delivers_every_output_once() {
    let d = Deployment::new("review-kill-release");
    d.job("prices", CSV_JOB);
    let n = 30;
    for i in 0..n {
        d.drop_file(
            &format!("in/p{i:02}.csv"),
            format!("ArticleNo,Name,Price\nA{i},X,{i}\n"),
        );
    }
    run_once(&d);
    let ids: Vec<i64> = pending(&d)
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), n);
    // Decided while a frozen daemon holds the state folder: recorded, not carried out.
    let mut frozen = Daemon::start(&d, &[]);
    wait_for("the daemon to hold the lock", WAIT, || {
        std::fs::read_to_string(d.path("var/state/ferry.lock"))
            .is_ok_and(|p| p.trim() == frozen.child.id().to_string())
    });
    unsafe { libc::kill(frozen.child.id() as i32, libc::SIGSTOP) };
    for id in &ids {
        let o = ferry(&d, &["approve", &id.to_string()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    frozen.stop_with(libc::SIGKILL);
    assert!(d.files("out").is_empty());
    // Starts that carry the decisions out, each killed a little later than the last.
    let mut hit = 0;
    for round in 0..40u64 {
        let mut run = Daemon {
            child: d
                .cmd(&["run", "--once"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        std::thread::sleep(std::time::Duration::from_millis(5 + round * 4));
        let killed = run.stop_with(libc::SIGKILL).is_none();
        let delivered = d.files("out").len();
        if killed && delivered > 0 && delivered < n {
            hit += 1;
        }
        // For the record: how far the releases got at each kill.
        eprintln!("round {round}: killed {killed}; {delivered} of {n} delivered");
        if delivered == n {
            break;
        }
    }
    eprintln!("{hit} kill(s) landed in the middle of the releases");
    run_once(&d);
    assert!(pending(&d).is_empty());
    let expect: Vec<String> = (0..n).map(|i| format!("p{i:02}.csv")).collect();
    assert_eq!(d.files("out"), expect);
    let expect_json: Vec<String> = (0..n).map(|i| format!("p{i:02}.json")).collect();
    assert_eq!(d.files("out-json"), expect_json);
    assert_eq!(d.files("var/archive/prices"), expect);
    for id in ids {
        let released = events(&d, id)
            .into_iter()
            .filter(|(s, _)| s == "released")
            .count();
        assert_eq!(released, 1, "file {id}");
    }
}

#[test]
fn what_waits_longer_than_expires_is_reported_never_dropped_or_released() {
    let d = Deployment::new("review-expires");
    set_clock(&d, "2026-03-02T08:00:00Z");
    d.job(
        "prices",
        &format!(
            "{CSV_JOB}\n[alert]\nemail = \"mailto:admin@example.test\"\nsmtp = \"smtp://127.0.0.1:9\"\nfrom = \"ferry@example.test\"\n"
        ),
    );
    let mut daemon = start_clocked(&d, &[]);
    d.drop_file("in/prices-1.csv", PRICES_1);
    wait_for("the file to be held", WAIT, || pending(&d).len() == 1);
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    assert_eq!(pending(&d)[0]["overdue"], false);
    // 59 minutes: not yet.
    set_clock(&d, "2026-03-02T08:59:00Z");
    let st: Value = serde_json::from_str(&stdout(&ferry(&d, &["status", "--json"]))).unwrap();
    assert_eq!(st["review"][0]["waiting"], 1, "{st}");
    assert_eq!(st["review"][0]["overdue"], 0, "{st}");
    // Two hours: reported in the log, in status, and to the admin; still pending.
    set_clock(&d, "2026-03-02T10:00:00Z");
    d.wait_log("has waited longer than `expires`", 1);
    let st: Value = serde_json::from_str(&stdout(&ferry(&d, &["status", "--json"]))).unwrap();
    assert_eq!(st["review"][0]["overdue"], 1, "{st}");
    let text = stdout(&ferry(&d, &["status"]));
    assert!(text.contains("1 OVERDUE"), "{text}");
    let alert = format!("var/outbox/prices/alerts/review-{id:09}-overdue.txt");
    d.wait_exists(&alert);
    let body = std::fs::read_to_string(d.path(&alert)).unwrap();
    assert!(
        body.contains("prices-1.csv") && body.contains("ferry approve"),
        "{body}"
    );
    assert_eq!(pending(&d)[0]["overdue"], true);
    // Reported once, and nothing released or dropped.
    set_clock(&d, "2026-03-09T10:00:00Z");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        d.logs().matches("has waited longer than `expires`").count(),
        1
    );
    daemon.stop();
    assert!(d.files("out").is_empty());
    assert_eq!(pending(&d).len(), 1);
    assert_eq!(
        d.files("var/state/pending/prices/1/original"),
        ["prices-1.csv"]
    );
    let o = ferry(&d, &["pending"]);
    assert!(stdout(&o).contains("OVERDUE"), "{}", stdout(&o));
}

#[test]
fn bad_use_is_refused_clearly() {
    let d = Deployment::new("review-bad-use");
    // Unknown ids, before and after there is a journal.
    for args in [
        vec!["approve", "99"],
        vec!["reject", "99", "--why", "x"],
        vec!["pending", "show", "99"],
    ] {
        let o = ferry(&d, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("no pending file has id 99"),
            "{}",
            stderr(&o)
        );
    }
    // A reviewed job without `key`: held, listed, but what would change cannot be shown.
    d.job(
        "nokey",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\n[review]\n",
    );
    d.drop_file("in/a.csv", "ArticleNo,Price\n1,2\n");
    run_once(&d);
    let p = pending(&d);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["records"], 1);
    assert!(p[0]["changes"].is_null());
    assert!(
        p[0]["diff_error"]
            .as_str()
            .unwrap()
            .contains("has no `key`"),
        "{p:?}"
    );
    assert!(stdout(&ferry(&d, &["pending"])).contains("not compared (no [review] key)"));
    let o = ferry(&d, &["pending", "show", &p[0]["id"].to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("job `nokey` has no `key` in its [review] table"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("a.csv"),
        "the rest is shown: {}",
        stdout(&o)
    );
    for args in [vec!["approve", "99"], vec!["pending", "show", "99"]] {
        assert_eq!(ferry(&d, &args).status.code(), Some(1));
    }
    // A key whose field the records lack: said, with the fields there are.
    d.job(
        "badkey",
        "[source]\nfolder = \"in2\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out2\"\n[review]\nkey = \"Sku\"\n",
    );
    d.drop_file("in2/b.csv", "ArticleNo,Price\n1,2\n");
    run_once(&d);
    let p = pending(&d);
    let b = p.iter().find(|p| p["job"] == "badkey").unwrap();
    assert!(
        b["diff_error"]
            .as_str()
            .unwrap()
            .contains("record 1 of the waiting file has no field `Sku`"),
        "{b}"
    );
}

#[test]
fn job_files_with_review_mistakes_are_reported_at_their_place() {
    let d = Deployment::new("review-check");
    d.job(
        "nokeyinput",
        "[source]\nfolder = \"in\"\n[[output]]\nfolder = \"out\"\n\n[review]\nkey = \"No\"\n",
    );
    d.job(
        "zero",
        "[source]\nfolder = \"in2\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out2\"\n[review]\nexpires = \"0\"\n",
    );
    d.job(
        "typo",
        "[source]\nfolder = \"in3\"\n[[output]]\nfolder = \"out3\"\n[review]\nexpire = \"1d\"\n",
    );
    let o = ferry(&d, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o) + &stdout(&o);
    assert!(
        e.contains("nokeyinput.toml:7:7") && e.contains("the job reads none"),
        "{e}"
    );
    assert!(
        e.contains("zero.toml:8:11") && e.contains("more than 0"),
        "{e}"
    );
    assert!(e.contains("typo.toml:6:1") && e.contains("expires"), "{e}");
}

#[test]
fn a_kept_original_stays_in_the_source_and_a_copy_is_held() {
    let d = Deployment::new("review-keep");
    d.job(
        "prices",
        &format!("{CSV_JOB}\n[after]\nsuccess = \"keep\"\n"),
    );
    d.drop_file("in/prices-1.csv", PRICES_1);
    run_once(&d);
    assert_eq!(d.files("in"), ["prices-1.csv"]);
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    // Not taken again while it waits.
    run_once(&d);
    assert_eq!(pending(&d).len(), 1);
    let o = ferry(&d, &["reject", &id.to_string(), "--why", "no"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.files("in"), ["prices-1.csv"]);
    assert_eq!(
        d.files("var/error/prices"),
        ["prices-1.csv", "prices-1.csv.error.txt"]
    );
    assert!(d.files("out").is_empty());
}

#[test]
fn scheduled_reviewed_job_and_email_outbox_wait_for_approval() {
    let d = Deployment::new("review-schedule-email");
    d.job(
        "mailed",
        r#"[source]
folder = "in"
settle = "0s"
every = "1h"

[[output]]
email = "mailto:partner@example.test"
smtp = "smtp://127.0.0.1:9"
from = "ferry@example.test"
outbox = "mail-outbox"

[review]
"#,
    );
    d.drop_file("in/report.pdf", "%PDF-1.4 not really\n");
    let _ = ferry(&d, &["run", "--once"]);
    assert!(
        d.files("mail-outbox").is_empty(),
        "{:?}",
        d.files("mail-outbox")
    );
    let p = pending(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0]["records"].is_null());
    let o = ferry(&d, &["approve", &p[0]["id"].to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Into the outbox, from which the email deliverer sends it (no mail server here).
    assert_eq!(d.files("mail-outbox"), ["report.pdf"]);
}

#[test]
fn ftp_output_is_uploaded_only_after_approval() {
    if !ftp_server::available(ftp_server::vsftpd_path(), "vsftpd") {
        return;
    }
    let d = Deployment::new("review-ftp");
    let srv = ftp_server::Server::vsftpd(&d.path("srv"), None, 0);
    srv.mkdir("partner");
    d.job(
        "up",
        &format!(
            "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\n\n[review]\n",
            srv.url("ftp", "partner")
        ),
    );
    let run = || {
        let o = d
            .cmd(&["run", "--once"])
            .env("FTP_PW", ftp_server::PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    d.drop_file("in/order-1.xml", "<Order><No>1</No></Order>\n");
    run();
    assert!(
        srv.files("partner").is_empty(),
        "{:?}",
        srv.files("partner")
    );
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    assert!(ferry(&d, &["approve", &id.to_string()]).status.success());
    run();
    assert_eq!(srv.files("partner"), ["order-1.xml"]);
    run();
    assert_eq!(srv.files("partner"), ["order-1.xml"]);
}

#[test]
fn a_taken_destination_name_holds_the_approval_until_it_is_free() {
    let d = Deployment::new("review-collision");
    d.job("prices", CSV_JOB);
    d.drop_file("in/prices-1.csv", PRICES_1);
    run_once(&d);
    let id = pending(&d)[0]["id"].as_i64().unwrap();
    // Someone else's file has the name (exists = "fail"): the approval stands, the
    // delivery waits, and says why.
    d.write("out/prices-1.csv", "not ours\n");
    let o = ferry(&d, &["approve", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("exists already"), "{}", stderr(&o));
    assert_eq!(read(&d.path("out/prices-1.csv")), b"not ours\n");
    assert_eq!(pending(&d)[0]["state"], "approved, being carried out");
    let s = show_json(&d, id);
    assert!(
        s["outcome"].as_str().unwrap().contains("exists already"),
        "{s}"
    );
    assert!(d.files("var/archive").is_empty(), "the original waits too");
    // Once the name is free, the next start delivers it, once.
    std::fs::remove_file(d.path("out/prices-1.csv")).unwrap();
    run_once(&d);
    assert_eq!(d.files("out"), ["prices-1.csv"]);
    assert_eq!(read(&d.path("out/prices-1.csv")), PRICES_1.as_bytes());
    assert_eq!(d.files("out-json"), ["prices-1.json"]);
    assert_eq!(d.files("var/archive/prices"), ["prices-1.csv"]);
    assert!(pending(&d).is_empty());
}

/// Kills `run --once` at random moments while it holds files: each file ends up pending
/// once, with each of its outputs held once, and approving them all delivers each once.
#[test]
fn holding_killed_at_any_moment_holds_each_file_once() {
    let d = Deployment::new("review-kill-hold");
    // max_attempts raised: a file in flight at several kills must not be set aside.
    d.job(
        "prices",
        &format!("{CSV_JOB}\n[after]\nmax_attempts = 1000\n"),
    );
    let n = 30;
    for i in 0..n {
        d.drop_file(
            &format!("in/p{i:02}.csv"),
            format!("ArticleNo,Name,Price\nA{i},X,{i}\n"),
        );
    }
    for round in 0..40u64 {
        let mut run = Daemon {
            child: d
                .cmd(&["run", "--once"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        std::thread::sleep(std::time::Duration::from_millis(20 + round * 15));
        let killed = run.stop_with(libc::SIGKILL).is_none();
        eprintln!(
            "round {round}: killed {killed}; {} left in the source",
            d.files("in").len()
        );
        if d.files("in").is_empty() {
            break;
        }
    }
    let t = std::time::Instant::now();
    run_once(&d);
    eprintln!("final run: {:?}", t.elapsed());
    assert!(d.files("in").is_empty());
    assert!(d.files("out").is_empty());
    let p = pending(&d);
    let mut names: Vec<String> = p
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let expect: Vec<String> = (0..n).map(|i| format!("p{i:02}.csv")).collect();
    assert_eq!(names, expect);
    // Each held once: two outputs and the original, nothing else (no temporary files).
    for e in &p {
        let held = std::path::Path::new(e["held"].as_str().unwrap());
        let name = e["name"].as_str().unwrap();
        let stem = name.trim_end_matches(".csv");
        assert_eq!(
            files_below(held),
            [
                format!("1/{name}"),
                format!("2/{stem}.json"),
                format!("original/{name}")
            ],
            "{e}"
        );
    }
    let t = std::time::Instant::now();
    for e in &p {
        let o = ferry(&d, &["approve", &e["id"].to_string()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    eprintln!("approvals: {:?}", t.elapsed());
    assert_eq!(d.files("out"), expect);
}

/// Found by `holding_killed_at_any_moment_holds_each_file_once`: a `ferry run` killed while
/// it created the journal (its switch to WAL is a rollback-journal transaction) left a hot
/// rollback journal, and every later start failed ("attempt to write a readonly
/// database": the check for a newer journal's schema reads it read-only). The hot journal
/// is made here by a process that exits in the middle of a transaction.
#[test]
fn a_start_killed_while_creating_the_journal_does_not_stop_the_next_start() {
    if !have("python3") {
        return;
    }
    let d = Deployment::new("review-hot-journal");
    d.job("prices", CSV_JOB);
    d.mkdir("var/state");
    let o = std::process::Command::new("python3")
        .current_dir(d.path("var/state"))
        .args([
            "-c",
            "import sqlite3, os\nc = sqlite3.connect('journal.sqlite', isolation_level=None)\nc.execute('PRAGMA journal_mode=DELETE')\nc.execute('PRAGMA cache_size=1')\nc.execute('create table t(x)')\nc.execute('insert into t values (randomblob(50000))')\nc.execute('begin')\nc.execute('update t set x = randomblob(60000)')\nc.execute('insert into t values (randomblob(200000))')\nos._exit(0)\n",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path("var/state/journal.sqlite-journal").exists());
    d.drop_file("in/prices-1.csv", PRICES_1);
    run_once(&d);
    assert_eq!(pending(&d).len(), 1);
}
