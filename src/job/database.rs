//! A database output (`[[output]] database = "postgres://..."`): its keys, read with every
//! problem at file:line:column. The loading is `outputs::database` with `db::load`
//! (docs/databases.md).

use std::path::{Path, PathBuf};

use super::toml_reader::{Doc, Str, TableReader, one_of};
use crate::db::connect::DbUrl;
use crate::db::load::{DEFAULT_LOAD_TABLE, Mode};
use crate::secrets::Secret;

/// Where and how an output's records are loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOutput {
    /// The database, its password (`password`, or one written in the URL) set.
    pub url: DbUrl,
    /// The target table (`schema.table` allowed).
    pub table: String,
    pub mode: Mode,
    /// The columns that identify a row, for `mode = "upsert"`.
    pub key: Vec<String>,
    /// Record field -> column; empty: every field into the column of its name.
    pub columns: Vec<(String, String)>,
    /// The table ferry records its loads in.
    pub load_table: String,
    /// `create_table`: the statement that creates `table` when it does not exist.
    pub create_table: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Reads the database keys of an output table whose `database` is `url_s`.
pub fn read_database(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    url_s: &Str,
) -> Option<DatabaseOutput> {
    let url = read_url(doc, root, url_s);
    let password = read_password(doc, t)?;
    let table = t.str(doc, "table");
    if table.is_none() {
        doc.error(
            t.span.clone(),
            &format!("{}.table", t.path),
            "missing `table`: the table the records go into, e.g. `table = \"orders\"`",
        );
    }
    let mode_raw = t.str(doc, "mode");
    let mode = one_of(
        doc,
        mode_raw,
        &[("insert", Mode::Insert), ("upsert", Mode::Upsert)],
        Mode::Insert,
    );
    let key_raw = t.str_list(doc, "key");
    let columns: Vec<(String, String)> = (t.str_map(doc, "columns").unwrap_or_default())
        .into_iter()
        .map(|(field, col)| (field, col.value))
        .collect();
    let load_table = t
        .str(doc, "load_table")
        .map(|s| s.value)
        .unwrap_or_else(|| DEFAULT_LOAD_TABLE.to_string());
    let ca_file = t.str(doc, "ca_file").map(|s| root.join(s.value));
    let create_table = t.str(doc, "create_table").map(|s| s.value);
    let key: Vec<String> = key_raw
        .as_ref()
        .map(|k| k.iter().map(|s| s.value.clone()).collect())
        .unwrap_or_default();
    if !check_key(doc, t, mode, (key_raw.as_deref(), &key), &columns) {
        return None;
    }
    let mut url = url?;
    if let Some(p) = password {
        url.password = Some(p);
    }
    Some(DatabaseOutput {
        url,
        table: table?.value,
        mode: mode?,
        key,
        columns,
        load_table,
        create_table,
        ca_file,
    })
}

/// The `database` URL, its file path (SQLite) resolved against `root`. `None` when wrong
/// (reported).
fn read_url(doc: &mut Doc<'_>, root: &Path, url_s: &Str) -> Option<DbUrl> {
    let (mut u, in_url) = match DbUrl::parse(&url_s.value) {
        Ok(x) => x,
        Err(e) => {
            doc.error(url_s.span.clone(), &url_s.key, e);
            return None;
        }
    };
    u.resolve_path(root);
    // `postgres://user:${env:PW}@host/db` names the secret in the URL itself.
    match in_url.map(|p| Secret::parse(&p)).transpose() {
        Ok(p) => {
            u.password = p;
            Some(u)
        }
        Err(e) => {
            doc.error(url_s.span.clone(), &url_s.key, e);
            None
        }
    }
}

/// `password` (it replaces one in the URL): `Some(None)` without it, `None` when wrong
/// (reported).
fn read_password(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<Option<Secret>> {
    match t.str(doc, "password") {
        Some(p) => match Secret::parse(&p.value) {
            Ok(s) => Some(Some(s)),
            Err(e) => {
                doc.error(p.span.clone(), &p.key, e);
                None
            }
        },
        None => Some(None),
    }
}

/// `key` (as written, and its column names) goes with `mode = "upsert"`, which needs it;
/// with `columns`, each key column must be one of them. False (reported) when not.
fn check_key(
    doc: &mut Doc<'_>,
    t: &TableReader<'_, '_>,
    mode: Option<Mode>,
    (key_raw, key): (Option<&[Str]>, &[String]),
    columns: &[(String, String)],
) -> bool {
    if mode == Some(Mode::Upsert) && key.is_empty() {
        doc.error(
            t.span_of("mode"),
            &format!("{}.mode", t.path),
            "`mode = \"upsert\"` needs `key`: the columns that identify a row, e.g. `key = [\"OrderNo\"]`",
        );
        return false;
    }
    if mode == Some(Mode::Insert)
        && let Some(k) = key_raw.and_then(|k| k.first())
    {
        doc.error(
            k.span.clone(),
            &k.key,
            "`key` is used by `mode = \"upsert\"` only; remove it or set the mode",
        );
        return false;
    }
    if !columns.is_empty()
        && let Some(k) = key.iter().find(|k| !columns.iter().any(|(_, c)| c == *k))
    {
        doc.error(
            t.span_of("key"),
            &format!("{}.key", t.path),
            format!("the key column {k:?} is not one of the columns in `columns`"),
        );
        return false;
    }
    true
}

/// Reads an output table with `database`: its database keys and its local spool folder
/// (`outbox`, as FTP and email outputs have; `folder` is refused). Returns the spool
/// folder (the output's folder), and the database when its keys are right.
pub(super) fn read_output(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    folder: &mut Option<Str>,
    (job_name, idx): (&str, usize),
    has_input: bool,
) -> (Str, Option<DatabaseOutput>) {
    let url = t.str(doc, "database");
    if let Some(f) = folder.take() {
        doc.error(
            f.span.clone(),
            &f.key,
            "a database output is written to a local `outbox` first (default \"var/outbox/{job}/N\"), then loaded; remove `folder`",
        );
    }
    for other in ["ftp", "email"] {
        if t.has(other) {
            doc.error(
                t.span_of(other),
                &format!("{}.{other}", t.path),
                format!("an output has either `database` or `{other}`, not both"),
            );
        }
    }
    if !has_input && let Some(u) = &url {
        doc.error(
            u.span.clone(),
            &u.key,
            "a database output loads records: the job needs an `[input]` section that says how to read the file",
        );
    }
    let db = url.and_then(|u| read_database(doc, root, t, &u));
    let (_, outbox) = super::output::read_outbox(doc, root, t, job_name, idx);
    (outbox, db.filter(|_| has_input))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::job::data::OutputFormat;
    use crate::secrets::Secret;

    const HEAD: &str = "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n[[output]]\n";

    fn compile(out: &str) -> Result<crate::job::Job, Vec<crate::job::Diag>> {
        let root = Path::new("/srv/ferry");
        crate::job::compile(&root.join("jobs/j.toml"), root, &format!("{HEAD}{out}"))
    }

    fn errors(out: &str) -> String {
        compile(out)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|d| format!("{}:{} {} {}\n", d.line, d.col, d.key, d.message))
            .collect()
    }

    #[test]
    fn keys_are_read_and_mistakes_reported_at_their_place() {
        let job = compile(
            "database = \"mariadb://u:${env:PW}@db:3307/erp\"\ntable = \"orders\"\nmode = \"upsert\"\nkey = [\"no\"]\ncolumns = { No = \"no\", Amount = \"amount\" }\n",
        )
        .unwrap();
        let OutputFormat::Database(db, None) = &job.outputs[0].data.format else {
            panic!("not a database output");
        };
        assert_eq!(db.url.password, Some(Secret::Env("PW".into())));
        assert_eq!(db.load_table, "ferry_loads");
        assert_eq!(db.columns.len(), 2);
        assert!(
            job.outputs[0]
                .folder
                .literal_prefix()
                .starts_with("/srv/ferry/var/outbox/j/1")
        );
        let e = errors("database = \"sqlite://x.db\"\ntable = \"t\"\nmode = \"upsert\"\n");
        assert!(
            e.contains("8:8 output[1].mode") && e.contains("needs `key`"),
            "{e}"
        );
        let e = errors("database = \"postgres://u:hunter2@h:x/db\"\ntable = \"t\"\n");
        assert!(
            e.contains("6:12 output[1].database") && !e.contains("hunter2"),
            "{e}"
        );
        let e = errors("database = \"sqlite://x.db\"\n");
        assert!(e.contains("missing `table`"), "{e}");
        let e = errors(
            "database = \"sqlite://x.db\"\ntable = \"t\"\nfolder = \"out\"\ndelimiter = \";\"\n",
        );
        assert!(e.contains("remove `folder`"), "{e}");
        assert!(e.contains("`delimiter` does not apply here"), "{e}");
        let e = errors("database = \"sqlite://x.db\"\ntable = \"t\"\nkey = [\"a\"]\n");
        assert!(e.contains("upsert"), "{e}");
    }
}
