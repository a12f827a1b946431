//! Folders as handles (docs/design.md, "Folders as handles").
//!
//! A configured source folder is opened once, as a directory handle, when its job is
//! loaded. The path the admin configured may go through symlinks (their choice), but
//! nothing below it is followed: it is listed through the handle, subfolders are opened
//! through their parent's handle with `O_NOFOLLOW`, and every open, stat, link, rename and
//! unlink of an original is made relative to the handle of the folder that holds it, with
//! a name that is one plain component. A file swapped for a symlink is then refused
//! (`ELOOP`), never read through; a subfolder swapped for a link to elsewhere is never
//! entered; a source folder replaced by a link while running is never followed.
//!
//! Multi-component paths below a handle (archive and error folders below their configured
//! literal part) are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the
//! kernel has it, else component by component with `openat(O_NOFOLLOW | O_DIRECTORY)`.
//!
//! Off Unix the same API works on paths, checking each entry with `symlink_metadata`
//! (best effort: Windows has no `openat`).

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::readiness::Meta;

/// A file's identity on its file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What an entry is, seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Other,
}

/// An entry's kind, identity and size/mtime, seen without following it.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub kind: Kind,
    pub id: FileId,
    pub meta: Meta,
}

/// An open folder. Cheap to clone (the handle is shared).
#[derive(Clone)]
pub struct Dir {
    handle: Arc<imp::Handle>,
    /// For messages and for the files' display paths only; never opened again.
    path: Arc<PathBuf>,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dir({})", self.path.display())
    }
}

/// A name that is one plain component (no `/`, not `.` or `..`), or an error saying so.
fn plain(name: &str) -> io::Result<&str> {
    let mut c = Path::new(name).components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(_)), None) if !name.contains('/') => Ok(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        )),
    }
}

/// The plain components of a relative path, refusing `..`, roots and prefixes.
fn components(rel: &Path) -> io::Result<Vec<&str>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "a folder name is not UTF-8")
            })?),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} leaves its folder", rel.display()),
                ));
            }
        }
    }
    Ok(out)
}

impl Dir {
    /// Opens a configured folder, following symlinks in its path (the admin's choice).
    pub fn open(path: &Path) -> io::Result<Dir> {
        Ok(Dir {
            handle: Arc::new(imp::open_root(path)?),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// The path this folder was reached by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder's own identity.
    pub fn id(&self) -> io::Result<FileId> {
        imp::id_of(&self.handle)
    }

    fn child(&self, handle: imp::Handle, rel: &Path) -> Dir {
        Dir {
            handle: Arc::new(handle),
            path: Arc::new(self.path.join(rel)),
        }
    }

    /// The subfolder `name`, refused when it is a symlink or not a folder.
    pub fn subdir(&self, name: &str) -> io::Result<Dir> {
        match imp::open_dir_at(&self.handle, plain(name)?) {
            Ok(h) => Ok(self.child(h, Path::new(name))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            Err(e) => Err(self.explain(Path::new(name), e)),
        }
    }

    /// Says plainly that `rel` goes through a symbolic link, when that is why it failed.
    fn explain(&self, rel: &Path, e: io::Error) -> io::Error {
        let mut cur = self.path.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                return io::Error::new(
                    e.kind(),
                    format!(
                        "{} is a symbolic link; ferry follows no link below a configured folder",
                        cur.display()
                    ),
                );
            }
        }
        e
    }

    /// The folder `rel` below this one, never through a symlink.
    pub fn beneath(&self, rel: &Path) -> io::Result<Dir> {
        let comps = components(rel)?;
        if comps.is_empty() {
            return Ok(self.clone());
        }
        match imp::open_beneath(&self.handle, &comps) {
            Ok(h) => Ok(self.child(h, rel)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            Err(e) => Err(self.explain(rel, e)),
        }
    }

    /// Like [`Dir::beneath`], creating missing folders (each new one made durable).
    pub fn create_beneath(&self, rel: &Path) -> io::Result<Dir> {
        let mut cur = self.clone();
        for c in components(rel)? {
            cur = match cur.subdir(c) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match imp::mkdir_at(&cur.handle, c) {
                        Ok(()) => cur.sync()?,
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    cur.subdir(c)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cur)
    }

    /// Every entry of the folder (not `.` and `..`), with its kind, not following links.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        imp::entries(&self.handle)
    }

    /// The entry `name`, not following it.
    pub fn stat(&self, name: &str) -> io::Result<Stat> {
        imp::stat_at(&self.handle, plain(name)?)
    }

    /// Opens the regular file `name` for reading; a symlink, a FIFO or a device is refused
    /// without being opened through.
    pub fn open_file(&self, name: &str) -> io::Result<(File, Stat)> {
        let f = imp::open_file_at(&self.handle, plain(name)?)?;
        let st = stat_of_file(&f)?;
        if st.kind != Kind::File {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is not a regular file"),
            ));
        }
        Ok((f, st))
    }

    /// Creates (or opens) `name` for reading and writing, never through a symlink.
    pub fn create_file(&self, name: &str) -> io::Result<File> {
        imp::create_file_at(&self.handle, plain(name)?)
    }

    /// Renames `name` to `to_name` in `to`, failing with `AlreadyExists` rather than
    /// replacing anything.
    pub fn rename_noreplace(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        imp::rename_noreplace(&self.handle, plain(name)?, &to.handle, plain(to_name)?)
    }

    /// Removes the entry `name` (a symlink itself, never what it points to).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        imp::unlink_at(&self.handle, plain(name)?)
    }

    /// Makes `to` (a path) a hard link to the entry `name` itself (a symlink is linked as
    /// a symlink, never followed).
    pub fn link_to(&self, name: &str, to: &Path) -> io::Result<()> {
        imp::link_to(&self.handle, plain(name)?, to)
    }

    /// fsyncs the folder, so that renames and removals in it survive a power cut.
    pub fn sync(&self) -> io::Result<()> {
        imp::sync(&self.handle)
    }
}

/// The kind, identity, size and mtime of an open file.
pub fn stat_of_file(f: &File) -> io::Result<Stat> {
    let md = f.metadata()?;
    Ok(Stat {
        kind: kind_of(md.file_type()),
        id: imp::id_of_file(f, &md)?,
        meta: crate::sources::folder::meta_of(&md),
    })
}

/// The kind, identity, size and mtime of the entry at `path`, not following it.
pub fn stat_path(path: &Path) -> io::Result<Stat> {
    imp::stat_path(path)
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

#[cfg(unix)]
mod imp {
    use super::{FileId, Kind, Stat};
    use crate::readiness::Meta;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    use std::ffi::OsString;
    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub type Handle = OwnedFd;

    fn err(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }

    const DIR_FLAGS: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::CLOEXEC);

    pub fn open_root(path: &Path) -> io::Result<Handle> {
        rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(err)
    }

    pub fn open_dir_at(dir: &Handle, name: &str) -> io::Result<Handle> {
        rustix::fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()).map_err(err)
    }

    /// Whether `openat2` was refused once (an old kernel, or a sandbox filtering it).
    static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

    pub fn open_beneath(dir: &Handle, comps: &[&str]) -> io::Result<Handle> {
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let rel = comps.join("/");
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(dir, rel.as_str(), DIR_FLAGS, Mode::empty(), how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                Err(e) => return Err(err(e)),
            }
        }
        let mut cur = open_dir_at(dir, comps[0])?;
        for c in &comps[1..] {
            cur = open_dir_at(&cur, c)?;
        }
        Ok(cur)
    }

    pub fn mkdir_at(dir: &Handle, name: &str) -> io::Result<()> {
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777)).map_err(err)
    }

    pub fn entries(dir: &Handle) -> io::Result<Vec<(OsString, Kind)>> {
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(dir).map_err(err)? {
            let e = e.map_err(err)?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(name).to_os_string();
            let kind = match e.file_type() {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                // Some file systems do not say: look.
                FileType::Unknown => match name.to_str() {
                    Some(n) => stat_at(dir, n).map_or(Kind::Other, |s| s.kind),
                    None => Kind::Other,
                },
                _ => Kind::Other,
            };
            out.push((name, kind));
        }
        Ok(out)
    }

    pub fn stat_at(dir: &Handle, name: &str) -> io::Result<Stat> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            _ => Kind::Other,
        };
        Ok(Stat {
            kind,
            id: FileId {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            },
            meta: Meta {
                size: st.st_size as u64,
                mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            },
        })
    }

    pub fn open_file_at(dir: &Handle, name: &str) -> io::Result<File> {
        // NONBLOCK: a FIFO swapped in must not block the open (it is refused after).
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(err)?;
        Ok(File::from(fd))
    }

    pub fn create_file_at(dir: &Handle, name: &str) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o644)).map_err(err)?;
        Ok(File::from(fd))
    }

    pub fn rename_noreplace(
        from: &Handle,
        name: &str,
        to: &Handle,
        to_name: &str,
    ) -> io::Result<()> {
        use rustix::fs::RenameFlags;
        match rustix::fs::renameat_with(from, name, to, to_name, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::NOTSUP) => {
                // No RENAME_NOREPLACE here: a link plus unlink refuses to replace too.
                rustix::fs::linkat(from, name, to, to_name, AtFlags::empty()).map_err(err)?;
                unlink_at(from, name)
            }
            Err(e) => Err(err(e)),
        }
    }

    pub fn unlink_at(dir: &Handle, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(err)
    }

    pub fn link_to(dir: &Handle, name: &str, to: &Path) -> io::Result<()> {
        let cwd = rustix::fs::CWD;
        rustix::fs::linkat(dir, name, cwd, to, AtFlags::empty()).map_err(err)
    }

    pub fn sync(dir: &Handle) -> io::Result<()> {
        rustix::fs::fsync(dir).map_err(err)
    }

    pub fn id_of(dir: &Handle) -> io::Result<FileId> {
        let st = rustix::fs::fstat(dir).map_err(err)?;
        Ok(FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        })
    }

    pub fn id_of_metadata(md: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    pub fn id_of_file(_f: &File, md: &std::fs::Metadata) -> io::Result<FileId> {
        Ok(id_of_metadata(md))
    }

    /// The identity of what `path` (whose metadata is `md`) names, following links.
    pub fn id_of_path(_path: &Path, md: &std::fs::Metadata) -> io::Result<FileId> {
        Ok(id_of_metadata(md))
    }

    pub fn stat_path(path: &Path) -> io::Result<Stat> {
        let md = std::fs::symlink_metadata(path)?;
        Ok(Stat {
            kind: super::kind_of(md.file_type()),
            id: id_of_metadata(&md),
            meta: crate::sources::folder::meta_of(&md),
        })
    }
}

#[cfg(not(unix))]
mod imp {
    //! Best effort without `openat`: paths, each entry checked with `symlink_metadata`.
    use super::{FileId, Kind, Stat};
    use std::ffi::OsString;
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};

    pub type Handle = PathBuf;

    fn no_link(p: &Path) -> io::Result<std::fs::Metadata> {
        let md = std::fs::symlink_metadata(p)?;
        if md.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a symbolic link", p.display()),
            ));
        }
        Ok(md)
    }

    pub fn open_root(path: &Path) -> io::Result<Handle> {
        std::fs::read_dir(path)?;
        Ok(path.to_path_buf())
    }

    pub fn open_dir_at(dir: &Handle, name: &str) -> io::Result<Handle> {
        let p = dir.join(name);
        if !no_link(&p)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
        }
        Ok(p)
    }

    pub fn open_beneath(dir: &Handle, comps: &[&str]) -> io::Result<Handle> {
        let mut cur = dir.clone();
        for c in comps {
            cur = open_dir_at(&cur, c)?;
        }
        Ok(cur)
    }

    pub fn mkdir_at(dir: &Handle, name: &str) -> io::Result<()> {
        std::fs::create_dir(dir.join(name))
    }

    pub fn entries(dir: &Handle) -> io::Result<Vec<(OsString, Kind)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let kind = super::kind_of(e.file_type()?);
            out.push((e.file_name(), kind));
        }
        Ok(out)
    }

    pub fn stat_at(dir: &Handle, name: &str) -> io::Result<Stat> {
        stat_path(&dir.join(name))
    }

    /// Opened for its attributes only, as `std::fs::symlink_metadata` does (no read or
    /// write access, so no writer's sharing mode refuses it); `follow` false opens a
    /// symlink or junction itself.
    fn open_attributes(path: &Path, follow: bool) -> io::Result<File> {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000; // folders open too
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000; // the link, not its target
        let flags = if follow {
            FILE_FLAG_BACKUP_SEMANTICS
        } else {
            FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT
        };
        std::fs::OpenOptions::new()
            .access_mode(0)
            .custom_flags(flags)
            .open(path)
    }

    pub fn stat_path(path: &Path) -> io::Result<Stat> {
        super::stat_of_file(&open_attributes(path, false)?)
    }

    pub fn open_file_at(dir: &Handle, name: &str) -> io::Result<File> {
        let p = dir.join(name);
        no_link(&p)?;
        File::open(p)
    }

    pub fn create_file_at(dir: &Handle, name: &str) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(name))
    }

    pub fn rename_noreplace(
        from: &Handle,
        name: &str,
        to: &Handle,
        to_name: &str,
    ) -> io::Result<()> {
        crate::fsutil::rename_noreplace(&from.join(name), &to.join(to_name))
    }

    pub fn unlink_at(dir: &Handle, name: &str) -> io::Result<()> {
        std::fs::remove_file(dir.join(name))
    }

    pub fn link_to(dir: &Handle, name: &str, to: &Path) -> io::Result<()> {
        std::fs::hard_link(dir.join(name), to)
    }

    pub fn sync(dir: &Handle) -> io::Result<()> {
        crate::fsutil::sync_dir(dir)
    }

    pub fn id_of(dir: &Handle) -> io::Result<FileId> {
        id_of_handle(&open_attributes(dir, true)?)
    }

    pub fn id_of_file(f: &File, _md: &std::fs::Metadata) -> io::Result<FileId> {
        id_of_handle(f)
    }

    /// The identity of what `path` names, following links.
    pub fn id_of_path(path: &Path, _md: &std::fs::Metadata) -> io::Result<FileId> {
        id_of_handle(&open_attributes(path, true)?)
    }

    /// The volume's serial number and the file's index on it: Windows' device and inode
    /// (`std`'s `MetadataExt` has them only on nightly).
    fn id_of_handle(f: &File) -> io::Result<FileId> {
        let info = winapi_util::file::information(f)?;
        Ok(FileId {
            dev: info.volume_serial_number(),
            ino: info.file_index(),
        })
    }
}

/// The name of the lock file ferry keeps in each source folder it can write to.
pub const LOCK_NAME: &str = ".ferry.lock";

/// A job's source folder, held open from the job's load on (docs/design.md, "Folders as
/// handles"), and locked against other deployments.
pub struct SourceRoot {
    folder: PathBuf,
    held: std::sync::Mutex<Option<Held>>,
}

struct Held {
    dir: Dir,
    /// Whether the configured path itself was a symlink when it was opened.
    was_link: bool,
    /// Said once: the path now names another folder through a new symlink.
    swap_logged: bool,
    lock: Lock,
}

enum Lock {
    Held(#[allow(dead_code)] Arc<SourceLock>),
    /// The folder is not writable: no lock, said once in the log.
    Unlockable,
    None,
}

impl SourceRoot {
    /// Opens the folder now when it exists (else at the first look).
    pub fn new(folder: &Path) -> SourceRoot {
        let root = SourceRoot {
            folder: folder.to_path_buf(),
            held: std::sync::Mutex::new(None),
        };
        let _ = root.get();
        root
    }

    /// The held folder, locked for this deployment. A source folder replaced by a
    /// *different real folder* (a remount, an admin's rename) is opened anew; one replaced
    /// by a symlink that was not one at load is never followed: ferry keeps to the folder
    /// it opened and logs an error once.
    pub fn get(&self) -> io::Result<Dir> {
        let mut held = self.held.lock().expect("source root");
        let reopen = match &mut *held {
            None => true,
            Some(h) => self.replaced(h),
        };
        if reopen {
            let was_link = std::fs::symlink_metadata(&self.folder)?
                .file_type()
                .is_symlink();
            let dir = Dir::open(&self.folder)?;
            *held = Some(Held {
                dir,
                was_link,
                swap_logged: false,
                lock: Lock::None,
            });
        }
        let h = held.as_mut().expect("opened above");
        if matches!(h.lock, Lock::None) {
            h.lock = lock_source(&h.dir)?;
        }
        Ok(h.dir.clone())
    }

    /// Whether the configured path now names another folder that may be opened instead.
    fn replaced(&self, h: &mut Held) -> bool {
        let (Ok(now), Ok(mine)) = (std::fs::metadata(&self.folder), h.dir.id()) else {
            return false; // gone: keep what is held (it lists as it is)
        };
        if imp::id_of_path(&self.folder, &now).is_ok_and(|id| id == mine) || !now.is_dir() {
            return false;
        }
        let is_link =
            std::fs::symlink_metadata(&self.folder).is_ok_and(|m| m.file_type().is_symlink());
        if is_link && !h.was_link {
            if !h.swap_logged {
                tracing::error!(folder = %self.folder.display(), "The source folder was replaced by a symbolic link while ferry runs; ferry does not follow it and keeps to the folder it opened. Restart ferry (or reload the job) if the change is intended.");
                h.swap_logged = true;
            }
            return false;
        }
        tracing::info!(folder = %self.folder.display(), "The source folder was replaced by another folder; opening it anew.");
        true
    }
}

/// What `ferry check` says about a source folder ferry cannot lock: one that exists but
/// is not writable (a read-only share) gets no `.ferry.lock`.
pub fn check_warnings(folder: &Path) -> Vec<String> {
    if !folder.is_dir() || writable(folder) {
        return Vec::new();
    }
    vec![format!(
        "the source folder {} is not writable: ferry cannot keep its {LOCK_NAME} there, so nothing stops a second deployment (another --state folder) from taking the same files; run one deployment per source",
        folder.display()
    )]
}

#[cfg(unix)]
fn writable(folder: &Path) -> bool {
    use rustix::fs::Access;
    rustix::fs::access(folder, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

#[cfg(not(unix))]
fn writable(folder: &Path) -> bool {
    std::fs::metadata(folder).is_ok_and(|m| !m.permissions().readonly())
}

/// An exclusive `flock` on a source folder's `.ferry.lock`, shared by every job of this
/// process that reads the folder.
pub struct SourceLock {
    _file: File,
}

fn lock_source(dir: &Dir) -> io::Result<Lock> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, Weak};
    static LOCKS: OnceLock<Mutex<HashMap<FileId, Weak<SourceLock>>>> = OnceLock::new();
    let id = dir.id()?;
    let mut locks = LOCKS.get_or_init(Default::default).lock().expect("locks");
    locks.retain(|_, w| w.strong_count() > 0);
    if let Some(l) = locks.get(&id).and_then(Weak::upgrade) {
        return Ok(Lock::Held(l));
    }
    let file = match dir.create_file(LOCK_NAME) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(folder = %dir.path().display(), error = %e, "Cannot create the lock file .ferry.lock in the source folder: nothing stops a second ferry deployment (another --state folder) from taking the same files.");
            return Ok(Lock::Unlockable);
        }
    };
    try_lock(&file).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "another ferry deployment (another --state folder) takes files from {}: its {LOCK_NAME} is locked; this job takes nothing from it until that one stops",
                    dir.path().display()
                ),
            )
        } else {
            e
        }
    })?;
    let l = Arc::new(SourceLock { _file: file });
    locks.insert(id, Arc::downgrade(&l));
    Ok(Lock::Held(l))
}

fn try_lock(f: &File) -> io::Result<()> {
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
