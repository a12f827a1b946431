//! The original in its source folder, moved, copied or removed through the handle of the
//! folder it was listed in (docs/design.md, "Folders as handles"), and archive and error
//! folders opened below their configured literal part without following a symlink.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::sources::dir::Dir;
use crate::sources::folder::Found;

/// Opens (creating what is missing) the folder `dir` below `base`: `base` is the configured
/// literal part (the admin's, which may go through symlinks); nothing below it is followed.
pub fn dest_dir(base: &Path, dir: &Path) -> io::Result<Dir> {
    fsutil::create_dir_all_durable(base)?;
    let root = Dir::open(base)?;
    let rel = dir.strip_prefix(base).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is outside {}", dir.display(), base.display()),
        )
    })?;
    root.create_beneath(rel)
}

/// How often a name that holds another file than the one taken (a swap in progress) is
/// looked at again before the original is left in place, and how long apart.
const SWAP_RETRIES: u32 = 100;
const SWAP_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

fn not_ours(found: &Found) -> io::Error {
    io::Error::other(format!(
        "{} in the source folder is no longer the file that was taken (another file or a link took its name); it is left in place",
        found.name
    ))
}

/// Waits (briefly) until the original's name refers to the file that was taken.
fn still_ours(found: &Found, dir: &Dir) -> io::Result<()> {
    for _ in 0..SWAP_RETRIES {
        let st = dir.stat(&found.name)?;
        if found.id.is_none_or(|id| id == st.id) {
            return Ok(());
        }
        std::thread::sleep(SWAP_PAUSE);
    }
    Err(not_ours(found))
}

/// Renames the original's name to `to_name` in `to`, and makes sure that what moved is the
/// file that was taken: an entry swapped in between the check and the rename is put
/// back (or, when that name is taken again and it is a symlink, removed: only the link
/// goes, never what it points to) and the move is tried again.
fn rename_ours(found: &Found, dir: &Dir, to: &Dir, to_name: &str) -> io::Result<()> {
    for _ in 0..SWAP_RETRIES {
        still_ours(found, dir)?;
        dir.rename_noreplace(&found.name, to, to_name)?;
        let moved = to.stat(to_name)?;
        if found.id.is_none_or(|id| id == moved.id) {
            return Ok(());
        }
        tracing::warn!(file = %found.name, "Another entry took the original's name at the instant it was archived; putting it back and trying again.");
        if to.rename_noreplace(to_name, dir, &found.name).is_err()
            && moved.kind == crate::sources::dir::Kind::Other
        {
            to.unlink(to_name)?;
        }
    }
    Err(not_ours(found))
}

pub(crate) fn name_of(p: &Path) -> io::Result<&str> {
    p.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", p.display()),
        )
    })
}

/// Moves the original to the first free name of `candidates` (all in one folder below
/// `base`), never replacing anything; across file systems a durable copy from the checked
/// handle, then the original is removed. Returns where it went.
pub fn move_to(
    found: &Found,
    base: &Path,
    candidates: impl Iterator<Item = PathBuf>,
) -> io::Result<PathBuf> {
    let Some(dir) = &found.dir else {
        return Err(io::Error::other(
            "the original was not listed through a folder handle",
        ));
    };
    let mut candidates = candidates.peekable();
    let first = candidates.peek().cloned().unwrap_or_default();
    let to = dest_dir(base, first.parent().unwrap_or(base))?;
    for cand in candidates.take(10_000) {
        match rename_ours(found, dir, &to, name_of(&cand)?) {
            Ok(()) => {
                to.sync()?;
                dir.sync()?;
                return Ok(cand);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                copy_into(found, &to, &cand)?;
                still_ours(found, dir)?;
                dir.unlink(&found.name)?;
                dir.sync()?;
                return Ok(cand);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {} after 10,000 tries", first.display()),
    ))
}

/// Copies the original (from its checked handle) to the first free name of `candidates`.
pub fn copy_to(
    found: &Found,
    base: &Path,
    candidates: impl Iterator<Item = PathBuf>,
) -> io::Result<PathBuf> {
    let mut candidates = candidates.peekable();
    let first = candidates.peek().cloned().unwrap_or_default();
    let to = dest_dir(base, first.parent().unwrap_or(base))?;
    for cand in candidates.take(10_000) {
        match copy_into(found, &to, &cand) {
            Ok(()) => return Ok(cand),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {} after 10,000 tries", first.display()),
    ))
}

/// A durable copy of the original into `to` as `dest`'s name, never replacing anything.
fn copy_into(found: &Found, to: &Dir, dest: &Path) -> io::Result<()> {
    let tmp = fsutil::temp_name();
    let result = (|| {
        let mut src = found.reader()?;
        let mut f = to.create_file(&tmp)?;
        io::copy(&mut src, &mut f)?;
        f.flush()?;
        f.sync_all()?;
        to.rename_noreplace(&tmp, to, name_of(dest)?)?;
        to.sync()
    })();
    if result.is_err() {
        let _ = to.unlink(&tmp);
    }
    result
}

/// Removes a file beside the original (its done-file) through the same folder handle.
pub fn remove_sibling(found: &Found, name: &str) -> io::Result<()> {
    let Some(dir) = &found.dir else {
        return std::fs::remove_file(found.path.with_file_name(name));
    };
    match dir.unlink(name) {
        Ok(()) => dir.sync(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the original through its folder's handle, once its name is sure to refer to
/// the file that was taken.
pub fn delete(found: &Found) -> io::Result<()> {
    let Some(dir) = &found.dir else {
        return Err(io::Error::other(
            "the original was not listed through a folder handle",
        ));
    };
    still_ours(found, dir)?;
    dir.unlink(&found.name)?;
    dir.sync()
}
