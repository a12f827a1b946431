//! FTP and explicit FTPS (AUTH TLS) for [`super::Fetcher`] and [`super::Deliverer`], with
//! suppaftp's blocking client on a dedicated thread.
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use suppaftp::list::File as ListFile;
use suppaftp::rustls;
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

use super::{Delivered, Deliverer, Disposal, Fetcher, Listed, RResult, RemoteError};
use crate::job::Exists;
use crate::secrets::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A server that stops answering mid-transfer is given up on after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpEndpoint {
    /// Explicit FTPS (`ftps://`): AUTH TLS on the control connection, PROT P for data.
    pub secure: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The remote folder, relative to the login folder; empty for the login folder.
    pub path: String,
    pub password: Option<Secret>,
    /// An extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
    /// Passive mode (the default); active mode when false.
    pub passive: bool,
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

impl FtpEndpoint {
    /// Parses `ftp://user@host:port/path` or `ftps://...`. A password in the URL is
    /// returned separately (a literal: `ferry check` warns).
    pub fn parse(url: &str) -> Result<(FtpEndpoint, Option<String>), String> {
        let (secure, rest) = if let Some(r) = url.strip_prefix("ftp://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ftps://") {
            (true, r)
        } else {
            return Err(format!(
                "expected a URL like \"ftp://user@host/folder\" or \"ftps://...\", found {:?}",
                crate::redact::url_for_message(url)
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (
                    percent_decode(u)?,
                    // The error must not quote the password.
                    Some(percent_decode(p).map_err(|_| {
                        "the password in the URL has a bad %-escape or is not UTF-8 once decoded"
                            .to_string()
                    })?),
                ),
                None => (percent_decode(u)?, None),
            },
            None => ("anonymous".to_string(), None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("expected a port number after `:`, found {p:?}"))?;
                (h, port)
            }
            _ => (hostport, 21),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!(
                "the URL {:?} has no host",
                crate::redact::url_for_message(url)
            ));
        }
        let path = percent_decode(path.trim_end_matches('/'))?;
        Ok((
            FtpEndpoint {
                secure,
                host: host.to_string(),
                port,
                user,
                path,
                password: None,
                ca_file: None,
                tls_verify: true,
                passive: true,
            },
            password,
        ))
    }

    /// The URL without any password, for logs and status.
    pub fn display(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            if self.secure { "ftps" } else { "ftp" },
            self.user,
            self.host,
            self.port,
            self.path
        )
    }
}

/// A certificate verifier that accepts anything (`tls_verify = false`). Signatures are still
/// checked, so the handshake itself stays sound; only the identity is not.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(ep: &FtpEndpoint) -> RResult<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteError::Permanent(format!("TLS set-up: {e}")))?;
    if !ep.tls_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &ep.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                RemoteError::Permanent(format!("cannot read the CA file {}: {e}", ca.display()))
            })?;
        if certs.is_empty() {
            return Err(RemoteError::Permanent(format!(
                "the CA file {} holds no PEM certificate",
                ca.display()
            )));
        }
        for c in certs {
            roots.add(c).map_err(|e| {
                RemoteError::Permanent(format!("the CA file {}: {e}", ca.display()))
            })?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn transient(what: &str, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Transient(format!("{what}: {e}"))
}

/// Whether an error is the server saying "no such file" (550).
fn is_unavailable(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r) if r.status == Status::FileUnavailable)
}

struct Conn {
    s: RustlsFtpStream,
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
            let cfg = tls_config(ep)?;
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

    fn full(&self, rel: &str) -> String {
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

    fn list_dir(&mut self, rel_dir: &str) -> RResult<Vec<ListFile>> {
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

    fn size(&mut self, rel: &str) -> RResult<Option<u64>> {
        let p = self.full(rel);
        match self.s.size(&p) {
            Ok(n) => Ok(Some(n as u64)),
            Err(e) if is_unavailable(&e) => Ok(None),
            Err(e) => Err(transient(&format!("SIZE {p}"), e)),
        }
    }

    /// Whether `rel` exists, from the cached listing of its folder.
    fn exists_cached(&mut self, rel: &str) -> RResult<bool> {
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

    fn note_created(&mut self, rel: &str) {
        let (dir, name) = split(rel);
        if let Some(set) = self.names.get_mut(dir) {
            set.insert(name.to_string());
        }
    }

    fn ensure_dir(&mut self, rel_dir: &str) -> RResult<()> {
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

fn mtime_ns(f: &ListFile) -> i64 {
    f.modified()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// An FTP client for one fetcher or deliverer.
pub struct FtpClient {
    ep: FtpEndpoint,
    conn: Option<Conn>,
    /// The download buffer, kept between files (zeroing 256 KiB for each small file
    /// showed in the profile).
    buf: Vec<u8>,
}

impl FtpClient {
    pub fn new(ep: FtpEndpoint) -> FtpClient {
        FtpClient {
            ep,
            conn: None,
            buf: Vec::new(),
        }
    }

    fn conn(&mut self, create_base: bool) -> RResult<&mut Conn> {
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
fn send_file<T: suppaftp::TlsStream>(
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

fn split(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    }
}

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
                .map_err(|e| transient(&format!("STOR {tmp}"), e))?;
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
                    .map_err(|e| transient(&format!("renaming {tmp} to {fin}"), e))?;
            } else {
                return Err(transient(&format!("renaming {tmp} to {fin}"), e));
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
        Fetcher::disconnect(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (e, pw) = FtpEndpoint::parse("ftp://orders@erp.example.test:2121/outgoing/").unwrap();
        assert_eq!(
            (
                e.secure,
                e.host.as_str(),
                e.port,
                e.user.as_str(),
                e.path.as_str()
            ),
            (false, "erp.example.test", 2121, "orders", "outgoing")
        );
        assert!(pw.is_none());
        let (e, pw) = FtpEndpoint::parse("ftps://w%40m:p%3Ass@h/in%20box").unwrap();
        assert_eq!((e.secure, e.port, e.user.as_str()), (true, 21, "w@m"));
        assert_eq!(e.path, "in box");
        assert_eq!(pw.as_deref(), Some("p:ss"));
        assert!(!e.display().contains("p:ss"));
        assert!(FtpEndpoint::parse("sftp://h/x").is_err());
        assert!(FtpEndpoint::parse("ftp://h:x/").is_err());
    }

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
