//! `ferry.toml`: the optional installation-wide settings beside `jobs/`.
//!
//! It holds what the command line sets for one run (the state folder, the worker count, the
//! log's format, level and file) and what every job inherits: the admin alert address
//! (`[alert]`, for jobs without their own) and `[defaults]` for job keys. Precedence: a
//! command-line flag (or its environment variable) > ferry.toml > the built-in default.
//!
//! It is read like a job file (see [`crate::job::toml_reader`]): every problem at once,
//! each at file:line:column, unknown keys with "did you mean". Its keys are declared in
//! [`keys`]; the job keys `[defaults]` may hold are the job declarations themselves
//! ([`keys::DEFAULTABLE`] names them). How defaults reach a job: [`defaults`]. How the
//! daemon re-reads it (a change of the file, SIGHUP): [`live`].

pub mod defaults;
pub mod keys;
pub mod live;

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use crate::job::toml_reader::{Diag, Doc, TableReader, one_of};
pub use defaults::JobDefaults;

/// The file's name; it lives in the deployment folder, beside `jobs/`.
pub const FILE_NAME: &str = "ferry.toml";

/// The log's format (`--log-format`, `[log] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// What ferry.toml says; `None` where it says nothing (the command line or the built-in
/// default decides).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The state folder, absolute.
    pub state: Option<PathBuf>,
    pub workers: Option<usize>,
    pub log_format: Option<LogFormat>,
    /// A log filter like `info` or `info,ferry=debug`.
    pub log_level: Option<String>,
    /// The log file (rotated daily), absolute.
    pub log_file: Option<PathBuf>,
    /// `[alert]` and `[defaults]`, applied to every job as it is read.
    pub jobs: JobDefaults,
}

/// Where ferry.toml is for a jobs folder: in the deployment folder that holds it.
pub fn path_for(jobs_dir: &Path) -> PathBuf {
    // Said as the jobs folder was given (`ferry.toml` for `jobs`), as job files are.
    let named = matches!(
        jobs_dir.components().next_back(),
        Some(std::path::Component::Normal(_))
    );
    match jobs_dir.parent() {
        Some(p) if named && p.as_os_str().is_empty() => PathBuf::from(FILE_NAME),
        Some(p) if named => p.join(FILE_NAME),
        _ => crate::job::deployment_root(jobs_dir).join(FILE_NAME),
    }
}

/// Reads the ferry.toml beside `jobs_dir`; no file is no settings. Every problem is
/// returned at once.
pub fn load(jobs_dir: &Path) -> Result<Settings, Vec<Diag>> {
    let path = path_for(jobs_dir);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        _ => {}
    }
    let whole_file = |message: String| {
        Err(vec![Diag {
            file: path.clone(),
            line: 1,
            col: 1,
            key: String::new(),
            message,
        }])
    };
    let src = match crate::job::read_config_file(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                return whole_file(format!(
                    "the file is not UTF-8 (invalid byte at offset {}); save it as UTF-8",
                    e.utf8_error().valid_up_to()
                ));
            }
        },
        Err(why) => return whole_file(why.replace("job file", "settings file")),
    };
    read(&path, &crate::job::deployment_root(jobs_dir), &src)
}

/// Reads ferry.toml's text. `root` is the deployment folder relative paths resolve against.
pub fn read(file: &Path, root: &Path, src: &str) -> Result<Settings, Vec<Diag>> {
    let mut doc = Doc::new(file, src);
    let (table, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        doc.error(span, "", format!("TOML syntax: {}", e.message().trim()));
    }
    if !errors.is_empty() {
        return Err(doc.diags);
    }
    let mut top = TableReader::new("", table.span(), table.get_ref());
    let path = |s: &crate::job::toml_reader::Str, doc: &mut Doc<'_>| {
        if s.value.trim().is_empty() {
            doc.error(
                s.span.clone(),
                &s.key,
                "expected a folder, found an empty string",
            );
            None
        } else {
            Some(crate::job::absolute(&root.join(&s.value)))
        }
    };
    let state = top.str(&mut doc, "state").and_then(|s| path(&s, &mut doc));
    let workers = match top.uint(&mut doc, "workers") {
        Some(0) => {
            doc.error(top.span_of("workers"), "workers", "expected at least 1");
            None
        }
        n => n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let (mut log_format, mut log_level, mut log_file) = (None, None, None);
    if let Some(mut t) = top.table(&mut doc, "log") {
        let format = t.str(&mut doc, "format");
        if format.is_some() {
            log_format = one_of(
                &mut doc,
                format,
                &[("human", LogFormat::Human), ("json", LogFormat::Json)],
                LogFormat::Human,
            );
        }
        if let Some(level) = t.str(&mut doc, "level") {
            match tracing_subscriber::EnvFilter::try_new(&level.value) {
                Ok(_) => log_level = Some(level.value),
                Err(e) => doc.error(
                    level.span.clone(),
                    &level.key,
                    format!(
                        "expected a log filter like \"info\", \"debug\" or \"info,ferry=debug\", found {:?} ({e})",
                        level.value
                    ),
                ),
            }
        }
        log_file = t.str(&mut doc, "file").and_then(|s| path(&s, &mut doc));
        t.finish(&mut doc, &keys::known("log"));
    }
    defaults::read_tables(&mut doc, &mut top);
    top.finish(&mut doc, &keys::known(""));
    let jobs = JobDefaults::new(file, root, src, &table);
    doc.diags.extend(defaults::check(&jobs));
    let mut diags = doc.diags;
    diags.sort_by_key(|d| (d.line, d.col));
    diags.dedup();
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Settings {
        state,
        workers,
        log_format,
        log_level,
        log_file,
        jobs,
    })
}
