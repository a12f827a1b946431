//! Local folders and mounted shares: listing candidates, and file-system events as hints.
//!
//! Events ([`super::watch`]) only make ferry look sooner; a periodic full rescan is the
//! truth, because network shares (SMB, NFS, FUSE) raise no events for changes made on the
//! server side.

use std::path::{Path, PathBuf};

use crate::job::Source;
use crate::readiness::Meta;

/// A candidate file in a source folder.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    /// The folder relative to the source folder, `/`-separated, empty at the top.
    pub rel_dir: String,
    pub name: String,
    pub meta: Meta,
}

pub fn meta_of(md: &std::fs::Metadata) -> Meta {
    let mtime_ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Meta {
        size: md.len(),
        mtime_ns,
    }
}

/// Looks at one path: a candidate when it is a regular file this source takes.
pub fn stat(source: &Source, path: &Path) -> Option<Found> {
    let rel = path.strip_prefix(&source.folder).ok()?;
    let name = rel.file_name()?.to_str()?.to_string();
    let rel_dir = rel
        .parent()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    if !rel_dir.is_empty() && !source.recursive {
        return None;
    }
    if rel_dir.split('/').any(|c| c.starts_with('.')) {
        return None;
    }
    if !source.matches(&name) {
        return None;
    }
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.file_type().is_file() {
        return None;
    }
    Some(Found {
        path: path.to_path_buf(),
        rel_dir,
        name,
        meta: meta_of(&md),
    })
}

/// Lists every candidate in the source now. Names that are not UTF-8 are skipped with a
/// warning: they cannot be named safely in outputs or reports.
pub fn scan(source: &Source) -> std::io::Result<Vec<Found>> {
    let mut out = Vec::new();
    let depth = if source.recursive { usize::MAX } else { 1 };
    let walker = walkdir::WalkDir::new(&source.folder)
        .min_depth(1)
        .max_depth(depth)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.depth() == 0 => {
                return Err(e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk failed")));
            }
            Err(e) => {
                tracing::warn!(folder = %source.folder.display(), error = %e, "Cannot read part of the source folder.");
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        if entry.file_name().to_str().is_none() {
            tracing::warn!(file = %entry.path().display(), "Skipping a file whose name is not UTF-8.");
            continue;
        }
        if let Some(f) = stat(source, entry.path()) {
            out.push(f);
        }
    }
    Ok(out)
}
