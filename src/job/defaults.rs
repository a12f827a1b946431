//! What every job inherits from ferry.toml (`crate::settings`): `[alert]` for a job
//! without its own, and `[defaults]` for the job keys [`DEFAULTABLE`] names.
//!
//! Theory of operation: a job file is parsed into toml's spanned tree; before it is read,
//! [`merge`] copies into that tree every default the job does not set itself (so a job's
//! own key always wins), with the spans of the copied values moved past the end of the job
//! file's text. The job's reader then reads one tree, as if the job had written the keys;
//! a problem with a copied value is reported at its place in ferry.toml, because the reader's
//! [`Doc`] knows that spans from that offset on are ferry.toml's ([`crate::job::toml_reader::Also`]).
//! ferry.toml itself is checked by reading a minimal job with it ([`check`]): a default
//! that no job could use is a problem of ferry.toml, found before any job is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::job::keys::{KEYS, Key, Type};
use crate::job::toml_reader::{Diag, Doc, TableReader};

/// The job keys ferry.toml's `[defaults]` may hold: `(table, key)`, `""` for the top of a
/// job file; written there as `[defaults.TABLE]` (or in `[defaults]` for a top-level key).
/// Each must be declared in `KEYS` for every kind of its table (a test checks). To let a
/// key have an installation-wide default: add its line here, name it in the README's
/// `[defaults]` list, and, for a table every job has without writing it, add the table to
/// [`IMPLICIT`].
pub const DEFAULTABLE: &[(&str, &str)] = &[
    ("source", "settle"),
    ("source", "poll"),
    ("source", "watch"),
    ("source", "timezone"),
    ("input", "max_record"),
    ("after", "success"),
    ("after", "archive"),
    ("after", "error"),
    ("after", "max_attempts"),
    ("pdf", "timeout"),
    ("pdf", "max_size"),
    ("pdf", "max_stream"),
    ("retry", "every"),
    ("retry", "max"),
    ("retry", "for"),
];

/// Tables every job has, written or not: a default fills one even where the job file does
/// not write it. (Other tables, like `[input]`, get defaults only where the job has them.)
pub const IMPLICIT: &[&str] = &["after", "pdf", "retry"];

/// ferry.toml's `[alert]` and `[defaults]`, as applied to each job read.
#[derive(Debug, Clone, Default)]
pub struct JobDefaults {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    file: PathBuf,
    root: PathBuf,
    src: String,
    /// A hash of what jobs inherit: a job's fingerprint includes it, so a reload replaces
    /// the jobs when (and only when) their defaults changed.
    fingerprint: String,
}

impl PartialEq for JobDefaults {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

/// ferry.toml parsed again for one job (its values borrow the kept text).
pub struct Parsed<'d> {
    pub file: &'d Path,
    pub src: &'d str,
    pub table: Spanned<DeTable<'d>>,
}

impl JobDefaults {
    /// The defaults of a ferry.toml (none when it has neither `[alert]` nor `[defaults]`).
    pub fn new(file: &Path, root: &Path, src: &str, table: &Spanned<DeTable<'_>>) -> Self {
        let t = table.get_ref();
        let used: Vec<String> = ["alert", "defaults"]
            .iter()
            .filter_map(|k| t.get(*k).map(|v| format!("{k}={}", canonical(v.get_ref()))))
            .collect();
        if used.is_empty() {
            return JobDefaults::default();
        }
        use sha2::Digest;
        let fingerprint = hex::encode(sha2::Sha256::digest(used.join("\n").as_bytes()));
        JobDefaults {
            inner: Some(Arc::new(Inner {
                file: file.to_path_buf(),
                root: root.to_path_buf(),
                src: src.to_string(),
                fingerprint,
            })),
        }
    }

    /// Empty when there are no defaults.
    pub fn fingerprint(&self) -> &str {
        self.inner.as_ref().map_or("", |i| &i.fingerprint)
    }

    /// Whether ferry.toml gives jobs an `[alert]`.
    pub fn has_alert(&self) -> bool {
        self.parsed()
            .is_some_and(|p| p.table.get_ref().contains_key("alert"))
    }

    /// ferry.toml's tree, for [`merge`].
    pub fn parsed(&self) -> Option<Parsed<'_>> {
        let i = self.inner.as_ref()?;
        let (table, errors) = DeTable::parse_recoverable(&i.src);
        errors.is_empty().then_some(Parsed {
            file: &i.file,
            src: &i.src,
            table,
        })
    }

    /// Learns the secrets of the `[alert]` (its SMTP password) for the log's redaction.
    pub fn learn_secrets(&self) {
        if let Some((Ok(job), _)) = self.probe() {
            crate::job::secrets::learn_job(&job);
        }
    }

    /// A minimal job read with these defaults.
    fn probe(&self) -> Option<(Result<crate::job::Job, Vec<Diag>>, PathBuf)> {
        let i = self.inner.as_ref()?;
        let path = i.root.join("jobs/defaults.toml");
        let src = "[source]\nfolder = \"var/ferry.toml-check\"\n[input]\nformat = \"csv\"\n";
        Some((crate::job::compile_with(&path, &i.root, src, self), path))
    }
}

/// A value as text without its spans (for the fingerprint).
fn canonical(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => format!("{i}"),
        DeValue::Float(f) => format!("{f}"),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| canonical(x.get_ref())).collect();
            format!("[{}]", items.join(","))
        }
        DeValue::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, x)| format!("{:?}={}", k.get_ref(), canonical(x.get_ref())))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// A copy of a value with every span moved by `base`.
fn shifted<'i>(v: &Spanned<DeValue<'i>>, base: usize) -> Spanned<DeValue<'i>> {
    let span = v.span();
    let value = match v.get_ref() {
        DeValue::Table(t) => {
            let mut out = DeTable::new();
            for (k, x) in t.iter() {
                let ks = k.span();
                out.insert(
                    Spanned::new(ks.start + base..ks.end + base, k.get_ref().clone()),
                    shifted(x, base),
                );
            }
            DeValue::Table(out)
        }
        DeValue::Array(a) => {
            let mut out = DeArray::new();
            for x in a.iter() {
                out.push(shifted(x, base));
            }
            DeValue::Array(out)
        }
        other => other.clone(),
    };
    Spanned::new(span.start + base..span.end + base, value)
}

/// Copies into a job's tree what it inherits from ferry.toml's tree `settings`: its
/// `[alert]` when the job has none, and each `[defaults]` key the job does not set. A
/// default fills a table the job has, or one of [`IMPLICIT`] (every job has those, written
/// or not); it never makes a table that would change what the job does (`[input]`), and
/// leaves tables of an opt-in kind alone (a mailbox source: its `poll` means something
/// else). Spans are moved by `base`.
pub fn merge<'i>(job: &mut DeTable<'i>, settings: &DeTable<'i>, base: usize) {
    if !job.contains_key("alert")
        && let Some((k, v)) = settings.get_key_value("alert")
    {
        let ks = k.span();
        job.insert(
            Spanned::new(ks.start + base..ks.end + base, k.get_ref().clone()),
            shifted(v, base),
        );
    }
    let Some(DeValue::Table(defaults)) = settings.get("defaults").map(|v| v.get_ref()) else {
        return;
    };
    for (table, name) in DEFAULTABLE {
        let (value, section) = if table.is_empty() {
            (defaults.get(*name), None)
        } else {
            let section = defaults.get(*table);
            match section.map(|s| s.get_ref()) {
                Some(DeValue::Table(t)) => (t.get(*name), section),
                _ => (None, None),
            }
        };
        let Some(value) = value else { continue };
        let target = if table.is_empty() {
            Some(&mut *job)
        } else {
            if !job.contains_key(*table)
                && IMPLICIT.contains(table)
                && let Some(s) = section
            {
                let span = s.span();
                job.insert(
                    Spanned::new(span.start + base..span.end + base, (*table).into()),
                    Spanned::new(
                        span.start + base..span.end + base,
                        DeValue::Table(DeTable::new()),
                    ),
                );
            }
            match job.get_mut(*table).map(|v| v.get_mut()) {
                Some(DeValue::Table(t)) => Some(t),
                _ => None,
            }
        };
        let Some(target) = target else { continue };
        let opt_in = crate::job::keys::OPT_IN
            .iter()
            .any(|k| target.contains_key(*k));
        if opt_in || target.contains_key(*name) {
            continue;
        }
        let span = value.span();
        target.insert(
            Spanned::new(span.start + base..span.end + base, (*name).into()),
            shifted(value, base),
        );
    }
}

/// Reads ferry.toml's `[alert]` and `[defaults]` for what can be said without a job: a
/// key `[defaults]` may not hold, a value of the wrong type. (Their meaning is checked by
/// [`check`].)
pub fn read_tables(doc: &mut Doc<'_>, top: &mut TableReader<'_, '_>) {
    if let Some(t) = top.table(doc, "alert")
        && !t.has("email")
    {
        doc.error(
            t.span.clone(),
            "alert.email",
            "missing `email`: who gets the alerts, e.g. `email = \"mailto:ops@example.com\"`",
        );
    }
    let Some(mut d) = top.table(doc, "defaults") else {
        return;
    };
    let mut names: Vec<&str> = Vec::new();
    for (table, name) in DEFAULTABLE {
        let entry = if table.is_empty() { *name } else { *table };
        if !names.contains(&entry) {
            names.push(entry);
        }
    }
    for entry in &names {
        match declared("", entry) {
            Some(key) if !matches!(key.ty, Type::Table | Type::Tables) => {
                read_typed(doc, &mut d, key);
            }
            _ => {
                let Some(mut t) = d.table(doc, entry) else {
                    continue;
                };
                let inner: Vec<&str> = DEFAULTABLE
                    .iter()
                    .filter(|(tb, _)| tb == entry)
                    .map(|(_, n)| *n)
                    .collect();
                for n in &inner {
                    if let Some(key) = declared(entry, n) {
                        read_typed(doc, &mut t, key);
                    }
                }
                t.finish(doc, &inner);
            }
        }
    }
    d.finish(doc, &names);
}

/// The declaration of a job key that every kind of its table takes.
pub fn declared(table: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|k| k.table == table && k.name == name && k.when.is_empty())
}

/// Reads a key as its type (the reader reports a wrong one).
fn read_typed(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>, key: &Key) {
    match key.ty {
        Type::Uint => {
            t.uint(doc, key.name);
        }
        Type::Bool => {
            t.bool(doc, key.name);
        }
        Type::StrList => {
            t.str_list(doc, key.name);
        }
        Type::Str | Type::Duration | Type::Enum(_) => {
            t.str(doc, key.name);
        }
        Type::Table | Type::Tables | Type::StrMap | Type::StrListMap => {
            t.table(doc, key.name);
        }
    }
}

/// Checks that every job could use these defaults: a minimal job is read with them, and
/// whatever goes wrong is a problem of ferry.toml, said at its place there.
pub fn check(defaults: &JobDefaults) -> Vec<Diag> {
    let Some((result, probe)) = defaults.probe() else {
        return Vec::new();
    };
    let Some(parsed) = defaults.parsed() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for mut d in result.err().unwrap_or_default() {
        if d.file == probe {
            // A problem found at no span of its own (`max_attempts = 0`): said where the
            // default is written.
            let path = settings_key(&d.key);
            let span = span_of(parsed.table.get_ref(), &path).unwrap_or(0..0);
            let doc = Doc::new(parsed.file, parsed.src);
            let (line, col) = doc.position(span.start);
            d = Diag {
                file: parsed.file.to_path_buf(),
                line,
                col,
                key: path,
                message: d.message,
            };
        } else {
            d.key = settings_key(&d.key);
        }
        out.push(d);
    }
    out
}

/// A job's key path as ferry.toml writes it: `after.archive` is `defaults.after.archive`;
/// the alert's keys are ferry.toml's own `[alert]`.
fn settings_key(key: &str) -> String {
    if key == "alert" || key.starts_with("alert.") || key.starts_with("defaults.") {
        key.to_string()
    } else if key.is_empty() {
        "defaults".to_string()
    } else {
        format!("defaults.{key}")
    }
}

/// The span of the deepest table or value `path` (dotted) reaches.
fn span_of(t: &DeTable<'_>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut table = t;
    let mut span = None;
    for part in path.split('.') {
        let part = part.split('[').next().unwrap_or(part);
        let Some(v) = table.get(part) else { break };
        span = Some(v.span());
        match v.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    span
}

/// The keys of a job's problems found in ferry.toml, written as ferry.toml writes them.
pub fn name_keys(diags: &mut [Diag], defaults: &JobDefaults) {
    let Some(i) = defaults.inner.as_ref() else {
        return;
    };
    for d in diags.iter_mut().filter(|d| d.file == i.file) {
        d.key = settings_key(&d.key);
    }
}
