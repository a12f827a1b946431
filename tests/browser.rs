//! The web console in a real browser (issue 18): Debian's headless Chromium driven through
//! chromedriver (started once per test binary on 127.0.0.1, gone when the binary exits)
//! with fantoccini, against a real `ferry run --http`: search the audit log, open a file's
//! history, retry a failed file and see it delivered, approve a pending file. Screenshots
//! of the pages are saved under target/console-screenshots/ (docs/console.md shows them).
//!
//! Without chromium and chromedriver the test is skipped, unless FERRY_REQUIRE_TOOLS=1
//! (scripts/test.sh installs them).

mod util;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use util::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver's port: started once by the first test that asks, by a shell that kills
/// it when this test binary is gone. `None` (skip) when it is not installed.
// The watching shell outlives the tests on purpose (it ends chromedriver after them).
#[allow(clippy::zombie_processes)]
fn chromedriver() -> Option<u16> {
    static PORT: OnceLock<Option<u16>> = OnceLock::new();
    *PORT.get_or_init(|| {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists()
        {
            assert!(
                !require_tools(),
                "chromium and chromium-driver are missing: run scripts/test.sh"
            );
            eprintln!("skipped: no {CHROMEDRIVER} or {CHROMIUM}");
            return None;
        }
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("ferry-chromedriver-{}.log", std::process::id()));
        let watch = r#"chromedriver_bin=$1; port=$2; parent=$3; log=$4
"$chromedriver_bin" --port="$port" --allowed-ips=127.0.0.1 >"$log" 2>&1 &
c=$!
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill "$c""#;
        Command::new("sh")
            .args([
                "-c",
                watch,
                "sh",
                CHROMEDRIVER,
                &port.to_string(),
                &std::process::id().to_string(),
            ])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("chromedriver to listen", WAIT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(port)
    })
}

/// A new headless Chromium session with a fresh profile.
async fn browser(driver: u16, profile: &std::path::Path) -> Client {
    // fantoccini's rustls connector (unused over plain HTTP) needs a crypto provider; ferry
    // builds rustls with ring only.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": CHROMIUM, "args": args }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver}"))
        .await
        .expect("a chromium session")
}

/// Saves a screenshot of the page as target/console-screenshots/NAME.png.
async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

const PRICES_JOB: &str = r#"[source]
folder = "in-prices"
settle = "0s"
poll = "100ms"

[input]
format = "csv"

[[output]]
folder = "out-prices"
format = "csv"

[review]
key = "ArticleNo"
expires = "1h"
"#;

fn deployment() -> Deployment {
    let d = Deployment::new("browser");
    d.job(
        "orders",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"100ms\"\n\n[[output]]\nfolder = \"out\"\n",
    );
    d.job("prices", PRICES_JOB);
    d.write("out/a.csv", "old\n");
    d.write("in/a.csv", "new\n");
    for i in 1..=12 {
        d.write(&format!("in/order-{i:02}.csv"), format!("order {i}\n"));
    }
    d.write(
        "in-prices/prices.csv",
        "ArticleNo,Price\nA-1,10.00\nA-2,12.50\nA-3,7.25\n",
    );
    d
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(d: &Deployment, port: u16) -> Stop {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let log = std::fs::File::create(d.path("var/ferry-browser.log")).unwrap();
    let child = d
        .cmd(&["run", "--http", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    wait_for("the console to answer", WAIT, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Stop(child)
}

/// Waits until the page's text holds `what`, reloading it.
async fn wait_text(c: &Client, url: &str, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        c.goto(url).await.unwrap();
        let text = c
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(what) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never showed {what:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the current page's address holds `what` (a form's submission or a
/// button's POST answered): an element of the page before could otherwise be found.
async fn wait_url(c: &Client, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let url = c.current_url().await.unwrap();
        if url.as_str().contains(what) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser never went to an address with {what:?}: at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the current page's `main` holds `what`, without reloading (a page still
/// being replaced is read again).
async fn wait_main(c: &Client, what: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = match c.find(Locator::Css("main")).await {
            Ok(m) => m.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(what) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never showed {what:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn search_open_retry_and_approve_in_a_real_browser() {
    let Some(driver) = chromedriver() else { return };
    let d = deployment();
    let port = free_port();
    let _daemon = start(&d, port);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the files to be taken", WAIT, || {
        d.files("out").len() == 13 && d.path("var/error/orders/a.csv").exists()
    });
    let c = browser(driver, &d.path("chromium-profile")).await;

    // The jobs page, and the review waiting.
    wait_text(&c, &format!("{base}/review"), "prices.csv").await;
    wait_text(&c, &format!("{base}/jobs"), "orders").await;
    screenshot(&c, "jobs").await;

    // Search the audit log by file name, then open the file's history.
    c.goto(&format!("{base}/files")).await.unwrap();
    screenshot(&c, "files").await;
    let form = c.form(Locator::Css("form.search")).await.unwrap();
    form.set_by_name("name", "order-07").await.unwrap();
    form.submit_with(Locator::Css("button.primary"))
        .await
        .unwrap();
    wait_url(&c, "name=order-07").await;
    let results = c
        .wait()
        .for_element(Locator::Css("#results"))
        .await
        .unwrap();
    let rows = results.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "{}", results.text().await.unwrap());
    c.find(Locator::LinkText("order-07.csv"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let history = c
        .wait()
        .for_element(Locator::Css("ol.timeline"))
        .await
        .unwrap();
    assert!(history.text().await.unwrap().contains("done"));
    let main = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(main.contains("out/order-07.csv"), "{main}");
    screenshot(&c, "file").await;
    c.goto(&format!("{base}/jobs/orders")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("svg.chart"))
        .await
        .unwrap();
    screenshot(&c, "job").await;

    // Retry the failed file from the Errors page, once its name is free: delivered.
    c.goto(&format!("{base}/errors")).await.unwrap();
    screenshot(&c, "errors").await;
    std::fs::remove_file(d.path("out/a.csv")).unwrap();
    c.find(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "/retry").await;
    wait_main(&c, "Retry file").await;
    wait_for("a.csv delivered", WAIT, || {
        std::fs::read_to_string(d.path("out/a.csv")).is_ok_and(|s| s == "new\n")
    });
    c.goto(&format!("{base}/files?name=a.csv&status=done"))
        .await
        .unwrap();
    let found = c
        .wait()
        .for_element(Locator::Css("#results"))
        .await
        .unwrap();
    assert!(found.text().await.unwrap().contains("a.csv"));

    // Approve the pending file: its outputs are delivered, the decision recorded.
    c.goto(&format!("{base}/review")).await.unwrap();
    let page = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("+3 added"), "{page}");
    screenshot(&c, "review").await;
    c.find(Locator::Css("form[action$='/approve'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("prices.csv delivered once approved", WAIT, || {
        d.path("out-prices/prices.csv").exists()
    });
    let h = d.history();
    let prices = h.iter().find(|f| f["job"] == "prices").unwrap();
    assert!(prices.to_string().contains("local (console)"), "{prices}");
    c.close().await.unwrap();
}
