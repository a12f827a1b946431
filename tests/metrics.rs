//! The daemon's HTTP endpoint (issue 18): `/healthz`, `/readyz` and `/metrics` scraped by a
//! real Prometheus (tests/prometheus_server), the retry gauges of a destination that goes
//! read-only (a tmpfs, as tests/retry.rs), the refusal of a non-loopback address
//! without authentication, the alert rules of install/ferry-alerts.yml (promtool), and
//! the progress line of `run --once` (on a terminal only).

mod prometheus_server;
mod util;

use std::path::Path;
use std::process::Command;

use prometheus_server::{free_port, get};
use util::*;

fn folder_job(src: &str, outputs: &[&str]) -> String {
    let mut s = format!("[source]\nfolder = \"{src}\"\nsettle = \"200ms\"\npoll = \"500ms\"\n");
    for o in outputs {
        s.push_str(&format!("\n[[output]]\nfolder = \"{o}\"\n"));
    }
    s
}

/// A job reading CSV: a file whose record has too many fields fails.
const CSV_JOB: &str = "[source]\nfolder = \"in-csv\"\nsettle = \"200ms\"\npoll = \"500ms\"\n\n[input]\nformat = \"csv\"\n\n[[output]]\nfolder = \"out-csv\"\nformat = \"json\"\n";

/// Waits until `GET url` answers `status` with a body that contains `text`.
fn wait_http(url: &str, status: u16, text: &str) {
    let mut last = (0, String::new());
    wait_for(
        &format!("{url} to answer {status} with {text:?}"),
        WAIT,
        || {
            last = get(url);
            last.0 == status && last.1.contains(text)
        },
    );
}

#[test]
fn prometheus_scrapes_what_ferry_counted() {
    let Some(prom) = prometheus_server::server() else {
        return;
    };
    let d = Deployment::new("metrics-scrape");
    d.job("two", &folder_job("in-two", &["out-a", "out-b"]));
    d.job("csv", CSV_JOB);
    for i in 0..3 {
        d.drop_file(&format!("in-two/f{i}.txt"), format!("file {i}\n"));
    }
    d.drop_file("in-csv/good1.csv", "a,b\n1,2\n");
    d.drop_file("in-csv/good2.csv", "a,b\n3,4\n");
    d.drop_file("in-csv/bad.csv", "a,b\n1,2,3\n");
    // Output 2 of job "blocked" cannot be written (its folder's parent is a file): a
    // failure that will not pass, counted for that output only.
    d.job(
        "blocked",
        &folder_job("in-blocked", &["out-ok", "not-a-folder/out"]),
    );
    d.write("not-a-folder", "a file where a folder is expected\n");
    d.drop_file("in-blocked/b1.txt", "1\n");
    d.drop_file("in-blocked/b2.txt", "2\n");
    let port = free_port();
    let mut daemon = Daemon::start(&d, &["--http", &format!("127.0.0.1:{port}")]);
    wait_http(&format!("http://127.0.0.1:{port}/healthz"), 200, "ok");
    prom.scrape("scrape", port);

    let at = |q: &str| q.replace("}", &format!(",instance=\"127.0.0.1:{port}\"}}"));
    for (series, value) in [
        (r#"ferry_files_delivered_total{job="two"}"#, 3.0),
        (r#"ferry_output_files_total{job="two",output="2"}"#, 3.0),
        (r#"ferry_output_bytes_total{job="two",output="1"}"#, 21.0),
        (r#"ferry_files_delivered_total{job="csv"}"#, 2.0),
        (r#"ferry_files_failed_total{job="csv"}"#, 1.0),
        (r#"ferry_files_taken_total{job="csv"}"#, 3.0),
        (r#"ferry_bytes_in_total{job="csv"}"#, 16.0),
        (r#"ferry_processing_seconds_count{job="two"}"#, 3.0),
        (r#"ferry_source_up{job="csv"}"#, 1.0),
        (r#"ferry_retry_queue_files{job="two"}"#, 0.0),
        // Failures per output: only the output that could not be written.
        (
            r#"ferry_output_failed_total{job="blocked",output="2"}"#,
            2.0,
        ),
        (
            r#"ferry_output_failed_total{job="blocked",output="1"}"#,
            0.0,
        ),
        (r#"ferry_files_failed_total{job="blocked"}"#, 2.0),
        // A record the file's data breaks is not an output's failure.
        (r#"ferry_output_failed_total{job="csv",output="1"}"#, 0.0),
    ] {
        prom.wait_value(&at(series), value);
    }
    let since = prom.query(&at(
        r#"time() - ferry_last_success_timestamp_seconds{job="two"}"#,
    ));
    assert!(
        since.len() == 1 && (0.0..3600.0).contains(&since[0]),
        "the last success is recent: {since:?}"
    );
    let journal = prom.query(&format!(
        "ferry_journal_bytes{{instance=\"127.0.0.1:{port}\"}}"
    ));
    assert!(journal.len() == 1 && journal[0] > 0.0, "{journal:?}");

    // The shipped alert rules load into a real Prometheus.
    let rules = prom.api("/api/v1/rules");
    let loaded: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["health"] == "ok")
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(loaded.contains(&"FerryJobNoSuccess"), "{rules}");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn readyz_says_what_is_not_ready() {
    let d = Deployment::new("metrics-readyz");
    let port = free_port();
    // The address from ferry.toml, this time.
    d.write("ferry.toml", format!("http = \"127.0.0.1:{port}\"\n"));
    d.job("good", &folder_job("in", &["out"]));
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    let ready = format!("http://127.0.0.1:{port}/readyz");
    wait_http(&ready, 200, "ready");
    wait_http(&format!("http://127.0.0.1:{port}/healthz"), 200, "ok");

    d.job("broken", "[source]\nfolder = 1\n");
    wait_http(&ready, 503, "job broken: the job file");
    let body = get(&ready).1;
    assert!(body.contains("broken.toml:2:"), "file:line:col: {body}");
    assert!(!body.contains("job good"), "{body}");

    std::fs::remove_file(d.path("jobs/broken.toml")).unwrap();
    wait_http(&ready, 200, "ready");
    std::fs::remove_dir_all(d.path("in")).unwrap();
    wait_http(&ready, 503, "job good: the source folder");
    d.mkdir("in");
    wait_http(&ready, 200, "ready");
    assert_eq!(daemon.stop(), Some(0));
    // Stopped with the daemon.
    assert_eq!(get(&ready).0, 0);
}

#[test]
fn a_non_loopback_address_without_authentication_is_refused() {
    let d = Deployment::new("metrics-refused");
    d.job("j", &folder_job("in", &["out"]));
    let o = d.run(&["run", "--http", "0.0.0.0:18099"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("0.0.0.0:18099: refusing to serve"),
        "{}",
        stderr(&o)
    );
    assert!(!d.path("var/state").exists(), "nothing was started");

    d.write("ferry.toml", "http = \"192.0.2.1:8080\"\n");
    let o = d.run(&["run"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("authentication"), "{}", stderr(&o));

    d.write("ferry.toml", "workers = 2\nhttp = \"localhost\"\n");
    let o = d.run(&["run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ferry.toml:2:8: http: expected an address and port"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_once_off_a_terminal_logs_plain_lines() {
    let d = Deployment::new("metrics-plain");
    d.job("j", &folder_job("in", &["out"]));
    for i in 0..20 {
        d.drop_file(&format!("in/f{i}.txt"), "x");
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("File done.").count(), 20, "{err}");
    assert!(err.contains("Run finished"), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b') && !err.contains("files done"),
        "no progress line, no terminal codes: {err:?}"
    );
}

#[test]
fn run_once_on_a_terminal_shows_progress() {
    // util-linux' script(1) gives ferry a pseudo-terminal as stderr.
    if !have("script") {
        assert!(!require_tools(), "script (util-linux) is missing");
        return;
    }
    let d = Deployment::new("metrics-tty");
    d.job("j", &folder_job("in", &["out"]));
    for i in 0..50 {
        d.drop_file(&format!("in/f{i}.txt"), "x");
    }
    let cmd = format!("'{}' run --once", BIN.replace('\'', r"'\''"));
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&d.root)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    let screen = stdout(&o);
    assert!(
        screen.contains("50/50 files done, 0 failed, 0 waiting"),
        "{screen}"
    );
    assert_eq!(d.files("out").len(), 50);
}

#[test]
fn the_alert_rules_pass_promtool() {
    if !have("promtool") {
        assert!(
            !require_tools(),
            "promtool (Debian package prometheus) is missing"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for args in [
        ["check", "rules", "install/ferry-alerts.yml"],
        ["test", "rules", "tests/alerts/ferry-alerts.test.yml"],
    ] {
        let o = Command::new("promtool")
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}

/// The value of one series in ferry's `/metrics` (`name{labels}` exactly as written).
fn scraped(port: u16, series: &str) -> Option<f64> {
    let (_, body) = get(&format!("http://127.0.0.1:{port}/metrics"));
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_destination_that_goes_read_only_shows_in_the_retry_gauges() {
    let d = Deployment::new("metrics-retry");
    let Some(share) = Share::mount(&d, "mnt") else {
        return;
    };
    d.mkdir("mnt/out");
    d.mkdir("in");
    d.job(
        "share",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"mnt/out\"\n\n[retry]\nevery = \"200ms\"\nmax = \"1s\"\nfor = \"forever\"\n",
    );
    let port = free_port();
    let mut daemon = Daemon::start(&d, &["--http", &format!("127.0.0.1:{port}")]);
    wait_http(&format!("http://127.0.0.1:{port}/healthz"), 200, "ok");
    share.remount("ro");
    for i in 0..3 {
        d.drop_file(&format!("in/f{i}.txt"), "x");
    }
    let queue = r#"ferry_retry_queue_files{job="share"}"#;
    let paused = r#"ferry_paused_destinations{job="share"}"#;
    wait_for(
        "3 files in the retry queue, 1 destination paused",
        WAIT,
        || scraped(port, queue) == Some(3.0) && scraped(port, paused) == Some(1.0),
    );
    assert_eq!(
        scraped(port, r#"ferry_files_delivered_total{job="share"}"#),
        Some(0.0)
    );
    let failed = scraped(port, r#"ferry_output_failed_total{job="share",output="1"}"#);
    assert!(
        failed.is_some_and(|n| n >= 3.0),
        "each failed write to the output is counted: {failed:?}"
    );
    share.remount("rw");
    wait_for("the queue delivered and empty", WAIT, || {
        scraped(port, r#"ferry_files_delivered_total{job="share"}"#) == Some(3.0)
            && scraped(port, queue) == Some(0.0)
            && scraped(port, paused) == Some(0.0)
    });
    assert_eq!(daemon.stop(), Some(0));
}
