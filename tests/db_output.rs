//! Database outputs (issue 16, destination half): records loaded into PostgreSQL, MariaDB
//! and SQLite tables, exactly once (docs/databases.md). The servers are real
//! (tests/db_server); SQLite is a file of the deployment.

mod db_server;
mod util;

use db_server::DbServer;
use util::*;

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
