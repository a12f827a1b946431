//! WebDAV as a source (issue 17): the [`Fetcher`] of a WebDAV session
//! ([`crate::protocol::webdav`]). The staging runner ([`super::staging`]) decides readiness
//! (size, `getlastmodified` and `ETag` unchanged for `settle`), downloads into staging,
//! commits, and disposes of originals only once their staged copy is finished, exactly as
//! for FTP.
//!
//! The listing is `PROPFIND` with `Depth: 1`, folder by folder with `recursive` (servers
//! often refuse `Depth: infinity`). A name from a listing that is not one plain segment
//! (`/`, `\`, `..`) is never followed: a hostile server cannot make ferry write outside
//! staging. A download is compared with its listing: the `ETag` of the `GET` (when the
//! server sends one) and the byte count; a file that differs settles again.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Fetcher;
use crate::job::remote::Disposal;
use crate::protocol::webdav::{Dav, children, join, parent};
use crate::protocol::{Listed, RResult, RemoteError};

impl Fetcher for Dav {
    fn list(&mut self, recursive: bool) -> RResult<Vec<Listed>> {
        let mut out = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let abs = self.abs(&dir);
            let Some(entries) = self.propfind(&abs, 1)? else {
                if dir.is_empty() {
                    return Err(RemoteError::Transient(format!(
                        "the folder /{abs} does not exist on the server"
                    )));
                }
                continue;
            };
            let (kids, dropped) = children(&abs, entries);
            if dropped > 0 {
                tracing::warn!(folder = %abs, dropped, "The server listed names that are not plain file names (/, \\, ..); they are ignored.");
            }
            for (name, e) in kids {
                let key = join(&dir, &name);
                if e.is_dir {
                    if recursive && !name.starts_with('.') {
                        dirs.push(key);
                    }
                } else {
                    out.push(Listed {
                        key,
                        size: e.size,
                        mtime_ns: e.mtime_ns,
                        etag: e.etag,
                    });
                }
            }
        }
        Ok(out)
    }

    fn fetch(&mut self, item: &Listed, out: &mut std::fs::File, stop: &AtomicBool) -> RResult<u64> {
        let abs = self.abs(&item.key);
        let Some((etag, body)) = self.get(&abs)? else {
            // Gone since the listing: nothing of it was had (the count differs from the
            // listing's; an empty file cannot say so by its count).
            if item.size == 0 {
                return Err(RemoteError::Transient(format!("/{abs} is gone")));
            }
            return Ok(0);
        };
        if let (Some(got), Some(listed)) = (&etag, &item.etag)
            && got != listed
            && item.size > 0
        {
            // Rewritten since it settled: not the file that was listed. Nothing is read
            // (the byte count differs from the listing's, so it settles again).
            tracing::info!(remote_file = %item.key, "The remote file's ETag changed since the listing; it settles again.");
            self.disconnect();
            return Ok(0);
        }
        // One byte more than listed at most: a server that sends more is caught by the
        // count, without filling the disk.
        let mut body = body.take(item.size + 1);
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                self.disconnect();
                return Err(RemoteError::Transient("stopped during a download".into()));
            }
            let k = body
                .read(&mut buf)
                .map_err(|e| RemoteError::Transient(format!("GET /{abs}: {e}")))?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k])
                .map_err(|e| RemoteError::Transient(format!("writing the staging file: {e}")))?;
            n += k as u64;
        }
        if n > item.size {
            // The rest of the answer is not read: the connection cannot be reused.
            self.disconnect();
        }
        Ok(n)
    }

    fn dispose(&mut self, key: &str, how: &Disposal) -> RResult<()> {
        let abs = self.abs(key);
        match how {
            Disposal::Keep => Ok(()),
            Disposal::Delete => self.delete(&abs),
            Disposal::Move(to) => {
                // Relative to the source folder, or from the server's root with `/`.
                let target_dir = match to.strip_prefix('/') {
                    Some(root) => join(root.trim_matches('/'), parent(key)),
                    None => self.abs(&join(to, parent(key))),
                };
                self.ensure_dir(&target_dir)?;
                let name = key.rsplit('/').next().unwrap_or(key);
                let target = join(&target_dir, name);
                if self.stat(&abs)?.is_none() {
                    return Ok(());
                }
                if !self.move_to(&abs, &target, false)? {
                    // Never overwrite an archived file: add the time.
                    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S%3f");
                    let target = format!("{target}.{stamp}");
                    self.move_to(&abs, &target, false)?;
                }
                Ok(())
            }
        }
    }

    fn disconnect(&mut self) {
        Dav::disconnect(self);
    }
}
