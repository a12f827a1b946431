//! Loading one file's records into a table, exactly once (docs/databases.md).
//!
//! The records arrive as a *spool*: the file ferry wrote and fsynced while it read the
//! original ([`SpoolWriter`]): a first line with the [`Order`] (JSON), then one line per
//! record in PostgreSQL's COPY text format (tab between values, `\N` for NULL, backslash
//! escapes), every value already converted for its column ([`super::types`]).
//!
//! [`load`] puts the whole spool in ONE transaction together with a row of the load table
//! (`ferry_loads` unless the job names another: job, file id, output), which it creates on
//! first use. Before loading it looks that row up: when it is there, the spool was loaded
//! before (a crash after the commit, before ferry recorded it) and nothing is loaded again.
//! PostgreSQL gets `COPY ... FROM STDIN` (an upsert: COPY into a temporary table, then one
//! `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE`); MySQL/MariaDB batched multi-row
//! `INSERT`s (`ON DUPLICATE KEY UPDATE`); SQLite one prepared `INSERT` per row
//! (`ON CONFLICT (key) DO UPDATE`). Only bound parameters and quoted identifiers reach the
//! database. Any failure before the commit rolls the whole file back.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use super::connect::{Conn, DbError, Kind};
use super::types::ColType;

/// The load table's name when the job names none.
pub const DEFAULT_LOAD_TABLE: &str = "ferry_loads";

/// `insert` or `upsert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Insert,
    Upsert,
}

/// What a spool is to be loaded into: the spool's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub job: String,
    /// The output's index in the job (0-based).
    pub output: u32,
    /// The database, without a password (for messages; the connection comes from the job).
    pub database: String,
    pub table: String,
    pub columns: Vec<String>,
    /// For SQLite, how to bind each column (`int`, `float`, `text`).
    pub binds: Vec<String>,
    pub mode: Mode,
    pub key: Vec<String>,
    pub load_table: String,
}

/// Writes a spool: the order, then each record's values.
pub struct SpoolWriter<W: Write> {
    out: W,
    line: Vec<u8>,
    pub rows: u64,
}

impl<W: Write> SpoolWriter<W> {
    pub fn new(mut out: W, order: &Order) -> io::Result<Self> {
        serde_json::to_writer(&mut out, order)?;
        out.write_all(b"\n")?;
        Ok(SpoolWriter {
            out,
            line: Vec::with_capacity(256),
            rows: 0,
        })
    }

    /// Writes one row; `None` is NULL.
    pub fn row<'v>(&mut self, values: impl IntoIterator<Item = Option<&'v str>>) -> io::Result<()> {
        self.line.clear();
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.line.push(b'\t');
            }
            match v {
                None => self.line.extend_from_slice(b"\\N"),
                Some(v) => escape_into(&mut self.line, v),
            }
        }
        self.line.push(b'\n');
        self.rows += 1;
        self.out.write_all(&self.line)
    }

    pub fn finish(self) -> W {
        self.out
    }
}

fn escape_into(out: &mut Vec<u8>, v: &str) {
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Splits one spool line (without its `\n`) into its values.
pub fn parse_row(line: &[u8]) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for field in line.split(|b| *b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        let mut v = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            if field[i] == b'\\' && i + 1 < field.len() {
                v.push(match field[i + 1] {
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    other => other,
                });
                i += 2;
            } else {
                v.push(field[i]);
                i += 1;
            }
        }
        out.push(Some(
            String::from_utf8(v).map_err(|_| "a spool row is not UTF-8".to_string())?,
        ));
    }
    Ok(out)
}

/// Reads a spool's order (its first line).
pub fn read_order(r: &mut impl BufRead) -> io::Result<Order> {
    let mut first = String::new();
    r.read_line(&mut first)?;
    serde_json::from_str(&first).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A quoted identifier: `"a""b"` (PostgreSQL, SQLite) or `` `a``b` `` (MySQL); a
/// `schema.table` name is quoted part by part.
pub fn quote(kind: Kind, name: &str) -> String {
    let q = if kind == Kind::MySql { '`' } else { '"' };
    let one = |n: &str| {
        let mut s = String::with_capacity(n.len() + 2);
        s.push(q);
        for c in n.chars() {
            if c == q {
                s.push(q);
            }
            s.push(c);
        }
        s.push(q);
        s
    };
    name.split_once('.')
        .map(|(a, b)| format!("{}.{}", one(a), one(b)))
        .unwrap_or_else(|| one(name))
}

/// What [`load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// Loaded now: this many rows.
    Now(u64),
    /// The load table says this file was loaded before (this many rows then).
    Before(u64),
}

/// Creates the load table when it is missing (outside any transaction: MySQL commits
/// around DDL).
pub async fn ensure_load_table(conn: &mut Conn, name: &str) -> Result<(), DbError> {
    let ctx = "cannot create the load table";
    match conn {
        Conn::Pg(c) => {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} (job text NOT NULL, file_id text NOT NULL, output integer NOT NULL, target text NOT NULL, rows bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, file_id, output))",
                quote(Kind::Postgres, name)
            );
            // Two first loads at once may race on the catalog; the loser finds the table.
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *c)
                .await
            {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await
                    .map_err(|_| DbError::sqlx(ctx, &e))?;
            }
        }
        Conn::My(c) => {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} (job varchar(255) NOT NULL, file_id varchar(100) NOT NULL, output int NOT NULL, target varchar(255) NOT NULL, `rows` bigint NOT NULL, loaded_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (job, file_id, output)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                quote(Kind::MySql, name)
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *c)
                .await
                .map_err(|e| DbError::sqlx(ctx, &e))?;
        }
        Conn::Lite(c) => {
            c.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (job TEXT NOT NULL, file_id TEXT NOT NULL, output INTEGER NOT NULL, target TEXT NOT NULL, rows INTEGER NOT NULL, loaded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (job, file_id, output))",
                quote(Kind::Sqlite, name)
            ))
            .map_err(|e| DbError::sqlite(ctx, &e))?;
        }
    }
    Ok(())
}

/// Whether the load table has the row of (`order.job`, `file_id`, `order.output`): the
/// rows it recorded. The table must exist.
pub async fn loaded_before(
    conn: &mut Conn,
    order: &Order,
    file_id: &str,
) -> Result<Option<u64>, DbError> {
    let ctx = "cannot read the load table";
    let output = order.output as i64 + 1;
    match conn {
        Conn::Pg(c) => {
            let sql = format!(
                "SELECT rows FROM {} WHERE job = $1 AND file_id = $2 AND output = $3",
                quote(Kind::Postgres, &order.load_table)
            );
            let r: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&order.job)
                .bind(file_id)
                .bind(output as i32)
                .fetch_optional(&mut *c)
                .await
                .map_err(|e| DbError::sqlx(ctx, &e))?;
            Ok(r.map(|(n,)| n as u64))
        }
        Conn::My(c) => {
            let sql = format!(
                "SELECT `rows` FROM {} WHERE job = ? AND file_id = ? AND output = ?",
                quote(Kind::MySql, &order.load_table)
            );
            let r: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&order.job)
                .bind(file_id)
                .bind(output)
                .fetch_optional(&mut *c)
                .await
                .map_err(|e| DbError::sqlx(ctx, &e))?;
            Ok(r.map(|(n,)| n as u64))
        }
        Conn::Lite(c) => {
            use rusqlite::OptionalExtension;
            let sql = format!(
                "SELECT rows FROM {} WHERE job = ?1 AND file_id = ?2 AND output = ?3",
                quote(Kind::Sqlite, &order.load_table)
            );
            c.query_row(&sql, rusqlite::params![order.job, file_id, output], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|o| o.map(|n| n as u64))
            .map_err(|e| DbError::sqlite(ctx, &e))
        }
    }
}

/// A debug-build test hook: `FERRY_TEST_DIE_AFTER_DB_COMMIT=1` kills the process right
/// after a load's commit, before ferry records anything, as a power cut would.
fn die_after_commit_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("FERRY_TEST_DIE_AFTER_DB_COMMIT").is_some() {
        std::process::abort();
    }
}

/// Loads the spool `body` (after its order line) in one transaction with its load-table
/// row, unless that row is there already. `file_id` names the file in the load table.
pub async fn load(
    conn: &mut Conn,
    order: &Order,
    file_id: &str,
    body: impl BufRead + Send,
) -> Result<Loaded, DbError> {
    ensure_load_table(conn, &order.load_table).await?;
    let target = format!("{} {}", order.database, order.table);
    let loaded = match conn {
        Conn::Pg(c) => load_pg(c, order, file_id, &target, body).await?,
        Conn::My(c) => load_my(c, order, file_id, &target, body).await?,
        Conn::Lite(c) => load_lite(c, order, file_id, &target, body)?,
    };
    if matches!(loaded, Loaded::Now(_)) {
        die_after_commit_for_tests();
    }
    Ok(loaded)
}

fn cols(kind: Kind, order: &Order) -> String {
    quoted_list(kind, &order.columns)
}

/// The key's columns, quoted, comma-separated.
fn key_cols(kind: Kind, order: &Order) -> String {
    quoted_list(kind, &order.key)
}

fn quoted_list(kind: Kind, names: &[String]) -> String {
    names
        .iter()
        .map(|c| quote(kind, c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `n`th (1-based) placeholder: `$n` for PostgreSQL, `?` for MySQL, `?n` for SQLite.
fn mark(kind: Kind, n: usize) -> String {
    match kind {
        Kind::Postgres => format!("${n}"),
        Kind::MySql => "?".to_string(),
        Kind::Sqlite => format!("?{n}"),
    }
}

/// The load table's `rows` column (a reserved word in MySQL, so quoted there).
fn rows_col(kind: Kind) -> &'static str {
    if kind == Kind::MySql {
        "`rows`"
    } else {
        "rows"
    }
}

/// The statement that looks up the file's row in the load table (binds: job, file id,
/// output + 1); MySQL locks it (`FOR UPDATE`).
fn before_sql(kind: Kind, order: &Order) -> String {
    format!(
        "SELECT {} FROM {} WHERE job = {} AND file_id = {} AND output = {}{}",
        rows_col(kind),
        quote(kind, &order.load_table),
        mark(kind, 1),
        mark(kind, 2),
        mark(kind, 3),
        if kind == Kind::MySql {
            " FOR UPDATE"
        } else {
            ""
        }
    )
}

/// The statement that records the load in the load table (binds: job, file id,
/// output + 1, table, rows).
fn record_sql(kind: Kind, order: &Order) -> String {
    format!(
        "INSERT INTO {} (job, file_id, output, target, {}) VALUES ({})",
        quote(kind, &order.load_table),
        rows_col(kind),
        (1..=5)
            .map(|n| mark(kind, n))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The columns an upsert updates: every column but the key's.
fn updated(order: &Order) -> impl Iterator<Item = &String> {
    order.columns.iter().filter(|c| !order.key.contains(c))
}

async fn load_pg(
    c: &mut sqlx::PgConnection,
    order: &Order,
    file_id: &str,
    target: &str,
    mut body: impl BufRead + Send,
) -> Result<Loaded, DbError> {
    use sqlx::Connection;
    let k = Kind::Postgres;
    let mut tx = c
        .begin()
        .await
        .map_err(|e| DbError::sqlx("cannot begin a transaction", &e))?;
    let sql = before_sql(k, order);
    let before: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&order.job)
        .bind(file_id)
        .bind(order.output as i32 + 1)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| DbError::sqlx("cannot read the load table", &e))?;
    if let Some((n,)) = before {
        return Ok(Loaded::Before(n as u64));
    }
    let into = match order.mode {
        Mode::Insert => quote(k, &order.table),
        Mode::Upsert => {
            let sql = format!(
                "CREATE TEMPORARY TABLE ferry_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
                cols(k, order),
                quote(k, &order.table)
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| DbError::sqlx("cannot make the staging table", &e))?;
            "ferry_stage".to_string()
        }
    };
    let copy = format!("COPY {into} ({}) FROM STDIN", cols(k, order));
    let mut sink = tx
        .copy_in_raw(&copy)
        .await
        .map_err(|e| DbError::sqlx(&format!("cannot load into {target}"), &e))?;
    let mut rows = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = sink.abort("ferry could not read its spool").await;
                return Err(DbError::permanent(format!("cannot read the spool: {e}")));
            }
        };
        rows += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if let Err(e) = sink.send(&buf[..n]).await {
            return Err(DbError::sqlx(&format!("cannot load into {target}"), &e));
        }
    }
    sink.finish()
        .await
        .map_err(|e| DbError::sqlx(&format!("cannot load into {target}"), &e))?;
    if order.mode == Mode::Upsert {
        let key = key_cols(k, order);
        let set: Vec<String> = updated(order)
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(k, c)))
            .collect();
        let action = if set.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", set.join(", "))
        };
        // The last row of a key in the file wins, as it would row by row.
        let sql = format!(
            "INSERT INTO {} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM ferry_stage ORDER BY {key}, ctid DESC ON CONFLICT ({key}) {action}",
            quote(k, &order.table),
            cols = cols(k, order),
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| DbError::sqlx(&format!("cannot load into {target}"), &e))?;
    }
    record_pg(&mut tx, order, file_id, rows).await?;
    tx.commit().await.map_err(|e| {
        DbError::sqlx(&format!("cannot commit the load into {target}"), &e).at_commit()
    })?;
    Ok(Loaded::Now(rows))
}

async fn record_pg(
    tx: &mut sqlx::PgConnection,
    order: &Order,
    file_id: &str,
    rows: u64,
) -> Result<(), DbError> {
    let sql = record_sql(Kind::Postgres, order);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&order.job)
        .bind(file_id)
        .bind(order.output as i32 + 1)
        .bind(&order.table)
        .bind(rows as i64)
        .execute(tx)
        .await
        .map_err(|e| DbError::sqlx("cannot record the load in the load table", &e))?;
    Ok(())
}

/// Rows per multi-row `INSERT` (MySQL allows 65,535 placeholders per statement).
fn batch_rows(columns: usize) -> usize {
    (60_000 / columns.max(1)).clamp(1, 1000)
}

async fn load_my(
    c: &mut sqlx::MySqlConnection,
    order: &Order,
    file_id: &str,
    target: &str,
    body: impl BufRead + Send,
) -> Result<Loaded, DbError> {
    use sqlx::Connection;
    let k = Kind::MySql;
    let mut tx = c
        .begin()
        .await
        .map_err(|e| DbError::sqlx("cannot begin a transaction", &e))?;
    let sql = before_sql(k, order);
    let before: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&order.job)
        .bind(file_id)
        .bind(order.output as i64 + 1)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| DbError::sqlx("cannot read the load table", &e))?;
    if let Some((n,)) = before {
        return Ok(Loaded::Before(n as u64));
    }
    let n_cols = order.columns.len();
    let per = batch_rows(n_cols);
    let one = format!("({})", vec!["?"; n_cols].join(", "));
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(k, &order.table),
        cols(k, order)
    );
    let tail = match order.mode {
        Mode::Insert => String::new(),
        Mode::Upsert => {
            let set: Vec<String> = updated(order)
                .map(|c| format!("{0} = VALUES({0})", quote(k, c)))
                .collect();
            let set = if set.is_empty() {
                let first = quote(k, &order.key[0]);
                format!("{first} = {first}")
            } else {
                set.join(", ")
            };
            format!(" ON DUPLICATE KEY UPDATE {set}")
        }
    };
    let statement = |rows: usize| {
        let mut s = head.clone();
        s.push_str(&vec![one.as_str(); rows].join(", "));
        s.push_str(&tail);
        s
    };
    let full = statement(per);
    let mut batch: Vec<Vec<Option<String>>> = Vec::with_capacity(per);
    let mut rows = 0u64;
    let mut lines = body.split(b'\n');
    loop {
        let line = lines.next();
        if let Some(line) = &line {
            let line = line
                .as_ref()
                .map_err(|e| DbError::permanent(format!("cannot read the spool: {e}")))?;
            let vals = parse_row(line).map_err(DbError::permanent)?;
            batch.push(vals);
        }
        if batch.len() == per || (line.is_none() && !batch.is_empty()) {
            let sql = if batch.len() == per {
                full.clone()
            } else {
                statement(batch.len())
            };
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in batch.drain(..) {
                for v in row {
                    q = q.bind(v);
                }
            }
            q.execute(&mut *tx)
                .await
                .map_err(|e| DbError::sqlx(&format!("cannot load into {target}"), &e))?;
        }
        if line.is_none() {
            break;
        }
        rows += 1;
    }
    let sql = record_sql(k, order);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&order.job)
        .bind(file_id)
        .bind(order.output as i64 + 1)
        .bind(&order.table)
        .bind(rows as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| DbError::sqlx("cannot record the load in the load table", &e))?;
    tx.commit().await.map_err(|e| {
        DbError::sqlx(&format!("cannot commit the load into {target}"), &e).at_commit()
    })?;
    Ok(Loaded::Now(rows))
}

fn load_lite(
    c: &mut rusqlite::Connection,
    order: &Order,
    file_id: &str,
    target: &str,
    body: impl BufRead,
) -> Result<Loaded, DbError> {
    let k = Kind::Sqlite;
    let fail = |e: rusqlite::Error| DbError::sqlite(&format!("cannot load into {target}"), &e);
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| DbError::sqlite("cannot begin a transaction", &e))?;
    {
        use rusqlite::OptionalExtension;
        let sql = before_sql(k, order);
        let before: Option<i64> = tx
            .query_row(
                &sql,
                rusqlite::params![order.job, file_id, order.output as i64 + 1],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| DbError::sqlite("cannot read the load table", &e))?;
        if let Some(n) = before {
            return Ok(Loaded::Before(n as u64));
        }
    }
    let marks: Vec<String> = (1..=order.columns.len()).map(|i| format!("?{i}")).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(k, &order.table),
        cols(k, order),
        marks.join(", ")
    );
    if order.mode == Mode::Upsert {
        let key = key_cols(k, order);
        let set: Vec<String> = updated(order)
            .map(|c| format!("{0} = excluded.{0}", quote(k, c)))
            .collect();
        if set.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({key}) DO NOTHING"));
        } else {
            sql.push_str(&format!(
                " ON CONFLICT ({key}) DO UPDATE SET {}",
                set.join(", ")
            ));
        }
    }
    let mut rows = 0u64;
    {
        let mut st = tx.prepare(&sql).map_err(fail)?;
        for line in body.split(b'\n') {
            let line =
                line.map_err(|e| DbError::permanent(format!("cannot read the spool: {e}")))?;
            let vals = parse_row(&line).map_err(DbError::permanent)?;
            let bound: Vec<rusqlite::types::Value> = vals
                .into_iter()
                .zip(&order.binds)
                .map(|(v, b)| lite_value(v, b))
                .collect();
            st.execute(rusqlite::params_from_iter(bound))
                .map_err(fail)?;
            rows += 1;
        }
    }
    tx.execute(
        &record_sql(k, order),
        rusqlite::params![
            order.job,
            file_id,
            order.output as i64 + 1,
            order.table,
            rows as i64
        ],
    )
    .map_err(|e| DbError::sqlite("cannot record the load in the load table", &e))?;
    tx.commit()
        .map_err(|e| DbError::sqlite(&format!("cannot commit the load into {target}"), &e))?;
    Ok(Loaded::Now(rows))
}

/// A spool value bound with the storage class its column wants (`int`, `float`), else as
/// text.
fn lite_value(v: Option<String>, bind: &str) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    let Some(v) = v else {
        return Value::Null;
    };
    match bind {
        "int" => v.parse().map(Value::Integer).unwrap_or(Value::Text(v)),
        "float" => v.parse().map(Value::Real).unwrap_or(Value::Text(v)),
        _ => Value::Text(v),
    }
}

/// How SQLite should bind a column's values.
pub fn bind_of(ty: &ColType) -> &'static str {
    match ty {
        ColType::Int { .. } | ColType::Bool => "int",
        ColType::Float => "float",
        _ => "text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_rows_round_trip() {
        let order = Order {
            job: "j".into(),
            output: 0,
            database: "sqlite://x".into(),
            table: "t".into(),
            columns: vec!["a".into(), "b".into()],
            binds: vec!["text".into(), "text".into()],
            mode: Mode::Insert,
            key: vec![],
            load_table: DEFAULT_LOAD_TABLE.into(),
        };
        let mut w = SpoolWriter::new(Vec::new(), &order).unwrap();
        w.row([Some("a\tb\\c\nd\r"), None]).unwrap();
        w.row([Some(""), Some("\\N")]).unwrap();
        let bytes = w.finish();
        let mut r = io::Cursor::new(bytes);
        assert_eq!(read_order(&mut r).unwrap().columns, order.columns);
        let mut lines = r.split(b'\n');
        assert_eq!(
            parse_row(&lines.next().unwrap().unwrap()).unwrap(),
            vec![Some("a\tb\\c\nd\r".to_string()), None]
        );
        assert_eq!(
            parse_row(&lines.next().unwrap().unwrap()).unwrap(),
            vec![Some(String::new()), Some("\\N".to_string())]
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote(Kind::Postgres, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote(Kind::MySql, "a`b"), "`a``b`");
        assert_eq!(quote(Kind::Postgres, "s.t"), "\"s\".\"t\"");
    }

    #[test]
    fn load_table_statements() {
        let order = Order {
            job: "j".into(),
            output: 0,
            database: "x".into(),
            table: "t".into(),
            columns: vec!["a".into()],
            binds: vec!["text".into()],
            mode: Mode::Insert,
            key: vec![],
            load_table: "l".into(),
        };
        assert_eq!(
            before_sql(Kind::Postgres, &order),
            "SELECT rows FROM \"l\" WHERE job = $1 AND file_id = $2 AND output = $3"
        );
        assert_eq!(
            before_sql(Kind::MySql, &order),
            "SELECT `rows` FROM `l` WHERE job = ? AND file_id = ? AND output = ? FOR UPDATE"
        );
        assert_eq!(
            before_sql(Kind::Sqlite, &order),
            "SELECT rows FROM \"l\" WHERE job = ?1 AND file_id = ?2 AND output = ?3"
        );
        assert_eq!(
            record_sql(Kind::Postgres, &order),
            "INSERT INTO \"l\" (job, file_id, output, target, rows) VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            record_sql(Kind::MySql, &order),
            "INSERT INTO `l` (job, file_id, output, target, `rows`) VALUES (?, ?, ?, ?, ?)"
        );
        assert_eq!(
            record_sql(Kind::Sqlite, &order),
            "INSERT INTO \"l\" (job, file_id, output, target, rows) VALUES (?1, ?2, ?3, ?4, ?5)"
        );
    }
}
