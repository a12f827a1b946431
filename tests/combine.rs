//! Combined runs (`combine = true`, issue 14): a scheduled run's records in one output,
//! header once, trailer over the run, every original disposed of after it; a bad original
//! goes to the error folder alone; a crash mid-run redoes the run exactly once.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use util::*;

/// A small deterministic generator (seeded from `FERRY_TEST_SEED`, else the clock).
struct Rng(u64);

impl Rng {
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

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

const NIGHTLY: &str = r#"[source]
folder = "in"
include = ["*.csv"]
settle = "0s"
poll = "100ms"
schedule = "0 23 * * *"
timezone = "UTC"

[input]
format = "csv"

[[output]]
folder = "var/out"
name = "night_{seq}.csv"
format = "csv"
combine = true

[after]
success = "archive"
max_attempts = 1000
"#;

/// Every record line of every file in `dir` (without the header lines), counted.
fn records_in(dir: &std::path::Path) -> (BTreeMap<String, usize>, usize, Vec<String>) {
    let mut seen = BTreeMap::new();
    let mut headers = 0;
    let mut files = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            files.push(name);
            let text = String::from_utf8(read(&e.path())).unwrap();
            for line in text.lines() {
                if line == "id,branch,amount" {
                    headers += 1;
                } else {
                    *seen.entry(line.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    files.sort();
    (seen, headers, files)
}

#[test]
fn a_run_combines_its_files_and_a_bad_one_fails_alone() {
    let d = Deployment::new("combine-basic");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    d.write("in/b.csv", "id,branch,amount\n3,B,1.50\n4,B,2.00\n");
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n2,A,0.01\n");
    // A row with a field too many: the file fails, the others are combined.
    d.write("in/bad.csv", "id,branch,amount\n5,X,1,extra\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8(read(&d.path("var/out/night_1.csv"))).unwrap();
    assert_eq!(
        out, "id,branch,amount\n1,A,9.99\n2,A,0.01\n3,B,1.50\n4,B,2.00\n",
        "one output, header once, the originals in path order, without the bad one"
    );
    assert_eq!(d.files("var/out"), vec!["night_1.csv"]);
    assert_eq!(d.files("var/archive/nightly"), vec!["a.csv", "b.csv"]);
    let errors = d.files("var/error/nightly");
    assert!(errors.contains(&"bad.csv".to_string()), "{errors:?}");
    assert!(
        d.files("in").iter().all(|f| f.starts_with('.')),
        "{:?}",
        d.files("in")
    );
}

#[test]
fn a_combined_run_holds_every_record_once_across_sigkill_crashes() {
    let mut rng =
        Rng::from_env_or_time("a_combined_run_holds_every_record_once_across_sigkill_crashes");
    let d = Deployment::new("combine-torture");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    let mut expected = Vec::new();
    let mut batches = 0;
    let mut drop_batch = |d: &Deployment, rng: &mut Rng, expected: &mut Vec<String>| {
        batches += 1;
        for f in 0..60 {
            let mut text = String::from("id,branch,amount\n");
            for r in 0..400 {
                let line = format!(
                    "{batches}-{f}-{r},B{f},{}.{:02}",
                    rng.range(0, 999),
                    rng.range(0, 99)
                );
                text.push_str(&line);
                text.push('\n');
                expected.push(line);
            }
            d.write(&format!("in/drop_{batches}_{f:03}.csv"), text);
        }
        // One bad original in the middle of each batch: it fails alone, its record is
        // in no output.
        d.write(
            &format!("in/drop_{batches}_030_bad.csv"),
            format!("id,branch,amount\nbad-{batches},X,1,extra\n"),
        );
    };
    for round in 1..=10 {
        // A run that was finished (or never started) gets a new batch: every kill lands in
        // a run that has work to do.
        if d.files("in").iter().all(|f| !f.ends_with(".csv")) {
            drop_batch(&d, &mut rng, &mut expected);
        }
        let mut child = d.spawn(&["--once"]);
        let ms = rng.range(20, 400);
        std::thread::sleep(Duration::from_millis(ms));
        signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(20));
        let (_, _, files) = records_in(&d.path("var/out"));
        println!(
            "round {round}: killed after {ms} ms; {} in the source, outputs {files:?}",
            d.files("in").len()
        );
    }
    let o = d.run(&["run", "--once"]);
    // 1 when the last run met a bad original.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}\n{}",
        stderr(&o),
        d.logs()
    );

    let (seen, headers, files) = records_in(&d.path("var/out"));
    assert!(
        !seen.keys().any(|l| l.starts_with("bad-")),
        "a bad original's record was combined"
    );
    let errors: Vec<String> = d
        .files("var/error/nightly")
        .into_iter()
        .filter(|f| f.ends_with("_bad.csv"))
        .collect();
    assert_eq!(
        errors.len(),
        batches,
        "every bad original in the error folder once: {errors:?}"
    );
    // One output per batch: a run redone after a kill before its plan makes no second one.
    assert!(
        files.len() <= batches,
        "{batches} batches, outputs {files:?}"
    );
    assert!(files.iter().all(|f| f.starts_with("night_")), "{files:?}");
    assert_eq!(headers, files.len(), "the header once per output");
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "records written twice: {doubled:?}");
    let missing: Vec<_> = expected.iter().filter(|l| !seen.contains_key(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} records missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(seen.len(), expected.len());
    // Every original archived, no temporary left anywhere.
    assert_eq!(d.files("var/archive/nightly").len(), 60 * batches);
    assert!(
        d.files("in").iter().all(|f| f.starts_with(".ferry")),
        "{:?}",
        d.files("in")
    );
    let temps: Vec<_> = files_below(&d.path("var"))
        .into_iter()
        .filter(|f| f.contains(".ferry-out-"))
        .collect();
    assert!(temps.is_empty(), "temporaries left: {temps:?}");
}

#[test]
fn a_nightly_run_writes_one_file_with_its_header_once_and_a_trailer_over_the_run() {
    let d = Deployment::new("combine-nightly");
    d.job(
        "nightly",
        r#"[source]
folder = "in"
settle = "0s"
poll = "100ms"
schedule = "0 23 * * *"
timezone = "Europe/Athens"

[input]
format = "csv"

[[output]]
folder = "out"
name = "import_{date:%Y%m%d}.txt"
format = "text"
header = "H;nightly\n"
template = "D;{{ id }};{{ amount }}\n"
footer = "T;{{ count }};{{ totals.amount }}\n"
combine = true
"#,
    );
    d.mkdir("in");
    // 22:00 in Athens, an hour before the slot.
    set_clock(&d, "2027-01-14T20:00:00Z");
    let log = std::fs::File::create(d.path("ferry.log")).unwrap();
    let child = d
        .clocked(&["run"])
        // `{date}` is the run's slot (23:00 in Athens), in the machine's zone.
        .env("TZ", "UTC")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    d.drop_file("in/a.csv", "id,amount\n1,10\n2,5\n");
    d.drop_file("in/b.csv", "id,amount\n3,1\n");
    d.drop_file("in/c.csv", "id,amount\n4,100\n");
    let ready = || {
        let o = d.clocked(&["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["schedules"][0]["waiting"] == 3
    };
    wait_for("3 files waiting for the run", WAIT, ready);
    assert!(d.files("out").is_empty(), "nothing before the slot");
    set_clock(&d, "2027-01-14T21:00:00Z");
    wait_for("the run's output", WAIT, || !d.files("out").is_empty());
    wait_for("the originals archived", WAIT, || {
        d.files("var/archive/nightly").len() == 3
    });
    daemon.stop();
    assert_eq!(d.files("out"), ["import_20270114.txt"]);
    let text = String::from_utf8(read(&d.path("out/import_20270114.txt"))).unwrap();
    assert_eq!(
        text, "H;nightly\nD;1;10\nD;2;5\nD;3;1\nD;4;100\nT;4;116\n",
        "the header once, every original's records, the trailer over the run"
    );
}

#[test]
fn a_run_whose_output_name_is_taken_fails_whole_under_exists_fail() {
    let d = Deployment::new("combine-taken");
    d.job("nightly", NIGHTLY);
    d.write("var/out/night_1.csv", "already here\n");
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n");
    d.write("in/b.csv", "id,branch,amount\n2,B,1.00\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(d.files("var/out"), ["night_1.csv"]);
    assert_eq!(read(&d.path("var/out/night_1.csv")), b"already here\n");
    let errors = d.files("var/error/nightly");
    assert!(
        errors.contains(&"a.csv".to_string()) && errors.contains(&"b.csv".to_string()),
        "{errors:?}"
    );
    let report = String::from_utf8(read(&d.path("var/error/nightly/a.csv.error.txt"))).unwrap();
    assert!(report.contains("night_1.csv exists"), "{report}");
    let temps: Vec<_> = files_below(&d.path("var"))
        .into_iter()
        .filter(|f| f.contains(".ferry-out-"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn a_run_with_on_error_skip_writes_one_rejects_file_beside_its_output() {
    let d = Deployment::new("combine-skip");
    d.job(
        "nightly",
        &NIGHTLY.replace(
            "format = \"csv\"\n\n[[output]]",
            "format = \"csv\"\non_error = \"skip\"\n\n[[output]]",
        ),
    );
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n2,A,1,extra\n");
    d.write("in/b.csv", "id,branch,amount\n3,B,1.00\n4,B\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        d.files("var/out"),
        ["night_1.csv", "night_1.csv.rejects.jsonl"]
    );
    let out = String::from_utf8(read(&d.path("var/out/night_1.csv"))).unwrap();
    assert_eq!(out, "id,branch,amount\n1,A,9.99\n3,B,1.00\n");
    let rejects = String::from_utf8(read(&d.path("var/out/night_1.csv.rejects.jsonl"))).unwrap();
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    // Each line names the original its record came from.
    let files: Vec<String> = rejects
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(files, ["a.csv", "b.csv"], "{rejects}");
    assert_eq!(d.files("var/archive/nightly"), ["a.csv", "b.csv"]);
}

#[test]
fn ferry_test_says_that_an_output_is_combined() {
    let d = Deployment::new("combine-dry");
    d.job("nightly", NIGHTLY);
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n");
    let o = d.run(&["test", "nightly", "in/a.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("combined: a run's records all go into this one file"),
        "{}",
        stdout(&o)
    );
    assert!(d.files("var/out").is_empty());
}

/// The temporary output's size in `dir`, if there is one.
fn temp_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(".ferry-out-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn an_original_that_crashes_every_run_is_set_aside_alone() {
    let d = Deployment::new("combine-poison");
    d.job(
        "nightly",
        &NIGHTLY.replace("max_attempts = 1000", "max_attempts = 1"),
    );
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n");
    d.write("in/b.csv", "id,branch,amount\n2,B,1.00\n");
    // Read last (path order) and big enough to be killed while it is read.
    let mut big = String::from("id,branch,amount\n");
    for i in 0..600_000 {
        big.push_str(&format!("z{i},Z,1.00\n"));
    }
    d.write("in/z_big.csv", &big);
    for attempt in 1..=2u64 {
        let mut child = d.spawn(&["--once"]);
        // This attempt's claims are durable, and the big original is being read.
        wait_for(
            "the big original being read",
            Duration::from_secs(60),
            || {
                let claimed = d.history().iter().any(|h| {
                    h["path"].as_str().is_some_and(|p| p.ends_with("z_big.csv"))
                        && h["attempts"].as_u64() == Some(attempt)
                });
                claimed && temp_size(&d.path("var/out")) > 1 << 20
            },
        );
        signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(20));
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let errors = d.files("var/error/nightly");
    assert_eq!(
        errors,
        ["z_big.csv", "z_big.csv.error.txt"],
        "only the big one: {errors:?}"
    );
    let out =
        String::from_utf8(read(&d.path(&format!("var/out/{}", d.files("var/out")[0])))).unwrap();
    assert_eq!(out, "id,branch,amount\n1,A,9.99\n2,B,1.00\n");
    assert_eq!(d.files("var/archive/nightly"), ["a.csv", "b.csv"]);
}

#[test]
fn a_nightly_run_killed_midway_is_redone_once_at_the_next_start() {
    let d = Deployment::new("combine-redo");
    d.job("nightly", NIGHTLY);
    d.mkdir("in");
    set_clock(&d, "2027-01-14T22:59:00Z");
    let mut expected = vec!["1,A,9.99".to_string()];
    d.write("in/a.csv", "id,branch,amount\n1,A,9.99\n");
    let mut big = String::from("id,branch,amount\n");
    for i in 0..400_000 {
        big.push_str(&format!("z{i},Z,1.00\n"));
        expected.push(format!("z{i},Z,1.00"));
    }
    d.write("in/z_big.csv", &big);
    let mut daemon = start_clocked(&d, &[]);
    d.wait_log("Scheduled job", 1);
    set_clock(&d, "2027-01-14T23:00:00Z");
    wait_for(
        "the run's output being written",
        Duration::from_secs(60),
        || temp_size(&d.path("var/out")) > 1 << 20,
    );
    daemon.stop_with(libc::SIGKILL);
    assert!(
        d.files("var/out")
            .iter()
            .all(|f| f.starts_with(".ferry-out-"))
    );

    let mut daemon = start_clocked(&d, &[]);
    wait_for("the run redone", Duration::from_secs(60), || {
        d.files("var/archive/nightly").len() == 2
    });
    daemon.stop();
    let logs = d.logs();
    assert!(
        logs.contains("The job's last run was interrupted by a stop; it runs once now."),
        "{logs}"
    );
    let (seen, headers, files) = records_in(&d.path("var/out"));
    assert_eq!(files, ["night_1.csv"], "one output, no temporary left");
    assert_eq!(headers, 1);
    assert_eq!(seen.len(), expected.len());
    assert!(seen.values().all(|n| *n == 1), "a record written twice");
    assert!(
        expected.iter().all(|l| seen.contains_key(l)),
        "a record missing"
    );
}
