//! The Debian package (issue 13): `cargo deb` packs the binary these tests already built
//! (no second build), `dpkg -i` installs it, its example jobs run as the user ferry, a
//! newer revision upgrades over it keeping the journal and the admin's job edits, `dpkg
//! --remove` keeps the deployment and `dpkg --purge` leaves nothing behind.
//!
//! This test installs into the real /usr, /etc and /var, so it needs root and dpkg, and it
//! refuses to run (fails, saying why) on a machine that already has a package, a binary, a
//! user or a deployment named ferry: it would purge them. It purges its own package even
//! when it fails. Without root, dpkg or cargo-deb it is skipped, unless FERRY_REQUIRE_TOOLS
//! is set (scripts/test.sh sets it and installs cargo-deb), when it fails instead.

mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use util::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const HOME: &str = "/var/lib/ferry";
const UNIT: &str = "/usr/lib/systemd/system/ferry.service";
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/ferry.service";

/// Everything the package, its maintainer scripts or deb-systemd-helper may create. None
/// may exist before the test; none may be left after the purge.
const FOOTPRINT: &[&str] = &[
    "/usr/bin/ferry",
    "/etc/ferry",
    HOME,
    "/var/log/ferry",
    "/usr/share/ferry",
    "/usr/share/doc/ferry",
    UNIT,
    "/lib/systemd/system/ferry.service",
    "/etc/systemd/system/ferry.service",
    ENABLED,
    "/var/lib/systemd/deb-systemd-helper-enabled/ferry.service.dsh-also",
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/ferry.service",
    "/var/lib/systemd/deb-systemd-helper-masked/ferry.service",
];

/// Whether the test can run here; panics under FERRY_REQUIRE_TOOLS when it cannot.
fn can_run() -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root".to_string());
    }
    for tool in ["dpkg", "dpkg-query", "runuser", "useradd", "userdel"] {
        if !have(tool) {
            missing.push(tool.to_string());
        }
    }
    let cargo_deb = cargo()
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !cargo_deb {
        missing.push("cargo-deb (cargo install cargo-deb --locked)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("the package test needs {}", missing.join(", "));
    if require_tools() {
        panic!("{why} (FERRY_REQUIRE_TOOLS is set; scripts/test.sh installs what is missing)");
    }
    eprintln!("skipped: {why}");
    false
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// dpkg's status of the package ferry ("install ok installed", "deinstall ok config-files"),
/// or None when dpkg knows of none on this machine.
fn status() -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "ferry"])
        .output()
        .unwrap();
    let s = stdout(&o);
    (o.status.success() && !s.ends_with("not-installed")).then_some(s)
}

fn field(name: &str) -> String {
    let o = ok(Command::new("dpkg-query").args(["-W", &format!("-f=${{{name}}}"), "ferry"]));
    stdout(&o)
}

/// Fails the test, saying why, when this machine has anything of a ferry installation.
fn refuse_if_installed() {
    let mut found: Vec<String> = FOOTPRINT
        .iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .map(|p| p.to_string())
        .collect();
    if let Some(s) = status() {
        found.push(format!("the package ferry ({s})"));
    }
    for db in ["passwd", "group"] {
        if getent(db, "ferry").is_some() {
            found.push(format!("the {db} entry ferry"));
        }
    }
    assert!(
        found.is_empty(),
        "this machine already has a ferry installation: {}. The package test installs the \
         package ferry and purges it (deleting /var/lib/ferry and the user ferry), so it \
         refuses to run here; run it on a machine (or container) without ferry installed, or \
         remove ferry first (dpkg --purge ferry, or undo install/install.sh)",
        found.join(", ")
    );
}

fn getent(db: &str, key: &str) -> Option<String> {
    let o = Command::new("getent").args([db, key]).output().unwrap();
    o.status.success().then(|| stdout(&o).trim().to_string())
}

/// Runs `c` (stdin closed, no prompts) and asserts it succeeded.
fn ok(c: &mut Command) -> Output {
    let o = c
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed ({}):\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

/// `ferry ARGS` run as the user ferry in the deployment, as the unit runs it.
fn as_ferry(args: &[&str]) -> Output {
    ok(Command::new("runuser")
        .args(["-u", "ferry", "--", "/usr/bin/ferry"])
        .args(args)
        .current_dir(HOME))
}

/// Purges the package when the test ends, however it ends, if the test installed it.
struct Installed {
    debs: PathBuf,
    /// The policy-rc.d this test put in place, removed at the end.
    policy: Option<PathBuf>,
}

impl Installed {
    fn new(debs: PathBuf) -> Installed {
        std::fs::create_dir_all(&debs).unwrap();
        // Where systemd runs, the package starts the service on installation, and the
        // daemon would hold the deployment this test runs `run --once` in. A policy-rc.d
        // that denies every start (Debian's way of installing packages without starting
        // them, honoured by deb-systemd-invoke) keeps it stopped, unless the machine has
        // its own policy already.
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let policy = (Path::new("/run/systemd/system").is_dir() && !policy.exists()).then(|| {
            std::fs::write(
                policy,
                "#!/bin/sh\n# ferry's package test (tests/package.rs)\nexit 101\n",
            )
            .unwrap();
            std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).unwrap();
            policy.to_path_buf()
        });
        Installed { debs, policy }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if status().is_some() {
            let o = Command::new("dpkg")
                .args(["--purge", "ferry"])
                .stdin(Stdio::null())
                .output();
            if let Ok(o) = o {
                eprintln!("cleanup: dpkg --purge ferry: {}{}", stdout(&o), stderr(&o));
            }
        }
        let _ = std::fs::remove_dir_all(&self.debs);
        if let Some(policy) = &self.policy {
            let _ = std::fs::remove_file(policy);
        }
    }
}

/// Builds the package from the binary the tests use, with Debian revision `revision`.
fn build_deb(out: &Path, revision: u32) -> PathBuf {
    // target/debug/ferry is cargo's "dev" profile, target/release/ferry "release".
    let profile_dir = Path::new(BIN).parent().unwrap().file_name().unwrap();
    let profile = if profile_dir == "debug" {
        "dev"
    } else {
        "release"
    };
    let deb = out.join(format!("ferry_{revision}.deb"));
    ok(cargo()
        .args([
            "deb",
            "--no-build",
            "--fast",
            "--quiet",
            "--profile",
            profile,
        ])
        .args(["--deb-revision", &revision.to_string()])
        .arg("--manifest-path")
        .arg(Path::new(REPO).join("Cargo.toml"))
        .arg("--output")
        .arg(&deb)
        .current_dir(REPO));
    deb
}

/// `rel -> bytes` of every regular file below `base`.
fn tree(base: &Path) -> Vec<(String, Vec<u8>)> {
    files_below(base)
        .into_iter()
        .map(|rel| {
            let bytes = if rel.ends_with(".sqlite") {
                table_rows(&base.join(&rel))
            } else {
                read(&base.join(&rel))
            };
            (rel, bytes)
        })
        .collect()
}

/// A SQLite database an example loads, as its tables' rows: the file's bytes differ from
/// run to run (page layout, and `ferry_loads`, which holds the time and the journal's id).
fn table_rows(db: &Path) -> Vec<u8> {
    let c = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'ferry_loads' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = String::new();
    for t in tables {
        let mut st = c
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
            .unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        for row in rows {
            out.push_str(&format!("{t}: {}\n", row.unwrap()));
        }
    }
    out.into_bytes()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else if e.file_name() != ".ferry.lock" {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The example jobs run by the test's own binary over a copy of jobs/ and samples/: what
/// the packaged deployment must produce.
fn reference_outputs() -> Vec<(String, Vec<u8>)> {
    let d = Deployment::new("package-reference");
    copy_dir(&Path::new(REPO).join("jobs"), &d.path("jobs"));
    copy_dir(&Path::new(REPO).join("samples"), &d.path("samples"));
    let o = d.run(&["run", "--once", "--workers", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    tree(&d.path("var/out"))
}

fn journal_id() -> String {
    let c = rusqlite::Connection::open_with_flags(
        Path::new(HOME).join("var/state/journal.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.query_row("SELECT value FROM meta WHERE key = 'journal_id'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Every file and folder below `base` (not following links) belongs to `uid`, but for the
/// link `base/jobs` (root's: the job files are root's to change, not the service's).
fn assert_owned_by(base: &Path, uid: u32) {
    let jobs = base.join("jobs");
    assert_eq!(jobs.symlink_metadata().unwrap().uid(), 0);
    for e in walkdir::WalkDir::new(base) {
        let e = e.unwrap();
        if e.path() == jobs {
            continue;
        }
        let md = e.path().symlink_metadata().unwrap();
        assert_eq!(
            md.uid(),
            uid,
            "{} is not the user ferry's",
            e.path().display()
        );
    }
}

#[test]
fn the_deb_installs_runs_its_examples_as_ferry_upgrades_keeping_the_journal_and_purges_cleanly() {
    if !can_run() {
        return;
    }
    refuse_if_installed();
    let debs = std::env::temp_dir().join(format!("ferry-package-test-{}", std::process::id()));
    let _cleanup = Installed::new(debs.clone());
    let first = build_deb(&debs, 1);
    let second = build_deb(&debs, 2);
    let version = env!("CARGO_PKG_VERSION");

    // Install.
    ok(Command::new("dpkg").arg("-i").arg(&first));
    assert_eq!(status().as_deref(), Some("install ok installed"));
    assert_eq!(field("Version"), format!("{version}-1"));
    let v = ok(Command::new("/usr/bin/ferry").arg("--version"));
    assert_eq!(stdout(&v), stdout(&ok(Command::new(BIN).arg("--version"))));
    // The unit is install/ferry.service as it is: one source of truth.
    assert_eq!(
        read(Path::new(UNIT)),
        read(&Path::new(REPO).join("install/ferry.service"))
    );
    // As installed, with its ExecStart there, the unit passes systemd's own check.
    if have("systemd-analyze") {
        let o = ok(Command::new("systemd-analyze").args(["verify", UNIT]));
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "systemd-analyze verify {UNIT}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
    } else {
        assert!(
            !require_tools(),
            "systemd-analyze is not installed (Debian package systemd; scripts/test.sh installs it)"
        );
    }
    // deb-systemd-helper enables it even where systemd is not running.
    assert!(
        Path::new(ENABLED).symlink_metadata().is_ok(),
        "the unit is not enabled"
    );

    // The user install.sh makes: a system user without a login, at home in the deployment.
    let pw = getent("passwd", "ferry").expect("no user ferry");
    let pw: Vec<&str> = pw.split(':').collect();
    assert_eq!(pw[5], HOME, "{pw:?}");
    assert_eq!(pw[6], "/usr/sbin/nologin", "{pw:?}");
    let uid: u32 = pw[2].parse().unwrap();
    assert!(uid < 1000, "not a system user: {pw:?}");
    let home = std::fs::metadata(HOME).unwrap();
    assert_eq!(home.uid(), uid);
    assert_eq!(home.permissions().mode() & 0o7777, 0o750);
    // The jobs are conffiles in /etc/ferry/jobs, where the deployment's jobs/ leads.
    assert_eq!(
        std::fs::read_link(Path::new(HOME).join("jobs")).unwrap(),
        Path::new("/etc/ferry/jobs")
    );
    let conffiles = field("Conffiles");
    let repo_jobs: Vec<String> = std::fs::read_dir(Path::new(REPO).join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    assert!(!repo_jobs.is_empty());
    for job in &repo_jobs {
        assert!(
            conffiles.contains(&format!("/etc/ferry/jobs/{job} ")),
            "{job} is not a conffile:\n{conffiles}"
        );
    }

    // The examples, checked and run as the unit runs them: as ferry, in /var/lib/ferry.
    let check = as_ferry(&["check"]);
    assert!(
        stdout(&check).contains(&format!("{} job file(s) valid", repo_jobs.len())),
        "{}",
        stdout(&check)
    );
    as_ferry(&["run", "--once", "--workers", "1"]);
    let out = Path::new(HOME).join("var/out");
    let outputs = tree(&out);
    let want = reference_outputs();
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&outputs), names(&want));
    assert!(
        outputs == want,
        "the packaged examples' outputs differ from the source tree's"
    );
    assert_owned_by(Path::new(HOME), uid);
    let id = journal_id();
    let history = stdout(&as_ferry(&["history", "--limit", "0"]));
    assert!(history.contains("orders_20261102.csv"), "{history}");

    // An admin edits one example job and deletes another.
    let orders = Path::new("/etc/ferry/jobs/orders.toml");
    let mut edited = read(orders);
    edited.extend_from_slice(b"# edited by the admin\n");
    std::fs::write(orders, &edited).unwrap();
    std::fs::remove_file("/etc/ferry/jobs/scans.toml").unwrap();

    // Upgrade to a newer revision: the journal is backed up first and then kept, as are the
    // admin's edits (no prompt: the package's versions of them did not change).
    ok(Command::new("dpkg").arg("-i").arg(&second));
    assert_eq!(field("Version"), format!("{version}-2"));
    let backups = files_below(&Path::new(HOME).join("var/backup"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(journal_id(), id, "the upgrade replaced the journal");
    assert_eq!(stdout(&as_ferry(&["history", "--limit", "0"])), history);
    assert_eq!(read(orders), edited);
    assert!(!Path::new("/etc/ferry/jobs/scans.toml").exists());
    // The journal still knows every file: a run after the upgrade takes none again.
    as_ferry(&["run", "--once", "--workers", "1"]);
    assert!(
        tree(&out) == outputs,
        "a file was taken again after the upgrade"
    );

    // Remove: the program goes, the deployment, its configuration and its user stay.
    ok(Command::new("dpkg").args(["--remove", "ferry"]));
    assert_eq!(status().as_deref(), Some("deinstall ok config-files"));
    assert!(!Path::new("/usr/bin/ferry").exists());
    assert!(!Path::new(UNIT).exists());
    assert_eq!(read(orders), edited);
    assert!(Path::new(HOME).join("var/state/journal.sqlite").exists());
    assert!(getent("passwd", "ferry").is_some());
    // Installed again, it goes on with them.
    ok(Command::new("dpkg").arg("-i").arg(&second));
    assert_eq!(journal_id(), id);
    as_ferry(&["run", "--once", "--workers", "1"]);
    assert!(
        tree(&out) == outputs,
        "a file was taken again after a reinstall"
    );
    assert_eq!(read(orders), edited);

    // Purge: nothing is left.
    ok(Command::new("dpkg").args(["--purge", "ferry"]));
    assert_eq!(status(), None);
    let left: Vec<&&str> = FOOTPRINT
        .iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "left after the purge: {left:?}");
    assert_eq!(getent("passwd", "ferry"), None);
    assert_eq!(getent("group", "ferry"), None);
}

#[test]
fn the_maintainer_scripts_pass_shellcheck() {
    if !have("shellcheck") {
        assert!(
            !require_tools(),
            "shellcheck is not installed (Debian package shellcheck; scripts/test.sh installs it)"
        );
        eprintln!("skipped: shellcheck is not installed");
        return;
    }
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let path = Path::new(REPO).join("install/deb").join(script);
        let o = Command::new("shellcheck").arg(&path).output().unwrap();
        assert!(
            o.status.success(),
            "shellcheck {script}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(
            read(&path).starts_with(b"#!/bin/sh\n"),
            "{script} is not a /bin/sh script"
        );
        // cargo-deb puts the systemd lines where #DEBHELPER# is (also in a comment).
        assert_eq!(
            String::from_utf8(read(&path))
                .unwrap()
                .matches("#DEBHELPER#")
                .count(),
            1,
            "{script} must hold #DEBHELPER# once, on its own line"
        );
    }
}
