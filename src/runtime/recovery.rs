//! Crash recovery, run once at start before any source is watched.
//!
//! The journal says how far each unfinished file got:
//! - **planned**: its outputs were fsynced under temporary names and its plan is durable. A
//!   temporary file that still exists is complete, so it is renamed into place; then the
//!   original is archived, deleted or kept as planned. Nothing is recomputed, so nothing can
//!   come out twice.
//! - **taken**: nothing was visible yet. Its temporary files are removed and the claim is
//!   remembered, so that taking the file again counts as a further attempt.
//! - **failing**: it was on its way to the error folder: the move and the report are finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::job::Job;
use crate::journal::{Journal, Unfinished};
use crate::readiness::Meta;
use crate::sources::folder::{Found, meta_of};

use super::deliver;
use super::process::{self, Report};

/// What recovery did, for the log and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub completed: usize,
    pub retaken: usize,
    pub failed: usize,
}

/// Finishes what the journal left unfinished. `jobs` (those loaded now) give the source
/// folders through whose handles originals are disposed of, and the literal parts of
/// archive and error folders (docs/design.md, "Folders as handles"); a file of a job that
/// is gone is disposed of by its recorded path.
pub fn recover(
    journal: &Journal,
    jobs: &BTreeMap<String, Job>,
) -> crate::journal::Result<Recovered> {
    let mut r = Recovered::default();
    // A planned database output is loaded by the commit step, which needs its job's
    // connection settings.
    jobs.values().for_each(crate::outputs::database::register);
    for u in journal.unfinished()? {
        let span = tracing::info_span!("recover", job = %u.job, file = %u.identity.path);
        let _e = span.enter();
        let held = jobs
            .get(&u.job)
            .and_then(|j| original_of(j, &u).map(|f| (j, f)));
        match u.state.as_str() {
            "planned" => match finish_plan(journal, &u, held.as_ref()) {
                Ok(detail) => {
                    tracing::info!(original = %detail, "Finished a file interrupted after its plan was made durable.");
                    deliver::done(
                        journal,
                        u.id,
                        format!("finished by recovery; original {detail}"),
                    )?;
                    r.completed += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Cannot finish an interrupted file; ferry tries again at its next start.");
                    journal.event(u.id, "stuck", format!("recovery: {e}"))?;
                }
            },
            "failing" => {
                finish_failing(journal, &u, held.as_ref())?;
                r.failed += 1;
            }
            _ => {
                for t in &u.temps {
                    remove_temp(t);
                }
                if still_there(&u) {
                    journal.event(u.id, "interrupted", "ferry stopped before the file's outputs were planned; it will be taken again".into())?;
                    journal.remember_interrupted(u);
                    r.retaken += 1;
                } else {
                    journal.failed(
                        u.id,
                        "interrupted, and the file has since left the source".into(),
                    )?;
                }
            }
        }
    }
    journal.flush()?;
    Ok(r)
}

fn still_there(u: &Unfinished) -> bool {
    std::fs::symlink_metadata(&u.identity.path).is_ok_and(|md| {
        meta_of(&md)
            == Meta {
                size: u.identity.size,
                mtime_ns: u.identity.mtime_ns,
            }
    })
}

/// The original as the journal recorded it, reached through its job's source folder.
fn original_of(job: &Job, u: &Unfinished) -> Option<Found> {
    let f = crate::sources::folder::at(&job.source, Path::new(&u.identity.path))?;
    let recorded = Meta {
        size: u.identity.size,
        mtime_ns: u.identity.mtime_ns,
    };
    (f.meta == recorded).then_some(f)
}

/// `base` when `dest` lies below it, else `dest`'s own folder (the job's folder template
/// changed since the plan).
fn base_for(base: PathBuf, dest: &Path) -> PathBuf {
    if dest.starts_with(&base) {
        base
    } else {
        dest.parent().map(Path::to_path_buf).unwrap_or(base)
    }
}

/// Steps 4 and 5 of delivery ([`super::deliver`]) for a planned file: its outputs renamed
/// into place and its original disposed of, as planned. Returns what happened to the
/// original, for its history.
fn finish_plan(
    journal: &Journal,
    u: &Unfinished,
    held: Option<&(&Job, Found)>,
) -> std::io::Result<String> {
    // A temporary output that still exists is complete (it was fsynced before the plan);
    // one that does not was renamed already.
    let left = u.outputs.iter().filter(|o| Path::new(&o.temp).exists());
    let renamed = deliver::rename_into_place(journal, u.id, left).map_err(|e| e.error)?;
    if let Some(e) = renamed.unsynced {
        return Err(e);
    }
    let plan = crate::journal::Plan {
        hash: u.hash.clone().unwrap_or_default(),
        outputs: u.outputs.clone(),
        disposition: u.disposition.clone().unwrap_or_else(|| "keep".into()),
        dest: u.dest.clone(),
        trigger: u.trigger.clone(),
    };
    let src = Path::new(&u.identity.path);
    if let Some((job, found)) = held {
        if plan.hash.is_empty()
            && let Ok((h, _)) = found
                .reader()
                .and_then(|mut f| crate::fsutil::hash_reader(&mut f))
        {
            let _ = journal.hashed(u.id, h);
        }
        let dest = Path::new(plan.dest.as_deref().unwrap_or_default());
        if plan.disposition == "archive" && same_content(dest, plan.hash.as_str(), src) {
            // A copy across file systems finished but the original was not removed yet.
            if let Some(dir) = &found.dir {
                dir.unlink(&found.name)?;
                dir.sync()?;
            }
            return Ok(format!("archived to {}", dest.display()));
        }
        let base = base_for(deliver::template_base(&job.after.archive), dest);
        return deliver::dispose_of_original(found, &plan, Some(&base));
    }
    if still_there(u) {
        if plan.hash.is_empty()
            && let Ok(h) = crate::fsutil::hash_file(src)
        {
            // Planned before its hash was known (`deliver::DEFER_HASH_FROM`).
            let _ = journal.hashed(u.id, h);
        }
        if plan.disposition == "archive"
            && let Some(dest) = &plan.dest
            && same_content(Path::new(dest), plan.hash.as_str(), src)
        {
            // A copy across file systems finished but the original was not removed yet.
            std::fs::remove_file(src)?;
            crate::outputs::folder::sync_parent(src)?;
            return Ok(format!("archived to {dest}"));
        }
        return deliver::dispose_by_path(src, &plan);
    }
    // The original already left: the disposition happened before the crash.
    Ok(deliver::already_disposed(&plan))
}

/// Whether `p` has the original's content: its planned sha256, or, when the plan was made
/// before the hash was known (`deliver::DEFER_HASH_FROM`), the original's own.
fn same_content(p: &Path, hash: &str, original: &Path) -> bool {
    if !p.exists() {
        return false;
    }
    let want = if hash.is_empty() {
        match crate::fsutil::hash_file(original) {
            Ok(h) => h,
            Err(_) => return false,
        }
    } else {
        hash.to_string()
    };
    crate::fsutil::hash_file(p).is_ok_and(|h| h == want)
}

fn finish_failing(
    journal: &Journal,
    u: &Unfinished,
    held: Option<&(&Job, Found)>,
) -> crate::journal::Result<()> {
    let error = u.error.clone().unwrap_or_default();
    let dest = u.error_dest.clone();
    let chain = vec![error.clone()];
    let report = Report {
        job: &u.job,
        job_file: Path::new("(job file)"),
        source: Path::new(&u.identity.path),
        size: u.identity.size,
        hash: u.hash.as_deref(),
        attempts: u.attempts,
        error: &chain,
    };
    let src = Path::new(&u.identity.path);
    let keep = u.disposition.as_deref() == Some("keep");
    let result = match (&dest, held) {
        (Some(dest), Some((job, found))) => {
            let base = base_for(deliver::template_base(&job.after.error), Path::new(dest));
            process::quarantine_found(found, Path::new(dest), &base, &report, Vec::new(), keep)
        }
        (Some(dest), None) if still_there(u) => {
            process::quarantine(src, Path::new(dest), &report, Vec::new(), keep)
        }
        (Some(dest), None) => {
            let p = PathBuf::from(dest);
            process::write_report(&p, &report).map(|_| p)
        }
        (None, _) => Err(std::io::Error::other("no error folder recorded")),
    };
    match result {
        Ok(went) => journal.failed(
            u.id,
            format!(
                "moved to {} (finished by recovery): {error}",
                went.display()
            ),
        ),
        Err(e) => journal.failed(
            u.id,
            format!("{error}; and recovery could not move it to the error folder: {e}"),
        ),
    }
}

/// Removes a temporary file, or every file matching `dir/prefix*` (the temporary files of
/// split outputs, whose names were not known when the file was claimed).
fn remove_temp(t: &str) {
    let Some(prefix_path) = t.strip_suffix('*') else {
        let _ = std::fs::remove_file(t);
        return;
    };
    let p = Path::new(prefix_path);
    let (Some(dir), Some(prefix)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    if !prefix.starts_with(".ferry-out-") {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".tmp"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_temporaries_are_removed_by_pattern_and_nothing_else() {
        let d = std::env::temp_dir().join(format!("ferry-recovery-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in [
            ".ferry-out-7-3.tmp",
            ".ferry-out-7-4.tmp",
            ".ferry-out-71-3.tmp",
            "order_7.xml",
        ] {
            std::fs::write(d.join(n), "x").unwrap();
        }
        remove_temp(&d.join(".ferry-out-7-*").to_string_lossy());
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![".ferry-out-71-3.tmp", "order_7.xml"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
