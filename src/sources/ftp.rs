//! FTP/FTPS as a source: the [`Fetcher`] of an FTP session ([`crate::protocol::ftp`]). The
//! staging runner ([`super::staging`]) decides readiness, downloads and disposes of
//! originals through it.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Fetcher;
use crate::job::remote::Disposal;
use crate::protocol::ftp::{FtpClient, is_unavailable, mtime_ns, split, transient};
use crate::protocol::{Listed, RResult, RemoteError};

impl Fetcher for FtpClient {
    fn list(&mut self, recursive: bool) -> RResult<Vec<Listed>> {
        let c = self.conn(false)?;
        let mut out = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            for f in c.list_dir(&dir)? {
                let key = if dir.is_empty() {
                    f.name().to_string()
                } else {
                    format!("{dir}/{}", f.name())
                };
                if f.is_directory() {
                    if recursive && !f.name().starts_with('.') {
                        dirs.push(key);
                    }
                } else if f.is_file() {
                    out.push(Listed {
                        key,
                        size: f.size() as u64,
                        mtime_ns: mtime_ns(&f),
                        etag: None,
                    });
                }
            }
        }
        Ok(out)
    }

    fn fetch(&mut self, item: &Listed, out: &mut std::fs::File, stop: &AtomicBool) -> RResult<u64> {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            buf = vec![0u8; 256 * 1024];
        }
        let c = self.conn(false)?;
        let path = c.full(&item.key);
        let mut stream =
            c.s.retr_as_stream(&path)
                .map_err(|e| transient(&format!("RETR {path}"), e))?;
        let mut n = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                drop(stream);
                self.conn = None;
                return Err(RemoteError::Transient("stopped during a download".into()));
            }
            let k = stream
                .read(&mut buf)
                .map_err(|e| transient(&format!("downloading {path}"), e))?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k])
                .map_err(|e| transient("writing the staging file", e))?;
            n += k as u64;
        }
        stream
            .finish()
            .map_err(|e| transient(&format!("RETR {path}"), e))?;
        self.buf = buf;
        Ok(n)
    }

    fn dispose(&mut self, key: &str, how: &Disposal) -> RResult<()> {
        match how {
            Disposal::Keep => Ok(()),
            Disposal::Delete => {
                let c = self.conn(false)?;
                let p = c.full(key);
                match c.s.rm(&p) {
                    Ok(()) => Ok(()),
                    Err(e) if is_unavailable(&e) && c.size(key)?.is_none() => Ok(()),
                    Err(e) => Err(transient(&format!("DELE {p}"), e)),
                }
            }
            Disposal::Move(to) => {
                let c = self.conn(false)?;
                let (dir, name) = split(key);
                let target_dir = if dir.is_empty() {
                    to.clone()
                } else {
                    format!("{to}/{dir}")
                };
                c.ensure_dir(&target_dir)?;
                let from = c.full(key);
                let mut target = c.full(&format!("{target_dir}/{name}"));
                if c.size(&format!("{target_dir}/{name}"))?.is_some() {
                    // Never overwrite an archived file: add the time.
                    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S%3f");
                    target = c.full(&format!("{target_dir}/{name}.{stamp}"));
                }
                match c.s.rename(&from, &target) {
                    Ok(()) => Ok(()),
                    Err(e) if is_unavailable(&e) && c.size(key)?.is_none() => Ok(()),
                    Err(e) => Err(transient(&format!("moving {from} to {target}"), e)),
                }
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.s.quit();
        }
    }
}
