//! FTP and explicit FTPS (AUTH TLS) sessions, with suppaftp's blocking client on a dedicated
//! thread; [`crate::sources::ftp`] and [`crate::outputs::ftp`] put them behind the fetcher and
//! deliverer interfaces.
//!
//! - One connection per fetcher / deliverer, kept open between files and polls (a new
//!   connection per file costs several round trips and a TLS handshake), reopened after any
//!   error.
//! - Binary transfers always (suppaftp's default ASCII type rewrites line endings).
//! - Listing with MLSD when the server announces MLST in FEAT (exact sizes and times),
//!   else LIST, parsed as Unix `ls -l` lines, then as Windows/IIS lines.
//! - The URL path is relative to the login folder, like curl's (`ftp://h//abs` for an
//!   absolute one).
//! - TLS: the Mozilla roots (webpki-roots) plus an optional extra CA file; verification can
//!   only be turned off explicitly, and then every start logs a warning.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use suppaftp::list::File as ListFile;
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

use super::{RResult, RemoteError};
use crate::job::ftp::FtpEndpoint;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A server that stops answering mid-transfer is given up on after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn transient(what: &str, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Transient(format!("{what}: {e}"))
}

/// Whether an error is the server saying "no such file" (550).
pub(crate) fn is_unavailable(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r) if r.status == Status::FileUnavailable)
}

pub(crate) struct Conn {
    pub(crate) s: RustlsFtpStream,
    /// The remote folder, absolute.
    base: String,
    mlsd: bool,
    /// Folders known to exist (created or seen) on this connection.
    dirs: HashSet<String>,
    /// Names in destination folders, listed once per connection and kept up to date by
    /// our own uploads: an existence check per file without a round trip. (A name another
    /// client adds meanwhile is caught by `exists` only at the next connection; RNTO onto
    /// it then replaces it, as `overwrite` would.)
    names: std::collections::HashMap<String, HashSet<String>>,
}

impl Conn {
    fn open(ep: &FtpEndpoint, create_base: bool) -> RResult<Conn> {
        let who = ep.display();
        let addrs: Vec<_> = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| transient(&format!("cannot resolve {}", ep.host), e))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            transient(
                &format!("cannot connect to {who}"),
                last.map_or("no address".to_string(), |e| e.to_string()),
            )
        })?;
        let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_nodelay(true);
        let mut s = RustlsFtpStream::connect_with_stream(tcp)
            .map_err(|e| transient(&format!("{who}: no FTP greeting"), e))?;
        if ep.secure {
            let cfg = super::tls::ftps_config(ep)?;
            s = s
                .into_secure(RustlsConnector::from(Arc::new(cfg)), &ep.host)
                .map_err(|e| {
                    RemoteError::Transient(format!(
                        "{who}: TLS refused (the server's certificate is not trusted for {}, or it has no AUTH TLS): {e}",
                        ep.host
                    ))
                })?;
        }
        if ep.passive {
            // Data connections with the same timeouts, and without Nagle's delay on the
            // last segment of each small file.
            s = s.passive_stream_builder(|addr| {
                let t = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                    .map_err(FtpError::ConnectionError)?;
                let _ = t.set_read_timeout(Some(IO_TIMEOUT));
                let _ = t.set_write_timeout(Some(IO_TIMEOUT));
                let _ = t.set_nodelay(true);
                Ok(t)
            });
        } else {
            s = s.active_mode(IO_TIMEOUT);
        }
        let password = match &ep.password {
            Some(p) => p.resolve().map_err(RemoteError::Transient)?,
            None if ep.user == "anonymous" => "ferry@".to_string(),
            None => String::new(),
        };
        s.login(ep.user.as_str(), password.as_str()).map_err(|e| {
            RemoteError::Transient(format!("{who}: login refused for user {}: {e}", ep.user))
        })?;
        s.transfer_type(FileType::Binary)
            .map_err(|e| transient(&format!("{who}: TYPE I"), e))?;
        let feats = s.feat().unwrap_or_default();
        let mlsd = feats.keys().any(|k| k.eq_ignore_ascii_case("MLST"));
        if feats.keys().any(|k| k.eq_ignore_ascii_case("UTF8")) {
            let _ = s.opts("UTF8", Some("ON"));
        }
        if !ep.path.is_empty() && s.cwd(&ep.path).is_err() {
            if !create_base {
                return Err(RemoteError::Transient(format!(
                    "{who}: the remote folder {:?} does not exist or cannot be entered",
                    ep.path
                )));
            }
            let home = s.pwd().map_err(|e| transient("PWD", e))?;
            mkdirs(&mut s, &home, &ep.path, &mut HashSet::new())?;
            s.cwd(&ep.path)
                .map_err(|e| transient(&format!("{who}: CWD {}", ep.path), e))?;
        }
        let base = s.pwd().map_err(|e| transient("PWD", e))?;
        Ok(Conn {
            s,
            base,
            mlsd,
            dirs: HashSet::new(),
            names: std::collections::HashMap::new(),
        })
    }

    pub(crate) fn full(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.base.clone()
        } else if rel.starts_with('/') {
            rel.to_string()
        } else if self.base.ends_with('/') {
            format!("{}{rel}", self.base)
        } else {
            format!("{}/{rel}", self.base)
        }
    }

    pub(crate) fn list_dir(&mut self, rel_dir: &str) -> RResult<Vec<ListFile>> {
        let path = self.full(rel_dir);
        let lines = if self.mlsd {
            self.s.mlsd(Some(&path))
        } else {
            // LIST's argument is taken as `ls` options by some servers: change folder instead.
            self.s
                .cwd(&path)
                .and_then(|_| self.s.list(None))
                .and_then(|l| self.s.cwd(&self.base).map(|_| l))
        }
        .map_err(|e| transient(&format!("listing {path}"), e))?;
        let mut out = Vec::new();
        for line in lines {
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() || line.starts_with("total ") {
                continue;
            }
            let parsed = if self.mlsd {
                suppaftp::list::ListParser::parse_mlsd(line).ok()
            } else {
                parse_list_line(line)
            };
            match parsed {
                Some(f) if f.name() != "." && f.name() != ".." => out.push(f),
                Some(_) => {}
                None => tracing::debug!(line, "Unparsed listing line."),
            }
        }
        Ok(out)
    }

    pub(crate) fn size(&mut self, rel: &str) -> RResult<Option<u64>> {
        let p = self.full(rel);
        match self.s.size(&p) {
            Ok(n) => Ok(Some(n as u64)),
            Err(e) if is_unavailable(&e) => Ok(None),
            Err(e) => Err(transient(&format!("SIZE {p}"), e)),
        }
    }

    /// Whether `rel` exists, from the cached listing of its folder.
    pub(crate) fn exists_cached(&mut self, rel: &str) -> RResult<bool> {
        let (dir, name) = split(rel);
        if !self.names.contains_key(dir) {
            let listed: HashSet<String> = self
                .list_dir(dir)?
                .into_iter()
                .map(|f| f.name().to_string())
                .collect();
            self.names.insert(dir.to_string(), listed);
        }
        Ok(self.names[dir].contains(name))
    }

    pub(crate) fn note_created(&mut self, rel: &str) {
        let (dir, name) = split(rel);
        if let Some(set) = self.names.get_mut(dir) {
            set.insert(name.to_string());
        }
    }

    pub(crate) fn ensure_dir(&mut self, rel_dir: &str) -> RResult<()> {
        if rel_dir.is_empty() || self.dirs.contains(rel_dir) {
            return Ok(());
        }
        let base = self.base.clone();
        mkdirs(&mut self.s, &base, rel_dir, &mut self.dirs)
    }
}

/// Creates `rel` (and its parents) below `base`; a folder that exists is fine.
fn mkdirs(
    s: &mut RustlsFtpStream,
    base: &str,
    rel: &str,
    made: &mut HashSet<String>,
) -> RResult<()> {
    let mut cur = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(comp);
        if made.contains(&cur) {
            continue;
        }
        let full = if base.ends_with('/') {
            format!("{base}{cur}")
        } else {
            format!("{base}/{cur}")
        };
        if let Err(e) = s.mkdir(&full) {
            // 550 "exists" (or no permission): find out by entering it.
            let ok = s.cwd(&full).is_ok() && s.cwd(base).is_ok();
            if !ok {
                return Err(transient(
                    &format!("cannot create the remote folder {full}"),
                    e,
                ));
            }
        }
        made.insert(cur.clone());
    }
    Ok(())
}

/// A LIST line: Unix `ls -l` style, else Windows/IIS (`MM-DD-YY  HH:MMPM  <DIR>|size name`).
pub fn parse_list_line(line: &str) -> Option<ListFile> {
    suppaftp::list::ListParser::parse_posix(line)
        .or_else(|_| suppaftp::list::ListParser::parse_dos(line))
        .ok()
}

pub(crate) fn mtime_ns(f: &ListFile) -> i64 {
    f.modified()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// An FTP client for one fetcher or deliverer.
pub struct FtpClient {
    ep: FtpEndpoint,
    pub(crate) conn: Option<Conn>,
    /// The download buffer, kept between files (zeroing 256 KiB for each small file
    /// showed in the profile).
    pub(crate) buf: Vec<u8>,
}

impl FtpClient {
    pub fn new(ep: FtpEndpoint) -> FtpClient {
        FtpClient {
            ep,
            conn: None,
            buf: Vec::new(),
        }
    }

    pub(crate) fn conn(&mut self, create_base: bool) -> RResult<&mut Conn> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.ep, create_base)?);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }
}

/// `sendfile(2)` from the file to the socket until the end of the file (no copy through
/// user space). `None` when the kernel cannot do it for these two (nothing was sent):
/// then the caller copies.
#[cfg(target_os = "linux")]
fn sendfile_all(f: &std::fs::File, sock: &std::net::TcpStream) -> std::io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let mut off: libc::off_t = 0;
    loop {
        // SAFETY: both descriptors are open for the duration of the call; `off` is ours.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), f.as_raw_fd(), &mut off, 1 << 30) };
        if n > 0 {
            continue;
        }
        if n == 0 {
            return Ok(Some(off as u64));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) if off == 0 => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Copies the outbox file into the data connection: on plain FTP with `sendfile` (no copy
/// through user space; `std::io::copy` did 8 KiB reads and writes here), on FTPS (or when
/// `sendfile` cannot be used) through a 1 MiB buffer.
pub(crate) fn send_file<T: suppaftp::TlsStream>(
    f: &mut std::fs::File,
    stream: &mut suppaftp::TransferStream<T>,
) -> std::io::Result<u64> {
    #[cfg(target_os = "linux")]
    if let suppaftp::DataStream::Tcp(tcp) = stream.get_mut()
        && let Some(n) = sendfile_all(f, tcp)?
    {
        return Ok(n);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..k])?;
        n += k as u64;
    }
}

pub(crate) fn split(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_unix_and_windows() {
        let f =
            parse_list_line("-rw-r--r--    1 1001     1001         1234 Nov 23 15:12 a b ü.csv")
                .unwrap();
        assert_eq!((f.name(), f.size(), f.is_file()), ("a b ü.csv", 1234, true));
        let d =
            parse_list_line("drwxr-xr-x    2 0        0            4096 Jan 01  2024 sub").unwrap();
        assert!(d.is_directory());
        let w = parse_list_line("11-23-26  03:12PM                 2048 order 1.csv").unwrap();
        assert_eq!((w.name(), w.size()), ("order 1.csv", 2048));
        let wd = parse_list_line("11-23-26  03:12PM       <DIR>          archive").unwrap();
        assert!(wd.is_directory());
    }
}
