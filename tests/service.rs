//! Running as a Linux service (issue 13): the systemd unit and install script, the
//! sd_notify protocol (ready, watchdog, reload, stopping), SIGHUP reloads, logs for
//! journald or a rotating file, and `ferry --version`.

mod util;

use std::process::Command;

use util::*;

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let want = format!("ferry {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "--version printed {text:?}");
    let commit = text.trim().trim_start_matches(&want).trim_end_matches(')');
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "not a short commit: {commit:?}"
    );
}
