//! Processing one ready file to its outcome: routing and document sets decide first
//! whether it is this job's and complete ([`super::sets`]), then it is delivered in the
//! steps that make a crash at any instant safe ([`super::deliver`]: claim, write temporary
//! outputs, make the plan durable, rename into place, dispose of the original, done), or
//! it fails: it goes to the error folder with a report beside it (`fail`).
//!
//! After a crash, recovery ([`super::recovery`]) finishes every planned file with the same
//! steps, and removes the temporary files of claimed ones, which are then taken again.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Local;

use crate::fsutil;
use crate::job::template::Vars;
use crate::job::{Exists, Job, Success};
use crate::journal::Journal;
use crate::outputs::folder as out;
use crate::readiness::Meta;
use crate::sources::folder::{Found, NotAsListed};

use super::deliver::{
    Claimed, Delivery, Stop, claim, deliver, free_name, render_dir, resolve, template_base,
};
use super::sets;

/// How processing a file ended, for the source that handed it over.
#[derive(Debug)]
pub enum Outcome {
    /// Every output committed and the original disposed of; `kept` when it stays in the
    /// source; `outputs`: what was committed (for `/metrics`).
    Done {
        kept: Option<Meta>,
        outputs: Vec<crate::metrics::Written>,
    },
    /// Sent to the error folder (or, when even that failed, left in place: `kept`);
    /// `output`: the output whose failure it was (its index, from 0), when it was one's.
    Failed {
        kept: Option<Meta>,
        output: Option<u32>,
    },
    /// The file changed or vanished while being taken: not an error, it settles again.
    Released,
    /// Outputs are committed but the original could not be disposed of; recovery at the
    /// next start retries. Not taken again meanwhile.
    Stuck,
    /// Its delivery failed at `dest` for a reason that may pass: it stays in the source,
    /// queued in the journal, and is tried again later ([`super::retry`]).
    Queued {
        dest: String,
        first_failed_ms: i64,
        error: String,
        /// The output that failed (its index, from 0), when known.
        output: Option<u32>,
    },
    /// Not complete yet (a document set missing a member): looked at again after
    /// `settle`; in `--once` mode left for a later run.
    Waiting,
    /// Not this job's file (its content does not match, or it is a set member that its
    /// lead took already): left alone until it changes.
    Ignored { meta: Meta },
}

/// A failure of one file, with the chain of causes for its error report.
#[derive(Debug)]
pub struct FileError {
    pub chain: Vec<String>,
    /// A failure that may pass (`outputs::failure`): the destination (an output folder)
    /// that failed. The file is then queued for another try instead of failing
    /// ([`super::retry`]).
    pub transient: Option<String>,
    /// The output (its index, from 0) whose write failed, when the failure is one output's
    /// (for `/metrics`' failures per output).
    pub output: Option<u32>,
}

impl FileError {
    pub(super) fn new(what: impl Into<String>) -> Self {
        FileError {
            chain: vec![what.into()],
            transient: None,
            output: None,
        }
    }

    /// The failure is output `idx`'s (from 0).
    pub(super) fn at(mut self, idx: u32) -> Self {
        self.output = Some(idx);
        self
    }

    /// An I/O error writing to the destination folder `dest`: it may pass or not, as
    /// `outputs::failure` sorts it.
    pub(super) fn output_io(what: impl Into<String>, dest: &Path, e: &io::Error) -> Self {
        let mut err = Self::io(what, e);
        if crate::outputs::failure::of_io(e).is_transient() {
            err.transient = Some(dest.to_string_lossy().into_owned());
        }
        err
    }

    pub(super) fn io(what: impl Into<String>, e: &io::Error) -> Self {
        let mut chain = vec![what.into(), e.to_string()];
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push(s.to_string());
            src = s.source();
        }
        FileError {
            chain,
            transient: None,
            output: None,
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.chain.join(": "))
    }
}

/// What a dry run shows: where each output and the original would go.
pub struct Preview {
    /// Each output named once per file: its index, path and `exists` policy.
    pub outputs: Vec<(u32, PathBuf, Exists)>,
    /// Outputs written once per group of records (`split`): their index and folder.
    pub split_dirs: Vec<(u32, PathBuf)>,
    pub archive_dir: Option<PathBuf>,
    pub error_dir: Option<PathBuf>,
    /// Outputs that take pieces out of a PDF (`extract`): their index and folder.
    pub extract_dirs: Vec<(u32, PathBuf)>,
}

/// Resolves every name of a file without touching anything (`ferry test`).
pub fn preview(job: &Job, vars: &Vars<'_>) -> Result<Preview, FileError> {
    let r = resolve(job, vars, 0)?;
    Ok(Preview {
        outputs: r
            .targets
            .into_iter()
            .map(|t| (t.idx, t.final_path, t.exists))
            .collect(),
        split_dirs: r.split_dirs,
        archive_dir: r.archive_dir,
        error_dir: render_dir(&job.after.error, vars).ok(),
        extract_dirs: r.extract_dirs,
    })
}

/// For `ferry test`: the file each split output would write for each group of records
/// (given by its first record), named as a run names them, in the order a run opens them;
/// an error where the run would fail.
pub fn preview_split(
    job: &Job,
    vars: &Vars<'_>,
    dirs: &[(u32, PathBuf)],
    groups: &[crate::formats::Record],
) -> Vec<(u32, Result<PathBuf, String>)> {
    let mut used = super::deliver::UsedNames::default();
    let mut out = Vec::new();
    for rec in groups {
        for (oi, dir) in dirs {
            let o = &job.outputs[*oi as usize];
            let v = Vars {
                record: Some(rec),
                ..vars.clone()
            };
            let named = fsutil::safe_join(dir, &o.name.render(&v), true)
                .map_err(|e| format!("output {}: {e}", oi + 1));
            let path = named.and_then(|base| {
                free_name(&base, o.exists, &used).ok_or_else(|| {
                    format!(
                        "output {}: {} exists already, or two groups of records have this name (exists = \"{}\")",
                        oi + 1,
                        base.display(),
                        o.exists.as_str()
                    )
                })
            });
            if let Ok(p) = &path {
                used.insert(p);
            }
            out.push((*oi, path));
        }
    }
    out
}

/// Processes one ready file of `job` to its end: decides whether it is this job's and
/// complete, [`claim`]s it, then [`deliver`]s it or sends it to the error folder.
pub fn process(job: &Job, found: &Found, first_seen_ms: i64, journal: &Journal) -> Outcome {
    let span = tracing::info_span!("file", job = %job.name, file = %found.path.display());
    let _enter = span.enter();
    // A reviewed job delivers into its pending area, to wait for a decision (issue 15).
    let staged = match job
        .review
        .as_ref()
        .map(|_| super::review::staged_job(job, journal.state_dir()))
    {
        Some(Err(e)) => {
            tracing::error!(error = %e, "Cannot hold the file for review; leaving it in place.");
            return Outcome::Released;
        }
        Some(Ok(j)) => Some(j),
        None => None,
    };
    let (real, job) = (job, staged.as_ref().unwrap_or(job));

    // Still the file that settled? Opened through its folder's handle, never through a
    // symlink, and checked to be the regular file that was listed (device, inode, size,
    // mtime); everything read of the original is read from this handle.
    let found = &match found.open_checked() {
        Ok(f) => f,
        Err(NotAsListed::Changed(why)) => {
            tracing::info!(reason = %why, "File changed since it settled; waiting for it to settle again.");
            return Outcome::Released;
        }
        Err(NotAsListed::Io(e)) => {
            tracing::warn!(error = %e, "Cannot open the file; trying again later.");
            return Outcome::Released;
        }
    };
    let mut known = match before_claim(job, found, first_seen_ms, journal) {
        Ok(k) => k,
        Err(outcome) => return outcome,
    };
    let pre_error = known.pre_error.take();
    let index = known.index();
    let vars = Vars {
        name: &found.name,
        dir: &found.rel_dir,
        job: &job.name,
        seq: 0, // given by the claim
        taken: known.taken,
        record: index,
        mail: known.mail.as_ref(),
    };
    let members = known.set.as_ref().map_or(&[][..], |s| &s.companions[..]);
    let Some(claimed) = claim(job, found, first_seen_ms, &vars, members, journal) else {
        return Outcome::Released;
    };
    let review = staged.is_some().then_some(real);
    after_claim(job, review, found, vars, claimed, pre_error, journal)
}

/// Takes a claimed file to its outcome: sets it aside when it was interrupted too often or
/// failed before its claim (`pre_error`); otherwise holds it for review (when `review` is
/// the job it is staged for) and [`deliver`]s it, queueing it for another try when the
/// delivery failed for a reason that may pass.
fn after_claim(
    job: &Job,
    review: Option<&Job>,
    found: &Found,
    vars: Vars<'_>,
    claimed: Claimed,
    pre_error: Option<String>,
    journal: &Journal,
) -> Outcome {
    let vars = Vars {
        seq: claimed.seq,
        ..vars
    };
    let d = Delivery {
        job,
        found,
        vars: &vars,
        id: claimed.id,
        companions: &claimed.companions,
        journal,
    };
    if let Some(err) = set_aside(job, claimed.attempts, pre_error) {
        return fail_set(&d, claimed.attempts, None, err);
    }
    // A file in the retry queue: the outputs an earlier try delivered are not written again.
    let queued = super::retry::row_for(journal, &job.name, &found.path, found.meta);
    let resolved = match claimed.resolved {
        Ok(mut r) => {
            if let Some(row) = &queued {
                super::retry::skip_delivered(&mut r, row);
            }
            r
        }
        Err(e) => return fail_set(&d, claimed.attempts, None, e),
    };
    if let Some(real) = review
        && let Err(e) = super::review::hold(real, found, &vars, claimed.id, journal)
    {
        return fail_set(&d, claimed.attempts, None, FileError::new(e));
    }
    match deliver(&d, resolved) {
        Ok(outcome) | Err(Stop::Outcome(outcome)) => {
            if queued.is_some() && matches!(outcome, Outcome::Done { .. }) {
                super::retry::forget(journal, &job.name, &found.path);
            }
            outcome
        }
        Err(Stop::Fail(hash, mut e)) => {
            if let Some(dest) = e.transient.clone() {
                match super::retry::after_failure(&d, &dest, &e, &[]) {
                    super::retry::Decision::Queued { first_failed } => {
                        return Outcome::Queued {
                            dest,
                            first_failed_ms: first_failed,
                            error: e.to_string(),
                            output: e.output,
                        };
                    }
                    super::retry::Decision::GiveUp(why) if !why.is_empty() => {
                        e.chain.insert(0, why);
                    }
                    super::retry::Decision::GiveUp(_) => {}
                }
            }
            let output = e.output;
            match fail_set(&d, claimed.attempts, hash, e) {
                Outcome::Failed { kept, .. } => Outcome::Failed { kept, output },
                other => other,
            }
        }
    }
}

/// Why a claimed file fails before anything of it is written: it was interrupted more than
/// `max_attempts` times (so that it cannot stop the job again), or it failed before its
/// claim (`pre_error`).
fn set_aside(job: &Job, attempts: u32, pre_error: Option<String>) -> Option<FileError> {
    if attempts > job.after.max_attempts {
        return Some(FileError::new(format!(
            "ferry was interrupted {} times while processing this file (max_attempts = {}); it is set aside so that it cannot stop the job again",
            attempts - 1,
            job.after.max_attempts
        )));
    }
    pre_error.map(FileError::new)
}

/// What is known of a file before it is claimed.
struct Known {
    /// The error the file fails with once claimed (it cannot be routed, its set is
    /// incomplete, its first record cannot be read).
    pre_error: Option<String>,
    set: Option<sets::SetCtx>,
    taken: chrono::DateTime<Local>,
    /// A file taken from a mailbox: its message, for names and transforms.
    mail: Option<crate::job::mail::MailMeta>,
    /// The first record, for names made of what the file says.
    first: Option<crate::formats::Record>,
}

impl Known {
    /// The record whose fields output names use: a set's index, or the file's first.
    fn index(&self) -> Option<&crate::formats::Record> {
        self.set
            .as_ref()
            .and_then(|s| s.index.as_ref())
            .or(self.first.as_ref())
    }
}

/// Content routing and document sets decide before anything is claimed; names made of
/// what the file says read its first record (a set's lead its index). `Err`: nothing to
/// claim now.
fn before_claim(
    job: &Job,
    found: &Found,
    first_seen_ms: i64,
    journal: &Journal,
) -> Result<Known, Outcome> {
    let mut pre_error = match sets::route(job, found) {
        Ok(Some(outcome)) => return Err(outcome),
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let taken = Local::now();
    let mut set = match sets::prepare(job, found, first_seen_ms, journal) {
        sets::Prep::Alone => None,
        sets::Prep::Set(s) => Some(s),
        sets::Prep::Outcome(o) => return Err(o),
    };
    if let Some(s) = &mut set {
        if let Some(e) = s.incomplete.take() {
            pre_error = Some(e);
        } else if pre_error.is_none() {
            match sets::read_index(job, found, meta_map(job, found, taken)) {
                Ok(r) => s.index = r,
                Err(e) => pre_error = Some(e),
            }
        }
    }
    let mail = job.source.mailbox.as_ref().and_then(|_| {
        crate::sources::mail_store::meta_of_staged(journal, &found.path.to_string_lossy())
    });
    let mut first = None;
    if set.is_none() && pre_error.is_none() && job.input.is_some() && super::naming::use_record(job)
    {
        let meta = with_mail(meta_map(job, found, taken), mail.as_ref());
        let read = found
            .reader()
            .map_err(|e| format!("cannot read the file: {e}"))
            .and_then(|f| super::naming::first_record(job, f, meta));
        match read {
            Ok(r) => first = Some(r),
            Err(e) => pre_error = Some(e),
        }
    }
    Ok(Known {
        pre_error,
        set,
        taken,
        mail,
        first,
    })
}

/// Fails a claimed file, and a set's other members with it.
fn fail_set(d: &Delivery<'_>, attempts: u32, hash: Option<String>, err: FileError) -> Outcome {
    super::retry::forget(d.journal, &d.job.name, &d.found.path);
    let msg = err.to_string();
    let outcome = fail(d.job, d.found, d.vars, d.id, attempts, hash, err, d.journal);
    for c in d.companions {
        let cvars = Vars {
            name: &c.found.name,
            seq: c.seq,
            ..d.vars.clone()
        };
        let e = FileError::new(format!(
            "this file belongs to the document set of {}, which failed: {msg}",
            d.found.name
        ));
        let _ = fail(
            d.job, &c.found, &cvars, c.id, c.attempts, None, e, d.journal,
        );
    }
    outcome
}

/// What expressions see as `meta` for a file.
pub(super) fn meta_map(
    job: &Job,
    found: &Found,
    taken: chrono::DateTime<Local>,
) -> std::collections::BTreeMap<String, String> {
    super::naming::meta(job, &found.path, &found.name, &found.rel_dir, taken)
}

/// `meta` with the message's facts of a file taken from a mailbox (`mail_from`, ...), as
/// the conversion in [`super::deliver`] sees it.
pub(super) fn with_mail(
    mut meta: std::collections::BTreeMap<String, String>,
    mail: Option<&crate::job::mail::MailMeta>,
) -> std::collections::BTreeMap<String, String> {
    if let Some(m) = mail {
        meta.insert("mail_from".into(), m.from.clone());
        meta.insert("mail_subject".into(), m.subject.clone());
        meta.insert("mail_date".into(), m.date.clone());
        meta.insert("mail_message_id".into(), m.message_id.clone());
    }
    meta
}

/// Where a failed file goes in the job's error folder: its name, or (one that cannot be
/// used as it is) its portable form, numbered when taken.
fn error_dest(job: &Job, found: &Found, vars: &Vars<'_>) -> Result<PathBuf, FileError> {
    let dir = render_dir(&job.after.error, vars)?;
    let base = fsutil::safe_join(&dir, &found.name, false)
        .or_else(|_| fsutil::safe_join(&dir, &fsutil::portable_component(&found.name), true))
        .map_err(FileError::new)?;
    Ok(free_error_name(&base))
}

/// Sends the file to the error folder with a report beside it. A later failure of a file
/// with the same name never overwrites an earlier one: both the file and its report take the
/// first free numbered name.
#[allow(clippy::too_many_arguments)]
pub(super) fn fail(
    job: &Job,
    found: &Found,
    vars: &Vars<'_>,
    id: i64,
    attempts: u32,
    hash: Option<String>,
    err: FileError,
    journal: &Journal,
) -> Outcome {
    tracing::warn!(error = %err, "File failed; moving it to the error folder.");
    let dest = match error_dest(job, found, vars) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Cannot name the file in the error folder; leaving it in place.");
            let _ = journal.failed(id, format!("{err}; and it could not be moved: {e}"));
            return Outcome::Failed {
                kept: Some(found.meta),
                output: None,
            };
        }
    };
    let keep = job.after.success == Success::Keep;
    if let Err(e) = journal.failing(id, &err.to_string(), &dest.to_string_lossy(), keep) {
        tracing::error!(error = %e, "Cannot record the failure in the journal; leaving the file in place.");
        return Outcome::Failed {
            kept: Some(found.meta),
            output: None,
        };
    }
    let report = Report {
        job: &job.name,
        job_file: &job.file,
        source: &found.path,
        size: found.meta.size,
        hash: hash.as_deref(),
        attempts,
        error: &err.chain,
    };
    match quarantine_found(
        found,
        &dest,
        &template_base(&job.after.error),
        &report,
        job.source.done_files(&found.name),
        keep,
    ) {
        Ok(went) if keep => {
            tracing::warn!(copied_to = %went.display(), "File copied to the error folder; the original stays in the source (success = \"keep\") and is not taken again until it changes.");
            let _ = journal.failed(id, format!("copied to {}: {err}", went.display()));
            Outcome::Failed {
                kept: Some(found.meta),
                output: None,
            }
        }
        Ok(went) => {
            tracing::warn!(moved_to = %went.display(), "File moved to the error folder.");
            let _ = journal.failed(id, format!("moved to {}: {err}", went.display()));
            Outcome::Failed {
                kept: None,
                output: None,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot move the failed file to the error folder; it stays in the source and is not retried until it changes or ferry restarts.");
            let _ = journal.failed(
                id,
                format!("{err}; and it could not be moved to the error folder: {e}"),
            );
            Outcome::Failed {
                kept: Some(found.meta),
                output: None,
            }
        }
    }
}

/// The first numbered variant of `base` such that neither it nor its report exists.
pub(super) fn free_error_name(base: &Path) -> PathBuf {
    (0..)
        .map(|n| fsutil::numbered(base, n))
        .find(|p| !fsutil::exists(p) && !fsutil::exists(&report_path(p)))
        .expect("an unbounded search finds a free name")
}

pub use crate::fsutil::report_path;

/// What an error report says.
pub(super) struct Report<'a> {
    pub job: &'a str,
    pub job_file: &'a Path,
    pub source: &'a Path,
    pub size: u64,
    pub hash: Option<&'a str>,
    pub attempts: u32,
    pub error: &'a [String],
}

impl Report<'_> {
    fn render(&self, went: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "ferry could not process this file.");
        let _ = writeln!(s);
        let _ = writeln!(s, "file:      {}", self.source.display());
        let _ = writeln!(s, "moved to:  {}", went.display());
        let _ = writeln!(s, "job:       {} ({})", self.job, self.job_file.display());
        let _ = writeln!(
            s,
            "time:      {}",
            Local::now().format("%Y-%m-%d %H:%M:%S %z")
        );
        let _ = writeln!(s, "attempts:  {}", self.attempts);
        let _ = writeln!(s, "size:      {} bytes", self.size);
        if let Some(h) = self.hash.filter(|h| !h.is_empty()) {
            let _ = writeln!(s, "sha256:    {h}");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "error:");
        for (i, e) in self.error.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(s, "  {e}");
            } else {
                let _ = writeln!(s, "  caused by: {e}");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "To try again, fix the cause and move the file back into the source folder."
        );
        s
    }
}

/// Moves `src` to `dest` (or the next free name) and writes its report beside it. With
/// `keep` (the job never changes its source), the file is copied instead and stays.
pub(super) fn quarantine(
    src: &Path,
    dest: &Path,
    report: &Report<'_>,
    triggers: Vec<String>,
    keep: bool,
) -> io::Result<PathBuf> {
    let went = loop {
        let candidate = free_error_name(dest);
        let result = if keep {
            out::copy_new(src, &candidate)
        } else {
            out::move_file(src, &candidate)
        };
        match result {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    write_report(&went, report)?;
    if !keep {
        for t in triggers {
            let _ = std::fs::remove_file(src.with_file_name(t));
        }
    }
    Ok(went)
}

/// [`quarantine`] of an original listed through its folder's handle: moved (or copied)
/// through that handle into the error folder, opened below its literal part `base`
/// without following a symlink.
pub(super) fn quarantine_found(
    found: &Found,
    dest: &Path,
    base: &Path,
    report: &Report<'_>,
    triggers: Vec<String>,
    keep: bool,
) -> io::Result<PathBuf> {
    if found.dir.is_none() {
        return quarantine(&found.path, dest, report, triggers, keep);
    }
    let free = (0..)
        .map(|n| fsutil::numbered(dest, n))
        .filter(|p| !fsutil::exists(p) && !fsutil::exists(&report_path(p)));
    let went = if keep {
        super::original::copy_to(found, base, free)?
    } else {
        super::original::move_to(found, base, free)?
    };
    write_report(&went, report)?;
    if !keep {
        for t in triggers {
            let _ = super::original::remove_sibling(found, &t);
        }
    }
    Ok(went)
}

pub(super) fn write_report(went: &Path, report: &Report<'_>) -> io::Result<()> {
    let rp = report_path(went);
    let text = crate::redact::scrub(&report.render(went)).into_owned();
    match fsutil::write_new_durable(&rp, text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}
