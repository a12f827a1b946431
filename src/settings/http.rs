//! ferry.toml's `http`: where `ferry run` serves the web console, `/metrics` and the health
//! checks, and who may use them (docs/console.md). Either an address alone,
//! `http = "127.0.0.1:8080"`, or a table:
//!
//! ```toml
//! [http]
//! listen = "0.0.0.0:8080"
//! token = "${env:FERRY_HTTP_TOKEN}"     # bearer token for scripts and Prometheus (read-only)
//!
//! [[http.users]]
//! name = "ann"
//! password_hash = "$argon2id$v=19$..."  # from `ferry hash-password`
//! role = "admin"                        # or "read"
//! ```

use std::net::SocketAddr;

use crate::job::toml_reader::{Doc, Str, TableReader, one_of};
use crate::secrets::Secret;

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees every page.
    Read,
    /// Also retries, approves, rejects and triggers.
    Admin,
}

/// A console user from ferry.toml's `[[http.users]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    /// An argon2 PHC string (`$argon2id$v=19$...`), from `ferry hash-password`.
    pub password_hash: String,
    pub role: Role,
}

/// Whether `s` is an argon2 PHC string ferry can check passwords against.
pub fn is_argon2_phc(s: &str) -> bool {
    argon2::password_hash::PasswordHash::new(s)
        .is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// What ferry.toml says about the HTTP server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Http {
    pub listen: Option<SocketAddr>,
    pub access: Access,
}

/// Who may use the HTTP server: `[[http.users]]` and `http.token`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub users: Vec<User>,
    /// Resolved when the server starts (so a `${env:...}` is read then).
    pub token: Option<Secret>,
}

impl Access {
    /// Nobody is configured: only loopback may be served.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.token.is_none()
    }
}

fn addr(doc: &mut Doc<'_>, s: &Str) -> Option<SocketAddr> {
    match s.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "expected an address and port like \"127.0.0.1:8080\", found {:?}",
                    s.value
                ),
            );
            None
        }
    }
}

/// Reads `http` (an address, or the `[http]` table) from ferry.toml's top level.
pub fn read(doc: &mut Doc<'_>, top: &mut TableReader<'_, '_>) -> Http {
    if !top.is_table("http") {
        let listen = top.str(doc, "http").and_then(|s| addr(doc, &s));
        return Http {
            listen,
            ..Default::default()
        };
    }
    let Some(mut t) = top.table(doc, "http") else {
        return Http::default();
    };
    let listen = t.str(doc, "listen").and_then(|s| addr(doc, &s));
    let token = t
        .str(doc, "token")
        .and_then(|s| match Secret::parse(&s.value) {
            Ok(secret) => Some(secret),
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        });
    let users = t
        .tables(doc, "users")
        .into_iter()
        .filter_map(|u| user(doc, u))
        .collect();
    t.finish(doc, &super::keys::known("http"));
    Http {
        listen,
        access: Access { users, token },
    }
}

/// One `[[http.users]]`.
fn user(doc: &mut Doc<'_>, mut u: TableReader<'_, '_>) -> Option<User> {
    let at = u.span_of("");
    let name = u.str(doc, "name");
    let hash = u.str(doc, "password_hash");
    let role = u.str(doc, "role");
    let role = one_of(
        doc,
        role,
        &[("read", Role::Read), ("admin", Role::Admin)],
        Role::Read,
    );
    if let Some(h) = &hash
        && !is_argon2_phc(&h.value)
    {
        doc.error(
            h.span.clone(),
            &h.key,
            "expected an argon2 hash (a PHC string starting with `$argon2id$`): make one with `ferry hash-password`",
        );
        return None;
    }
    let missing = |doc: &mut Doc<'_>, key: &str| {
        doc.error(
            at.clone(),
            "http.users",
            format!("a user needs `{key}` (name, password_hash, role)"),
        );
        None
    };
    let (name, hash) = match (name, hash) {
        (Some(n), Some(h)) if !n.value.trim().is_empty() => (n.value, h.value),
        (None, _) => return missing(doc, "name"),
        (Some(_), None) => return missing(doc, "password_hash"),
        (Some(n), _) => {
            doc.error(
                n.span.clone(),
                &n.key,
                "expected a user name, found an empty string",
            );
            return None;
        }
    };
    u.finish(doc, &super::keys::known("http.users"));
    Some(User {
        name,
        password_hash: hash,
        role: role?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read(src: &str) -> Result<crate::settings::Settings, Vec<crate::job::toml_reader::Diag>> {
        let root = Path::new("/tmp/ferry-http-settings");
        crate::settings::read(&root.join("ferry.toml"), root, src)
    }

    #[test]
    fn an_address_alone_or_a_table_with_users_and_a_token() {
        let s = read("http = \"127.0.0.1:8080\"\n").unwrap();
        assert_eq!(s.http, Some("127.0.0.1:8080".parse().unwrap()));
        assert!(s.http_access.is_empty());
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2k2Ji4X9N0Pj9t6ofTqOQ+oVfC6+lUnYwtbtIldqPRw";
        let src = format!(
            "[http]\nlisten = \"0.0.0.0:9\"\ntoken = \"${{env:TOK}}\"\n[[http.users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n[[http.users]]\nname = \"rob\"\npassword_hash = \"{hash}\"\n"
        );
        let s = read(&src).unwrap();
        assert_eq!(s.http, Some("0.0.0.0:9".parse().unwrap()));
        let roles: Vec<(&str, Role)> = s
            .http_access
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.role))
            .collect();
        assert_eq!(roles, [("ann", Role::Admin), ("rob", Role::Read)]);
        assert_eq!(s.http_access.token, Some(Secret::Env("TOK".into())));
    }

    #[test]
    fn a_password_that_is_not_a_hash_is_refused_at_its_line() {
        let src = "[http]\nlisten = \"0.0.0.0:9\"\n[[http.users]]\nname = \"ann\"\npassword_hash = \"hunter2\"\nrole = \"boss\"\n";
        let diags = read(src).unwrap_err();
        let at: Vec<(usize, &str)> = diags.iter().map(|d| (d.line, d.key.as_str())).collect();
        assert_eq!(
            at,
            [
                (5, "http.users[1].password_hash"),
                (6, "http.users[1].role")
            ],
            "{diags:#?}"
        );
        assert!(diags[0].message.contains("ferry hash-password"));
        assert!(!format!("{diags:?}").contains("hunter2"));
    }
}
