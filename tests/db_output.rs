//! Database outputs (issue 16, destination half): records loaded into PostgreSQL, MariaDB
//! and SQLite tables, exactly once (docs/databases.md). The servers are real
//! (tests/db_server); SQLite is a file of the deployment.

mod db_server;
mod util;

use std::sync::Mutex;

use db_server::{DbServer, Kind};
use util::*;

/// Tests that use a server run one at a time: some kill it.
static SERVER: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server `start` gives (`db_server::postgres`, `::mariadb`), for one test at a time:
/// hold the guard until the test ends. `None`: skipped, there is no such server here.
fn serial_on(
    start: fn() -> Option<&'static DbServer>,
) -> Option<(std::sync::MutexGuard<'static, ()>, &'static DbServer)> {
    let guard = serial();
    Some((guard, start()?))
}

/// A table name and column names that need quoting, with SQL metacharacters and Unicode.
const TABLE: &str = "Bestell\"ungen; --";

fn create(db: &DbServer, table: &str) -> String {
    match db.kind {
        Kind::Postgres => format!(
            "CREATE TABLE \"{}\" (no integer PRIMARY KEY, amount numeric(10,2) NOT NULL, paid boolean, day date, at timestamp, \"Straße\" varchar(20), \"note'; --\" text)",
            table.replace('"', "\"\"")
        ),
        Kind::MariaDb => format!(
            "CREATE TABLE `{table}` (no int PRIMARY KEY, amount decimal(10,2) NOT NULL, paid tinyint(1), day date, at datetime, `Straße` varchar(20), `note'; --` text) CHARACTER SET utf8mb4"
        ),
    }
}

fn q(db: &DbServer, name: &str) -> String {
    match db.kind {
        Kind::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        Kind::MariaDb => format!("`{name}`"),
    }
}

/// The rows of `table`, each value's tabs and line breaks made visible.
fn rows(db: &DbServer, table: &str) -> String {
    let note = q(db, "note'; --");
    let vis = match db.kind {
        Kind::Postgres => format!(
            "replace(replace(replace({note}, E'\\\\', '<BS>'), E'\\t', '<TAB>'), E'\\n', '<NL>')"
        ),
        Kind::MariaDb => format!(
            "replace(replace(replace({note}, '\\\\', '<BS>'), '\\t', '<TAB>'), '\\n', '<NL>')"
        ),
    };
    let paid = match db.kind {
        Kind::Postgres => "CASE WHEN paid THEN 1 ELSE 0 END".to_string(),
        Kind::MariaDb => "paid".to_string(),
    };
    db.sql(&format!(
        "SELECT no, amount, {paid}, day, at, {}, {vis} FROM {} ORDER BY no",
        q(db, "Straße"),
        q(db, table)
    ))
}

/// The load table's rows for `table`.
fn loads(db: &DbServer, table: &str) -> String {
    db.sql(&format!(
        "SELECT output, target, {} FROM ferry_loads WHERE target = '{table}' ORDER BY loaded_at, file_id",
        q(db, "rows")
    ))
}

const HEADER: &str = "no,amount,paid,day,at,Straße,note'; --\n";

fn table_for(db: &DbServer, test: &str) -> String {
    let t = format!("{TABLE} {test}");
    let _ = db.try_sql(&format!("DROP TABLE {}", q(db, &t)));
    db.sql(&create(db, &t));
    if db.kind == Kind::Postgres {
        db.sql(&format!("ALTER TABLE {} OWNER TO ferry", q(db, &t)));
    }
    t
}

/// A job loading into `table` of `db` (password from the environment, TLS with the CA).
fn server_job(db: &DbServer, table: &str, extra: &str) -> String {
    job(
        &db.url_with("${env:FERRY_TEST_DB_PW}"),
        &table.replace('\\', "\\\\").replace('"', "\\\""),
        &format!("ca_file = \"{}\"\n{extra}", db.ca().display()),
    )
    .replace("127.0.0.1", "localhost")
}

fn run_once(d: &Deployment) -> std::process::Output {
    d.cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "secret")
        .output()
        .unwrap()
}

fn typed_insert_and_upsert(db: &DbServer, test: &str) {
    let d = Deployment::new(test);
    let table = table_for(db, test);
    d.job(
        "load",
        &server_job(db, &table, "mode = \"upsert\"\nkey = [\"no\"]"),
    );
    d.write(
        "in/a.csv",
        format!(
            "{HEADER}1,12.50,yes,2026-12-01,2026-12-01T10:00:00,Müllerstraße 1,\"O'Brien \"\"q\"\"; DROP TABLE x; --\"\n\
             2,0.10,no,2026-12-02,2026-12-02 08:00,日本語,\"a\tb\\\\N\\c\nnext\"\n"
        ),
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}{}", stderr(&o), d.logs());
    assert_eq!(
        rows(db, &table),
        "1\t12.50\t1\t2026-12-01\t2026-12-01 10:00:00\tMüllerstraße 1\tO'Brien \"q\"; DROP TABLE x; --\n\
         2\t0.10\t0\t2026-12-02\t2026-12-02 08:00:00\t日本語\ta<TAB>b<BS><BS>N<BS>c<NL>next\n"
    );
    d.write(
        "in/b.csv",
        format!("{HEADER}2,7,true,2026-12-03,2026-12-03 09:15:30,,second\n3,-1.5,,,,,\n"),
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = rows(db, &table);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 3, "{all}");
    assert!(
        lines[1].starts_with("2\t7.00\t1\t2026-12-03\t2026-12-03 09:15:30\t"),
        "{all}"
    );
    assert!(lines[1].ends_with("\tsecond"), "{all}");
    assert!(lines[2].starts_with("3\t-1.50\t"), "{all}");
    assert_eq!(loads(db, &table), format!("1\t{table}\t2\n1\t{table}\t2\n"));
    assert!(d.files("in").is_empty());
    assert_eq!(d.files("var/outbox"), Vec::<String>::new());
    // No password anywhere ferry writes.
    assert_no_password(&d, "secret");
}

/// `pw` appears in no log, history line, report or state file of `d`.
fn assert_no_password(d: &Deployment, pw: &str) {
    let hist = d.run(&["history", "--json", "--limit", "0"]);
    assert!(!String::from_utf8_lossy(&hist.stdout).contains(pw));
    for f in d.files("") {
        if f.starts_with("jobs/") {
            continue;
        }
        let bytes = std::fs::read(d.path(&f)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(pw),
            "{f} contains the password"
        );
    }
}

#[test]
fn postgres_insert_and_upsert_with_typed_columns() {
    if let Some((_s, db)) = serial_on(db_server::postgres) {
        typed_insert_and_upsert(db, "pg_typed");
    }
}

#[test]
fn mariadb_insert_and_upsert_with_typed_columns() {
    if let Some((_s, db)) = serial_on(db_server::mariadb) {
        typed_insert_and_upsert(db, "maria_typed");
    }
}

/// A job reading `in/*.csv` into `table` of `database`; `extra` is added to the output.
fn job(database: &str, table: &str, extra: &str) -> String {
    format!(
        r#"
[source]
folder = "in"
settle = "0s"

[input]
format = "csv"

[[output]]
database = "{database}"
table = "{table}"
{extra}
"#
    )
}

fn sqlite(d: &Deployment, sql: &str) -> String {
    let c = rusqlite::Connection::open(d.path("var/t.db")).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(_) => "BLOB".to_string(),
            })
            .collect::<Vec<_>>()
            .join("\t"))
    })
    .unwrap()
    .map(|r| r.unwrap() + "\n")
    .collect::<String>()
}

#[test]
fn sqlite_insert_and_upsert_with_typed_columns() {
    let d = Deployment::new("db-sqlite");
    d.mkdir("var");
    rusqlite::Connection::open(d.path("var/t.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE orders (no INTEGER PRIMARY KEY, amount DECIMAL(10,2), paid BOOLEAN, day DATE, note TEXT)",
        )
        .unwrap();
    d.job(
        "load",
        &job(
            "sqlite://var/t.db",
            "orders",
            "mode = \"upsert\"\nkey = [\"no\"]",
        ),
    );
    d.write(
        "in/a.csv",
        "no,amount,paid,day,note\n1,12.50,yes,2026-12-01,first\n2,0.10,no,2026-12-02,\"it's; --\"\n",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sqlite(
            &d,
            "SELECT no, amount, paid, day, note FROM orders ORDER BY no"
        ),
        "1\t12.5\t1\t2026-12-01\tfirst\n2\t0.1\t0\t2026-12-02\tit's; --\n"
    );
    d.write(
        "in/b.csv",
        "no,amount,paid,day,note\n2,7.00,yes,2026-12-03,second\n",
    );
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sqlite(&d, "SELECT no, amount, note FROM orders ORDER BY no"),
        "1\t12.5\tfirst\n2\t7\tsecond\n"
    );
    assert_eq!(
        sqlite(
            &d,
            "SELECT job, output, target, rows FROM ferry_loads ORDER BY file_id"
        ),
        "load\t1\torders\t2\nload\t1\torders\t1\n"
    );
    assert!(d.files("in").is_empty());
    assert!(
        d.files("var/outbox").is_empty(),
        "{:?}",
        d.files("var/outbox")
    );
}

/// `create_table` makes a missing table (and a new database file's folder) before the
/// first load; without it, a missing table fails the file with nothing loaded.
#[test]
fn sqlite_create_table_makes_a_missing_table_and_only_a_missing_one() {
    let d = Deployment::new("db-create-table");
    d.job(
        "load",
        &job(
            "sqlite://var/t.db",
            "orders",
            "create_table = \"CREATE TABLE IF NOT EXISTS orders (no INTEGER PRIMARY KEY, note TEXT)\"",
        ),
    );
    d.write("in/a.csv", "no,note\n1,first\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(sqlite(&d, "SELECT no, note FROM orders"), "1\tfirst\n");
    // An existing table is used as it is: the statement is not run again (it would fail).
    d.job(
        "load",
        &job(
            "sqlite://var/t.db",
            "orders",
            "create_table = \"CREATE TABLE orders (no INTEGER PRIMARY KEY, note TEXT)\"",
        ),
    );
    d.write("in/b.csv", "no,note\n2,second\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sqlite(&d, "SELECT no, note FROM orders ORDER BY no"),
        "1\tfirst\n2\tsecond\n"
    );
    // Without `create_table`, a missing table fails the file.
    d.job("load", &job("sqlite://var/t.db", "missing", ""));
    d.write("in/c.csv", "no,note\n3,third\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(reports(&d).contains("does not exist"), "{}", reports(&d));
}

/// The text of every error report in `var/error`.
fn reports(d: &Deployment) -> String {
    d.files("var/error")
        .iter()
        .filter(|f| f.contains("report") || f.ends_with(".txt") || f.ends_with(".json"))
        .map(|f| std::fs::read_to_string(d.path(&format!("var/error/{f}"))).unwrap_or_default())
        .collect()
}

fn count(db: &DbServer, table: &str) -> String {
    db.sql(&format!("SELECT count(*) FROM {}", q(db, table)))
}

fn bad_value_and_constraint(db: &DbServer, test: &str) {
    let d = Deployment::new(test);
    let table = table_for(db, test);
    d.job("load", &server_job(db, &table, ""));
    // A decimal with more places than numeric(10,2): record 2, field and column `amount`.
    d.write(
        "in/bad.csv",
        format!("{HEADER}1,1.00,yes,,,,\n2,12.505,no,,,,\n3,1,no,,,,\n"),
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = reports(&d) + &d.logs() + &stderr(&o);
    for what in ["record 2", "amount", "12.505", "column \"amount\""] {
        assert!(r.contains(what), "{what} in {r}");
    }
    assert_eq!(count(db, &table), "0\n");
    // A key twice in one file: the database refuses the second; nothing of the file stays.
    d.write(
        "in/dup.csv",
        format!("{HEADER}7,1.00,yes,,,,\n8,1,no,,,,\n7,2,no,,,,\n"),
    );
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        d.path("var/error/load/dup.csv").exists(),
        "{:?}",
        d.files("var")
    );
    assert_eq!(count(db, &table), "0\n");
    assert_eq!(loads(db, &table), "");
    // With on_error = "skip" the bad record goes to the rejects file, the others load.
    let d2 = Deployment::new(&format!("{test}-skip"));
    d2.job(
        "load",
        &server_job(db, &table, "")
            .replace("format = \"csv\"", "format = \"csv\"\non_error = \"skip\""),
    );
    d2.write(
        "in/bad.csv",
        format!("{HEADER}1,1.00,yes,,,,\n2,12.505,no,,,,\n3,1,maybe,,,,\n4,2,no,,,,\n"),
    );
    let o = run_once(&d2);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(db, &table), "2\n");
    let rejects = std::fs::read_to_string(d2.path("var/outbox/load/1/bad.csv.rejects.jsonl"))
        .unwrap_or_else(|e| panic!("{e}: {:?}", d2.files("var")));
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert!(
        rejects.contains("12.505") && rejects.contains("maybe"),
        "{rejects}"
    );
}

#[test]
fn postgres_bad_value_and_constraint_violation_load_nothing() {
    if let Some((_s, db)) = serial_on(db_server::postgres) {
        bad_value_and_constraint(db, "pg_bad");
    }
}

#[test]
fn mariadb_bad_value_and_constraint_violation_load_nothing() {
    if let Some((_s, db)) = serial_on(db_server::mariadb) {
        bad_value_and_constraint(db, "maria_bad");
    }
}

/// `n` rows numbered from 1.
fn numbered(n: usize) -> String {
    let mut s = HEADER.to_string();
    for i in 1..=n {
        s.push_str(&format!(
            "{i},{i}.25,yes,2026-12-01,2026-12-01 10:00,x,row {i}\n"
        ));
    }
    s
}

#[test]
fn postgres_killed_mid_transaction_loads_once_when_it_returns() {
    let Some((_s, db)) = serial_on(db_server::postgres) else {
        return;
    };
    let d = Deployment::new("pg_kill");
    let table = table_for(db, "pg_kill");
    // Row 3 waits (in the server, inside ferry's COPY) while this server process runs.
    db.sql("DROP TABLE IF EXISTS ferry_gate");
    db.sql("CREATE TABLE ferry_gate AS SELECT pg_postmaster_start_time() AS started");
    db.sql("GRANT SELECT ON ferry_gate TO ferry");
    db.sql(
        "CREATE OR REPLACE FUNCTION ferry_slow() RETURNS trigger AS $$ BEGIN IF NEW.no = 3 AND EXISTS (SELECT 1 FROM ferry_gate WHERE started = pg_postmaster_start_time()) THEN PERFORM pg_sleep(600); END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
    );
    db.sql(&format!(
        "CREATE TRIGGER slow BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION ferry_slow()",
        q(db, &table)
    ));
    d.job(
        "load",
        &(server_job(db, &table, "") + "\n[retry]\nevery = \"200ms\"\nmax = \"1s\"\n")
            .replace("settle = \"0s\"", "settle = \"0s\"\npoll = \"200ms\""),
    );
    d.write("in/orders.csv", numbered(5));
    let mut daemon = daemon_with_password(&d);
    wait_for("ferry's COPY to wait in the trigger", WAIT, || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == "1\n"
    });
    db.kill();
    d.wait_log("queued", 1);
    assert!(
        d.path("in/orders.csv").exists(),
        "the file waits in its source"
    );
    db.restart();
    assert_eq!(count(db, &table), "0\n", "nothing half loaded");
    wait_for("the file to be loaded", WAIT, || {
        count(db, &table) == "5\n" && !d.path("in/orders.csv").exists()
    });
    daemon.stop();
    assert_eq!(count(db, &table), "5\n");
    assert_eq!(loads(db, &table), format!("1\t{table}\t5\n"));
    db.sql("DROP TABLE ferry_gate");
}

/// `ferry run` in the background with the database password in its environment, its log
/// in `var/` (as `Deployment::spawn`).
fn daemon_with_password(d: &Deployment) -> Daemon {
    std::fs::create_dir_all(d.path("var")).unwrap();
    let n = std::fs::read_dir(d.path("var")).unwrap().count();
    let log = std::fs::File::create(d.path(&format!("var/ferry-{n}.log"))).unwrap();
    let child = d
        .cmd(&["run"])
        .env("FERRY_TEST_DB_PW", "secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .unwrap();
    Daemon { child }
}

fn killed_between_commit_and_journal(d: &Deployment, check: impl Fn() -> (String, String)) {
    d.write("in/orders.csv", numbered(50));
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "secret")
        .env("FERRY_TEST_DIE_AFTER_DB_COMMIT", "1")
        .output()
        .unwrap();
    assert!(o.status.code() != Some(0), "ferry died: {}", stderr(&o));
    assert_eq!(check().0, "50\n", "committed before the kill");
    assert!(d.path("in/orders.csv").exists());
    let o = run_once(d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (rows, loads) = check();
    assert_eq!(rows, "50\n", "loaded once");
    assert_eq!(loads.lines().count(), 1, "{loads}");
    assert!(!d.path("in/orders.csv").exists());
    assert!(stderr(&o).contains("loaded before"), "{}", stderr(&o));
    assert_eq!(d.files("var/outbox"), Vec::<String>::new());
}

#[test]
fn postgres_sigkill_between_commit_and_journal_loads_once() {
    let Some((_s, db)) = serial_on(db_server::postgres) else {
        return;
    };
    let d = Deployment::new("pg_die");
    let table = table_for(db, "pg_die");
    d.job("load", &server_job(db, &table, ""));
    killed_between_commit_and_journal(&d, || (count(db, &table), loads(db, &table)));
}

#[test]
fn sqlite_sigkill_between_commit_and_journal_loads_once() {
    let d = Deployment::new("lite_die");
    d.mkdir("var");
    rusqlite::Connection::open(d.path("var/t.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE \"o\"\"k\" (no INTEGER PRIMARY KEY, amount DECIMAL(10,2), paid BOOLEAN, day DATE, at DATETIME, \"Straße\" TEXT, \"note'; --\" TEXT)",
        )
        .unwrap();
    d.job("load", &job("sqlite://var/t.db", "o\\\"k", ""));
    killed_between_commit_and_journal(&d, || {
        (
            sqlite(&d, "SELECT count(*) FROM \"o\"\"k\""),
            sqlite(&d, "SELECT rows FROM ferry_loads"),
        )
    });
}

#[test]
fn a_wrong_ca_or_password_never_loads_and_never_shows_the_password() {
    let Some((_s, db)) = serial_on(db_server::postgres) else {
        return;
    };
    let d = Deployment::new("pg_tls");
    let table = table_for(db, "pg_tls");
    // A CA that did not sign the server's certificate.
    let other = db_server::unrelated_ca(&d.root);
    d.job(
        "load",
        &(server_job(db, &table, "")
            .replace(&db.ca().display().to_string(), &other.display().to_string())
            + "\n[retry]\nfor = \"0\"\n"),
    );
    d.write("in/a.csv", numbered(2));
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(count(db, &table), "0\n");
    // A wrong password: refused, and written nowhere.
    let d = Deployment::new("pg_pw");
    d.job(
        "load",
        &(server_job(db, &table, "") + "\n[retry]\nfor = \"0\"\n"),
    );
    d.write("in/a.csv", numbered(2));
    let o = d
        .cmd(&["run", "--once"])
        .env("FERRY_TEST_DB_PW", "Wr0ng-Pa55word")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        reports(&d).contains("password authentication failed"),
        "{}",
        reports(&d)
    );
    assert!(!stderr(&o).contains("Wr0ng-Pa55word"));
    assert!(!stdout(&o).contains("Wr0ng-Pa55word"));
    assert_no_password(&d, "Wr0ng-Pa55word");
    assert_eq!(count(db, &table), "0\n");
}

#[test]
fn postgres_killed_during_the_commit_leaves_the_file_planned_until_the_next_start() {
    let Some((_s, db)) = serial_on(db_server::postgres) else {
        return;
    };
    let d = Deployment::new("pg_commit_kill");
    let table = table_for(db, "pg_commit_kill");
    // A deferred trigger: row 3 waits at COMMIT while this server process runs.
    db.sql("DROP TABLE IF EXISTS ferry_gate2");
    db.sql("CREATE TABLE ferry_gate2 AS SELECT pg_postmaster_start_time() AS started");
    db.sql("GRANT SELECT ON ferry_gate2 TO ferry");
    db.sql(
        "CREATE OR REPLACE FUNCTION ferry_slow_commit() RETURNS trigger AS $$ BEGIN IF NEW.no = 3 AND EXISTS (SELECT 1 FROM ferry_gate2 WHERE started = pg_postmaster_start_time()) THEN PERFORM pg_sleep(600); END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
    );
    db.sql(&format!(
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON {} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ferry_slow_commit()",
        q(db, &table)
    ));
    d.job(
        "load",
        &(server_job(db, &table, "") + "\n[retry]\nevery = \"200ms\"\nmax = \"1s\"\n")
            .replace("settle = \"0s\"", "settle = \"0s\"\npoll = \"200ms\""),
    );
    d.write("in/orders.csv", numbered(5));
    let mut daemon = daemon_with_password(&d);
    wait_for("ferry's COMMIT to wait in the trigger", WAIT, || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == "1\n"
    });
    db.kill();
    // The outcome of the commit cannot be known while the server is down: the file stays
    // planned, its original and spool where they are.
    d.wait_log("may or may not have been committed", 1);
    daemon.stop();
    assert!(d.path("in/orders.csv").exists());
    db.restart();
    assert_eq!(count(db, &table), "0\n");
    // The next start asks the load table (no row: the commit never happened) and loads it.
    let o = run_once(&d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(db, &table), "5\n");
    assert_eq!(loads(db, &table), format!("1\t{table}\t5\n"));
    assert!(!d.path("in/orders.csv").exists());
    db.sql("DROP TABLE ferry_gate2");
}

#[test]
fn mariadb_killed_mid_transaction_loads_once_when_it_returns() {
    let Some((_s, db)) = serial_on(db_server::mariadb) else {
        return;
    };
    let d = Deployment::new("maria_kill");
    let table = table_for(db, "maria_kill");
    // Row 3 waits (inside ferry's INSERT) while this server process runs: a global
    // variable set now is back to its default after a restart.
    db.sql("SET GLOBAL max_connect_errors = 12345");
    db.sql(&format!(
        "CREATE TRIGGER maria_slow BEFORE INSERT ON {} FOR EACH ROW SET @x = IF(NEW.no = 3 AND @@GLOBAL.max_connect_errors = 12345, SLEEP(600), 0)",
        q(db, &table)
    ));
    d.job(
        "load",
        &(server_job(db, &table, "") + "\n[retry]\nevery = \"200ms\"\nmax = \"1s\"\n")
            .replace("settle = \"0s\"", "settle = \"0s\"\npoll = \"200ms\""),
    );
    d.write("in/orders.csv", numbered(5));
    let mut daemon = daemon_with_password(&d);
    wait_for("ferry's INSERT to wait in the trigger", WAIT, || {
        db.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'")
            == "1\n"
    });
    db.kill();
    d.wait_log("queued", 1);
    assert!(
        d.path("in/orders.csv").exists(),
        "the file waits in its source"
    );
    db.restart();
    wait_for("the file to be loaded", WAIT, || {
        count(db, &table) == "5\n" && !d.path("in/orders.csv").exists()
    });
    daemon.stop();
    assert_eq!(count(db, &table), "5\n");
    assert_eq!(loads(db, &table), format!("1\t{table}\t5\n"));
}

#[test]
fn a_field_without_a_column_fails_the_file_even_when_records_may_be_skipped() {
    let d = Deployment::new("lite_nocol");
    d.mkdir("var");
    rusqlite::Connection::open(d.path("var/t.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (a TEXT)")
        .unwrap();
    d.job(
        "load",
        &job("sqlite://var/t.db", "t", "")
            .replace("format = \"csv\"", "format = \"csv\"\non_error = \"skip\""),
    );
    d.write("in/x.csv", "a,b\n1,2\n3,4\n");
    let o = d.run(&["run", "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no column \\\"b\\\"") || stderr(&o).contains("no column"),
        "{}",
        stderr(&o)
    );
    assert!(d.path("var/error/load/x.csv").exists());
    assert_eq!(sqlite(&d, "SELECT count(*) FROM t"), "0\n");
}
