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

fn loads(db: &DbServer, job: &str) -> String {
    db.sql(&format!(
        "SELECT output, target, {} FROM ferry_loads WHERE job = '{job}' ORDER BY loaded_at, file_id",
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
    assert_eq!(loads(db, "load"), format!("1\t{table}\t2\n1\t{table}\t2\n"));
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
    let _s = serial();
    let Some(db) = db_server::postgres() else {
        return;
    };
    typed_insert_and_upsert(db, "pg_typed");
}

#[test]
fn mariadb_insert_and_upsert_with_typed_columns() {
    let _s = serial();
    let Some(db) = db_server::mariadb() else {
        return;
    };
    typed_insert_and_upsert(db, "maria_typed");
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
    let rows = st
        .query_map([], |r| {
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
        .collect::<String>();
    rows
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
