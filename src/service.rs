//! Running under a service manager: systemd's readiness protocol (`Type=notify`) and the
//! log set-up that suits journald or a rotating file.
//!
//! Theory of operation: systemd passes a datagram socket in `NOTIFY_SOCKET`; ferry says
//! `READY=1` once every job is watching its source (after the journal is open and
//! interrupted files are recovered), `RELOADING=1` / `READY=1` around a reload (SIGHUP),
//! and `STOPPING=1` when a graceful stop begins. With `WatchdogSec=` set, systemd also
//! passes `WATCHDOG_USEC`; ferry then sends `WATCHDOG=1` at half that interval from the
//! async runtime, so a daemon whose runtime hangs is restarted. Without `NOTIFY_SOCKET`
//! (a terminal, a test, another init system) every call here does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tells the service manager that every job is watching. Starts the watchdog keep-alives
/// when the manager asked for them.
pub fn ready(jobs: usize) {
    let status = format!("STATUS=Watching {jobs} job(s).");
    notify(&["READY=1", &status]);
    #[cfg(windows)]
    crate::scm::report_running();
    if let Some(every) = watchdog_interval() {
        tracing::debug!(every = ?every, "Sending watchdog keep-alives to the service manager.");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify(&["WATCHDOG=1"]);
            }
        });
    }
}

/// SIGHUP: `reload` reads the job files again (as a change of the jobs folder does, but
/// whether or not a change was noticed) and returns how many jobs run; the service manager
/// is told a reload is under way until it returns.
pub fn reload_by_signal(reload: impl FnOnce() -> usize) {
    tracing::info!("Reloading the job files (SIGHUP).");
    notify(&[
        "RELOADING=1",
        &format!("MONOTONIC_USEC={}", monotonic_usec()),
    ]);
    let jobs = reload();
    notify(&["READY=1", &format!("STATUS=Watching {jobs} job(s).")]);
}

/// A graceful stop begins: the manager waits for the exit (up to `TimeoutStopSec=`).
pub fn stopping() {
    #[cfg(windows)]
    crate::scm::report_stopping();
    notify(&[
        "STOPPING=1",
        "STATUS=Stopping: finishing files in progress.",
    ]);
}

/// Half the watchdog timeout systemd asked for (`WATCHDOG_USEC`, for this process).
fn watchdog_interval() -> Option<Duration> {
    #[cfg(unix)]
    {
        sd_notify::watchdog_enabled()
            .filter(|t| !t.is_zero())
            .map(|t| t / 2)
    }
    #[cfg(not(unix))]
    None
}

fn notify(states: &[&str]) {
    #[cfg(unix)]
    {
        let states: Vec<sd_notify::NotifyState> = states
            .iter()
            .map(|s| sd_notify::NotifyState::Custom(s))
            .collect();
        if let Err(e) = sd_notify::notify(&states) {
            tracing::warn!(error = %e, socket = ?std::env::var_os("NOTIFY_SOCKET"), "Cannot notify the service manager.");
        }
    }
    #[cfg(not(unix))]
    let _ = states;
}

/// CLOCK_MONOTONIC in microseconds, as `RELOADING=1` wants it.
fn monotonic_usec() -> i128 {
    #[cfg(unix)]
    {
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(sd_notify::NotifyState::MonotonicUsec(t)) => t,
            _ => 0,
        }
    }
    #[cfg(not(unix))]
    0
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM` to the device
/// and inode of the stream it gave the service; a child whose stderr went elsewhere keeps
/// the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    #[cfg(unix)]
    {
        let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = var.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let stderr = std::io::stderr();
        // `st_dev`'s type differs between Unix systems.
        #[allow(clippy::unnecessary_cast)]
        let Ok(meta) = rustix::fs::fstat(&stderr).map(|s| (s.st_dev as u64, s.st_ino as u64))
        else {
            return false;
        };
        (dev.parse::<u64>().ok(), ino.parse::<u64>().ok()) == (Some(meta.0), Some(meta.1))
    }
    #[cfg(not(unix))]
    false
}

/// Where `--log-file PATH` writes: a new file every day, `PATH.YYYY-MM-DD`, the newest
/// [`LOG_FILES_KEPT`] kept.
pub fn log_file(path: &Path) -> std::io::Result<tracing_appender::rolling::RollingFileAppender> {
    use tracing_appender::rolling::{Builder, Rotation};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    std::fs::create_dir_all(&dir)?;
    Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .max_log_files(LOG_FILES_KEPT)
        .build(&dir)
        .map_err(std::io::Error::other)
}

/// How many daily log files `--log-file` keeps (about a month).
pub const LOG_FILES_KEPT: usize = 31;
