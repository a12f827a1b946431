//! The daemon: hot reload of job files, graceful shutdown, `status` and `history`, `{seq}`
//! across restarts, and the exit codes of `run --once`.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::*;

/// How long a wait for something the daemon must do may take. Not a performance bound: a
/// shared 2-core machine under a full build once needed more than 30 s for a reload.
const DEADLINE: Duration = Duration::from_secs(90);

/// Checks, for `window`, that `f` stays true (a negative check: something must *not*
/// happen). Fails at the first look where it does not hold.
fn assert_stays(what: &str, window: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(f(), "no longer true: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job_toml(src: &str, out: &str) -> String {
    format!(
        "[source]\nfolder = \"{src}\"\nsettle = \"1s\"\npoll = \"500ms\"\n\n[[output]]\nfolder = \"{out}\"\n"
    )
}

#[test]
fn an_edited_job_file_applies_without_a_restart() {
    let d = Deployment::new("reload-edit");
    d.job("j", &job_toml("in", "out-first"));
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in/one.txt", "1");
    d.wait_exists("out-first/one.txt");

    d.job("j", &job_toml("in", "out-second-version"));
    d.wait_log("Job file changed", 1);
    d.drop_file("in/two.txt", "2");
    d.wait_exists("out-second-version/two.txt");
    assert_eq!(d.files("out-first"), vec!["one.txt"]);
    assert_eq!(d.files("out-second-version"), vec!["two.txt"]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_broken_edit_is_rejected_and_the_previous_version_keeps_running() {
    let d = Deployment::new("reload-broken");
    d.job("j", &job_toml("in", "out-good"));
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in/one.txt", "1");
    d.wait_exists("out-good/one.txt");

    // Invalid TOML.
    d.job(
        "j",
        "[source\nfolder = \"in\"\n\n[[output]]\nfolder = \"out-bad\"\n",
    );
    d.wait_log("TOML syntax", 1);
    d.wait_log("the previous version keeps running", 1);
    d.drop_file("in/two.txt", "2");
    d.wait_exists("out-good/two.txt");

    // Valid TOML, unknown key.
    d.job(
        "j",
        &job_toml("in", "out-bad-too").replace("settle", "settel"),
    );
    d.wait_log("unknown key `settel`", 1);
    d.wait_log("the previous version keeps running", 2);
    d.drop_file("in/three.txt", "3");
    d.wait_exists("out-good/three.txt");

    assert!(!d.path("out-bad").exists());
    assert!(!d.path("out-bad-too").exists());
    assert_eq!(d.files("out-good"), vec!["one.txt", "three.txt", "two.txt"]);

    // Fixed: the new version takes over.
    d.job("j", &job_toml("in", "out-fixed"));
    d.wait_log("Job file changed", 1);
    d.drop_file("in/four.txt", "4");
    d.wait_exists("out-fixed/four.txt");
    assert_eq!(daemon.stop(), Some(0));
    let h = d.history();
    assert_eq!(h.len(), 4, "{h:?}");
    assert!(h.iter().all(|r| r["state"] == "done"), "{h:?}");
}

#[test]
fn a_new_job_file_starts_a_job_and_a_deleted_one_stops_it() {
    let d = Deployment::new("reload-add-remove");
    d.job("j", &job_toml("in-j", "out-j"));
    d.mkdir("in-j");
    d.mkdir("in-k");
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in-j/one.txt", "1");
    d.wait_exists("out-j/one.txt");

    // A new job file.
    let k = d.job("k", &job_toml("in-k", "out-k"));
    d.drop_file("in-k/a.txt", "a");
    d.wait_exists("out-k/a.txt");
    d.wait_log("New job file; starting the job", 1);

    // Deleted: the job stops.
    std::fs::remove_file(&k).unwrap();
    d.wait_log("Job file removed", 1);
    d.drop_file("in-k/b.txt", "b");
    // The daemon is alive and taking files of the other job...
    d.drop_file("in-j/two.txt", "2");
    d.wait_exists("out-j/two.txt");
    // ...but not this one, over many of its former poll intervals.
    assert_stays(
        "in-k/b.txt stays untaken after its job file was deleted",
        Duration::from_secs(3),
        || d.path("in-k/b.txt").exists() && !d.path("out-k/b.txt").exists(),
    );
    assert_eq!(d.files("out-k"), vec!["a.txt"]);
    assert_eq!(daemon.stop(), Some(0));
    let h = d.history();
    assert!(
        !h.iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("b.txt")),
        "{h:?}"
    );
}

/// A signal while a large file is being copied: ferry finishes (or safely abandons) it,
/// exits 0, and after a restart there is exactly one complete output and no temporary file.
fn graceful_shutdown(sig: i32, name: &str) {
    let d = Deployment::new(name);
    d.job(
        "big",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n\n[after]\nsuccess = \"archive\"\n",
    );
    let content = pseudo_random(64 << 20, 42);
    d.drop_file("in/big.bin", &content);
    let mut daemon = Daemon::start(&d, &["--workers", "1"]);
    // The copy has begun (its temporary output exists), or is over already on a fast
    // machine.
    wait_for("the copy of big.bin to begin", DEADLINE, || {
        d.files("out").iter().any(|f| f.starts_with(".ferry-out-"))
            || d.path("out/big.bin").exists()
    });
    let mid_copy = !d.path("out/big.bin").exists();
    assert_eq!(
        daemon.stop_with(sig),
        Some(0),
        "a graceful stop exits 0\n{}",
        d.logs()
    );
    assert!(d.logs().contains("Shutting down"), "{}", d.logs());
    eprintln!("signal {sig} arrived during the copy: {mid_copy}");

    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["big.bin"]);
    assert!(
        read(&d.path("out/big.bin")) == content,
        "the output is not the complete file"
    );
    assert_eq!(d.files("var/archive/big"), vec!["big.bin"]);
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    let leftovers: Vec<String> = d
        .files("")
        .into_iter()
        .filter(|f| {
            Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".ferry-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let h = d.history();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["state"], "done", "{h:?}");
    assert_eq!(h[0]["outputs"].as_array().unwrap().len(), 1, "{h:?}");
    assert_eq!(h[0]["sha256"].as_str(), Some(sha256_hex(&content).as_str()));
    assert_eq!(
        h[0]["outputs"][0]["sha256"].as_str(),
        Some(sha256_hex(&content).as_str())
    );
}

#[test]
fn sigterm_during_a_large_copy_stops_gracefully_and_loses_nothing() {
    graceful_shutdown(libc::SIGTERM, "sigterm");
}

#[test]
fn sigint_during_a_large_copy_stops_gracefully_and_loses_nothing() {
    graceful_shutdown(libc::SIGINT, "sigint");
}

#[test]
fn status_shows_the_running_daemon_and_history_lists_outputs_with_sha256() {
    let d = Deployment::new("status");
    d.job("orders", &job_toml("in", "out"));
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    let content = b"id;amount\n1;9.99\n".to_vec();
    d.drop_file("in/a.csv", &content);
    wait_for("a.csv recorded as done", DEADLINE, || {
        d.history().iter().any(|r| r["state"] == "done")
    });

    let o = d.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("ferry is running"), "{s}");
    let row = s
        .lines()
        .find(|l| l.starts_with("orders "))
        .unwrap_or_else(|| panic!("no row for the job: {s}"));
    assert!(row.contains(&d.path("in").display().to_string()), "{row}");

    let h = d.history();
    assert_eq!(h.len(), 1, "{h:?}");
    let r = &h[0];
    assert_eq!(r["job"], "orders");
    assert_eq!(r["state"], "done");
    assert_eq!(r["path"], d.path("in/a.csv").display().to_string());
    let sum = sha256_hex(&content);
    assert_eq!(r["sha256"].as_str(), Some(sum.as_str()), "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{r}");
    assert_eq!(
        outputs[0]["path"],
        d.path("out/a.csv").display().to_string()
    );
    assert_eq!(outputs[0]["sha256"].as_str(), Some(sum.as_str()), "{r}");
    assert_eq!(outputs[0]["size"].as_u64(), Some(content.len() as u64));
    assert_eq!(sha256_hex(&read(&d.path("out/a.csv"))), sum);

    assert_eq!(daemon.stop(), Some(0));
    let o = d.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ferry is not running"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("ferry is running"), "{}", stdout(&o));
}

#[test]
fn seq_numbers_continue_across_restarts() {
    let d = Deployment::new("seq");
    d.job(
        "num",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nname = \"{seq:4}_{name}\"\n",
    );
    d.write("in/a.txt", "a");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["0001_a.txt"]);

    d.write("in/b.txt", "b");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["0001_a.txt", "0002_b.txt"]);
    assert_eq!(read(&d.path("out/0002_b.txt")), b"b");
    let seqs: Vec<u64> = d
        .history()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[test]
fn run_once_exits_0_when_all_is_done_and_1_when_a_file_failed() {
    let d = Deployment::new("exit-codes");
    d.job(
        "strict",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nexists = \"fail\"\n",
    );
    d.write("in/a.txt", "a");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["a.txt"]);

    // The output's name is taken: exists = "fail".
    d.write("out/b.txt", "already there");
    d.write("in/b.txt", "new b");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(read(&d.path("out/b.txt")), b"already there");
    assert_eq!(
        d.files("var/error/strict"),
        vec!["b.txt", "b.txt.error.txt"]
    );
    assert_eq!(read(&d.path("var/error/strict/b.txt")), b"new b");
    let report = std::fs::read_to_string(d.path("var/error/strict/b.txt.error.txt")).unwrap();
    assert!(report.contains("exists already"), "{report}");
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    let h = d.history();
    let states: Vec<&str> = h.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["done", "failed"]);

    // Nothing left to do: 0 again.
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn run_once_exits_2_when_a_job_file_is_invalid_and_still_runs_the_valid_jobs() {
    let d = Deployment::new("exit-invalid");
    d.job(
        "good",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.job("bad", "[source]\nfolder = \"in-bad\"\nsettel = \"0s\"\n");
    d.write("in/a.txt", "a");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown key `settel`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.files("out"), vec!["a.txt"]);
}

#[test]
fn issue11_a_clean_stop_exits_0_though_a_file_failed_and_the_log_says_what_ran_and_what_was_left() {
    let d = Deployment::new("clean-stop");
    d.job(
        "strict",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"out\"\nexists = \"fail\"\n",
    );
    d.write("out/b.txt", "already there");
    d.write("in/b.txt", "new b");
    d.write("in/c.txt", "c");
    let mut daemon = Daemon::start(&d, &[]);
    wait_for("b.txt failed and c.txt done", DEADLINE, || {
        let h = d.history();
        h.iter().any(|r| r["state"] == "failed") && h.iter().any(|r| r["state"] == "done")
    });
    assert_eq!(
        daemon.stop(),
        Some(0),
        "a failed file is not a failure of the daemon\n{}",
        d.logs()
    );
    let logs = d.logs();
    assert!(
        logs.contains("ferry started: 1 job(s), 0 invalid job file(s) left out."),
        "{logs}"
    );
    let watching = logs
        .lines()
        .find(|l| l.contains("Watching the job's source folder."))
        .unwrap_or_else(|| panic!("no line for the job's folder: {logs}"));
    assert!(watching.contains("job=strict"), "{watching}");
    assert!(
        watching.contains(&format!("source={}", d.path("in").display())),
        "{watching}"
    );
    assert!(
        logs.contains("Stopped: 1 file(s) done, 1 failed; 0 left in progress (redone at the next start), 0 waiting in the sources."),
        "{logs}"
    );
}

#[test]
fn issue11_a_lock_conflict_prints_its_error_once() {
    let d = Deployment::new("lock-once");
    d.job("j", &job_toml("in", "out"));
    let mut daemon = Daemon::start(&d, &[]);
    wait_for("the daemon to hold the state folder", DEADLINE, || {
        stdout(&d.run(&["status"])).contains("ferry is running")
    });
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(
        err.matches("is in use by another ferry process").count(),
        1,
        "{err}"
    );
    assert!(err.starts_with("error: the state folder"), "{err}");
    assert_eq!(daemon.stop(), Some(0));
}

/// `ferry status` as a table and as JSON, parsed into (job, waiting) pairs.
fn status_waiting(d: &Deployment) -> (String, Vec<(String, Option<u64>)>) {
    let o = d.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o2 = d.run(&["status", "--json"]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o2)).unwrap();
    let rows = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_string(),
                j["waiting"].as_u64(),
            )
        })
        .collect();
    (stdout(&o), rows)
}

/// Checks that the table's columns line up under their headers and that its WAITING
/// column says what the JSON says.
fn assert_table_agrees(table: &str, json: &[(String, Option<u64>)]) {
    let mut lines = table.lines().skip(1);
    let header = lines.next().unwrap();
    let source_at = header.find("SOURCE").unwrap();
    let waiting_end = header.find("WAITING").unwrap() + "WAITING".len();
    for (job, waiting) in json {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(job))
            .unwrap_or_else(|| panic!("no row for {job}: {table}"));
        assert_eq!(row.rfind(" /").map(|i| i + 1), Some(source_at), "{table}");
        let cell = row[..waiting_end].split_whitespace().last().unwrap();
        let expected = waiting.map_or("-".to_string(), |w| w.to_string());
        assert_eq!(cell, expected, "{job}: table and JSON differ\n{table}");
    }
}

#[test]
fn issue11_status_table_agrees_with_its_json_and_aligns_long_job_names() {
    let d = Deployment::new("status-agree");
    let long = "a_job_whose_name_is_much_longer_than_twenty_characters";
    d.job("short", &job_toml("in-short", "out"));
    d.job(long, &job_toml("in-long", "out"));
    d.mkdir("in-short");
    d.mkdir("in-long");
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in-short/a.txt", "a");
    d.drop_file("in-long/b.txt", "b");
    wait_for("both files done and counts reported", DEADLINE, || {
        let (_, rows) = status_waiting(&d);
        d.history().len() == 2 && rows.iter().all(|(_, w)| *w == Some(0)) && rows.len() == 2
    });
    let (table, json) = status_waiting(&d);
    assert_table_agrees(&table, &json);

    assert_eq!(daemon.stop(), Some(0));
    let (table, json) = status_waiting(&d);
    assert!(json.iter().all(|(_, w)| w.is_none()), "{json:?}");
    assert_table_agrees(&table, &json);
}

fn set_job() -> &'static str {
    r#"
[source]
folder = "in"
settle = "200ms"
poll = "200ms"

[source.set]
members = ["{stem}.xml", "{stem}.pdf"]
timeout = "1h"

[[output]]
folder = "out"
member = "{stem}.pdf"

[after]
archive = "archive"
"#
}

fn drop_sets(d: &Deployment, n: usize) {
    for i in 0..n {
        d.drop_file(&format!("in/S{i}.pdf"), format!("%PDF-1.4 set {i}"));
        d.drop_file(&format!("in/S{i}.xml"), format!("<Index n=\"{i}\"/>"));
    }
}

#[test]
fn issue11_members_taken_with_their_set_are_not_counted_as_waiting() {
    let d = Deployment::new("set-waiting");
    d.job("sets", set_job());
    d.mkdir("in");
    drop_sets(&d, 3);
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out").len(), 3, "{:?}", d.files("out"));
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert!(
        stderr(&o).contains("0 waiting in the sources"),
        "{}",
        stderr(&o)
    );

    let mut daemon = Daemon::start(&d, &[]);
    drop_sets(&d, 3);
    wait_for(
        "the sets taken and no file counted as waiting",
        DEADLINE,
        || {
            let (_, rows) = status_waiting(&d);
            d.files("in").is_empty() && rows == vec![("sets".to_string(), Some(0))]
        },
    );
    assert_eq!(daemon.stop(), Some(0));
}
