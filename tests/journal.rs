//! A lost journal (issue 11): a journal that was deleted, emptied or replaced is noticed
//! and refused, `--new-journal` accepts the loss, and `ferry journal backup` / `restore`
//! bring a journal back without anything being delivered twice.

mod util;

use std::time::Duration;

use util::*;

const DEADLINE: Duration = Duration::from_secs(90);

/// A job that leaves its files in the source: only the journal keeps them from being
/// delivered again (a second delivery would be `a_1.txt`).
fn keep_job(d: &Deployment) {
    d.job(
        "keep",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n[[output]]\nfolder = \"out\"\nexists = \"unique\"\n\n[after]\nsuccess = \"keep\"\n",
    );
}

fn run_once(d: &Deployment, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--once"];
    args.extend_from_slice(extra);
    d.run(&args)
}

/// A deployment whose keep job delivered `in/a.txt` once.
fn delivered_once(name: &str) -> Deployment {
    let d = Deployment::new(name);
    keep_job(&d);
    d.write("in/a.txt", "a");
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt"]);
    assert!(d.path("var/state/journal.id").exists());
    d
}

fn assert_refused(d: &Deployment, o: &std::process::Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(what), "{err}");
    assert!(err.contains("ferry journal restore BACKUP"), "{err}");
    assert!(err.contains("`ferry run --new-journal`"), "{err}");
    assert!(err.contains("will be taken again"), "{err}");
    assert_eq!(d.files("out"), ["a.txt"], "nothing may be delivered twice");
}

#[test]
fn issue11_a_deleted_journal_is_refused_until_new_journal_accepts_the_loss() {
    let d = delivered_once("journal-deleted");
    for side in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path("var/state").join(side));
    }
    let o = run_once(&d, &[]);
    assert_refused(
        &d,
        &o,
        "journal.sqlite is missing (it was deleted or moved)",
    );
    // The refusal changed nothing: no new journal was made.
    assert!(!d.path("var/state/journal.sqlite").exists());
    let o = d.run(&["status"]);
    assert!(
        stderr(&o).contains("warning: the journal in") && stderr(&o).contains("--new-journal"),
        "{}",
        stderr(&o)
    );
    // The daemon refuses too, at once.
    let o = d.run(&["run"]);
    assert_refused(&d, &o, "is missing");

    let o = run_once(&d, &["--new-journal"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Starting a new journal"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        d.files("out"),
        ["a.txt", "a_1.txt"],
        "accepted: taken again"
    );
    // The new journal is the state folder's journal now.
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt", "a_1.txt"]);
}

#[test]
fn issue11_a_journal_truncated_to_0_bytes_is_refused() {
    let d = delivered_once("journal-truncated");
    std::fs::File::create(d.path("var/state/journal.sqlite")).unwrap();
    let o = run_once(&d, &[]);
    assert_refused(&d, &o, "journal.sqlite is empty");
    assert_eq!(
        std::fs::metadata(d.path("var/state/journal.sqlite"))
            .unwrap()
            .len(),
        0,
        "a refused start leaves the journal file as it was"
    );
    let o = run_once(&d, &["--new-journal"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt", "a_1.txt"]);
}

#[test]
fn issue11_a_journal_replaced_by_a_fresh_one_is_refused() {
    let d = delivered_once("journal-replaced");
    // Another deployment's journal (a fresh one, without this file in it).
    let other = Deployment::new("journal-other");
    keep_job(&other);
    let o = run_once(&other, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for side in ["journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path("var/state").join(side));
    }
    std::fs::copy(
        other.path("var/state/journal.sqlite"),
        d.path("var/state/journal.sqlite"),
    )
    .unwrap();
    let o = run_once(&d, &[]);
    assert_refused(&d, &o, "is not the one this state folder had");

    let o = run_once(&d, &["--new-journal"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt", "a_1.txt"]);
    let id = std::fs::read_to_string(d.path("var/state/journal.id")).unwrap();
    let other_id = std::fs::read_to_string(other.path("var/state/journal.id")).unwrap();
    assert_eq!(id, other_id, "the journal accepted is the one recorded now");
}

#[test]
fn a_lost_id_file_is_written_again_from_the_journal() {
    let d = delivered_once("journal-id-lost");
    let id = std::fs::read_to_string(d.path("var/state/journal.id")).unwrap();
    std::fs::remove_file(d.path("var/state/journal.id")).unwrap();
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["a.txt"]);
    assert_eq!(
        std::fs::read_to_string(d.path("var/state/journal.id")).unwrap(),
        id
    );
}

#[test]
fn issue11_a_backup_made_while_the_daemon_runs_restores_without_duplicates() {
    const N: usize = 200;
    let d = Deployment::new("journal-backup");
    keep_job(&d);
    d.mkdir("in");
    let mut daemon = Daemon::start(&d, &[]);
    for i in 0..N {
        d.write(&format!("in/f{i:03}.txt"), format!("file {i}"));
    }
    wait_for("the daemon's journal to exist", DEADLINE, || {
        !d.history().is_empty()
    });
    // Backups while the daemon commits: each one is complete and passes SQLite's check
    // (the command checks it before it renames it into place).
    let (mut backups, mut during) = (0, 0);
    loop {
        let done = d.history().iter().filter(|r| r["state"] == "done").count();
        let o = d.run(&["journal", "backup", "var/backup.sqlite"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        backups += 1;
        if done < N {
            during += 1;
        }
        if done == N && backups >= 2 {
            eprintln!("{backups} backups, {during} of them while files were being done");
            break;
        }
        assert!(backups < 10_000, "the files were not done");
    }
    // The last backup holds every file as done. (Its "N file(s) recorded" may count more
    // rows: a file that changed while it was taken is released and recorded again.)
    let o = d.run(&["journal", "backup", "var/backup.sqlite"]);
    assert!(stdout(&o).contains("file(s) recorded"), "{}", stdout(&o));
    let c = rusqlite::Connection::open_with_flags(
        d.path("var/backup.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let done: i64 = c
        .query_row("SELECT COUNT(*) FROM files WHERE state = 'done'", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(c);
    assert_eq!(done, N as i64);
    // A restore is refused while the daemon runs.
    let o = d.run(&["journal", "restore", "var/backup.sqlite"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in use by another ferry process"),
        "{}",
        stderr(&o)
    );
    assert_eq!(daemon.stop(), Some(0));

    // The journal is lost; the backup brings it back.
    std::fs::remove_file(d.path("var/state/journal.sqlite")).unwrap();
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = d.run(&["journal", "restore", "var/backup.sqlite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected: Vec<String> = (0..N).map(|i| format!("f{i:03}.txt")).collect();
    assert_eq!(d.files("out"), expected, "nothing delivered twice");
    // Only done rows: a file that changed while it was taken has a released row too.
    let done = |d: &Deployment| -> Vec<serde_json::Value> {
        d.history()
            .into_iter()
            .filter(|r| r["state"] == "done")
            .collect()
    };
    assert_eq!(done(&d).len(), N);

    // A new file after the restore is taken as usual, with the next {seq}.
    d.write("in/g.txt", "g");
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h = done(&d);
    assert_eq!(h.len(), N + 1);
    let g = h
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/in/g.txt")))
        .expect("g.txt done");
    let highest = h.iter().filter_map(|r| r["seq"].as_u64()).max().unwrap();
    assert_eq!(g["seq"].as_u64(), Some(highest), "{g:?}");
}

#[test]
fn a_backup_into_a_folder_gets_a_dated_name_and_is_a_complete_journal() {
    let d = Deployment::new("journal-backup-dir");
    keep_job(&d);
    d.write("in/a.txt", "a");
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    d.mkdir("backups");
    let o = d.run(&["journal", "backup", "backups"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let files = d.files("backups");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("journal-") && files[0].ends_with(".sqlite"),
        "{files:?}"
    );
    // The backup is a journal on its own: history reads it.
    d.mkdir("restored-state");
    std::fs::copy(
        d.path("backups").join(&files[0]),
        d.path("restored-state/journal.sqlite"),
    )
    .unwrap();
    let o = d.run(&["history", "--state", "restored-state", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));

    // The journal itself is no place for its backup.
    let o = d.run(&["journal", "backup", "var/state/journal.sqlite"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is the journal itself"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.history().len(), 1);

    // Restoring another deployment's backup works, and says so.
    let f = Deployment::new("journal-restore-other");
    keep_job(&f);
    let o = run_once(&f, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = f.run(&[
        "journal",
        "restore",
        d.path("backups").join(&files[0]).to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("note: the backup is of journal"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.history().len(), 1);

    // No journal: nothing to back up, and nothing is created.
    let e = Deployment::new("journal-backup-none");
    let o = e.run(&["journal", "backup", "x.sqlite"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no journal"), "{}", stderr(&o));
    assert!(!e.path("x.sqlite").exists());
}

/// The journal written by the release with schema version 2 (tests/data/journal-v2.md).
const JOURNAL_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/journal-v2.sqlite");

/// A deployment with the `invoices` job the v2 journal was written by, and that journal.
fn with_v2_journal(name: &str) -> Deployment {
    let d = Deployment::new(name);
    d.job(
        "invoices",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n\n[after]\nsuccess = \"archive\"\n",
    );
    d.mkdir("var/state");
    std::fs::copy(JOURNAL_V2, d.path("var/state/journal.sqlite")).unwrap();
    d
}

fn user_version(d: &Deployment) -> i64 {
    let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn upgrade_a_journal_of_the_v2_release_is_opened_and_carried_on() {
    let d = with_v2_journal("upgrade-v2");
    let before = d.history();
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(
        before
            .iter()
            .all(|f| f["state"] == "done" && f["job"] == "invoices")
    );

    d.write("in/INV-3.csv", "INV-3,300\n");
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("out"), ["INV-3.csv"]);
    let after = d.history();
    assert_eq!(after.len(), 3, "{after:?}");
    // The journal's `{seq}` numbers go on from where the old release left them.
    assert_eq!(after[2]["seq"], 3, "{after:?}");
    assert_eq!(user_version(&d), 8);
    // Its id is adopted by the state folder.
    let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
    let id: String = c
        .query_row("SELECT value FROM meta WHERE key = 'journal_id'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let recorded = std::fs::read_to_string(d.path("var/state/journal.id")).unwrap();
    assert_eq!(recorded.trim(), id);
}

#[test]
fn upgrade_a_v1_journal_migrates_forward_on_start() {
    let d = with_v2_journal("upgrade-v1");
    {
        // Version 1 had no `meta` table (no journal id).
        let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
        c.execute_batch("DROP TABLE meta; PRAGMA user_version = 1;")
            .unwrap();
    }
    let o = run_once(&d, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(user_version(&d), 8);
    assert!(d.path("var/state/journal.id").exists());
    assert_eq!(d.history().len(), 2);
}

#[test]
fn a_journal_of_a_newer_ferry_is_refused_and_left_as_it_was() {
    let d = with_v2_journal("newer-schema");
    {
        let c = rusqlite::Connection::open(d.path("var/state/journal.sqlite")).unwrap();
        c.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    let db = d.path("var/state/journal.sqlite");
    assert!(!d.path("var/state/journal.sqlite-wal").exists());
    let bytes = read(&db);
    d.write("in/INV-3.csv", "INV-3,300\n");
    for args in [&["run", "--once"][..], &["run"][..]] {
        let o = d.run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("has schema version 99")
                && err.contains("knows versions up to 8")
                && err.contains("written by a newer ferry")
                && err.contains("the journal was not changed"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.matches("schema version 99").count(),
            1,
            "said once: {err}"
        );
        assert!(read(&db) == bytes, "{args:?}: the journal changed");
        for side in ["journal.sqlite-wal", "journal.sqlite-shm"] {
            assert!(
                !d.path("var/state").join(side).exists(),
                "{args:?}: {side} made"
            );
        }
        assert!(!d.path("var/state/journal.id").exists(), "{args:?}");
    }
    // The reading commands refuse it too, rather than misread it.
    for cmd in ["status", "history"] {
        let o = d.run(&[cmd]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("written by a newer ferry"),
            "{cmd}: {}",
            stderr(&o)
        );
        assert!(read(&db) == bytes, "{cmd} changed the journal");
    }
    assert!(d.path("in/INV-3.csv").exists());
    assert!(!d.path("out").exists());
}
