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
//! ([`keys::DEFAULTABLE`] names them). How defaults reach a job: [`crate::job::defaults`]. How the
//! daemon re-reads it (a change of the file, SIGHUP): [`live`].

pub mod http;
pub mod keys;
pub mod live;

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use crate::job::defaults;
pub use crate::job::defaults::JobDefaults;
use crate::job::toml_reader::{Diag, Doc, TableReader, one_of};

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
    /// Where the daemon serves the console, `/healthz`, `/readyz` and `/metrics`
    /// (`ferry run --http`): `http = "ADDR"`, or `[http] listen`.
    pub http: Option<std::net::SocketAddr>,
    /// Who may use it: `[[http.users]]`, `http.token`.
    pub http_access: http::Access,
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
    let http = http::read(&mut doc, &mut top);
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
        http: http.listen,
        http_access: http.access,
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::toml_reader::Diag;

    fn with(settings: &str, job: &str) -> Result<crate::job::Job, Vec<Diag>> {
        let root = Path::new("/tmp/ferry-defaults-test");
        let file = root.join("ferry.toml");
        let s = crate::settings::read(&file, root, settings).expect("valid settings");
        crate::job::compile_with(&root.join("jobs/j.toml"), root, job, &s.jobs)
    }

    const SETTINGS: &str = r#"
[alert]
email = "mailto:ops@example.com"
smtp = "smtp://127.0.0.1:25"
from = "ferry@example.com"
[defaults.source]
settle = "7s"
poll = "9s"
[defaults.input]
max_record = 1000
[defaults.after]
max_attempts = 5
[defaults.pdf]
timeout = "2m"
"#;

    #[test]
    fn defaults_fill_what_the_job_does_not_say() {
        let job = with(SETTINGS, "[source]\nfolder = \"in\"\n").unwrap();
        assert_eq!(job.source.settle, std::time::Duration::from_secs(7));
        assert_eq!(job.source.poll, std::time::Duration::from_secs(9));
        assert_eq!(job.after.max_attempts, 5, "[after] is implicit");
        assert_eq!(job.pdf.timeout, std::time::Duration::from_secs(120));
        assert!(job.input.is_none(), "no [input] is made for a default");
        let with_input = with(
            SETTINGS,
            "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n",
        );
        assert_eq!(with_input.unwrap().input.unwrap().max_record, 1000);
        let alert = job.alert.expect("the admin alert");
        assert_eq!(
            alert.email.outbox,
            Path::new("/tmp/ferry-defaults-test/var/outbox/j/alerts")
        );
    }

    #[test]
    fn the_jobs_own_keys_win() {
        let job = with(
            SETTINGS,
            "[source]\nfolder = \"in\"\nsettle = \"1s\"\n[after]\nmax_attempts = 2\n[alert]\nemail = \"mailto:me@example.com\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"f@example.com\"\n",
        )
        .unwrap();
        assert_eq!(job.source.settle, std::time::Duration::from_secs(1));
        assert_eq!(job.source.poll, std::time::Duration::from_secs(9));
        assert_eq!(job.after.max_attempts, 2);
        let alert = job.alert.expect("its own alert");
        assert_eq!(alert.email.from, "f@example.com", "taken whole, not mixed");
    }

    #[test]
    fn a_mailbox_source_takes_no_source_defaults() {
        let job = with(
            SETTINGS,
            "[source]\nmailbox = \"imaps://u@127.0.0.1/INBOX\"\npassword = \"x\"\n",
        )
        .unwrap();
        let mailbox = job.source.mailbox.expect("a mailbox");
        assert_eq!(mailbox.poll, std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_problem_with_a_default_is_said_in_ferry_toml() {
        let root = Path::new("/tmp/ferry-defaults-test");
        let file = root.join("ferry.toml");
        let src = "[defaults.after]\narchive = \"var/{nope}\"\n";
        let diags = crate::settings::read(&file, root, src).unwrap_err();
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(
            (
                diags[0].file.as_path(),
                diags[0].line,
                diags[0].col,
                diags[0].key.as_str()
            ),
            (file.as_path(), 2, 16, "defaults.after.archive")
        );
    }

    #[test]
    fn the_repositorys_example_sets_only_built_in_defaults() {
        let jobs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/jobs"));
        let s = crate::settings::load(jobs).expect("the example ferry.toml is valid");
        let root = crate::job::deployment_root(jobs);
        assert_eq!(s.state, Some(root.join("var/state")));
        assert_eq!(s.workers, Some(32));
        assert_eq!(s.log_format, Some(crate::settings::LogFormat::Human));
        assert_eq!(s.log_level.as_deref(), Some("info"));
        assert_eq!(s.log_file, None);
        assert!(!s.jobs.has_alert());
        let with = crate::job::load_dir_with(jobs, &s.jobs).unwrap();
        let without = crate::job::load_dir(jobs).unwrap();
        assert!(with.diags.is_empty(), "{:#?}", with.diags);
        for (name, job) in &without.jobs {
            let other = &with.jobs[name];
            assert_eq!(
                format!("{:?}", job.after),
                format!("{:?}", other.after),
                "{name}"
            );
            assert_eq!(job.source.settle, other.source.settle, "{name}");
        }
    }
}
