//! Attacks on the source folder (issue 11, "Files outside the configured folders can be
//! read and deleted"): a file swapped for a symlink, a subfolder swapped for a link to
//! another folder, the source folder replaced by a link while the daemon runs; plus a file
//! that grows after it was taken, names holding `\`, and two deployments over one source.
//! Every swap loop is bounded in count and in time.
#![cfg(target_os = "linux")]

mod util;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use util::*;

const DEADLINE: Duration = Duration::from_secs(90);
const MARK: &[u8] = b"FERRY-SECRET-KEY-MATERIAL";

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: swaps two names atomically.
fn exchange(a: &Path, b: &Path) -> bool {
    let (a, b) = (cstr(a), cstr(b));
    // SAFETY: valid NUL-terminated paths, resolved against the working folder.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// Sets the mtime of `p` itself (a symlink too) to `secs`.
fn set_mtime(p: &Path, secs: i64) {
    let c = cstr(p);
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// Every file below `rels` that holds the secret marker.
fn leaked(d: &Deployment, rels: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for rel in rels {
        for f in d.files(rel) {
            let bytes = std::fs::read(d.path(rel).join(&f)).unwrap_or_default();
            if bytes.windows(MARK.len()).any(|w| w == MARK) {
                bad.push(format!("{rel}/{f}"));
            }
        }
    }
    bad
}

/// Symlinks below `base` (an archived link would point out of the deployment).
fn links_below(base: &Path) -> Vec<String> {
    walkdir::WalkDir::new(base)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path_is_symlink())
        .map(|e| e.path().display().to_string())
        .collect()
}

/// A 0600 key outside every configured folder, as text (PEM-like): a job that reads
/// records would read it without an error.
fn key(d: &Deployment, rel: &str) -> Vec<u8> {
    let mut content = MARK.to_vec();
    content.extend_from_slice(hex::encode(pseudo_random(64, 99)).as_bytes());
    let p = d.write(rel, &content);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    content
}

#[test]
fn a_file_swapped_for_a_symlink_is_never_read_through() {
    swap_files_for_a_symlink(
        "sec-swap",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\nwatch = \"poll\"\n\n[[output]]\nfolder = \"out\"\n",
    );
}

/// The output's name is made of the file's first line, read before the claim: that
/// reading goes through the checked handle too.
#[test]
fn a_file_swapped_for_a_symlink_never_names_an_output() {
    swap_files_for_a_symlink(
        "sec-swap-name",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\nwatch = \"poll\"\n\n[input]\nformat = \"text\"\n\n[[output]]\nfolder = \"out\"\nname = \"{line}.txt\"\n",
    );
}

/// Swaps each new file in `in/` with a symlink to a key outside, thousands of times,
/// while the daemon runs `job` (polling: file events would hold a file that keeps
/// changing back until the swapping stops, and the race would not be run); nothing of the key may reach an output, its name, the
/// archive or the error folder.
fn swap_files_for_a_symlink(test: &str, job: &str) {
    let d = Deployment::new(test);
    let key_content = key(&d, "secret/key.pem");
    let key_path = d.path("secret/key.pem");
    d.job("drop", job);
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    // The link has the same size (its target's length) and mtime as the file it swaps with.
    let target = key_path.to_string_lossy().into_owned();
    let link = d.path("in/.bait-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    set_mtime(&link, 1_700_000_000);
    const FILES: usize = 40;
    const MAX_SWAPS_PER_FILE: usize = 50_000;
    let started = Instant::now();
    let mut swaps = 0;
    for i in 0..FILES {
        let name = d.path(&format!("in/f{i}.txt"));
        let bait = format!("{:-<1$}", format!("bait {i} "), target.len());
        let tmp = d.write(&format!("stage/f{i}.txt"), &bait);
        set_mtime(&tmp, 1_700_000_000);
        std::fs::rename(&tmp, &name).unwrap();
        // Swap until ferry takes one of the two names (the swap then fails), bounded in
        // count and time.
        let file_started = Instant::now();
        for _ in 0..MAX_SWAPS_PER_FILE {
            if file_started.elapsed() > Duration::from_secs(2)
                || started.elapsed() > Duration::from_secs(20)
                || !exchange(&name, &link)
            {
                break;
            }
            swaps += 1;
        }
        // Whatever is left: the bait under its name, no symlink under a visible name, a
        // fresh link for the next file.
        let is_link =
            |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        if is_link(&name) && std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_file()) {
            exchange(&name, &link);
        }
        if std::fs::symlink_metadata(&name).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&name).unwrap();
        }
        if std::fs::symlink_metadata(&link).is_ok_and(|m| !m.file_type().is_symlink()) {
            std::fs::remove_file(&link).unwrap();
        }
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&target, &link).unwrap();
            set_mtime(&link, 1_700_000_000);
        }
    }
    eprintln!("{swaps} swaps in {:?}", started.elapsed());
    assert!(swaps >= 1_000, "only {swaps} swaps ran");
    wait_for("every bait file taken", DEADLINE, || {
        d.files("in").iter().all(|f| f.starts_with('.'))
    });
    daemon.stop();
    let bad = leaked(&d, &["out", "var/archive", "var/error"]);
    assert!(bad.is_empty(), "the key leaked into {bad:?}\n{}", d.logs());
    let links = links_below(&d.path("var"));
    assert!(links.is_empty(), "links to outside: {links:?}");
    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        key_content,
        "the key is untouched"
    );
    // Every output is a bait file's content, a regular file, never a link.
    let outs = d.files("out");
    assert!(!outs.is_empty(), "{}", d.logs());
    for f in &outs {
        let p = d.path("out").join(f);
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{f}");
        assert!(read(&p).starts_with(b"bait "), "{f}");
        assert!(
            !f.contains("FERRY-SECRET"),
            "an output is named after the key: {f}"
        );
    }
}

#[test]
fn a_subfolder_swapped_for_a_link_is_never_entered_nor_deleted_from() {
    let d = Deployment::new("sec-subdir");
    d.job(
        "tree",
        "[source]\nfolder = \"in\"\nrecursive = true\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\nname = \"{dir}/{name}\"\nexists = \"unique\"\n\n[after]\nsuccess = \"delete\"\n",
    );
    // Outside: files with the names, sizes and mtimes of the ones in the subfolder.
    const FILES: usize = 20;
    for i in 0..FILES {
        let mut c = MARK.to_vec();
        c.extend_from_slice(format!("-{i:04}").as_bytes());
        let p = d.write(&format!("outside/a{i}.txt"), &c);
        set_mtime(&p, 1_700_000_000);
    }
    d.mkdir("in");
    let link = d.path("in/.sub-link");
    std::os::unix::fs::symlink(d.path("outside"), &link).unwrap();
    let mut daemon = Daemon::start(&d, &[]);
    let sub = d.path("in/sub");
    let mut swaps = 0usize;
    let started = Instant::now();
    for round in 0..4 {
        std::fs::create_dir_all(d.path("stage")).unwrap();
        for i in 0..FILES {
            let c = format!("{:-<1$}", format!("inside {round} {i} "), MARK.len() + 5);
            let p = d.write(&format!("stage/a{i}.txt"), c);
            set_mtime(&p, 1_700_000_000);
        }
        if sub.exists() {
            std::fs::remove_dir_all(&sub).unwrap_or(());
        }
        std::fs::rename(d.path("stage"), &sub).unwrap();
        // Swap while ferry works through the subfolder, bounded in count and time.
        let round_started = Instant::now();
        for _ in 0..50_000 {
            if round_started.elapsed() > Duration::from_secs(2)
                || started.elapsed() > Duration::from_secs(20)
            {
                break;
            }
            assert!(exchange(&sub, &link), "renameat2 failed");
            swaps += 1;
        }
        if swaps % 2 == 1 {
            assert!(exchange(&sub, &link));
            swaps += 1;
        }
        wait_for("the subfolder emptied", DEADLINE, || {
            d.files("in/sub").is_empty()
        });
    }
    eprintln!("{swaps} swaps in {:?}", started.elapsed());
    assert!(swaps >= 1_000, "only {swaps} swaps ran");
    daemon.stop();
    for i in 0..FILES {
        assert!(
            d.path(&format!("outside/a{i}.txt")).exists(),
            "outside/a{i}.txt was deleted\n{}",
            d.logs()
        );
    }
    let bad = leaked(&d, &["out", "var/archive", "var/error"]);
    assert!(
        bad.is_empty(),
        "outside files leaked into {bad:?}\n{}",
        d.logs()
    );
    assert_eq!(d.files("outside").len(), FILES);
}

#[test]
fn a_source_folder_replaced_by_a_symlink_is_not_followed() {
    let d = Deployment::new("sec-root");
    d.job(
        "drop",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\n\n[after]\nsuccess = \"delete\"\n",
    );
    d.mkdir("in");
    for i in 0..5 {
        let mut c = MARK.to_vec();
        c.extend_from_slice(format!("-{i}").as_bytes());
        d.write(&format!("elsewhere/v{i}.txt"), c);
    }
    let mut daemon = Daemon::start(&d, &[]);
    d.write("in/probe1.txt", "one");
    wait_for("the first probe delivered", DEADLINE, || {
        d.path("out/probe1.txt").exists()
    });
    std::fs::rename(d.path("in"), d.path("in.old")).unwrap();
    std::os::unix::fs::symlink(d.path("elsewhere"), d.path("in")).unwrap();
    // ferry keeps to the folder it opened: a file there is still taken, and nothing of
    // the link's target is (following it, ferry would delete the files there).
    d.write("in.old/probe2.txt", "two");
    wait_for(
        "the second probe delivered from the opened folder (or the link followed)",
        DEADLINE,
        || d.path("out/probe2.txt").exists() || d.files("elsewhere").len() < 5,
    );
    // Rescans after the swap (poll is 100 ms) would have followed the link by now.
    d.write("in.old/probe3.txt", "three");
    wait_for("a third probe delivered", DEADLINE, || {
        d.path("out/probe3.txt").exists() || d.files("elsewhere").len() < 5
    });
    daemon.stop();
    assert_eq!(d.files("elsewhere").len(), 5, "{}", d.logs());
    let bad = leaked(&d, &["out", "var/archive", "var/error"]);
    assert!(bad.is_empty(), "files leaked into {bad:?}\n{}", d.logs());
    assert!(
        d.logs().contains("replaced by a symbolic link"),
        "the swap is logged\n{}",
        d.logs()
    );
}

#[test]
fn a_file_that_grows_after_it_was_taken_is_taken_again_whole() {
    let d = Deployment::new("sec-grow");
    d.job(
        "csv",
        "[source]\nfolder = \"in\"\nsettle = \"200ms\"\npoll = \"100ms\"\n\n[input]\nformat = \"csv\"\n\n[[output]]\nfolder = \"out\"\nname = \"{stem}.jsonl\"\nformat = \"jsonl\"\n",
    );
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    let mut first = String::from("Id,Text\n");
    for i in 0..300_000 {
        first.push_str(&format!("{i},row number {i}\n"));
    }
    let path = d.write("stage/big.csv", &first);
    std::fs::rename(&path, d.path("in/big.csv")).unwrap();
    // The writer pauses (longer than settle) and goes on just after ferry has read the
    // whole file: before it plans, while its outputs are being finished.
    let src = d.path("in/big.csv");
    let size = first.len() as u64;
    let pid = daemon.child.id();
    let started = Instant::now();
    while read_position(pid, &src) < Some(size) {
        assert!(
            started.elapsed() < DEADLINE,
            "ferry never read the file to its end"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path("in/big.csv"))
            .unwrap();
        f.write_all(b"999999,APPENDED-AFTER-THE-PAUSE\n").unwrap();
    }
    wait_for("the output delivered", DEADLINE, || {
        d.path("out/big.jsonl").exists()
    });
    daemon.stop();
    let out = String::from_utf8(read(&d.path("out/big.jsonl"))).unwrap();
    assert!(
        out.contains("APPENDED-AFTER-THE-PAUSE"),
        "the appended row is not in the output\n{}",
        d.logs()
    );
    assert_eq!(out.lines().count(), 300_001);
    assert!(
        d.logs().contains("changed while being taken"),
        "{}",
        d.logs()
    );
    assert_eq!(d.files("out"), vec!["big.jsonl"]);
}

#[test]
fn a_copied_file_that_grows_after_it_was_read_is_taken_again_whole() {
    let d = Deployment::new("sec-grow-copy");
    d.job(
        "copy",
        "[source]\nfolder = \"in\"\nsettle = \"200ms\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    let first = pseudo_random(16 << 20, 5);
    let path = d.write("stage/big.bin", &first);
    std::fs::rename(&path, d.path("in/big.bin")).unwrap();
    // The writer goes on just after ferry has read the whole file: while it finishes
    // (fsyncs) its outputs, before it plans and archives.
    let src = d.path("in/big.bin");
    let pid = daemon.child.id();
    let started = Instant::now();
    let whole_written = || {
        std::fs::read_dir(d.path("out")).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(".ferry-out-")
                    && e.metadata().is_ok_and(|m| m.len() == first.len() as u64)
            })
        })
    };
    while read_position(pid, &src) < Some(first.len() as u64) || !whole_written() {
        assert!(
            started.elapsed() < DEADLINE,
            "ferry never read the file to its end"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    let tail = b"APPENDED-AFTER-THE-PAUSE";
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&src).unwrap();
        f.write_all(tail).unwrap();
    }
    wait_for("the output delivered", DEADLINE, || {
        d.path("out/big.bin").exists()
    });
    daemon.stop();
    let mut whole = first.clone();
    whole.extend_from_slice(tail);
    let out = read(&d.path("out/big.bin"));
    assert!(
        out.len() == whole.len() && out == whole,
        "the output has {} bytes, the whole file {}: the appended bytes were not delivered\n{}",
        out.len(),
        whole.len(),
        d.logs()
    );
    assert_eq!(read(&d.path("var/archive/copy/big.bin")), whole);
}

/// How far process `pid` has read `file` through its open descriptor, if it has it open.
fn read_position(pid: u32, file: &Path) -> Option<u64> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for fd in fds.flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(file) {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .ok()?;
        return info
            .lines()
            .find_map(|l| l.strip_prefix("pos:"))
            .and_then(|v| v.trim().parse().ok());
    }
    None
}

#[test]
fn a_backslash_in_a_source_name_becomes_an_underscore() {
    let d = Deployment::new("sec-backslash");
    d.job(
        "bs",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.write("in/a\\b.txt", "ab");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["a_b.txt"], "{}", stderr(&o));
    assert_eq!(d.files("var/archive/bs"), vec!["a_b.txt"]);
    assert!(d.files("in").is_empty());
}

#[test]
fn a_name_like_an_absolute_windows_path_fails_with_a_report() {
    let d = Deployment::new("sec-backslash-fail");
    d.job(
        "bs",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[input]\nformat = \"csv\"\n\n[[output]]\nfolder = \"out\"\nformat = \"csv\"\n",
    );
    // A CSV row with too many fields fails the file.
    d.write("in/\\etc\\cron.d\\x", "a,b\n1,2,3\n");
    let o = d.run(&["run", "--once"]);
    assert!(d.files("out").is_empty(), "{}", stderr(&o));
    assert_eq!(
        d.files("var/error/bs"),
        vec!["_etc_cron.d_x", "_etc_cron.d_x.error.txt"],
        "{}",
        stderr(&o)
    );
    let report = String::from_utf8(read(&d.path("var/error/bs/_etc_cron.d_x.error.txt"))).unwrap();
    assert!(report.contains("\\etc\\cron.d\\x"), "{report}");
    assert!(d.files("in").is_empty());
}

#[test]
fn two_deployments_over_one_source_deliver_each_file_once() {
    let d = Deployment::new("sec-two");
    d.job(
        "drop",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\nexists = \"unique\"\n",
    );
    d.mkdir("in");
    let mut a = Daemon::start(&d, &["--state", "var/state-a"]);
    let mut b = Daemon::start(&d, &["--state", "var/state-b"]);
    const FILES: usize = 200;
    for i in 0..FILES {
        d.write(&format!("in/f{i:03}.txt"), format!("file {i}"));
    }
    wait_for("every file delivered", DEADLINE, || {
        d.files("in").iter().all(|f| f.starts_with('.'))
    });
    a.stop();
    b.stop();
    let outs = d.files("out");
    assert_eq!(outs.len(), FILES, "{outs:?}\n{}", d.logs());
    assert!(
        d.logs().contains("another ferry deployment"),
        "the second deployment says why it takes nothing\n{}",
        d.logs()
    );
}

#[test]
fn archive_and_error_folders_below_their_literal_part_are_never_followed() {
    let d = Deployment::new("sec-dest");
    d.job(
        "drop",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[input]\nformat = \"csv\"\n\n[[output]]\nfolder = \"out\"\nformat = \"csv\"\n",
    );
    // The folders that `{job}` renders to are links to outside the deployment's folders.
    d.mkdir("outside-archive");
    d.mkdir("outside-error");
    d.mkdir("var/archive");
    d.mkdir("var/error");
    std::os::unix::fs::symlink(d.path("outside-archive"), d.path("var/archive/drop")).unwrap();
    std::os::unix::fs::symlink(d.path("outside-error"), d.path("var/error/drop")).unwrap();
    d.write("in/good.csv", "a,b\n1,2\n");
    d.write("in/bad.csv", "a,b\n1,2,3\n");
    let o = d.run(&["run", "--once"]);
    assert!(d.files("outside-archive").is_empty(), "{}", stderr(&o));
    assert!(d.files("outside-error").is_empty(), "{}", stderr(&o));
    // Nothing is lost: the good file is delivered and both originals stay in place.
    assert_eq!(d.files("out"), vec!["good.csv"], "{}", stderr(&o));
    assert_eq!(d.files("in"), vec!["bad.csv", "good.csv"], "{}", stderr(&o));
    // The next start's recovery (the good file's plan is unfinished) does not follow the
    // links either.
    let o = d.run(&["run", "--once"]);
    assert!(
        stderr(&o).contains("is a symbolic link; ferry follows no link"),
        "{}",
        stderr(&o)
    );
    assert!(d.files("outside-archive").is_empty(), "{}", stderr(&o));
    assert!(d.files("outside-error").is_empty(), "{}", stderr(&o));
    assert_eq!(d.files("in"), vec!["bad.csv", "good.csv"], "{}", stderr(&o));
}
