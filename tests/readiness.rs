//! Readiness: a file is taken only once it is completely written (settle, renames, done
//! files), rescans find what file-system events never announce (a FUSE share), and
//! recursive sources keep their folder structure.

mod util;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use util::*;

const DEADLINE: Duration = Duration::from_secs(30);

fn probe(d: &Deployment, src: &str, out: &str, name: &str) {
    let staged = d.write(&format!("staging/{name}"), b"probe");
    std::fs::rename(&staged, d.path(&format!("{src}/{name}"))).unwrap();
    let delivered = d.path(&format!("{out}/{name}"));
    wait_for(&format!("probe {name} delivered"), DEADLINE, || {
        delivered.exists()
    });
}

fn history_of<'a>(h: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    h.iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == name))
        })
        .collect()
}

/// The `waiting` count the daemon last reported for `job` in `ferry status --json`.
fn waiting(d: &Deployment, job: &str) -> Option<u64> {
    let o = d.run(&["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["job"] == job)?
        .get("waiting")?
        .as_u64()
}

#[test]
fn a_file_still_being_written_is_never_taken_before_it_is_complete() {
    let d = Deployment::new("slow-writer");
    d.job(
        "slow",
        "[source]\nfolder = \"in\"\nsettle = \"1s\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    probe(&d, "in", "out", "probe.txt");

    let content = pseudo_random(10 * 64 * 1024, 7);
    let path = d.path("in/slow.dat");
    let finished = Arc::new(AtomicBool::new(false));
    let writer = {
        let (content, path, finished) = (content.clone(), path.clone(), finished.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).unwrap();
            for chunk in content.chunks(content.len() / 10) {
                f.write_all(chunk).unwrap();
                // Pace the writer: ~3 s in all, each pause well under `settle`.
                std::thread::sleep(Duration::from_millis(300));
            }
            drop(f);
            finished.store(true, Ordering::SeqCst);
        })
    };
    // Watch the output folder the whole time. The listing is taken *before* the flag is
    // read, so an output seen while the flag is still false existed before the writer was
    // done.
    let mut looks = 0u32;
    loop {
        let early: Vec<String> = d
            .files("out")
            .into_iter()
            .filter(|f| f != "probe.txt")
            .collect();
        let done = finished.load(Ordering::SeqCst);
        assert!(
            done || early.is_empty(),
            "output appeared while the file was still being written: {early:?}"
        );
        if done {
            break;
        }
        looks += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.join().unwrap();
    assert!(looks > 0, "the output folder was never looked at");

    let out = d.path("out/slow.dat");
    wait_for("the finished file to be delivered", DEADLINE, || {
        d.files("var/archive/slow")
            .contains(&"slow.dat".to_string())
    });
    assert!(
        read(&out) == content,
        "the output differs from the full file"
    );
    assert_eq!(d.files("out"), vec!["probe.txt", "slow.dat"]);
    // Stopped, the journal has recorded everything ("done" is written lazily).
    assert_eq!(daemon.stop(), Some(0));
    let h = d.history();
    let rows = history_of(&h, "slow.dat");
    assert_eq!(rows.len(), 1, "taken exactly once: {rows:?}");
    assert_eq!(rows[0]["state"], "done", "{rows:?}");
    assert_eq!(rows[0]["size"].as_u64(), Some(content.len() as u64));
    assert_eq!(rows[0]["attempts"].as_u64(), Some(1), "{rows:?}");
}

#[test]
fn a_file_renamed_into_the_folder_is_taken_at_once_and_whole() {
    let d = Deployment::new("rename-in");
    // No rescan for an hour: the rename's event alone must make ferry take the file.
    d.job(
        "ren",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"1h\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    probe(&d, "in", "out", "probe.txt");

    let content = pseudo_random(3 * 1024 * 1024 + 17, 11);
    let staged = d.write("staging/report.bin", &content);
    std::fs::rename(&staged, d.path("in/report.bin")).unwrap();
    let out = d.path("out/report.bin");
    wait_for("the renamed file to be delivered", DEADLINE, || {
        d.files("var/archive/ren")
            .contains(&"report.bin".to_string())
    });
    assert!(read(&out) == content, "the output differs from the file");
    assert_eq!(d.files("out"), vec!["probe.txt", "report.bin"]);
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn done_file_mode_takes_a_file_only_after_its_trigger_and_removes_the_trigger() {
    let d = Deployment::new("done-file");
    d.job(
        "bank",
        "[source]\nfolder = \"in\"\nready = \"done-file\"\npoll = \"500ms\"\n\n[[output]]\nfolder = \"out\"\n\n[after]\nsuccess = \"archive\"\n",
    );
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    d.write("in/probe.csv", "p\n");
    d.write("in/probe.csv.done", "");
    wait_for("the probe delivered", DEADLINE, || {
        d.path("out/probe.csv").exists()
    });
    wait_for("the probe's trigger removed", DEADLINE, || {
        !d.path("in/probe.csv.done").exists()
    });

    let x = pseudo_random(100_000, 1);
    let y = pseudo_random(50_000, 2);
    d.write("in/X.csv", &x);
    d.write("in/Y.csv", &y);
    // The daemon has seen both and holds them back: it reports them as waiting.
    wait_for(
        "ferry to report X.csv and Y.csv as waiting",
        DEADLINE,
        || waiting(&d, "bank") == Some(2),
    );
    assert_eq!(d.files("out"), vec!["probe.csv"], "taken without a trigger");
    assert!(history_of(&d.history(), "X.csv").is_empty());
    assert!(history_of(&d.history(), "Y.csv").is_empty());

    // `{name}.done`.
    d.write("in/X.csv.done", "");
    wait_for("X.csv taken after its trigger", DEADLINE, || {
        d.files("var/archive/bank").contains(&"X.csv".to_string())
    });
    wait_for("X.csv.done removed", DEADLINE, || {
        !d.path("in/X.csv.done").exists()
    });
    assert!(read(&d.path("out/X.csv")) == x);
    assert!(
        !d.path("out/Y.csv").exists(),
        "Y.csv has no trigger yet: {:?}",
        d.files("out")
    );
    assert_eq!(d.files("in"), vec!["Y.csv"]);

    // `{stem}.done`.
    d.write("in/Y.done", "");
    wait_for("Y.csv taken after Y.done", DEADLINE, || {
        d.files("var/archive/bank").contains(&"Y.csv".to_string())
    });
    wait_for("Y.done removed", DEADLINE, || !d.path("in/Y.done").exists());
    assert!(read(&d.path("out/Y.csv")) == y);
    // Triggers are never data.
    assert_eq!(d.files("out"), vec!["X.csv", "Y.csv", "probe.csv"]);
    assert_eq!(
        d.files("var/archive/bank"),
        vec!["X.csv", "Y.csv", "probe.csv"]
    );
    assert!(d.files("in").is_empty(), "{:?}", d.files("in"));
    assert_eq!(daemon.stop(), Some(0));
    let h = d.history();
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h.iter().all(|r| r["state"] == "done"), "{h:?}");
}

#[test]
fn run_once_leaves_a_file_without_its_trigger_untouched() {
    let d = Deployment::new("done-once");
    d.job(
        "bank",
        "[source]\nfolder = \"in\"\nready = \"done-file\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.write("in/A.csv", "a\n");
    d.write("in/A.csv.done", "");
    d.write("in/B.csv", "b\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("No done-file yet"), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["A.csv"]);
    assert_eq!(d.files("in"), vec!["B.csv"], "B.csv stays for a later run");
    assert_eq!(read(&d.path("in/B.csv")), b"b\n");
    let h = d.history();
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(history_of(&h, "B.csv").is_empty(), "{h:?}");
}

/// A folder on an sshfs (FUSE) mount served from a local folder through socat and
/// sftp-server on 127.0.0.1: changes made in `backing` (the server side) raise no
/// file-system events on `mount`. Unmounted, and the server stopped, on drop.
struct SftpShare {
    backing: PathBuf,
    mount: PathBuf,
    socat: Child,
    mounted: bool,
}

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

impl SftpShare {
    /// `None` when the tools are missing or the mount is refused (the test is skipped),
    /// unless the project's test script requires them: then it panics.
    fn start(d: &Deployment) -> Option<SftpShare> {
        let mut missing: Vec<&str> = ["sshfs", "socat"]
            .into_iter()
            .filter(|t| !have(t))
            .collect();
        if !have("fusermount") && !have("fusermount3") {
            missing.push("fusermount");
        }
        if !Path::new(SFTP_SERVER).exists() {
            missing.push(SFTP_SERVER);
        }
        if !Path::new("/dev/fuse").exists() {
            missing.push("/dev/fuse");
        }
        if !missing.is_empty() {
            return skip(&format!("missing {}", missing.join(", ")));
        }
        let backing = d.mkdir("share-backing");
        let mount = d.mkdir("share");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let socat = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("EXEC:{SFTP_SERVER}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut share = SftpShare {
            backing,
            mount,
            socat,
            mounted: false,
        };
        // sshfs connects once: wait until socat listens. (The probe connection makes socat
        // start one sftp-server, which ends when the connection closes.)
        wait_for("socat to listen", DEADLINE, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let o = Command::new("timeout")
            .arg("30")
            .arg("sshfs")
            .arg("-o")
            .arg(format!("directport={port}"))
            // The share's own directory cache would only delay what the test shows.
            .arg("-o")
            .arg("dir_cache=no")
            .arg(format!("127.0.0.1:{}", share.backing.display()))
            .arg(&share.mount)
            .output()
            .unwrap();
        if !o.status.success() {
            return skip(&format!("sshfs cannot mount: {}", stderr(&o).trim()));
        }
        share.mounted = true;
        Some(share)
    }

    /// Writes a file on the server side, complete at once (hidden name, then a rename).
    fn write_on_server(&self, name: &str, content: &[u8]) {
        let tmp = self.backing.join(format!(".{name}.uploading"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.backing.join(name)).unwrap();
    }
}

fn skip<T>(why: &str) -> Option<T> {
    if require_tools() {
        panic!("FERRY_REQUIRE_TOOLS is set but the FUSE share cannot be set up: {why}");
    }
    eprintln!("skipped: the FUSE share test needs sshfs, socat, sftp-server and /dev/fuse: {why}");
    None
}

impl Drop for SftpShare {
    fn drop(&mut self) {
        if self.mounted {
            let unmounted = ["fusermount", "fusermount3"].iter().any(|t| {
                Command::new(t)
                    .arg("-u")
                    .arg(&self.mount)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
            }
        }
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

/// Server-side files reach ferry only through rescans: the first file may be found by the
/// scan at start, the second only by a later one.
fn share_is_rescanned(watch: &str) {
    let d = Deployment::new(&format!("fuse-{watch}"));
    let Some(share) = SftpShare::start(&d) else {
        return;
    };
    d.job(
        "share",
        &format!(
            "[source]\nfolder = \"{}\"\nwatch = \"{watch}\"\npoll = \"500ms\"\nsettle = \"1s\"\n\n[[output]]\nfolder = \"out\"\n",
            share.mount.display()
        ),
    );
    let mut daemon = Daemon::start(&d, &[]);
    for (i, name) in ["first.bin", "second.bin"].into_iter().enumerate() {
        let content = pseudo_random(256 * 1024 + i, 100 + i as u64);
        share.write_on_server(name, &content);
        // Archived across file systems: copied out, then removed from the share.
        wait_for(
            &format!("{name}, written on the server side, to be taken through the mount"),
            DEADLINE,
            || {
                d.files("var/archive/share").contains(&name.to_string())
                    && !share.backing.join(name).exists()
            },
        );
        assert!(read(&d.path(&format!("out/{name}"))) == content);
        assert!(read(&d.path(&format!("var/archive/share/{name}"))) == content);
    }
    assert_eq!(d.files("out"), vec!["first.bin", "second.bin"]);
    assert_eq!(daemon.stop(), Some(0));
    if watch == "auto" {
        // Events were really asked for (and simply never came).
        assert!(
            !d.logs().contains("Cannot watch the source folder"),
            "{}",
            d.logs()
        );
    }
    let h = d.history();
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h.iter().all(|r| r["state"] == "done"), "{h:?}");
    drop(daemon);
    drop(share);
}

#[test]
fn a_share_without_events_is_read_by_rescans_in_poll_mode() {
    share_is_rescanned("poll");
}

#[test]
fn a_share_without_events_is_read_by_rescans_in_auto_mode() {
    share_is_rescanned("auto");
}

#[test]
fn a_recursive_source_takes_nested_files_and_keeps_the_structure() {
    let d = Deployment::new("recursive");
    d.job(
        "scans",
        "[source]\nfolder = \"in\"\nrecursive = true\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nname = \"{dir}/{name}\"\n",
    );
    d.write("in/top.pdf", "top");
    d.write("in/branch-a/one.pdf", "one");
    d.write("in/branch-a/2024/two.pdf", "two");
    d.write("in/branch-b/three.pdf", "three");
    d.write("in/.hidden/skipped.pdf", "hidden folders are skipped");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        d.files("out"),
        vec![
            "branch-a/2024/two.pdf",
            "branch-a/one.pdf",
            "branch-b/three.pdf",
            "top.pdf"
        ]
    );
    assert_eq!(read(&d.path("out/branch-a/2024/two.pdf")), b"two");
    assert_eq!(read(&d.path("out/top.pdf")), b"top");
    assert_eq!(d.files("in"), vec![".hidden/skipped.pdf"]);
}

#[test]
fn a_non_recursive_source_ignores_subfolders() {
    let d = Deployment::new("flat");
    d.job(
        "flat",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nname = \"{name}\"\n",
    );
    d.write("in/top.pdf", "top");
    d.write("in/branch-a/one.pdf", "one");
    d.write("in/branch-a/2024/two.pdf", "two");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), vec!["top.pdf"]);
    assert_eq!(
        d.files("in"),
        vec!["branch-a/2024/two.pdf", "branch-a/one.pdf"]
    );
    assert_eq!(d.history().len(), 1);
}
