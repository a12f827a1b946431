//! Checks across the job files of a deployment: jobs that feed each other in a loop (through
//! any number of jobs, or through a symlink alias), overlaps reported with every other
//! problem in one `check`, and `*.toml` entries that are not regular files.

mod util;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use util::*;

/// How long a wait for something the daemon must do may take (not a performance bound).
const DEADLINE: Duration = Duration::from_secs(90);

/// A job from `src` into `out` that polls fast.
fn job(src: &str, out: &str) -> String {
    format!(
        "[source]\nfolder = \"{src}\"\nsettle = \"200ms\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"{out}\"\n"
    )
}

/// Runs `ferry check`, failing the test if it does not end within the deadline (a job
/// file that is a FIFO must never block it).
fn check(d: &Deployment) -> Output {
    let mut child = d
        .cmd(&["check"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("ferry check did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn check_refuses_two_jobs_that_feed_each_other() {
    let d = Deployment::new("loop2");
    d.job("a", &job("var/a", "var/b"));
    d.job("b", &job("var/b", "var/a"));
    d.job("c", &job("var/c", "var/out"));
    let o = check(&d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let root = d.root.display();
    assert!(
        err.contains(&format!(
            "jobs/a.toml:7:10: output[1].folder: {root}/var/b leads into the source folder of `b`, {root}/var/b (jobs/b.toml:2:10): the jobs feed each other in a loop, a → b → a"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "jobs/b.toml:7:10: output[1].folder: {root}/var/a leads into the source folder of `a`, {root}/var/a (jobs/a.toml:2:10): the jobs feed each other in a loop, a → b → a"
        )),
        "{err}"
    );
    assert!(err.contains("left out: job `a` (jobs/a.toml) does not run: it is part of a loop of jobs feeding each other (a → b → a)"), "{err}");
    assert!(err.contains("left out: job `b`"), "{err}");
    assert!(!err.contains("`c`"), "{err}");
    assert!(stdout(&o).contains("ok: c"), "{}", stdout(&o));
}

#[test]
fn check_refuses_a_loop_through_three_jobs() {
    let d = Deployment::new("loop3");
    d.job("a", &job("var/a", "var/b"));
    d.job("b", &job("var/b", "var/c"));
    // An archive folder counts too: `c` archives its originals into `a`'s source.
    d.job(
        "c",
        &format!(
            "{}\n[after]\narchive = \"var/a\"\n",
            job("var/c", "var/done")
        ),
    );
    let o = check(&d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("jobs/a.toml:7:10: output[1].folder:"), "{err}");
    assert!(err.contains("jobs/b.toml:7:10: output[1].folder:"), "{err}");
    assert!(err.contains("jobs/c.toml:10:11: after.archive:"), "{err}");
    assert_eq!(err.matches("a → b → c → a").count(), 6, "{err}");
    for name in ["a", "b", "c"] {
        assert!(err.contains(&format!("left out: job `{name}`")), "{err}");
    }
}

#[test]
fn check_refuses_a_job_whose_output_is_its_own_source_through_a_symlink() {
    let d = Deployment::new("loop-alias");
    d.mkdir("var/in");
    std::os::unix::fs::symlink("in", d.path("var/alias")).unwrap();
    d.job("self", &job("var/in", "var/alias"));
    let o = check(&d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let root = d.root.display();
    assert!(
        err.contains(&format!(
            "jobs/self.toml:7:10: output[1].folder: {root}/var/alias leads into the job's own source folder {root}/var/in (jobs/self.toml:2:10)"
        )),
        "{err}"
    );
    assert!(err.contains("left out: job `self`"), "{err}");
}

#[test]
fn an_intended_loop_is_accepted_when_a_job_says_so() {
    let d = Deployment::new("loop-allowed");
    d.job("a", &job("var/a", "var/b"));
    d.job(
        "b",
        &job("var/b", "var/a").replace("[source]\n", "[source]\nallow_cycle = true\n"),
    );
    let o = check(&d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 job file(s) valid"), "{}", stdout(&o));
}

#[test]
fn one_check_reports_a_syntax_error_and_an_overlap_together() {
    let d = Deployment::new("check-all");
    d.job("broken", "[source\nfolder = \"var/x\"\n");
    d.job(
        "x",
        "[source]\nfolder = \"var/in\"\ninclude = [\"*.csv\"]\n",
    );
    d.job("y", "[source]\nfolder = \"var/in\"\n");
    // A job with an error of its own still has its overlap reported; the valid job it
    // overlaps still runs (a broken job file never stops the others).
    d.job("p", "[source]\nfolder = \"var/pdf\"\nsettle = \"soon\"\n");
    d.job("q", "[source]\nfolder = \"var/pdf\"\n");
    let o = check(&d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("jobs/broken.toml:1:8: TOML syntax"), "{err}");
    assert!(
        err.contains(
            "jobs/y.toml:2:10: source.folder: jobs `x` and `y` would both take the same files"
        ),
        "{err}"
    );
    assert!(err.contains("jobs/p.toml:3:10: source.settle"), "{err}");
    assert!(
        err.contains(
            "jobs/q.toml:2:10: source.folder: jobs `p` and `q` would both take the same files"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "left out: job `x` (jobs/x.toml) does not run: it would take the same files as `y`"
        ),
        "{err}"
    );
    assert!(err.contains("left out: job `y`"), "{err}");
    assert!(!err.contains("left out: job `q`"), "{err}");
    assert!(stdout(&o).contains("ok: q"), "{}", stdout(&o));
    assert!(
        err.contains("4 problem(s); 1 of 5 job file(s) valid"),
        "{err}"
    );
}

#[test]
fn job_files_that_are_fifos_devices_or_dangling_links_are_reported() {
    let d = Deployment::new("job-fifo");
    mkfifo(&d.path("jobs/pipe.toml"));
    std::os::unix::fs::symlink("/dev/null", d.path("jobs/dev.toml")).unwrap();
    std::os::unix::fs::symlink("pipe.toml", d.path("jobs/link.toml")).unwrap();
    std::os::unix::fs::symlink("nowhere.toml", d.path("jobs/gone.toml")).unwrap();
    d.job("good", &job("var/in", "var/out"));
    let o = check(&d);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("jobs/pipe.toml:1:1: this is a FIFO (named pipe), not a regular file; the job file is skipped"), "{err}");
    assert!(err.contains("jobs/dev.toml:1:1: this is a symlink to /dev/null which is a character device, not a regular file"), "{err}");
    assert!(
        err.contains(
            "jobs/link.toml:1:1: this is a symlink to pipe.toml which is a FIFO (named pipe)"
        ),
        "{err}"
    );
    assert!(
        err.contains("jobs/gone.toml:1:1: a symlink to nowhere.toml that cannot be followed"),
        "{err}"
    );
    assert!(stdout(&o).contains("ok: good"), "{}", stdout(&o));
    // `ferry test` on the FIFO itself never blocks either.
    let t = d.run(&["test", "jobs/pipe.toml", "jobs/good.toml"]);
    assert!(stderr(&t).contains("FIFO (named pipe)"), "{}", stderr(&t));
}

#[test]
fn the_daemon_leaves_out_jobs_in_a_loop_and_runs_the_others() {
    let d = Deployment::new("loop-daemon");
    d.job("a", &job("var/a", "var/b"));
    d.job("b", &job("var/b", "var/a"));
    d.job("c", &job("var/c", "var/out"));
    mkfifo(&d.path("jobs/pipe.toml"));
    d.drop_file("var/a/one.txt", "1");
    let mut daemon = Daemon::start(&d, &[]);
    d.wait_log("jobs/pipe.toml:1:1: this is a FIFO (named pipe)", 1);
    d.wait_log("a → b → a", 1);
    d.drop_file("var/c/two.txt", "2");
    wait_for("c's output", DEADLINE, || {
        d.path("var/out/two.txt").exists()
    });
    // `a` never started: its file is where it was dropped, and nothing went round.
    assert_eq!(d.files("var/a"), vec!["one.txt"]);
    assert!(d.files("var/b").is_empty());
    let logs = d.logs();
    assert!(logs.contains("The job is left out"), "{logs}");
    // (The exit code after a stop with invalid job files is another part's concern.)
    daemon.stop();
}

#[test]
fn a_reload_that_would_close_a_loop_does_not_start_the_new_job() {
    let d = Deployment::new("loop-reload");
    d.job("a", &job("var/a", "var/b"));
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("var/a/one.txt", "1");
    wait_for("a's first output", DEADLINE, || {
        d.path("var/b/one.txt").exists()
    });
    d.job("b", &job("var/b", "var/a"));
    d.wait_log("a → b → a", 1);
    d.wait_log("The job is left out; the running version keeps running.", 1);
    d.drop_file("var/a/two.txt", "2");
    // Delivered, then the original archived a moment later: wait for both.
    wait_for(
        "a's second output and its original archived",
        DEADLINE,
        || d.path("var/b/two.txt").exists() && d.files("var/a").is_empty(),
    );
    // `b` never started: both files stay in its source, none went back to `a`.
    assert_eq!(d.files("var/b"), vec!["one.txt", "two.txt"]);
    assert!(d.files("var/a").is_empty());
    assert!(!d.logs().contains("New job file; starting the job"));
    assert_eq!(daemon.stop(), Some(0));
}

/// `ferry schema` prints a valid draft-07 JSON Schema that takes every example job of
/// jobs/ and refuses a key no job file may have.
#[test]
fn schema_is_valid_takes_the_example_jobs_and_refuses_unknown_keys() {
    let d = Deployment::new("schema");
    let out = d.run(&["schema"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let validator = jsonschema::draft7::new(&schema).expect("a draft-07 schema");
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&jobs).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let job: serde_json::Value = toml::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let errors: Vec<String> = validator
            .iter_errors(&job)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", p.display());
        seen += 1;
    }
    assert!(seen >= 10, "the example jobs were read ({seen})");
    for bad in [
        "[source]\nfolder = \"in\"\nsettel = \"2s\"\n",
        "[source]\nfolder = \"in\"\n[[output]]\nfolder = \"out\"\nexsits = \"unique\"\n",
        "[source]\nfolder = \"in\"\n[after]\nsuccess = \"archiv\"\n",
        "[source]\nfolder = \"in\"\nsettle = \"2 weeks\"\n",
        "colour = \"blue\"\n[source]\nfolder = \"in\"\n",
    ] {
        let job: serde_json::Value = toml::from_str(bad).unwrap();
        assert!(!validator.is_valid(&job), "the schema took {bad:?}");
    }
}
