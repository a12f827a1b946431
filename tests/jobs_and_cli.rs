//! Job files and the admin commands: `check` errors, example jobs, `test` dry runs.

mod util;

use util::*;

#[test]
fn check_reports_every_problem_in_every_file_with_positions() {
    let d = Deployment::new("check");
    d.job("a", "[source]\nfolder = \"in/a\"\nsettel = \"2s\"\n\n[[output]]\nfolder = \"out\"\nname = \"{stem}.{nope}\"\n");
    d.job(
        "b",
        "[source]\nfolder = \"in/b\"\nsettle = \"soon\"\ninclude = 5\n",
    );
    d.job("c", "[source]\nfolder = \"in/c\"\n");
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "jobs/a.toml:3:1: source.settel: unknown key `settel`; did you mean `settle`?"
        ),
        "{err}"
    );
    assert!(
        err.contains("jobs/a.toml:7:16: output[1].name: unknown placeholder `{nope}`"),
        "{err}"
    );
    assert!(
        err.contains("jobs/b.toml:3:10: source.settle: expected a duration"),
        "{err}"
    );
    assert!(
        err.contains(
            "jobs/b.toml:4:11: source.include: expected a list of strings, found the integer 5"
        ),
        "{err}"
    );
    assert!(stdout(&o).contains("ok: c"), "{}", stdout(&o));
}

#[test]
fn check_refuses_two_jobs_taking_the_same_files() {
    let d = Deployment::new("overlap");
    d.job("x", "[source]\nfolder = \"in\"\ninclude = [\"*.csv\"]\n");
    d.job("y", "[source]\nfolder = \"in\"\ninclude = [\"A*.csv\"]\n");
    d.job("z", "[source]\nfolder = \"in\"\ninclude = [\"*.xml\"]\n");
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("jobs `x` and `y` would both take the same files"),
        "{err}"
    );
    assert!(!err.contains("`z`"), "{err}");
}

#[test]
fn every_example_job_is_valid() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = std::process::Command::new(BIN)
        .current_dir(repo)
        .args(["check", "--jobs", "jobs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let n = std::fs::read_dir(repo.join("jobs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(
        stdout(&o).contains(&format!("{n} job file(s) valid")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn history_filters_by_job_and_file_glob() {
    let d = Deployment::new("history-filters");
    d.job(
        "a",
        "[source]\nfolder = \"in-a\"\nsettle = \"0s\"\n[[output]]\nfolder = \"out-a\"\n",
    );
    d.job(
        "b",
        "[source]\nfolder = \"in-b\"\nsettle = \"0s\"\n[[output]]\nfolder = \"out-b\"\n",
    );
    d.write("in-a/INV-1.xml", "1");
    d.write("in-a/note.txt", "2");
    d.write("in-b/INV-2.xml", "3");
    assert_eq!(d.run(&["run", "--once"]).status.code(), Some(0));
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["history", "--json"];
        all.extend_from_slice(args);
        let o = d.run(&all);
        let mut v: Vec<String> = stdout(&o)
            .lines()
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                j["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), vec!["INV-1.xml", "INV-2.xml", "note.txt"]);
    assert_eq!(names(&["--job", "a"]), vec!["INV-1.xml", "note.txt"]);
    assert_eq!(names(&["--file", "INV-*"]), vec!["INV-1.xml", "INV-2.xml"]);
    assert_eq!(
        names(&["--job", "b", "--file", "*.txt"]),
        Vec::<String>::new()
    );
    let human = stdout(&d.run(&["history", "--job", "a", "--file", "note.txt"]));
    assert!(
        human.contains("[done]") && human.contains("output") && human.contains("sha256"),
        "{human}"
    );
}

#[test]
fn json_logs_carry_job_and_file_on_every_file_line() {
    let d = Deployment::new("json-logs");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[[output]]\nfolder = \"out\"\n",
    );
    d.write("in/a.csv", "x");
    let o = d.run(&["--log-format", "json", "run", "--once"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let file_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "Output delivered." || l["message"] == "File done.")
        .collect();
    assert_eq!(file_lines.len(), 2, "{lines:?}");
    for l in file_lines {
        assert_eq!(l["span"]["job"], "j", "{l}");
        assert!(
            l["span"]["file"].as_str().unwrap().ends_with("in/a.csv"),
            "{l}"
        );
    }
}

/// The examples of `ferry test` in the help texts name files that exist, and work.
#[test]
fn issue11_the_help_examples_of_test_name_sample_files_that_exist() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = Deployment::new("help-example");
    for help in [&["--help"][..], &["test", "--help"][..]] {
        let o = std::process::Command::new(BIN)
            .current_dir(repo)
            .args(help)
            .output()
            .unwrap();
        let text = stdout(&o);
        let examples: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ferry test invoices "))
            .collect();
        assert!(
            !examples.is_empty(),
            "no `ferry test invoices` example: {text}"
        );
        for e in examples {
            let file = e.split_whitespace().next().unwrap();
            assert!(repo.join(file).is_file(), "{file} does not exist");
            let o = std::process::Command::new(BIN)
                .current_dir(repo)
                .args(["test", "invoices", file, "--state"])
                .arg(state.path("var/state"))
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
            assert!(stdout(&o).contains("matches:   yes"), "{}", stdout(&o));
        }
    }
}

#[test]
fn issue11_run_once_without_a_jobs_folder_creates_nothing_and_exits_3() {
    let d = Deployment::new("no-jobs-folder");
    std::fs::remove_dir(d.path("jobs")).unwrap();
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: the jobs folder jobs does not exist"),
        "{err}"
    );
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
    assert!(!d.path("var").exists(), "{:?}", d.files(""));
    // The daemon too.
    let o = d.run(&["run"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!d.path("var").exists(), "{:?}", d.files(""));
}

#[test]
fn issue11_history_of_an_unknown_job_says_so_and_exits_2() {
    let d = Deployment::new("history-unknown");
    d.job(
        "known",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[[output]]\nfolder = \"out\"\n",
    );
    // Before any run: no journal yet.
    let o = d.run(&["history", "--job", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: no job `nosuch`") && stderr(&o).contains("(jobs: known)"),
        "{}",
        stderr(&o)
    );
    d.write("in/a.txt", "a");
    assert_eq!(d.run(&["run", "--once"]).status.code(), Some(0));
    let o = d.run(&["history", "--job", "nosuch", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // A known job is fine, and so is a job whose file is gone but whose files are in the
    // journal.
    let o = d.run(&["history", "--job", "known"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("a.txt [done]"), "{}", stdout(&o));
    std::fs::rename(d.path("jobs/known.toml"), d.path("known.toml.off")).unwrap();
    let o = d.run(&["history", "--job", "known"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("a.txt [done]"), "{}", stdout(&o));
}

#[test]
fn status_json_is_explained_in_its_help() {
    let d = Deployment::new("status-help");
    let o = d.run(&["status", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("--json"))
        .unwrap_or_default();
    assert!(line.contains("One JSON object"), "{help}");
}
