//! ferry.toml, the installation-wide settings (issue 13): what it sets, what flags override,
//! its errors, job defaults, and the daemon reading it again on a change and at SIGHUP.

mod util;

use util::*;

const JOB: &str = "[source]\nfolder = \"in\"\nsettle = \"300ms\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"out\"\n";

fn deployment(name: &str, settings: &str) -> Deployment {
    let d = Deployment::new(name);
    d.write("ferry.toml", settings);
    d.job("j", JOB);
    d.mkdir("in");
    d
}

#[test]
fn ferry_toml_sets_the_state_folder_workers_and_log_format() {
    let d = deployment(
        "settings-apply",
        "state = \"var/elsewhere\"\nworkers = 3\n[log]\nformat = \"json\"\n",
    );
    d.write("in/a.txt", "a");
    let out = d.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.path("var/elsewhere/journal.sqlite").exists());
    assert!(
        !d.path("var/state").exists(),
        "the default state folder is not used"
    );
    let log = stderr(&out);
    let started = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
        })
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("ferry started"))
        })
        .expect("the start line");
    assert_eq!(started["workers"], 3, "{started}");
    // The other commands find the journal where ferry.toml says.
    let h = d.history();
    assert_eq!(h.len(), 1, "{h:?}");
}

#[test]
fn command_line_flags_win_over_ferry_toml() {
    let d = deployment(
        "settings-flags",
        "state = \"var/elsewhere\"\nworkers = 3\n[log]\nformat = \"json\"\n",
    );
    d.write("in/a.txt", "a");
    let out = d.run(&[
        "run",
        "--once",
        "--state",
        "var/flag",
        "--workers",
        "5",
        "--log-format",
        "human",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.path("var/flag/journal.sqlite").exists());
    assert!(!d.path("var/elsewhere").exists());
    let log = stderr(&out);
    assert!(!log.trim_start().starts_with('{'), "human lines: {log}");
    assert!(log.contains("workers=5"), "{log}");
    // The environment variable of a flag wins too.
    let out = d
        .cmd(&["history", "--json"])
        .env("FERRY_STATE", "var/flag")
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stderr(&out));
}

const BROKEN: &str = r#"state = "var/state"
wokers = 4
[log]
format = "jsn"
[alert]
email = "mailto:ops@example.com"
smtp = "smtp://127.0.0.1:25"
from = "ferry@example.com"
sbject = "x"
[defaults.after]
archive = "var/archive/{nope}"
folder = "x"
[defaults.source]
settle = 5
"#;

#[test]
fn every_problem_of_ferry_toml_is_reported_at_once_with_its_position() {
    let d = deployment("settings-errors", BROKEN);
    let out = d.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "ferry.toml:2:1: wokers: unknown key `wokers`; did you mean `workers`?",
        "ferry.toml:4:10: log.format: expected one of \"human\", \"json\", found \"jsn\"",
        "ferry.toml:9:1: alert.sbject: unknown key `sbject`; did you mean `subject`?",
        "ferry.toml:11:24: defaults.after.archive: unknown placeholder `{nope}`",
        "ferry.toml:12:1: defaults.after.folder: unknown key `folder`",
        "ferry.toml:14:10: defaults.source.settle: expected a string, found the integer 5",
        "6 problem(s); 1 of 1 job file(s) valid",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The job itself is fine and said so.
    assert!(stdout(&out).contains("ok: j"), "{}", stdout(&out));
}

#[test]
fn a_broken_ferry_toml_stops_run_before_it_does_anything() {
    let d = deployment("settings-refuse", BROKEN);
    d.write("in/a.txt", "a");
    let out = d.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("ferry.toml:2:1: wokers"), "{err}");
    assert!(err.contains("nothing was done"), "{err}");
    assert!(d.path("in/a.txt").exists());
    assert!(!d.path("var/state").exists());
    assert!(!d.path("out").exists());
    // The daemon refuses too.
    let out = d.run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_job_default_applies_and_a_jobs_own_key_wins() {
    let d = deployment(
        "settings-defaults",
        "[defaults.after]\narchive = \"var/arch-default/{job}\"\n[defaults.source]\nsettle = \"0s\"\n",
    );
    d.job(
        "own",
        "[source]\nfolder = \"in-own\"\n\n[[output]]\nfolder = \"out-own\"\n\n[after]\narchive = \"var/arch-own\"\n",
    );
    d.write("in/a.txt", "a");
    d.write("in-own/b.txt", "b");
    let check = d.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let test = d.run(&["test", "j", "in/a.txt"]);
    assert!(
        stdout(&test).contains("var/arch-default/j"),
        "`ferry test` uses the defaults:\n{}",
        stdout(&test)
    );
    let out = d.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(d.files("var/arch-default/j"), ["a.txt"]);
    assert_eq!(d.files("var/arch-own"), ["b.txt"]);
    assert!(
        !d.path("var/archive").exists(),
        "the built-in default is not used"
    );
}

#[test]
fn the_admin_alert_address_is_used_by_jobs_without_their_own() {
    // A closed port: the alert cannot be sent, and stays in the job's alert outbox.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = deployment(
        "settings-alert",
        &format!(
            "[alert]\nemail = \"mailto:ops@example.com\"\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"ferry@example.com\"\n"
        ),
    );
    // A job that fails every file: its output name is always taken.
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nname = \"same\"\n",
    );
    d.write("out/same", "taken");
    d.write("in/a.txt", "a");
    let out = d.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let alerts = d.files("var/outbox/j/alerts");
    assert!(
        alerts.iter().any(|f| f.ends_with("a.txt.error.txt")),
        "an alert for a.txt in {alerts:?}\n{}",
        stderr(&out)
    );
}

/// Waits until `rel` holds exactly `names`.
fn wait_files(d: &Deployment, rel: &str, names: &[&str]) {
    wait_for(&format!("{rel} to hold {names:?}"), WAIT, || {
        d.files(rel) == names
    });
}

#[test]
fn the_daemon_rereads_ferry_toml_when_it_changes_and_keeps_its_settings_when_broken() {
    let d = deployment(
        "settings-reload",
        "workers = 2\n[defaults.after]\narchive = \"var/first\"\n",
    );
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("ferry started", 1);
    d.drop_file("in/a.txt", "a");
    wait_files(&d, "var/first", &["a.txt"]);

    d.write(
        "ferry.toml",
        "workers = 4\n[defaults.after]\narchive = \"var/second\"\n",
    );
    d.wait_log("ferry.toml changed what jobs inherit", 1);
    d.wait_log("take effect at the next start: workers", 1);
    d.wait_log("Job file changed", 1);
    d.drop_file("in/b.txt", "b");
    wait_files(&d, "var/second", &["b.txt"]);

    d.write(
        "ferry.toml",
        "workers = 4\nwokers = 1\n[defaults.after]\narchive = \"var/third\"\n",
    );
    d.wait_log("Invalid ferry.toml.", 1);
    d.wait_log("the settings in effect stay", 1);
    d.drop_file("in/c.txt", "c");
    wait_files(&d, "var/second", &["b.txt", "c.txt"]);
    assert!(!d.path("var/third").exists());
    assert!(
        d.logs().contains("ferry.toml:2:1: wokers"),
        "the problem is logged at its place"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", d.logs());
}

#[test]
fn sighup_rereads_ferry_toml() {
    let d = deployment("settings-hup", "[defaults.after]\narchive = \"var/one\"\n");
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("ferry started", 1);
    // Same size and modification time: only SIGHUP can tell it changed. (Written beside,
    // given the old mtime, then renamed over it: never seen half done.)
    let path = d.path("ferry.toml");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let staged = d.write(
        "staging/ferry.toml",
        "[defaults.after]\narchive = \"var/two\"\n",
    );
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&staged, &path).unwrap();
    // The daemon goes on with the settings it has ...
    d.drop_file("in/a.txt", "a");
    wait_files(&d, "var/one", &["a.txt"]);
    // ... until SIGHUP reads ferry.toml again.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
    d.wait_log("ferry.toml changed what jobs inherit", 1);
    d.wait_log("Job file changed", 1);
    d.drop_file("in/b.txt", "b");
    wait_files(&d, "var/two", &["b.txt"]);
    assert_eq!(daemon.stop(), Some(0), "{}", d.logs());
}

#[test]
fn the_log_level_applies_at_a_reload() {
    let d = deployment("settings-level", "[log]\nlevel = \"warn\"\n");
    let mut daemon = Daemon::start(&d, &[]);
    // At `warn`, the INFO lines about a file are not written.
    d.drop_file("in/a.txt", "a");
    d.wait_exists("var/archive/j/a.txt");
    d.write("ferry.toml", "[log]\nlevel = \"info\"\n");
    d.wait_log("Log level changed", 1);
    d.drop_file("in/b.txt", "b");
    d.wait_log("File done.", 1);
    let logs = d.logs();
    assert!(!logs.contains("ferry started"), "{logs}");
    assert!(!logs.contains("a.txt"), "{logs}");
    assert!(logs.contains("b.txt"), "{logs}");
    assert_eq!(daemon.stop(), Some(0), "{}", d.logs());
}

#[test]
fn schema_settings_describes_ferry_toml() {
    let d = Deployment::new("settings-schema");
    let out = d.run(&["schema", "--settings"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["title"], "ferry.toml");
    assert_eq!(v["properties"]["workers"]["default"], 32);
    assert_eq!(
        v["definitions"]["log"]["properties"]["format"]["enum"],
        serde_json::json!(["human", "json"])
    );
    assert!(v["definitions"]["defaults.after"]["properties"]["archive"].is_object());
    assert!(v["definitions"]["alert"]["properties"]["smtp"].is_object());
}
