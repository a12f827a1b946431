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
}

/// Step 4: renames each of `outputs` (planned for file `id`) into place, then fsyncs the
/// folders they went to. Stops at the first output that cannot be renamed.
pub fn rename_into_place<'o>(
    journal: &Journal,
    id: i64,
    outputs: impl IntoIterator<Item = &'o PlannedOutput>,
) -> Result<Renamed, NotRenamed> {
    let mut renamed: Vec<PathBuf> = Vec::new();
    for o in outputs {
        match commit_output(o, journal, id) {
            Ok(Some(p)) => renamed.push(p),
            Ok(None) => {}
            Err(error) => {
                return Err(NotRenamed {
                    idx: o.idx,
                    final_path: o.final_path.clone(),
                    error,
                    renamed,
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
    let NotRenamed {
        idx,
        final_path,
        error,
        renamed,
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
        ),
    )
}
