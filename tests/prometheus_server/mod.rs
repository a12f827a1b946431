//! A real Prometheus (Debian's `prometheus` package) for the metrics tests, on 127.0.0.1
//! only: started **once per test binary** by the first test that asks, with a temporary
//! configuration and storage, scraping every second the targets the tests name
//! (`file_sd_configs`: one file per test), with install/ferry-alerts.yml loaded. A shell
//! beside it stops it when the test binary exits.
//!
//! Without /usr/bin/prometheus the tests are skipped, unless FERRY_REQUIRE_TOOLS=1
//! (scripts/test.sh installs it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::util::{WAIT, wait_for};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    pub dir: PathBuf,
    pub port: u16,
}

/// The Prometheus of this test binary; `None` (skip) when it is not installed and tools
/// are not required.
pub fn server() -> Option<&'static Prometheus> {
    static S: OnceLock<Option<Prometheus>> = OnceLock::new();
    S.get_or_init(Prometheus::start).as_ref()
}

/// A port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET `url`: its status and body (a refused connection is status 0).
pub fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut r) => {
            let status = r.status().as_u16();
            (status, r.body_mut().read_to_string().unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

fn config(dir: &Path) -> String {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("install/ferry-alerts.yml");
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: ferry\n    honor_labels: true\n    scrape_interval: 1s\n    file_sd_configs:\n      - files: ['{targets}/*.json']\n        refresh_interval: 1s\n",
        rules = rules.display(),
        targets = dir.join("targets").display()
    )
}

impl Prometheus {
    fn start() -> Option<Prometheus> {
        if !Path::new(PROMETHEUS).exists() {
            assert!(
                !crate::util::require_tools(),
                "{PROMETHEUS} is missing: run scripts/test.sh (Debian package prometheus)"
            );
            eprintln!("skipped: no {PROMETHEUS}");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("ferry-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("targets")).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config(&dir)).unwrap();
        let port = free_port();
        // Runs until this test binary exits, then stops Prometheus.
        let watch = r#"( "$1" --config.file="$2/prometheus.yml" --storage.tsdb.path="$2/data" \
  --web.listen-address="127.0.0.1:$3" >"$2/prometheus.log" 2>&1 &
p=$!
while kill -0 "$4" 2>/dev/null && kill -0 "$p" 2>/dev/null; do sleep 1; done
kill "$p" 2>/dev/null; wait "$p"; rm -rf "$2" ) >/dev/null 2>&1 &"#;
        Command::new("bash")
            .arg("-c")
            .arg(watch)
            .arg("bash")
            .arg(PROMETHEUS)
            .arg(&dir)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let p = Prometheus { dir, port };
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        wait_for("Prometheus to be ready", WAIT, || get(&ready).0 == 200);
        Some(p)
    }

    /// Scrapes ferry's `/metrics` at 127.0.0.1:`port` from now on (target file `name`).
    pub fn scrape(&self, name: &str, port: u16) {
        let file = self.dir.join("targets").join(format!("{name}.json"));
        let tmp = file.with_extension("tmp");
        let json = format!(r#"[{{"targets": ["127.0.0.1:{port}"]}}]"#);
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(tmp, file).unwrap();
    }

    /// The API's answer to GET `path` (like `/api/v1/rules`), parsed.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = get(&format!("http://127.0.0.1:{}{path}", self.port));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// An instant query: each series' value.
    pub fn query(&self, promql: &str) -> Vec<f64> {
        let v = self.api(&format!("/api/v1/query?query={}", escape(promql)));
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["value"][1].as_str()?.parse().ok())
            .collect()
    }

    /// Waits until `promql` gives exactly one series, of value `want`.
    pub fn wait_value(&self, promql: &str, want: f64) {
        let mut last = Vec::new();
        let start = std::time::Instant::now();
        while start.elapsed() < WAIT {
            last = self.query(promql);
            if last == [want] {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{promql}: expected [{want}], Prometheus says {last:?}; its log:\n{}",
            std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
        );
    }
}

/// Percent-escapes a query string value.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
