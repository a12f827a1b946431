//! HTTP outputs (issue 17) against real servers on 127.0.0.1 (tests/http_server): REST on
//! plain HTTP and TLS (a private CA, a client certificate), and a SOAP service (spyne).

mod http_server;
mod util;

use std::collections::{BTreeMap, BTreeSet};

use util::*;

const TOKEN: &str = "Tok-Secret-91zq-erp";

fn server() -> Option<&'static http_server::HttpServer> {
    http_server::server()
}

/// A job taking `in/` (CSV records when `records`) to one HTTP output.
fn job(url: &str, records: bool, extra: &str) -> String {
    let input = if records {
        "[input]\nformat = \"csv\"\n\n"
    } else {
        ""
    };
    format!(
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\npoll = \"200ms\"\n\n{input}[[output]]\nhttp = \"{url}\"\n{extra}\n"
    )
}

fn run_once(d: &Deployment) -> std::process::Output {
    d.cmd(&["run", "--once"])
        .env("ERP_TOKEN", TOKEN)
        .env("ERP_PW", "Basic-Pw-77q")
        .env("INVOICE_API_TOKEN", TOKEN)
        .env("FERRY_DELIVERY_WAIT", "20s")
        .output()
        .unwrap()
}

fn key_of(r: &serde_json::Value) -> String {
    r["headers"]["Idempotency-Key"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn distinct_keys(rs: &[serde_json::Value]) -> BTreeSet<String> {
    rs.iter().map(key_of).collect()
}

#[test]
fn body_file_and_body_record_with_a_secret_header_and_saved_responses() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-bodies");
    d.job(
        "file",
        &job(
            &format!("http://127.0.0.1:{}/ok/bodies-file", s.http),
            false,
            "response = \"var/out/responses/{stem}.json\"\n\n[output.headers]\nAuthorization = \"Bearer ${env:ERP_TOKEN}\"\nX-Partner = \"ferry-test\"",
        )
        .replace("folder = \"in\"", "folder = \"in-file\""),
    );
    d.job(
        "rec",
        &job(
            &format!("http://127.0.0.1:{}/ok/bodies-rec", s.http),
            true,
            "body = \"record\"\nmethod = \"PUT\"\nresponse = \"var/out/responses/{stem}.jsonl\"\n\n[output.headers]\nAuthorization = \"Bearer ${env:ERP_TOKEN}\"",
        )
        .replace("folder = \"in\"", "folder = \"in-rec\""),
    );
    d.write("in-file/order-1.csv", "id,qty\n1,5\n");
    d.write(
        "in-rec/lines.csv",
        "id,qty,price\n1,5,12.50\n2,1,3.00\n3,7,0.10\n",
    );
    let o = d
        .cmd(&["run", "--once"])
        .env("ERP_TOKEN", TOKEN)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // body = "file": one request, the file as it is, with its type and the headers.
    let f = s.requests("bodies-file");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["method"], "POST");
    assert_eq!(f[0]["body"], "id,qty\n1,5\n");
    assert_eq!(f[0]["headers"]["Content-Type"], "text/csv; charset=utf-8");
    assert_eq!(f[0]["headers"]["Authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(f[0]["headers"]["X-Partner"], "ferry-test");
    let key = key_of(&f[0]);
    assert_eq!(key.len(), 36, "a UUID-shaped key: {key}");
    let saved = std::fs::read_to_string(d.path("var/out/responses/order-1.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["key"], key.as_str(), "the answer saved as it came");

    // body = "record": one PUT per record, JSON with numbers as written, distinct keys.
    let r = s.requests("bodies-rec");
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(r.iter().all(|x| x["method"] == "PUT"));
    let bodies: Vec<serde_json::Value> = r
        .iter()
        .map(|x| serde_json::from_str(x["body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies[0]["id"], "1", "CSV values are text");
    assert!(r[0]["body"].as_str().unwrap().contains("12.50"), "{r:#?}");
    assert_eq!(r[0]["headers"]["Content-Type"], "application/json");
    assert_eq!(distinct_keys(&r).len(), 3);
    let lines = std::fs::read_to_string(d.path("var/out/responses/lines.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["record"], i as u64 + 1);
        assert_eq!(l["status"], 201);
        assert_eq!(l["response"]["key"], l["idempotency_key"]);
        assert_eq!(l["idempotency_key"].as_str(), Some(key_of(&r[i]).as_str()));
    }
    // Both originals archived, the outboxes empty.
    assert_eq!(d.files("in-file").len() + d.files("in-rec").len(), 0);
    assert_eq!(d.files("var/outbox"), Vec::<String>::new());

    // The token is in no log line, journal row, report or history.
    let err = stderr(&o);
    assert!(err.contains("Delivered"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains("91zq"), "{err}");
    let hist = d.run(&["history", "--json", "--limit", "0"]);
    assert!(!stdout(&hist).contains(TOKEN));
    for f in files_below(&d.path("var")) {
        if f.starts_with("out/") {
            continue;
        }
        let bytes = read(&d.path(&format!("var/{f}")));
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "the token is in var/{f}"
        );
    }
}

#[test]
fn basic_auth_and_tls_with_a_private_ca_and_a_client_certificate() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-tls");
    let ca = s.ca().display().to_string();
    let jobs = [
        (
            "auth",
            format!("https://localhost:{}/auth/tls-auth", s.https),
            format!("user = \"ferry\"\npassword = \"${{env:ERP_PW}}\"\nca_file = \"{ca}\""),
        ),
        (
            "mtls",
            format!("https://127.0.0.1:{}/ok/tls-mtls", s.mtls),
            format!(
                "ca_file = \"{ca}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
                s.tls("client.pem").display(),
                s.tls("client-key.pem").display()
            ),
        ),
        (
            "nocert",
            format!("https://127.0.0.1:{}/ok/tls-nocert", s.mtls),
            format!("ca_file = \"{ca}\""),
        ),
        (
            "untrusted",
            format!("https://127.0.0.1:{}/ok/tls-untrusted", s.https),
            format!("ca_file = \"{}\"", s.tls("other-ca.pem").display()),
        ),
        (
            "badpw",
            format!("https://127.0.0.1:{}/auth/tls-badpw", s.https),
            format!("user = \"ferry\"\npassword = \"${{env:ERP_TOKEN}}\"\nca_file = \"{ca}\""),
        ),
    ];
    for (name, url, extra) in &jobs {
        d.job(
            name,
            &job(url, false, extra).replace("folder = \"in\"", &format!("folder = \"in/{name}\"")),
        );
        d.write(&format!("in/{name}/{name}.txt"), format!("{name}\n"));
    }
    let o = d
        .cmd(&["run", "--once"])
        .env("ERP_TOKEN", TOKEN)
        .env("ERP_PW", "Basic-Pw-77q")
        .env("FERRY_DELIVERY_WAIT", "3s")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(s.accepted("tls-auth").len(), 1, "{err}");
    let m = s.accepted("tls-mtls");
    assert_eq!(m.len(), 1, "{err}");
    assert_eq!(m[0]["client_cert"], true);
    // Without the client certificate the handshake fails; with a CA that did not sign
    // the server's certificate, ferry refuses it: neither request reaches the service,
    // and the files wait in their outboxes (retried, as a connection failure is).
    assert!(s.requests("tls-nocert").is_empty());
    assert!(s.requests("tls-untrusted").is_empty());
    assert_eq!(d.files("var/outbox/nocert/1").len(), 1, "{err}");
    assert_eq!(d.files("var/outbox/untrusted/1").len(), 1, "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // A wrong password: 401 fails the file into the error folder, and the basic
    // credentials are in no text ferry wrote.
    assert_eq!(s.requests("tls-badpw").len(), 1);
    let report = std::fs::read_to_string(d.path("var/error/badpw/1-badpw.txt.error.txt"))
        .unwrap_or_else(|_| panic!("{:?}\n{err}", d.files("var/error")));
    assert!(report.contains("HTTP 401"), "{report}");
    assert!(!err.contains(TOKEN) && !report.contains(TOKEN));
}

#[test]
fn transient_answers_are_retried_with_the_same_key_and_delivered_once() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-retry");
    d.job(
        "busy",
        &job(
            &format!("http://127.0.0.1:{}/fail/1/503/retry-503", s.http),
            false,
            "",
        )
        .replace("folder = \"in\"", "folder = \"in/busy\""),
    );
    d.job(
        "limited",
        &job(
            &format!("http://127.0.0.1:{}/fail/1/429/retry-429", s.http),
            true,
            "body = \"record\"\nidempotency_header = \"X-Request-Key\"",
        )
        .replace("folder = \"in\"", "folder = \"in/limited\""),
    );
    d.write("in/busy/a.xml", "<a/>");
    d.write("in/limited/r.csv", "n\n1\n2\n");
    let o = run_once(&d);
    let err = stderr(&o);
    // 503 then 201: two requests, one key, delivered once.
    let busy = s.requests("retry-503");
    assert_eq!(busy.len(), 2, "{err}");
    assert_eq!(busy[0]["status"], 503);
    assert_eq!(busy[1]["status"], 201);
    assert_eq!(key_of(&busy[0]), key_of(&busy[1]));
    // 429 with Retry-After: 2 for each record's first try: the same key again, and not
    // before the two seconds asked for.
    let lim = s.requests("retry-429");
    let key = |r: &serde_json::Value| r["headers"]["X-Request-Key"].as_str().unwrap().to_string();
    let mut by_key: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in &lim {
        by_key.entry(key(r)).or_default().push(r);
    }
    assert_eq!(by_key.len(), 2, "{lim:#?}\n{err}");
    for tries in by_key.values() {
        assert_eq!(tries.len(), 2, "{tries:#?}");
        assert_eq!(tries[0]["status"], 429);
        assert_eq!(tries[1]["status"], 201);
        assert_eq!(tries[0]["body"], tries[1]["body"]);
        let gap = tries[1]["t"].as_f64().unwrap() - tries[0]["t"].as_f64().unwrap();
        assert!(gap >= 1.9, "Retry-After: 2 honoured ({gap} s)");
    }
    assert_eq!(d.files("var/outbox"), Vec::<String>::new());
}

#[test]
fn a_refused_file_goes_to_the_error_folder_with_the_status_and_the_answer() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-400");
    d.job(
        "bad",
        &job(
            &format!("http://127.0.0.1:{}/bad/refused-400", s.http),
            false,
            "",
        ),
    );
    d.write("in/order.json", "{\"id\": 1}");
    let o = run_once(&d);
    let err = stderr(&o);
    assert_eq!(s.requests("refused-400").len(), 1, "sent once: {err}");
    assert_eq!(
        d.files("var/error/bad"),
        vec!["1-order.json", "1-order.json.error.txt"]
    );
    let report = std::fs::read_to_string(d.path("var/error/bad/1-order.json.error.txt")).unwrap();
    assert!(report.contains("HTTP 400 Bad Request"), "{report}");
    assert!(
        report.contains("invalid order: the field customer is missing"),
        "{report}"
    );
    assert!(
        report.len() < 1000,
        "only the start of the answer: {report}"
    );
    assert_eq!(
        read(&d.path("var/error/bad/1-order.json")),
        b"{\"id\": 1}".to_vec()
    );
}

/// The value of `series` (`name{labels}` as written) in the daemon's `/metrics`.
fn scraped(port: u16, series: &str) -> Option<f64> {
    let mut r = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?;
    let body = r.body_mut().read_to_string().ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn failed_sends_are_counted_per_output_in_the_metrics() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-metrics");
    let bad = format!("http://127.0.0.1:{}/bad/metrics-400", s.http);
    let busy = format!("http://127.0.0.1:{}/fail/1/503/metrics-503", s.http);
    d.job(
        "bad",
        &job(&bad, false, "").replace("folder = \"in\"", "folder = \"in/bad\""),
    );
    // Two outputs: the first is refused for good, the second answers 503 once.
    d.job(
        "two",
        &(job(&bad, false, "") + &format!("\n[[output]]\nhttp = \"{busy}\"\n"))
            .replace("folder = \"in\"", "folder = \"in/two\""),
    );
    d.write("in/bad/a.json", "{}");
    d.write("in/two/b.json", "{}");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut daemon = Daemon::start(&d, &["--http", &format!("127.0.0.1:{port}")]);
    let series = |job: &str, out: u32| {
        format!("ferry_output_failed_total{{job=\"{job}\",output=\"{out}\"}}")
    };
    wait_for("the failures counted", WAIT, || {
        scraped(port, &series("bad", 1)) == Some(1.0)
            && scraped(port, &series("two", 1)) == Some(1.0)
            && scraped(port, &series("two", 2)) == Some(1.0)
            && s.accepted("metrics-503").len() == 1
    });
    // Delivered on the second try: counted once, and no more failures since.
    assert_eq!(scraped(port, &series("two", 2)), Some(1.0));
    assert_eq!(
        scraped(port, "ferry_output_files_total{job=\"two\",output=\"2\"}"),
        Some(1.0)
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn on_error_skip_sets_a_refused_record_aside_and_sends_the_others() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-skip");
    d.job(
        "skip",
        &job(
            &format!("http://127.0.0.1:{}/reject/skip-rec", s.http),
            true,
            "body = \"record\"\non_error = \"skip\"",
        ),
    );
    d.write("in/items.csv", "sku,qty\nA1,1\nREJECT,2\nC3,3\n");
    d.job(
        "fail",
        &job(
            &format!("http://127.0.0.1:{}/reject/fail-rec", s.http),
            true,
            "body = \"record\"",
        )
        .replace("folder = \"in\"", "folder = \"in2\""),
    );
    d.write("in2/items.csv", "sku,qty\nA1,1\nREJECT,2\nC3,3\n");
    let o = run_once(&d);
    let err = stderr(&o);
    let sent = s.requests("skip-rec");
    assert_eq!(sent.len(), 3, "{err}");
    assert_eq!(s.accepted("skip-rec").len(), 2);
    let refused = std::fs::read_to_string(d.path("var/error/skip/items.refused.jsonl"))
        .unwrap_or_else(|_| panic!("{:?}\n{err}", d.files("var/error")));
    let lines: Vec<serde_json::Value> = refused
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{refused}");
    assert_eq!(lines[0]["record"], 2);
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[0]["request"]["sku"], "REJECT");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("REJECT is not a product"),
        "{refused}"
    );
    assert_eq!(d.files("var/outbox/skip"), Vec::<String>::new());
    // Without `skip`, the refusal stops the file: the record before it stays sent, the
    // one after it is not sent, and the report says so.
    assert_eq!(s.requests("fail-rec").len(), 2, "{err}");
    let report = std::fs::read_to_string(d.path("var/error/fail/1-items.jsonl.error.txt")).unwrap();
    assert!(report.contains("record 2: HTTP 400"), "{report}");
    assert!(
        report.contains("1 records before it were acknowledged"),
        "{report}"
    );
}

/// SIGKILL in the middle of a file of 1,000 record requests: after the restart only the
/// records not acknowledged yet are sent, with the keys they had; the receiver sees each
/// record acknowledged under one key.
#[test]
fn a_kill_mid_file_sends_only_the_unacknowledged_records_again() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-kill");
    let n = 1000;
    d.job(
        "k",
        &job(
            &format!("http://127.0.0.1:{}/slow/5/kill-mid", s.http),
            true,
            "body = \"record\"",
        ),
    );
    let mut csv = String::from("n,text\n");
    for i in 1..=n {
        csv.push_str(&format!("{i},record number {i}\n"));
    }
    d.write("in/batch.csv", csv);
    let mut first = Daemon::start(&d, &[]);
    wait_for("100 requests", WAIT, || s.requests("kill-mid").len() >= 100);
    first.stop_with(libc::SIGKILL);
    let before = s.requests("kill-mid").len();
    assert!(before < n, "killed before the end ({before})");
    let mut second = Daemon::start(&d, &[]);
    wait_for("every record acknowledged", WAIT, || {
        distinct_keys(&s.accepted("kill-mid")).len() >= n
    });
    second.stop();
    let all = s.requests("kill-mid");
    let keys = distinct_keys(&all);
    assert_eq!(keys.len(), n, "one key per record");
    let mut bodies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &all {
        bodies
            .entry(key_of(r))
            .or_default()
            .insert(r["body"].as_str().unwrap().to_string());
    }
    assert!(
        bodies.values().all(|b| b.len() == 1),
        "a key names one record"
    );
    let again = all.len() - n;
    assert!(
        again < 20,
        "only the requests whose acknowledgement was not journaled are sent again ({again} of the {before} sent before the kill)"
    );
    wait_for("the outbox emptied", WAIT, || {
        d.files("var/outbox").is_empty()
    });
}

#[test]
fn soap_envelopes_with_soap_action_and_faults_with_their_fault_string() {
    let Some(s) = server() else { return };
    let d = Deployment::new("http-soap");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/examples/http/jobs/soap-invoices.toml"),
    )
    .unwrap();
    // The shipped example, pointed at the local service, in both error modes.
    let url = format!("http://127.0.0.1:{}/soap-skip", s.soap);
    let skip = example
        .replace("https://invoices.example.test/InvoiceService", &url)
        .replace("samples/http-invoices", "in");
    assert_ne!(skip, example, "the example's URL and folder were replaced");
    d.job("soap", &skip);
    let fail = skip
        .replace("/soap-skip", "/soap-fail")
        .replace("on_error = \"skip\"", "on_error = \"fail\"")
        .replace("folder = \"in\"", "folder = \"in2\"");
    d.job("soapfail", &fail);
    let csv = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/examples/http/samples/http-invoices/invoices.csv"),
    )
    .unwrap();
    d.write("in/invoices.csv", &csv);
    d.write("in2/invoices.csv", &csv);
    let o = run_once(&d);
    let err = stderr(&o);
    let reqs = s.requests("soap-skip");
    assert_eq!(reqs.len(), 3, "{err}");
    for r in &reqs {
        assert_eq!(
            r["headers"]["SOAPAction"],
            "\"urn:example:invoices/SubmitInvoice\""
        );
        assert!(
            r["headers"]["Content-Type"]
                .as_str()
                .unwrap()
                .starts_with("text/xml"),
            "{r}"
        );
        assert!(r["body"].as_str().unwrap().contains("<inv:SubmitInvoice>"));
    }
    assert!(
        reqs[0]["answer"]
            .as_str()
            .unwrap()
            .contains("accepted INV-1001 for 120.50"),
        "{reqs:#?}"
    );
    assert_eq!(reqs[1]["status"], 500);
    // The fault, set aside with its string.
    let refused = std::fs::read_to_string(d.path("var/error/soap/invoices.refused.jsonl"))
        .unwrap_or_else(|_| panic!("{:?}\n{err}", d.files("var/error")));
    assert!(
        refused.contains("SOAP fault: soap11env:Client.UnknownCustomer: unknown customer nobody for invoice INV-1002"),
        "{refused}"
    );
    // The answers saved, one line per acknowledged invoice.
    let responses =
        std::fs::read_to_string(d.path("var/out/responses/soap/invoices.jsonl")).unwrap();
    assert_eq!(responses.lines().count(), 2, "{responses}");
    assert!(responses.contains("accepted INV-1003"), "{responses}");
    // With on_error = "fail" the fault fails the file, reported with its fault string.
    assert_eq!(s.requests("soap-fail").len(), 2, "{err}");
    let report = std::fs::read_to_string(d.path("var/error/soapfail/1-invoices.jsonl.error.txt"))
        .unwrap_or_else(|_| panic!("{:?}\n{err}", d.files("var/error")));
    assert!(
        report.contains("SOAP fault") && report.contains("unknown customer nobody"),
        "{report}"
    );
}

#[test]
fn check_loads_the_example_and_reports_mistakes_at_their_place() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/http");
    let o = std::process::Command::new(BIN)
        .args(["check", "--jobs"])
        .arg(example.join("jobs"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let d = Deployment::new("http-check");
    d.job(
        "bad",
        "[source]\nfolder = \"in\"\n\n[[output]]\nhttp = \"https://u:Pw-In-Url-7@h/x\"\nmethod = \"GET\"\n",
    );
    d.job(
        "rec",
        "[source]\nfolder = \"in\"\n\n[[output]]\nhttp = \"https://h/x\"\nbody = \"record\"\n",
    );
    d.job(
        "lit",
        "[source]\nfolder = \"in\"\n\n[[output]]\nhttp = \"https://h/x\"\n\n[output.headers]\nAuthorization = \"Bearer Lit-Token-55x\"\n",
    );
    d.job(
        "ftpkeys",
        "[source]\nfolder = \"in\"\n\n[[output]]\nhttp = \"https://h/x\"\ntls_verify = false\npassword = \"${env:X}\"\n",
    );
    let o = d.run(&["check"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("ftpkeys.toml:6:14: output[1].tls_verify: TLS is always verified"),
        "{err}"
    );
    assert!(
        err.contains("ftpkeys.toml:7:12: output[1].password: `password` is basic authentication's"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:5:8: output[1].http: credentials do not go in the URL"),
        "{err}"
    );
    assert!(err.contains("bad.toml:6:10: output[1].method"), "{err}");
    assert!(
        err.contains("output[1].body: `body = \"record\"` sends one request per record"),
        "{err}"
    );
    assert!(!err.contains("Pw-In-Url-7"), "{err}");
    assert!(
        err.contains("lit.toml") && err.contains("literal password"),
        "{err}"
    );
    assert!(!err.contains("Lit-Token-55x"), "{err}");
}
