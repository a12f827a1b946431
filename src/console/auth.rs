//! Who may use the console, and how they prove it (docs/console.md, "Access").
//!
//! Theory of operation: every visitor gets a session (a random id in a cookie that is
//! `HttpOnly` and `SameSite=Strict`), created on the first request, holding a random CSRF
//! token that every form carries in a hidden field and every POST must send back. A
//! session is anonymous until its user logs in with a name and password checked against the
//! argon2 hash in ferry.toml (`[[http.users]]`); logging in replaces the session id (no
//! fixation). Scripts and Prometheus send `Authorization: Bearer TOKEN` (`http.token`)
//! instead: read-only, no session. When the console is open (bound to loopback with no
//! users and no token configured) an anonymous session is the admin `local`.
//!
//! Roles: `read` sees every page; `admin` may also retry, approve, reject and trigger.
//!
//! Guessing passwords is slowed down ([`Throttle`]): after 5 failed logins within 15
//! minutes for one user name, or from one client address, that name or address is refused
//! without a password check until the oldest of those failures is 15 minutes old. Nothing
//! is locked for good, so an attacker cannot lock an admin out for longer than that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;

/// The cookie that carries the session id.
pub const COOKIE: &str = "ferry_session";

/// A session unused this long is forgotten (its user logs in again).
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// Beyond this many sessions, the anonymous ones (visitors who never logged in) are
/// forgotten first: requests without a cookie cannot grow memory without bound.
const MAX_SESSIONS: usize = 10_000;

pub use crate::settings::http::{Role, User, is_argon2_phc};

/// ferry.toml's `[http]` access settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    pub users: Vec<User>,
    /// The bearer token for scripts and Prometheus (read-only), resolved from
    /// `${env:...}` / `${file:...}`.
    pub token: Option<String>,
}

impl AuthConfig {
    /// Nobody is configured: only an open console on loopback can be used.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.token.is_none()
    }

    /// ferry.toml's users and token, the token resolved now.
    pub fn from_access(access: &crate::settings::http::Access) -> Result<AuthConfig, String> {
        let token = match &access.token {
            Some(t) => Some(t.resolve().map_err(|e| format!("http.token: {e}"))?),
            None => None,
        };
        Ok(AuthConfig {
            users: access.users.clone(),
            token,
        })
    }
}

/// Who is asking, as the handlers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// The user's name (`local` on an open console, `token` for the bearer token).
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; empty for the bearer token (which cannot POST forms).
    pub csrf: String,
}

#[derive(Debug, Clone)]
struct Session {
    /// `None` until someone logs in (on a console that is not open).
    who: Option<(String, Role)>,
    csrf: String,
    used: Instant,
}

/// The sessions of the running console (kept in memory: a restart logs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A random token: 32 bytes from the OS, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// The session `id`, if it is known and not idle for too long; marks it used.
    pub fn get(&self, id: &str, open: bool) -> Option<Identity> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get_mut(id)?;
        if s.used.elapsed() > IDLE {
            map.remove(id);
            return None;
        }
        s.used = Instant::now();
        Some(identity(s, open))
    }

    /// A new anonymous session: its id and what it is.
    pub fn create(&self, open: bool) -> (String, Identity) {
        let id = random_token();
        let s = Session {
            who: None,
            csrf: random_token(),
            used: Instant::now(),
        };
        let who = identity(&s, open);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.used.elapsed() <= IDLE);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.who.is_some());
        }
        map.insert(id.clone(), s);
        (id, who)
    }

    /// Logs `user` in: the old session is dropped and a new one (new id, new CSRF token)
    /// is returned.
    pub fn login(&self, old: Option<&str>, user: &User) -> String {
        let id = random_token();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = old {
            map.remove(old);
        }
        map.insert(
            id.clone(),
            Session {
                who: Some((user.name.clone(), user.role)),
                csrf: random_token(),
                used: Instant::now(),
            },
        );
        id
    }

    pub fn logout(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }
}

/// Failed logins that count against a user name or a client address...
const MAX_FAILURES: usize = 5;
/// ...within this window.
const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Names and addresses tracked at most (the oldest are forgotten first beyond it).
const MAX_TRACKED: usize = 10_000;

/// Failed logins per key (`user:NAME`, `addr:IP`), in the window.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// How much longer a login for `keys` is refused, when one of them has had
    /// [`MAX_FAILURES`] failures within [`LOCKOUT`].
    pub fn refused_for(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter_map(|times| {
                let recent: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.duration_since(**t) < LOCKOUT)
                    .collect();
                (recent.len() >= MAX_FAILURES)
                    .then(|| LOCKOUT - now.duration_since(*recent[recent.len() - MAX_FAILURES]))
            })
            .max()
    }

    /// A login for `keys` failed at `now`.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < LOCKOUT)
            });
        }
        for k in keys {
            let times = map.entry(k.clone()).or_default();
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= LOCKOUT)
                || times.len() >= MAX_FAILURES
            {
                times.pop_front();
            }
            times.push_back(now);
        }
    }

    /// A login for `key` succeeded: its failures are forgotten.
    pub fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

/// The throttle's keys of a login: the user name, and the client's address when known.
pub fn throttle_keys(name: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![format!("user:{name}")];
    keys.extend(addr.map(|a| format!("addr:{a}")));
    keys
}

fn identity(s: &Session, open: bool) -> Identity {
    let (user, role) = match &s.who {
        Some((u, r)) => (u.clone(), *r),
        None if open => ("local".to_string(), Role::Admin),
        // Not logged in: no role; the middleware turns it away before any page.
        None => (String::new(), Role::Read),
    };
    Identity {
        user,
        role,
        csrf: s.csrf.clone(),
    }
}

/// Whether an anonymous session may use the console (it is open).
pub fn logged_in(who: &Identity) -> bool {
    !who.user.is_empty()
}

/// The user `name` if `password` matches its hash (argon2, in constant time). A user
/// that does not exist costs the same time as a wrong password.
pub fn check_password<'a>(cfg: &'a AuthConfig, name: &str, password: &str) -> Option<&'a User> {
    let user = cfg.users.iter().find(|u| u.name == name);
    let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
    let ok = PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    user.filter(|_| ok)
}

/// The hash of a password nobody has, verified for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2k2Ji4X9N0Pj9t6ofTqOQ+oVfC6+lUnYwtbtIldqPRw";

/// `ferry hash-password`: the argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            users: vec![User {
                name: "ann".into(),
                password_hash: hash_password("s3cret-pw").unwrap(),
                role: Role::Admin,
            }],
            token: None,
        }
    }

    #[test]
    fn a_password_is_checked_against_its_hash() {
        let c = cfg();
        assert!(is_argon2_phc(&c.users[0].password_hash));
        assert_eq!(check_password(&c, "ann", "s3cret-pw").unwrap().name, "ann");
        assert!(check_password(&c, "ann", "wrong").is_none());
        assert!(check_password(&c, "bob", "s3cret-pw").is_none());
        assert!(is_argon2_phc(DUMMY_HASH));
    }

    #[test]
    fn login_replaces_the_session_and_its_csrf_token() {
        let s = Sessions::default();
        let (anon, who) = s.create(false);
        assert!(!logged_in(&who));
        let id = s.login(Some(&anon), &cfg().users[0]);
        assert!(s.get(&anon, false).is_none(), "the old id is gone");
        let now = s.get(&id, false).unwrap();
        assert_eq!((now.user.as_str(), now.role), ("ann", Role::Admin));
        assert_ne!(now.csrf, who.csrf);
        let (_, open) = s.create(true);
        assert_eq!((open.user.as_str(), open.role), ("local", Role::Admin));
    }

    #[test]
    fn failed_logins_lock_a_name_or_address_for_a_while() {
        let t = Throttle::default();
        let start = Instant::now();
        let ann = throttle_keys("ann", Some([10, 0, 0, 7].into()));
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(t.refused_for(&ann, start + Duration::from_secs(i)), None);
            t.failed(&ann, start + Duration::from_secs(i));
        }
        let now = start + Duration::from_secs(60);
        let left = t.refused_for(&ann, now).expect("locked");
        assert_eq!(left, LOCKOUT - Duration::from_secs(60));
        // Another name from the same address is refused too; the same name elsewhere too.
        assert!(
            t.refused_for(&throttle_keys("bob", Some([10, 0, 0, 7].into())), now)
                .is_some()
        );
        assert!(t.refused_for(&throttle_keys("ann", None), now).is_some());
        assert!(t.refused_for(&throttle_keys("bob", None), now).is_none());
        // Once the first failure is LOCKOUT old, one more attempt is allowed.
        assert_eq!(t.refused_for(&ann, start + LOCKOUT), None);
        t.succeeded("user:ann");
        assert!(t.refused_for(&throttle_keys("ann", None), now).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
