//! Connections of a database source: the URL's secrets, TLS, and a connection timeout.
//!
//! Not yet [`crate::db::connect`] (the outputs' connections, written in parallel): that one
//! takes no URL parameters (`?sslmode=...`, which sources document), sets the session's
//! time zone to UTC (which changes how a source renders `timestamptz`) and requires
//! verified TLS off loopback. Moving sources onto it is a decision about those three, left
//! for its own change. What this file does: `${env:NAME}` / `${file:PATH}` in the URL (resolved now, made
//! known to [`crate::redact`] before anything can print them, percent-encoded into the
//! URL), `ca_file` (the server's certificate is then verified against it, host name
//! included, and TLS is required), and SQLite files opened read-only.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

use crate::job::database_source::DatabaseSource;

/// How long making a connection may take before the run counts as an outage.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The URL with every `${env:NAME}` and `${file:PATH}` replaced by its value
/// (percent-encoded: a password may hold `@`, `/` or `:`). The error names the reference,
/// never a value.
pub fn resolve_url(url: &str) -> Result<String, String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err("a `${` without its `}` in the database URL".into());
        };
        let reference = &rest[start..start + len + 1];
        let secret = crate::secrets::Secret::parse(reference)?;
        let value = secret.resolve()?;
        out.push_str(&percent_encode(&value));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Any connection error as text, secrets scrubbed.
fn message(e: impl std::fmt::Display) -> String {
    crate::redact::scrub(&e.to_string()).into_owned()
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, f).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect to {what}: {}", message(e))),
        Err(_) => Err(format!(
            "cannot connect to {what}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// A PostgreSQL connection.
pub async fn postgres(src: &DatabaseSource) -> Result<PgConnection, String> {
    let url = resolve_url(&src.url)?;
    let mut opts = PgConnectOptions::from_str(&url).map_err(message)?;
    if let Some(ca) = &src.ca_file {
        opts = opts.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca);
    }
    let opts = opts.disable_statement_logging();
    timed(&src.display(), opts.connect()).await
}

/// A MySQL or MariaDB connection.
pub async fn mysql(src: &DatabaseSource) -> Result<MySqlConnection, String> {
    let url = resolve_url(&src.url)?;
    let url = match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url,
    };
    let mut opts = MySqlConnectOptions::from_str(&url).map_err(message)?;
    if let Some(ca) = &src.ca_file {
        opts = opts.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca(ca);
    }
    let opts = opts.disable_statement_logging();
    timed(&src.display(), opts.connect()).await
}

/// A SQLite database, opened read-only: a source never writes into it (the watermark is
/// kept in ferry's journal).
pub fn sqlite(src: &DatabaseSource) -> Result<rusqlite::Connection, String> {
    let path = src
        .sqlite_path
        .as_ref()
        .ok_or_else(|| "no SQLite file".to_string())?;
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    c.busy_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_secrets_are_resolved_and_encoded() {
        // SAFETY: the variable is this test's own.
        unsafe { std::env::set_var("FERRY_TEST_DBSRC_PW", "p@ss/w:rd") };
        let u = resolve_url("postgres://u:${env:FERRY_TEST_DBSRC_PW}@h/db").unwrap();
        assert_eq!(u, "postgres://u:p%40ss%2Fw%3Ard@h/db");
        let e = resolve_url("postgres://u:${env:FERRY_TEST_DBSRC_NOT_SET}@h/db").unwrap_err();
        assert!(e.contains("FERRY_TEST_DBSRC_NOT_SET"), "{e}");
        assert_eq!(resolve_url("sqlite://a.db").unwrap(), "sqlite://a.db");
    }
}
