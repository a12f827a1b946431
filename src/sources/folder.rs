//! Local folders and mounted shares: listing candidates, and file-system events as hints.
//!
//! Events ([`super::watch`]) only make ferry look sooner; a periodic full rescan is the
//! truth, because network shares (SMB, NFS, FUSE) raise no events for changes made on the
//! server side.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dir::{Dir, FileId, Kind};
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
    /// The handle of the folder holding the file, when it was listed through one
    /// ([`super::dir`]): every open, rename and unlink of the original goes through it.
    pub dir: Option<Dir>,
    /// The file's identity when it was listed.
    pub id: Option<FileId>,
    /// The original, opened and checked ([`Found::open_checked`]): what is read of it.
    pub opened: Option<Arc<File>>,
}

/// Why an original cannot be taken as it was listed.
#[derive(Debug)]
pub enum NotAsListed {
    /// Gone, or no longer the same regular file (a symlink, another inode, other size or
    /// mtime): not an error, the name is looked at again.
    Changed(String),
    Io(io::Error),
}

impl Found {
    /// Opens the original through its folder's handle without following a symlink, and
    /// checks that it is the regular file that was listed (device, inode, size, mtime).
    pub fn open_checked(&self) -> Result<Found, NotAsListed> {
        let (file, st) = match &self.dir {
            Some(d) => d.open_file(&self.name).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => {
                    NotAsListed::Changed(e.to_string())
                }
                #[cfg(unix)]
                _ if e.raw_os_error() == Some(libc::ELOOP) => {
                    NotAsListed::Changed("it is a symbolic link now".into())
                }
                _ => NotAsListed::Io(e),
            })?,
            None => {
                let f = File::open(&self.path).map_err(NotAsListed::Io)?;
                let st = super::dir::stat_of_file(&f).map_err(NotAsListed::Io)?;
                (f, st)
            }
        };
        if self.id.is_some_and(|id| id != st.id) {
            return Err(NotAsListed::Changed(
                "another file took its name (device and inode differ)".into(),
            ));
        }
        if st.meta != self.meta {
            return Err(NotAsListed::Changed(
                "its size or modification time changed".into(),
            ));
        }
        Ok(Found {
            opened: Some(Arc::new(file)),
            ..self.clone()
        })
    }

    /// A reader of the original from its start: the checked handle when there is one,
    /// else the file opened through its folder's handle (never following a symlink).
    pub fn reader(&self) -> io::Result<File> {
        use std::io::Seek;
        if let Some(f) = &self.opened {
            let mut f = f.try_clone()?;
            f.seek(io::SeekFrom::Start(0))?;
            return Ok(f);
        }
        match &self.dir {
            Some(d) => d.open_file(&self.name).map(|(f, _)| f),
            None => File::open(&self.path),
        }
    }

    /// The original as it is now, from the checked handle.
    pub fn now(&self) -> io::Result<Meta> {
        match &self.opened {
            Some(f) => super::dir::stat_of_file(f).map(|s| s.meta),
            None => std::fs::symlink_metadata(&self.path).map(|m| meta_of(&m)),
        }
    }

    /// A file beside the original (a set's member, a done-file), opened through the same
    /// folder handle without following a symlink.
    pub fn sibling(&self, name: &str) -> io::Result<File> {
        match &self.dir {
            Some(d) => d.open_file(name).map(|(f, _)| f),
            None => File::open(self.path.with_file_name(name)),
        }
    }
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

/// Looks at one path (an event's, a settling file's): a candidate when it is a regular
/// file this source takes, reached from `root` without following any symlink.
pub fn stat(source: &Source, root: &Dir, path: &Path) -> Option<Found> {
    let rel = path.strip_prefix(&source.folder).ok()?;
    let name = rel.file_name()?.to_str()?.to_string();
    let rel_parent = rel.parent().unwrap_or(Path::new(""));
    let rel_dir = rel_parent.to_string_lossy().replace('\\', "/");
    if !rel_dir.is_empty() && !source.recursive {
        return None;
    }
    if rel_dir.split('/').any(|c| c.starts_with('.')) {
        return None;
    }
    let dir = root.beneath(rel_parent).ok()?;
    stat_in(source, &dir, &rel_dir, &name)
}

/// The original at `path`, named by crash recovery: reached from the source folder without
/// following any symlink below it, when it is a regular file there. Its identity is what
/// it is now (the journal records size and mtime, checked by the caller).
pub fn at(source: &Source, path: &Path) -> Option<Found> {
    let rel = path.strip_prefix(&source.folder).ok()?;
    let name = rel.file_name()?.to_str()?.to_string();
    let rel_parent = rel.parent().unwrap_or(Path::new(""));
    let dir = Dir::open(&source.folder).ok()?.beneath(rel_parent).ok()?;
    let st = dir.stat(&name).ok()?;
    (st.kind == Kind::File).then(|| Found {
        path: path.to_path_buf(),
        rel_dir: rel_parent.to_string_lossy().replace('\\', "/"),
        name,
        meta: st.meta,
        dir: Some(dir),
        id: Some(st.id),
        opened: None,
    })
}

/// The entry `name` of `dir` as a candidate, when it is a regular file this source takes.
fn stat_in(source: &Source, dir: &Dir, rel_dir: &str, name: &str) -> Option<Found> {
    if name.starts_with('.') || !source.matches(name) {
        return None;
    }
    let st = dir.stat(name).ok()?;
    if st.kind != Kind::File {
        return None;
    }
    let path = if rel_dir.is_empty() {
        source.folder.join(name)
    } else {
        source.folder.join(rel_dir).join(name)
    };
    Some(Found {
        path,
        rel_dir: rel_dir.to_string(),
        name: name.to_string(),
        meta: st.meta,
        dir: Some(dir.clone()),
        id: Some(st.id),
        opened: None,
    })
}

/// Lists every candidate in the source now, in name order, through the held folder
/// handle; subfolders (with `recursive`) are entered through their parent's handle, never
/// through a symlink. Names that are not UTF-8 are skipped with a warning: they cannot be
/// named safely in outputs or reports.
pub fn scan(source: &Source, root: &Dir) -> io::Result<Vec<Found>> {
    let mut out = Vec::new();
    walk(source, root, "", &mut out)?;
    Ok(out)
}

fn walk(source: &Source, dir: &Dir, rel_dir: &str, out: &mut Vec<Found>) -> io::Result<()> {
    // In name order (bytes): files found ready together are taken, and numbered by
    // `{seq}`, in the same order on every system. The folder's own order is the file
    // system's: hash order on ext4, name order on NTFS, newest first on tmpfs.
    let mut entries = dir.entries()?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in entries {
        let Some(name) = name.to_str() else {
            tracing::warn!(file = %dir.path().join(&name).display(), "Skipping a file whose name is not UTF-8.");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match kind {
            Kind::Dir if source.recursive => {
                let rel = if rel_dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{rel_dir}/{name}")
                };
                let walked = dir
                    .subdir(name)
                    .and_then(|sub| walk(source, &sub, &rel, out));
                if let Err(e) = walked {
                    tracing::warn!(folder = %source.folder.display(), subfolder = %rel, error = %e, "Cannot read part of the source folder.");
                }
            }
            Kind::File => out.extend(stat_in(source, dir, rel_dir, name)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn listed(dir: &Dir, name: &str) -> Found {
        let st = dir.stat(name).unwrap();
        Found {
            path: dir.path().join(name),
            rel_dir: String::new(),
            name: name.into(),
            meta: st.meta,
            dir: Some(dir.clone()),
            id: Some(st.id),
            opened: None,
        }
    }

    fn set_mtime(p: &Path, secs: i64) {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
        f.set_modified(t).unwrap();
    }

    #[test]
    fn a_scan_lists_in_name_order_whatever_the_folder_order() {
        let base = std::env::temp_dir().join(format!("ferry-scan-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("jobs")).unwrap();
        std::fs::create_dir_all(base.join("in/sub")).unwrap();
        // Created in name order: tmpfs lists newest first, ext4 in hash order.
        let names = [
            "A.csv", "B.csv", "a.csv", "b10.csv", "b2.csv", "c.csv", "d.csv",
        ];
        for n in names {
            std::fs::write(base.join("in").join(n), n).unwrap();
        }
        std::fs::write(base.join("in/sub/0.csv"), "0").unwrap();
        let src = "[source]\nfolder = \"in\"\nrecursive = true\n[[output]]\nfolder = \"out\"\n";
        let job = crate::job::compile(&base.join("jobs/j.toml"), &base, src).unwrap();
        let root = Dir::open(&job.source.folder).unwrap();
        let found: Vec<String> = scan(&job.source, &root)
            .unwrap()
            .iter()
            .map(|f| format!("{}{}", f.rel_dir, f.name))
            .collect();
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.push("sub0.csv".into());
        assert_eq!(found, want);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn an_original_is_opened_only_as_the_file_that_was_listed() {
        let base = std::env::temp_dir().join(format!("ferry-found-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("in")).unwrap();
        std::fs::write(base.join("key"), "SECRET").unwrap();
        std::fs::write(base.join("in/a.txt"), "abcdef").unwrap();
        set_mtime(&base.join("key"), 1_700_000_000);
        set_mtime(&base.join("in/a.txt"), 1_700_000_000);
        let dir = Dir::open(&base.join("in")).unwrap();
        let found = listed(&dir, "a.txt");

        // As listed: opened, and a writer going on afterwards shows on the open handle.
        let taken = found.open_checked().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(base.join("in/a.txt"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"more"))
            .unwrap();
        assert_ne!(taken.now().unwrap(), found.meta);

        // A symlink swapped in is refused, never read through.
        std::fs::rename(base.join("in/a.txt"), base.join("a.moved")).unwrap();
        std::os::unix::fs::symlink(base.join("key"), base.join("in/a.txt")).unwrap();
        assert!(matches!(found.open_checked(), Err(NotAsListed::Changed(_))));
        assert!(found.reader().is_err());

        // Another regular file with the same size and mtime: another inode.
        std::fs::remove_file(base.join("in/a.txt")).unwrap();
        std::fs::write(base.join("in/a.txt"), "ghijkl").unwrap();
        set_mtime(&base.join("in/a.txt"), 1_700_000_000);
        let other = listed(&dir, "a.txt");
        assert_eq!(other.meta, found.meta);
        assert!(matches!(found.open_checked(), Err(NotAsListed::Changed(_))));

        // A subfolder that is a link is never entered, alone or inside a path.
        std::os::unix::fs::symlink(&base, base.join("in/sub")).unwrap();
        assert!(dir.subdir("sub").is_err());
        assert!(dir.beneath(Path::new("sub/in")).is_err());
        assert!(dir.beneath(Path::new("../in")).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
