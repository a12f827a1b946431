//! What the daemon runs now, for its HTTP endpoint (`crate::web`): every running job with
//! its metrics, and the job files left out with their problems. The supervisor replaces
//! the whole picture at start and after each reload; readers take a copy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::job::{Job, Loaded};
use crate::metrics::JobMetrics;

/// A running job.
#[derive(Debug, Clone)]
pub struct JobView {
    pub job: Arc<Job>,
    pub metrics: Arc<JobMetrics>,
}

/// A job file left out: where it is and what is wrong with it (`file:line:col: ...`).
#[derive(Debug, Clone)]
pub struct Broken {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

/// The picture at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jobs: BTreeMap<String, JobView>,
    pub broken: BTreeMap<String, Broken>,
}

/// The shared picture.
#[derive(Debug, Default)]
pub struct Board {
    now: RwLock<Snapshot>,
}

impl Board {
    /// A copy of the picture now.
    pub fn snapshot(&self) -> Snapshot {
        self.now.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces the picture: the jobs running and what the last load of the jobs folder
    /// left out.
    pub fn set(&self, jobs: impl Iterator<Item = JobView>, loaded: &Loaded) {
        let jobs = jobs.map(|v| (v.job.name.clone(), v)).collect();
        let broken = loaded
            .broken
            .iter()
            .map(|(name, file)| {
                let mut problems: Vec<String> = loaded
                    .diags
                    .iter()
                    .filter(|d| &d.file == file)
                    .map(|d| crate::redact::scrub(&d.to_string()).into_owned())
                    .collect();
                if let Some(why) = loaded.left_out.get(name) {
                    problems.push(crate::redact::scrub(why).into_owned());
                }
                let b = Broken {
                    file: file.clone(),
                    problems,
                };
                (name.clone(), b)
            })
            .collect();
        if let Ok(mut now) = self.now.write() {
            *now = Snapshot { jobs, broken };
        }
    }
}
