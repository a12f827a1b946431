//! Running as a Linux service (issue 13): the systemd unit and install script, the
//! sd_notify protocol (ready, watchdog, reload, stopping), SIGHUP reloads, logs for
//! journald or a rotating file, and `ferry --version`.

mod util;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::*;

/// How long a wait for something the daemon must do may take (not a performance bound).
const DEADLINE: Duration = Duration::from_secs(90);

fn job_toml(src: &str, out: &str, poll: &str) -> String {
    format!(
        "[source]\nfolder = \"{src}\"\nsettle = \"0s\"\npoll = \"{poll}\"\nwatch = \"poll\"\n\n[[output]]\nfolder = \"{out}\"\n"
    )
}

/// `ferry run` in the background with `env` set, its stderr in var/ferry-N.log.
fn spawn_with_env(d: &Deployment, args: &[&str], env: &[(&str, &str)]) -> Daemon {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let n = std::fs::read_dir(d.path("var")).unwrap().count();
    let log = std::fs::File::create(d.path(&format!("var/ferry-{n}.log"))).unwrap();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let mut c = d.cmd(&all);
    c.stdout(Stdio::null()).stderr(Stdio::from(log));
    for (k, v) in env {
        c.env(k, v);
    }
    Daemon {
        child: c.spawn().unwrap(),
    }
}

/// The messages a daemon sends to `NOTIFY_SOCKET`, as systemd would receive them.
struct NotifySocket {
    sock: UnixDatagram,
    path: String,
    got: Vec<String>,
}

impl NotifySocket {
    fn bind(d: &Deployment) -> NotifySocket {
        let path = d.path("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            sock,
            path: path.to_string_lossy().into_owned(),
            got: Vec::new(),
        }
    }

    /// Receives until a message holds the line `line`; returns that message.
    fn wait_for(&mut self, line: &str) -> String {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < DEADLINE {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push(msg.clone());
                if msg.lines().any(|l| l == line) {
                    return msg;
                }
            }
        }
        panic!("no {line:?} within {DEADLINE:?}; received {:?}", self.got);
    }
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_keeps_the_watchdog_fed_and_says_when_it_stops() {
    let d = Deployment::new("notify");
    d.job("j", &job_toml("in", "out", "500ms"));
    d.mkdir("in");
    let mut ns = NotifySocket::bind(&d);
    let mut daemon = spawn_with_env(
        &d,
        &[],
        &[("NOTIFY_SOCKET", &ns.path), ("WATCHDOG_USEC", "400000")],
    );
    let ready = ns.wait_for("READY=1");
    assert!(ready.contains("STATUS=Watching 1 job(s)."), "{ready:?}");
    // Ready means watching: the start-up log is complete by then.
    assert!(
        d.logs().contains("Watching the job's source folder."),
        "READY=1 before the jobs were started:\n{}",
        d.logs()
    );
    for _ in 0..3 {
        ns.wait_for("WATCHDOG=1");
    }
    d.drop_file("in/a.txt", "a");
    d.wait_exists("out/a.txt");

    // SIGHUP: reloading, then ready again.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
    let reloading = ns.wait_for("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    ns.wait_for("READY=1");

    // SIGTERM: STOPPING=1, then a clean exit.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    ns.wait_for("STOPPING=1");
    assert_eq!(daemon.stop(), Some(0), "{}", d.logs());
}

#[test]
fn run_once_sends_no_notifications() {
    // `run --once` is not a service: even with NOTIFY_SOCKET set it sends nothing.
    let d = Deployment::new("notify-once");
    d.job("j", &job_toml("in", "out", "500ms"));
    d.write("in/a.txt", "a");
    let ns = NotifySocket::bind(&d);
    let o = d
        .cmd(&["run", "--once"])
        .env("NOTIFY_SOCKET", &ns.path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut buf = [0u8; 512];
    ns.sock.set_nonblocking(true).unwrap();
    assert!(ns.sock.recv(&mut buf).is_err(), "run --once notified");
}

/// Sets a file's modification time.
fn set_mtime(p: &Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn sighup_reloads_job_files_even_an_edit_no_change_check_notices() {
    let d = Deployment::new("sighup");
    // Same length before and after each edit: size and mtime are all the folder check sees.
    let job = d.job("j", &job_toml("in", "out-aaaa", "500ms"));
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    d.drop_file("in/1.txt", "1");
    d.wait_exists("out-aaaa/1.txt");

    // An edit the folder check would notice too (new mtime): SIGHUP applies it at once.
    d.job("j", &job_toml("in", "out-bbbb", "500ms"));
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
    d.wait_log("Reloading the job files (SIGHUP).", 1);
    d.wait_log("Job file changed", 1);
    d.drop_file("in/2.txt", "2");
    d.wait_exists("out-bbbb/2.txt");

    // An edit it cannot notice: same size, the old mtime put back. The daemon goes on with
    // the version it has ...
    // (Written beside, given the old mtime, then renamed over it: never seen half done.)
    let mtime = std::fs::metadata(&job).unwrap().modified().unwrap();
    let staged = d.write("staging/j.toml", job_toml("in", "out-cccc", "500ms"));
    set_mtime(&staged, mtime);
    std::fs::rename(&staged, &job).unwrap();
    d.drop_file("in/3.txt", "3");
    d.wait_exists("out-bbbb/3.txt");
    // ... until SIGHUP reads the files again.
    unsafe { libc::kill(daemon.child.id() as i32, libc::SIGHUP) };
    d.wait_log("Reloading the job files (SIGHUP).", 2);
    d.wait_log("Job file changed", 2);
    d.drop_file("in/4.txt", "4");
    d.wait_exists("out-cccc/4.txt");
    assert_eq!(d.files("out-aaaa"), ["1.txt"]);
    assert_eq!(d.files("out-bbbb"), ["2.txt", "3.txt"]);
    assert_eq!(d.files("out-cccc"), ["4.txt"]);
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let want = format!("ferry {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "--version printed {text:?}");
    let commit = text.trim().trim_start_matches(&want).trim_end_matches(')');
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "not a short commit: {commit:?}"
    );
}

/// `run --once` with stderr in `log` and `env` set; returns the exit code.
fn run_once_logging_to(d: &Deployment, log: &Path, args: &[&str], env: &[(&str, &str)]) -> i32 {
    let mut all = vec!["run", "--once"];
    all.extend_from_slice(args);
    let mut c = d.cmd(&all);
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    c.status().unwrap().code().unwrap_or(-1)
}

/// Whether a human log line starts with ferry's own timestamp (`2026-12-03T13:50:45.669Z`).
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[4] == b'-' && b[10] == b'T' && line[..4].chars().all(|c| c.is_ascii_digit())
}

#[test]
fn under_journald_the_human_log_leaves_the_timestamp_to_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let d = Deployment::new("journald");
    d.job("j", &job_toml("in", "out", "500ms"));
    d.write("in/a.txt", "a");
    let log = d.mkdir("var").join("stderr.log");
    std::fs::File::create(&log).unwrap();
    // systemd names the stream it connected to stderr: device:inode.
    let md = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", md.dev(), md.ino());
    let code = run_once_logging_to(&d, &log, &[], &[("JOURNAL_STREAM", &stream)]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Run finished"), "{text}");
    for line in text.lines() {
        assert!(!stamped(line), "a timestamp under journald: {line:?}");
        assert!(
            line.starts_with(" INFO") || line.starts_with(" WARN") || line.starts_with("ERROR"),
            "{line:?}"
        );
    }

    // A JOURNAL_STREAM inherited by a process whose stderr goes elsewhere is not journald.
    d.write("in/b.txt", "b");
    let other = d.path("var/other.log");
    let code = run_once_logging_to(&d, &other, &[], &[("JOURNAL_STREAM", &stream)]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&other).unwrap();
    assert!(
        text.lines().count() > 1 && text.lines().all(stamped),
        "{text}"
    );

    // The JSON format keeps its timestamp field.
    d.write("in/c.txt", "c");
    let json = d.path("var/json.log");
    std::fs::File::create(&json).unwrap();
    let md = std::fs::metadata(&json).unwrap();
    let stream = format!("{}:{}", md.dev(), md.ino());
    let code = run_once_logging_to(
        &d,
        &json,
        &["--log-format", "json"],
        &[("JOURNAL_STREAM", &stream)],
    );
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&json).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["timestamp"].is_string(), "{line}");
    }
}

#[test]
fn log_file_writes_a_daily_file_instead_of_stderr() {
    let d = Deployment::new("log-file");
    d.job("j", &job_toml("in", "out", "500ms"));
    d.write("in/a.txt", "a");
    let stderr_log = d.mkdir("var").join("stderr.log");
    let code = run_once_logging_to(&d, &stderr_log, &["--log-file", "var/log/ferry.log"], &[]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&stderr_log).unwrap(), "");
    let files = d.files("var/log");
    assert_eq!(files.len(), 1, "{files:?}");
    // ferry.log.YYYY-MM-DD
    let date = files[0].strip_prefix("ferry.log.").expect("a dated name");
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{files:?}"
    );
    let text = std::fs::read_to_string(d.path("var/log").join(&files[0])).unwrap();
    assert!(
        text.contains("ferry started") && text.contains("Run finished"),
        "{text}"
    );
    assert!(text.lines().all(stamped), "{text}");

    // A log file that cannot be made stops ferry before it does anything.
    d.write("var/blocked", "a file, not a folder");
    d.write("in/b.txt", "b");
    let o = d.run(&["run", "--once", "--log-file", "var/blocked/ferry.log"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write the log file var/blocked/ferry.log"),
        "{}",
        stderr(&o)
    );
    assert!(d.path("in/b.txt").exists());
}

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install/ferry.service");
const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install/install.sh");

/// A missing tool fails the test (scripts/test.sh installs it); it never skips it.
fn require(name: &str, package: &str) {
    assert!(
        have(name),
        "{name} is not installed: these tests need it (Debian package `{package}`; scripts/test.sh installs it)"
    );
}

/// The value of `key=` in the unit (the last one, as systemd reads it).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .next_back()
        .unwrap_or_else(|| panic!("the unit sets no {key}="))
        .to_string()
}

/// `systemd-analyze verify` on `unit`, with its ExecStart pointed at `binary` (verify
/// checks that the command exists); it must say nothing.
fn verify_unit(unit: &str, binary: &Path, dir: &Path) {
    require("systemd-analyze", "systemd");
    let exec = unit_value(unit, "ExecStart");
    let program = exec.split_whitespace().next().unwrap();
    assert!(
        program.ends_with("/bin/ferry"),
        "the unit's ExecStart is not a ferry binary: {exec}"
    );
    let fixed = unit.replace(
        &format!("ExecStart={program} "),
        &format!("ExecStart={} ", binary.display()),
    );
    assert_ne!(
        fixed,
        unit,
        "ExecStart was not pointed at {}",
        binary.display()
    );
    let path = dir.join("ferry.service");
    std::fs::write(&path, fixed).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    // Unknown keys and bad values are only warnings: anything said is a failure.
    assert!(
        o.status.success() && o.stderr.is_empty() && o.stdout.is_empty(),
        "systemd-analyze verify:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let d = Deployment::new("unit-verify");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    verify_unit(&unit, Path::new(BIN), &d.root);
    // And verify does catch a broken unit.
    let broken = unit.replace("ProtectSystem=strict", "ProtectSystem=strictly");
    let path = d.path("ferry.service");
    std::fs::write(
        &path,
        broken.replace("ExecStart=/usr/bin/ferry ", &format!("ExecStart={BIN} ")),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !o.stderr.is_empty(),
        "verify said nothing about a bad value"
    );
}

#[test]
fn the_unit_stops_gracefully_and_leaves_shares_writable() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let secs = |v: &str| -> u64 {
        let v = v.trim();
        v.strip_suffix("min")
            .map(|m| m.parse::<u64>().unwrap() * 60)
            .unwrap_or_else(|| v.trim_end_matches('s').parse().unwrap())
    };
    let exec = unit_value(&unit, "ExecStart");
    let grace = exec
        .split_once("--grace ")
        .map(|(_, g)| secs(g.split_whitespace().next().unwrap()))
        .expect("ExecStart gives --grace");
    // `ferry run`'s default --grace is 30s; the unit may not cut a stop shorter.
    assert!(grace >= 30, "{exec}");
    let stop = secs(&unit_value(&unit, "TimeoutStopSec"));
    assert!(
        stop > grace,
        "TimeoutStopSec={stop}s is not longer than --grace {grace}s"
    );
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    assert_eq!(unit_value(&unit, "User"), "ferry");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value(&unit, "WorkingDirectory"), "/var/lib/ferry");
    assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
    let rw = unit_value(&unit, "ReadWritePaths");
    for p in ["/var/lib/ferry", "/mnt", "/srv", "/media"] {
        assert!(
            rw.split_whitespace()
                .any(|w| w.trim_start_matches('-') == p),
            "{rw}"
        );
    }
    // The install script creates the deployment the unit runs in.
    let script = std::fs::read_to_string(INSTALL_SH).unwrap();
    assert!(
        script.contains("home=/var/lib/ferry\n"),
        "install.sh's deployment is not the unit's"
    );
}

#[test]
fn the_install_script_is_valid_bash_and_passes_shellcheck() {
    let o = Command::new("bash")
        .args(["-n", INSTALL_SH])
        .output()
        .unwrap();
    assert!(o.status.success(), "bash -n: {}", stderr(&o));
    require("shellcheck", "shellcheck");
    let o = Command::new("shellcheck").arg(INSTALL_SH).output().unwrap();
    assert!(
        o.status.success(),
        "shellcheck:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn the_install_script_stages_a_verifiable_install_and_an_upgrade_keeps_the_state() {
    let d = Deployment::new("install-staged");
    let stage = d.mkdir("stage");
    let install = |binary: &str| {
        let o = Command::new("bash")
            .arg(INSTALL_SH)
            .arg(binary)
            .env("DESTDIR", &stage)
            .env_remove("PREFIX")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "install.sh: {}{}",
            stdout(&o),
            stderr(&o)
        );
        o
    };
    let o = install(BIN);
    assert!(stdout(&o).contains("(commit "), "{}", stdout(&o));
    let bin = stage.join("usr/local/bin/ferry");
    assert_eq!(read(&bin), read(Path::new(BIN)));
    for dir in ["var/lib/ferry/jobs", "var/lib/ferry/var", "var/log/ferry"] {
        assert!(stage.join(dir).is_dir(), "{dir}");
    }
    let unit = std::fs::read_to_string(stage.join("etc/systemd/system/ferry.service")).unwrap();
    // The unit as the package installs it, with ExecStart pointed at install.sh's binary.
    let packaged = std::fs::read_to_string(UNIT).unwrap();
    assert!(
        packaged.contains("\nExecStart=/usr/bin/ferry "),
        "{packaged}"
    );
    assert_eq!(
        unit,
        packaged.replace(
            "\nExecStart=/usr/bin/ferry ",
            "\nExecStart=/usr/local/bin/ferry "
        )
    );
    verify_unit(&unit, &bin, &d.root);

    // An upgrade over it: the binary is replaced, the jobs and the journal are kept.
    let job = stage.join("var/lib/ferry/jobs/j.toml");
    std::fs::write(&job, job_toml("in", "out", "1s")).unwrap();
    let journal = stage.join("var/lib/ferry/var/state/journal.sqlite");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, "the journal").unwrap();
    std::fs::write(&bin, "an old release").unwrap();
    install(BIN);
    assert_eq!(read(&bin), read(Path::new(BIN)));
    assert_eq!(read(&journal), b"the journal");
    assert_eq!(read(&job), job_toml("in", "out", "1s").as_bytes());

    // A missing binary is said plainly and nothing is installed.
    let o = Command::new("bash")
        .arg(INSTALL_SH)
        .arg(d.path("no-such-ferry"))
        .env("DESTDIR", d.path("stage2"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no ferry binary at"), "{}", stderr(&o));
    assert!(!d.path("stage2").exists());
}
