//! The rejects file: records skipped for errors (`on_error = "skip"`) go, as JSON lines,
//! to `NAME.rejects.jsonl` beside the first output, a temporary file like the outputs
//! until the plan. It is delivered only when a record was rejected.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::job::Exists;
use crate::job::data::OnError;
use crate::outputs::folder as out;

use super::{Delivery, Target};

/// The rejects file of `d`, when its job skips bad records: beside the first output
/// (`first_folder`, or the first split output's folder when there is none).
pub(super) fn target(d: &Delivery<'_>, first_folder: Option<PathBuf>) -> Option<Target> {
    let input = d.job.input.as_ref()?;
    let folder = first_folder?;
    if input.on_error != OnError::Skip {
        return None;
    }
    let final_path = folder.join(fsutil::fit_component(&format!(
        "{}.rejects.jsonl",
        d.found.name
    )));
    let idx = d.job.outputs.len() as u32;
    Some(Target {
        idx,
        temp: out::temp_path(&final_path, d.id, idx),
        final_path,
        exists: Exists::Unique,
        member: None,
    })
}

/// Adds the rejects file to the outputs when a record was rejected; otherwise removes its
/// (empty or absent) temporary file.
pub(super) fn keep_if_rejected(target: Option<Target>, rejected: u64, targets: &mut Vec<Target>) {
    match target {
        Some(t) if rejected > 0 => targets.push(t),
        Some(t) => {
            let _ = std::fs::remove_file(&t.temp);
        }
        None => {}
    }
}

/// The temporary path the pipeline writes rejected records to (empty: none).
pub(super) fn path(target: &Option<Target>) -> &Path {
    target.as_ref().map_or(Path::new(""), |t| t.temp.as_path())
}
