mod util;

// The delivery guarantees, checked end to end against the built binary: exactly once across
// SIGKILL crashes, atomic outputs, failures that lose nothing, hostile file names, dry runs
// that change nothing, and a backlog at small scale.
//
// No assertion depends on timing: states are waited for with `wait_for` deadlines, and
// sleeps only pace the crash loops and the observer thread. Random choices (crash times,
// worker counts, file sizes) come from a seeded PRNG whose seed is printed;
// `FERRY_TEST_SEED=N` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use util::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A small deterministic PRNG (splitmix64): reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    /// Seeded from `FERRY_TEST_SEED` when set (to replay a failure), else from the clock.
    fn from_env_or_time(test: &str) -> Rng {
        let seed = std::env::var("FERRY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{test}: seed {seed} (replay with FERRY_TEST_SEED={seed})");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha_file(p: &Path) -> String {
    sha(&read(p))
}

/// Every regular file below `dir` (absolute paths); none when it does not exist.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// Hidden temporary files ferry writes (`.ferry-out-*`, `.ferry-tmp-*`) anywhere below `dir`.
fn ferry_temps(dir: &Path) -> Vec<PathBuf> {
    walk_files(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".ferry-"))
        })
        .collect()
}

/// The regular files directly in `dir`, by name, with their content.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if e.file_type().unwrap().is_file() {
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    read(&e.path()),
                );
            }
        }
    }
    out
}

fn names(map: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    map.keys().cloned().collect()
}

/// Everything below `root` with what identifies its state: kind, size, mtime and, for files,
/// the sha256 of the content.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
    {
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let what = if md.is_file() {
            format!(
                "file size={} mtime={}.{} sha256={}",
                md.len(),
                md.mtime(),
                md.mtime_nsec(),
                sha_file(e.path())
            )
        } else if md.is_dir() {
            format!("dir mtime={}.{}", md.mtime(), md.mtime_nsec())
        } else {
            format!("other mode={:o}", md.mode())
        };
        out.insert(rel, what);
    }
    out
}

/// Two snapshots of a deployment are the same, except for what SQLite itself does when the
/// journal is opened read-only: it may create its shared-memory index (`-shm`) and an empty
/// write-ahead log (`-wal`) beside the database (hence the state folder's mtime). The
/// database itself must be byte for byte unchanged, and any new `-wal` empty.
fn assert_unchanged(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changed = Vec::new();
    for k in keys {
        let (b, a) = (before.get(k), after.get(k));
        if b == a {
            continue;
        }
        let sqlite_side = match k.as_str() {
            "var/state" => b.is_some() && a.is_some(),
            "var/state/journal.sqlite-shm" => true,
            "var/state/journal.sqlite-wal" => {
                b.is_none() && a.is_some_and(|a| a.starts_with("file size=0 "))
            }
            _ => false,
        };
        if !sqlite_side {
            changed.push(format!("{k}: {b:?} -> {a:?}"));
        }
    }
    assert!(before.contains_key("var/state/journal.sqlite"));
    assert!(
        changed.is_empty(),
        "ferry test changed:\n{}",
        changed.join("\n")
    );
}

fn run_ok(d: &Deployment, args: &[&str]) -> std::process::Output {
    let o = d.run(args);
    assert!(
        o.status.success(),
        "ferry {args:?} exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// The history records whose file name is `name`.
fn history_of<'a>(h: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    h.iter()
        .filter(|r| {
            Path::new(r["path"].as_str().unwrap())
                .file_name()
                .is_some_and(|n| n == name)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Exactly once across crashes
// ---------------------------------------------------------------------------------------

/// The content of input file `i`: distinct for every file of non-zero size; some are empty,
/// some about 100 KiB, most a few KiB.
fn crash_input(rng: &mut Rng, i: usize) -> (String, Vec<u8>) {
    let name = format!("f{i:04}.dat");
    let size = match i % 25 {
        0 | 13 => 0,
        7 => rng.range(100 << 10, 110 << 10) as usize,
        _ => rng.range(1, 6000) as usize,
    };
    let mut content = format!("{name}\n").into_bytes();
    content.extend(rng.bytes(size));
    content.truncate(size);
    (name, content)
}

#[test]
fn exactly_once_across_sigkill_crashes() {
    let mut rng = Rng::from_env_or_time("exactly_once_across_sigkill_crashes");
    let d = Deployment::new("exactly-once");
    // max_attempts is raised: a file that happens to be in flight at several kills must be
    // retried, not set aside (that is the poison-file guarantee, tested elsewhere).
    d.job(
        "eo",
        r#"[source]
folder = "in"
settle = "0s"
poll = "100ms"

[[output]]
folder = "var/out/a"
exists = "unique"

[[output]]
folder = "var/out/b"
exists = "unique"

[after]
success = "archive"
max_attempts = 1000
"#,
    );
    d.mkdir("in");
    let mut inputs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut next = 0usize;
    let mut drop_files = |d: &Deployment, rng: &mut Rng, n: usize| {
        for _ in 0..n {
            let (name, content) = crash_input(rng, next);
            next += 1;
            d.write(&format!("in/{name}"), &content);
            inputs.insert(name, content);
        }
    };
    drop_files(&d, &mut rng, 320);

    for round in 1..=8 {
        // Few workers, so that the backlog lasts several rounds and kills land mid-flight.
        let workers = rng.range(1, 3).to_string();
        let mut child = d.spawn(&["--workers", &workers]);
        let ms = rng.range(50, 400);
        std::thread::sleep(Duration::from_millis(ms));
        signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(20));
        let left = d.files("in").len();
        let delivered = d.files("var/out/a").len();
        println!(
            "round {round}: {workers} worker(s), killed after {ms} ms; {left} in the source, {delivered} in out/a"
        );
        // Files arriving while ferry is down.
        drop_files(&d, &mut rng, 15);
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the final run --once failed:\n{}\n{}",
        stderr(&o),
        d.logs()
    );

    // What recovery did at each start (for the record: which windows the kills hit).
    for line in (d.logs() + &stderr(&o)).lines() {
        if line.contains("Recovered files") {
            println!("{}", line.trim());
        }
    }

    let expected: BTreeSet<String> = inputs.keys().cloned().collect();
    assert!(expected.len() >= 400, "{} inputs", expected.len());
    for out in ["var/out/a", "var/out/b", "var/archive/eo"] {
        let got = contents(&d.path(out));
        let got_names = names(&got);
        let missing: Vec<_> = expected.difference(&got_names).collect();
        let extra: Vec<_> = got_names.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{out}: missing {missing:?}, unexpected (duplicates or temporaries) {extra:?}"
        );
        for (name, bytes) in &got {
            assert!(
                bytes == &inputs[name],
                "{out}/{name}: content differs from the input ({} bytes, expected {})",
                bytes.len(),
                inputs[name].len()
            );
        }
        // No subfolders or other entries either.
        assert_eq!(
            walk_files(&d.path(out)).len(),
            expected.len(),
            "{out} has files in subfolders"
        );
    }
    assert_eq!(
        d.files("in"),
        Vec::<String>::new(),
        "the source is not empty"
    );
    assert!(
        !d.path("var/error").exists() || walk_files(&d.path("var/error")).is_empty(),
        "files went to the error folder: {:?}",
        walk_files(&d.path("var/error"))
    );
    let temps = ferry_temps(&d.path("var"));
    assert!(temps.is_empty(), "temporary files left: {temps:?}");

    let h = d.history();
    assert_eq!(
        h.len(),
        expected.len(),
        "expected one history record per input"
    );
    let mut seen = BTreeSet::new();
    for r in &h {
        let path = r["path"].as_str().unwrap();
        let name = Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(seen.insert(name.clone()), "two records for {name}");
        assert_eq!(r["state"], "done", "{r}");
        let outs = r["outputs"].as_array().unwrap();
        assert_eq!(outs.len(), 2, "{r}");
        for (o, dir) in outs.iter().zip(["var/out/a", "var/out/b"]) {
            assert_eq!(
                Path::new(o["path"].as_str().unwrap()),
                d.path(dir).join(&name),
                "{r}"
            );
            assert_eq!(o["sha256"], sha(&inputs[&name]), "{r}");
        }
    }
    assert_eq!(seen, expected);
}

/// Killed just after start, while many files of two jobs are claimed and their temporary
/// outputs are being written: after recovery no temporary file may be left in any output
/// folder. (A temporary output created before its claim was durable used to be left behind
/// whenever the next run gave the claim's id to a file of another job.)
#[test]
fn no_temporary_output_outlives_sigkill_crashes() {
    let mut rng = Rng::from_env_or_time("no_temporary_output_outlives_sigkill_crashes");
    let d = Deployment::new("crash-temps");
    let mut inputs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for j in ["ja", "jb"] {
        d.job(
            j,
            &format!(
                "[source]\nfolder = \"in/{j}\"\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"var/out/{j}\"\nexists = \"unique\"\n\n[after]\nsuccess = \"delete\"\nmax_attempts = 1000\n"
            ),
        );
        for i in 0..160 {
            let name = format!("{j}-{i:03}.bin");
            let mut content = format!("{name}\n").into_bytes();
            content.extend(rng.bytes(192 << 10));
            d.write(&format!("in/{j}/{name}"), &content);
            inputs.insert(name, content);
        }
    }
    for round in 1..=12 {
        let mut child = d.spawn(&[]);
        let ms = rng.range(20, 120);
        std::thread::sleep(Duration::from_millis(ms));
        signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(20));
        println!(
            "round {round}: killed after {ms} ms; {} temporary files, {} left in the source",
            ferry_temps(&d.path("var")).len(),
            d.files("in").len()
        );
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let temps = ferry_temps(&d.root);
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    let mut delivered = contents(&d.path("var/out/ja"));
    delivered.extend(contents(&d.path("var/out/jb")));
    assert_eq!(
        names(&delivered),
        names(&inputs),
        "missing or duplicated outputs"
    );
    for (name, bytes) in &delivered {
        assert!(bytes == &inputs[name], "{name}: content differs");
    }
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
}

// ---------------------------------------------------------------------------------------
// 2. Atomic outputs; the original leaves last
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Observed {
    /// Non-hidden output files seen with the wrong size or content.
    violations: Vec<String>,
    /// Output names seen (and checked in full) at least once.
    seen: BTreeSet<String>,
    /// When the source file was first seen gone: whether every output was complete then.
    at_source_gone: Option<Result<(), String>>,
    saw_temp: bool,
    polls: u64,
}

#[test]
fn outputs_appear_only_complete_and_the_original_leaves_last() {
    const SIZE: usize = 48 << 20;
    let mut rng = Rng::from_env_or_time("outputs_appear_only_complete");
    let d = Deployment::new("atomic");
    d.job(
        "big",
        r#"[source]
folder = "in"
settle = "0s"
poll = "100ms"

[[output]]
folder = "var/out/one"

[[output]]
folder = "var/out/two"

[after]
success = "archive"
"#,
    );
    let content = Arc::new(rng.bytes(SIZE));
    let outs = [d.mkdir("var/out/one"), d.mkdir("var/out/two")];
    d.mkdir("in");
    // Written elsewhere, then renamed in: the source file is complete from its first sight.
    let staged = d.write("stage/big.bin", content.as_slice());
    let src = d.path("in/big.bin");
    std::fs::rename(&staged, &src).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Observed::default()));
    let observer = {
        let (stop, observed, content, src, outs) = (
            stop.clone(),
            observed.clone(),
            content.clone(),
            src.clone(),
            outs.clone(),
        );
        std::thread::spawn(move || {
            // Checks every visible (non-hidden) output; a new one is read in full.
            let check_outputs = |ob: &mut Observed| -> Result<(), String> {
                let mut complete = 0;
                for dir in &outs {
                    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with('.') {
                            ob.saw_temp = true;
                            continue;
                        }
                        let p = e.path();
                        let key = p.display().to_string();
                        let Ok(bytes_len) = std::fs::metadata(&p).map(|m| m.len()) else {
                            ob.violations.push(format!("{key} listed but gone"));
                            continue;
                        };
                        if bytes_len != SIZE as u64 {
                            ob.violations
                                .push(format!("{key} visible with {bytes_len} of {SIZE} bytes"));
                            continue;
                        }
                        if !ob.seen.contains(&key) {
                            let bytes = std::fs::read(&p).unwrap();
                            if bytes.as_slice() != content.as_slice() {
                                ob.violations
                                    .push(format!("{key} visible with other content"));
                            }
                            ob.seen.insert(key);
                        }
                        complete += 1;
                    }
                }
                if complete == outs.len() {
                    Ok(())
                } else {
                    Err(format!("{complete} of {} outputs complete", outs.len()))
                }
            };
            while !stop.load(Ordering::SeqCst) {
                let mut ob = observed.lock().unwrap();
                ob.polls += 1;
                // The source first, then the outputs: if the source is gone now, every
                // output must already be complete.
                let src_gone = std::fs::symlink_metadata(&src).is_err();
                let outputs = check_outputs(&mut ob);
                if src_gone && ob.at_source_gone.is_none() {
                    ob.at_source_gone = Some(outputs);
                }
                drop(ob);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let mut child = d
        .cmd(&["run", "--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.path("stage/ferry.log")).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for(
        "ferry run --once to finish",
        Duration::from_secs(120),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    // Let the observer see the final state at least once more.
    let polls = observed.lock().unwrap().polls;
    wait_for(
        "the observer to poll again",
        Duration::from_secs(30),
        || observed.lock().unwrap().polls > polls + 1,
    );
    stop.store(true, Ordering::SeqCst);
    observer.join().unwrap();
    let log = std::fs::read_to_string(d.path("stage/ferry.log")).unwrap_or_default();
    assert_eq!(status.unwrap().code(), Some(0), "{log}");

    let ob = observed.lock().unwrap();
    println!(
        "observer: {} polls, saw a temporary file: {}",
        ob.polls, ob.saw_temp
    );
    assert!(
        ob.violations.is_empty(),
        "incomplete outputs were visible: {:?}",
        ob.violations
    );
    match &ob.at_source_gone {
        Some(Ok(())) => {}
        Some(Err(e)) => panic!("the original left the source before its outputs: {e}"),
        None => panic!("the observer never saw the source gone"),
    }
    assert_eq!(ob.seen.len(), 2, "{:?}", ob.seen);
    let want = sha(&content);
    for dir in &outs {
        assert_eq!(sha_file(&dir.join("big.bin")), want, "{}", dir.display());
    }
    assert_eq!(sha_file(&d.path("var/archive/big/big.bin")), want);
    assert!(
        ferry_temps(&d.root).is_empty(),
        "{:?}",
        ferry_temps(&d.root)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Failures lose nothing
// ---------------------------------------------------------------------------------------

#[test]
fn a_file_that_cannot_be_delivered_goes_to_the_error_folder_and_others_carry_on() {
    let d = Deployment::new("fail-output");
    // Output 2's "folder" is a regular file: no one, not even root, can write into it.
    d.job(
        "bad",
        r#"[source]
folder = "in/bad"
settle = "0s"

[[output]]
folder = "var/out/bad-ok"

[[output]]
folder = "var/out/blocked"

[after]
success = "archive"
error = "var/error/bad"
"#,
    );
    d.job(
        "good",
        r#"[source]
folder = "in/good"
settle = "0s"

[[output]]
folder = "var/out/good"
"#,
    );
    d.write("var/out/blocked", "I am a file, not a folder\n");
    d.mkdir("var/out/bad-ok");
    d.write("in/bad/a.csv", "first a\n");
    d.write("in/bad/b.csv", "b\n");
    let mut good = BTreeMap::new();
    for i in 0..20 {
        let name = format!("g{i:02}.csv");
        let content = format!("good file {i}\n").into_bytes();
        d.write(&format!("in/good/{name}"), &content);
        good.insert(name, content);
    }

    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let errors = contents(&d.path("var/error/bad"));
    assert_eq!(
        names(&errors),
        BTreeSet::from(["a.csv", "a.csv.error.txt", "b.csv", "b.csv.error.txt"].map(String::from)),
    );
    assert_eq!(errors["a.csv"], b"first a\n");
    assert_eq!(errors["b.csv"], b"b\n");
    let report = String::from_utf8(errors["a.csv.error.txt"].clone()).unwrap();
    println!("{report}");
    assert!(report.contains("job:       bad"), "{report}");
    assert!(report.contains("attempts:  1"), "{report}");
    assert!(report.contains("in/bad/a.csv"), "{report}");
    assert!(
        report.contains("cannot write output 2") && report.contains("var/out/blocked"),
        "the report names the failing output: {report}"
    );
    assert!(
        report.contains("caused by:"),
        "the report has the error chain: {report}"
    );
    // Nothing of the failed files is visible anywhere, not even their first output.
    assert!(
        walk_files(&d.path("var/out/bad-ok")).is_empty(),
        "{:?}",
        walk_files(&d.path("var/out/bad-ok"))
    );
    assert_eq!(
        read(&d.path("var/out/blocked")),
        b"I am a file, not a folder\n"
    );
    // The other job carried on.
    assert_eq!(contents(&d.path("var/out/good")), good);
    assert_eq!(contents(&d.path("var/archive/good")), good);
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));

    // A second failure with the same name gets a numbered name; the first is untouched.
    d.write("in/bad/a.csv", "second a\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let after = contents(&d.path("var/error/bad"));
    assert_eq!(
        names(&after),
        BTreeSet::from(
            [
                "a.csv",
                "a.csv.error.txt",
                "a_1.csv",
                "a_1.csv.error.txt",
                "b.csv",
                "b.csv.error.txt"
            ]
            .map(String::from)
        ),
    );
    assert_eq!(after["a.csv"], b"first a\n");
    assert_eq!(
        after["a.csv.error.txt"], errors["a.csv.error.txt"],
        "the first report was changed"
    );
    assert_eq!(after["a_1.csv"], b"second a\n");
    let report2 = String::from_utf8(after["a_1.csv.error.txt"].clone()).unwrap();
    assert!(report2.contains("job:       bad"), "{report2}");
    assert!(report2.contains("a_1.csv"), "{report2}");

    let temps = ferry_temps(&d.root);
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    let h = d.history();
    assert_eq!(h.len(), 23);
    assert_eq!(
        h.iter().filter(|r| r["state"] == "failed").count(),
        3,
        "{h:?}"
    );
    assert_eq!(h.iter().filter(|r| r["state"] == "done").count(), 20);
}

#[test]
fn exists_fail_sends_the_file_to_the_error_folder_and_run_once_exits_1() {
    let d = Deployment::new("exists-fail");
    d.job(
        "strict",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out/strict"
exists = "fail"
"#,
    );
    d.write("var/out/strict/x.csv", "already there\n");
    d.write("in/x.csv", "new x\n");
    d.write("in/y.csv", "new y\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(read(&d.path("var/out/strict/x.csv")), b"already there\n");
    assert_eq!(read(&d.path("var/out/strict/y.csv")), b"new y\n");
    assert_eq!(d.files("var/out/strict"), vec!["x.csv", "y.csv"]);
    assert_eq!(
        d.files("var/error/strict"),
        vec!["x.csv", "x.csv.error.txt"]
    );
    assert_eq!(read(&d.path("var/error/strict/x.csv")), b"new x\n");
    let report = std::fs::read_to_string(d.path("var/error/strict/x.csv.error.txt")).unwrap();
    assert!(report.contains("exists = \"fail\""), "{report}");
    assert!(report.contains("job:       strict"), "{report}");
    assert_eq!(read(&d.path("var/archive/strict/y.csv")), b"new y\n");
    assert!(d.files("in").is_empty());
    assert!(
        ferry_temps(&d.root).is_empty(),
        "{:?}",
        ferry_temps(&d.root)
    );
}

/// A partner may rewrite the file in its output folder in place: that must never change
/// the archived original or another output, so folder outputs are copies (only outboxes,
/// read by ferry alone, get hard links).
#[test]
fn folder_outputs_are_copies_even_when_the_original_is_archived() {
    use std::os::unix::fs::MetadataExt;
    let d = Deployment::new("outputs-are-copies");
    d.job(
        "two",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out/a"

[[output]]
folder = "var/out/b"
"#,
    );
    d.write("in/x.csv", "id;qty\n1;5\n");
    run_ok(&d, &["run", "--once"]);
    let ino = |rel: &str| std::fs::metadata(d.path(rel)).unwrap().ino();
    let archived = ino("var/archive/two/x.csv");
    assert_ne!(ino("var/out/a/x.csv"), archived);
    assert_ne!(ino("var/out/b/x.csv"), archived);
    assert_ne!(ino("var/out/a/x.csv"), ino("var/out/b/x.csv"));
    // The partner rewrites its copy in place; the archive and the other output keep theirs.
    std::fs::OpenOptions::new()
        .append(true)
        .open(d.path("var/out/a/x.csv"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"2;7\n"))
        .unwrap();
    assert_eq!(read(&d.path("var/archive/two/x.csv")), b"id;qty\n1;5\n");
    assert_eq!(read(&d.path("var/out/b/x.csv")), b"id;qty\n1;5\n");

    // The one case a folder output shares the inode: it is the only output and the original
    // is deleted, so no other name of the bytes remains.
    d.job(
        "sole",
        r#"[source]
folder = "in2"
settle = "0s"

[[output]]
folder = "var/out/sole"

[after]
success = "delete"
"#,
    );
    d.write("in2/y.csv", "id;qty\n2;6\n");
    let original = ino("in2/y.csv");
    run_ok(&d, &["run", "--once"]);
    assert!(d.files("in2").is_empty());
    assert_eq!(ino("var/out/sole/y.csv"), original);
    assert_eq!(read(&d.path("var/out/sole/y.csv")), b"id;qty\n2;6\n");
}

/// A big original whose only output is a link to it is planned before it is hashed (the
/// hash is read while deliverers already send it): the history still ends up with the
/// original's sha256, for the file and for the output, and the plan event says so.
#[test]
fn a_big_linked_original_gets_its_sha256_after_the_plan() {
    let d = Deployment::new("deferred-hash");
    d.job(
        "big",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out"

[after]
success = "delete"
"#,
    );
    // Past deliver::DEFER_HASH_FROM (16 MiB), and not a repeated pattern a wrong offset
    // would hash the same.
    let mut content = Vec::with_capacity(17 << 20);
    let mut x: u32 = 1;
    while content.len() < (17 << 20) + 123 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        content.extend_from_slice(&x.to_le_bytes());
    }
    d.write("in/big.bin", &content);
    run_ok(&d, &["run", "--once"]);
    assert!(d.files("in").is_empty());
    assert_eq!(read(&d.path("var/out/big.bin")), content);
    let sum = sha256_hex(&content);
    let h = d.history();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["state"], "done", "{h:?}");
    assert_eq!(h[0]["sha256"].as_str(), Some(sum.as_str()), "{h:?}");
    assert_eq!(
        h[0]["outputs"][0]["sha256"].as_str(),
        Some(sum.as_str()),
        "{h:?}"
    );
    let o = d.run(&["history"]);
    let text = stdout(&o);
    assert!(
        text.contains("computed while the outputs are delivered") && text.contains(&sum),
        "{text}"
    );
}

#[test]
fn exists_skip_and_overwrite_do_as_named() {
    let d = Deployment::new("exists-skip-overwrite");
    d.job(
        "skipper",
        r#"[source]
folder = "in/skip"
settle = "0s"

[[output]]
folder = "var/out/skip"
exists = "skip"

[[output]]
folder = "var/out/skip-copy"
exists = "skip"
"#,
    );
    d.job(
        "over",
        r#"[source]
folder = "in/over"
settle = "0s"

[[output]]
folder = "var/out/over"
exists = "overwrite"
"#,
    );
    d.write("var/out/skip/s.csv", "old s\n");
    d.write("var/out/over/o.csv", "old o\n");
    d.write("in/skip/s.csv", "new s\n");
    d.write("in/over/o.csv", "new o\n");
    run_ok(&d, &["run", "--once"]);

    // skip: the existing output is left alone; the other output is written; the file is done.
    assert_eq!(read(&d.path("var/out/skip/s.csv")), b"old s\n");
    assert_eq!(d.files("var/out/skip"), vec!["s.csv"]);
    assert_eq!(read(&d.path("var/out/skip-copy/s.csv")), b"new s\n");
    assert_eq!(read(&d.path("var/archive/skipper/s.csv")), b"new s\n");
    // overwrite: replaced, no second file.
    assert_eq!(read(&d.path("var/out/over/o.csv")), b"new o\n");
    assert_eq!(d.files("var/out/over"), vec!["o.csv"]);
    assert_eq!(read(&d.path("var/archive/over/o.csv")), b"new o\n");

    assert!(d.files("in").is_empty());
    assert!(!d.path("var/error").exists(), "{:?}", d.files("var/error"));
    assert!(
        ferry_temps(&d.root).is_empty(),
        "{:?}",
        ferry_temps(&d.root)
    );
    let h = d.history();
    assert_eq!(h.len(), 2);
    assert!(h.iter().all(|r| r["state"] == "done"), "{h:?}");
    let s = history_of(&h, "s.csv")[0];
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "skipped"),
        "{s}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Hostile names
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_file_names_are_delivered_with_portable_names() {
    let d = Deployment::new("hostile");
    d.job(
        "h",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out/h"
name = "{name}"
"#,
    );
    let long_ascii = format!("{}.csv", "x".repeat(236));
    let long_utf8 = format!("{}.csv", "é".repeat(118));
    assert_eq!(long_ascii.len(), 240);
    assert_eq!(long_utf8.len(), 240);
    // (input name, expected output name)
    let cases: Vec<(String, String)> = [
        ("with spaces in it.csv", "with spaces in it.csv"),
        ("Rechnung März €.csv", "Rechnung März €.csv"),
        ("-rf.csv", "-rf.csv"),
        ("--help", "--help"),
        ("CON.csv", "CON_.csv"),
        ("nul.txt", "nul_.txt"),
        ("a..b.csv", "a..b.csv"),
        ("colon:star*.csv", "colon_star_.csv"),
        ("trailing dot.", "trailing dot"),
        (
            "semi;colon & 'quote' $HOME.csv",
            "semi;colon & 'quote' $HOME.csv",
        ),
        ("empty.csv", "empty.csv"),
        (long_ascii.as_str(), long_ascii.as_str()),
        (long_utf8.as_str(), long_utf8.as_str()),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut inputs = BTreeMap::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let content = if name == "empty.csv" {
            Vec::new()
        } else {
            format!("content {i} of {name}\n").into_bytes()
        };
        d.write(&format!("in/{name}"), &content);
        inputs.insert(name.clone(), content);
    }
    let o = run_ok(&d, &["run", "--once"]);

    let out = contents(&d.path("var/out/h"));
    let expected: BTreeSet<String> = cases.iter().map(|(_, o)| o.clone()).collect();
    assert_eq!(names(&out), expected, "{}", stderr(&o));
    for (input, output) in &cases {
        assert_eq!(out[output], inputs[input], "{input} -> {output}");
    }
    assert!(out["empty.csv"].is_empty());
    // The originals are archived under their own names.
    assert_eq!(contents(&d.path("var/archive/h")), inputs);
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert!(
        ferry_temps(&d.root).is_empty(),
        "{:?}",
        ferry_temps(&d.root)
    );
    let h = d.history();
    assert_eq!(h.len(), cases.len());
    for (input, output) in &cases {
        let r = history_of(&h, input);
        assert_eq!(r.len(), 1, "{input}: {h:?}");
        assert_eq!(r[0]["state"], "done", "{}", r[0]);
        assert_eq!(
            r[0]["outputs"][0]["path"].as_str().unwrap(),
            d.path("var/out/h").join(output).to_str().unwrap()
        );
    }
}

#[test]
fn output_names_never_leave_their_folder() {
    let d = Deployment::new("escape");
    let job = |name: &str, template: &str| {
        d.job(
            name,
            &format!(
                "[source]\nfolder = \"in/{name}\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"var/out/{name}\"\nname = '{template}'\n"
            ),
        );
        d.write(&format!("in/{name}/escape-{name}.csv"), name);
    };
    job("up", "../{name}");
    job("deep", "sub/../../{name}");
    job("back", "..\\{name}");
    job("dir", "{dir}/../{name}");
    // An absolute name, pointing somewhere this test can check.
    let outside = d.path("escaped");
    job("abs", &format!("{}/{{name}}", outside.display()));

    // `check` refuses the absolute name outright.
    let c = d.run(&["check"]);
    assert_eq!(c.status.code(), Some(2), "{}", stdout(&c));
    let err = stderr(&c);
    assert!(
        err.contains("jobs/abs.toml") && err.contains("output[1].name"),
        "{err}"
    );
    assert!(
        err.contains("relative to the output folder"),
        "a clear reason: {err}"
    );

    // The others are valid jobs whose names fail per file.
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A `\` is no folder separator (README, "Names are made safe"): it becomes `_`, and
    // the name stays inside its folder.
    assert_eq!(
        d.files("var/out/back"),
        vec![".._escape-back.csv"],
        "{}",
        stderr(&o)
    );
    for name in ["up", "deep", "dir"] {
        let file = format!("escape-{name}.csv");
        assert_eq!(
            d.files(&format!("var/error/{name}")),
            vec![file.clone(), format!("{file}.error.txt")],
            "{name}"
        );
        let report =
            std::fs::read_to_string(d.path(&format!("var/error/{name}/{file}.error.txt"))).unwrap();
        assert!(
            report.contains("names must stay inside their folder"),
            "{name}: the report gives the reason: {report}"
        );
        assert!(
            walk_files(&d.path(&format!("var/out/{name}"))).is_empty(),
            "{name}"
        );
    }
    // The invalid job did not run: its file stays.
    assert_eq!(d.files("in"), vec!["abs/escape-abs.csv"]);
    assert!(!outside.exists());
    // Nowhere below the deployment (or next to it) is there a copy of any input except
    // the failed originals in the error folders and the file left by the invalid job.
    for p in walk_files(&d.root) {
        let n = p.file_name().unwrap().to_string_lossy();
        if n.starts_with("escape-") || n.starts_with(".._escape-") {
            let rel = p.strip_prefix(&d.root).unwrap();
            assert!(
                rel.starts_with("var/error")
                    || rel.starts_with("var/archive/back")
                    || rel == Path::new("var/out/back/.._escape-back.csv")
                    || rel == Path::new("in/abs/escape-abs.csv"),
                "a copy escaped to {}",
                p.display()
            );
        }
    }
    let parent = d.root.parent().unwrap();
    for e in std::fs::read_dir(parent).unwrap().filter_map(Result::ok) {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with("escape-"), "a copy escaped to {n}");
    }
    assert!(ferry_temps(&d.root).is_empty());
}

// ---------------------------------------------------------------------------------------
// 5. `ferry test` is a dry run
// ---------------------------------------------------------------------------------------

#[test]
fn ferry_test_changes_nothing_and_shows_the_output_path() {
    let d = Deployment::new("dry-run");
    d.job(
        "t",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out/t"
name = "{stem}_{seq:6}.{ext}"

[after]
success = "archive"
"#,
    );
    // A first file through, so the journal exists and the job's sequence moved on.
    d.write("in/first.csv", "first\n");
    run_ok(&d, &["run", "--once"]);
    assert_eq!(d.files("var/out/t"), vec!["first_000001.csv"]);

    let sample = d.write("in/sample.csv", "sample\n");
    // Names taken already (a collision the dry run must only report).
    d.write("var/out/t/sample_000002.csv", "in the way\n");
    let before = snapshot(&d.root);
    let o = d.run(&["test", "t", "in/sample.csv"]);
    let after = snapshot(&d.root);
    // The name is taken and `exists = "fail"`: a run would fail the file.
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("verdict:   would fail: output 1: "),
        "{}",
        stdout(&o)
    );
    let out = stdout(&o);
    println!("{out}");
    assert_unchanged(&before, &after);
    let want = d.path("var/out/t/sample_000002.csv");
    assert!(
        out.contains(&want.display().to_string()),
        "the output path {} is shown: {out}",
        want.display()
    );
    assert!(out.contains("dry run"), "{out}");

    // A file outside the source (and the absolute path form) changes nothing either.
    let elsewhere = d.write("elsewhere/other.csv", "other\n");
    let before = snapshot(&d.root);
    let o = d.run(&["test", "t", elsewhere.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_unchanged(&before, &snapshot(&d.root));
    assert!(stdout(&o).contains("other_000002.csv"), "{}", stdout(&o));
    assert_eq!(read(&sample), b"sample\n");
}

// ---------------------------------------------------------------------------------------
// 6. Backlog sanity
// ---------------------------------------------------------------------------------------

#[test]
fn a_backlog_of_2000_files_is_delivered_by_run_once() {
    const N: usize = 2000;
    let d = Deployment::new("backlog");
    d.job(
        "bulk",
        r#"[source]
folder = "in"
settle = "0s"

[[output]]
folder = "var/out/bulk"

[after]
success = "delete"
"#,
    );
    let mut inputs = BTreeMap::new();
    for i in 0..N {
        let name = format!("b{i:05}.txt");
        let content = format!("backlog file {i}\n").into_bytes();
        d.write(&format!("in/{name}"), &content);
        inputs.insert(name, content);
    }
    run_ok(&d, &["run", "--once"]);
    assert_eq!(contents(&d.path("var/out/bulk")), inputs);
    assert!(d.files("in").is_empty(), "{} left", d.files("in").len());
    assert!(ferry_temps(&d.root).is_empty());
    let h = d.history();
    assert_eq!(h.len(), N);
    assert!(h.iter().all(|r| r["state"] == "done"));
}
