//! Schedules (issue 14): a scheduled job takes what is ready at its slot as one run,
//! a missed run happens once at the next start, `ferry trigger`, `ferry runs`, `every`,
//! `active` windows and `ferry status`. Time is a file the tests write
//! (`FERRY_TEST_CLOCK`), never real hours.

mod util;

use std::time::Duration;

use serde_json::Value;
use util::*;

/// `ferry runs --json`, newest first.
fn runs(d: &Deployment) -> Vec<Value> {
    let o = ferry(d, &["runs", "--json", "--limit", "0"]);
    assert!(o.status.success(), "runs: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until there are `n` finished runs.
fn wait_runs(d: &Deployment, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} finished run(s)"), WAIT, || {
        let r = runs(d);
        r.len() >= n && r.iter().all(|r| !r["finished"].is_null())
    });
    runs(d)
}

/// The `schedules` entry of `ferry status --json` for `job`.
fn schedule_status(d: &Deployment, job: &str) -> Value {
    let o = ferry(d, &["status", "--json"]);
    assert!(o.status.success(), "status: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["job"] == job)
        .cloned()
        .unwrap_or_else(|| panic!("no schedule of {job} in {v}"))
}

fn wait_waiting(d: &Deployment, job: &str, n: u64) {
    wait_for(&format!("status to say {n} file(s) waiting"), WAIT, || {
        schedule_status(d, job)["waiting"] == n
    });
}

/// For a negative check: `f` stays true for a while.
fn assert_stays(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert!(f(), "no longer true: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NIGHTLY: &str = "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\nschedule = \"0 23 * * *\"\ntimezone = \"Europe/Athens\"\n\n[[output]]\nfolder = \"out\"\n";

#[test]
fn a_scheduled_job_ignores_files_until_its_slot_then_takes_them_all_as_one_run() {
    let d = Deployment::new("sched-slot");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    // Thursday 2026-12-03, 22:00 in Athens (UTC+2): an hour before the slot.
    set_clock(&d, "2026-12-03T20:00:00Z");
    // The name `c.txt` is taken in the output and `exists = "fail"`: that file fails.
    d.write("out/c.txt", "already here");
    let mut daemon = start_clocked(&d, &[]);
    for n in ["a", "b", "c"] {
        d.drop_file(&format!("in/{n}.txt"), n);
    }
    wait_waiting(&d, "nightly", 3);
    assert_eq!(
        d.files("out"),
        ["c.txt"],
        "nothing is taken before the slot"
    );
    assert!(runs(&d).is_empty());
    let s = schedule_status(&d, "nightly");
    assert_eq!(s["next_run"], "2026-12-03T21:00:00Z", "{s}");
    let text = stdout(&ferry(&d, &["status"]));
    assert!(
        text.contains("schedule \"0 23 * * *\" (Europe/Athens): no run yet; next run 2026-12-03 23:00 EET, 3 file(s) waiting"),
        "{text}"
    );

    set_clock(&d, "2026-12-03T21:00:00Z");
    let r = wait_runs(&d, 1);
    assert_eq!(r.len(), 1, "{r:?}");
    let run = &r[0];
    assert_eq!(run["job"], "nightly");
    assert_eq!(run["run"], 1);
    assert_eq!(run["why"], "schedule");
    assert_eq!(run["slot"], "2026-12-03T21:00:00Z");
    assert_eq!(run["started"], "2026-12-03T21:00:00Z");
    assert_eq!(run["result"], "failed", "one file of the run failed: {run}");
    assert_eq!(
        (&run["taken"], &run["delivered"], &run["failed"]),
        (&Value::from(3), &Value::from(2), &Value::from(1)),
        "{run}"
    );
    let mut files: Vec<(String, String)> = run["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (name, f["result"].as_str().unwrap().to_string())
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("a.txt".to_string(), "delivered".to_string()),
            ("b.txt".to_string(), "delivered".to_string()),
            ("c.txt".to_string(), "failed".to_string())
        ]
    );
    assert_eq!(d.files("out"), ["a.txt", "b.txt", "c.txt"]);

    // A file after the run waits for the next night.
    d.drop_file("in/d.txt", "d");
    wait_waiting(&d, "nightly", 1);
    assert_stays("d.txt waits for the next slot", || {
        !d.path("out/d.txt").exists()
    });
    let text = stdout(&ferry(&d, &["status"]));
    assert!(
        text.contains("last run 2026-12-03 23:00 EET failed (schedule, 3 taken, 2 delivered, 1 failed); next run 2026-12-04 23:00 EET, 1 file(s) waiting"),
        "{text}"
    );
    let table = stdout(&ferry(&d, &["runs", "--job", "nightly"]));
    assert!(table.starts_with("JOB"), "{table}");
    assert!(
        table.lines().nth(1).unwrap().contains("schedule"),
        "{table}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_run_missed_while_stopped_runs_once_at_the_next_start() {
    let d = Deployment::new("sched-missed");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    set_clock(&d, "2026-12-03T20:59:00Z");
    d.drop_file("in/a.txt", "a");
    let mut daemon = start_clocked(&d, &[]);
    d.wait_log("Scheduled job", 1);
    set_clock(&d, "2026-12-03T21:00:00Z");
    wait_runs(&d, 1);
    d.wait_exists("out/a.txt");
    assert_eq!(daemon.stop(), Some(0));

    // Stopped from Thursday night to Sunday noon: three slots passed.
    set_clock(&d, "2026-12-06T10:00:00Z");
    d.drop_file("in/b.txt", "b");
    d.drop_file("in/c.txt", "c");
    let s = schedule_status(&d, "nightly");
    assert_eq!(s["missed"], true, "{s}");
    let text = stdout(&ferry(&d, &["status"]));
    assert!(
        text.contains("a run was missed: it runs once at the next start"),
        "{text}"
    );

    let mut daemon = start_clocked(&d, &[]);
    let r = wait_runs(&d, 2);
    assert_eq!(r[0]["why"], "missed", "{r:?}");
    // The latest slot missed stands for all three.
    assert_eq!(r[0]["slot"], "2026-12-05T21:00:00Z", "{r:?}");
    assert_eq!(r[0]["taken"], 2, "{r:?}");
    assert_eq!(r[0]["delivered"], 2, "{r:?}");
    assert_eq!(d.files("out"), ["a.txt", "b.txt", "c.txt"]);
    d.wait_log(
        "A run was missed while ferry was stopped; it runs once now.",
        1,
    );
    assert_stays("no second catch-up run", || runs(&d).len() == 2);
    assert_eq!(
        d.logs()
            .matches("A run was missed while ferry was stopped")
            .count(),
        1
    );
    assert_eq!(
        schedule_status(&d, "nightly")["next_run"],
        "2026-12-06T21:00:00Z"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn ferry_trigger_starts_a_run_of_a_scheduled_job_now() {
    let d = Deployment::new("sched-trigger");
    d.job("nightly", NIGHTLY);
    d.job(
        "events",
        "[source]\nfolder = \"in-events\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out-events\"\n",
    );
    d.mkdir("in");
    d.mkdir("in-events");
    set_clock(&d, "2026-12-03T10:00:00Z");
    // Not running: nothing to trigger.
    let o = ferry(&d, &["trigger", "nightly"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ferry is not running"),
        "{}",
        stderr(&o)
    );

    let mut daemon = start_clocked(&d, &[]);
    d.wait_log("Scheduled job: it takes files at its runs only.", 1);
    d.drop_file("in/a.txt", "a");
    wait_waiting(&d, "nightly", 1);
    let o = ferry(&d, &["trigger", "nightly"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("run triggered"), "{}", stdout(&o));
    let r = wait_runs(&d, 1);
    assert_eq!(r[0]["why"], "trigger");
    assert_eq!(r[0]["slot"], "2026-12-03T10:00:00Z");
    assert_eq!(r[0]["delivered"], 1);
    d.wait_exists("out/a.txt");
    assert!(!d.path("var/state/triggers/nightly").exists());

    let o = ferry(&d, &["trigger", "events"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a scheduled job"),
        "{}",
        stderr(&o)
    );
    let o = ferry(&d, &["trigger", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn every_runs_at_start_and_then_at_each_interval() {
    let d = Deployment::new("sched-every");
    d.job(
        "often",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\nevery = \"3h\"\ntimezone = \"UTC\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    d.drop_file("in/a.txt", "a");
    set_clock(&d, "2026-12-03T08:00:00Z");
    let mut daemon = start_clocked(&d, &[]);
    let r = wait_runs(&d, 1);
    assert_eq!(r[0]["slot"], "2026-12-03T08:00:00Z");
    assert_eq!(r[0]["taken"], 1);
    d.drop_file("in/b.txt", "b");
    wait_waiting(&d, "often", 1);
    set_clock(&d, "2026-12-03T10:59:00Z");
    assert_stays("no run before the interval is over", || runs(&d).len() == 1);
    set_clock(&d, "2026-12-03T11:00:00Z");
    let r = wait_runs(&d, 2);
    assert_eq!(r[0]["slot"], "2026-12-03T11:00:00Z", "{r:?}");
    assert_eq!(r[0]["why"], "schedule");
    assert_eq!(d.files("out"), ["a.txt", "b.txt"]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn files_that_arrive_outside_the_active_window_wait_for_it() {
    let d = Deployment::new("sched-window");
    d.job(
        "office",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\ntimezone = \"Europe/Athens\"\nactive = [\"Mon-Fri 06:00-20:00\"]\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    // Saturday 2026-12-05, 12:00 in Athens.
    set_clock(&d, "2026-12-05T10:00:00Z");
    let mut daemon = start_clocked(&d, &[]);
    d.drop_file("in/a.txt", "a");
    d.drop_file("in/b.txt", "b");
    wait_waiting(&d, "office", 2);
    let s = schedule_status(&d, "office");
    assert_eq!(s["inside_window"], false, "{s}");
    assert_eq!(s["window_until"], "2026-12-07T04:00:00Z", "{s}");
    let text = stdout(&ferry(&d, &["status"]));
    assert!(
        text.contains("outside its window until 2026-12-07 06:00 EET, 2 file(s) waiting"),
        "{text}"
    );
    assert!(
        !d.path("out").exists(),
        "nothing is taken outside the window"
    );
    // Monday 06:00: the window opens and the files go.
    set_clock(&d, "2026-12-07T04:00:00Z");
    d.wait_exists("out/a.txt");
    d.wait_exists("out/b.txt");
    // Inside, files go as they arrive (an event job), and no run is recorded.
    d.drop_file("in/c.txt", "c");
    d.wait_exists("out/c.txt");
    assert!(runs(&d).is_empty());
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn run_once_runs_a_scheduled_job_now_and_records_the_run() {
    let d = Deployment::new("sched-once");
    d.job("nightly", NIGHTLY);
    d.drop_file("in/a.txt", "a");
    set_clock(&d, "2026-12-03T10:00:00Z");
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt"]);
    let r = runs(&d);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["why"], "once");
    assert_eq!(r[0]["result"], "ok");
    assert_eq!(r[0]["taken"], 1);
    assert_eq!(r[0]["delivered"], 1);
}

/// A 02:30 job on the night the clocks jump forward (Berlin, 2026-03-29): it runs once,
/// at 03:00, not at the next 02:30; the next night at 02:30 again.
#[test]
fn a_slot_the_clock_skips_runs_once_on_that_night() {
    let d = Deployment::new("sched-dst");
    d.job(
        "night",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    set_clock(&d, "2026-03-29T00:30:00Z"); // 01:30 CET
    let mut daemon = start_clocked(&d, &[]);
    d.wait_log("Scheduled job", 1);
    assert_eq!(
        schedule_status(&d, "night")["next_run"],
        "2026-03-29T01:00:00Z"
    );
    set_clock(&d, "2026-03-29T01:00:00Z"); // 03:00 CEST, just after the gap
    let r = wait_runs(&d, 1);
    assert_eq!(r[0]["slot"], "2026-03-29T01:00:00Z");
    set_clock(&d, "2026-03-29T03:00:00Z"); // 05:00 CEST
    assert_stays("one run that night", || runs(&d).len() == 1);
    assert_eq!(
        schedule_status(&d, "night")["next_run"],
        "2026-03-30T00:30:00Z"
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// A run that ferry was killed in the middle of (its row has no end) is marked
/// `interrupted` at the next start and redone once then: its files that were not handled
/// wait in the source.
#[test]
fn a_run_interrupted_by_a_kill_is_redone_once_at_the_next_start() {
    let d = Deployment::new("sched-killed");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    set_clock(&d, "2026-12-03T21:30:00Z");
    // The journal made by a first run, then the row of a run that never ended.
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    {
        let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
        c.execute(
            "INSERT INTO runs (job, run, slot, why, started, finished, result, taken, delivered, failed, files)
             VALUES ('nightly', 2, ?1, 'schedule', ?1, NULL, 'running', 1, 0, 0, '[]')",
            [1_796_331_600_000_i64], // 2026-12-03T21:00:00Z
        )
        .unwrap();
    }
    d.drop_file("in/a.txt", "a");
    let mut daemon = start_clocked(&d, &[]);
    let r = wait_runs(&d, 3);
    assert_eq!(r[1]["run"], 2);
    assert_eq!(r[1]["result"], "interrupted", "{r:?}");
    assert_eq!(r[0]["run"], 3);
    assert_eq!(r[0]["why"], "missed", "{r:?}");
    assert_eq!(r[0]["slot"], "2026-12-03T21:00:00Z", "{r:?}");
    assert_eq!(r[0]["delivered"], 1, "{r:?}");
    d.wait_exists("out/a.txt");
    assert_stays("redone once", || runs(&d).len() == 3);
    assert_eq!(daemon.stop(), Some(0));
}
