//! `success = "keep"` means ferry never changes the source: not on success, and not on
//! failure either (the failed file is copied to the error folder with its report).

mod util;

use util::*;

#[test]
fn a_failed_file_of_a_keep_job_is_copied_to_the_error_folder_and_stays() {
    let d = Deployment::new("keep-fail");
    d.job(
        "k",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\nexists = \"fail\"\n\n[after]\nsuccess = \"keep\"\n",
    );
    let src = d.write("in/a.csv", "1;2\n");
    d.write("out/a.csv", "someone else's\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(read(&src), b"1;2\n", "the original stays in the source");
    assert_eq!(d.files("var/error/k"), vec!["a.csv", "a.csv.error.txt"]);
    assert_eq!(read(&d.path("var/error/k/a.csv")), b"1;2\n");
    let report = std::fs::read_to_string(d.path("var/error/k/a.csv.error.txt")).unwrap();
    assert!(report.contains("exists already"), "{report}");
    assert_eq!(read(&d.path("out/a.csv")), b"someone else's\n");

    // Unchanged, it is not taken again; changed, it is.
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.files("var/error/k").len(), 2);
    std::fs::remove_file(d.path("out/a.csv")).unwrap();
    std::fs::write(&src, "1;2;3\n").unwrap();
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&d.path("out/a.csv")), b"1;2;3\n");
    assert_eq!(read(&src), b"1;2;3\n");
}

#[test]
fn the_example_deployment_never_changes_its_samples() {
    // Runs the README's main command on a copy of the repository's jobs and samples, twice,
    // the second time with a fresh journal (as after `rm -r var/state`), and checks that no
    // sample changed.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = Deployment::new("examples");
    let copy = |from: &str| {
        for e in walkdir::WalkDir::new(repo.join(from))
            .into_iter()
            .filter_map(Result::ok)
        {
            let rel = e.path().strip_prefix(repo).unwrap();
            if e.file_type().is_dir() {
                std::fs::create_dir_all(d.root.join(rel)).unwrap();
            } else {
                std::fs::copy(e.path(), d.root.join(rel)).unwrap();
            }
        }
    };
    copy("jobs");
    copy("samples");
    let before = d.files("samples");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!d.files("var/out").is_empty());
    std::fs::remove_dir_all(d.path("var/state")).unwrap();
    let _ = d.run(&["run", "--once"]);
    assert_eq!(d.files("samples"), before);
    for f in &before {
        assert_eq!(
            read(&d.path(&format!("samples/{f}"))),
            read(&repo.join("samples").join(f)),
            "{f}"
        );
    }
}
