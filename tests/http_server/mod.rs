//! Real HTTP servers for the HTTP output tests, on 127.0.0.1 only: `server.py` beside this
//! file (a REST endpoint on Python's http.server, plain, TLS, and TLS with a client
//! certificate required; a SOAP service built with spyne from PyPI), started **once per
//! test binary** by the first test that asks, and gone when the binary exits (it watches
//! its parent). Tests tell their requests apart by a tag in the URL path.
//!
//! The Python with spyne is the venv `scripts/test.sh` makes (`/opt/ferry-http-venv`, or
//! `FERRY_HTTP_PYTHON`); without it the tests are skipped, unless FERRY_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct HttpServer {
    pub dir: PathBuf,
    pub http: u16,
    pub https: u16,
    pub mtls: u16,
    pub soap: u16,
}

fn python() -> PathBuf {
    std::env::var_os("FERRY_HTTP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/ferry-http-venv/bin/python"))
}

/// The servers of this test binary; `None` (skip) when the Python with spyne is missing
/// and tools are not required.
pub fn server() -> Option<&'static HttpServer> {
    static S: OnceLock<Option<HttpServer>> = OnceLock::new();
    S.get_or_init(HttpServer::start).as_ref()
}

/// Makes a CA, a server certificate for localhost/127.0.0.1, a client certificate, and a
/// second CA that signed nothing here (`other-ca.pem`), with openssl.
pub fn make_tls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let sh = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=ferry test CA" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 3650 -subj "/CN=someone else" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile leaf.ext -out cert.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr -subj /CN=ferry-client 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out client.pem 2>/dev/null
"#;
    let ok = Command::new("bash")
        .arg("-c")
        .arg(sh)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl failed");
}

impl HttpServer {
    fn start() -> Option<HttpServer> {
        let py = python();
        let has_spyne = Command::new(&py)
            .args(["-c", "import spyne, lxml"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_spyne || !crate::util::have("openssl") {
            assert!(
                !crate::util::require_tools(),
                "{} with spyne (or openssl) is missing: run scripts/test.sh",
                py.display()
            );
            eprintln!("skipped: no Python with spyne at {}", py.display());
            return None;
        }
        let dir = std::env::temp_dir().join(format!("ferry-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        make_tls(&dir.join("tls"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_server/server.py");
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
                "the HTTP test servers did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let p: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ports).unwrap()).unwrap();
        let port = |k: &str| p[k].as_u64().unwrap() as u16;
        Some(HttpServer {
            http: port("http"),
            https: port("https"),
            mtls: port("mtls"),
            soap: port("soap"),
            dir,
        })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    pub fn tls(&self, name: &str) -> PathBuf {
        self.dir.join("tls").join(name)
    }

    /// Every request logged whose path contains `tag`, in arrival order.
    pub fn requests(&self, tag: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["path"].as_str().is_some_and(|p| p.contains(tag)))
            .collect()
    }

    /// The requests of `tag` the server acknowledged (2xx).
    pub fn accepted(&self, tag: &str) -> Vec<serde_json::Value> {
        self.requests(tag)
            .into_iter()
            .filter(|v| (200..300).contains(&v["status"].as_u64().unwrap_or(0)))
            .collect()
    }
}
