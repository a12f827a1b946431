//! The audit log's search (the Files page): filters by job, file name, state, date range
//! and content hash, newest first, one page at a time.
//!
//! Files are listed by when they were first seen, newest first (then by id). Pages are
//! keyset-paginated on `(first_seen, id)` of the row a page ends with (`before=ID`, or
//! `after=ID` going back), never `OFFSET`: a page costs the same on page 1 and page
//! 20,000. The list order, alone or after the job, the state or a date range, is an index
//! of the journal (schema versions 7 and 8, `journal::schema`: `(first_seen)`,
//! `(job, first_seen)`, `(state, first_seen)`; SQLite indexes end with the rowid), so SQLite
//! reads a page's rows in order from the index and stops after one page; a name or hash is
//! looked up in `(name, first_seen)` or `(hash, first_seen)`, whose entries alone say which
//! matches make the page: the page's ids are chosen from the index, then only their rows
//! are read.

use rusqlite::Connection;
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

/// Rows on one page.
pub const PAGE: usize = 50;

/// The search form, as the query string carries it (empty fields are no filter).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Query {
    pub job: String,
    /// The file name, or its beginning; `*` and `?` make it a glob.
    pub name: String,
    /// A journal state: `done`, `failed`, `retried`, `taken`, ...
    pub status: String,
    /// First seen on or after this day (YYYY-MM-DD, local time).
    pub from: String,
    /// First seen on or before this day (YYYY-MM-DD, local time).
    pub to: String,
    /// The original's sha256, or its beginning.
    pub hash: String,
    /// Older than this id (the next page).
    pub before: Option<i64>,
    /// Newer than this id (the previous page).
    pub after: Option<i64>,
}

/// One file in the list.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub job: String,
    pub name: String,
    pub path: String,
    pub size: i64,
    pub state: String,
    pub seen: String,
    pub hash: Option<String>,
    pub error: Option<String>,
}

/// One page of results, and the cursors to the pages around it.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub rows: Vec<Row>,
    /// `before` for the next (older) page, when there is one.
    pub older: Option<i64>,
    /// `after` for the previous (newer) page, when this is not the first.
    pub newer: Option<i64>,
}

/// A date field that is not YYYY-MM-DD.
#[derive(Debug, thiserror::Error)]
#[error("{field}: expected a date as YYYY-MM-DD, found {found:?}")]
pub struct BadDate {
    pub field: &'static str,
    pub found: String,
}

/// Local midnight of `day` (+ `days`), in ms since the epoch.
fn day_ms(field: &'static str, day: &str, days: i64) -> Result<i64, BadDate> {
    use chrono::TimeZone;
    let bad = || BadDate {
        field,
        found: day.to_string(),
    };
    let d = chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d").map_err(|_| bad())?;
    let d = d + chrono::Duration::days(days);
    let midnight = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    chrono::Local
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)
}

/// `prefix` as a range `[prefix, prefix + U+10FFFF)`, which an index serves (SQLite
/// compares text by its UTF-8 bytes, and no character sorts after U+10FFFF).
fn prefix_range(column: &str, prefix: &str, w: &mut Where) {
    w.add(&format!("{column} >= ?"), prefix.to_string().into());
    w.add(
        &format!("{column} < ?"),
        format!("{prefix}\u{10FFFF}").into(),
    );
}

#[derive(Default)]
struct Where {
    sql: Vec<String>,
    args: Vec<Value>,
}

impl Where {
    fn add(&mut self, cond: &str, arg: Value) {
        self.sql.push(cond.to_string());
        self.args.push(arg);
    }

    /// Rows before (`<`) or after (`>`) the file `id` in the list order; a file that is
    /// not in the journal is placed by its id alone.
    fn around(&mut self, conn: &Connection, op: &str, id: i64) -> rusqlite::Result<()> {
        use rusqlite::OptionalExtension;
        let seen: Option<Option<i64>> = conn
            .query_row("SELECT first_seen FROM files WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        match seen.flatten() {
            Some(seen) => {
                self.sql.push(format!("(first_seen, id) {op} (?, ?)"));
                self.args.extend([seen.into(), id.into()]);
            }
            None => self.add(&format!("id {op} ?"), id.into()),
        }
        Ok(())
    }
}

fn conditions(q: &Query) -> Result<Where, BadDate> {
    let mut w = Where::default();
    if !q.job.trim().is_empty() {
        w.add("job = ?", q.job.trim().to_string().into());
    }
    if !q.status.trim().is_empty() {
        w.add("state = ?", q.status.trim().to_string().into());
    }
    let name = q.name.trim();
    if name.contains(['*', '?', '[']) {
        w.add("name GLOB ?", name.to_string().into());
    } else if !name.is_empty() {
        prefix_range("name", name, &mut w);
    }
    let hash = q.hash.trim().to_ascii_lowercase();
    if !hash.is_empty() {
        prefix_range("hash", &hash, &mut w);
    }
    if !q.from.trim().is_empty() {
        w.add("first_seen >= ?", day_ms("from", &q.from, 0)?.into());
    }
    if !q.to.trim().is_empty() {
        w.add("first_seen < ?", day_ms("to", &q.to, 1)?.into());
    }
    Ok(w)
}

/// One page of the files matching `q`.
pub fn search(conn: &Connection, q: &Query) -> Result<Page, SearchError> {
    let mut w = conditions(q)?;
    let backwards = q.before.is_none() && q.after.is_some();
    if let Some(b) = q.before {
        w.around(conn, "<", b)?;
    } else if let Some(a) = q.after {
        w.around(conn, ">", a)?;
    }
    let filter = if w.sql.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", w.sql.join(" AND "))
    };
    let dir = if backwards { "ASC" } else { "DESC" };
    // The page's ids first (from an index alone when the filters are in one), then
    // only those rows: the rows of every match are never read to be sorted.
    let sql = format!(
        "SELECT id, job, name, path, size, state, first_seen, hash, error FROM files
         WHERE id IN ({}) ORDER BY first_seen {dir}, id {dir}",
        page_ids(&filter, dir)
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows: Vec<Row> = st
        .query_map(rusqlite::params_from_iter(w.args.iter()), row)?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    if backwards {
        rows.reverse();
    }
    let (first, last) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id));
    let (older, newer) = match (backwards, q.before.is_some()) {
        (true, _) => (last, more.then_some(first).flatten()),
        (false, paged) => (
            more.then_some(last).flatten(),
            paged.then_some(first).flatten(),
        ),
    };
    Ok(Page { rows, older, newer })
}

/// The ids of one page (and one more, to know there is a next) in the list order.
fn page_ids(filter: &str, dir: &str) -> String {
    format!(
        "SELECT id FROM files {filter} ORDER BY first_seen {dir}, id {dir} LIMIT {}",
        PAGE + 1
    )
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let scrub = |s: String| crate::redact::scrub(&s).into_owned();
    Ok(Row {
        id: r.get(0)?,
        job: r.get(1)?,
        name: scrub(r.get(2)?),
        path: scrub(r.get(3)?),
        size: r.get(4)?,
        state: r.get(5)?,
        seen: r
            .get::<_, Option<i64>>(6)?
            .map(crate::journal::fmt_time)
            .unwrap_or_default(),
        hash: r.get(7)?,
        error: r
            .get::<_, Option<String>>(8)?
            .map(|e| scrub(e.lines().next().unwrap_or_default().to_string())),
    })
}

/// Why a search could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Date(#[from] BadDate),
    #[error("cannot read the journal: {0}")]
    Journal(#[from] rusqlite::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE files (id INTEGER PRIMARY KEY, job TEXT, name TEXT, path TEXT,
               size INTEGER, state TEXT, first_seen INTEGER, hash TEXT, error TEXT);",
        )
        .unwrap();
        for i in 1..=120i64 {
            let (job, state) = if i % 3 == 0 {
                ("b", "failed")
            } else {
                ("a", "done")
            };
            c.execute(
                "INSERT INTO files VALUES (?1, ?2, ?3, '/in/' || ?3, 10, ?4, ?5, ?6, NULL)",
                rusqlite::params![
                    i,
                    job,
                    format!("F-{i:03}.csv"),
                    state,
                    i * 1000,
                    format!("{i:064x}")
                ],
            )
            .unwrap();
        }
        c
    }

    fn ids(p: &Page) -> Vec<i64> {
        p.rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn name_and_hash_pages_are_chosen_from_an_index_alone() {
        let dir = std::env::temp_dir().join(format!("ferry-search-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        drop(crate::journal::Journal::open(&dir, false).unwrap());
        let c = crate::journal::Journal::open_read_only(&dir)
            .unwrap()
            .unwrap();
        for (q, index) in [
            (
                Query {
                    name: "ORD-0".into(),
                    ..Default::default()
                },
                "COVERING INDEX files_name_seen",
            ),
            (
                Query {
                    hash: "ab12".into(),
                    ..Default::default()
                },
                "COVERING INDEX files_hash_seen",
            ),
        ] {
            let w = conditions(&q).unwrap();
            let filter = format!("WHERE {}", w.sql.join(" AND "));
            let sql = format!("EXPLAIN QUERY PLAN {}", page_ids(&filter, "DESC"));
            let mut st = c.prepare(&sql).unwrap();
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(w.args.iter()), |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(plan.iter().any(|p| p.contains(index)), "{plan:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pages_go_back_and_forth_by_id() {
        let c = journal();
        let first = search(&c, &Query::default()).unwrap();
        assert_eq!(ids(&first)[..2], [120, 119]);
        assert_eq!((first.older, first.newer), (Some(71), None));
        let second = search(
            &c,
            &Query {
                before: first.older,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&second)[0], 70);
        assert_eq!(second.newer, Some(70));
        let back = search(
            &c,
            &Query {
                after: second.newer,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&back), ids(&first));
        assert_eq!(back.newer, None);
        let third = search(
            &c,
            &Query {
                before: second.older,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ids(&third), (1..=20).rev().collect::<Vec<_>>());
        assert_eq!(third.older, None);
    }

    #[test]
    fn filters_combine() {
        let c = journal();
        let q = Query {
            job: "b".into(),
            status: "failed".into(),
            name: "F-0".into(),
            ..Default::default()
        };
        let p = search(&c, &q).unwrap();
        assert_eq!(
            ids(&p),
            (1..=99).rev().filter(|i| i % 3 == 0).collect::<Vec<_>>()
        );
        let glob = Query {
            name: "F-1?0.csv".into(),
            ..Default::default()
        };
        assert_eq!(ids(&search(&c, &glob).unwrap()), [120, 110, 100]);
        let hash = Query {
            hash: format!("{:062x}", 0) + "7",
            ..Default::default()
        };
        assert_eq!(
            ids(&search(&c, &hash).unwrap()),
            [
                0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x7a, 0x79, 0x78, 0x77, 0x76, 0x75, 0x74, 0x73, 0x72,
                0x71, 0x70
            ]
            .into_iter()
            .filter(|&i| i <= 120)
            .collect::<Vec<_>>()
        );
        let bad = Query {
            from: "yesterday".into(),
            ..Default::default()
        };
        assert!(
            search(&c, &bad)
                .unwrap_err()
                .to_string()
                .contains("YYYY-MM-DD")
        );
    }
}
