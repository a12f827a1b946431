//! Issue 13, the Windows half as far as Linux can test it: `ferry service` off Windows
//! points at systemd; Windows paths in job files are refused here with a hint; output
//! names made of record values are names Windows takes, whatever the values. (The service
//! itself runs under wine: scripts of the "wine" part.)

mod util;

use util::*;

#[test]
fn ferry_service_off_windows_points_at_systemd_issue_13() {
    let d = Deployment::new("win-service");
    for args in [
        &["service", "install"][..],
        &[
            "service",
            "install",
            "--user",
            r"CORP\svc-ferry",
            "--password-env",
            "FERRY_PW",
        ],
        &["service", "start"],
        &["service", "stop"],
        &["service", "status"],
        &["service", "uninstall"],
        &["service", "run"],
    ] {
        let o = d
            .cmd(args)
            .env("FERRY_PW", "s3cret-not-to-print")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("this is not Windows")
                && err.contains("install/install.sh")
                && err.contains("systemctl"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("s3cret") && !stdout(&o).contains("s3cret"));
    }
    assert!(!d.path("var").exists(), "nothing is made off Windows");
}

#[test]
fn windows_paths_in_job_files_are_refused_here_with_a_hint_issue_13() {
    let d = Deployment::new("win-unc");
    d.job(
        "share",
        "[source]\nfolder = '\\\\erp01\\exports\\invoices'\n\n[[output]]\nfolder = 'D:\\archive\\in'\n",
    );
    let o = d.run(&["check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("share.toml:2:10")
            && err.contains("Windows network path (UNC)")
            && err.contains("mount"),
        "{err}"
    );
    assert!(
        err.contains("share.toml:5:10") && err.contains("Windows drive path"),
        "{err}"
    );
    // Nothing was made of the odd names below the deployment.
    assert!(
        !d.files("").iter().any(|f| f.contains('\\')),
        "{:?}",
        d.files("")
    );
}

#[test]
fn names_made_of_record_values_are_valid_windows_names_issue_13() {
    let d = Deployment::new("win-names");
    d.job(
        "split",
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"
delimiter = ";"

[transform]
split = "Code"

[[output]]
folder = "out/{Code}"
name = "{Code}"
format = "csv"
exists = "unique"
"#,
    );
    d.write(
        "in/codes.csv",
        "Code;Qty\nNUL;1\nCOM1;2\nCOM0;7\na:b?;3\ntrailing. ;4\nlpt9.txt;5\nAUX ;6\n",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        files_below(&d.path("out")),
        vec![
            "NUL_/AUX_",
            "NUL_/COM0_",
            "NUL_/COM1_",
            "NUL_/NUL_",
            "NUL_/a_b_",
            "NUL_/lpt9_.txt",
            "NUL_/trailing",
        ],
        "the folder is named after the first record, every file after its group"
    );
}

/// There is no PowerShell on this machine (Debian does not package it) to parse
/// install.ps1; this keeps its help and its calls of ferry in step with the script.
#[test]
fn install_ps1_documents_every_parameter_and_installs_through_ferry_issue_13() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(repo.join("install/install.ps1")).unwrap();
    assert!(
        script.starts_with("<#\n.SYNOPSIS"),
        "comment-based help first"
    );
    let params = script
        .split_once("param(")
        .and_then(|(_, rest)| rest.split_once("\n)"))
        .map(|(p, _)| p)
        .expect("a param block");
    // `[type]$Name = default` per line.
    let names: Vec<&str> = params
        .lines()
        .filter_map(|l| l.split_once("]$"))
        .map(|(_, s)| s.split(|c: char| !c.is_alphanumeric()).next().unwrap())
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for n in &names {
        assert!(
            script.contains(&format!(".PARAMETER {n}\n")),
            "-{n} has no .PARAMETER help"
        );
    }
    for call in [
        "'service', 'install'",
        "'service', 'start'",
        "'--password-env'",
    ] {
        assert!(script.contains(call), "install.ps1 should call {call}");
    }
    // The password lives in the environment of the install only.
    assert!(script.contains("Remove-Item Env:\\FERRY_SERVICE_PASSWORD"));
    assert_eq!(script.matches("$env:FERRY_SERVICE_PASSWORD").count(), 1);
}
