//! Connecting to a database named by a URL: the one connection API of ferry's database
//! sources and outputs.
//!
//! - [`DbUrl::parse`] reads `postgres://user@host:5432/db` (also `postgresql://`),
//!   `mysql://` / `mariadb://user@host:3306/db`, and `sqlite://PATH` (`sqlite:///abs.db`,
//!   `sqlite://relative.db`, relative to the deployment folder once [`DbUrl::resolve_path`]
//!   is called). A password written in the URL comes back separately (a literal:
//!   `ferry check` warns); the job's `password = "${env:NAME}"` / `"${file:PATH}"` is set
//!   as [`DbUrl::password`] and resolved (and taught to [`crate::redact`]) at each connect,
//!   so a rotated secret is picked up without a reload.
//! - [`connect`] opens one connection ([`Conn`]) with a connect timeout. TLS: with a
//!   `ca_file` the server must offer TLS and its certificate must chain to that CA and
//!   name the host (PostgreSQL `verify-full`, MySQL `VERIFY_IDENTITY`); without one, TLS
//!   is required and verified against the public roots, except on a loopback host, where
//!   it is used when the server offers it (as `psql`'s default `prefer`).
//! - Errors are [`DbError`]: a message that never contains the password (the URL is shown
//!   through [`DbUrl::display`], and the text of driver errors is scrubbed), and whether
//!   the failure may pass ([`DbError::transient`]: the server is down, unreachable, shut
//!   down, busy, or the connection broke) or will fail the same way again (bad login, no
//!   such table, a value or constraint the database refuses).
//!
//! PostgreSQL and MySQL/MariaDB go through sqlx (async; [`block_on`] runs a future from
//! ferry's synchronous file workers on a small runtime of its own). SQLite goes through
//! rusqlite, the crate of ferry's journal: only one crate may link `sqlite3`, and a
//! synchronous driver fits a local file better.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::secrets::Secret;

/// How long a connection may take to be made (TCP, TLS, login).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The database products ferry speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    Sqlite,
}

/// A database URL, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub kind: Kind,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The database name (server kinds).
    pub database: String,
    /// The database file (`sqlite://`).
    pub path: PathBuf,
    pub password: Option<Secret>,
}

impl DbUrl {
    /// Parses a database URL. A password in the URL is returned separately.
    pub fn parse(url: &str) -> Result<(DbUrl, Option<String>), String> {
        let (kind, rest) = if let Some(r) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            (Kind::Postgres, r)
        } else if let Some(r) = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
        {
            (Kind::MySql, r)
        } else if let Some(r) = url.strip_prefix("sqlite://") {
            if r.is_empty() {
                return Err(
                    "expected the database file after `sqlite://`, e.g. \"sqlite://var/orders.db\""
                        .into(),
                );
            }
            let url = DbUrl {
                kind: Kind::Sqlite,
                host: String::new(),
                port: 0,
                user: String::new(),
                database: String::new(),
                path: PathBuf::from(crate::url::percent_decode(r)?),
                password: None,
            };
            return Ok((url, None));
        } else {
            return Err(format!(
                "expected a URL like \"postgres://user@host:5432/db\", \"mysql://...\", \"mariadb://...\" or \"sqlite://PATH\", found {:?}",
                crate::redact::url_for_message(url)
            ));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let crate::url::Authority {
            user,
            password,
            host,
            port,
            path: database,
        } = crate::url::authority(rest)?;
        let user = user.unwrap_or_default();
        if user.is_empty() {
            return Err(format!(
                "the URL {:?} names no user: write it as \"{}://USER@host/db\"",
                crate::redact::url_for_message(url),
                if kind == Kind::Postgres {
                    "postgres"
                } else {
                    "mysql"
                }
            ));
        }
        let port = port.unwrap_or(if kind == Kind::Postgres { 5432 } else { 3306 });
        if host.is_empty() {
            return Err(format!(
                "the URL {:?} has no host",
                crate::redact::url_for_message(url)
            ));
        }
        if database.is_empty() {
            return Err(format!(
                "the URL {:?} names no database: add it after the host, e.g. \".../orders\"",
                crate::redact::url_for_message(url)
            ));
        }
        Ok((
            DbUrl {
                kind,
                host,
                port,
                user,
                database,
                path: PathBuf::new(),
                password: None,
            },
            password,
        ))
    }

    /// A relative `sqlite://` file is relative to `root` (the deployment folder).
    pub fn resolve_path(&mut self, root: &Path) {
        if self.kind == Kind::Sqlite && self.path.is_relative() {
            self.path = root.join(&self.path);
        }
    }

    /// The URL without any password, for logs, history and errors.
    pub fn display(&self) -> String {
        match self.kind {
            Kind::Sqlite => format!("sqlite://{}", self.path.display()),
            Kind::Postgres | Kind::MySql => format!(
                "{}://{}@{}:{}/{}",
                if self.kind == Kind::Postgres {
                    "postgres"
                } else {
                    "mysql"
                },
                self.user,
                self.host,
                self.port,
                self.database
            ),
        }
    }

    fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }
}

/// A failed database operation. Its message never contains a password.
#[derive(Debug, Clone)]
pub struct DbError {
    pub message: String,
    /// The failure may pass (the server is away or busy): try again later.
    pub transient: bool,
    /// The connection broke while the commit was on its way: the transaction may or may
    /// not have been committed.
    pub in_doubt: bool,
}

impl DbError {
    pub fn permanent(message: impl Into<String>) -> Self {
        DbError {
            message: scrub(message.into()),
            transient: false,
            in_doubt: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        DbError {
            message: scrub(message.into()),
            transient: true,
            in_doubt: false,
        }
    }

    /// A sqlx error, with `context` (what was being done) in front.
    pub fn sqlx(context: &str, e: &sqlx::Error) -> Self {
        let transient = sqlx_transient(e);
        let message = format!("{context}: {}", sqlx_message(e));
        DbError {
            message: scrub(message),
            transient,
            in_doubt: false,
        }
    }

    /// A rusqlite error (SQLite), with `context` in front. A locked or busy database may
    /// pass; everything else (a missing table, a constraint) will not.
    pub fn sqlite(context: &str, e: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let transient = matches!(
            e.sqlite_error_code(),
            Some(
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::CannotOpen
            )
        );
        DbError {
            message: scrub(format!("{context}: {e}")),
            transient,
            in_doubt: false,
        }
    }

    /// The same error, for a failure of the commit itself: when the connection broke, the
    /// transaction may have been committed.
    pub fn at_commit(mut self) -> Self {
        self.in_doubt = self.transient;
        self
    }

    /// As an `io::Error` whose kind [`crate::outputs::failure::of_io`] sorts the same way.
    pub fn into_io(self) -> std::io::Error {
        let kind = if self.transient {
            std::io::ErrorKind::ConnectionAborted
        } else {
            std::io::ErrorKind::InvalidData
        };
        std::io::Error::new(kind, self.message)
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

fn scrub(s: String) -> String {
    crate::redact::scrub(&s).into_owned()
}

/// The server's own words for a database error (with its SQLSTATE), else the error.
fn sqlx_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// Whether a sqlx error may pass: the connection (I/O, TLS handshake cut, pool timeout,
/// protocol cut short) or a server that is starting, shutting down, out of connections,
/// in a deadlock or a serialization conflict, or out of disk.
fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(t) => {
            // A certificate that does not verify will not verify next time either.
            let s = t.to_string();
            !(s.contains("certificate") || s.contains("Certificate"))
        }
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: 08 connection, 40001 serialization, 40P01 deadlock, 53 resources,
            // 57P01-57P03 shutdown / cannot connect now. MySQL: 1040 too many connections,
            // 1205 lock wait timeout, 1213 deadlock, 1053 shutdown, HY000 with 2006/2013
            // (gone away / lost), 1021 disk full.
            // A refused login (28: invalid authorization, MySQL 1045) is retried as an
            // outage: the usual cause is a password being rotated, as for mail servers.
            code.starts_with("08")
                || code.starts_with("28")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                || matches!(
                    d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .map(|m| m.number()),
                    Some(1040 | 1045 | 1205 | 1213 | 1053 | 1021 | 2006 | 2013)
                )
        }
        _ => false,
    }
}

/// One open connection.
pub enum Conn {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
    Lite(rusqlite::Connection),
}

/// The runtime database futures run on: one worker thread; each caller's future runs on
/// the calling thread ([`tokio::runtime::Runtime::block_on`]) with this runtime's I/O and
/// timers.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferry-db")
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// Runs a database future to its end from a synchronous thread (a file worker).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Opens a connection to `url`, trusting `ca_file` (PEM) for TLS when given. SQLite opens
/// (creating when missing) the database file.
pub async fn connect(url: &DbUrl, ca_file: Option<&Path>) -> Result<Conn, DbError> {
    use sqlx::ConnectOptions;
    let password = match &url.password {
        Some(s) => Some(s.resolve().map_err(DbError::permanent)?),
        None => None,
    };
    let what = format!("cannot connect to {}", url.display());
    match url.kind {
        Kind::Postgres => {
            use sqlx::postgres::{PgConnectOptions, PgSslMode};
            let mut o = PgConnectOptions::new_without_pgpass()
                .host(&url.host)
                .port(url.port)
                .username(&url.user)
                .database(&url.database)
                .application_name("ferry")
                .options([("TimeZone", "UTC")]);
            if let Some(p) = &password {
                o = o.password(p);
            }
            o = match ca_file {
                Some(ca) => o.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca),
                None if url.is_loopback() => o.ssl_mode(PgSslMode::Prefer),
                None => o.ssl_mode(PgSslMode::VerifyFull),
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, o.connect()).await {
                Ok(Ok(c)) => Ok(Conn::Pg(c)),
                Ok(Err(e)) => Err(DbError::sqlx(&what, &e)),
                Err(_) => Err(DbError::transient(format!(
                    "{what}: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))),
            }
        }
        Kind::MySql => {
            use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
            let mut o = MySqlConnectOptions::new()
                .host(&url.host)
                .port(url.port)
                .username(&url.user)
                .database(&url.database)
                .charset("utf8mb4")
                .timezone(Some("+00:00".to_string()));
            if let Some(p) = &password {
                o = o.password(p);
            }
            o = match ca_file {
                Some(ca) => o.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca(ca),
                None if url.is_loopback() => o.ssl_mode(MySqlSslMode::Preferred),
                None => o.ssl_mode(MySqlSslMode::VerifyIdentity),
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, o.connect()).await {
                Ok(Ok(c)) => Ok(Conn::My(c)),
                Ok(Err(e)) => Err(DbError::sqlx(&what, &e)),
                Err(_) => Err(DbError::transient(format!(
                    "{what}: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))),
            }
        }
        Kind::Sqlite => {
            // A new database file's folder is made, as a folder output's is.
            if let Some(dir) = url.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let c =
                rusqlite::Connection::open(&url.path).map_err(|e| DbError::sqlite(&what, &e))?;
            c.busy_timeout(CONNECT_TIMEOUT)
                .map_err(|e| DbError::sqlite(&what, &e))?;
            Ok(Conn::Lite(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (u, pw) = DbUrl::parse("postgres://ferry@db.example:6432/orders").unwrap();
        assert_eq!(
            (
                u.kind,
                u.host.as_str(),
                u.port,
                u.user.as_str(),
                u.database.as_str()
            ),
            (Kind::Postgres, "db.example", 6432, "ferry", "orders")
        );
        assert!(pw.is_none());
        let (u, pw) = DbUrl::parse("mariadb://w%40m:s3cr%3At@h/erp").unwrap();
        assert_eq!(
            (u.kind, u.port, u.user.as_str()),
            (Kind::MySql, 3306, "w@m")
        );
        assert_eq!(pw.as_deref(), Some("s3cr:t"));
        assert!(!u.display().contains("s3cr"));
        let (u, _) = DbUrl::parse("mysql://a@[::1]:3307/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 3307));
        let (mut u, _) = DbUrl::parse("sqlite://var/orders.db").unwrap();
        u.resolve_path(Path::new("/srv/ferry"));
        assert_eq!(u.path, Path::new("/srv/ferry/var/orders.db"));
        let (u, _) = DbUrl::parse("sqlite:///abs/o.db").unwrap();
        assert_eq!(u.path, Path::new("/abs/o.db"));
        for bad in [
            "postgres://h/db",
            "postgres://u@h",
            "postgres://u@:5/db",
            "postgres://u@h:x/db",
            "odbc://u@h/db",
            "sqlite://",
        ] {
            assert!(DbUrl::parse(bad).is_err(), "{bad}");
        }
        let e = DbUrl::parse("pg://u:hunter2@h/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = DbUrl::parse("postgres://u:hunter2@h:x/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
