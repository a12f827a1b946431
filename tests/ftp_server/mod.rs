//! Real FTP servers for the tests, on 127.0.0.1 only: vsftpd (LIST in Unix format, no
//! MLSD) and pure-ftpd (MLSD), each test with its own instance, config and folder on free
//! ports. `scripts/test.sh` installs them; with FERRY_REQUIRE_TOOLS=1 a missing one fails.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The local account the servers log in (its shell must be in /etc/shells for vsftpd).
pub const USER: &str = "ferryftp";
pub const PASSWORD: &str = "ferry-secret-pw";

pub fn run(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Creates the FTP account once per machine (idempotent; tests run as root).
pub fn ensure_user() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        run(&format!(
            "id {USER} >/dev/null 2>&1 || useradd -M -d / -s /bin/sh {USER}; usermod -d / {USER}; echo '{USER}:{PASSWORD}' | chpasswd"
        ));
    });
}

pub fn vsftpd_path() -> Option<PathBuf> {
    ["/usr/sbin/vsftpd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// pure-ftpd conflicts with vsftpd as a Debian package: test.sh unpacks it to
/// /opt/ferry-pure-ftpd instead of installing it.
pub fn pure_ftpd_path() -> Option<PathBuf> {
    [
        "/opt/ferry-pure-ftpd/usr/sbin/pure-ftpd",
        "/usr/sbin/pure-ftpd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Whether the test can run; panics (instead of skipping) under FERRY_REQUIRE_TOOLS.
pub fn available(p: Option<PathBuf>, what: &str) -> bool {
    if p.is_some() {
        return true;
    }
    if std::env::var_os("FERRY_REQUIRE_TOOLS").is_some() {
        panic!("{what} is required (FERRY_REQUIRE_TOOLS=1) but not installed; run scripts/test.sh");
    }
    eprintln!("skipped: {what} is not installed");
    false
}

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A range of `n` passive ports, spread by pid and a counter so parallel tests rarely share.
fn pasv_range(n: u16) -> (u16, u16) {
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let slot = (std::process::id().wrapping_mul(7) + u32::from(k) * 61) % 290;
    let base = 30000 + slot as u16 * 100;
    (base, base + n - 1)
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("port {port} did not open");
}

/// A test CA and a server certificate signed by it for `sans` (e.g.
/// "DNS:localhost,IP:127.0.0.1"). Returns (ca.pem, cert.pem, key.pem).
pub fn make_tls(dir: &Path, sans: &str) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    run(&format!(
        "cd '{d}' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj '/CN=ferry test CA' 2>/dev/null \
         && openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=ftp-test 2>/dev/null \
         && printf 'subjectAltName={sans}\\nbasicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\n' > leaf.ext \
         && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile leaf.ext -out cert.pem 2>/dev/null \
         && cat cert.pem key.pem > pure-ftpd.pem && chmod 644 key.pem cert.pem pure-ftpd.pem"
    ));
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vsftpd,
    PureFtpd,
}

/// One server instance. `root` is the FTP user's folder (the URL path is relative to it).
pub struct Server {
    pub kind: Kind,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub port: u16,
    pub tls: Option<PathBuf>,
    /// vsftpd: bytes/s per transfer (0: unlimited).
    pub max_rate: u64,
    child: Option<Child>,
}

impl Server {
    /// A vsftpd in `dir` (created), with explicit FTPS when `tls` names a folder made by
    /// [`make_tls`].
    pub fn vsftpd(dir: &Path, tls: Option<&Path>, max_rate: u64) -> Server {
        Self::new(Kind::Vsftpd, dir, tls, max_rate)
    }

    pub fn pure_ftpd(dir: &Path, tls: Option<&Path>) -> Server {
        Self::new(Kind::PureFtpd, dir, tls, 0)
    }

    fn new(kind: Kind, dir: &Path, tls: Option<&Path>, max_rate: u64) -> Server {
        ensure_user();
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        // The servers run as other users: every folder on the way must be traversable.
        let mut p = dir.to_path_buf();
        loop {
            run(&format!("chmod a+rx '{}'", p.display()));
            if !p.pop() || p.as_os_str().len() <= 4 {
                break;
            }
        }
        run(&format!("chown {USER} '{}'", dir.join("root").display()));
        run(&format!("chmod 777 '{}'", dir.join("root").display()));
        let mut s = Server {
            kind,
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            port: free_port(),
            tls: tls.map(Path::to_path_buf),
            max_rate,
            child: None,
        };
        s.start();
        s
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.dir.join("server.out")).unwrap();
        let child = match self.kind {
            Kind::Vsftpd => {
                let (lo, hi) = pasv_range(60);
                let mut conf = format!(
                    "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
                     anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
                     local_root={root}\nchroot_local_user=YES\nallow_writeable_chroot=YES\n\
                     pam_service_name=vsftpd\npasv_enable=YES\npasv_address=127.0.0.1\n\
                     pasv_min_port={lo}\npasv_max_port={hi}\nport_enable=YES\nconnect_from_port_20=NO\n\
                     secure_chroot_dir={empty}\nseccomp_sandbox=NO\ndelay_failed_login=0\n\
                     max_per_ip=0\nmax_clients=0\nlocal_max_rate={rate}\nutf8_filesystem=YES\n\
                     xferlog_enable=YES\nlog_ftp_protocol=YES\nvsftpd_log_file={log}\n",
                    port = self.port,
                    root = self.root.display(),
                    empty = self.dir.join("empty").display(),
                    rate = self.max_rate,
                    log = self.dir.join("vsftpd.log").display(),
                );
                match &self.tls {
                    Some(t) => conf.push_str(&format!(
                        "ssl_enable=YES\nforce_local_logins_ssl=NO\nforce_local_data_ssl=NO\nrequire_ssl_reuse=NO\n\
                         rsa_cert_file={}\nrsa_private_key_file={}\n",
                        t.join("cert.pem").display(),
                        t.join("key.pem").display()
                    )),
                    None => conf.push_str("ssl_enable=NO\n"),
                }
                let cf = self.dir.join("vsftpd.conf");
                std::fs::write(&cf, conf).unwrap();
                Command::new(vsftpd_path().expect("vsftpd"))
                    .arg(&cf)
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap()
            }
            Kind::PureFtpd => {
                // pure-ftpd logs users in to their home. Each instance has its own virtual
                // user database naming this instance's folder (mapped onto the system
                // account), so instances running at the same time never share a home.
                let db = self.puredb();
                let (lo, hi) = pasv_range(60);
                let mut args = vec![
                    "-S".to_string(),
                    format!("127.0.0.1,{}", self.port),
                    "-p".into(),
                    format!("{lo}:{hi}"),
                    "-P".into(),
                    "127.0.0.1".into(),
                    "-l".into(),
                    format!("puredb:{}", db.display()),
                    "-E".into(),
                    "-A".into(),
                    "-u".into(),
                    "100".into(),
                    "-c".into(),
                    "50".into(),
                    "-C".into(),
                    "50".into(),
                ];
                if let Some(t) = &self.tls {
                    args.extend(["-Y".into(), "1".into()]);
                    args.push("-2".into());
                    args.push(t.join("pure-ftpd.pem").display().to_string());
                }
                Command::new(pure_ftpd_path().expect("pure-ftpd"))
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap()
            }
        };
        self.child = Some(child);
        wait_port(self.port);
    }

    /// pure-ftpd's virtual user database for this instance: [`USER`] with [`PASSWORD`]
    /// (a SHA-512 crypt hash, quick to check), running as the system account, chrooted
    /// (`/./`) to `root`.
    fn puredb(&self) -> PathBuf {
        const HASH: &str = "$6$ferrysalt$BvsCG3AWREGmEX2eKSIjEKUvFSpb3/PhK2PD.K31v5LJ5mQ6ZVWE3G9er3DhXmKS4x1BymYWkrAACvcNSlDSr/";
        let id = |flag: &str| {
            let o = Command::new("id").args([flag, USER]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        let passwd = self.dir.join("pureftpd.passwd");
        let db = self.dir.join("pureftpd.pdb");
        std::fs::write(
            &passwd,
            format!(
                "{USER}:{HASH}:{}:{}::{}/./::::::::::::\n",
                id("-u"),
                id("-g"),
                self.root.display()
            ),
        )
        .unwrap();
        let pure_pw = pure_ftpd_path()
            .expect("pure-ftpd")
            .parent()
            .and_then(Path::parent)
            .unwrap()
            .join("bin/pure-pw");
        run(&format!(
            "'{}' mkdb '{}' -f '{}'",
            pure_pw.display(),
            db.display(),
            passwd.display()
        ));
        db
    }

    /// Stops the server (its connections die with it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The session processes too (vsftpd forks one per connection, in its own
            // session), as when the machine goes down.
            let pids = descendants(c.id());
            let _ = c.kill();
            for pid in pids {
                // SAFETY: kill(2) on processes started by the server we started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            let _ = c.wait();
        }
        // vsftpd forks a process per session: those die when their control socket does,
        // but make sure none still holds the port.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{USER}@127.0.0.1:{}/{path}", self.port)
    }

    /// Writes a file into the server's folder, as a partner would upload it.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        run(&format!("chmod 777 '{}'", p.parent().unwrap().display()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn mkdir(&self, rel: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        run(&format!("chmod 777 '{}'", p.display()));
    }

    /// Regular files below `rel` in the server's folder (hidden names included), sorted.
    pub fn files(&self, rel: &str) -> Vec<String> {
        crate::util::files_below(&self.root.join(rel))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vsftpd.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
    }
}

/// Every process below `pid` (children, grandchildren, ...), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
            && let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u32>().ok())
        {
            parent_of.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(x) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == x && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
