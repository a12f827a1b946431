//! A file that ferry never gets through (here: ferry is killed every time it is processing
//! it) is set aside after `max_attempts`, so it cannot stop its job forever.

mod util;

use std::time::Duration;
use util::*;

#[test]
fn a_file_interrupted_max_attempts_times_goes_to_the_error_folder() {
    let d = Deployment::new("poison");
    d.job(
        "p",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n\n[[output]]\nfolder = \"out\"\n\n[after]\nmax_attempts = 2\n",
    );
    d.mkdir("out");
    // Big enough that its copy is still running when ferry is killed.
    let big = d.path("in/big.bin");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(512 << 20).unwrap();
    drop(f);

    for attempt in 1..=2u64 {
        let mut child = d.spawn(&["--workers", "1"]);
        // Kill only once the claim is durable (history shows it) and the copy has begun.
        wait_for(
            "the file to be claimed and its copy begun",
            Duration::from_secs(30),
            || {
                let taken = d
                    .history()
                    .iter()
                    .any(|h| h["state"] == "taken" && h["attempts"].as_u64() == Some(attempt));
                taken && d.files("out").iter().any(|f| f.starts_with(".ferry-out-"))
            },
        );
        signal_and_wait(&mut child, libc::SIGKILL, Duration::from_secs(10));
    }
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let errors = d.files("var/error/p");
    assert_eq!(errors, vec!["big.bin", "big.bin.error.txt"], "{errors:?}");
    let report = std::fs::read_to_string(d.path("var/error/p/big.bin.error.txt")).unwrap();
    assert!(report.contains("interrupted 2 times"), "{report}");
    assert!(report.contains("attempts:  3"), "{report}");
    assert!(
        d.files("out").is_empty(),
        "no output and no temporary file is left: {:?}",
        d.files("out")
    );
    let h = d.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["state"], "failed");
}
