//! Step 4, [`rename_into_place`]: the planned outputs renamed to their final names
//! (`renameat2(RENAME_NOREPLACE)` unless `exists = "overwrite"`), then their folders
//! fsynced. Recovery runs the same step for a planned file.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::journal::{Journal, PlannedOutput};

use super::{Delivery, FileError, Outcome, Planned, Stop};

/// The outputs renamed into place.
pub struct Renamed {
    /// Where each went (an output skipped at the rename, `exists = "skip"`, is not here).
    pub paths: Vec<PathBuf>,
    /// The first output folder that could not be fsynced (each failure is logged).
    pub unsynced: Option<io::Error>,
}

/// An output that could not be renamed into place.
pub struct NotRenamed {
    pub idx: u32,
    pub final_path: String,
    pub error: io::Error,
    /// The outputs renamed before it.
    pub renamed: Vec<PathBuf>,
    /// The output index of each of `renamed`.
    pub renamed_idx: Vec<u32>,
}

/// Step 4: renames each of `outputs` (planned for file `id`) into place, then fsyncs the
/// folders they went to. Stops at the first output that cannot be renamed.
pub fn rename_into_place<'o>(
    journal: &Journal,
    id: i64,
    outputs: impl IntoIterator<Item = &'o PlannedOutput>,
) -> Result<Renamed, NotRenamed> {
    let mut renamed: Vec<PathBuf> = Vec::new();
    let mut renamed_idx: Vec<u32> = Vec::new();
    for o in outputs {
        match commit_output(o, journal, id) {
            Ok(Some(p)) => {
                renamed.push(p);
                renamed_idx.push(o.idx);
            }
            Ok(None) => {}
            Err(error) => {
                return Err(NotRenamed {
                    idx: o.idx,
                    final_path: o.final_path.clone(),
                    error,
                    renamed,
                    renamed_idx,
                });
            }
        }
    }
    let mut dirs: Vec<&Path> = renamed.iter().filter_map(|p| p.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let mut unsynced = None;
    for d in dirs {
        if let Err(e) = fsutil::sync_dir(d) {
            tracing::error!(folder = %d.display(), error = %e, "Cannot fsync an output folder.");
            unsynced.get_or_insert(e);
        }
    }
    for p in &renamed {
        tracing::info!(output = %p.display(), "Output delivered.");
    }
    Ok(Renamed {
        paths: renamed,
        unsynced,
    })
}

/// Renames one planned output into place, following its `exists` policy when the name was
/// taken between planning and now. `Ok(None)`: skipped (`exists = "skip"`).
fn commit_output(o: &PlannedOutput, journal: &Journal, id: i64) -> io::Result<Option<PathBuf>> {
    let temp = Path::new(&o.temp);
    let base = PathBuf::from(&o.final_path);
    if o.policy == crate::outputs::database::POLICY {
        crate::outputs::database::commit(journal, id, temp)?;
        return Ok(Some(base));
    }
    if o.policy == "overwrite" {
        std::fs::rename(temp, &base)?;
        return Ok(Some(base));
    }
    let mut final_path = base.clone();
    for n in 1.. {
        match fsutil::rename_noreplace(temp, &final_path) {
            Ok(()) => return Ok(Some(final_path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && o.policy == "unique" => {
                final_path = fsutil::numbered(&base, n);
                journal
                    .output_moved(id, o.idx, &final_path.to_string_lossy())
                    .map_err(io::Error::other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && o.policy == "skip" => {
                std::fs::remove_file(temp)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop above returns")
}

/// After an output of a live delivery could not be renamed (a name taken between the
/// check and the rename, or its folder vanished): undoes the file's outputs so that a
/// retry cannot duplicate them. The plan is withdrawn first, so recovery never finishes
/// it (a set's members first: a lead still planned finishes its set at recovery); when
/// it cannot be, everything stays as it is for recovery (stuck).
pub(super) fn withdraw(d: &Delivery<'_>, planned: &Planned<'_>, e: NotRenamed) -> Stop {
    if crate::outputs::database::is_in_doubt(&e.error) {
        // A database load that may have committed: the plan stays for recovery, which
        // asks the load table (docs/databases.md).
        tracing::error!(error = %e.error, "A database load may or may not have been committed; the file is left planned and finished at ferry's next start.");
        let _ = d.journal.event(d.id, "stuck", e.error.to_string());
        return Stop::Outcome(Outcome::Stuck);
    }
    let e = match queue_instead(d, planned, e) {
        Ok(stop) => return stop,
        Err(e) => e,
    };
    let NotRenamed {
        idx,
        final_path,
        error,
        renamed,
        ..
    } = e;
    for (c, _) in &planned.members {
        let _ = d.journal.unplan(
            c.id,
            format!("the set's lead could not be committed: {error}"),
        );
    }
    if let Err(je) = d.journal.unplan(
        d.id,
        format!("output {} could not be committed: {error}", idx + 1),
    ) {
        tracing::error!(error = %je, "Cannot withdraw the plan; leaving the delivered outputs and the original as they are for recovery.");
        return Stop::Outcome(Outcome::Stuck);
    }
    for p in &renamed {
        let _ = std::fs::remove_file(p);
    }
    super::remove_temporaries(&planned.targets);
    Stop::Fail(
        Some(planned.plan.hash.clone()),
        FileError::io(
            format!(
                "cannot commit output {} as {}",
                idx + 1,
                Path::new(&final_path).display()
            ),
            &error,
        )
        .at(idx),
    )
}

/// A rename that failed for a reason that may pass (the output's share went away between
/// the temporary file and the rename): the outputs renamed already stay delivered and
/// are recorded in the retry queue (durably, before the plan is withdrawn), so that the
/// next try writes only the others. `Err` gives the failure back when the file is not
/// queued (it is then withdrawn whole, as before). Outputs of the failing index that were
/// renamed (groups of a split output) are removed: that output is written again whole.
fn queue_instead(
    d: &Delivery<'_>,
    planned: &Planned<'_>,
    e: NotRenamed,
) -> Result<Stop, NotRenamed> {
    if !crate::outputs::failure::of_io(&e.error).is_transient() || !planned.members.is_empty() {
        return Err(e);
    }
    let dest = Path::new(&e.final_path)
        .parent()
        .unwrap_or(Path::new(""))
        .to_string_lossy()
        .into_owned();
    let done: Vec<u32> = e
        .renamed_idx
        .iter()
        .copied()
        .filter(|i| *i != e.idx)
        .collect();
    let mut err = FileError::io(
        format!(
            "cannot commit output {} as {}",
            e.idx + 1,
            Path::new(&e.final_path).display()
        ),
        &e.error,
    );
    err.transient = Some(dest.clone());
    let first_failed = match crate::runtime::retry::after_failure(d, &dest, &err, &done) {
        crate::runtime::retry::Decision::Queued { first_failed } => first_failed,
        crate::runtime::retry::Decision::GiveUp(_) => return Err(e),
    };
    if let Err(je) = d.journal.unplan(
        d.id,
        format!(
            "output {} could not be committed; queued for another try: {}",
            e.idx + 1,
            e.error
        ),
    ) {
        tracing::error!(error = %je, "Cannot withdraw the plan; leaving the delivered outputs and the original as they are for recovery.");
        return Ok(Stop::Outcome(Outcome::Stuck));
    }
    for (p, i) in e.renamed.iter().zip(&e.renamed_idx) {
        if *i == e.idx {
            let _ = std::fs::remove_file(p);
        } else {
            let _ = d.journal.event(
                d.id,
                "delivered",
                format!("output {}: {}", i + 1, p.display()),
            );
        }
    }
    super::remove_temporaries(&planned.targets);
    Ok(Stop::Outcome(Outcome::Queued {
        dest,
        first_failed_ms: first_failed,
        error: err.to_string(),
        output: Some(e.idx),
    }))
}
