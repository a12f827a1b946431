//! Two-way exchanges (issue 15, `[expect]`): answers linked to their requests, late and
//! missing answers reported, unmatched answers reported, across a restart, and the checks
//! of bad job files. Real files, the real daemon and CLI; time is a file the tests write
//! (`FERRY_TEST_CLOCK`), never real hours.

mod ftp_server;
mod util;

use serde_json::Value;
use util::*;

const T0: &str = "2026-03-02T08:00:00Z";

/// `ferry run` with the test clock, its log in var/ferry-N.log.
fn start(d: &Deployment) -> Daemon {
    let started = d.logs().matches("ferry started").count();
    let daemon = start_clocked(d, &[]);
    // The journal is made before this line: `ferry history` never races its creation.
    d.wait_log("ferry started", started + 1);
    daemon
}

/// The pair of the issue: orders out, confirmations back, by order number.
fn pair(d: &Deployment, expect: &str) {
    d.job(
        "orders",
        &format!(
            "[source]\nfolder = \"in/orders\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"partner/orders\"\nname = \"{{stem}}.xml\"\nformat = \"xml\"\nroot = \"Orders\"\nrecord = \"Line\"\n{expect}"
        ),
    );
    d.job(
        "confirmations",
        "[source]\nfolder = \"partner/confirmations\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"erp/confirmations\"\nname = \"{stem}.json\"\nformat = \"json\"\n",
    );
}

const BY_FIELD: &str = "[expect]\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"confirmations\"\n";

fn order(d: &Deployment, name: &str, no: &str) {
    d.drop_file(
        &format!("in/orders/{name}"),
        format!("OrderNo,Item,Qty\n{no},W-1,3\n{no},W-2,1\n"),
    );
}

fn confirmation(d: &Deployment, name: &str, no: &str) {
    d.drop_file(
        &format!("partner/confirmations/{name}"),
        format!("OrderNo,Status\n{no},confirmed\n"),
    );
}

/// `ferry history --json` of the file whose path ends with `name`.
fn history_of(d: &Deployment, name: &str) -> Value {
    let o = ferry(d, &["history", "--json", "--limit", "0"]);
    assert!(o.status.success(), "history: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no history of {name}: {}", stdout(&o)))
}

/// The expectations of a request, as `history --json` shows them.
fn expects(d: &Deployment, name: &str) -> Vec<Value> {
    history_of(d, name)["exchange"]["expects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn exchanges(d: &Deployment) -> Value {
    let o = ferry(d, &["status", "--json"]);
    assert!(o.status.success(), "status: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["exchanges"].clone()
}

fn history_text(d: &Deployment, job: &str) -> String {
    let o = ferry(d, &["history", "--job", job, "--limit", "0"]);
    assert!(o.status.success(), "history: {}", stderr(&o));
    stdout(&o)
}

/// Waits until the request `name` expects `n` answers (its plan is durable and recorded).
fn wait_expecting(d: &Deployment, name: &str, n: usize) {
    wait_for(&format!("{name} to expect {n} answer(s)"), WAIT, || {
        history_text(d, "orders").contains(name) && expects(d, name).len() == n
    });
}

fn wait_state(d: &Deployment, name: &str, state: &str) {
    wait_for(&format!("{name}'s answer to be {state}"), WAIT, || {
        expects(d, name).iter().all(|e| e["state"] == state)
    });
}

#[test]
fn an_answer_in_time_is_linked_to_its_request() {
    let d = Deployment::new("expect-answered");
    pair(&d, BY_FIELD);
    set_clock(&d, T0);
    let mut daemon = start(&d);
    order(&d, "PO-1001.csv", "1001");
    wait_expecting(&d, "PO-1001.csv", 1);
    let e = &expects(&d, "PO-1001.csv")[0];
    assert_eq!(e["state"], "waiting", "{e}");
    assert_eq!(e["field"], "OrderNo");
    assert_eq!(
        e["key"], "1001",
        "one expectation for the request's two lines"
    );
    assert_eq!(exchanges(&d)["jobs"][0]["waiting"], 1);

    set_clock(&d, "2026-03-02T09:30:00Z");
    confirmation(&d, "ORDRSP_1001.csv", "1001");
    wait_state(&d, "PO-1001.csv", "answered");
    let e = &expects(&d, "PO-1001.csv")[0];
    assert!(
        e["answer"]["name"] == "ORDRSP_1001.csv" && !e["answer"]["at"].as_str().unwrap().is_empty(),
        "{e}"
    );
    // The answer was processed normally by its own job.
    d.wait_exists("erp/confirmations/ORDRSP_1001.json");
    wait_for("the answer to be matched", WAIT, || {
        history_of(&d, "ORDRSP_1001.csv")["exchange"]["answer"]["state"] == "matched"
    });
    let answer = history_of(&d, "ORDRSP_1001.csv");
    assert_eq!(answer["state"], "done");
    let answers = &answer["exchange"]["answer"]["answers"];
    assert!(
        answers[0]["name"] == "PO-1001.csv" && answers[0]["key"] == "1001",
        "{answer}"
    );
    // Its deadline passing later changes nothing: it was answered.
    set_clock(&d, "2026-03-02T14:00:00Z");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = exchanges(&d);
    let j = &s["jobs"][0];
    assert!(
        j["job"] == "orders"
            && j["from"] == "confirmations"
            && j["answered"] == 1
            && j["overdue"] == 0
            && j["waiting"] == 0,
        "{s}"
    );
    let text = history_text(&d, "orders");
    assert!(
        text.contains("answer   OrderNo 1001 from confirmations: answered by #")
            && text.contains("ORDRSP_1001.csv at"),
        "{text}"
    );
    assert_eq!(daemon.stop(), Some(0));
    assert!(!d.logs().contains("overdue"), "{}", d.logs());
}

#[test]
fn a_late_answer_is_reported_overdue_then_linked_as_late() {
    let d = Deployment::new("expect-late");
    pair(&d, BY_FIELD);
    // The admin alert: the overdue notice goes into its outbox (the mail server is down,
    // so it stays there to be looked at).
    std::fs::write(
        d.path("ferry.toml"),
        "[alert]\nemail = \"mailto:admin@example.test\"\nsmtp = \"smtp://127.0.0.1:9\"\nfrom = \"ferry@example.test\"\n",
    )
    .unwrap();
    set_clock(&d, T0);
    let mut daemon = start(&d);
    order(&d, "PO-7.csv", "7");
    wait_expecting(&d, "PO-7.csv", 1);
    set_clock(&d, "2026-03-02T11:59:00Z");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(expects(&d, "PO-7.csv")[0]["state"], "waiting");

    set_clock(&d, "2026-03-02T12:01:00Z");
    d.wait_log("is overdue", 1);
    wait_state(&d, "PO-7.csv", "overdue");
    let s = exchanges(&d);
    assert_eq!(s["jobs"][0]["overdue"], 1, "{s}");
    assert_eq!(s["overdue"][0]["key"], "7", "{s}");
    let text = history_text(&d, "orders");
    assert!(text.contains("no answer after 4h"), "{text}");
    let logs = d.logs();
    assert!(
        logs.contains("ERROR") && logs.contains("No answer after 4h"),
        "{logs}"
    );
    let alerts = d.files("var/outbox/orders/alerts");
    let notice = alerts
        .iter()
        .find(|f| f.starts_with("overdue-"))
        .unwrap_or_else(|| panic!("no overdue alert in {alerts:?}"));
    let body =
        String::from_utf8(read(&d.path(&format!("var/outbox/orders/alerts/{notice}")))).unwrap();
    assert!(
        body.contains("no answer after 4h")
            && body.contains("PO-7.csv")
            && body.contains("OrderNo 7"),
        "{body}"
    );

    // Reported once, not at every pass.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(d.logs().matches("is overdue").count(), 1);

    confirmation(&d, "ORDRSP_7.csv", "7");
    wait_state(&d, "PO-7.csv", "late");
    let e = &expects(&d, "PO-7.csv")[0];
    assert_eq!(e["answer"]["name"], "ORDRSP_7.csv", "{e}");
    assert!(e["overdue_reported"].is_string(), "{e}");
    let s = exchanges(&d);
    let j = &s["jobs"][0];
    assert!(
        j["late"] == 1 && j["overdue"] == 0 && j["answered"] == 0,
        "{s}"
    );
    d.wait_log("Late answer linked", 1);
    let text = history_text(&d, "orders");
    assert!(
        text.contains("no answer after 4h (due") && text.contains("late answer #"),
        "{text}"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn an_answer_that_matches_no_request_is_reported() {
    let d = Deployment::new("expect-unmatched");
    pair(&d, BY_FIELD);
    set_clock(&d, T0);
    let mut daemon = start(&d);
    order(&d, "PO-1.csv", "1");
    wait_expecting(&d, "PO-1.csv", 1);
    confirmation(&d, "ORDRSP_9999.csv", "9999");
    // Processed normally all the same.
    d.wait_exists("erp/confirmations/ORDRSP_9999.json");
    wait_for("the answer to be done", WAIT, || {
        history_of(&d, "ORDRSP_9999.csv")["state"] == "done"
    });
    // Not called unmatched at once (its request may be a moment behind it)...
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(exchanges(&d)["unmatched"], serde_json::json!([]));
    // ...but a minute later.
    set_clock(&d, "2026-03-02T08:02:00Z");
    d.wait_log("Answer matches no request", 1);
    let s = exchanges(&d);
    assert!(
        s["unmatched"][0]["name"] == "ORDRSP_9999.csv" && s["jobs"][0]["unmatched"] == 1,
        "{s}"
    );
    let a = history_of(&d, "ORDRSP_9999.csv");
    assert_eq!(a["exchange"]["answer"]["state"], "unmatched", "{a}");
    let o = ferry(&d, &["status"]);
    assert!(
        stdout(&o).contains("UNMATCHED confirmations #") && stdout(&o).contains("ORDRSP_9999.csv"),
        "{}",
        stdout(&o)
    );
    assert!(
        history_text(&d, "confirmations").contains("matches none (unmatched)"),
        "{}",
        history_text(&d, "confirmations")
    );
    // The request it did not answer still waits.
    assert_eq!(expects(&d, "PO-1.csv")[0]["state"], "waiting");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn deadlines_survive_a_restart() {
    let d = Deployment::new("expect-restart");
    pair(&d, BY_FIELD);
    set_clock(&d, T0);
    let mut daemon = start(&d);
    order(&d, "PO-A.csv", "100");
    wait_expecting(&d, "PO-A.csv", 1);
    set_clock(&d, "2026-03-02T10:00:00Z");
    order(&d, "PO-B.csv", "200");
    wait_expecting(&d, "PO-B.csv", 1);
    assert_eq!(daemon.stop(), Some(0));

    // Down past A's deadline (12:00), not past B's (14:00).
    set_clock(&d, "2026-03-02T12:30:00Z");
    let mut daemon = start(&d);
    wait_state(&d, "PO-A.csv", "overdue");
    d.wait_log("is overdue", 1);
    assert_eq!(expects(&d, "PO-B.csv")[0]["state"], "waiting");
    // B's answer comes while ferry is stopped, and is linked once it runs again.
    assert_eq!(daemon.stop(), Some(0));
    confirmation(&d, "ORDRSP_200.csv", "200");
    let mut daemon = start(&d);
    wait_state(&d, "PO-B.csv", "answered");
    assert_eq!(expects(&d, "PO-A.csv")[0]["state"], "overdue");
    assert_eq!(daemon.stop(), Some(0));
    // Overdue is reported once, not again at the restart.
    assert_eq!(d.logs().matches("is overdue").count(), 1, "{}", d.logs());
}

#[test]
fn run_once_matches_names_per_value_and_reports_overdue_at_its_end() {
    let d = Deployment::new("expect-once");
    pair(
        &d,
        "[expect]\nanswer = \"ORDRSP_{OrderNo}.xml\"\nwithin = \"2h\"\nfrom = \"confirmations\"\n",
    );
    set_clock(&d, T0);
    d.write(
        "in/orders/batch.csv",
        "OrderNo,Item,Qty\n11,W-1,1\n12,W-2,2\n11,W-3,3\n",
    );
    // The answer for 11 is there already: requests and answers of one run meet at its end.
    d.write(
        "partner/confirmations/ORDRSP_11.xml",
        "OrderNo,Status\n11,ok\n",
    );
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = expects(&d, "batch.csv");
    let keys: Vec<&str> = e.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["ORDRSP_11.xml", "ORDRSP_12.xml"],
        "one per distinct value"
    );
    assert_eq!(e[0]["state"], "answered");
    assert_eq!(e[1]["state"], "waiting");

    // A later run after the deadline reports what is still missing, with exit code 1.
    set_clock(&d, "2026-03-02T10:30:00Z");
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("No answer after 2h"), "{}", stderr(&o));
    assert_eq!(expects(&d, "batch.csv")[1]["state"], "overdue");
    // Once: the next run has nothing new to say.
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // An answer for no request in a --once run is unmatched at its end, exit code 1.
    d.write(
        "partner/confirmations/ORDRSP_99.xml",
        "OrderNo,Status\n99,ok\n",
    );
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Answer matches no request"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_name_pattern_of_the_request_links_its_answer() {
    let d = Deployment::new("expect-stem");
    d.job(
        "out",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[[output]]\nfolder = \"partner\"\n[expect]\nanswer = \"{stem}.ack\"\nwithin = \"30m\"\nfrom = \"acks\"\n",
    );
    d.job(
        "acks",
        "[source]\nfolder = \"back\"\nsettle = \"0s\"\n[[output]]\nfolder = \"got\"\n",
    );
    set_clock(&d, T0);
    d.write("in/invoice-5.txt", "x");
    d.write("back/invoice-5.ack", "ok");
    let o = ferry(&d, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = expects(&d, "invoice-5.txt");
    assert!(
        e.len() == 1 && e[0]["key"] == "invoice-5.ack" && e[0]["state"] == "answered",
        "{e:?}"
    );
}

/// `ferry check` output for a pair whose request job has `expect`.
fn check_with(expect: &str, answers_input: bool) -> String {
    let d = Deployment::new("expect-check");
    d.job(
        "orders",
        &format!("[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\n{expect}"),
    );
    d.job(
        "confirmations",
        &format!(
            "[source]\nfolder = \"back\"\n{}[[output]]\nfolder = \"got\"\n",
            if answers_input {
                "[input]\nformat = \"csv\"\n"
            } else {
                ""
            }
        ),
    );
    let o = d.run(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    format!("{}{}", stdout(&o), stderr(&o))
}

#[test]
fn bad_expect_tables_are_reported_at_their_key() {
    let out = check_with(
        "[expect]\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"confirmation\"\n",
        true,
    );
    assert!(
        out.contains("jobs/orders.toml:10:8: expect.from: no job named `confirmation` in this jobs folder (did you mean `confirmations`?)"),
        "{out}"
    );
    let out = check_with(
        "[expect]\nanswer = \"{stem}.ack\"\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"confirmations\"\n",
        true,
    );
    assert!(
        out.contains(
            "jobs/orders.toml:8:10: expect: expected one of `answer` (a name pattern) or `field`"
        ),
        "{out}"
    );
    let out = check_with(
        "[expect]\nwithin = \"4h\"\nfrom = \"confirmations\"\n",
        true,
    );
    assert!(
        out.contains("jobs/orders.toml:7:1: expect: expected `answer = \"{stem}.ack\"`"),
        "{out}"
    );
    let out = check_with(
        "[expect]\nfield = \"OrderNo\"\nwithin = \"four hours\"\nfrom = \"confirmations\"\n",
        true,
    );
    assert!(
        out.contains("jobs/orders.toml:9:10: expect.within: "),
        "{out}"
    );
    let out = check_with(
        "[expect]\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"confirmations\"\n",
        false,
    );
    assert!(
        out.contains(
            "jobs/orders.toml:8:9: expect.field: the answers' job `confirmations` reads no records"
        ),
        "{out}"
    );
    let out = check_with(
        "[expect]\nanswer = \"{stem}.ack\"\nwithin = \"4h\"\nfrom = \"orders\"\n",
        true,
    );
    assert!(
        out.contains("jobs/orders.toml:10:8: expect.from: expected another job"),
        "{out}"
    );
    let out = check_with(
        "[expect]\nanswer = \"{stem}.ack\"\nwithin = \"4h\"\nfrom = \"confirmations\"\nwithn = \"1h\"\n",
        true,
    );
    assert!(
        out.contains(
            "jobs/orders.toml:11:1: expect.withn: unknown key `withn`; did you mean `within`?"
        ),
        "{out}"
    );
}

/// The pair over FTP: orders go to the partner's FTP folder, confirmations come
/// back from another folder of it (an FTP source), and are linked by order number.
#[test]
fn requests_and_answers_through_ftp_are_linked() {
    if !ftp_server::available(ftp_server::vsftpd_path(), "vsftpd") {
        return;
    }
    let d = Deployment::new("expect-ftp");
    let srv = ftp_server::Server::vsftpd(&d.path("srv"), None, 0);
    srv.put(
        "confirmations/ORDRSP_31.csv",
        b"OrderNo,Status\n31,confirmed\n",
    );
    srv.put("orders/.keep", b"");
    d.job(
        "orders",
        &format!(
            "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\nname = \"{{stem}}.xml\"\nformat = \"xml\"\nroot = \"Orders\"\nrecord = \"Line\"\n{BY_FIELD}",
            srv.url("ftp", "orders")
        ),
    );
    d.job(
        "confirmations",
        &format!(
            "[source]\nftp = \"{}\"\npassword = \"${{env:FTP_PW}}\"\nsettle = \"0s\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"erp\"\nformat = \"json\"\n",
            srv.url("ftp", "confirmations")
        ),
    );
    set_clock(&d, T0);
    d.write("in/PO-31.csv", "OrderNo,Item,Qty\n31,W-1,2\n");
    let o = d
        .clocked(&["run", "--once"])
        .env("FTP_PW", ftp_server::PASSWORD)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(srv.root.join("orders/PO-31.xml").exists());
    let e = expects(&d, "PO-31.csv");
    assert!(
        e.len() == 1 && e[0]["state"] == "answered" && e[0]["answer"]["name"] == "ORDRSP_31.csv",
        "{e:?}"
    );
}
