//! WebDAV as an output (issue 17): the [`Deliverer`] of a WebDAV session
//! ([`crate::protocol::webdav`]). The outbox runner ([`super::outbox`]) sends each outbox
//! file through it, journals it and retries it, as for FTP.
//!
//! One delivery: the folder is made (`MKCOL`, each missing level), the file is `PUT` under
//! a hidden temporary name beside its final one (`.NAME.ferry-part`, FTP's), its size on
//! the server checked, then `MOVE`d to the final name: a reader of the folder sees the
//! whole file or nothing. `exists` is a check (`PROPFIND`) and `Overwrite: F` on the
//! `MOVE`, so a file that appears between the check and the move is not replaced either.

use std::io::Read;
use std::path::Path;

use super::{Delivered, Deliverer};
use crate::job::Exists;
use crate::protocol::webdav::{Dav, join, parent};
use crate::protocol::{RResult, RemoteError};

fn local(e: std::io::Error) -> RemoteError {
    RemoteError::Transient(format!("reading the outbox: {e}"))
}

/// The hidden temporary name of `name` in its folder.
pub fn temp_name(name: &str) -> String {
    let (dir, file) = match name.rsplit_once('/') {
        Some((d, f)) => (d, f),
        None => ("", name),
    };
    join(dir, &format!(".{file}.ferry-part"))
}

impl Dav {
    /// `PUT` to `tmp`, making the folder when the server says it is missing (409: someone
    /// removed it since it was made).
    fn upload(&mut self, local_path: &Path, tmp: &str, size: u64) -> RResult<()> {
        let open = || std::fs::File::open(local_path).map_err(local);
        match self.put_file(tmp, open()?, size) {
            Err(RemoteError::Permanent(m)) if m.contains("HTTP 409") => {
                self.forget_dirs();
                self.ensure_dir(parent(tmp))?;
                self.put_file(tmp, open()?, size).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    /// The name to move to under `exists` (`name`, or with `unique` the next free
    /// `name_N`), or `None` to skip. `Err` for `fail`.
    fn final_name(&mut self, name: &str, exists: Exists, n: &mut u32) -> RResult<Option<String>> {
        if exists == Exists::Overwrite
            || (*n == 0 && self.stat(&self.abs(name))?.is_none())
        {
            return Ok(Some(name.to_string()));
        }
        match exists {
            Exists::Skip => Ok(None),
            Exists::Unique => loop {
                *n += 1;
                let cand = crate::fsutil::numbered(Path::new(name), *n)
                    .to_string_lossy()
                    .replace('\\', "/");
                if self.stat(&self.abs(&cand))?.is_none() {
                    return Ok(Some(cand));
                }
            },
            _ => Err(exists_already(name)),
        }
    }
}

fn exists_already(name: &str) -> RemoteError {
    RemoteError::Permanent(format!(
        "{name} exists on the server already (exists = \"fail\")"
    ))
}

impl Deliverer for Dav {
    fn deliver(
        &mut self,
        local_path: &Path,
        name: &str,
        size: u64,
        exists: Exists,
        _done_file: Option<&str>,
    ) -> RResult<Delivered> {
        let abs = self.abs(name);
        self.ensure_dir(parent(&abs))?;
        let mut n = 0;
        let Some(mut fin) = self.final_name(name, exists, &mut n)? else {
            return Ok(Delivered::Skipped);
        };
        let tmp = self.abs(&temp_name(name));
        self.upload(local_path, &tmp, size)?;
        match self.stat(&tmp)? {
            Some(e) if e.size == size => {}
            got => {
                return Err(RemoteError::Transient(format!(
                    "the server has {:?} bytes of /{tmp} after the upload, expected {size}",
                    got.map(|e| e.size)
                )));
            }
        }
        // `Overwrite: F` unless replacing is wanted: a name taken since the check is
        // not replaced (412) but decided again.
        let overwrite = exists == Exists::Overwrite;
        loop {
            if self.move_to(&tmp, &self.abs(&fin), overwrite)? {
                return Ok(Delivered::Sent(fin));
            }
            match exists {
                Exists::Unique => {
                    fin = self
                        .final_name(name, exists, &mut n)?
                        .expect("`unique` always names one");
                }
                Exists::Skip => {
                    self.delete(&tmp)?;
                    return Ok(Delivered::Skipped);
                }
                _ => {
                    self.delete(&tmp)?;
                    return Err(exists_already(&fin));
                }
            }
        }
    }

    fn is_there(&mut self, name: &str, local_path: &Path, size: u64) -> RResult<bool> {
        let abs = self.abs(name);
        if self.stat(&abs)?.map(|e| e.size) != Some(size) {
            return Ok(false);
        }
        // Same size is not proof: compare the bytes (only after an interrupted delivery).
        let Some((_, mut remote)) = self.get(&abs)? else {
            return Ok(false);
        };
        let mut f = std::fs::File::open(local_path).map_err(local)?;
        let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let mut seen = 0u64;
        loop {
            let k = remote
                .read(&mut a)
                .map_err(|e| RemoteError::Transient(format!("GET /{abs}: {e}")))?;
            if k == 0 {
                return Ok(seen == size);
            }
            seen += k as u64;
            if seen > size || f.read_exact(&mut b[..k]).is_err() || a[..k] != b[..k] {
                return Ok(false);
            }
        }
    }

    fn warm_up(&mut self) {
        let abs = self.abs("");
        let _ = self.ensure_dir(&abs);
    }

    fn disconnect(&mut self) {
        Dav::disconnect(self);
    }
}
