//! Network shares in job files: which source folders default to polling, and Windows paths
//! (`\\server\share\inbox`, `D:\in`) in job files read on another system.
//!
//! File-system events are only hints (a rescan every `poll` is the truth), and on a share
//! they are worse than useless: changes made on the server or by other clients raise none
//! (Linux CIFS/NFS), or they arrive through a change-notify request that the server may
//! drop or overflow (SMB on Windows). A source folder on a UNC path, or on Windows on a
//! mapped network drive, therefore defaults to `watch = "poll"`; `watch = "auto"` written
//! in the job asks for events all the same. Linux mounts are not detected: their events
//! cover local writes, and `watch = "poll"` is the documented setting for them.

use std::path::Path;

use super::Watch;

/// Whether `s` is written as a Windows UNC path: `\\server\share...`, or its verbatim
/// form `\\?\UNC\server\share...`. Judged on the text, so the same on every system.
pub fn is_unc(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix(r"\\?\") {
        return rest.len() > 4 && rest[..4].eq_ignore_ascii_case(r"UNC\");
    }
    let Some(rest) = s.strip_prefix(r"\\") else {
        return false;
    };
    // `\\.\` is a device path, `\\?\C:\` a verbatim drive path: neither is a share.
    let mut parts = rest.split('\\');
    let server = parts.next().unwrap_or_default();
    let share = parts.next().unwrap_or_default();
    !server.is_empty() && server != "." && server != "?" && !share.is_empty()
}

/// Whether `s` is written as a Windows drive path, `C:\...` or `C:/...`.
pub fn is_drive_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// On a system other than Windows, why a folder written as a Windows path cannot be used
/// (it would be a folder of that odd name below the deployment). `None` on Windows, and
/// for every other path.
pub fn foreign_path(s: &str) -> Option<String> {
    if cfg!(windows) {
        return None;
    }
    if is_unc(s) {
        Some(format!(
            "{s:?} is a Windows network path (UNC), which only ferry on Windows can open; here, mount the share (e.g. `mount -t cifs //server/share /mnt/share`) and give the folder below the mount point, with `watch = \"poll\"`"
        ))
    } else if is_drive_path(s) {
        Some(format!(
            "{s:?} is a Windows drive path, which only ferry on Windows can open; give a path of this system"
        ))
    } else {
        None
    }
}

/// Whether `folder` is on a network share: a UNC path, or on Windows a drive that is a
/// network drive (a mapped drive letter; a service sees the drives mapped for its own
/// account only, so UNC paths are the ones to use there).
pub fn is_network(folder: &Path) -> bool {
    is_unc(&folder.to_string_lossy()) || remote_drive(folder)
}

/// How a source folder is watched when its job does not say: by polling on a share, by
/// events (plus rescans) elsewhere.
pub fn default_watch(written: Option<Watch>, folder: &Path) -> Watch {
    match written {
        Some(w) => w,
        None if is_network(folder) => Watch::Poll,
        None => Watch::Auto,
    }
}

#[cfg(windows)]
fn remote_drive(folder: &Path) -> bool {
    use std::os::windows::ffi::OsStrExt;
    use std::path::{Component, Prefix};
    let Some(Component::Prefix(p)) = folder.components().next() else {
        return false;
    };
    let letter = match p.kind() {
        Prefix::Disk(l) | Prefix::VerbatimDisk(l) => l,
        _ => return false,
    };
    let root: Vec<u16> = std::ffi::OsStr::new(&format!("{}:\\", letter as char))
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    // SAFETY: `root` is a NUL-terminated UTF-16 string that outlives the call.
    let kind = unsafe { windows_sys::Win32::Storage::FileSystem::GetDriveTypeW(root.as_ptr()) };
    // DRIVE_REMOTE (winbase.h), a network drive.
    const DRIVE_REMOTE: u32 = 4;
    kind == DRIVE_REMOTE
}

#[cfg(not(windows))]
fn remote_drive(_folder: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unc_paths_are_told_from_other_paths() {
        let cases = [
            (r"\\server\share\inbox", true),
            (r"\\server\share", true),
            (r"\\fs01.corp.example\erp$\out\invoices", true),
            (r"\\?\UNC\server\share\inbox", true),
            (r"\\server", false),
            (r"\\server\", false),
            (r"\\.\pipe\x", false),
            (r"\\?\C:\data", false),
            (r"C:\data", false),
            ("/mnt/share/inbox", false),
            ("//server/share", false),
            ("var/inbox", false),
        ];
        for (path, unc) in cases {
            assert_eq!(is_unc(path), unc, "{path}");
        }
        assert!(is_drive_path(r"D:\in"));
        assert!(is_drive_path("d:/in"));
        assert!(!is_drive_path("D:in"));
        assert!(!is_drive_path("var/in"));
    }

    #[test]
    fn share_folders_default_to_polling() {
        let share = Path::new(r"\\server\share\inbox");
        assert_eq!(default_watch(None, share), Watch::Poll);
        assert_eq!(default_watch(Some(Watch::Auto), share), Watch::Auto);
        assert_eq!(default_watch(None, Path::new("/srv/in")), Watch::Auto);
        assert_eq!(
            default_watch(Some(Watch::Poll), Path::new("/srv/in")),
            Watch::Poll
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn windows_paths_are_refused_elsewhere_with_a_hint() {
        let why = foreign_path(r"\\server\share\inbox").unwrap();
        assert!(why.contains("mount"), "{why}");
        assert!(foreign_path(r"C:\in").is_some());
        assert!(foreign_path("/srv/in").is_none());
        assert!(foreign_path("var/in").is_none());
    }

    #[cfg(windows)]
    #[test]
    fn unc_paths_stay_as_written() {
        let p = crate::job::absolute(Path::new(r"\\server\share\inbox\..\out"));
        assert_eq!(p, Path::new(r"\\server\share\out"));
        assert!(is_network(&p));
    }
}
