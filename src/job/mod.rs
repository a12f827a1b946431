//! Job files: one TOML file per job, read into a checked [`Job`] in one pass that collects
//! every problem (see [`toml_reader`]), then checked against each other (two jobs must never
//! take the same file).

pub mod alert;
mod combine;
pub mod data;
pub mod database;
pub mod database_source;
pub mod defaults;
pub mod expect;
pub mod ftp;
pub mod http;
mod job_file;
pub mod keys;
pub mod mail;
mod output;
pub mod pdf;
pub mod plumbing;
pub mod remote;
pub mod rest_source;
pub mod retry;
pub mod review;
pub mod secrets;
pub mod set;
pub mod share;
mod source;
pub mod template;
mod timing;
pub mod toml_reader;
pub mod webdav;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use toml::de::{DeTable, DeValue};

use defaults::JobDefaults;
use template::{PLACEHOLDERS, Template};
use toml_reader::{Diag, Doc, Str, TableReader, one_of, parse_duration};

/// How a file is known to be completely written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Size and modification time unchanged for `source.settle`.
    Settle,
    /// A trigger file named by one of these templates exists beside the file.
    DoneFile(Vec<Template>),
}

/// Whether the source uses file-system events as hints, or only rescans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    Auto,
    Poll,
}

/// What to do when an output's name is taken already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exists {
    Fail,
    Overwrite,
    Unique,
    Skip,
}

impl Exists {
    pub fn as_str(self) -> &'static str {
        match self {
            Exists::Fail => "fail",
            Exists::Overwrite => "overwrite",
            Exists::Unique => "unique",
            Exists::Skip => "skip",
        }
    }
}

/// What happens to the original after every output is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    Archive,
    Delete,
    Keep,
}

impl Success {
    pub fn as_str(self) -> &'static str {
        match self {
            Success::Archive => "archive",
            Success::Delete => "delete",
            Success::Keep => "keep",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Source {
    pub folder: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    include_set: Option<GlobSet>,
    exclude_set: GlobSet,
    /// Names of done-files (never data).
    trigger_set: GlobSet,
    pub settle: Duration,
    pub poll: Duration,
    pub watch: Watch,
    pub ready: Ready,
    pub recursive: bool,
    /// A remote source (`ftp = ...`): `folder` is then its local staging folder, read at
    /// once (files only appear there by rename), and `settle`/`ready` apply remotely.
    pub remote: Option<remote::RemoteSource>,
    /// A mailbox this job takes attachments from (`mailbox = ...`); `folder` is then its
    /// local staging folder.
    pub mailbox: Option<mail::MailboxSource>,
    /// A database query whose rows this job takes (`database = ...`, issue 16); `folder` is
    /// then its local staging folder.
    pub database: Option<database_source::DatabaseSource>,
    /// A REST endpoint whose records this job takes (`http = ...`, issue 17); `folder` is
    /// then its local staging folder.
    pub http: Option<rest_source::RestSource>,
    /// Take only PDFs whose text passes this rule (`contains`, `matches`).
    pub content: Option<pdf::ContentRule>,
    /// `[source.set]`: files taken together as one document set.
    pub set: Option<set::SetSpec>,
    /// `schedule` or `every`, `timezone`, `active`: when the job takes files.
    pub timing: crate::schedule::Timing,
}

impl Source {
    /// A database or REST source: each run stages one file (`sources::database`).
    pub fn polled(&self) -> bool {
        self.database.is_some() || self.http.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    /// The folder, relative paths already resolved against the deployment root.
    pub folder: Template,
    pub name: Template,
    pub exists: Exists,
    /// The format written (the original bytes unless the job reads records).
    pub data: data::OutputData,
    /// A remote destination (`ftp = ...`): `folder` is then its local outbox.
    pub deliver: Option<remote::RemoteTarget>,
    /// Sent by email (`email = "mailto:..."`); `folder` is then the local outbox.
    pub email: Option<mail::EmailOutput>,
    /// Pieces taken out of a PDF (attachments, pages), one file each, instead of `data`.
    pub extract: Option<pdf::Extract>,
    /// In a document set: write this member's bytes instead of the lead's.
    pub member: Option<set::Member>,
    /// `combine = true`: one output for a scheduled run's records (src/job/combine.rs).
    pub combine: bool,
}

#[derive(Debug, Clone)]
pub struct After {
    pub success: Success,
    pub archive: Template,
    pub error: Template,
    /// How many times a file may be taken (counting interrupted runs) before it is sent to
    /// the error folder instead of being tried again.
    pub max_attempts: u32,
}

/// A checked job, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub file: PathBuf,
    /// A hash of the job file's text: a reload replaces the job only when it changed.
    pub fingerprint: String,
    pub description: Option<String>,
    pub source: Source,
    /// How to read the file as records; `None`: the file is only moved as bytes.
    pub input: Option<data::Input>,
    pub transform: data::TransformSpec,
    pub outputs: Vec<Output>,
    pub after: After,
    /// An admin address told about every file sent to the error folder, and a daily summary.
    pub alert: Option<alert::Alert>,
    /// `[pdf]`: time and size limits of PDF work on one file.
    pub pdf: crate::formats::pdf::PdfLimits,
    /// `[retry]`: the retry queue's timing.
    pub retry: retry::Retry,
    /// `[expect]`: every file delivered expects an answer from another job (runtime::expect).
    pub expect: Option<expect::Expect>,
    /// `[review]`: its files wait for an admin's decision before delivery (issue 15).
    pub review: Option<review::Review>,
}

/// `connections` of a remote source or output: 1 to 16, `default` when absent.
fn read_connections(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    default: usize,
) -> Option<usize> {
    match t.uint(doc, "connections") {
        None => Some(default),
        Some(n @ 1..=16) => Some(n as usize),
        Some(_) => {
            let span = t.span_of("connections");
            doc.error(span, &format!("{}.connections", t.path), "expected 1 to 16");
            None
        }
    }
}

impl Source {
    /// Whether a file name is one this source takes (include, exclude and the usual skips).
    pub fn matches(&self, name: &str) -> bool {
        if name.is_empty() || self.exclude_set.is_match(name) {
            return false;
        }
        if self.trigger_set.is_match(name) {
            return false;
        }
        match &self.include_set {
            Some(set) => set.is_match(name),
            None => true,
        }
    }

    /// The trigger files that may announce `name` is complete, in the order tried.
    pub fn done_files(&self, name: &str) -> Vec<String> {
        self.ready.done_files(name)
    }
}

impl Ready {
    /// The trigger files that may announce `name` is complete, in the order tried.
    pub fn done_files(&self, name: &str) -> Vec<String> {
        match self {
            Ready::Settle => Vec::new(),
            Ready::DoneFile(list) => list
                .iter()
                .map(|t| {
                    t.render(&template::Vars {
                        name,
                        dir: "",
                        job: "",
                        seq: 0,
                        taken: chrono::Local::now(),
                        record: None,
                        mail: None,
                    })
                })
                .collect(),
        }
    }
}

/// The folder a deployment's relative paths resolve against: the parent of the jobs folder.
pub fn deployment_root(jobs_dir: &Path) -> PathBuf {
    let abs = absolute(jobs_dir);
    abs.parent().map_or_else(|| abs.clone(), Path::to_path_buf)
}

/// An absolute, lexically normalised path (no `.` or `..`), without touching the disk.
pub fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn resolve(root: &Path, p: &str) -> PathBuf {
    absolute(&root.join(p))
}

/// Reads and checks one job file. `root` is the deployment root for relative paths.
pub fn load_file(path: &Path, root: &Path) -> Result<Job, Vec<Diag>> {
    load_file_with(path, root, &JobDefaults::default())
}

/// [`load_file`] with ferry.toml's job defaults.
pub fn load_file_with(path: &Path, root: &Path, defaults: &JobDefaults) -> Result<Job, Vec<Diag>> {
    load_file_with_facts(path, root, defaults).0
}

/// Reads a configuration file (ferry.toml) as a job file is read: never blocking on a
/// FIFO, refusing what is not a regular file.
pub(crate) fn read_config_file(path: &Path) -> Result<Vec<u8>, String> {
    job_file::read(path)
}

/// [`load_file`], with what the checks across jobs need (known even when the job is not).
fn load_file_with_facts(
    path: &Path,
    root: &Path,
    defaults: &JobDefaults,
) -> (Result<Job, Vec<Diag>>, plumbing::Facts) {
    let whole_file = |message: String| {
        let mut doc = Doc::new(path, "");
        doc.error(0..0, "", message);
        doc.diags
    };
    let src = match job_file::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "the file is not UTF-8 (invalid byte at offset {}); save it as UTF-8",
                    e.utf8_error().valid_up_to()
                );
                return (Err(whole_file(message)), facts_of(path));
            }
        },
        Err(message) => return (Err(whole_file(message)), facts_of(path)),
    };
    compile_with_facts(path, root, &src, defaults)
}

fn facts_of(path: &Path) -> plumbing::Facts {
    plumbing::Facts {
        name: job_name_of(path),
        file: path.to_path_buf(),
        ..Default::default()
    }
}

fn job_name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Compiles a job from its text. The job's name is the file's stem.
pub fn compile(path: &Path, root: &Path, src: &str) -> Result<Job, Vec<Diag>> {
    compile_with_facts(path, root, src, &JobDefaults::default()).0
}

/// [`compile`] with ferry.toml's job defaults.
pub fn compile_with(
    path: &Path,
    root: &Path,
    src: &str,
    defaults: &JobDefaults,
) -> Result<Job, Vec<Diag>> {
    compile_with_facts(path, root, src, defaults).0
}

fn compile_with_facts(
    path: &Path,
    root: &Path,
    src: &str,
    defaults: &JobDefaults,
) -> (Result<Job, Vec<Diag>>, plumbing::Facts) {
    let mut facts = facts_of(path);
    let mut doc = Doc::new(path, src);
    let (mut table, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        doc.error(span, "", format!("TOML syntax: {}", e.message().trim()));
    }
    if !errors.is_empty() {
        return (Err(doc.diags), facts);
    }
    // ferry.toml's defaults, read as if the job had written them (see `defaults`).
    let parsed = defaults.parsed();
    if let Some(p) = &parsed {
        let base = src.len() + 1;
        defaults::merge(table.get_mut(), p.table.get_ref(), base);
        doc.also = Some(toml_reader::Also {
            file: p.file,
            src: p.src,
            base,
        });
    }
    let job = read_job(&mut doc, &facts.name.clone(), root, &table, &mut facts);
    let mut diags = doc.diags;
    defaults::name_keys(&mut diags, defaults);
    diags.sort_by_key(|d| (d.line, d.col));
    let job = match job {
        Some(mut job) if diags.is_empty() => {
            job.file = path.to_path_buf();
            job.fingerprint = match defaults.fingerprint() {
                "" => fingerprint(src),
                d => fingerprint(&format!("{src}\0{d}")),
            };
            Ok(job)
        }
        _ => Err(diags),
    };
    facts.valid = job.is_ok();
    (job, facts)
}

fn fingerprint(src: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(src.as_bytes()))
}

/// Reads a job file's tables into a [`Job`]. What the checks across jobs need goes into
/// `facts`, known even when the job has problems.
fn read_job(
    doc: &mut Doc<'_>,
    name: &str,
    root: &Path,
    table: &toml::Spanned<DeTable<'_>>,
    facts: &mut plumbing::Facts,
) -> Option<Job> {
    let mut top = TableReader::new("", table.span(), table.get_ref());
    let description = top.str(doc, "description").map(|s| s.value);
    let source = read_job_source(doc, &mut top, (root, name), &mut facts.source);
    let records = read_records(doc, &mut top);
    let (outputs, combines) = read_outputs(doc, &mut top, (root, name), source.as_ref(), &records);
    let sections = read_sections(doc, &mut top, (root, name), records.has_input, &combines);
    top.finish_as(doc, "", "");
    if name.is_empty() || name.starts_with('.') {
        doc.error(0..0, "", "a job file needs a name like `invoices.toml`");
    }
    check_writes(
        doc,
        (table.get_ref(), name),
        &outputs,
        sections.after.as_ref(),
        facts,
    );
    Some(Job {
        name: name.to_string(),
        file: PathBuf::new(),
        fingerprint: String::new(),
        description,
        source: source?,
        input: records.input?,
        transform: records.transform?,
        outputs: outputs.into_iter().collect::<Option<Vec<_>>>()?,
        after: sections.after?,
        alert: sections.alert?,
        pdf: sections.pdf?,
        retry: sections.retry?,
        expect: sections.expect?,
        review: sections.review?,
    })
}

/// `[source]`, which every job needs.
fn read_job_source(
    doc: &mut Doc<'_>,
    top: &mut TableReader<'_, '_>,
    (root, name): (&Path, &str),
    facts: &mut Option<plumbing::SourceFacts>,
) -> Option<Source> {
    match top.table(doc, "source") {
        Some(t) => source::read_source(doc, root, name, t, facts),
        None => {
            if !top.has("source") {
                doc.error(
                    0..0,
                    "source",
                    "missing `[source]`: every job needs a source, e.g. `[source]` with `folder = \"var/inbox\"`",
                );
            }
            None
        }
    }
}

/// `[input]` and `[transform]`: how the file is read as records, and what is done to
/// them. Each part is `None` when wrong (reported).
struct Records {
    has_input: bool,
    input: Option<Option<data::Input>>,
    transform: Option<data::TransformSpec>,
}

/// Reads `[input]`, then `[transform]` (only with an `[input]`).
fn read_records(doc: &mut Doc<'_>, top: &mut TableReader<'_, '_>) -> Records {
    let has_input = top.has("input");
    let input = match top.table(doc, "input") {
        Some(t) => data::read_input(doc, t).map(Some),
        None => Some(None),
    };
    let job_dir = doc.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let transform = match top.table(doc, "transform") {
        Some(t) if !has_input => {
            let span = t.span.clone();
            doc.error(span, "transform", "`[transform]` works on records: add an `[input]` section that says how to read the file");
            None
        }
        Some(t) => data::read_transform(doc, &job_dir, t),
        None => Some(data::TransformSpec::default()),
    };
    Records {
        has_input,
        input,
        transform,
    }
}

/// Where each `[[output]]` says `combine`: all of a job's outputs combine, or none does.
type Combines = Vec<(bool, std::ops::Range<usize>)>;

/// Every `[[output]]`, each `None` when wrong (reported), and where each says `combine`.
fn read_outputs(
    doc: &mut Doc<'_>,
    top: &mut TableReader<'_, '_>,
    (root, name): (&Path, &str),
    source: Option<&Source>,
    records: &Records,
) -> (Vec<Option<Output>>, Combines) {
    let ctx = output::OutputContext {
        // `member` names a member by its `{stem}`: manifest sets have none.
        in_set: source.is_some_and(|s| s.set.as_ref().is_some_and(|s| s.manifest.is_none())),
        fields: output::record_fields(
            records.has_input,
            records.input.as_ref(),
            records.transform.as_ref(),
        ),
        batch: combine::JobFacts {
            scheduled: source.is_none_or(|s| s.timing.is_scheduled()),
            has_input: records.has_input,
            split: records
                .transform
                .as_ref()
                .is_some_and(|t| t.split.is_some()),
        },
    };
    let mut combines = Vec::new();
    let outputs = top
        .tables(doc, "output")
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let span = t.span_of("combine");
            let o = output::read_output(doc, root, t, &ctx, (name, i));
            if let Some(o) = &o {
                combines.push((o.combine, span));
            }
            o
        })
        .collect();
    combine::check_all_or_none(doc, &combines);
    (outputs, combines)
}

/// The sections after the outputs, each `None` when wrong (reported).
struct Sections {
    after: Option<After>,
    alert: Option<Option<alert::Alert>>,
    pdf: Option<crate::formats::pdf::PdfLimits>,
    retry: Option<retry::Retry>,
    expect: Option<Option<expect::Expect>>,
    review: Option<Option<review::Review>>,
}

/// `[after]`, `[alert]`, `[pdf]`, `[retry]`, `[expect]` and `[review]`.
fn read_sections(
    doc: &mut Doc<'_>,
    top: &mut TableReader<'_, '_>,
    (root, name): (&Path, &str),
    has_input: bool,
    combines: &Combines,
) -> Sections {
    let after_table = top.table(doc, "after");
    let after = read_after(doc, root, after_table);
    let alert = match top.table(doc, "alert") {
        Some(t) => alert::read(doc, root, t, name).map(Some),
        None => Some(None),
    };
    let pdf_table = top.table(doc, "pdf");
    let pdf = pdf::read_limits(doc, pdf_table);
    let retry_table = top.table(doc, "retry");
    let retry = retry::read(doc, retry_table);
    let expect = match top.table(doc, "expect") {
        Some(t) => expect::read(doc, t, has_input).map(Some),
        None => Some(None),
    };
    let review = read_review(doc, top, has_input, combines);
    Sections {
        after,
        alert,
        pdf,
        retry,
        expect,
        review,
    }
}

/// Where the job writes (for the checks across jobs, into `facts`), once its outputs and
/// `[after]` are good; and that none of it is inside the job's own source folder.
fn check_writes(
    doc: &mut Doc<'_>,
    (table, name): (&DeTable<'_>, &str),
    outputs: &[Option<Output>],
    after: Option<&After>,
    facts: &mut plumbing::Facts,
) {
    if let (Some(outputs), Some(after)) =
        (outputs.iter().cloned().collect::<Option<Vec<_>>>(), after)
    {
        facts.writes = Some(writes(doc, (table, name), &outputs, after));
    }
    if let (Some(source), Some(writes)) = (&facts.source, &facts.writes) {
        check_feedback(doc, source, writes);
    }
}

/// `[review]` (issue 15, `job::review`), and what a reviewed job cannot be: one that
/// combines a run's files into one output.
fn read_review(
    doc: &mut Doc<'_>,
    top: &mut TableReader<'_, '_>,
    has_input: bool,
    combines: &Combines,
) -> Option<Option<review::Review>> {
    let Some(t) = top.table(doc, "review") else {
        return Some(None);
    };
    let span = t.span.clone();
    let r = review::read(doc, t, has_input);
    if combines.iter().any(|(c, _)| *c) {
        doc.error(span, "review", "`combine = true` is not supported with `[review]` yet: each file is reviewed on its own");
        return None;
    }
    r.map(Some)
}

/// Every folder a job writes into (outputs, outboxes, FTP folders, archive and error
/// folders), each with where its key stands.
fn writes(
    doc: &Doc<'_>,
    (table, name): (&DeTable<'_>, &str),
    outputs: &[Output],
    after: &After,
) -> Vec<plumbing::Write> {
    let at = |section: &str, idx: Option<usize>, key: &str, path: String| {
        let sec = table.get(section);
        let t = match (sec.map(|v| v.get_ref()), idx) {
            (Some(DeValue::Array(a)), Some(i)) => a.get(i).map(|v| v.get_ref()),
            (Some(v), _) => Some(v),
            _ => None,
        };
        let span = match t {
            Some(DeValue::Table(t)) => t.get(key).map_or(0..0, |v| v.span()),
            _ => 0..0,
        };
        plumbing::At::new(doc, span, &path)
    };
    let mut out = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        let key = if o.deliver.is_some() || o.email.is_some() {
            "outbox"
        } else {
            "folder"
        };
        out.push(plumbing::Write {
            target: plumbing::Target::Folder(plumbing::Folder::of(&o.folder, name)),
            at: at("output", Some(i), key, format!("output[{}].{key}", i + 1)),
        });
        if let Some(d) = &o.deliver
            && !matches!(d.endpoint, remote::Endpoint::Http(_))
        {
            out.push(plumbing::Write {
                target: plumbing::Target::Ftp(plumbing::FtpPlace::of(&d.endpoint)),
                at: at("output", Some(i), "ftp", format!("output[{}].ftp", i + 1)),
            });
        }
    }
    if after.success == Success::Archive {
        out.push(plumbing::Write {
            target: plumbing::Target::Folder(plumbing::Folder::of(&after.archive, name)),
            at: at("after", None, "archive", "after.archive".into()),
        });
    }
    out.push(plumbing::Write {
        target: plumbing::Target::Folder(plumbing::Folder::of(&after.error, name)),
        at: at("after", None, "error", "after.error".into()),
    });
    out
}

/// A folder ferry writes into must not be one it takes files from: the files would come
/// back as new input, forever. An output, archive or error folder may sit *inside* the
/// source folder only when the source is not recursive (subfolders are then not read).
/// Paths are compared as written here; [`plumbing`] compares real paths across jobs.
/// `allow_cycle = true` says the loop is intended.
fn check_feedback(doc: &mut Doc<'_>, source: &plumbing::SourceFacts, writes: &[plumbing::Write]) {
    if source.allow_cycle {
        return;
    }
    for w in writes {
        let plumbing::Target::Folder(f) = &w.target else {
            continue;
        };
        if plumbing::feeds_itself(w, source) {
            doc.error(
                w.at.span.clone(),
                &w.at.key,
                format!(
                    "{} is inside the source folder {}{}: its files would be taken again as new input; use a folder outside the source",
                    f.shown,
                    source.folder.display(),
                    if source.recursive { " (recursive)" } else { "" }
                ),
            );
        }
    }
}

/// Compiles glob patterns, each bad one reported at its position. With `names_only` a
/// pattern matches a file name and a `/` in it is an error; with `any_case` letters match
/// in either case (mail addresses and subjects).
pub(crate) fn compile_globs(
    doc: &mut Doc<'_>,
    patterns: &[Str],
    names_only: bool,
    any_case: bool,
) -> Option<GlobSet> {
    let mut b = GlobSetBuilder::new();
    let mut ok = true;
    for p in patterns {
        if names_only && p.value.contains('/') {
            doc.error(
                p.span.clone(),
                &p.key,
                format!(
                    "expected a pattern on the file name only, found {:?} (it has a `/`); use `recursive = true` to take files from subfolders",
                    p.value
                ),
            );
            ok = false;
            continue;
        }
        let glob = globset::GlobBuilder::new(&p.value)
            .case_insensitive(any_case)
            .literal_separator(false)
            .build();
        match glob {
            Ok(g) => {
                b.add(g);
            }
            Err(e) => {
                doc.error(
                    p.span.clone(),
                    &p.key,
                    format!("expected a glob pattern, found {:?}: {}", p.value, e.kind()),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    b.build().ok()
}

fn duration(doc: &mut Doc<'_>, s: Option<Str>, default: Duration) -> Option<Duration> {
    match s {
        None => Some(default),
        Some(s) => match parse_duration(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                None
            }
        },
    }
}

fn template(doc: &mut Doc<'_>, s: &Str, allowed: &[&str]) -> Option<Template> {
    match Template::parse(&s.value, allowed) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in errors {
                doc.error_in_str(s, e.at, e.message);
            }
            None
        }
    }
}

/// An error at a key's value when the table has it, but must not: `folder` beside a source
/// that stages its files, `ftp` beside `mailbox` or `email`, ...
fn refuse(doc: &mut Doc<'_>, key: Option<&Str>, message: &str) {
    if let Some(k) = key {
        doc.error(k.span.clone(), &k.key, message);
    }
}

/// A folder template: relative folders resolve against the deployment root; the literal
/// prefix is joined, the placeholders stay to be rendered per file.
fn folder_template(doc: &mut Doc<'_>, root: &Path, s: &Str) -> Option<Template> {
    folder_template_with(doc, root, s, PLACEHOLDERS)
}

/// A folder template that may use `allowed` (an output's folder: record fields too).
fn folder_template_with(
    doc: &mut Doc<'_>,
    root: &Path,
    s: &Str,
    allowed: &[&str],
) -> Option<Template> {
    if let Some(why) = share::foreign_path(&s.value) {
        doc.error(s.span.clone(), &s.key, why);
        return None;
    }
    // Parse as written first, so error positions point into the job file.
    let t = template(doc, s, allowed)?;
    if Path::new(&s.value).is_absolute() {
        return Some(t);
    }
    // The root becomes part of the literal prefix; braces in it must stay literal.
    let escaped_root = root
        .display()
        .to_string()
        .replace('{', "{{")
        .replace('}', "}}");
    Template::parse(&format!("{escaped_root}/{}", s.value), allowed).ok()
}

fn read_after(doc: &mut Doc<'_>, root: &Path, t: Option<TableReader<'_, '_>>) -> Option<After> {
    let (success, archive, error, max_attempts) = match t {
        Some(mut t) => {
            let success_raw = t.str(doc, "success");
            let success = one_of(
                doc,
                success_raw,
                &[
                    ("archive", Success::Archive),
                    ("delete", Success::Delete),
                    ("keep", Success::Keep),
                ],
                Success::Archive,
            );
            let archive = t.str(doc, "archive");
            let error = t.str(doc, "error");
            let max_attempts = t.uint(doc, "max_attempts");
            t.finish_as(doc, "after", "");
            (success, archive, error, max_attempts)
        }
        None => (Some(Success::Archive), None, None, None),
    };
    let default = |v: &str, key: &str| Str {
        value: v.to_string(),
        span: 0..0,
        key: key.to_string(),
    };
    let archive = folder_template(
        doc,
        root,
        &archive.unwrap_or_else(|| default("var/archive/{job}", "after.archive")),
    );
    let error = folder_template(
        doc,
        root,
        &error.unwrap_or_else(|| default("var/error/{job}", "after.error")),
    );
    let max_attempts = match max_attempts {
        Some(0) => {
            doc.error(0..0, "after.max_attempts", "expected at least 1");
            None
        }
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        None => Some(3),
    };
    Some(After {
        success: success?,
        archive: archive?,
        error: error?,
        max_attempts: max_attempts?,
    })
}

/// The result of loading a jobs folder: the good jobs, and every problem of the others.
#[derive(Debug, Default)]
pub struct Loaded {
    pub jobs: BTreeMap<String, Job>,
    pub diags: Vec<Diag>,
    /// Job files that had problems, or are left out, by job name.
    pub broken: BTreeMap<String, PathBuf>,
    /// Jobs valid on their own but left out because of others (an overlap, a loop), with
    /// why. They are in `broken` too.
    pub left_out: BTreeMap<String, String>,
}

/// Loads every `*.toml` in `dir`, then checks the jobs against each other (see
/// [`plumbing`]): every problem of every file is reported in one go.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    load_dir_with(dir, &JobDefaults::default())
}

/// [`load_dir`] with ferry.toml's job defaults.
pub fn load_dir_with(dir: &Path, defaults: &JobDefaults) -> std::io::Result<Loaded> {
    let root = deployment_root(dir);
    let mut loaded = Loaded::default();
    let mut facts = Vec::new();
    for f in job_files(dir, &mut loaded)? {
        let (job, f_facts) = load_file_with_facts(&f, &root, defaults);
        match job {
            Ok(job) => {
                loaded.jobs.insert(job.name.clone(), job);
            }
            Err(d) => {
                loaded.broken.insert(f_facts.name.clone(), f.clone());
                loaded.diags.extend(d);
            }
        }
        facts.push(f_facts);
    }
    let found = plumbing::check(&facts);
    loaded.diags.extend(found.diags);
    expect_across(&mut loaded, &facts);
    for (name, why) in found.left_out {
        if let Some(j) = loaded.jobs.remove(&name) {
            loaded.broken.insert(name.clone(), j.file);
            loaded.left_out.insert(name, why);
        } else if let Some(w) = loaded.left_out.get_mut(&name) {
            w.push_str("; ");
            w.push_str(&why);
        }
    }
    Ok(loaded)
}

/// `[expect]` against the other job files (`from` names one): a job with a problem there
/// is broken, like one with a problem of its own.
fn expect_across(loaded: &mut Loaded, facts: &[plumbing::Facts]) {
    let jobs: Vec<expect::JobFacts<'_>> = facts
        .iter()
        .map(|f| expect::JobFacts {
            name: &f.name,
            job: loaded.jobs.get(&f.name),
        })
        .collect();
    let problems = expect::check_across(&jobs);
    for (name, diag) in problems {
        if let Some(j) = loaded.jobs.remove(&name) {
            loaded.broken.insert(name, j.file);
        }
        loaded.diags.push(diag);
    }
}

/// The `*.toml` entries of the jobs folder that are job files, sorted; the others (a FIFO,
/// a device, a folder, a dangling symlink) are reported and counted as broken.
fn job_files(dir: &Path, loaded: &mut Loaded) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        match job_file::not_a_job_file(&p) {
            None => files.push(p),
            Some(why) => {
                loaded.diags.push(Diag {
                    file: p.clone(),
                    line: 1,
                    col: 1,
                    key: String::new(),
                    message: why,
                });
                loaded.broken.insert(job_name_of(&p), p);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn globs_may_overlap(a: &str, b: &str) -> bool {
    let meta = |c: char| matches!(c, '*' | '?' | '[' | '{');
    let (pa, sa) = literal_ends(a, meta);
    let (pb, sb) = literal_ends(b, meta);
    let prefix_ok = pa.starts_with(pb) || pb.starts_with(pa);
    let suffix_ok = sa.ends_with(sb) || sb.ends_with(sa);
    // Without wildcards a pattern is a literal name: compare whole names.
    match (a.contains(meta), b.contains(meta)) {
        (false, false) => a == b,
        _ => prefix_ok && suffix_ok,
    }
}

fn literal_ends(p: &str, meta: impl Fn(char) -> bool + Copy) -> (&str, &str) {
    let first = p.find(meta).unwrap_or(p.len());
    let last = p.rfind(meta).map_or(p.len(), |i| i + 1);
    (&p[..first], &p[last.min(p.len())..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_str(src: &str) -> Result<Job, Vec<Diag>> {
        compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), src)
    }

    /// Issue 11: unknown filters in mail templates are found when the job is loaded.
    #[test]
    fn mail_templates_with_unknown_filters_are_refused() {
        let src = "[source]\nfolder = \"in\"\n[[output]]\nemail = \"mailto:a@b.test\"\nsmtp = \"smtp://x@mail.test\"\npassword = \"p\"\nfrom = \"f@b.test\"\nsubject = \"{{ names | jion(', ') }}\"\n";
        let errs = compile_str(src).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "jobs/t.toml:8:11: output[1].subject: bad template: unknown filter `jion` (did you mean `join`?)"
        );
    }

    /// Issue 11: `format = "csv"` with the default name wrote `orders.json` holding CSV.
    #[test]
    fn a_record_format_gives_the_default_name_its_extension() {
        let name = |format: &str| {
            let src = format!(
                "[source]\nfolder = \"in\"\n[input]\nformat = \"json\"\n[[output]]\nfolder = \"out\"\n{format}\n"
            );
            let job = compile_str(&src).unwrap();
            job.outputs[0].name.as_str().to_string()
        };
        assert_eq!(name(""), "{name}");
        assert_eq!(name("format = \"original\""), "{name}");
        assert_eq!(name("format = \"csv\""), "{stem}.csv");
        assert_eq!(name("format = \"json\""), "{stem}.json");
        assert_eq!(name("format = \"jsonl\""), "{stem}.jsonl");
        assert_eq!(name("format = \"xml\""), "{stem}.xml");
        assert_eq!(name("format = \"text\"\ntemplate = \"x\""), "{stem}.txt");
    }

    #[test]
    fn the_issue_example_is_accepted_as_written() {
        let job = compile_str(
            r#"
description = "ERP invoice exports go to the archive system's import share"

[source]
folder = "var/inbox/invoices"   # a local path or a mounted share
include = ["*.xml", "*.pdf"]    # globs on the file name; default: every file
exclude = ["*.tmp", "~*"]       # hidden files and usual temp names are skipped anyway
settle = "2s"                   # taken once size and mtime have not changed for this long

[[output]]
folder = "var/out/archive-import"
name = "{stem}_{date:%Y%m%d}.{ext}"
exists = "unique"               # fail | overwrite | unique | skip

[after]
success = "archive"             # archive | delete | keep
archive = "var/archive/{date:%Y-%m}"
error = "var/error"
"#,
        )
        .unwrap();
        assert_eq!(
            job.source.folder,
            Path::new("/srv/ferry/var/inbox/invoices")
        );
        assert_eq!(job.source.settle, Duration::from_secs(2));
        assert!(job.source.matches("a.xml"));
        assert!(!job.source.matches("a.csv"));
        assert!(!job.source.matches("a.tmp"));
        assert!(!job.source.matches(".hidden.xml"));
        assert!(!job.source.matches("~lock.xml"));
        assert_eq!(job.outputs[0].exists, Exists::Unique);
        assert_eq!(
            job.after.archive.literal_prefix(),
            "/srv/ferry/var/archive/"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let errs = compile_str(
            "[source]\nfolder = 3\nsettel = \"2s\"\ninclude = [\"[a\"]\npoll = \"fast\"\n\n[[output]]\nfolder = \"o\"\nname = \"{stem}.{nope}\"\nexists = \"maybe\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert!(
            text[0].starts_with(
                "jobs/t.toml:2:10: source.folder: expected a string, found the integer 3"
            ),
            "{text:?}"
        );
        assert!(
            text[1].starts_with(
                "jobs/t.toml:3:1: source.settel: unknown key `settel`; did you mean `settle`?"
            ),
            "{text:?}"
        );
        assert!(
            text[2].starts_with("jobs/t.toml:4:12: source.include[0]: expected a glob pattern"),
            "{text:?}"
        );
        assert!(
            text[3].starts_with("jobs/t.toml:5:8: source.poll: expected a duration"),
            "{text:?}"
        );
        assert!(
            text[4].starts_with("jobs/t.toml:9:16: output[1].name: unknown placeholder `{nope}`"),
            "{text:?}"
        );
        assert!(text[5].starts_with("jobs/t.toml:10:10: output[1].exists: expected one of \"fail\", \"overwrite\", \"unique\", \"skip\", found \"maybe\""), "{text:?}");
        assert_eq!(text.len(), 6, "{text:?}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = compile_str("[source]\nfolder = \"x\n").unwrap_err();
        assert_eq!(errs[0].line, 2, "{errs:?}");
        assert!(errs[0].message.starts_with("TOML syntax"));
    }

    #[test]
    fn folders_that_feed_back_into_the_source_are_refused() {
        let errs = compile_str(
            "[source]\nfolder = \"in\"\nrecursive = true\n[[output]]\nfolder = \"in/out\"\n[after]\narchive = \"in/archive/{date:%Y}\"\n",
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert!(
            text[0].starts_with("jobs/t.toml:5:10: output[1].folder:"),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("jobs/t.toml:7:11: after.archive:"),
            "{text:?}"
        );
        assert_eq!(text.len(), 2, "{text:?}");
        // Not recursive: a subfolder is fine, the folder itself is not.
        assert!(
            compile_str("[source]\nfolder = \"in\"\n[[output]]\nfolder = \"in/out\"\n").is_ok()
        );
        assert!(compile_str("[source]\nfolder = \"in\"\n[[output]]\nfolder = \"in\"\n").is_err());
    }

    #[test]
    fn overlapping_patterns() {
        assert!(globs_may_overlap("*.csv", "*"));
        assert!(globs_may_overlap("A*.csv", "*.csv"));
        assert!(!globs_may_overlap("*.xml", "*.pdf"));
        assert!(!globs_may_overlap("A*", "B*"));
        assert!(!globs_may_overlap("a.csv", "b.csv"));
        assert!(globs_may_overlap("a.csv", "a.csv"));
    }

    #[test]
    fn done_file_triggers_are_never_data() {
        let job = compile_str("[source]\nfolder = \"in\"\nready = \"done-file\"\n").unwrap();
        assert!(!job.source.matches("x.csv.done"));
        assert!(job.source.matches("x.csv"));
        assert_eq!(job.source.done_files("x.csv"), vec!["x.csv.done", "x.done"]);
        let job =
            compile_str("[source]\nfolder = \"in\"\nready = \"done-file\"\ndone = \"ok_{name}\"\n")
                .unwrap();
        assert!(!job.source.matches("ok_x.csv"));
        assert!(job.source.matches("x.csv"));
    }
}
