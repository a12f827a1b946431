//! Job files are read by type first: a `*.toml` entry that is a FIFO, a device, a socket,
//! a folder or a dangling symlink is reported, never opened in a way that could block.

use std::path::Path;

/// Reads a job file without ever blocking: a FIFO is opened non-blocking and refused, like
/// a device, by the type of what was opened.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read the job file: {e}");
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    let mut f = o.open(path).map_err(cannot)?;
    let kind = f.metadata().map_err(cannot)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind, path));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}

/// Why a path named like a job file is not one, if it is not: it must be a regular file or
/// a symlink to one. Looks at the types only (never opens it: a FIFO would block).
pub(super) fn not_a_job_file(path: &Path) -> Option<String> {
    let link = std::fs::symlink_metadata(path)
        .ok()
        .is_some_and(|m| m.file_type().is_symlink());
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(m) => Some(not_regular(m.file_type(), path)),
        Err(e) if link => Some(format!(
            "a symlink to {} that cannot be followed ({e}); the job file is skipped",
            std::fs::read_link(path).unwrap_or_default().display()
        )),
        Err(e) => Some(format!("cannot read the job file: {e}")),
    }
}

fn not_regular(kind: std::fs::FileType, path: &Path) -> String {
    let what = kind_name(kind);
    let via = match std::fs::read_link(path) {
        Ok(target) => format!("a symlink to {} which is ", target.display()),
        Err(_) => String::new(),
    };
    format!(
        "this is {via}{what}, not a regular file; the job file is skipped (a job file must be a regular file or a symlink to one)"
    )
}

/// What a file that is not a regular file is, in words.
#[cfg(unix)]
fn kind_name(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a folder"
    } else {
        "an unknown kind of file"
    }
}

/// What a file that is not a regular file is, in words (Windows knows folders, and
/// everything else here is a device or a pipe).
#[cfg(not(unix))]
fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else {
        "a device, a pipe or an unknown kind of file"
    }
}
