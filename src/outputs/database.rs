//! The database output in a file's delivery (docs/databases.md):
//!
//! - step 2 ([`prepare`], then [`DbWriter`] in the record pipeline): connect, read the
//!   target table's columns, and write the records, each value converted for its column,
//!   to a spool file under the output's temporary name in its local `outbox`, fsynced like
//!   any temporary output. A value that does not fit is a record error (the file fails, or
//!   the record goes to the rejects file with `on_error = "skip"`); a database that cannot
//!   be reached is a failure that may pass (the file is queued).
//! - step 3: the plan names the spool (its policy is `database`).
//! - step 4 ([`commit`], called by the rename step for a planned output with that policy,
//!   live or by recovery): the spool is loaded in one transaction with its row in the load
//!   table (`db::load`), then removed. A spool whose load-table row exists was loaded
//!   before a crash: it is only removed. The original is disposed of after this, as after
//!   any output's rename.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::db::connect::{self, DbError, Kind};
use crate::db::load::{self, Loaded, Order, SpoolWriter};
use crate::db::types::{self, Column, Described};
use crate::formats::{self, ParseError, Record};
use crate::job::database::DatabaseOutput;

/// The policy recorded in the plan for a database output's spool.
pub const POLICY: &str = "database";

/// The connection settings of each job's database outputs, by (job, output index), for the
/// commit step, which gets only the plan (live and at recovery).
type Registry = Mutex<HashMap<(String, u32), Arc<DatabaseOutput>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Makes the database outputs of `job` known to [`commit`] (at load and before recovery).
pub fn register(job: &crate::job::Job) {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    for (i, o) in job.outputs.iter().enumerate() {
        if let crate::job::data::OutputFormat::Database(db, _) = &o.data.format {
            r.insert((job.name.clone(), i as u32), db.clone());
        }
    }
}

/// Step 2, before the records are read: connects and reads the target table's columns
/// (for output `output` of `job`).
pub fn prepare(db: &DatabaseOutput, job: &str, output: u32) -> Result<Arc<Described>, DbError> {
    connect::block_on(async {
        let mut conn = connect::connect(&db.url, db.ca_file.as_deref()).await?;
        let mut columns = describe(&mut conn, &db.table).await?;
        if columns.is_empty()
            && let Some(sql) = &db.create_table
        {
            create_table(&mut conn, sql).await?;
            columns = describe(&mut conn, &db.table).await?;
        }
        if columns.is_empty() {
            return Err(DbError::permanent(format!(
                "the table {:?} does not exist in {} (or ferry's login cannot see it)",
                db.table,
                db.url.display()
            )));
        }
        Ok(Arc::new(Described {
            kind: db.url.kind,
            columns,
            job: job.to_string(),
            output,
        }))
    })
}

/// Runs the output's `create_table` statement (the table was missing). A statement that
/// fails (a syntax error, no right to create tables) fails the file as any other
/// permanent database error; two files that race to create the table both go on when the
/// statement says `IF NOT EXISTS`.
async fn create_table(conn: &mut connect::Conn, sql: &str) -> Result<(), DbError> {
    let ctx = "cannot create the table (`create_table`)";
    match conn {
        connect::Conn::Pg(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut *c)
            .await
            .map(drop)
            .map_err(|e| DbError::sqlx(ctx, &e)),
        connect::Conn::My(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut *c)
            .await
            .map(drop)
            .map_err(|e| DbError::sqlx(ctx, &e)),
        connect::Conn::Lite(c) => c.execute_batch(sql).map_err(|e| DbError::sqlite(ctx, &e)),
    }
}

/// The columns of `table` as the database reports them (none: no such table).
async fn describe(conn: &mut connect::Conn, table: &str) -> Result<Vec<Column>, DbError> {
    let (schema, name) = match table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, table.to_string()),
    };
    let ctx = "cannot read the table's columns";
    type Row = (
        String,
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        String,
    );
    let rows: Vec<Row> = match conn {
        connect::Conn::Pg(c) => sqlx::query_as(
            "SELECT column_name::text, data_type::text, data_type::text, numeric_precision::int8, numeric_scale::int8, character_maximum_length::int8, is_nullable::text FROM information_schema.columns WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(&mut *c)
        .await
        .map_err(|e| DbError::sqlx(ctx, &e))?,
        connect::Conn::My(c) => sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED), CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED), CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(&mut *c)
        .await
        .map_err(|e| DbError::sqlx(ctx, &e))?,
        connect::Conn::Lite(c) => {
            let sql = format!(
                "PRAGMA table_info({})",
                load::quote(Kind::Sqlite, table)
            );
            let mut st = c.prepare(&sql).map_err(|e| DbError::sqlite(ctx, &e))?;
            st.query_map([], |r| {
                let ty: String = r.get(2)?;
                let notnull: i64 = r.get(3)?;
                let pk: i64 = r.get(5)?;
                Ok((
                    r.get::<_, String>(1)?,
                    ty.clone(),
                    ty,
                    None,
                    None,
                    None,
                    if notnull != 0 && pk == 0 { "NO" } else { "YES" }.to_string(),
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| DbError::sqlite(ctx, &e))?
        }
    };
    let kind = match conn {
        connect::Conn::Pg(_) => Kind::Postgres,
        connect::Conn::My(_) => Kind::MySql,
        connect::Conn::Lite(_) => Kind::Sqlite,
    };
    Ok(rows
        .into_iter()
        .map(
            |(name, data_type, column_type, p, s, len, nullable)| Column {
                ty: types::ColType::from_db(kind, &data_type, &column_type, p, s, len),
                type_name: if column_type.is_empty() {
                    data_type
                } else {
                    column_type
                },
                name,
                nullable: nullable == "YES",
            },
        )
        .collect())
}

/// The field names of a record, and the index among them of each spool column's field.
type FieldIndexes = (Arc<[String]>, Vec<Option<usize>>);

/// Writes a file's records, converted for their columns, to the spool.
pub struct DbWriter<W: Write> {
    db: Arc<DatabaseOutput>,
    described: Arc<Described>,
    job: String,
    output: u32,
    out: Option<W>,
    spool: Option<SpoolWriter<W>>,
    /// The field of each spool column, and its column.
    map: Vec<(String, Column)>,
    /// The names of the record the field indexes were found for, and the indexes.
    names: Option<FieldIndexes>,
    vals: Vec<Option<String>>,
    /// A problem of the whole file (a field without a column): it fails the file even
    /// with `on_error = "skip"`.
    fatal: Option<ParseError>,
}

impl<W: Write> DbWriter<W> {
    pub fn new(out: W, db: Arc<DatabaseOutput>, described: Arc<Described>) -> Self {
        DbWriter {
            job: described.job.clone(),
            output: described.output,
            db,
            described,
            out: Some(out),
            spool: None,
            map: Vec::new(),
            names: None,
            vals: Vec::new(),
            fatal: None,
        }
    }

    /// The column named `name` (exactly, else the one that matches ignoring case:
    /// PostgreSQL folds unquoted names to lower case).
    fn column(&self, name: &str) -> Option<&Column> {
        let cols = &self.described.columns;
        cols.iter().find(|c| c.name == name).or_else(|| {
            let mut m = cols.iter().filter(|c| c.name.eq_ignore_ascii_case(name));
            match (m.next(), m.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
    }

    /// The spool's columns, from the mapping or (without one) the first record's fields;
    /// the spool's first line is written then.
    fn start(&mut self, rec: &Record) -> Result<(), ParseError> {
        let pairs: Vec<(String, String)> = if self.db.columns.is_empty() {
            rec.names.iter().map(|n| (n.clone(), n.clone())).collect()
        } else {
            self.db.columns.clone()
        };
        let mut map = Vec::new();
        for (field, col) in pairs {
            let Some(c) = self.column(&col) else {
                return Err(ParseError {
                    field: Some(field.clone()),
                    ..ParseError::new(format!(
                        "the table {} has no column {col:?} for field {field:?} (map fields to columns with `columns = {{ Field = \"column\" }}`)",
                        self.db.table
                    ))
                }
                .at(rec.pos));
            };
            map.push((field, c.clone()));
        }
        let order = Order {
            job: self.job.clone(),
            output: self.output,
            database: self.db.url.display(),
            table: self.db.table.clone(),
            columns: map.iter().map(|(_, c)| c.name.clone()).collect(),
            binds: map
                .iter()
                .map(|(_, c)| load::bind_of(&c.ty).to_string())
                .collect(),
            mode: self.db.mode,
            key: self
                .db
                .key
                .iter()
                .map(|k| self.column(k).map_or(k.clone(), |c| c.name.clone()))
                .collect(),
            load_table: self.db.load_table.clone(),
        };
        for k in &order.key {
            if !order.columns.contains(k) {
                return Err(ParseError::new(format!(
                    "the key column {k:?} is not among the columns loaded ({})",
                    order.columns.join(", ")
                ))
                .at(rec.pos));
            }
        }
        let out = self.out.take().expect("the spool is started once");
        self.spool =
            Some(SpoolWriter::new(out, &order).map_err(|e| {
                ParseError::new(format!("cannot write the spool: {e}")).at(rec.pos)
            })?);
        self.map = map;
        Ok(())
    }

    pub fn write(&mut self, rec: &Record) -> Result<(), ParseError> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        if self.spool.is_none()
            && let Err(e) = self.start(rec)
        {
            self.fatal = Some(e.clone());
            return Err(e);
        }
        if !self
            .names
            .as_ref()
            .is_some_and(|(n, _)| Arc::ptr_eq(n, &rec.names))
        {
            let idx = self
                .map
                .iter()
                .map(|(f, _)| rec.names.iter().position(|n| n == f))
                .collect();
            self.names = Some((rec.names.clone(), idx));
        }
        let (_, idx) = self.names.as_ref().expect("set above");
        self.vals.clear();
        for ((field, col), i) in self.map.iter().zip(idx) {
            let (value, null) = match i {
                Some(i) => (
                    rec.values.get(*i).map_or("", String::as_str),
                    rec.kind(*i) == formats::Kind::Null,
                ),
                None => ("", true),
            };
            match types::convert(self.described.kind, col, value, null) {
                Ok(v) => self.vals.push(v),
                Err(why) => {
                    return Err(ParseError {
                        pos: Some(rec.pos),
                        field: Some(field.clone()),
                        value: Some(value.to_string()),
                        message: format!("cannot load into column {:?}: {why}", col.name),
                    });
                }
            }
        }
        let spool = self.spool.as_mut().expect("started");
        spool
            .row(self.vals.iter().map(|v| v.as_deref()))
            .map_err(|e| ParseError::new(format!("cannot write the spool: {e}")).at(rec.pos))
    }

    /// The sink, once every record is written (a file without records gets a spool with
    /// no columns: only its load-table row is recorded).
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(e) = self.fatal.take() {
            return Err(io::Error::other(e.to_string()));
        }
        match self.spool.take() {
            Some(s) => Ok(s.finish()),
            None => {
                let mut out = self.out.take().expect("not started");
                let order = Order {
                    job: self.job.clone(),
                    output: self.output,
                    database: self.db.url.display(),
                    table: self.db.table.clone(),
                    columns: Vec::new(),
                    binds: Vec::new(),
                    mode: self.db.mode,
                    key: self.db.key.clone(),
                    load_table: self.db.load_table.clone(),
                };
                serde_json::to_writer(&mut out, &order)?;
                out.write_all(b"\n")?;
                Ok(out)
            }
        }
    }
}

/// Step 4 for a database output: loads the spool at `temp` (planned for file `id`) in one
/// transaction with its load-table row, then removes the spool. `Ok` also when the
/// load-table row shows it loaded before. An error may pass or not
/// ([`crate::outputs::failure::of_io`] tells, from its kind).
pub fn commit(journal: &crate::journal::Journal, id: i64, temp: &Path) -> io::Result<()> {
    let mut r = BufReader::with_capacity(256 << 10, std::fs::File::open(temp)?);
    let order = load::read_order(&mut r)?;
    let db = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(order.job.clone(), order.output))
        .cloned()
        .ok_or_else(|| {
            io::Error::other(format!(
                "the job {:?} (output {}) is not loaded, so the database it names is not known; its spool stays in the outbox",
                order.job,
                order.output + 1
            ))
        })?;
    let journal_id = journal
        .read(crate::journal::journal_id)
        .map_err(io::Error::other)?
        .unwrap_or_default();
    let file_id = format!("{journal_id}:{id}");
    let loaded = connect::block_on(async {
        let mut conn = connect::connect(&db.url, db.ca_file.as_deref()).await?;
        match load::load(&mut conn, &order, &file_id, r).await {
            Ok(l) => Ok(l),
            // A commit whose answer was lost may have happened: ask the load table.
            Err(e) if e.transient => match verify(&db, &order, &file_id).await {
                Some(Some(n)) => Ok(Loaded::Before(n)),
                // Asked, and not there: the transaction was rolled back.
                Some(None) => Err(DbError {
                    in_doubt: false,
                    ..e
                }),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    })
    .map_err(|e| {
        if e.in_doubt {
            io::Error::new(io::ErrorKind::ConnectionAborted, InDoubt(e.message))
        } else {
            e.into_io()
        }
    })?;
    match loaded {
        Loaded::Now(n) => {
            tracing::info!(database = %order.database, table = %order.table, rows = n, "Records loaded.")
        }
        Loaded::Before(n) => {
            tracing::info!(database = %order.database, table = %order.table, rows = n, "The load table shows this file loaded before (ferry stopped before it recorded it); not loaded again.")
        }
    }
    std::fs::remove_file(temp)
}

/// After a failure: whether the load table has the file's row after all (`None`: the
/// database cannot be asked).
async fn verify(db: &DatabaseOutput, order: &Order, file_id: &str) -> Option<Option<u64>> {
    let mut conn = connect::connect(&db.url, db.ca_file.as_deref())
        .await
        .ok()?;
    load::loaded_before(&mut conn, order, file_id).await.ok()
}

/// A commit whose outcome is not known: the connection broke while it was on its way and
/// the database could not be asked since. The file's plan must stay (recovery asks the
/// load table at the next start); withdrawing it and trying again under a new file id
/// could load the file twice.
#[derive(Debug)]
pub struct InDoubt(pub String);

impl std::fmt::Display for InDoubt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (the commit's outcome is not known; ferry asks the load table at its next start)",
            self.0
        )
    }
}

impl std::error::Error for InDoubt {}

/// Whether `e` is an [`InDoubt`] commit.
pub fn is_in_doubt(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<InDoubt>())
}
