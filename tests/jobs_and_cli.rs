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
