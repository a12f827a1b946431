//! The parts of a server URL after its scheme (`user:password@host:port/path`), as FTP
//! and database URLs write them; `%XX` escapes decoded. Nothing here knows a scheme: the
//! callers (`job::ftp`, `db::connect`) check theirs, give their default port and user, and
//! word their own errors about what is missing.

/// `user:password@host:port/path` of a URL, split and decoded.
#[derive(Debug)]
pub struct Authority {
    /// `None`: the URL names no user.
    pub user: Option<String>,
    /// A password written in the URL (never quoted in an error).
    pub password: Option<String>,
    /// Without `[ ]` around an IPv6 address; may be empty (the caller says so).
    pub host: String,
    /// `None`: no `:port` (the caller's default).
    pub port: Option<u16>,
    /// After the first `/`, `%XX` decoded, without a trailing `/`.
    pub path: String,
}

/// Splits `rest` (a URL after `scheme://`).
pub fn authority(rest: &str) -> Result<Authority, String> {
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
                Some(percent_decode(u)?),
                // The error must not quote the password.
                Some(percent_decode(p).map_err(|_| {
                    "the password in the URL has a bad %-escape or is not UTF-8 once decoded"
                        .to_string()
                })?),
            ),
            None => (Some(percent_decode(u)?), None),
        },
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("expected a port number after `:`, found {p:?}"))?;
            (h, Some(port))
        }
        _ => (hostport, None),
    };
    Ok(Authority {
        user,
        password,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path: percent_decode(path.trim_end_matches('/'))?,
    })
}

/// `%XX` escapes of a URL part decoded; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}
