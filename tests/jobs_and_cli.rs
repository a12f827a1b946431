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
