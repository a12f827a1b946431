//! The FTP/FTPS URL of a remote source or output (`ftp = "ftp://user@host/folder"`). Its keys
//! are read in [`super::remote`]; the session is in `protocol::ftp`, the adapters in
//! `sources::ftp` and `outputs::ftp`.

use std::path::PathBuf;

use crate::secrets::Secret;

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
        let crate::url::Authority {
            user,
            password,
            host,
            port,
            path,
        } = crate::url::authority(rest)?;
        let user = user.unwrap_or_else(|| "anonymous".to_string());
        let port = port.unwrap_or(21);
        if host.is_empty() {
            return Err(format!(
                "the URL {:?} has no host",
                crate::redact::url_for_message(url)
            ));
        }
        Ok((
            FtpEndpoint {
                secure,
                host,
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
}
