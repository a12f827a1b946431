//! A real WebDAV server for the WebDAV tests, on 127.0.0.1 only: `server.py` beside this
//! file (wsgidav from PyPI on cheroot; plain HTTP and HTTPS with a private CA), started
//! **once per test binary** by the first test that asks, and gone when the binary exits
//! (it watches its parent). `/open` needs no login, `/auth` basic authentication as user
//! `ferry` with [`PASSWORD`]. Tests keep apart by a folder of their own below those.
//!
//! The Python with wsgidav is the venv `scripts/test.sh` makes (`/opt/ferry-http-venv`,
//! or `FERRY_HTTP_PYTHON`); without it the tests are skipped, unless
//! FERRY_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The password of user `ferry` on `/auth`.
pub const PASSWORD: &str = "Dav-Secret-44kq-cloud";

pub struct DavServer {
    pub dir: PathBuf,
    pub http: u16,
    pub https: u16,
}

fn python() -> PathBuf {
    std::env::var_os("FERRY_HTTP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/ferry-http-venv/bin/python"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webdav_server/server.py")
}

/// The server of this test binary; `None` (skip) when the Python with wsgidav is missing
/// and tools are not required.
pub fn server() -> Option<&'static DavServer> {
    static S: OnceLock<Option<DavServer>> = OnceLock::new();
    S.get_or_init(DavServer::start).as_ref()
}

/// Starts `server.py DIR PARENT [PORT]` in the background and waits for its ports file.
fn launch(dir: &Path, port: Option<u16>, parent: u32) -> serde_json::Value {
    let mut args = vec![
        python().display().to_string(),
        script().display().to_string(),
        dir.display().to_string(),
        parent.to_string(),
    ];
    let name = match port {
        Some(p) => {
            args.push(p.to_string());
            format!("ports-{p}.json")
        }
        None => "ports.json".into(),
    };
    let log = dir.join(format!("server{}.log", port.map_or(String::new(), |p| p.to_string())));
    let started = Command::new("bash")
        .arg("-c")
        .arg(r#"log="$1"; shift; "$@" >/dev/null 2>"$log" &"#)
        .arg("bash")
        .arg(&log)
        .args(&args)
        .status()
        .unwrap();
    assert!(started.success());
    let ports = dir.join(&name);
    let end = Instant::now() + Duration::from_secs(60);
    while !ports.exists() {
        assert!(
            Instant::now() < end,
            "the WebDAV test server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serde_json::from_str(&std::fs::read_to_string(&ports).unwrap()).unwrap()
}

impl DavServer {
    fn start() -> Option<DavServer> {
        let has = Command::new(python())
            .args(["-c", "import wsgidav, cheroot"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has || !crate::util::have("openssl") {
            assert!(
                !crate::util::require_tools(),
                "{} with wsgidav (or openssl) is missing: run scripts/test.sh",
                python().display()
            );
            eprintln!("skipped: no Python with wsgidav at {}", python().display());
            return None;
        }
        let dir = std::env::temp_dir().join(format!("ferry-dav-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::write(dir.join("password"), PASSWORD).unwrap();
        crate::http_server::make_tls(&dir.join("tls"));
        let p = launch(&dir, None, std::process::id());
        let port = |k: &str| p[k].as_u64().unwrap() as u16;
        Some(DavServer {
            http: port("http"),
            https: port("https"),
            dir,
        })
    }

    /// A second server on `port` (plain HTTP) over the same folders, living as long as
    /// the process `parent` (a `sleep` the test kills to stop it): "down, then up".
    pub fn start_on(&self, port: u16, parent: u32) {
        launch(&self.dir, Some(port), parent);
    }

    /// The local path of a server path (`/open/t1/a.csv`).
    pub fn local(&self, path: &str) -> PathBuf {
        self.dir.join("root").join(path.trim_start_matches('/'))
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("tls/other-ca.pem")
    }

    /// Every finished request whose path or destination contains `tag`, in order.
    pub fn requests(&self, tag: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "end")
            .filter(|v| {
                v["path"].as_str().is_some_and(|p| p.contains(tag))
                    || v["destination"].as_str().is_some_and(|p| p.contains(tag))
            })
            .collect()
    }

    /// Makes the next `count` requests whose path contains `tag` answer `status`.
    pub fn fail(&self, tag: &str, status: u16, count: u32) {
        let f = self.dir.join("faults");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join(tag), format!("{status} {count}")).unwrap();
    }
}
