//! A real REST service for the REST source tests, on 127.0.0.1 only: `server.py` beside
//! this file (Python's standard library), started **once per test binary** by the first
//! test that asks, and gone when the binary exits (it watches its parent). Tests tell
//! their orders and requests apart by a tag, the first step of the path.
//!
//! The Python is the venv `scripts/test.sh` makes (`/opt/ferry-http-venv`, or
//! `FERRY_HTTP_PYTHON`), else `python3`: only the standard library is needed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bearer token the service requires (`Authorization: Bearer ...`).
pub const TOKEN: &str = "rest-secret-8Hq2";

pub struct RestServer {
    pub dir: PathBuf,
    pub port: u16,
}

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("FERRY_HTTP_PYTHON").map(PathBuf::from),
        Some(PathBuf::from("/opt/ferry-http-venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import http.server"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The service of this test binary; `None` (skip) without a Python, unless tools are
/// required.
pub fn server() -> Option<&'static RestServer> {
    static S: OnceLock<Option<RestServer>> = OnceLock::new();
    S.get_or_init(RestServer::start).as_ref()
}

impl RestServer {
    fn start() -> Option<RestServer> {
        let Some(py) = python() else {
            assert!(
                !crate::util::require_tools(),
                "no Python 3 for the REST test service"
            );
            eprintln!("skipped: no Python 3");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("ferry-rest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rest_server/server.py");
        // Started in the background by a shell that ends at once: the server outlives it
        // and exits when this test binary does (it watches the given process id).
        let started = Command::new("bash")
            .arg("-c")
            .arg(r#""$1" "$2" "$3" "$4" >/dev/null 2>"$3/server.log" &"#)
            .arg("bash")
            .arg(&py)
            .arg(script)
            .arg(&dir)
            .arg(std::process::id().to_string())
            .status()
            .unwrap();
        assert!(started.success());
        let ports = dir.join("ports.json");
        let end = Instant::now() + Duration::from_secs(60);
        while !ports.exists() {
            assert!(
                Instant::now() < end,
                "the REST test service did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let p: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ports).unwrap()).unwrap();
        Some(RestServer {
            port: p["http"].as_u64().unwrap() as u16,
            dir,
        })
    }

    /// `http://127.0.0.1:PORT/TAG/MODE/orders`.
    pub fn url(&self, tag: &str, mode: &str) -> String {
        format!("http://127.0.0.1:{}/{tag}/{mode}/orders", self.port)
    }

    /// Sets the orders of `tag`: `(id, changed_at)` (written whole, by rename).
    pub fn set_orders(&self, tag: &str, orders: &[(u64, &str)]) {
        let list: Vec<serde_json::Value> = orders
            .iter()
            .map(|(id, at)| {
                serde_json::json!({
                    "id": id,
                    "changed_at": at,
                    "customer": {"name": format!("Kunde {id}")},
                    "total": format!("{id}.50"),
                })
            })
            .collect();
        let tmp = self.dir.join(format!("orders/.{tag}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&list).unwrap()).unwrap();
        std::fs::rename(&tmp, self.dir.join(format!("orders/{tag}.json"))).unwrap();
    }

    /// While on, every request of `tag` is answered 500.
    pub fn fail(&self, tag: &str, on: bool) {
        let flag = self.dir.join(format!("fail-{tag}"));
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Every request of `tag`, in arrival order.
    pub fn requests(&self, tag: &str) -> Vec<serde_json::Value> {
        let prefix = format!("/{tag}/");
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["path"].as_str().is_some_and(|p| p.starts_with(&prefix)))
            .collect()
    }

    /// The `changed_since` of each request of `tag` that asked for a first page.
    pub fn first_pages_since(&self, tag: &str) -> Vec<String> {
        self.requests(tag)
            .iter()
            .filter(|r| r["query"].get("cursor").is_none())
            .filter(|r| r["query"].get("page").is_none_or(|p| p == "1"))
            .map(|r| {
                r["query"]["changed_since"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}
