//! FTP/FTPS as an output: the [`Deliverer`] of an FTP session ([`crate::protocol::ftp`]).
//! The outbox runner ([`super::outbox`]) sends each outbox file through it.

use std::io::Read;
use std::path::Path;

use super::{Delivered, Deliverer};
use crate::job::Exists;
use crate::protocol::ftp::{FtpClient, send_file, split, transient};
use crate::protocol::{RResult, RemoteError};

/// A refused transfer of one file: the server's reply says whether it may pass
/// ([`super::failure::of_ftp_reply`]: 4xx, 550 and 552 are retried; 553 and other 5xx
/// send the file to the error folder). Anything that is not a reply (connection, timeout)
/// may pass.
fn by_reply(what: &str, e: suppaftp::FtpError) -> RemoteError {
    match &e {
        suppaftp::FtpError::UnexpectedResponse(r)
            if !super::failure::of_ftp_reply(r.status.code()).is_transient() =>
        {
            RemoteError::Permanent(format!("{what}: {e}"))
        }
        _ => transient(what, e),
    }
}

impl Deliverer for FtpClient {
    fn deliver(
        &mut self,
        local: &Path,
        name: &str,
        size: u64,
        exists: Exists,
        done_file: Option<&str>,
    ) -> RResult<Delivered> {
        let c = self.conn(true)?;
        let (dir, file) = split(name);
        c.ensure_dir(dir)?;
        let mut final_rel = name.to_string();
        let existing = c.exists_cached(name)?;
        if existing {
            match exists {
                Exists::Fail => {
                    return Err(RemoteError::Permanent(format!(
                        "{name} exists on the server already (exists = \"fail\")"
                    )));
                }
                Exists::Skip => return Ok(Delivered::Skipped),
                Exists::Unique => {
                    let mut n = 1;
                    loop {
                        let cand = crate::fsutil::numbered(Path::new(name), n)
                            .to_string_lossy()
                            .into_owned();
                        if !c.exists_cached(&cand)? {
                            final_rel = cand;
                            break;
                        }
                        n += 1;
                    }
                }
                Exists::Overwrite => {}
            }
        }
        let tmp_rel = if dir.is_empty() {
            format!(".{file}.ferry-part")
        } else {
            format!("{dir}/.{file}.ferry-part")
        };
        let tmp = c.full(&tmp_rel);
        let mut f = std::fs::File::open(local).map_err(|e| transient("reading the outbox", e))?;
        let mut stream =
            c.s.put_with_stream(&tmp)
                .map_err(|e| by_reply(&format!("STOR {tmp}"), e))?;
        send_file(&mut f, &mut stream).map_err(|e| transient(&format!("uploading {tmp}"), e))?;
        stream
            .finish()
            .map_err(|e| transient(&format!("STOR {tmp}"), e))?;
        match c.size(&tmp_rel)? {
            Some(n) if n == size => {}
            got => {
                return Err(RemoteError::Transient(format!(
                    "the server has {got:?} bytes of {tmp} after the upload, expected {size}"
                )));
            }
        }
        let fin = c.full(&final_rel);
        if let Err(e) = c.s.rename(&tmp, &fin) {
            // Some servers refuse to rename onto an existing file.
            if exists == Exists::Overwrite && existing {
                let _ = c.s.rm(&fin);
                c.s.rename(&tmp, &fin)
                    .map_err(|e| by_reply(&format!("renaming {tmp} to {fin}"), e))?;
            } else {
                return Err(by_reply(&format!("renaming {tmp} to {fin}"), e));
            }
        }
        c.note_created(&final_rel);
        if let Some(done) = done_file {
            let p = c.full(done);
            c.s.put_file(&p, &mut std::io::empty())
                .map_err(|e| transient(&format!("writing the done-file {p}"), e))?;
            c.note_created(done);
        }
        Ok(Delivered::Sent(final_rel))
    }

    fn is_there(&mut self, name: &str, local: &Path, size: u64) -> RResult<bool> {
        let c = self.conn(true)?;
        if c.size(name)? != Some(size) {
            return Ok(false);
        }
        // Same size is not proof: compare the bytes (only after an interrupted delivery).
        let path = c.full(name);
        let mut remote =
            c.s.retr_as_stream(&path)
                .map_err(|e| transient(&format!("RETR {path}"), e))?;
        let mut f = std::fs::File::open(local).map_err(|e| transient("reading the outbox", e))?;
        let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        let mut same = true;
        loop {
            let k = remote
                .read(&mut a)
                .map_err(|e| transient(&format!("downloading {path}"), e))?;
            if k == 0 {
                break;
            }
            if f.read_exact(&mut b[..k]).is_err() || a[..k] != b[..k] {
                same = false;
                // Read the rest so the control connection stays in step.
                while remote.read(&mut a).map(|k| k > 0).unwrap_or(false) {}
                break;
            }
        }
        remote
            .finish()
            .map_err(|e| transient(&format!("RETR {path}"), e))?;
        Ok(same)
    }

    fn warm_up(&mut self) {
        let _ = self.conn(true);
    }

    fn disconnect(&mut self) {
        crate::sources::Fetcher::disconnect(self);
    }
}
