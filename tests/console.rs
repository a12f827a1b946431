//! The web console's security (issue 18), over HTTP against a real `ferry run --http`:
//! off loopback nothing is served without a login (pages redirect to it, the rest gets
//! 401) but /healthz; the bearer token opens /metrics; a read-only user cannot retry; a
//! POST without the session's CSRF token is refused; an admin's retry puts the file back
//! and it is delivered; no page shows a secret of a job file.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use util::*;

/// A password given to a job through `${env:...}`.
const ENV_SECRET: &str = "Env-Secret-q8Zr4tV";
/// A password written literally in a job file's URL.
const LITERAL_SECRET: &str = "Literal-Pw-w2Xn6bK";
/// The bearer token, from `${env:...}` in ferry.toml.
const TOKEN: &str = "Console-Tok-7hT3kqP";

/// A free port on 127.0.0.1 (the daemon binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The session cookie it sets, as `name=value`.
    fn cookie(&self) -> Option<String> {
        let v = self.header("set-cookie")?;
        Some(v.split(';').next()?.to_string())
    }

    /// The CSRF token of the first form of the page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A plain HTTP/1.1 request to 127.0.0.1:`port` (no redirects followed).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(port: u16, path: &str, cookie: Option<&str>) -> Resp {
    match cookie {
        Some(c) => http(port, "GET", path, &[("Cookie", c)], ""),
        None => http(port, "GET", path, &[], ""),
    }
}

fn post(port: u16, path: &str, cookie: &str, body: &str) -> Resp {
    http(port, "POST", path, &[("Cookie", cookie)], body)
}

/// `ferry hash-password` with `pw` on stdin.
fn hash(d: &Deployment, pw: &str) -> String {
    let mut c = d
        .cmd(&["hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let h = stdout(&o).trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(!h.contains(pw));
    h
}

/// A deployment with a job whose file fails (its name is taken in `out`), a job with
/// secrets, a broken job file with a secret, ferry.toml with an admin, a read-only user
/// and the token.
fn deployment(name: &str) -> Deployment {
    let d = Deployment::new(name);
    d.job(
        "orders",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.job(
        "upload",
        &format!(
            "[source]\nfolder = \"in-upload\"\nsettle = \"0s\"\n\n[[output]]\nftp = \"ftp://ferry:{LITERAL_SECRET}@127.0.0.1:9/out\"\n"
        ),
    );
    d.job(
        "mailbox",
        "[source]\nmailbox = \"imap://ferry@127.0.0.1:9/INBOX\"\npassword = \"${env:CONSOLE_TEST_PW}\"\npoll = \"1h\"\n\n[[output]]\nfolder = \"mail-out\"\n",
    );
    d.job(
        "broken",
        &format!("[source]\nfolder = \"in-broken\"\nnot_a_key = 1\n\n[[output]]\nftp = \"ftp://ferry:{LITERAL_SECRET}@127.0.0.1:9/x\"\n"),
    );
    let (admin, reader) = (hash(&d, "admin-pw-1"), hash(&d, "reader-pw-1"));
    d.write(
        "ferry.toml",
        format!(
            "[http]\ntoken = \"${{env:CONSOLE_TEST_TOKEN}}\"\n\n[[http.users]]\nname = \"ann\"\npassword_hash = \"{admin}\"\nrole = \"admin\"\n\n[[http.users]]\nname = \"rob\"\npassword_hash = \"{reader}\"\nrole = \"read\"\n"
        ),
    );
    d.write("out/a.csv", "old\n");
    d.write("in/a.csv", "new\n");
    d
}

/// `ferry run --http ADDR` with the secrets in its environment; waits until it serves.
fn start(d: &Deployment, addr: &str, port: u16) -> Child {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let log = std::fs::File::create(d.path("var/ferry-console.log")).unwrap();
    let child = d
        .cmd(&["run", "--http", addr])
        .env("CONSOLE_TEST_PW", ENV_SECRET)
        .env("CONSOLE_TEST_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    wait_for("the console to answer", WAIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/healthz", None).status == 200
    });
    child
}

/// Logs `user` in; returns the session cookie.
fn login(port: u16, user: &str, pw: &str) -> String {
    let form = get(port, "/login", None);
    let anon = form.cookie().expect("a session cookie");
    let body = format!("csrf={}&name={user}&password={pw}&next=/jobs", form.csrf());
    let r = post(port, "/login", &anon, &body);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location").as_deref(), Some("/jobs"));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = r.cookie().unwrap();
    assert_ne!(session, anon, "a new session id at login");
    session
}

/// The id of the failed `a.csv`.
fn failed_id(d: &Deployment) -> i64 {
    wait_for("a.csv in the error folder", WAIT, || {
        d.path("var/error/orders/a.csv").exists()
    });
    let h = d.history();
    h.iter()
        .find(|f| f["state"] == "failed" && f["path"].as_str().unwrap().ends_with("/a.csv"))
        .and_then(|f| f["id"].as_i64())
        .expect("the failed a.csv in the history")
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn off_loopback_only_logged_in_users_see_pages_and_only_admins_act() {
    let d = deployment("console-auth");
    let port = free_port();
    let _daemon = Stop(start(&d, &format!("0.0.0.0:{port}"), port));
    let id = failed_id(&d);

    // Not logged in: pages go to the login form, the rest is refused.
    let r = get(port, "/jobs", None);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location").as_deref(), Some("/login?next=/jobs"));
    assert_eq!(get(port, &format!("/files/{id}"), None).status, 303);
    assert_eq!(get(port, "/metrics", None).status, 401);
    let anon = get(port, "/login", None).cookie().unwrap();
    assert_eq!(
        post(port, &format!("/files/{id}/retry"), &anon, "csrf=x").status,
        401
    );
    assert_eq!(get(port, "/healthz", None).status, 200);
    // The token is for scripts: it reads, /metrics included; a wrong one is refused.
    let bearer = |t: &str| {
        http(
            port,
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {t}"))],
            "",
        )
    };
    assert_eq!(bearer(TOKEN).status, 200);
    assert_eq!(bearer("Console-Tok-wrong").status, 401);
    // A wrong password, and a login form without its CSRF token.
    let form = get(port, "/login", None);
    let c = form.cookie().unwrap();
    let r = post(
        port,
        "/login",
        &c,
        &format!("csrf={}&name=ann&password=nope", form.csrf()),
    );
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/login?failed=true"),
        "{r:?}"
    );
    assert_eq!(
        post(port, "/login", &c, "name=ann&password=admin-pw-1").status,
        403
    );

    // A read-only user sees the file but cannot retry it.
    let rob = login(port, "rob", "reader-pw-1");
    let page = get(port, &format!("/files/{id}"), Some(&rob));
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("id=\"retry\""),
        "no Retry button for a reader"
    );
    let csrf = get(port, "/jobs", Some(&rob)).csrf();
    let r = post(
        port,
        &format!("/files/{id}/retry"),
        &rob,
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(d.path("var/error/orders/a.csv").exists());

    // An admin: without the CSRF token, or with another session's, refused.
    let ann = login(port, "ann", "admin-pw-1");
    let retry = format!("/files/{id}/retry");
    assert_eq!(post(port, &retry, &ann, "").status, 403);
    assert_eq!(
        post(port, &retry, &ann, &format!("csrf={csrf}")).status,
        403
    );
    assert!(d.path("var/error/orders/a.csv").exists());
    // With it: the file goes back into its source and is delivered.
    std::fs::remove_file(d.path("out/a.csv")).unwrap();
    let csrf = get(port, &format!("/files/{id}"), Some(&ann)).csrf();
    let r = post(port, &retry, &ann, &format!("csrf={csrf}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains(&format!("retry {id} [orders]")),
        "{}",
        r.body
    );
    wait_for("a.csv delivered after the retry", WAIT, || {
        std::fs::read_to_string(d.path("out/a.csv")).is_ok_and(|s| s == "new\n")
    });
    let events = d.history();
    let retried = events.iter().find(|f| f["id"] == id).unwrap();
    assert_eq!(retried["state"], "retried");
    assert!(
        retried.to_string().contains("web console (user ann)"),
        "{retried}"
    );

    // Guessing passwords: after 5 failures from this address (ann's above, then 4 for
    // rob), even the right password is refused, unchecked, for a while.
    let try_login = |pw: &str| {
        let form = get(port, "/login", None);
        let c = form.cookie().unwrap();
        let body = format!("csrf={}&name=rob&password={pw}&next=/jobs", form.csrf());
        post(port, "/login", &c, &body)
    };
    for _ in 0..4 {
        let r = try_login("guess");
        assert_eq!(r.status, 303, "{r:?}");
        assert!(
            r.header("location")
                .unwrap()
                .starts_with("/login?failed=true")
        );
    }
    let r = try_login("reader-pw-1");
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
}

#[test]
fn off_loopback_without_users_or_token_the_daemon_refuses_to_start() {
    let d = Deployment::new("console-open");
    d.job(
        "j",
        "[source]\nfolder = \"in\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    let port = free_port();
    let o = d.run(&["run", "--http", &format!("0.0.0.0:{port}")]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("without authentication"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_page_shows_a_secret_of_a_job_file() {
    let d = deployment("console-secrets");
    let port = free_port();
    let _daemon = Stop(start(&d, &format!("127.0.0.1:{port}"), port));
    let id = failed_id(&d);
    let ann = login(port, "ann", "admin-pw-1");
    let mut pages = vec![
        "/jobs".to_string(),
        "/files".into(),
        "/errors".into(),
        "/review".into(),
        format!("/files/{id}"),
        "/files?job=upload".into(),
    ];
    for job in ["orders", "upload", "mailbox", "broken"] {
        pages.push(format!("/jobs/{job}"));
    }
    let jobs = get(port, "/jobs", Some(&ann));
    for job in ["orders", "upload", "mailbox", "broken"] {
        assert!(jobs.body.contains(job), "{job} on the jobs page");
    }
    assert!(
        jobs.body.contains("imap://ferry@127.0.0.1:9/INBOX"),
        "{}",
        jobs.body
    );
    assert!(
        jobs.body.contains("broken"),
        "the broken job file is listed"
    );
    let upload = get(port, "/jobs/upload", Some(&ann));
    assert!(
        upload.body.contains("ftp://ferry@127.0.0.1:9/out"),
        "the output is shown, without its password: {}",
        upload.body
    );
    for page in &pages {
        let r = get(port, page, Some(&ann));
        assert_eq!(r.status, 200, "{page}: {r:?}");
        for secret in [ENV_SECRET, LITERAL_SECRET, TOKEN] {
            assert!(
                !r.body.contains(secret),
                "{page} shows a secret: {}",
                r.body
            );
        }
    }
}
