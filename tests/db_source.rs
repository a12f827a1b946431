//! Database sources (issue 16, source half): a job's query against real PostgreSQL and
//! MariaDB servers (tests/db_server) and SQLite files; the watermark across failed runs and
//! restarts; values faithfully as text; bound parameters only; outages; TLS; secrets.

mod db_server;
mod util;

use std::process::Output;

use util::*;

/// Every data line of every CSV under `rel` (headers left out), sorted.
fn delivered_rows(d: &Deployment, rel: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for f in d.files(rel) {
        let text = std::fs::read_to_string(d.path(&format!("{rel}/{f}"))).unwrap();
        rows.extend(text.lines().skip(1).map(str::to_string));
    }
    rows.sort();
    rows
}

fn run_once(d: &Deployment) -> Output {
    d.run(&["run", "--once"])
}

fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A SQLite database at `rel` with a table `orders (id, name, amount, changed_at)`.
fn sqlite(d: &Deployment, rel: &str, rows: &[(i64, &str, &str, &str)]) -> std::path::PathBuf {
    let p = d.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, changed_at TEXT)",
    )
    .unwrap();
    for (id, name, amount, at) in rows {
        c.execute(
            "INSERT OR REPLACE INTO orders VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, name, amount, at],
        )
        .unwrap();
    }
    p
}

const SQLITE_JOB: &str = r#"
[source]
database = "sqlite://db/erp.sqlite"
query = "SELECT id, name, amount, changed_at FROM orders WHERE changed_at > :since ORDER BY changed_at"
watermark = "changed_at"

[[output]]
folder = "out"
name = "{name}"
"#;

#[test]
fn sqlite_rows_are_delivered_once_and_the_watermark_moves_on() {
    let d = Deployment::new("dbsrc-sqlite");
    let db = sqlite(
        &d,
        "db/erp.sqlite",
        &[
            (1, "Müller \"GmbH\"", "10.50", "2026-01-01T10:00:00Z"),
            (
                2,
                "O'Brien; DROP TABLE orders; --",
                "0.01",
                "2026-01-01T11:00:00Z",
            ),
        ],
    );
    let before = std::fs::read(&db).unwrap();
    d.job("erp", SQLITE_JOB);
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(
        delivered_rows(&d, "out"),
        [
            "1,\"Müller \"\"GmbH\"\"\",10.50,2026-01-01T10:00:00Z",
            "2,O'Brien; DROP TABLE orders; --,0.01,2026-01-01T11:00:00Z",
        ]
    );
    let header = std::fs::read_to_string(d.path(&format!("out/{}", d.files("out")[0]))).unwrap();
    assert!(
        header.starts_with("id,name,amount,changed_at\n"),
        "{header}"
    );
    // The source is only read: the watermark lives in ferry's journal.
    assert_eq!(std::fs::read(&db).unwrap(), before);

    // Nothing new: nothing happens (no empty output).
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(d.files("out").len(), 1);

    // A changed row and a new one: only they come.
    sqlite(
        &d,
        "db/erp.sqlite",
        &[
            (1, "Müller \"GmbH\"", "11.00", "2026-01-02T09:00:00Z"),
            (3, "Ωmega", "3", "2026-01-02T09:30:00Z"),
        ],
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(d.files("out").len(), 2);
    assert_eq!(delivered_rows(&d, "out").len(), 4);

    // History shows each run as one item with the query and the watermark.
    let h = d.history();
    assert_eq!(h.len(), 2, "{h:?}");
    let events = h[1]["events"].to_string();
    assert!(
        events.contains("2 row(s) from sqlite://db/erp.sqlite"),
        "{events}"
    );
    assert!(
        events.contains("watermark changed_at: 2026-01-01T11:00:00Z -> 2026-01-02T09:30:00Z"),
        "{events}"
    );
    assert!(events.contains("WHERE changed_at > :since"), "{events}");
    assert!(
        d.files("var/staging/erp")
            .iter()
            .all(|f| f == ".ferry.lock")
    );
}

#[test]
fn a_failed_run_is_redone_with_the_same_rows_after_a_restart() {
    let d = Deployment::new("dbsrc-failed");
    sqlite(
        &d,
        "db/erp.sqlite",
        &[
            (1, "a", "1", "2026-01-01T10:00:00Z"),
            (2, "b", "2", "2026-01-01T11:00:00Z"),
        ],
    );
    d.job("erp", SQLITE_JOB);
    // The output folder cannot be made: the run's file fails.
    d.write("out", "a file where the output folder should be");
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let h = d.history();
    assert_eq!(h[0]["state"], "failed", "{h:?}");
    assert!(
        h[0]["events"]
            .to_string()
            .contains("watermark changed_at stays (first run)"),
        "{h:?}"
    );

    // Fixed, and a row more meanwhile: the next run (a new process) reads the failed
    // run's rows again, with the new one; none is skipped, none comes twice.
    std::fs::remove_file(d.path("out")).unwrap();
    sqlite(
        &d,
        "db/erp.sqlite",
        &[(3, "c", "3", "2026-01-01T12:00:00Z")],
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let rows = delivered_rows(&d, "out");
    assert_eq!(
        rows,
        [
            "1,a,1,2026-01-01T10:00:00Z",
            "2,b,2,2026-01-01T11:00:00Z",
            "3,c,3,2026-01-01T12:00:00Z"
        ]
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(delivered_rows(&d, "out").len(), 3);
}

#[test]
fn rows_staged_before_a_kill_are_delivered_after_the_restart_and_not_queried_again() {
    let d = Deployment::new("dbsrc-kill");
    sqlite(
        &d,
        "db/erp.sqlite",
        &[
            (1, "a", "1", "2026-01-01T10:00:00Z"),
            (2, "b", "2", "2026-01-01T11:00:00Z"),
        ],
    );
    // The job takes files 08:00-18:00 only; the query runs every 200 ms regardless, so
    // at 20:00 the rows are staged and wait.
    d.job(
        "erp",
        &SQLITE_JOB.replace(
            "watermark = \"changed_at\"",
            "watermark = \"changed_at\"\npoll = \"200ms\"\nactive = \"08:00-18:00\"\ntimezone = \"UTC\"",
        ),
    );
    set_clock(&d, "2026-01-05T20:00:00Z");
    let mut daemon = start_clocked(&d, &[]);
    d.wait_log("Query rows staged.", 1);
    // Later polls do not stage the same rows again while they wait.
    d.wait_log("still being processed; no query", 2);
    assert_eq!(daemon.stop_with(libc::SIGKILL), None);
    assert!(d.files("out").is_empty());

    sqlite(
        &d,
        "db/erp.sqlite",
        &[(3, "c", "3", "2026-01-01T12:00:00Z")],
    );
    set_clock(&d, "2026-01-06T09:00:00Z");
    let mut daemon = start_clocked(&d, &[]);
    wait_for("every row delivered", WAIT, || {
        delivered_rows(&d, "out").len() >= 3
    });
    // One more poll after the last row came: nothing more.
    let n = d.logs().matches("no rows; nothing to do").count();
    d.wait_log("no rows; nothing to do", n + 1);
    daemon.stop();
    assert_eq!(
        delivered_rows(&d, "out"),
        [
            "1,a,1,2026-01-01T10:00:00Z",
            "2,b,2,2026-01-01T11:00:00Z",
            "3,c,3,2026-01-01T12:00:00Z"
        ]
    );
    assert_eq!(d.files("out").len(), 2, "the staged run, then the new row");
}

#[test]
fn an_empty_result_does_nothing_unless_the_job_asks() {
    let d = Deployment::new("dbsrc-empty");
    sqlite(&d, "db/erp.sqlite", &[]);
    d.job("erp", SQLITE_JOB);
    d.job(
        "erp2",
        &SQLITE_JOB
            .replace("folder = \"out\"", "folder = \"out2\"")
            .replace(
                "watermark = \"changed_at\"",
                "watermark = \"changed_at\"\nempty = \"process\"",
            ),
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(d.files("out").is_empty());
    let f = d.files("out2");
    assert_eq!(f.len(), 1);
    assert_eq!(
        std::fs::read_to_string(d.path(&format!("out2/{}", f[0]))).unwrap(),
        "id,name,amount,changed_at\n"
    );
}

#[test]
fn a_database_that_is_down_is_an_outage_and_other_jobs_go_on() {
    let d = Deployment::new("dbsrc-down");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.job(
        "erp",
        &format!(
            r#"
[source]
database = "postgres://ferry:${{env:FERRY_TEST_DB_PW}}@127.0.0.1:{port}/ferry"
query = "SELECT 1 AS x"

[[output]]
folder = "out"
"#
        ),
    );
    d.job(
        "files",
        "[source]\nfolder = \"in\"\nsettle = \"0s\"\n[[output]]\nfolder = \"out-files\"\n",
    );
    d.write("in/a.txt", "a");
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "pw-never-shown-417")
        .output()
        .unwrap();
    let text = all_output(&o);
    assert!(text.contains("The query failed"), "{text}");
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(!text.contains("pw-never-shown-417"), "{text}");
    assert_eq!(d.files("out-files"), ["a.txt"]);
    assert!(d.files("out").is_empty());
}

#[test]
fn the_query_must_bind_since_and_only_since() {
    let d = Deployment::new("dbsrc-check");
    d.job(
        "erp",
        "[source]\ndatabase = \"sqlite://x.db\"\nquery = \"SELECT * FROM t WHERE a > :sinse\"\nwatermark = \"a\"\n",
    );
    let o = d.run(&["check"]);
    let text = all_output(&o);
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("erp.toml:3:"), "{text}");
    assert!(text.contains("found `:sinse`"), "{text}");
}

/// A job reading `query` from the server `db` into `out/` as CSV, the password from the
/// environment and TLS verified against the server's CA.
fn server_job(db: &db_server::DbServer, query: &str, extra: &str) -> String {
    format!(
        r#"
[source]
database = "{}"
ca_file = "{}"
query = """{query}"""
{extra}

[[output]]
folder = "out"
name = "{{name}}"
"#,
        db.url_with("${env:FERRY_TEST_DB_PW}"),
        db.ca().display()
    )
}

fn run_with_password(d: &Deployment) -> Output {
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "secret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(
        !all_output(&o).contains("The query failed"),
        "{}",
        all_output(&o)
    );
    assert!(!all_output(&o).contains(":secret@"), "{}", all_output(&o));
    o
}

#[test]
fn postgres_typed_values_as_text_and_a_timestamp_watermark() {
    let Some(db) = db_server::postgres() else {
        return;
    };
    db.sql(
        "DROP TABLE IF EXISTS src_pg_typed;
         CREATE TABLE src_pg_typed (id int8, amount numeric(30,10), price float8, ok bool,
           name text, born date, changed_at timestamptz, note varchar(20));
         INSERT INTO src_pg_typed VALUES
           (1, 12345678901234567890.0123456789, 1.5, true, 'Ünïcödé \"q\" ''s''; --', '2026-02-28',
            '2026-01-01 10:00:00.25+00', NULL),
           (2, -0.5000000000, 0, false, 'x', NULL, '2026-01-01 11:00:00+00', '');
         GRANT SELECT ON src_pg_typed TO ferry;",
    );
    let d = Deployment::new("dbsrc-pg");
    d.job(
        "pg",
        &server_job(
            db,
            "SELECT * FROM src_pg_typed WHERE changed_at > :since ORDER BY changed_at",
            "watermark = \"changed_at\"",
        ),
    );
    run_with_password(&d);
    assert_eq!(
        delivered_rows(&d, "out"),
        [
            "1,12345678901234567890.0123456789,1.5,true,\"Ünïcödé \"\"q\"\" 's'; --\",2026-02-28,2026-01-01T10:00:00.250Z,",
            "2,-0.5000000000,0,false,x,,2026-01-01T11:00:00Z,",
        ]
    );
    db.sql("INSERT INTO src_pg_typed (id, changed_at) VALUES (3, '2026-01-01 11:00:00.000001+00'), (4, '2026-01-01 10:59:59+00')");
    run_with_password(&d);
    let rows = delivered_rows(&d, "out");
    assert_eq!(rows.len(), 3, "only the row after the watermark: {rows:?}");
    assert!(rows[2].starts_with("3,"), "{rows:?}");
    let h = serde_json::to_string(&d.history()).unwrap();
    assert!(!h.contains(":secret@"), "{h}");
}

#[test]
fn postgres_numeric_watermark_and_since() {
    let Some(db) = db_server::postgres() else {
        return;
    };
    db.sql(
        "DROP TABLE IF EXISTS src_pg_seq;
         CREATE TABLE src_pg_seq (seq numeric(20,2), name text);
         INSERT INTO src_pg_seq VALUES (1.50, 'a'), (2.25, 'b'), (10.00, 'c');
         GRANT SELECT ON src_pg_seq TO ferry;",
    );
    let d = Deployment::new("dbsrc-pg-seq");
    d.job(
        "pg",
        &server_job(
            db,
            "SELECT seq, name FROM src_pg_seq WHERE seq > :since ORDER BY seq",
            "watermark = \"seq\"\nsince = \"2\"",
        ),
    );
    run_with_password(&d);
    assert_eq!(delivered_rows(&d, "out"), ["10.00,c", "2.25,b"]);
    db.sql("INSERT INTO src_pg_seq VALUES (9.99, 'old'), (10.01, 'new')");
    run_with_password(&d);
    assert_eq!(
        delivered_rows(&d, "out"),
        ["10.00,c", "10.01,new", "2.25,b"]
    );
}

#[test]
fn mariadb_typed_values_and_a_datetime_watermark() {
    let Some(db) = db_server::mariadb() else {
        return;
    };
    db.sql(
        "DROP TABLE IF EXISTS src_my_typed;
         CREATE TABLE src_my_typed (id bigint, amount decimal(30,10), name varchar(60),
           born date, changed_at datetime(3), flag tinyint(1)) CHARACTER SET utf8mb4;
         INSERT INTO src_my_typed VALUES
           (1, 12345678901234567890.0123456789, 'Ünïcödé \"q\" \\'s\\'; --', '2026-02-28', '2026-01-01 10:00:00.250', 1),
           (2, -0.5, NULL, NULL, '2026-01-01 11:00:00', 0);",
    );
    let d = Deployment::new("dbsrc-maria");
    d.job(
        "maria",
        &server_job(
            db,
            "SELECT * FROM src_my_typed WHERE changed_at > :since ORDER BY changed_at",
            "watermark = \"changed_at\"",
        ),
    );
    run_with_password(&d);
    assert_eq!(
        delivered_rows(&d, "out"),
        [
            "1,12345678901234567890.0123456789,\"Ünïcödé \"\"q\"\" 's'; --\",2026-02-28,2026-01-01T10:00:00.250,1",
            "2,-0.5000000000,,,2026-01-01T11:00:00,0",
        ]
    );
    db.sql("INSERT INTO src_my_typed (id, changed_at) VALUES (3, '2026-01-01 11:00:00.001'), (4, '2026-01-01 10:59:59')");
    run_with_password(&d);
    let rows = delivered_rows(&d, "out");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[2].starts_with("3,"), "{rows:?}");
}

#[test]
fn a_ca_that_did_not_sign_the_server_certificate_is_refused() {
    let Some(db) = db_server::postgres() else {
        return;
    };
    let d = Deployment::new("dbsrc-tls");
    let other = db_server::unrelated_ca(&d.root);
    let job = server_job(db, "SELECT 1 AS x", "")
        .replace(&db.ca().display().to_string(), &other.display().to_string());
    d.job("pg", &job);
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "secret")
        .output()
        .unwrap();
    let text = all_output(&o);
    assert!(text.contains("The query failed"), "{text}");
    assert!(d.files("out").is_empty());
    // With the right CA the same job reads the row.
    d.job("pg", &server_job(db, "SELECT 1 AS x", ""));
    run_with_password(&d);
    assert_eq!(delivered_rows(&d, "out"), ["1"]);
}
