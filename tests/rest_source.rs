//! REST sources (issue 17): a job takes the records of a real REST service on 127.0.0.1
//! (tests/rest_server, Python's http.server): every page by a next link, a Link header or
//! page numbers; the watermark asked for at the next poll, kept when the output fails or
//! the service answers 500; the bearer token never written anywhere; `ferry check`.

mod rest_server;
mod util;

use std::process::Output;

use rest_server::TOKEN;
use util::*;

fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A job taking `url` (with `paging` and `extra` keys in `[source]`), reading the staged
/// JSON lines and writing them again as JSON lines into `out/` (`output` adds keys there).
fn job(url: &str, paging: &str, extra: &str, output: &str) -> String {
    format!(
        r#"
[source]
http = "{url}?changed_since={{watermark}}"
{paging}
watermark = "changed_at"
{extra}

[source.headers]
Authorization = "Bearer ${{env:REST_TOKEN}}"

[input]
format = "jsonl"

[[output]]
folder = "out"
format = "jsonl"
{output}
"#
    )
}

fn run_once(d: &Deployment) -> Output {
    d.cmd(&["run", "--once"])
        .env("REST_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// The ids of every record delivered under `out/`, file by file (files sorted by name).
fn delivered(d: &Deployment) -> Vec<Vec<u64>> {
    d.files("out")
        .iter()
        .map(|f| {
            std::fs::read_to_string(d.path(&format!("out/{f}")))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let id = v["id"].to_string();
                    id.trim_matches('"').parse().unwrap()
                })
                .collect()
        })
        .collect()
}

/// No file of the deployment (journal, logs, staging, outputs, error reports), no output
/// of a command and no history holds the token.
fn assert_token_nowhere(d: &Deployment, outputs: &[&Output], except: &[&str]) {
    for o in outputs {
        assert!(!all_output(o).contains(TOKEN), "{}", all_output(o));
    }
    for f in files_below(&d.root) {
        if except.contains(&f.as_str()) {
            continue;
        }
        let bytes = std::fs::read(d.root.join(&f)).unwrap_or_default();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is in {f}"
        );
    }
    let h = serde_json::to_string(&d.history()).unwrap();
    assert!(!h.contains(TOKEN), "{h}");
}

const FIRST: &[(u64, &str)] = &[
    (1, "2026-12-01T10:00:01Z"),
    (2, "2026-12-01T10:00:02Z"),
    (3, "2026-12-01T10:00:03Z"),
    (4, "2026-12-01T10:00:04Z"),
    (5, "2026-12-01T10:00:05Z"),
];

/// Records from every page arrive; the second poll asks with the advanced watermark and
/// takes only the new and changed records.
fn all_pages_then_only_new(tag: &str, mode: &str, paging: &str, requests_per_run: usize) {
    let Some(s) = rest_server::server() else {
        return;
    };
    let d = Deployment::new(tag);
    s.set_orders(tag, FIRST);
    d.job("orders", &job(&s.url(tag, mode), paging, "", ""));
    let o1 = run_once(&d);
    assert_eq!(o1.status.code(), Some(0), "{}", all_output(&o1));
    assert_eq!(delivered(&d), [vec![1, 2, 3, 4, 5]]);
    assert_eq!(
        s.requests(tag).len(),
        requests_per_run,
        "{:#?}",
        s.requests(tag)
    );
    assert!(s.requests(tag).iter().all(|r| r["status"] == 200));

    // Order 2 changes, 6 and 7 are new: only they come, asked for from the watermark.
    let mut next = FIRST.to_vec();
    next[1].1 = "2026-12-01T11:00:00Z";
    next.push((6, "2026-12-01T11:00:01Z"));
    next.push((7, "2026-12-01T11:00:02Z"));
    s.set_orders(tag, &next);
    let o2 = run_once(&d);
    assert_eq!(o2.status.code(), Some(0), "{}", all_output(&o2));
    assert_eq!(s.first_pages_since(tag), ["", "2026-12-01T10:00:05Z"]);
    let files = delivered(&d);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&vec![2, 6, 7]), "{files:?}");

    // Nothing new: the service is asked from the newest watermark, nothing is delivered.
    let o3 = run_once(&d);
    assert_eq!(o3.status.code(), Some(0), "{}", all_output(&o3));
    assert_eq!(s.first_pages_since(tag)[2], "2026-12-01T11:00:02Z");
    assert_eq!(delivered(&d).len(), 2);

    let h = d.history();
    assert_eq!(h.len(), 2, "{h:?}");
    let events = h
        .iter()
        .map(|i| i["events"].to_string())
        .collect::<String>();
    assert!(
        events.contains("5 record(s) from http://127.0.0.1:"),
        "{events}"
    );
    assert!(
        events.contains("watermark changed_at: 2026-12-01T10:00:05Z -> 2026-12-01T11:00:02Z"),
        "{events}"
    );
    assert_token_nowhere(&d, &[&o1, &o2, &o3], &[]);
}

#[test]
fn pages_by_a_next_link_in_the_answer() {
    all_pages_then_only_new(
        "rest-next",
        "next",
        "records = \"data.items\"\nnext = \"links.next\"",
        3,
    );
}

#[test]
fn pages_by_the_link_header() {
    all_pages_then_only_new("rest-link", "link", "next = \"link\"", 3);
}

#[test]
fn pages_by_number_until_an_empty_page() {
    // Pages 1, 2, 3 hold 2 + 2 + 1 records; page 4 is empty.
    all_pages_then_only_new(
        "rest-page",
        "page",
        "records = \"items\"\npage_param = \"page\"",
        4,
    );
}

#[test]
fn a_failed_output_keeps_the_watermark_and_the_next_poll_reads_again() {
    let Some(s) = rest_server::server() else {
        return;
    };
    let tag = "rest-outfail";
    let d = Deployment::new(tag);
    s.set_orders(tag, &FIRST[..3]);
    d.job(
        "orders",
        &job(
            &s.url(tag, "next"),
            "records = \"data.items\"\nnext = \"links.next\"",
            "",
            "name = \"orders.jsonl\"\nexists = \"fail\"",
        ),
    );
    // The output's name is taken: the staged file fails into the error folder.
    d.write("out/orders.jsonl", "{\"id\": 0}\n");
    let o1 = run_once(&d);
    assert_ne!(o1.status.code(), Some(0), "{}", all_output(&o1));
    assert_eq!(delivered(&d), [vec![0]]);
    let h = d.history();
    assert!(h.iter().any(|i| i["state"] == "failed"), "{h:?}");

    // The watermark did not move: the next poll asks from the start again and delivers.
    std::fs::remove_file(d.path("out/orders.jsonl")).unwrap();
    let o2 = run_once(&d);
    assert_eq!(o2.status.code(), Some(0), "{}", all_output(&o2));
    assert_eq!(s.first_pages_since(tag), ["", ""]);
    assert_eq!(delivered(&d), [vec![1, 2, 3]]);

    // Delivered now: the watermark moved.
    let o3 = run_once(&d);
    assert_eq!(o3.status.code(), Some(0), "{}", all_output(&o3));
    assert_eq!(s.first_pages_since(tag)[2], "2026-12-01T10:00:03Z");
    let events = serde_json::to_string(&d.history()).unwrap();
    assert!(
        events.contains("watermark changed_at stays (first run)"),
        "{events}"
    );
    assert_token_nowhere(&d, &[&o1, &o2, &o3], &[]);
}

#[test]
fn a_500_fails_the_run_and_the_watermark_stays() {
    let Some(s) = rest_server::server() else {
        return;
    };
    let tag = "rest-500";
    let d = Deployment::new(tag);
    s.set_orders(tag, &FIRST[..2]);
    d.job(
        "orders",
        &job(&s.url(tag, "link"), "next = \"link\"", "", ""),
    );
    let o1 = run_once(&d);
    assert_eq!(o1.status.code(), Some(0), "{}", all_output(&o1));

    s.set_orders(tag, &FIRST[..4]);
    s.fail(tag, true);
    let o2 = run_once(&d);
    let text = all_output(&o2);
    assert_eq!(o2.status.code(), Some(1), "{text}");
    assert!(text.contains("The request failed"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("the order database is down"), "{text}");
    let status = d.run(&["status"]);
    assert!(
        all_output(&status).contains("HTTP 500"),
        "{}",
        all_output(&status)
    );
    assert_eq!(delivered(&d).len(), 1);
    assert!(
        d.files("var/staging/orders").is_empty(),
        "{:?}",
        d.files("var/staging/orders")
    );

    s.fail(tag, false);
    let o3 = run_once(&d);
    assert_eq!(o3.status.code(), Some(0), "{}", all_output(&o3));
    assert_eq!(
        s.first_pages_since(tag),
        ["", "2026-12-01T10:00:02Z", "2026-12-01T10:00:02Z"]
    );
    assert!(delivered(&d).contains(&vec![3, 4]), "{:?}", delivered(&d));
    assert_token_nowhere(&d, &[&o1, &o2, &o3, &status], &[]);
}

#[test]
fn a_service_that_never_ends_or_sends_elsewhere_fails_the_run() {
    let Some(s) = rest_server::server() else {
        return;
    };
    for (tag, mode, want) in [
        ("rest-loop", "loop", "max_pages"),
        ("rest-far", "far", "points to another server"),
    ] {
        let d = Deployment::new(tag);
        s.set_orders(tag, &FIRST[..3]);
        d.job(
            "orders",
            &job(
                &s.url(tag, mode),
                "records = \"items\"\nnext = \"next\"\nmax_pages = 3",
                "",
                "",
            ),
        );
        let o = run_once(&d);
        let text = all_output(&o);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(text.contains(want), "{text}");
        assert!(d.files("out").is_empty());
        let asked = s.requests(tag);
        assert!(asked.len() <= 3, "{asked:#?}");
        assert!(
            asked.iter().all(|r| r["headers"]["host"]
                .as_str()
                .is_some_and(|h| h.starts_with("127.0.0.1"))),
            "{asked:#?}"
        );
    }
}

#[test]
fn the_daemon_polls_and_takes_new_records() {
    let Some(s) = rest_server::server() else {
        return;
    };
    let tag = "rest-daemon";
    let d = Deployment::new(tag);
    s.set_orders(tag, &FIRST[..2]);
    let token_file = d.write("secrets/token", format!("{TOKEN}\n"));
    let text = job(
        &s.url(tag, "page"),
        "records = \"items\"\npage_param = \"page\"",
        "poll = \"300ms\"",
        "",
    )
    .replace(
        "${env:REST_TOKEN}",
        &format!("${{file:{}}}", token_file.display()),
    );
    d.job("orders", &text);
    let mut daemon = Daemon::start(&d, &[]);
    wait_for("the first records", WAIT, || delivered(&d).len() == 1);
    s.set_orders(tag, FIRST);
    wait_for("the new records", WAIT, || delivered(&d).len() == 2);
    assert_eq!(daemon.stop(), Some(0));
    let mut files = delivered(&d);
    files.sort();
    assert_eq!(files, [vec![1, 2], vec![3, 4, 5]]);
    let since = s.first_pages_since(tag);
    assert!(
        since.contains(&"2026-12-01T10:00:02Z".to_string()),
        "{since:?}"
    );
    assert_token_nowhere(&d, &[], &["secrets/token"]);
}

#[test]
fn check_names_file_line_col_and_key() {
    let d = Deployment::new("rest-check");
    d.job(
        "orders",
        "[source]\nhttp = \"https://erp.example/orders?since={watermark}\"\nwatermark = \"changed_at\"\npagesize = 50\nnext = \"links.next\"\npage_param = \"page\"\n",
    );
    d.job(
        "nowm",
        "[source]\nhttp = \"https://erp.example/orders\"\nwatermark = \"changed_at\"\n",
    );
    d.job(
        "literal",
        "[source]\nhttp = \"https://erp.example/orders\"\n[source.headers]\nAuthorization = \"Bearer abc-literal-77\"\n",
    );
    let o = d.run(&["check"]);
    let text = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("literal.toml:2:"), "{text}");
    assert!(text.contains("a literal password in the source"), "{text}");
    assert!(!text.contains("abc-literal-77"), "{text}");
    assert!(text.contains("orders.toml:4:1"), "{text}");
    assert!(text.contains("unknown key `pagesize`"), "{text}");
    assert!(text.contains("orders.toml:5:"), "{text}");
    assert!(text.contains("either by `next`"), "{text}");
    assert!(text.contains("nowm.toml:3:"), "{text}");
    assert!(text.contains("must carry `{watermark}`"), "{text}");
}

#[test]
fn the_example_job_checks_and_runs_against_a_service_of_its_shape() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/examples/rest/jobs/rest-orders.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let d = Deployment::new("rest-example");
    d.job("rest-orders", &text);
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let Some(s) = rest_server::server() else {
        return;
    };
    let tag = "rest-example";
    s.set_orders(tag, &FIRST[..3]);
    d.job(
        "rest-orders",
        &text.replace("https://erp.example.test/api/orders", &s.url(tag, "next")),
    );
    let o = d
        .cmd(&["run", "--once"])
        .env("ERP_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let files = d.files("var/out/warehouse-orders");
    assert_eq!(files.len(), 1, "{files:?}");
    let csv =
        std::fs::read_to_string(d.path(&format!("var/out/warehouse-orders/{}", files[0]))).unwrap();
    assert_eq!(
        csv,
        "order,customer,total,changed\n\
         1,Kunde 1,1.50,2026-12-01T10:00:01Z\n\
         2,Kunde 2,2.50,2026-12-01T10:00:02Z\n\
         3,Kunde 3,3.50,2026-12-01T10:00:03Z\n"
    );
    assert_eq!(s.first_pages_since(tag), ["2026-01-01T00:00:00Z"]);
    assert_token_nowhere(&d, &[&o], &[]);
}

#[test]
fn records_staged_before_a_kill_are_delivered_after_the_restart_and_not_asked_for_again() {
    let Some(s) = rest_server::server() else {
        return;
    };
    let tag = "rest-kill";
    let d = Deployment::new(tag);
    s.set_orders(tag, &FIRST[..2]);
    // The job takes files 08:00-18:00 only; the service is asked every 200 ms regardless,
    // so at 20:00 the records are staged and wait.
    d.job(
        "orders",
        &job(
            &s.url(tag, "link"),
            "next = \"link\"",
            "poll = \"200ms\"\nactive = \"08:00-18:00\"\ntimezone = \"UTC\"",
            "",
        ),
    );
    set_clock(&d, "2026-01-05T20:00:00Z");
    let mut daemon = start_clocked(&d, &[("REST_TOKEN", TOKEN)]);
    d.wait_log("REST records staged.", 1);
    // Later polls ask nothing while the staged records wait.
    d.wait_log("still being processed; no request", 2);
    assert_eq!(daemon.stop_with(libc::SIGKILL), None);
    assert!(d.files("out").is_empty());
    assert_eq!(s.requests(tag).len(), 1);

    s.set_orders(tag, &FIRST[..3]);
    set_clock(&d, "2026-01-06T09:00:00Z");
    let mut daemon = start_clocked(&d, &[("REST_TOKEN", TOKEN)]);
    wait_for("every record delivered", WAIT, || {
        delivered(&d).concat().len() >= 3
    });
    // One more poll after the last record came: nothing more.
    let n = d.logs().matches("no records; nothing to do").count();
    d.wait_log("no records; nothing to do", n + 1);
    daemon.stop();
    let mut files = delivered(&d);
    files.sort();
    assert_eq!(
        files,
        [vec![1, 2], vec![3]],
        "the staged run, then the new record"
    );
    let since = s.first_pages_since(tag);
    assert_eq!(since[..2], ["", "2026-12-01T10:00:02Z"], "{since:?}");
    assert_token_nowhere(&d, &[], &[]);
}
