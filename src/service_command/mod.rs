//! `ferry service ...`: the Windows service, registered with the service control manager
//! (issue 13). The subcommands parse on every system, so that a Linux admin who types
//! them learns where the Linux service is (systemd, `install/install.sh`) instead of
//! reading a usage error; the work itself is in `windows.rs`, built on Windows only.

use std::path::PathBuf;
use std::time::Duration;

/// The service's name in the service control manager, unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "ferry";

#[cfg(windows)]
mod windows;

/// `ferry service ACTION`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand {
    /// Registers ferry as a Windows service: started at boot (automatic, delayed), running
    /// `ferry service run` with this command's --jobs, --state, --log-file, --log and
    /// --log-format, restarted by Windows if it fails.
    #[command(
        after_help = "The account: without --user the service runs as LocalSystem (it reaches shares as the computer account, DOMAIN\\COMPUTER$). Shares usually need a domain account: --user DOMAIN\\name with its password in an environment variable (--password-env VAR; it is never printed). Managed accounts (DOMAIN\\gmsa$, NT AUTHORITY\\LocalService, NT SERVICE\\ferry) need no password. The account needs the right \"Log on as a service\".\n\nThe log goes to <deployment>\\var\\log\\ferry.log.YYYY-MM-DD unless --log-file says otherwise.\n\nExit codes: 0 installed; 2 wrong arguments, or not Windows; 3 the service control manager refused (run as Administrator; `ferry service uninstall` an old one first).\n\nExamples:\n  ferry --jobs C:\\ProgramData\\ferry\\jobs service install\n  $env:FERRY_PW = Read-Host -MaskInput; ferry --jobs C:\\ProgramData\\ferry\\jobs service install --user CORP\\svc-ferry --password-env FERRY_PW"
    )]
    Install {
        /// The account the service runs as, `DOMAIN\name` (or `.\name` for a local one).
        /// Default: LocalSystem.
        #[arg(long, value_name = "DOMAIN\\NAME")]
        user: Option<String>,
        /// The environment variable that holds the account's password.
        #[arg(long, value_name = "VAR", requires = "user")]
        password_env: Option<String>,
        /// How many files are processed at once, over all jobs (as `ferry run --workers`;
        /// default: ferry.toml's `workers`, else 32).
        #[arg(long)]
        workers: Option<usize>,
        /// How long a stop waits for files in progress (as `ferry run --grace`); Windows
        /// is told to wait that long.
        #[arg(long, default_value = "30s", value_parser = crate::job::toml_reader::parse_duration)]
        grace: Duration,
        /// Start it only when asked (`ferry service start`), not at boot.
        #[arg(long)]
        manual: bool,
        /// The service's name (for a second deployment on the same machine).
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Stops the service if it runs, then removes it. Jobs, journal and logs stay.
    Uninstall {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Starts the service and waits until it runs (every job watching).
    Start {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Stops the service gracefully (files in progress are finished, up to its --grace)
    /// and waits until it has stopped.
    Stop {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Whether the service is installed and running, its account and command line.
    Status {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// The service itself, as the service control manager starts it (not for a console:
    /// use `ferry run` there).
    #[command(hide = true)]
    Run {
        #[arg(long)]
        workers: Option<usize>,
        #[arg(long, default_value = "30s", value_parser = crate::job::toml_reader::parse_duration)]
        grace: Duration,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
}

/// The global options of the command line, which the service is installed with.
#[derive(Debug, Clone)]
pub struct Globals {
    pub jobs: PathBuf,
    /// `--state`, when given.
    pub state: Option<PathBuf>,
    /// The state folder in effect (`--state` or its default).
    pub state_dir: PathBuf,
    /// `--log-file`, `--log` and `--log-format`, when given (else ferry.toml decides, then
    /// the defaults).
    pub log_file: Option<PathBuf>,
    pub log: Option<String>,
    /// `human` or `json`.
    pub log_format: Option<&'static str>,
}

/// Runs `ferry service ACTION`; returns the exit code. `run_options` makes the daemon's
/// options from the service's `--workers` (if given) and `--grace`, as `ferry run` does
/// (flags, then ferry.toml, then defaults).
pub fn run(
    cmd: ServiceCommand,
    globals: &Globals,
    run_options: impl FnOnce(Option<usize>, Duration) -> crate::runtime::RunOptions,
) -> i32 {
    #[cfg(windows)]
    {
        windows::command(cmd, globals, run_options)
    }
    #[cfg(not(windows))]
    {
        let _ = (cmd, globals, run_options);
        eprintln!("{}", NOT_WINDOWS);
        crate::cli::exit::INVALID
    }
}

/// What `ferry service ...` says off Windows.
pub const NOT_WINDOWS: &str = "error: `ferry service` manages the Windows service; this is not Windows. On Linux ferry runs under systemd: install it with `sudo install/install.sh` (or the .deb package), then use `systemctl start|stop|status ferry` and `journalctl -u ferry` (see the README, \"Install as a service on Linux\").";

/// Where the service logs when `--log-file` is not given: `var\log\ferry.log` in the
/// deployment (a new file every day, as `--log-file` writes).
pub fn default_log_file(jobs: &std::path::Path) -> PathBuf {
    crate::job::deployment_root(jobs)
        .join("var")
        .join("log")
        .join("ferry.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_log_file_is_in_the_deployment() {
        let f = default_log_file(std::path::Path::new("/srv/ferry/jobs"));
        assert_eq!(f, PathBuf::from("/srv/ferry/var/log/ferry.log"));
    }

    #[test]
    fn off_windows_the_command_says_where_the_linux_service_is() {
        assert!(NOT_WINDOWS.contains("install/install.sh"));
        assert!(NOT_WINDOWS.contains("systemctl"));
    }
}
