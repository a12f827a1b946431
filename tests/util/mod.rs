//! Helpers for integration tests that drive the built `ferry` binary in a temporary
//! deployment folder (`jobs/`, `var/`), in the spirit of ripgrep's tests/util.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// A temporary deployment: `root/jobs`, `root/var/...`. Removed on drop unless the test
/// failed (then it is left for inspection and its path printed).
pub struct Deployment {
    pub root: PathBuf,
}

impl Deployment {
    /// Drops a file the way a careful writer does: written under `staging/`, then renamed
    /// into `rel` (its folder made first).
    pub fn drop_file(&self, rel: &str, content: impl AsRef<[u8]>) {
        let staged = self.write(&format!("staging/{}", rel.replace('/', "_")), content);
        let dest = self.path(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::rename(staged, dest).unwrap();
    }

    /// Waits (at most [`WAIT`]) until `rel` exists.
    pub fn wait_exists(&self, rel: &str) {
        let p = self.path(rel);
        wait_for(&format!("{rel} to exist"), WAIT, || p.exists());
    }

    /// Waits (at most [`WAIT`]) until the log says `what` at least `n` times.
    pub fn wait_log(&self, what: &str, n: usize) {
        wait_for(
            &format!("the log to say {what:?} {n} time(s)"),
            WAIT,
            || self.logs().matches(what).count() >= n,
        );
    }

    pub fn new(name: &str) -> Deployment {
        let base = std::env::var_os("FERRY_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let root = base.join(format!(
            "ferry-it-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(root.join("jobs")).unwrap();
        Deployment { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `jobs/NAME.toml`.
    pub fn job(&self, name: &str, toml: &str) -> PathBuf {
        let p = self.root.join("jobs").join(format!("{name}.toml"));
        std::fs::write(&p, toml).unwrap();
        p
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(&self.root).args(args);
        c.env_remove("RUST_LOG");
        c
    }

    /// Runs a ferry command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Starts `ferry run` in the background (stdout/stderr to var/ferry-N.log).
    pub fn spawn(&self, extra: &[&str]) -> Child {
        std::fs::create_dir_all(self.root.join("var")).unwrap();
        let n = std::fs::read_dir(self.root.join("var")).unwrap().count();
        let log = std::fs::File::create(self.root.join(format!("var/ferry-{n}.log"))).unwrap();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        self.cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    /// Every log written by spawned daemons, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.root.join("var")) {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.extension().is_some_and(|e| e == "log") {
                    s.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        s
    }

    /// Regular files below `rel`, relative to it, sorted; hidden names (temporary files)
    /// included so tests can assert none are left.
    pub fn files(&self, rel: &str) -> Vec<String> {
        files_below(&self.root.join(rel))
    }

    /// `ferry history --json --limit 0` parsed.
    pub fn history(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["history", "--json", "--limit", "0"]);
        assert!(
            out.status.success(),
            "history failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test deployment kept for inspection: {}",
                self.root.display()
            );
            eprintln!("--- ferry logs ---\n{}", self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Waits until `f` returns true, polling every 20 ms; panics with `what` after `deadline`.
/// How long the `wait_*` helpers wait before they fail the test.
pub const WAIT: Duration = Duration::from_secs(90);

pub fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for: {what}");
}

/// Sends a signal to a child and waits for it to exit, returning its exit code (None when
/// killed by a signal).
pub fn signal_and_wait(child: &mut Child, sig: i32, deadline: Duration) -> Option<i32> {
    // SAFETY: kill(2) with a pid we own.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("ferry did not exit within {deadline:?} after signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether tests that need real external tools must run (set by the project's test
/// script): then a missing tool fails the test instead of skipping it.
pub fn require_tools() -> bool {
    std::env::var_os("FERRY_REQUIRE_TOOLS").is_some()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// A `ferry run` in the background, killed when the test ends (even on panic), so that no
/// daemon outlives its test or keeps a mount busy.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    pub fn start(d: &Deployment, extra: &[&str]) -> Daemon {
        Daemon {
            child: d.spawn(extra),
        }
    }

    /// Sends `sig` and waits for the exit; returns the exit code (None: killed by it).
    pub fn stop_with(&mut self, sig: i32) -> Option<i32> {
        signal_and_wait(&mut self.child, sig, Duration::from_secs(60))
    }

    /// Stops it gracefully; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Deterministic, non-repeating test content.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Regular files below `base`, relative to it, sorted, hidden names included.
pub fn files_below(base: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(base)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        // The lock a source folder holds against a second deployment (README, "Two
        // deployments"), not a file of the test's.
        .filter(|e| e.file_name() != ".ferry.lock")
        .map(|e| {
            e.path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

/// Sets the test clock (RFC 3339) that [`Deployment::clocked`] commands read
/// (`FERRY_TEST_CLOCK`), atomically: the daemon never reads half a time.
pub fn set_clock(d: &Deployment, at: &str) {
    let tmp = d.write("clock.tmp", at);
    std::fs::rename(tmp, d.path("clock")).unwrap();
}

impl Deployment {
    /// A ferry command with the test clock (the file [`set_clock`] writes).
    pub fn clocked(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.env("FERRY_TEST_CLOCK", self.path("clock"));
        c
    }
}

/// A ferry command with the test clock, run to its end.
pub fn ferry(d: &Deployment, args: &[&str]) -> Output {
    d.clocked(args).output().unwrap()
}

/// `ferry run` with the test clock and the variables `env`, its log in var/ferry-N.log.
pub fn start_clocked(d: &Deployment, env: &[(&str, &str)]) -> Daemon {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let n = std::fs::read_dir(d.path("var")).unwrap().count();
    let log = std::fs::File::create(d.path(&format!("var/ferry-{n}.log"))).unwrap();
    let child = d
        .clocked(&["run"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    Daemon { child }
}

/// A tmpfs mounted at a folder of the deployment: a share that can go away (remounted
/// read-only) and come back. Unmounted on drop.
pub struct Share {
    dir: PathBuf,
}

impl Share {
    /// `None` (the test is skipped) when mounting is not possible here (not root, no
    /// mount), unless the test script requires the tools.
    pub fn mount(d: &Deployment, rel: &str) -> Option<Share> {
        let dir = d.mkdir(rel);
        let ok = have("mount")
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !require_tools(),
                "cannot mount a tmpfs at {} (the test needs root)",
                dir.display()
            );
            eprintln!("skipped: cannot mount a tmpfs (not root?)");
            return None;
        }
        Some(Share { dir })
    }

    /// `mount -o remount,MODE` (`ro`, `rw`).
    pub fn remount(&self, mode: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(s.success(), "remount {mode}");
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
