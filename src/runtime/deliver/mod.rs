//! The delivery of one file, in the order that makes a crash at any instant safe. Each step
//! is one function (docs/design.md, "Why a file can never be lost or duplicated"):
//!
//! 1. [`claim`]: record the file in the journal (an id, a `{seq}`, the attempt count, the
//!    temporary names about to be created), durably, so that recovery knows every
//!    temporary file that may exist;
//! 2. [`write_temporaries`]: write every output under a temporary name in its target folder
//!    and fsync it; nothing is visible yet, and a failure here only leaves temporary files
//!    to remove;
//! 3. [`make_plan_durable`]: final names, hashes, where the original goes;
//! 4. [`rename_into_place`]: rename the outputs to their final names and fsync their
//!    folders;
//! 5. [`dispose_of_original`]: archive, delete or keep the original;
//! 6. [`done`]: record it done (lazy: recovery can tell from the plan and the disk).
//!
//! [`super::process::process`] takes step 1 and hands a claimed file to [`deliver`], which
//! takes the others in order; between the two it decides whether the file fails instead (an
//! incomplete set, too many attempts, names that do not resolve). What a step needs to know
//! about the file travels in a [`Delivery`]; what it made, in what it returns ([`Written`],
//! then [`Planned`]).
//!
//! After a crash, recovery ([`super::recovery`]) finishes every planned file with the same
//! steps 4 to 6, and removes the temporary files of claimed ones, which are then taken
//! again.

mod claim;
mod dispose;
mod exists;
mod plan;
mod rejects;
mod rename;
mod temp;

use std::path::{Path, PathBuf};

use crate::job::template::Vars;
use crate::job::{Exists, Job, Success};
use crate::journal::Journal;
use crate::sources::folder::Found;

use super::process::{FileError, Outcome};

pub use claim::{Claimed, Resolved, claim, render_dir, resolve, template_base};
pub use dispose::{already_disposed, dispose_by_path, dispose_of_original, done};
pub use exists::{UsedNames, free_name};
pub use plan::{Planned, make_plan_durable};
pub use rename::{NotRenamed, rename_into_place};
pub use temp::{DEFER_HASH_FROM, Written, write_temporaries};

/// One output of a file on its way: its temporary and its final name.
pub struct Target {
    pub idx: u32,
    pub final_path: PathBuf,
    pub temp: PathBuf,
    pub exists: Exists,
    /// A document set's member whose bytes this output gets, instead of the file's.
    pub member: Option<String>,
}

/// A set member claimed with its lead.
pub struct Companion {
    pub found: Found,
    pub id: i64,
    pub attempts: u32,
    pub seq: u64,
}

/// One claimed file, as every step after the claim sees it.
pub struct Delivery<'a> {
    pub job: &'a Job,
    pub found: &'a Found,
    pub vars: &'a Vars<'a>,
    /// The file's id in the journal.
    pub id: i64,
    /// A document set's other members, claimed with it.
    pub companions: &'a [Companion],
    pub journal: &'a Journal,
}

/// Why a delivery ended before its last step: an outcome that is not a failure (the file
/// changed and settles again, or it is stuck for recovery), or a failure, with the
/// original's sha256 when it was known, for the error folder.
pub enum Stop {
    Outcome(Outcome),
    Fail(Option<String>, FileError),
}

impl From<FileError> for Stop {
    fn from(e: FileError) -> Self {
        Stop::Fail(None, e)
    }
}

/// Steps 2 to 6 for a claimed file whose names resolved to `resolved`.
pub fn deliver(d: &Delivery<'_>, mut resolved: Resolved) -> Result<Outcome, Stop> {
    // Two-way exchanges: what the file expects or answers, durable with its plan.
    super::expect::record(d.job, d.found, d.vars, d.id, d.journal).map_err(FileError::new)?;
    let archive_dir = resolved.archive_dir.take();
    let written = write_temporaries(d, resolved)?;
    let planned = make_plan_durable(d, written, archive_dir.as_deref())?;
    let renamed = match rename_into_place(d.journal, d.id, &planned.plan.outputs) {
        Ok(c) => c,
        Err(e) => return Err(rename::withdraw(d, &planned, e)),
    };
    let archive_base =
        (d.job.after.success == Success::Archive).then(|| template_base(&d.job.after.archive));
    let disposed = dispose_of_original(d.found, &planned.plan, archive_base.as_deref());
    if let Some(file) = planned.deferred {
        super::late_hash::submit(
            d.journal,
            super::late_hash::Pending {
                id: d.id,
                file,
                size: d.found.meta.size,
            },
        );
    }
    let detail = match disposed {
        Ok(detail) => detail,
        Err(e) => {
            tracing::error!(error = %e, "Outputs are delivered but the original could not be disposed of; ferry retries at its next start. Check the archive folder.");
            return Ok(stuck(d.journal, d.id, &planned.plan.disposition, &e));
        }
    };
    tracing::info!(original = %detail, "File done.");
    let _ = done(
        d.journal,
        d.id,
        format!("{} output(s); original {detail}", renamed.paths.len()),
    );
    if let Some(o) = finish_members(d, &planned.members, archive_base.as_deref()) {
        return Ok(o);
    }
    let kept = (d.job.after.success == Success::Keep).then_some(d.found.meta);
    let outputs = planned
        .plan
        .outputs
        .iter()
        .map(|o| (o.idx, o.size))
        .collect();
    Ok(Outcome::Done { kept, outputs })
}

/// Steps 5 and 6 for a set's other members, once their lead is done; `Some` (stuck) when
/// one of them cannot be disposed of.
fn finish_members(
    d: &Delivery<'_>,
    members: &[(&Companion, crate::journal::Plan)],
    archive_base: Option<&Path>,
) -> Option<Outcome> {
    for (c, p) in members {
        match dispose_of_original(&c.found, p, archive_base) {
            Ok(detail) => {
                tracing::info!(member = %c.found.name, original = %detail, "Set member done.");
                let _ = done(
                    d.journal,
                    c.id,
                    format!("member of the set of {}; {detail}", d.found.name),
                );
            }
            Err(e) => {
                tracing::error!(member = %c.found.name, error = %e, "A set member could not be disposed of; ferry retries at its next start.");
                return Some(stuck(d.journal, c.id, &p.disposition, &e));
            }
        }
    }
    None
}

/// Records that a file's outputs are delivered but its original is where it was.
fn stuck(journal: &Journal, id: i64, disposition: &str, e: &std::io::Error) -> Outcome {
    let _ = journal.event(
        id,
        "stuck",
        format!("cannot {disposition} the original: {e}"),
    );
    Outcome::Stuck
}

/// Removes the temporary files of `targets` (those that exist).
fn remove_temporaries(targets: &[Target]) {
    for t in targets {
        let _ = std::fs::remove_file(&t.temp);
    }
}
