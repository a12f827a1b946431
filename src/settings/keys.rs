//! Every key ferry.toml may have, declared once, with the same [`Key`] as job keys: the
//! reader's "unknown key; did you mean" lists, `ferry schema --settings` and the README's
//! settings table (a test compares them) come from here.
//!
//! `[alert]` takes a job's `[alert]` keys, and `[defaults]` the job keys [`DEFAULTABLE`]
//! names: both are declared with the job keys (`crate::job::keys::KEYS`), not again here.
//!
//! To let a job key have an installation-wide default: add one line `(table, key)` to
//! [`DEFAULTABLE`] (in `crate::job::defaults`; the key must be declared in `KEYS` for every
//! kind of its table), name it in the README's `[defaults]` list, and, when the table is one
//! every job has without writing it (like `[after]`), add the table to [`IMPLICIT`].

use serde_json::{Map, Value, json};

use crate::job::defaults::declared;
pub use crate::job::defaults::{DEFAULTABLE, IMPLICIT};
use crate::job::keys::{KEYS, Key, Type, k, keys_schema};

/// A key of ferry.toml: a job-file key with no `when` (ferry.toml has one kind per table).
const fn s(
    table: &'static str,
    name: &'static str,
    ty: Type,
    default: &'static str,
    doc: &'static str,
) -> Key {
    k(table, "", name, ty, default, doc)
}

/// The log formats (`--log-format`).
pub const LOG_FORMAT: &[&str] = &["human", "json"];

/// The roles of console users.
pub const ROLES: &[&str] = &["read", "admin"];

/// Every key of ferry.toml but those of `[alert]` and `[defaults]`.
#[rustfmt::skip]
pub static SETTINGS: &[Key] = &[
    s("", "state", Type::Str, "\"var/state\"", "The state folder (journal, locks), relative to the deployment folder or absolute (`--state`)."),
    s("", "workers", Type::Uint, "32", "How many files are processed at once, over all jobs (`ferry run --workers`)."),
    s("", "http", Type::Str, "none", "Serve /healthz, /readyz and /metrics on this address and port, e.g. \"127.0.0.1:8080\" (`ferry run --http`); loopback only unless authentication is configured."),
    s("", "log", Type::Table, "none", "The log: format, level, file."),
    s("", "http", Type::Table, "none", "The web console and /metrics: `listen`, `token`, `[[http.users]]` (or the address alone: `http = \"127.0.0.1:8080\"`)."),
    s("", "alert", Type::Table, "none", "The admin alert address: the `[alert]` of every job that has none (the keys of a job's `[alert]`)."),
    s("", "defaults", Type::Table, "none", "Defaults for every job: a job's own key wins."),
    s("log", "format", Type::Enum(LOG_FORMAT), "\"human\"", "human: readable lines; json: one JSON object per line (`--log-format`)."),
    s("log", "level", Type::Str, "\"info\"", "A log filter: \"info\", \"debug\", \"info,ferry=debug\" (`--log`, RUST_LOG). Applies at a reload."),
    s("log", "file", Type::Str, "none", "Write the log to this file, a new one each day (`--log-file`); relative to the deployment folder."),
    s("http", "listen", Type::Str, "none", "Serve the web console, /metrics, /healthz and /readyz on this address and port, e.g. \"127.0.0.1:8080\" (`ferry run --http`)."),
    s("http", "token", Type::Str, "none", "A bearer token for scripts and Prometheus (read-only): `${env:NAME}` or `${file:PATH}`."),
    s("http", "users", Type::Tables, "none", "The web console's users; any address but loopback needs users or a token."),
    s("http.users", "name", Type::Str, "none", "The user's login name."),
    s("http.users", "password_hash", Type::Str, "none", "The argon2 hash of the password (a PHC string, from `ferry hash-password`)."),
    s("http.users", "role", Type::Enum(ROLES), "\"read\"", "read: sees every page; admin: also retries, approves, rejects and triggers."),
];

/// The key names a table of ferry.toml takes, in declaration order.
pub fn known(table: &str) -> Vec<&'static str> {
    SETTINGS
        .iter()
        .filter(|k| k.table == table)
        .map(|k| k.name)
        .collect()
}

/// The JSON Schema of ferry.toml (`ferry schema --settings`).
pub fn json_schema() -> Value {
    let of = |table: &str| -> Vec<&Key> { SETTINGS.iter().filter(|k| k.table == table).collect() };
    let mut definitions = Map::new();
    definitions.insert("log".into(), keys_schema(&of("log")));
    definitions.insert("http".into(), keys_schema(&of("http")));
    definitions.insert("http.users".into(), keys_schema(&of("http.users")));
    let alert: Vec<&Key> = KEYS.iter().filter(|k| k.table == "alert").collect();
    definitions.insert("alert".into(), keys_schema(&alert));
    let mut defaults = Map::new();
    let mut tables: Vec<&str> = Vec::new();
    for (table, name) in DEFAULTABLE {
        if table.is_empty() {
            if let Some(k) = declared("", name) {
                let mut one = keys_schema(&[k]);
                if let Some(p) = one["properties"][*name].take().as_object() {
                    defaults.insert((*name).into(), Value::Object(p.clone()));
                }
            }
        } else if !tables.contains(table) {
            tables.push(table);
        }
    }
    for table in tables {
        let keys: Vec<&Key> = DEFAULTABLE
            .iter()
            .filter(|(t, _)| *t == table)
            .filter_map(|(t, n)| declared(t, n))
            .collect();
        definitions.insert(format!("defaults.{table}"), keys_schema(&keys));
        defaults.insert(
            table.into(),
            json!({
                "$ref": format!("#/definitions/defaults.{table}"),
                "description": format!("Defaults for every job's [{table}]."),
            }),
        );
    }
    definitions.insert(
        "defaults".into(),
        json!({ "type": "object", "properties": defaults, "additionalProperties": false }),
    );
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    root.insert("title".into(), json!("ferry.toml"));
    root.insert(
        "description".into(),
        json!(
            "ferry's installation-wide settings, beside jobs/; a command-line flag wins over them."
        ),
    );
    let mut top = keys_schema(&of(""));
    if let Some(t) = top.as_object_mut() {
        root.append(t);
    }
    root.insert("definitions".into(), Value::Object(definitions));
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defaultable_key_is_a_job_key_of_every_kind() {
        for (table, name) in DEFAULTABLE {
            let key = declared(table, name).unwrap_or_else(|| {
                panic!("[{table}] {name}: not a job key every kind of [{table}] takes")
            });
            assert!(
                !matches!(key.ty, Type::Table | Type::Tables),
                "[{table}] {name}: a table cannot be a default"
            );
        }
        for t in IMPLICIT {
            assert!(
                DEFAULTABLE.iter().any(|(x, _)| x == t),
                "[{t}]: implicit but no default"
            );
        }
    }

    /// The README's settings tables (`| setting | default | meaning |`) name every key of
    /// [`SETTINGS`] with its default, and nothing else; its `[defaults]` list names every
    /// key of [`DEFAULTABLE`].
    #[test]
    fn readme_settings_agree_with_the_declaration() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let mut rows: Vec<(usize, String, String, String)> = Vec::new();
        let mut in_table = false;
        let mut table = String::new();
        for (i, line) in readme.lines().enumerate() {
            if line.starts_with("| setting |") {
                in_table = true;
                table.clear();
                continue;
            }
            if !in_table || line.starts_with("|---") {
                continue;
            }
            if !line.starts_with('|') {
                in_table = false;
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // The first `span` of the cell: `[alert]` (admin).
            let key = cells[1].split('`').nth(1).unwrap_or(cells[1]);
            let name = match key.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((t, n)) => {
                    table = t.to_string();
                    n.trim().to_string()
                }
                None => key.to_string(),
            };
            let default = cells[2].trim_matches('`').to_string();
            let default = match serde_json::from_str::<Value>(&default) {
                Ok(Value::String(s)) => s,
                _ => default,
            };
            let t = if name.is_empty() {
                String::new()
            } else {
                table.clone()
            };
            let name = if name.is_empty() { table.clone() } else { name };
            rows.push((i + 1, t, name, default));
        }
        let mut problems = Vec::new();
        for (line, table, name, default) in &rows {
            match SETTINGS.iter().find(|k| k.table == table && k.name == name) {
                None => problems.push(format!(
                    "README.md:{line}: `{name}` of [{table}] is not declared in src/settings/keys.rs"
                )),
                Some(k) => {
                    let d = match serde_json::from_str::<Value>(k.default) {
                        Ok(Value::String(s)) => s,
                        _ => k.default.to_string(),
                    };
                    if &d != default {
                        problems.push(format!(
                            "README.md:{line}: [{table}] {name}: the README's default is {default:?}, the declaration's {d:?}"
                        ));
                    }
                }
            }
        }
        for k in SETTINGS {
            // A table is named by the rows of its keys (`[log] format`).
            let by_its_keys = k.ty == Type::Table && rows.iter().any(|(_, t, _, _)| t == k.name);
            if !by_its_keys && !rows.iter().any(|(_, t, n, _)| t == k.table && n == k.name) {
                problems.push(format!(
                    "README.md: `{}` of [{}] has no row in the settings table",
                    k.name, k.table
                ));
            }
        }
        let anchor = "**`[defaults]` keys**";
        let at = readme.find(anchor).expect("the README's [defaults] list");
        let end = readme[at..].find("\n\n").map_or(readme.len(), |e| at + e);
        let text = &readme[at..end];
        for (table, name) in DEFAULTABLE {
            let named = if table.is_empty() {
                format!("`{name}`")
            } else {
                format!("`[{table}] {name}`")
            };
            if !text.contains(&named) {
                problems.push(format!(
                    "README.md: {named} is not named in the part {anchor}"
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
