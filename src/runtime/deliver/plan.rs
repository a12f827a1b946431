//! Step 3, [`make_plan_durable`]: the file's final names, the sha256 of every output and of
//! the original, and where the original goes, in the journal, durably. From here on
//! recovery finishes the file instead of taking it again.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::journal::{Plan, PlannedOutput};
use crate::outputs::folder as out;
use crate::sources::folder::Found;

use super::{Companion, Delivery, FileError, Outcome, Stop, Target, Written};

/// A file whose plan is durable.
pub struct Planned<'a> {
    /// The outputs as written, in the plan's order.
    pub targets: Vec<Target>,
    pub plan: Plan,
    /// A set's other members, each with its own plan.
    pub members: Vec<(&'a Companion, Plan)>,
    /// The original, opened to be hashed after the plan.
    pub deferred: Option<File>,
}

/// Step 3: plans the written outputs of `d` and where its original (and a set's other
/// members) go: a free name in `archive_dir`, or deleted, or kept. The plans of a set are
/// made durable in one transaction. When the journal refuses, the temporary files are
/// removed and the file is left in place.
pub fn make_plan_durable<'a>(
    d: &Delivery<'a>,
    written: Written,
    archive_dir: Option<&Path>,
) -> Result<Planned<'a>, Stop> {
    let Written {
        targets,
        hash,
        sums,
        deferred,
    } = written;
    let hashed = |e: FileError| Stop::Fail(Some(hash.clone()), e);
    let dest = archive_dir
        .map(|dir| archive_name(dir, &d.found.name, None))
        .transpose()
        .map_err(hashed)?;
    let plan = Plan {
        hash: hash.clone(),
        outputs: targets
            .iter()
            .zip(&sums)
            .map(|(t, (h, size))| PlannedOutput {
                idx: t.idx,
                temp: t.temp.to_string_lossy().into_owned(),
                final_path: t.final_path.to_string_lossy().into_owned(),
                hash: h.clone(),
                size: *size,
                policy: if is_database(d.job, t.idx) {
                    crate::outputs::database::POLICY.to_string()
                } else {
                    t.exists.as_str().to_string()
                },
            })
            .collect(),
        disposition: d.job.after.success.as_str().to_string(),
        dest: dest.as_ref().map(|p| p.to_string_lossy().into_owned()),
        trigger: trigger(d.job, d.found).map(|t| t.to_string_lossy().into_owned()),
    };
    let members = member_plans(d, &plan, archive_dir, dest.as_deref(), &targets).map_err(hashed)?;
    let durable = if members.is_empty() {
        d.journal.plan(d.id, plan.clone())
    } else {
        let mut all = vec![(d.id, plan.clone())];
        all.extend(members.iter().map(|(c, p)| (c.id, p.clone())));
        d.journal.plan_set(all)
    };
    if let Err(e) = durable {
        super::remove_temporaries(&targets);
        tracing::error!(error = %e, "Cannot make the plan durable; leaving the file in place.");
        return Err(Stop::Outcome(Outcome::Released));
    }
    Ok(Planned {
        targets,
        plan,
        members,
        deferred,
    })
}

/// Whether output `idx` of `job` is a database output (its temporary file is a spool, loaded
/// at the commit instead of renamed).
fn is_database(job: &crate::job::Job, idx: u32) -> bool {
    job.outputs
        .get(idx as usize)
        .is_some_and(|o| matches!(o.data.format, crate::job::data::OutputFormat::Database(..)))
}

/// The done-file (trigger) beside the original that is there now, if any.
fn trigger(job: &crate::job::Job, found: &Found) -> Option<PathBuf> {
    job.source
        .done_files(&found.name)
        .into_iter()
        .map(|n| found.path.with_file_name(n))
        .find(|p| p.exists())
}

/// The first free name for `name` in the archive folder `dir` (and not `not`, the name
/// another file of the same plan takes).
fn archive_name(dir: &Path, name: &str, not: Option<&Path>) -> Result<PathBuf, FileError> {
    let base = fsutil::safe_join(dir, name, false).map_err(FileError::new)?;
    Ok((0..)
        .map(|n| fsutil::numbered(&base, n))
        .find(|p| !fsutil::exists(p) && Some(p.as_path()) != not)
        .expect("an unbounded search finds a free name"))
}

/// The plans of a set's other members: no outputs, the lead's disposition, each its own
/// archive name. A member that cannot be read fails the set (the lead's temporary files,
/// `targets`, are removed).
fn member_plans<'a>(
    d: &Delivery<'a>,
    lead: &Plan,
    archive_dir: Option<&Path>,
    lead_dest: Option<&Path>,
    targets: &[Target],
) -> Result<Vec<(&'a Companion, Plan)>, FileError> {
    let mut plans = Vec::new();
    for c in d.companions {
        let (h, _) = c
            .found
            .reader()
            .and_then(|mut f| out::tee_copy(&mut f, &mut []))
            .map_err(|e| {
                super::remove_temporaries(targets);
                FileError::io(format!("cannot read {}", c.found.name), &e)
            })?;
        let dest = archive_dir
            .map(|dir| archive_name(dir, &c.found.name, lead_dest))
            .transpose()?;
        plans.push((
            c,
            Plan {
                hash: h,
                outputs: Vec::new(),
                disposition: lead.disposition.clone(),
                dest: dest.map(|p| p.to_string_lossy().into_owned()),
                trigger: None,
            },
        ));
    }
    Ok(plans)
}
