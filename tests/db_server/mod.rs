//! Real database servers for the tests, on 127.0.0.1 only: PostgreSQL and MariaDB from
//! Debian's packages, started by scripts/db-servers.sh in a temporary folder on a free
//! port, **once per test binary** (the first test that asks starts it; a watcher started
//! with it stops it when the test binary exits). Each test uses its own tables (names
//! with the test's name in them), so tests of one binary share the server safely.
//!
//! Every server has the login `ferry` / `secret`, owner of the database `ferry`, and TLS
//! with `ca()` as the CA to trust. `scripts/test.sh` installs the servers; with
//! FERRY_REQUIRE_TOOLS=1 a missing one fails the test instead of skipping it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MariaDb,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::MariaDb => "mariadb",
        }
    }
}

pub struct DbServer {
    pub kind: Kind,
    pub dir: PathBuf,
    pub port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/db-servers.sh")
}

/// The PostgreSQL server of this test binary, started on first use; `None` (skip) when
/// PostgreSQL is not installed and tools are not required.
pub fn postgres() -> Option<&'static DbServer> {
    static PG: OnceLock<Option<DbServer>> = OnceLock::new();
    PG.get_or_init(|| DbServer::start(Kind::Postgres)).as_ref()
}

/// The MariaDB server of this test binary, started on first use (as [`postgres`]).
pub fn mariadb() -> Option<&'static DbServer> {
    static MARIA: OnceLock<Option<DbServer>> = OnceLock::new();
    MARIA
        .get_or_init(|| DbServer::start(Kind::MariaDb))
        .as_ref()
}

impl DbServer {
    fn start(kind: Kind) -> Option<DbServer> {
        let dir =
            std::env::temp_dir().join(format!("ferry-{}-{}", kind.name(), std::process::id()));
        let mut last = String::new();
        for _ in 0..5 {
            let _ = std::fs::remove_dir_all(&dir);
            let port = free_port();
            let out = Command::new("bash")
                .arg(script())
                .arg("start")
                .arg(kind.name())
                .arg(&dir)
                .arg(port.to_string())
                .arg(std::process::id().to_string())
                .output()
                .unwrap();
            if out.status.success() {
                return Some(DbServer { kind, dir, port });
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(kind.name())
                .arg(&dir)
                .output();
        }
        let msg = format!("cannot start {}: {last}", kind.name());
        if std::env::var_os("FERRY_REQUIRE_TOOLS").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
        None
    }

    /// The URL ferry's job files use, for the login `ferry` with `password` written as
    /// given (e.g. `${env:DB_PASSWORD}`, or `secret` itself).
    pub fn url_with(&self, password: &str) -> String {
        let scheme = match self.kind {
            Kind::Postgres => "postgres",
            Kind::MariaDb => "mariadb",
        };
        format!("{scheme}://ferry:{password}@127.0.0.1:{}/ferry", self.port)
    }

    /// The URL with the password `secret` in it.
    pub fn url(&self) -> String {
        self.url_with("secret")
    }

    /// The CA that signed the server's certificate (for `localhost` and `127.0.0.1`).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// Runs `sql` as the superuser in the database `ferry`; its rows, each a line of
    /// tab-separated values. Panics on an SQL error.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql);
        match out {
            Ok(s) => s,
            Err(e) => panic!("{}: {sql}: {e}", self.kind.name()),
        }
    }

    /// As [`sql`](Self::sql), but an SQL error is returned.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("bash")
            .arg(script())
            .arg("sql")
            .arg(self.kind.name())
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(sql)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// SIGKILLs the server (every PostgreSQL backend too): an outage in the middle of a
    /// transaction. [`restart`](Self::restart) brings it back on the same port with its data.
    pub fn kill(&self) {
        self.control("kill");
    }

    /// Stops the server cleanly.
    pub fn stop(&self) {
        self.control("stop");
    }

    /// Starts the server again after [`kill`](Self::kill) or [`stop`](Self::stop).
    pub fn restart(&self) {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(self.kind.name())
            .arg(&self.dir)
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restart {}: {}",
            self.kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn control(&self, what: &str) {
        let out = Command::new("bash")
            .arg(script())
            .arg(what)
            .arg(self.kind.name())
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what} {}: {}",
            self.kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes `dir/other-ca.pem` (its key beside it): a CA that signed no server's certificate,
/// for tests where TLS must refuse the server. Returns its path.
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let pem = dir.join("other-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    pem
}
