//! Folder outputs: atomic delivery into a local folder or mounted share.
//!
//! An output is written under a hidden temporary name in its target folder
//! (`.ferry-out-<file id>-<output>.tmp`, so it is on the same file system), fsynced, and only
//! renamed to its final name once the journal holds the plan. Readers of the folder never
//! see a partial file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::hashing::Hasher;

/// The temporary name of output `idx` of file `id`, beside its final path.
pub fn temp_path(final_path: &Path, id: i64, idx: u32) -> PathBuf {
    final_path.with_file_name(format!(".ferry-out-{id}-{idx}.tmp"))
}

/// The write buffer of a temporary output.
const BUF: usize = 256 * 1024;
/// Written bytes after which their writeback to the disk is started.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A temporary output being written.
pub struct TempOutput {
    pub temp: PathBuf,
    file: File,
    /// Bytes not yet written to `file`. A full buffer is written, then handed whole to the
    /// hasher (to its thread, for big outputs) and a recycled one comes back: each byte is
    /// copied once on its way out, not into a file buffer and a hashing buffer both.
    buf: Vec<u8>,
    /// `None` while [`tee_copy`] writes the source's bytes, whose hash it computes once.
    hasher: Option<Hasher>,
    /// Set by [`tee_copy`]: the content is the source's, with this sha256.
    copy_of: Option<String>,
    size: u64,
    /// Bytes written to `file`, and up to where the kernel was asked to start writing them
    /// to the disk.
    on_file: u64,
    writeback_from: u64,
}

impl TempOutput {
    pub fn create(temp: &Path) -> io::Result<TempOutput> {
        if let Some(dir) = temp.parent() {
            fsutil::create_dir_all_durable(dir)?;
        }
        let file = File::create(temp)?;
        Ok(TempOutput {
            temp: temp.to_path_buf(),
            file,
            buf: Vec::with_capacity(BUF),
            hasher: Some(Hasher::new()),
            copy_of: None,
            size: 0,
            on_file: 0,
            writeback_from: 0,
        })
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > self.buf.capacity() {
            self.flush_buf()?;
        }
        if data.len() >= self.buf.capacity() {
            // Too big to buffer: straight to the file, hashed by copy.
            self.write_direct(data)?;
            if let Some(h) = &mut self.hasher {
                h.update(data);
            }
        } else {
            self.buf.extend_from_slice(data);
        }
        self.size += data.len() as u64;
        Ok(())
    }

    fn write_direct(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.wrote(data.len());
        Ok(())
    }

    /// Counts bytes written to the file; every [`WRITEBACK_EVERY`] bytes, asks the kernel to
    /// start writing them to the disk (without waiting), so that the final fsync of a big
    /// output finds little left to write instead of the whole file.
    fn wrote(&mut self, n: usize) {
        self.on_file += n as u64;
        let pending = self.on_file - self.writeback_from;
        if pending >= WRITEBACK_EVERY {
            #[cfg(target_os = "linux")]
            {
                use std::os::fd::AsRawFd;
                // A hint only: the fsync in `finish` is what makes the content durable, and
                // reports any error.
                // SAFETY: sync_file_range(2) on our own open descriptor, with plain
                // integers; no memory is passed.
                let _ = unsafe {
                    libc::sync_file_range(
                        self.file.as_raw_fd(),
                        self.writeback_from as libc::off64_t,
                        pending as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
            }
            self.writeback_from = self.on_file;
        }
    }

    /// Writes the buffered bytes, then hands them to the hasher.
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.wrote(self.buf.len());
        match &mut self.hasher {
            Some(h) => {
                let full = std::mem::take(&mut self.buf);
                self.buf = h.update_owned(full);
                if self.buf.capacity() < BUF {
                    self.buf.reserve(BUF);
                }
            }
            None => self.buf.clear(),
        }
        Ok(())
    }

    /// fsyncs the content; returns its sha256 and size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        self.flush_buf()?;
        let file = self.file;
        file.sync_all()?;
        let hash = match (self.hasher, self.copy_of) {
            (_, Some(hash)) => hash,
            (Some(h), None) => {
                h.finish()
                    .ok_or_else(|| io::Error::other("hashing failed"))?
                    .0
            }
            (None, None) => return Err(io::Error::other("an output copy was not finished")),
        };
        Ok((hash, self.size))
    }
}

impl Write for TempOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

/// Streams `src` into every output at once, hashing the source on the way (once: the
/// outputs are the same bytes). Returns the source's sha256 and the number of bytes read.
pub fn tee_copy(src: &mut File, outs: &mut [TempOutput]) -> io::Result<(String, u64)> {
    let mut hasher = Hasher::new();
    for o in outs.iter_mut() {
        if o.size == 0 {
            o.hasher = None;
        }
    }
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        for o in outs.iter_mut() {
            o.write_all(&buf[..n])?;
        }
    }
    let hash = hasher
        .finish()
        .ok_or_else(|| io::Error::other("hashing failed"))?;
    for o in outs.iter_mut() {
        if o.hasher.is_none() {
            o.copy_of = Some(hash.0.clone());
        }
    }
    Ok(hash)
}

/// Copies `from` to the new file `to` durably: a temporary name beside `to`, fsync, a
/// rename that never replaces, the folder fsynced.
pub fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        fsutil::create_dir_all_durable(dir)?;
    }
    let tmp = to.with_file_name(fsutil::temp_name());
    let result = (|| {
        let mut src = fsutil::open_nofollow(from)?;
        let mut out = TempOutput::create(&tmp)?;
        io::copy(&mut src, &mut out)?;
        out.finish()?;
        fsutil::rename_noreplace(&tmp, to)?;
        sync_parent(to)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Moves `from` to `to` without replacing anything, across file systems too (a durable
/// copy, then `from` is removed).
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        fsutil::create_dir_all_durable(dir)?;
    }
    match fsutil::rename_noreplace(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_new(from, to)?;
            std::fs::remove_file(from)?;
            sync_parent(from)
        }
        Err(e) => Err(e),
        Ok(()) => {
            sync_parent(to)?;
            sync_parent(from)
        }
    }
}

pub fn sync_parent(p: &Path) -> io::Result<()> {
    match p.parent() {
        Some(d) => fsutil::sync_dir(d),
        None => Ok(()),
    }
}

/// Moves `from` into `dir`-derived `to`, taking the first free numbered name
/// (`a.csv`, `a_1.csv`, ...) when `to` exists. Returns where it went.
pub fn move_unique(from: &Path, to: &Path) -> io::Result<PathBuf> {
    for n in 0..10_000 {
        let candidate = fsutil::numbered(to, n);
        match move_file(from, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {} after 10,000 tries", to.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn temp_output_writes_and_hashes_every_byte_in_order() {
        let dir = std::env::temp_dir().join(format!("ferry-tempout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Small writes, writes that fill the buffer exactly, writes bigger than it; past
        // the size at which hashing moves to its own thread.
        let sizes = [
            1usize,
            7,
            BUF - 8,
            BUF,
            3 * BUF + 5,
            100,
            BUF + 1,
            12345,
            2 << 20,
        ];
        let mut want = Vec::new();
        let path = dir.join("out.tmp");
        let mut out = TempOutput::create(&path).unwrap();
        for (n, size) in sizes.iter().enumerate() {
            let piece: Vec<u8> = (0..*size).map(|i| (i * 7 + n) as u8).collect();
            out.write_all(&piece).unwrap();
            want.extend_from_slice(&piece);
        }
        let (hash, size) = out.finish().unwrap();
        assert_eq!(size, want.len() as u64);
        assert_eq!(hash, hex::encode(Sha256::digest(&want)));
        assert_eq!(std::fs::read(&path).unwrap(), want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
