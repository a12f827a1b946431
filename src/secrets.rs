//! Credentials in job files: `${env:NAME}` (an environment variable) or `${file:PATH}`
//! (a secrets file; one trailing newline is trimmed), resolved when a connection is made, so
//! a rotated secret is picked up without a reload. A literal value works but makes
//! `ferry check` warn: job files get copied, committed and mailed around.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` show only where it comes from.

use std::fmt;
use std::path::PathBuf;

/// Where a password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
    /// Written in the job file itself (discouraged: `ferry check` warns).
    Literal(String),
}

impl Secret {
    /// Reads a job file value: `${env:NAME}`, `${file:PATH}`, or a literal.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            return match inner.split_once(':') {
                Some(("env", name)) if !name.is_empty() => Ok(Secret::Env(name.to_string())),
                Some(("file", path)) if !path.is_empty() => Ok(Secret::File(PathBuf::from(path))),
                _ => Err(format!(
                    "expected `${{env:NAME}}` or `${{file:PATH}}`, found `{t}`"
                )),
            };
        }
        if t.starts_with("${") {
            return Err(format!(
                "expected `${{env:NAME}}` or `${{file:PATH}}`, found `{t}`"
            ));
        }
        Ok(Secret::Literal(text.to_string()))
    }

    pub fn is_literal(&self) -> bool {
        matches!(self, Secret::Literal(_))
    }

    /// The value, read now, and made known to [`crate::redact`] before anyone can send or
    /// print it. The error names the source, never a value.
    pub fn resolve(&self) -> Result<String, String> {
        let value = self.read()?;
        crate::redact::learn(&value);
        Ok(value)
    }

    fn read(&self) -> Result<String, String> {
        match self {
            Secret::Env(name) => std::env::var(name).map_err(|_| {
                format!("the password variable {name} is not set in ferry's environment")
            }),
            Secret::File(path) => match std::fs::read_to_string(path) {
                Ok(mut s) => {
                    if s.ends_with('\n') {
                        s.pop();
                        if s.ends_with('\r') {
                            s.pop();
                        }
                    }
                    Ok(s)
                }
                Err(e) => Err(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                )),
            },
            Secret::Literal(s) => Ok(s.clone()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(n) => write!(f, "${{env:{n}}}"),
            Secret::File(p) => write!(f, "${{file:{}}}", p.display()),
            Secret::Literal(_) => f.write_str("<literal password>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_literals() {
        assert_eq!(
            Secret::parse("${env:FTP_PW}").unwrap(),
            Secret::Env("FTP_PW".into())
        );
        assert_eq!(
            Secret::parse("${file:/etc/x}").unwrap(),
            Secret::File("/etc/x".into())
        );
        assert!(Secret::parse("${vault:x}").is_err());
        let lit = Secret::parse("hunter2").unwrap();
        assert!(lit.is_literal());
        assert!(!format!("{lit:?} {lit}").contains("hunter2"));
    }

    #[test]
    fn file_secrets_lose_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("ferry-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(Secret::File(p.clone()).resolve().unwrap(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            Secret::Env("FERRY_SURELY_UNSET_VAR".into())
                .resolve()
                .is_err()
        );
    }
}
