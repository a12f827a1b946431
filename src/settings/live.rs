//! ferry.toml while the daemon runs: read again when it changes (size, mtime, there or
//! not; looked at with the jobs folder) and at SIGHUP.
//!
//! What applies at once: the job defaults and `[alert]` (the jobs are read again, and those
//! whose result changed take over after their in-flight files, as after an edit of their
//! file) and `[log] level`. What needs a restart, said in the log: `state`, `workers`,
//! `[log] format` and `[log] file`. A broken ferry.toml is logged with every problem and
//! changes nothing: the settings in effect stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{JobDefaults, Settings};

/// Which settings the command line (a flag or its environment variable) fixed: ferry.toml
/// does not change them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixed {
    pub state: bool,
    pub workers: bool,
    pub log_format: bool,
    /// `--log`, `FERRY_LOG` or `RUST_LOG`.
    pub log_level: bool,
    pub log_file: bool,
    pub http: bool,
}

/// Sets the log filter of the running process (`info`, `info,ferry=debug`).
#[derive(Clone)]
pub struct LogLevel(pub Arc<SetLogLevel>);

/// What [`LogLevel`] holds.
pub type SetLogLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogLevel")
    }
}

/// The daemon's view of ferry.toml.
#[derive(Debug, Clone)]
pub struct Live {
    jobs_dir: PathBuf,
    path: PathBuf,
    /// The settings in effect (the last ferry.toml read without problems).
    current: Settings,
    fixed: Fixed,
    log_level: Option<LogLevel>,
    /// Size and mtime of the file as last read; `None`: there was none.
    seen: Option<(u64, i64)>,
}

fn stamp(path: &Path) -> Option<(u64, i64)> {
    let md = std::fs::metadata(path).ok()?;
    let m = crate::sources::folder::meta_of(&md);
    Some((m.size, m.mtime_ns))
}

impl Live {
    pub fn new(
        jobs_dir: &Path,
        current: Settings,
        fixed: Fixed,
        log_level: Option<LogLevel>,
    ) -> Live {
        let path = super::path_for(jobs_dir);
        Live {
            jobs_dir: jobs_dir.to_path_buf(),
            seen: stamp(&path),
            path,
            current,
            fixed,
            log_level,
        }
    }

    /// ferry.toml's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings in effect.
    pub fn current(&self) -> &Settings {
        &self.current
    }

    /// What jobs inherit now.
    pub fn defaults(&self) -> &JobDefaults {
        &self.current.jobs
    }

    /// Whether the file changed (or appeared, or went) since it was last read.
    pub fn changed(&self) -> bool {
        stamp(&self.path) != self.seen
    }

    /// Reads ferry.toml again and applies what applies live. Returns whether the jobs must
    /// be read again (their defaults changed).
    pub fn reload(&mut self) -> bool {
        self.seen = stamp(&self.path);
        let new = match super::load(&self.jobs_dir) {
            Ok(s) => s,
            Err(diags) => {
                for d in &diags {
                    tracing::error!(problem = %d, "Invalid ferry.toml.");
                }
                tracing::warn!(
                    file = %self.path.display(),
                    "ferry.toml has errors; the settings in effect stay (`ferry check` lists the problems)."
                );
                return false;
            }
        };
        let old = std::mem::replace(&mut self.current, new);
        let new = &self.current;
        let f = self.fixed;
        let mut restart: Vec<&str> = Vec::new();
        if new.state != old.state && !f.state {
            restart.push("state");
        }
        if new.workers != old.workers && !f.workers {
            restart.push("workers");
        }
        if new.log_format != old.log_format && !f.log_format {
            restart.push("[log] format");
        }
        if new.log_file != old.log_file && !f.log_file {
            restart.push("[log] file");
        }
        if new.http != old.http && !f.http {
            restart.push("http");
        }
        if new.log_level != old.log_level && !f.log_level {
            let level = new.log_level.as_deref().unwrap_or("info");
            match &self.log_level {
                Some(set) => match (set.0)(level) {
                    Ok(()) => tracing::info!(level = %level, "Log level changed (ferry.toml)."),
                    Err(e) => {
                        tracing::warn!(level = %level, error = %e, "Cannot change the log level.")
                    }
                },
                None => restart.push("[log] level"),
            }
        }
        if !restart.is_empty() {
            tracing::warn!(
                settings = %restart.join(", "),
                "ferry.toml changed settings that take effect at the next start: {}.",
                restart.join(", ")
            );
        }
        let jobs = new.jobs != old.jobs;
        if jobs {
            new.jobs.learn_secrets();
            tracing::info!(
                "ferry.toml changed what jobs inherit ([alert], [defaults]); the jobs are read again."
            );
        } else if self.seen.is_some() {
            tracing::info!(file = %self.path.display(), "ferry.toml read again.");
        }
        jobs
    }
}
