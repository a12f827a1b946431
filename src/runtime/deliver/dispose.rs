//! Steps 5 and 6: [`dispose_of_original`] archives, deletes or keeps the original as
//! planned, with its done-file; [`done`] records the file done. Recovery runs the same
//! steps for a planned file.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::journal::{Journal, Plan};
use crate::outputs::folder as out;
use crate::sources::folder::Found;

use super::super::original;

/// Step 5: archives, deletes or keeps the original as planned, through the handle of the
/// folder it was listed in; `archive_base` is the archive folder's configured literal part.
/// An original not listed through a handle goes the path way ([`dispose_by_path`]).
/// Returns what happened, for its history.
pub fn dispose_of_original(
    found: &Found,
    plan: &Plan,
    archive_base: Option<&Path>,
) -> io::Result<String> {
    if found.dir.is_none() {
        return dispose_by_path(&found.path, plan);
    }
    let detail = match plan.disposition.as_str() {
        "archive" => {
            let dest = PathBuf::from(plan.dest.as_deref().unwrap_or_default());
            let base = archive_base.unwrap_or(dest.parent().unwrap_or(Path::new("/")));
            let went = original::move_to(found, base, (0..).map(|n| fsutil::numbered(&dest, n)))?;
            format!("archived to {}", went.display())
        }
        "delete" => {
            original::delete(found)?;
            "deleted".to_string()
        }
        _ => "kept in the source".to_string(),
    };
    if let Some(t) = &plan.trigger
        && plan.disposition != "keep"
    {
        original::remove_sibling(found, original::name_of(Path::new(t))?)?;
    }
    Ok(detail)
}

/// Step 5 for an original known only by its path (recovery of a job that is gone).
pub fn dispose_by_path(src: &Path, plan: &Plan) -> io::Result<String> {
    let detail = match plan.disposition.as_str() {
        "archive" => {
            let dest = PathBuf::from(plan.dest.as_deref().unwrap_or_default());
            let went = out::move_unique(src, &dest)?;
            format!("archived to {}", went.display())
        }
        "delete" => {
            std::fs::remove_file(src)?;
            out::sync_parent(src)?;
            "deleted".to_string()
        }
        _ => "kept in the source".to_string(),
    };
    if let Some(t) = &plan.trigger
        && plan.disposition != "keep"
    {
        match std::fs::remove_file(t) {
            Ok(()) => out::sync_parent(Path::new(t))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(detail)
}

/// Step 5 for an original that left its source before a crash (recovery): its disposition
/// happened; only its done-file may be left to remove.
pub fn already_disposed(plan: &Plan) -> String {
    if let Some(t) = &plan.trigger
        && plan.disposition != "keep"
    {
        let _ = std::fs::remove_file(t);
    }
    match plan.disposition.as_str() {
        "archive" => format!("archived to {}", plan.dest.as_deref().unwrap_or_default()),
        "delete" => "deleted".into(),
        _ => "kept in the source".into(),
    }
}

/// Step 6: records file `id` done, with what happened to it (`note`) for its history.
/// Lazy: recovery can tell a done file from its plan and the disk.
pub fn done(journal: &Journal, id: i64, note: String) -> crate::journal::Result<()> {
    journal.done(id, note)
}
