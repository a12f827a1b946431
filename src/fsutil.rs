//! File-system primitives the delivery guarantees rest on: renames that never replace,
//! directory fsyncs that are shared between concurrent callers, and names that can never
//! leave their folder.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing `to`.
///
/// On Linux this is `renameat2(RENAME_NOREPLACE)`, atomic on local file systems. Where the
/// file system does not support it (some FUSE and network mounts answer EINVAL), a hard link
/// plus unlink gives the same no-replace guarantee; where links are refused too, a check
/// before a plain rename is the last resort.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let f = CString::new(from.as_os_str().as_bytes())?;
        let t = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => {}
            _ => return Err(err),
        }
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if to.symlink_metadata().is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", to.display()),
                ));
            }
            std::fs::rename(from, to)
        }
    }
}

/// fsyncs a directory, so that renames and removals in it survive a power cut.
///
/// Concurrent callers for the same directory share one fsync: a caller is done as soon as an
/// fsync that *started after its call* has finished. With many files committed at once, this
/// turns hundreds of directory fsyncs into a handful.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    static DIRS: OnceLock<Mutex<HashMap<PathBuf, Arc<DirSync>>>> = OnceLock::new();
    let entry = {
        let mut map = DIRS
            .get_or_init(Default::default)
            .lock()
            .expect("dir sync map");
        if map.len() > 4096 {
            map.retain(|_, v| Arc::strong_count(v) > 1);
        }
        map.entry(dir.to_path_buf()).or_default().clone()
    };
    entry.sync(dir)
}

#[derive(Default)]
struct DirSync {
    requested: AtomicU64,
    /// The highest request number covered by a finished fsync.
    done: Mutex<u64>,
}

impl DirSync {
    fn sync(&self, dir: &Path) -> io::Result<()> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.done.lock().expect("dir sync lock");
        if *done >= mine {
            return Ok(());
        }
        let covers = self.requested.load(Ordering::SeqCst);
        fsync_dir_now(dir)?;
        *done = covers;
        Ok(())
    }
}

fn fsync_dir_now(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory for flushing; NTFS journals metadata itself.
        let _ = dir;
        Ok(())
    }
}

/// Creates `dir` and its parents, then makes the new entries durable.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Joins a rendered, `/`-separated relative name onto `base`, refusing anything that could
/// leave `base`: absolute paths, `..`, drive prefixes, empty components. A `\` is no
/// separator: it becomes `_` (a source name `a\b.txt` is `a_b.txt`, never `a/b.txt`).
/// On Windows every name is made portable, `portable` or not: there a name Windows
/// refuses is no name at all (`a:b` would write the stream `b` of file `a`, `NUL` the
/// device).
pub fn safe_join(base: &Path, rel: &str, portable: bool) -> Result<PathBuf, String> {
    let portable = portable || cfg!(windows);
    if rel.is_empty() {
        return Err("the name is empty".into());
    }
    let rel_norm = rel.replace('\\', "_");
    if rel_norm.starts_with('/') {
        return Err(format!(
            "{rel:?} is an absolute path; names must stay inside their folder"
        ));
    }
    let mut out = base.to_path_buf();
    for comp in rel_norm.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp == ".." {
            return Err(format!(
                "{rel:?} contains `..`; names must stay inside their folder"
            ));
        }
        let comp = if portable {
            portable_component(comp)
        } else {
            comp.to_string()
        };
        let comp = fit_component(&comp);
        let p = Path::new(&comp);
        if p.components().count() != 1
            || !matches!(p.components().next(), Some(Component::Normal(_)))
        {
            return Err(format!(
                "{rel:?} has a component {comp:?} that is not a plain name"
            ));
        }
        out.push(comp);
    }
    if out == base {
        return Err(format!("{rel:?} names no file"));
    }
    Ok(out)
}

/// The device names Windows reserves in every folder, with any extension (Microsoft,
/// "Naming Files, Paths, and Namespaces"): `COM0`/`LPT0` and the superscript digits too,
/// and the console's `CONIN$`/`CONOUT$`.
const WINDOWS_RESERVED: &[&str] = &[
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "COM0",
    "COM1",
    "COM2",
    "COM3",
    "COM4",
    "COM5",
    "COM6",
    "COM7",
    "COM8",
    "COM9",
    "COM\u{b9}",
    "COM\u{b2}",
    "COM\u{b3}",
    "LPT0",
    "LPT1",
    "LPT2",
    "LPT3",
    "LPT4",
    "LPT5",
    "LPT6",
    "LPT7",
    "LPT8",
    "LPT9",
    "LPT\u{b9}",
    "LPT\u{b2}",
    "LPT\u{b3}",
    "CONIN$",
    "CONOUT$",
];

/// Whether `stem` (a name without its extension) is a device name Windows reserves.
pub fn is_reserved_name(stem: &str) -> bool {
    WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem.trim_end()))
}

/// Makes one path component safe on Windows shares too: characters Windows refuses become
/// `_`, trailing dots and spaces go, and reserved device names (`CON`, `NUL.txt`, `com1.csv`)
/// get a `_` after their stem.
pub fn portable_component(comp: &str) -> String {
    let mut s: String = comp
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' | '\\' => '_',
            c if (c as u32) < 0x20 || c == '\u{7f}' => '_',
            c => c,
        })
        .collect();
    while s.ends_with('.') || s.ends_with(' ') {
        s.pop();
    }
    if s.is_empty() {
        return "_".into();
    }
    let stem_end = s.find('.').unwrap_or(s.len());
    if WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(s[..stem_end].trim_end()))
    {
        s.insert(stem_end, '_');
    }
    s
}

/// The longest name most file systems take is 255 bytes: a longer one is cut in its stem, on
/// a character boundary, keeping the extension.
pub fn fit_component(comp: &str) -> String {
    const MAX: usize = 255;
    if comp.len() <= MAX {
        return comp.to_string();
    }
    let (stem, ext) = split_name(comp);
    let ext_len = if ext.is_empty() { 0 } else { ext.len() + 1 };
    let ext_len = ext_len.min(32);
    let mut keep = MAX.saturating_sub(ext_len);
    while !stem.is_char_boundary(keep.min(stem.len())) {
        keep -= 1;
    }
    let mut out = stem[..keep.min(stem.len())].to_string();
    if ext_len > 0 {
        let mut e = ext;
        let mut cut = (ext_len - 1).min(e.len());
        while !e.is_char_boundary(cut) {
            cut -= 1;
        }
        e = &e[..cut];
        out.push('.');
        out.push_str(e);
    }
    out
}

/// The `n`th alternative of a taken name: `a.csv`, `a_1.csv`, `a_2.csv`, ...
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = split_name(&name);
    let new = if ext.is_empty() {
        format!("{stem}_{n}")
    } else {
        format!("{stem}_{n}.{ext}")
    };
    path.with_file_name(fit_component(&new))
}

/// Whether the file systems ferry runs on here ignore case in names (NTFS and SMB shares
/// on Windows, APFS on macOS): then `A.csv` and `a.csv` are one name.
pub const CASE_INSENSITIVE: bool = cfg!(any(windows, target_os = "macos"));

/// The key under which two paths name the same file here: the path itself where names
/// are case-sensitive (Linux), else [`fold_case`] of it.
pub fn name_key(p: &Path) -> PathBuf {
    if CASE_INSENSITIVE {
        PathBuf::from(fold_case(&p.to_string_lossy()))
    } else {
        p.to_path_buf()
    }
}

/// A name as a case-insensitive file system compares it: every character in upper case
/// where that is one character (NTFS's upcase table maps characters one to one, so `ß`
/// stays `ß`).
pub fn fold_case(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Whether a path exists (as anything, without following a final symlink).
pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsynced, renamed without
/// replacing anything, the folder fsynced.
pub fn write_new_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(temp_name());
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        rename_noreplace(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How every [`temp_name`] begins.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

/// A hidden temporary file name unique within this process: `.ferry-tmp-<pid>-<n>.tmp`.
pub fn temp_name() -> String {
    format!(
        "{TEMP_PREFIX}{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The sha256 of a file's content, hex. A symlink is refused, never read through.
pub fn hash_file(p: &Path) -> io::Result<String> {
    hash_reader(&mut open_nofollow(p)?).map(|(h, _)| h)
}

/// Opens `p` for reading, refusing a symlink as its last component (`O_NOFOLLOW`): for
/// originals named by path (crash recovery), whose folder handle is not held.
pub fn open_nofollow(p: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(p)
}

/// The hex sha256 of what `r` gives, and its size, read on the calling thread.
pub fn hash_reader(r: &mut impl io::Read) -> io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hex::encode(h.finalize()), size))
}

/// `NAME.error.txt` beside `p`; a name too long for that is shortened, keeping the ending.
pub fn report_path(p: &Path) -> PathBuf {
    const SUFFIX: &str = ".error.txt";
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cut = name.len().min(255 - SUFFIX.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    p.with_file_name(format!("{}{SUFFIX}", &name[..cut]))
}

/// Splits a file name into stem and extension at the last dot; a leading dot (`.profile`)
/// is part of the stem.
pub fn split_name(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(0) | None => (name, ""),
        Some(i) => (&name[..i], &name[i + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let base = Path::new("/out");
        assert_eq!(
            safe_join(base, "a/b.csv", false).unwrap(),
            Path::new("/out/a/b.csv")
        );
        assert!(safe_join(base, "../x", false).is_err());
        assert!(safe_join(base, "a/../../x", false).is_err());
        assert!(safe_join(base, "/etc/passwd", false).is_err());
        assert_eq!(
            safe_join(base, "..\\x", false).unwrap(),
            Path::new("/out/.._x")
        );
        assert_eq!(
            safe_join(base, "\\etc\\cron.d\\x", false).unwrap(),
            Path::new("/out/_etc_cron.d_x")
        );
        assert!(safe_join(base, "", false).is_err());
        assert!(safe_join(base, "./", false).is_err());
        assert_eq!(safe_join(base, "./a", false).unwrap(), Path::new("/out/a"));
    }

    #[test]
    fn portable_names() {
        assert_eq!(portable_component("CON"), "CON_");
        assert_eq!(portable_component("nul.txt"), "nul_.txt");
        assert_eq!(portable_component("com1.tar.gz"), "com1_.tar.gz");
        assert_eq!(portable_component("a:b?.csv"), "a_b_.csv");
        assert_eq!(portable_component("trailing. "), "trailing");
        assert_eq!(portable_component("CONSOLE.txt"), "CONSOLE.txt");
        assert_eq!(portable_component("..."), "_");
    }

    /// Issue 13: every name Windows refuses is made one it takes, on every system (outputs
    /// often go to SMB shares read by Windows programs).
    #[test]
    fn windows_file_name_rules_issue_13() {
        let cases = [
            // Reserved device names, with or without extensions, in any case.
            ("CON", "CON_"),
            ("prn.csv", "prn_.csv"),
            ("Aux.tar.gz", "Aux_.tar.gz"),
            ("NUL.txt", "NUL_.txt"),
            ("nul .txt", "nul _.txt"),
            ("COM0.csv", "COM0_.csv"),
            ("com9", "com9_"),
            ("LPT1.xml", "LPT1_.xml"),
            ("lpt\u{b9}.txt", "lpt\u{b9}_.txt"),
            ("CONOUT$", "CONOUT$_"),
            ("COM10.csv", "COM10.csv"),
            ("NULL.txt", "NULL.txt"),
            ("CONFIG.SYS", "CONFIG.SYS"),
            // Trailing dots and spaces go; leading ones stay.
            ("report. . ", "report"),
            ("  x.csv", "  x.csv"),
            // Characters Windows refuses, and control characters.
            ("a<b>c:d\"e|f?g*h.csv", "a_b_c_d_e_f_g_h.csv"),
            ("a\\b", "a_b"),
            ("tab\there\u{1}\u{7f}.csv", "tab_here__.csv"),
            // What Windows takes stays as it is.
            ("Größe € (1).csv", "Größe € (1).csv"),
            ("INV-2026-1001.xml", "INV-2026-1001.xml"),
        ];
        for (name, want) in cases {
            assert_eq!(portable_component(name), want, "{name:?}");
        }
        assert!(is_reserved_name("lpt3"));
        assert!(is_reserved_name("COM\u{b2}"));
        assert!(!is_reserved_name("COM"));
    }

    #[test]
    fn portable_joins_keep_names_inside_their_folder() {
        let base = Path::new("/out");
        assert_eq!(
            safe_join(base, "2026/NUL/a:b.csv", true).unwrap(),
            Path::new("/out/2026/NUL_/a_b.csv")
        );
        assert_eq!(
            safe_join(base, "x. /y .csv", true).unwrap(),
            Path::new("/out/x/y .csv")
        );
        assert!(safe_join(base, "C:/x", true).unwrap().starts_with(base));
        assert!(
            safe_join(base, "\\\\server\\share\\x", true)
                .unwrap()
                .starts_with(base)
        );
    }

    #[test]
    fn case_folding_follows_the_file_system() {
        assert_eq!(fold_case("Order-a.csv"), "ORDER-A.CSV");
        assert_eq!(fold_case("straße.csv"), "STRAßE.CSV");
        assert_eq!(fold_case("ÄÖü.txt"), "ÄÖÜ.TXT");
        let (a, b) = (Path::new("/o/A.csv"), Path::new("/o/a.csv"));
        assert_eq!(name_key(a) == name_key(b), CASE_INSENSITIVE);
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.csv", "é".repeat(200));
        let fit = fit_component(&long);
        assert!(fit.len() <= 255);
        assert!(fit.ends_with(".csv"));
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered(Path::new("/o/a.csv"), 2), Path::new("/o/a_2.csv"));
        assert_eq!(numbered(Path::new("/o/a"), 1), Path::new("/o/a_1"));
    }

    #[test]
    fn noreplace_refuses_to_replace() {
        let d = std::env::temp_dir().join(format!("ferry-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a"), "a").unwrap();
        std::fs::write(d.join("b"), "b").unwrap();
        let e = rename_noreplace(&d.join("a"), &d.join("b")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        rename_noreplace(&d.join("a"), &d.join("c")).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("c")).unwrap(), "a");
        sync_dir(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
