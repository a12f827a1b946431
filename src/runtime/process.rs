//! Processing one file, in the order that makes a crash at any instant safe:
//!
//! 1. **claim** it in the journal (an id, a `{seq}`, the attempt count), durably, so that
//!    recovery knows every temporary file that may exist;
//! 2. write every output under a temporary name in its target folder and fsync it; nothing
//!    is visible yet, and a failure here only leaves temporary files to remove;
//! 3. make the **plan** durable: final names, hashes, where the original goes;
//! 4. rename the outputs to their final names and fsync their folders;
//! 5. archive, delete or keep the original;
//! 6. record it **done** (lazy: recovery can tell from the plan and the disk).
//!
//! After a crash, recovery ([`super::recovery`]) finishes every planned file from step 4 on,
//! and removes the temporary files of claimed ones, which are then taken again.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Local;

use crate::fsutil;
use crate::job::data::{OnError, OutputFormat};
use crate::job::template::Vars;
use crate::job::{Exists, Job, Success};
use crate::journal::{Identity, Journal, Plan, PlannedOutput};
use crate::outputs::folder::{self as out, TempOutput};
use crate::readiness::Meta;
use crate::sources::folder::{Found, NotAsListed};

use super::{extract, pipeline, sets};

/// How processing a file ended, for the source that handed it over.
#[derive(Debug)]
pub enum Outcome {
    /// Every output committed and the original disposed of; `kept` when it stays in the
    /// source.
    Done { kept: Option<Meta> },
    /// Sent to the error folder (or, when even that failed, left in place: `kept`).
    Failed { kept: Option<Meta> },
    /// The file changed or vanished while being taken: not an error, it settles again.
    Released,
    /// Outputs are committed but the original could not be disposed of; recovery at the
    /// next start retries. Not taken again meanwhile.
    Stuck,
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
}

impl FileError {
    fn new(what: impl Into<String>) -> Self {
        FileError {
            chain: vec![what.into()],
        }
    }

    fn io(what: impl Into<String>, e: &io::Error) -> Self {
        let mut chain = vec![what.into(), e.to_string()];
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push(s.to_string());
            src = s.source();
        }
        FileError { chain }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.chain.join(": "))
    }
}

struct Target {
    idx: u32,
    final_path: PathBuf,
    temp: PathBuf,
    exists: Exists,
    /// A document set's member whose bytes this output gets, instead of the file's.
    member: Option<String>,
}

/// Everything the names of one file resolve to.
struct Resolved {
    targets: Vec<Target>,
    /// Outputs named per group of records (`split`): their index and folder.
    split_dirs: Vec<(u32, PathBuf)>,
    /// Outputs that extract pieces of a PDF (`extract`): their index and folder.
    extract_dirs: Vec<(u32, PathBuf)>,
    archive_dir: Option<PathBuf>,
}

/// Whether output `o` of `job` is written per group of records.
fn is_split(job: &Job, o: &crate::job::Output) -> bool {
    job.transform.split.is_some() && !matches!(o.data.format, OutputFormat::Original)
}

/// The folder a folder template's placeholders render below: its literal part. The
/// admin's path to it may go through symlinks; nothing below it is followed.
pub(super) fn template_base(t: &crate::job::template::Template) -> PathBuf {
    let prefix = crate::job::absolute(Path::new(t.literal_prefix()));
    if t.literal_prefix().ends_with('/') || t.is_literal() {
        prefix
    } else {
        prefix.parent().map(Path::to_path_buf).unwrap_or(prefix)
    }
}

fn render_dir(t: &crate::job::template::Template, vars: &Vars<'_>) -> Result<PathBuf, FileError> {
    let rendered = t.render_folder(vars);
    let p = crate::job::absolute(Path::new(&rendered));
    // A placeholder may add folders below the template's literal part, never climb out.
    let base = template_base(t);
    if !p.starts_with(&base) {
        return Err(FileError::new(format!(
            "the folder {:?} rendered to {}, outside {}",
            t.as_str(),
            p.display(),
            base.display()
        )));
    }
    Ok(p)
}

fn resolve(job: &Job, vars: &Vars<'_>, id: i64) -> Result<Resolved, FileError> {
    let mut targets = Vec::new();
    let mut split_dirs = Vec::new();
    let mut extract_dirs = Vec::new();
    for (i, o) in job.outputs.iter().enumerate() {
        super::naming::check(job, i, vars.record).map_err(FileError::new)?;
        let dir = render_dir(&o.folder, vars)?;
        if o.extract.is_some() {
            extract_dirs.push((i as u32, dir));
            continue;
        }
        if is_split(job, o) {
            split_dirs.push((i as u32, dir));
            continue;
        }
        let name = o.name.render(vars);
        let final_path = fsutil::safe_join(&dir, &name, true)
            .map_err(|e| FileError::new(format!("output {}: {e}", i + 1)))?;
        let idx = i as u32;
        let member = o.member.as_ref().and_then(|m| {
            let set = job.source.set.as_ref()?;
            set.which(vars.name).map(|(_, stem)| m.name(stem))
        });
        targets.push(Target {
            idx,
            temp: out::temp_path(&final_path, id, idx),
            final_path,
            exists: o.exists,
            member,
        });
    }
    let archive_dir = match job.after.success {
        Success::Archive => Some(render_dir(&job.after.archive, vars)?),
        _ => None,
    };
    Ok(Resolved {
        targets,
        split_dirs,
        extract_dirs,
        archive_dir,
    })
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
    let mut used = std::collections::HashSet::new();
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
            let taken = |p: &Path| {
                used.contains(p)
                    || (fsutil::exists(p) && !matches!(o.exists, Exists::Overwrite | Exists::Skip))
            };
            let path = named.and_then(|base| match o.exists {
                Exists::Unique => Ok((0..)
                    .map(|n| fsutil::numbered(&base, n))
                    .find(|p| !taken(p))
                    .expect("a free name")),
                _ if taken(&base) => Err(format!(
                    "output {}: {} exists already, or two groups of records have this name (exists = \"{}\")",
                    oi + 1,
                    base.display(),
                    o.exists.as_str()
                )),
                _ => Ok(base),
            });
            if let Ok(p) = &path {
                used.insert(p.clone());
            }
            out.push((*oi, path));
        }
    }
    out
}

/// Processes one ready file of `job` to its end.
pub fn process(job: &Job, found: &Found, first_seen_ms: i64, journal: &Journal) -> Outcome {
    let span = tracing::info_span!("file", job = %job.name, file = %found.path.display());
    let _enter = span.enter();

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
    // Content routing and document sets decide before anything is claimed.
    let mut pre_error = match sets::route(job, found) {
        Ok(Some(outcome)) => return outcome,
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let taken = Local::now();
    let mut set = match sets::prepare(job, found, first_seen_ms, journal) {
        sets::Prep::Alone => None,
        sets::Prep::Set(s) => Some(s),
        sets::Prep::Outcome(o) => return o,
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
    let identity = Identity {
        path: found.path.to_string_lossy().into_owned(),
        size: found.meta.size,
        mtime_ns: found.meta.mtime_ns,
    };
    // A file taken from a mailbox: its message, for names and transforms.
    let mail_meta = job
        .source
        .mailbox
        .as_ref()
        .and_then(|_| crate::sources::mail_store::meta_of_staged(journal, &identity.path));
    // Names made of what the file says: its first record, read before the claim (a
    // set's lead gave its index above).
    let mut first = None;
    if set.is_none() && pre_error.is_none() && job.input.is_some() && super::naming::use_record(job)
    {
        let meta = with_mail(meta_map(job, found, taken), mail_meta.as_ref());
        let read = found
            .reader()
            .map_err(|e| format!("cannot read the file: {e}"))
            .and_then(|f| super::naming::first_record(job, f, meta));
        match read {
            Ok(r) => first = Some(r),
            Err(e) => pre_error = Some(e),
        }
    }
    let index = set
        .as_ref()
        .and_then(|s| s.index.as_ref())
        .or(first.as_ref());
    let mut resolved = None;
    let claim = journal.claim(
        &job.name,
        &identity,
        &found.name,
        &found.rel_dir,
        first_seen_ms,
        |c| {
            let vars = Vars {
                name: &found.name,
                dir: &found.rel_dir,
                job: &job.name,
                seq: c.seq,
                taken,
                record: index,
                mail: mail_meta.as_ref(),
            };
            let r = resolve(job, &vars, c.id);
            // Split outputs get their names while the file is read: recovery removes
            // their temporary files by pattern.
            let temps = r
                .as_ref()
                .map(|r| {
                    r.targets
                        .iter()
                        .map(|t| t.temp.to_string_lossy().into_owned())
                        .chain(r.split_dirs.iter().chain(&r.extract_dirs).map(|(_, d)| {
                            d.join(format!(".ferry-out-{}-*", c.id))
                                .to_string_lossy()
                                .into_owned()
                        }))
                        .collect()
                })
                .unwrap_or_default();
            resolved = Some(r);
            temps
        },
    );
    let claim = match claim {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Cannot record the file in the journal; leaving it in place.");
            return Outcome::Released;
        }
    };
    let vars = Vars {
        name: &found.name,
        dir: &found.rel_dir,
        job: &job.name,
        seq: claim.seq,
        taken,
        record: index,
        mail: mail_meta.as_ref(),
    };
    // A set's other members are claimed with it: they are planned, disposed of or failed
    // together with the lead.
    let mut companions: Vec<Companion> = Vec::new();
    for c in set.as_ref().map_or(&[][..], |s| &s.companions[..]) {
        let id = Identity {
            path: c.path.to_string_lossy().into_owned(),
            size: c.meta.size,
            mtime_ns: c.meta.mtime_ns,
        };
        match journal.claim(&job.name, &id, &c.name, &c.rel_dir, first_seen_ms, |_| {
            Vec::new()
        }) {
            Ok(cl) => companions.push(Companion {
                found: c.clone(),
                id: cl.id,
                attempts: cl.attempts,
                seq: cl.seq,
            }),
            Err(e) => {
                tracing::error!(error = %e, "Cannot record a set member in the journal; leaving the set in place.");
                return Outcome::Released;
            }
        }
    }
    let fail_all = |hash: Option<String>, err: FileError| {
        let msg = err.to_string();
        let outcome = fail(
            job,
            found,
            &vars,
            claim.id,
            claim.attempts,
            hash,
            err,
            journal,
        );
        for c in &companions {
            let cvars = Vars {
                name: &c.found.name,
                seq: c.seq,
                ..vars.clone()
            };
            let e = FileError::new(format!(
                "this file belongs to the document set of {}, which failed: {msg}",
                found.name
            ));
            let _ = fail(job, &c.found, &cvars, c.id, c.attempts, None, e, journal);
        }
        outcome
    };
    if claim.attempts > job.after.max_attempts {
        let err = FileError::new(format!(
            "ferry was interrupted {} times while processing this file (max_attempts = {}); it is set aside so that it cannot stop the job again",
            claim.attempts - 1,
            job.after.max_attempts
        ));
        return fail_all(None, err);
    }
    if let Some(e) = pre_error {
        return fail_all(None, FileError::new(e));
    }
    let resolved = match resolved.expect("claim calls its closure") {
        Ok(r) => r,
        Err(e) => return fail_all(None, e),
    };
    match deliver(job, found, &vars, claim.id, resolved, &companions, journal) {
        Ok(outcome) => outcome,
        Err((hash, e)) => fail_all(hash, e),
    }
}

/// A set member claimed with its lead.
struct Companion {
    found: Found,
    id: i64,
    attempts: u32,
    seq: u64,
}

/// What expressions see as `meta` for a file.
fn meta_map(
    job: &Job,
    found: &Found,
    taken: chrono::DateTime<Local>,
) -> std::collections::BTreeMap<String, String> {
    super::naming::meta(job, &found.path, &found.name, &found.rel_dir, taken)
}

/// `meta` with the message's facts of a file taken from a mailbox (`mail_from`, ...), as
/// the conversion in `deliver` sees it.
fn with_mail(
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

type Failure = (Option<String>, FileError);

fn deliver(
    job: &Job,
    found: &Found,
    vars: &Vars<'_>,
    id: i64,
    resolved: Resolved,
    companions: &[Companion],
    journal: &Journal,
) -> Result<Outcome, Failure> {
    // Names taken already: decide before writing anything.
    let mut targets = Vec::new();
    for mut t in resolved.targets {
        if fsutil::exists(&t.final_path) {
            match t.exists {
                Exists::Fail => {
                    return Err((
                        None,
                        FileError::new(format!(
                            "output {} {} exists already (exists = \"fail\")",
                            t.idx + 1,
                            t.final_path.display()
                        )),
                    ));
                }
                Exists::Skip => {
                    let _ = journal.event(
                        id,
                        "skipped",
                        format!("output {} exists: {}", t.idx + 1, t.final_path.display()),
                    );
                    continue;
                }
                Exists::Unique => {
                    t.final_path = (1..)
                        .map(|n| fsutil::numbered(&t.final_path, n))
                        .find(|p| !fsutil::exists(p))
                        .expect("an unbounded search finds a free name");
                    t.temp = out::temp_path(&t.final_path, id, t.idx);
                }
                Exists::Overwrite => {}
            }
        }
        targets.push(t);
    }

    // Write every output under its temporary name.
    let cleanup = |targets: &[Target]| {
        for t in targets {
            let _ = std::fs::remove_file(&t.temp);
        }
    };
    // Rejected records (`on_error = "skip"`) go beside the first output.
    let first_folder = targets
        .first()
        .and_then(|t| t.final_path.parent().map(Path::to_path_buf))
        .or_else(|| resolved.split_dirs.first().map(|(_, d)| d.clone()));
    let rejects_target = match (&job.input, first_folder) {
        (Some(i), Some(folder)) if i.on_error == OnError::Skip => {
            let final_path = folder.join(fsutil::fit_component(&format!(
                "{}.rejects.jsonl",
                found.name
            )));
            let idx = job.outputs.len() as u32;
            Some(Target {
                idx,
                temp: out::temp_path(&final_path, id, idx),
                final_path,
                exists: Exists::Unique,
                member: None,
            })
        }
        _ => None,
    };
    let mut rejected = 0;
    let mut split_made: Vec<Target> = Vec::new();
    let mut extract_made: Vec<Target> = Vec::new();
    // The original's bytes go into an output by a hard link instead of a copy when ferry
    // moves or deletes the original (docs/design.md, "Outputs by hard link"): into an
    // outbox (an FTP or email output, which only ferry's deliverer reads), or into a
    // folder when it is the file's only output and the original is deleted. Otherwise a
    // folder output is a copy: a partner that rewrites its file in place must not change
    // the archived original or another output.
    let converting_job = !resolved.split_dirs.is_empty()
        || targets.iter().any(|t| {
            !matches!(
                job.outputs[t.idx as usize].data.format,
                OutputFormat::Original
            )
        });
    let may_link = !converting_job
        && companions.is_empty()
        && job.after.success != Success::Keep
        && owned_by_us(found);
    // A big original whose outputs are all links to it is hashed after it is planned and
    // disposed of, from this open handle, while the deliverers send it (see
    // DEFER_HASH_FROM).
    let mut deferred: Option<std::fs::File> = None;
    let written = (|| -> Result<(String, Vec<(String, u64)>), FileError> {
        let mut raw = Vec::new();
        let mut records = Vec::new();
        let mut finished: Vec<(u32, TempOutput)> = Vec::new();
        let mut linked: Vec<u32> = Vec::new();
        for t in &targets {
            let o = &job.outputs[t.idx as usize];
            let outbox = o.deliver.is_some() || o.email.is_some();
            let sole = targets.len() == 1 && job.after.success == Success::Delete;
            if may_link && (outbox || sole) && t.member.is_none() && link_output(found, &t.temp) {
                linked.push(t.idx);
                continue;
            }
            let tmp = TempOutput::create(&t.temp).map_err(|e| {
                FileError::io(
                    format!("cannot write output {} in {}", t.idx + 1, parent(&t.temp)),
                    &e,
                )
            })?;
            let data = &job.outputs[t.idx as usize].data;
            if let Some(m) = &t.member {
                let mut tmp = tmp;
                let mut src = found.sibling(m).map_err(|e| {
                    FileError::io(format!("cannot open {}", parent_join(&found.path, m)), &e)
                })?;
                io::copy(&mut src, &mut tmp).map_err(|e| {
                    FileError::io(format!("cannot copy {} to output {}", m, t.idx + 1), &e)
                })?;
                finished.push((t.idx, tmp));
                continue;
            }
            match data.format {
                OutputFormat::Original => raw.push((t.idx, tmp)),
                _ => records.push((t.idx, tmp, data)),
            }
        }
        let mut hash = None;
        let converting = !records.is_empty() || !resolved.split_dirs.is_empty();
        if raw.is_empty()
            && !converting
            && !linked.is_empty()
            && linked.len() == targets.len()
            && resolved.extract_dirs.is_empty()
            && found.meta.size >= DEFER_HASH_FROM
        {
            // Through the link, which only ferry uses: the content that will be delivered.
            let link = targets
                .iter()
                .find(|t| t.idx == linked[0])
                .map(|t| t.temp.as_path())
                .expect("a linked output is a target");
            let src = std::fs::File::open(link)
                .map_err(|e| FileError::io(format!("cannot open {}", link.display()), &e))?;
            let n = src
                .metadata()
                .map_err(|e| FileError::io(format!("cannot read {}", link.display()), &e))?
                .len();
            hash = Some((String::new(), n));
            deferred = Some(src);
        } else if !raw.is_empty() || !converting {
            // With every output linked this only hashes the original (no outputs to write).
            let mut src = found
                .reader()
                .map_err(|e| FileError::io(format!("cannot open {}", found.path.display()), &e))?;
            let (idxs, mut temps): (Vec<u32>, Vec<TempOutput>) = raw.into_iter().unzip();
            let (h, n) = out::tee_copy(&mut src, &mut temps)
                .map_err(|e| FileError::io("cannot copy the file to its outputs", &e))?;
            hash = Some((h, n));
            finished.extend(idxs.into_iter().zip(temps));
        }
        if converting {
            let idxs: Vec<u32> = records.iter().map(|(i, _, _)| *i).collect();
            let outs = records.into_iter().map(|(_, t, d)| (t, d)).collect();
            let mut meta = meta_map(job, found, vars.taken);
            if let Some(m) = vars.mail {
                meta.insert("mail_from".into(), m.from.clone());
                meta.insert("mail_subject".into(), m.subject.clone());
                meta.insert("mail_date".into(), m.date.clone());
                meta.insert("mail_message_id".into(), m.message_id.clone());
            }
            let mut rejects = pipeline::Rejects {
                path: rejects_target
                    .as_ref()
                    .map_or(Path::new(""), |t| t.temp.as_path()),
                file: None,
            };
            let mut split_targets: Vec<Target> = Vec::new();
            let mut used: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
            let mut open = |oi: u32, rec: &crate::formats::Record| {
                let o = &job.outputs[oi as usize];
                let dir = &resolved
                    .split_dirs
                    .iter()
                    .find(|(i, _)| *i == oi)
                    .expect("a split output has a folder")
                    .1;
                let v = Vars {
                    record: Some(rec),
                    mail: vars.mail,
                    ..vars.clone()
                };
                let name = o.name.render(&v);
                let base = fsutil::safe_join(dir, &name, true).map_err(|e| {
                    crate::formats::ParseError {
                        pos: Some(rec.pos),
                        ..crate::formats::ParseError::new(format!("output {}: {e}", oi + 1))
                    }
                })?;
                let taken = |p: &Path| {
                    used.contains(p)
                        || (fsutil::exists(p)
                            && o.exists != Exists::Overwrite
                            && o.exists != Exists::Skip)
                };
                let final_path = match o.exists {
                    Exists::Unique => (0..)
                        .map(|n| fsutil::numbered(&base, n))
                        .find(|p| !taken(p))
                        .expect("a free name"),
                    _ if taken(&base) => {
                        return Err(crate::formats::ParseError {
                            pos: Some(rec.pos),
                            value: Some(base.display().to_string()),
                            ..crate::formats::ParseError::new(format!(
                                "output {} exists already, or two groups of records have this name (exists = \"{}\")",
                                oi + 1,
                                o.exists.as_str()
                            ))
                        });
                    }
                    _ => base,
                };
                used.insert(final_path.clone());
                let idx = job.outputs.len() as u32 + 1 + split_targets.len() as u32;
                let temp = out::temp_path(&final_path, id, idx);
                split_targets.push(Target {
                    idx,
                    final_path: final_path.clone(),
                    temp: temp.clone(),
                    exists: o.exists,
                    member: None,
                });
                Ok((final_path, temp))
            };
            let split = job.transform.split.as_deref().map(|field| pipeline::Split {
                field,
                outputs: job
                    .outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| is_split(job, o))
                    .map(|(i, o)| (i as u32, &o.data))
                    .collect(),
                open: &mut open,
            });
            let src = found
                .reader()
                .map_err(|e| FileError::io(format!("cannot open {}", found.path.display()), &e))?;
            let result = pipeline::run(job, src, outs, meta, &mut rejects, split);
            split_made = split_targets;
            if let Some(r) = rejects.file {
                finished.push((u32::MAX, r));
            }
            let pipeline::Converted {
                temps,
                hash: h,
                stats,
                split,
            } = result.map_err(|e| FileError {
                chain: vec![format!("cannot convert the file: {e}")],
            })?;
            tracing::info!(
                read = stats.read,
                written = stats.written,
                filtered = stats.filtered,
                rejected = stats.rejected,
                "Records converted."
            );
            rejected = stats.rejected;
            hash = hash.or(Some(h));
            finished.extend(idxs.into_iter().zip(temps));
            for (_, _, t) in split {
                let idx = split_made
                    .iter()
                    .find(|s| s.temp == t.temp)
                    .map_or(u32::MAX - 1, |s| s.idx);
                finished.push((idx, t));
            }
        }
        if !resolved.extract_dirs.is_empty() {
            let chain = |e: String| FileError {
                chain: vec!["cannot take the pieces out of the PDF".into(), e],
            };
            let opened = |f: &Found| {
                f.reader()
                    .map_err(|e| chain(format!("cannot open {}: {e}", f.path.display())))
            };
            let mut members = Vec::new();
            for c in companions {
                members.push((c.found.path.clone(), opened(&c.found)?));
            }
            let pieces =
                extract::pieces_from(job, &found.path, opened(found)?, members).map_err(chain)?;
            let made =
                extract::write(job, vars, id, &resolved.extract_dirs, pieces).map_err(chain)?;
            for m in made {
                extract_made.push(Target {
                    idx: m.idx,
                    final_path: m.final_path,
                    temp: m.temp,
                    exists: m.exists,
                    member: None,
                });
                finished.push((m.idx, m.file));
            }
        }
        let (hash, n) = hash.expect("the file was read");
        if n != found.meta.size {
            return Err(FileError::new(format!(
                "read {n} bytes but the file had {} when it settled",
                found.meta.size
            )));
        }
        let mut sums = Vec::new();
        let mut rejects_sum = None;
        if let Some(first) = linked.first() {
            // One fsync of the inode makes every link's content durable (each link's name
            // is made durable by the rename and folder fsync of the commit, as a copy's).
            let t = targets
                .iter()
                .find(|t| t.idx == *first)
                .expect("a linked output is a target");
            std::fs::File::open(&t.temp)
                .and_then(|f| f.sync_all())
                .map_err(|e| FileError::io(format!("cannot fsync output {}", first + 1), &e))?;
        }
        finished.sort_by_key(|(i, _)| *i);
        let mut finished: Vec<(u32, Option<TempOutput>)> = finished
            .into_iter()
            .map(|(i, t)| (i, Some(t)))
            .chain(linked.iter().map(|i| (*i, None)))
            .collect();
        finished.sort_by_key(|(i, _)| *i);
        for (i, tmp) in finished {
            let Some(tmp) = tmp else {
                sums.push((hash.clone(), n));
                continue;
            };
            let what = if i == u32::MAX {
                "the rejects file".to_string()
            } else {
                format!("output {}", i + 1)
            };
            let sum = tmp
                .finish()
                .map_err(|e| FileError::io(format!("cannot fsync {what}"), &e))?;
            if i == u32::MAX {
                rejects_sum = Some(sum);
            } else {
                sums.push(sum);
            }
        }
        if let Some(sum) = rejects_sum {
            sums.push(sum);
        }
        Ok((hash, sums))
    })();
    targets.extend(split_made);
    targets.extend(extract_made);
    if rejected > 0
        && let Some(t) = rejects_target
    {
        targets.push(t);
    } else if let Some(t) = &rejects_target {
        let _ = std::fs::remove_file(&t.temp);
    }
    let (hash, sums) = match written {
        Ok(w) => w,
        Err(e) => {
            cleanup(&targets);
            // A file still being written (a writer that paused longer than `settle`) is
            // not a bad file: let it settle again.
            if found.now().is_ok_and(|now| now != found.meta) {
                tracing::info!("File changed while being taken; waiting for it to settle again.");
                let _ = journal.released(
                    id,
                    "the file changed while being taken; it settles again".into(),
                );
                return Ok(Outcome::Released);
            }
            return Err((None, e));
        }
    };

    // A writer that paused longer than `settle` and wrote on while the file was read:
    // the outputs miss what it added. Checked on the open handle before anything is
    // planned; the file is given back and taken again once it settles.
    if let Some(changed) = grew(found) {
        cleanup(&targets);
        tracing::warn!(now = %changed, "File changed while being taken (its writer went on after a pause longer than `settle`); its outputs are dropped and it is taken again once it settles.");
        let _ = journal.released(
            id,
            format!("the file changed while being taken ({changed}); it settles again"),
        );
        return Ok(Outcome::Released);
    }

    // Where the original goes.
    let trigger = job
        .source
        .done_files(&found.name)
        .into_iter()
        .map(|n| found.path.with_file_name(n))
        .find(|p| p.exists());
    let dest = match &resolved.archive_dir {
        Some(dir) => {
            let base = fsutil::safe_join(dir, &found.name, false)
                .map_err(|e| (Some(hash.clone()), FileError::new(e)))?;
            Some(
                (0..)
                    .map(|n| fsutil::numbered(&base, n))
                    .find(|p| !fsutil::exists(p))
                    .expect("an unbounded search finds a free name"),
            )
        }
        None => None,
    };
    let plan = Plan {
        hash: hash.clone(),
        outputs: targets
            .iter()
            .zip(&sums)
            .map(|(t, (h, size))| PlannedOutput {
                idx: t.idx,
                temp: t.temp.to_string_lossy().into_owned(),
                final_path: t.final_path.to_string_lossy().into_owned(),
                hash: h.clone(),
                size: *size,
                policy: t.exists.as_str().to_string(),
            })
            .collect(),
        disposition: job.after.success.as_str().to_string(),
        dest: dest.as_ref().map(|d| d.to_string_lossy().into_owned()),
        trigger: trigger.as_ref().map(|t| t.to_string_lossy().into_owned()),
    };
    // A set's members: each with its own plan (no outputs, the same disposition), made
    // durable in one transaction with the lead's.
    let mut member_plans = Vec::new();
    for c in companions {
        let h = c
            .found
            .reader()
            .and_then(|mut f| out::tee_copy(&mut f, &mut []))
            .map_err(|e| {
                (
                    Some(hash.clone()),
                    FileError::io(format!("cannot read {}", c.found.name), &e),
                )
            });
        let (h, _) = match h {
            Ok(h) => h,
            Err(e) => {
                cleanup(&targets);
                return Err(e);
            }
        };
        let cdest = match &resolved.archive_dir {
            Some(dir) => {
                let base = fsutil::safe_join(dir, &c.found.name, false)
                    .map_err(|e| (Some(hash.clone()), FileError::new(e)))?;
                Some(
                    (0..)
                        .map(|n| fsutil::numbered(&base, n))
                        .find(|p| !fsutil::exists(p) && Some(p) != dest.as_ref())
                        .expect("an unbounded search finds a free name"),
                )
            }
            None => None,
        };
        member_plans.push((
            c,
            Plan {
                hash: h,
                outputs: Vec::new(),
                disposition: plan.disposition.clone(),
                dest: cdest.map(|d| d.to_string_lossy().into_owned()),
                trigger: None,
            },
        ));
    }
    let planned = if member_plans.is_empty() {
        journal.plan(id, plan.clone())
    } else {
        let mut all = vec![(id, plan.clone())];
        all.extend(member_plans.iter().map(|(c, p)| (c.id, p.clone())));
        journal.plan_set(all)
    };
    if let Err(e) = planned {
        cleanup(&targets);
        tracing::error!(error = %e, "Cannot make the plan durable; leaving the file in place.");
        return Ok(Outcome::Released);
    }

    // Commit: from here on the outputs become visible.
    let mut committed: Vec<PathBuf> = Vec::new();
    for (t, o) in targets.iter().zip(&plan.outputs) {
        match commit_output(o, journal, id) {
            Ok(Some(p)) => committed.push(p),
            Ok(None) => {}
            Err(e) => {
                // Only a name taken between our check and the rename gets here (or the
                // folder vanished): undo this file's outputs so a retry cannot duplicate.
                // The plan is withdrawn first, so recovery never finishes it (set members
                // first: a lead still planned finishes its set at recovery).
                for (c, _) in &member_plans {
                    let _ =
                        journal.unplan(c.id, format!("the set's lead could not be committed: {e}"));
                }
                if let Err(je) = journal.unplan(
                    id,
                    format!("output {} could not be committed: {e}", t.idx + 1),
                ) {
                    tracing::error!(error = %je, "Cannot withdraw the plan; leaving the delivered outputs and the original as they are for recovery.");
                    return Ok(Outcome::Stuck);
                }
                for p in &committed {
                    let _ = std::fs::remove_file(p);
                }
                cleanup(&targets);
                return Err((
                    Some(hash),
                    FileError::io(
                        format!(
                            "cannot commit output {} as {}",
                            t.idx + 1,
                            t.final_path.display()
                        ),
                        &e,
                    ),
                ));
            }
        }
    }
    let mut dirs: Vec<&Path> = committed.iter().filter_map(|p| p.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        if let Err(e) = fsutil::sync_dir(d) {
            tracing::error!(folder = %d.display(), error = %e, "Cannot fsync an output folder.");
        }
    }
    for p in &committed {
        tracing::info!(output = %p.display(), "Output delivered.");
    }

    // The original.
    let archive_base =
        (job.after.success == Success::Archive).then(|| template_base(&job.after.archive));
    let disposed = super::original::dispose(found, &plan, archive_base.as_deref());
    if let Some(file) = deferred {
        super::late_hash::submit(
            journal,
            super::late_hash::Pending {
                id,
                file,
                size: found.meta.size,
            },
        );
    }
    match disposed {
        Ok(detail) => {
            tracing::info!(original = %detail, "File done.");
            let _ = journal.done(
                id,
                format!("{} output(s); original {detail}", committed.len()),
            );
            let kept = (job.after.success == Success::Keep).then_some(found.meta);
            for (c, p) in &member_plans {
                match super::original::dispose(&c.found, p, archive_base.as_deref()) {
                    Ok(detail) => {
                        tracing::info!(member = %c.found.name, original = %detail, "Set member done.");
                        let _ = journal.done(
                            c.id,
                            format!("member of the set of {}; {detail}", found.name),
                        );
                    }
                    Err(e) => {
                        tracing::error!(member = %c.found.name, error = %e, "A set member could not be disposed of; ferry retries at its next start.");
                        let _ = journal.event(
                            c.id,
                            "stuck",
                            format!("cannot {} the original: {e}", p.disposition),
                        );
                        return Ok(Outcome::Stuck);
                    }
                }
            }
            Ok(Outcome::Done { kept })
        }
        Err(e) => {
            tracing::error!(error = %e, "Outputs are delivered but the original could not be disposed of; ferry retries at its next start. Check the archive folder.");
            let _ = journal.event(
                id,
                "stuck",
                format!("cannot {} the original: {e}", plan.disposition),
            );
            Ok(Outcome::Stuck)
        }
    }
}

/// Originals from this size on whose outputs are all hard links to them (FTP and email
/// outputs, or the sole folder output of a deleted original) are planned before they are
/// hashed: their sha256 is computed after the plan, from a handle opened before it, while
/// the deliverers already send the file ([`super::late_hash`]), and recorded in the journal
/// when done (`Journal::hashed`). Nothing in delivery or recovery needs the hash before then; a
/// crash in between leaves the file's history without one.
pub const DEFER_HASH_FROM: u64 = 16 << 20;

/// Whether the original belongs to ferry's own user: an output linked to it then has the
/// owner and permissions a copy would have had (more or less: the producer's mode).
fn owned_by_us(found: &Found) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid(2) cannot fail and has no side effects.
        let me = unsafe { libc::geteuid() };
        found
            .opened
            .as_ref()
            .is_some_and(|f| f.metadata().is_ok_and(|md| md.uid() == me))
    }
    #[cfg(not(unix))]
    {
        let _ = found;
        false
    }
}

/// Makes `temp` a hard link to the original (its name in its folder's handle, never
/// following a symlink), and checks that the link is the inode that was opened; `false`
/// (then the output is copied from the handle) when the two are on different file
/// systems, the link is refused, or the name now holds another file.
fn link_output(found: &Found, temp: &Path) -> bool {
    let (Some(dir), Some(opened)) = (&found.dir, &found.opened) else {
        return false;
    };
    if let Some(d) = temp.parent()
        && fsutil::create_dir_all_durable(d).is_err()
    {
        return false;
    }
    // A temporary left by an earlier attempt (recovery removes them; be sure).
    let _ = std::fs::remove_file(temp);
    if let Err(e) = dir.link_to(&found.name, temp) {
        tracing::debug!(error = %e, "Cannot link the output to the original; copying it.");
        return false;
    }
    let same = crate::sources::dir::stat_of_file(opened).ok().map(|s| s.id)
        == std::fs::symlink_metadata(temp)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| crate::sources::dir::FileId::of(&m));
    if !same {
        tracing::warn!(
            "The original's name holds another file now; copying from the open file instead of linking."
        );
        let _ = std::fs::remove_file(temp);
    }
    same
}

/// How the original differs now (from its open handle) from when it was listed, if it
/// does.
fn grew(found: &Found) -> Option<String> {
    let now = found.now().ok()?;
    (now != found.meta).then(|| {
        format!(
            "{} bytes, was {} when it settled",
            now.size, found.meta.size
        )
    })
}

fn parent_join(p: &Path, name: &str) -> String {
    p.with_file_name(name).display().to_string()
}

fn parent(p: &Path) -> String {
    p.parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// Renames one planned output into place, following its `exists` policy when the name was
/// taken between planning and now. `Ok(None)`: skipped (`exists = "skip"`).
pub(super) fn commit_output(
    o: &PlannedOutput,
    journal: &Journal,
    id: i64,
) -> io::Result<Option<PathBuf>> {
    let temp = Path::new(&o.temp);
    let base = PathBuf::from(&o.final_path);
    if o.policy == "overwrite" {
        std::fs::rename(temp, &base)?;
        return Ok(Some(base));
    }
    let mut final_path = base.clone();
    for n in 1.. {
        match fsutil::rename_noreplace(temp, &final_path) {
            Ok(()) => return Ok(Some(final_path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && o.policy == "unique" => {
                final_path = fsutil::numbered(&base, n);
                journal
                    .output_moved(id, o.idx, &final_path.to_string_lossy())
                    .map_err(io::Error::other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && o.policy == "skip" => {
                std::fs::remove_file(temp)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop above returns")
}

/// Archives, deletes or keeps the original as planned; returns what happened, for history.
pub(super) fn dispose(src: &Path, plan: &Plan) -> io::Result<String> {
    let detail = match plan.disposition.as_str() {
        "archive" => {
            let dest = PathBuf::from(plan.dest.as_deref().unwrap_or_default());
            let went = out::move_unique(src, &dest)?;
            format!("archived to {}", went.display())
        }
        "delete" => {
            std::fs::remove_file(src)?;
            out::sync_parent(src)?;
            "deleted".to_string()
        }
        _ => "kept in the source".to_string(),
    };
    if let Some(t) = &plan.trigger
        && plan.disposition != "keep"
    {
        match std::fs::remove_file(t) {
            Ok(()) => out::sync_parent(Path::new(t))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(detail)
}

/// Sends the file to the error folder with a report beside it. A later failure of a file
/// with the same name never overwrites an earlier one: both the file and its report take the
/// first free numbered name.
#[allow(clippy::too_many_arguments)]
fn fail(
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
    let dest = render_dir(&job.after.error, vars)
        .and_then(|dir| {
            // A name that cannot be used as it is still goes, made portable, with a report.
            fsutil::safe_join(&dir, &found.name, false)
                .or_else(|_| {
                    fsutil::safe_join(&dir, &fsutil::portable_component(&found.name), true)
                })
                .map_err(FileError::new)
        })
        .map(|base| free_error_name(&base));
    let dest = match dest {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Cannot name the file in the error folder; leaving it in place.");
            let _ = journal.failed(id, format!("{err}; and it could not be moved: {e}"));
            return Outcome::Failed {
                kept: Some(found.meta),
            };
        }
    };
    let keep = job.after.success == Success::Keep;
    if let Err(e) = journal.failing(id, &err.to_string(), &dest.to_string_lossy(), keep) {
        tracing::error!(error = %e, "Cannot record the failure in the journal; leaving the file in place.");
        return Outcome::Failed {
            kept: Some(found.meta),
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
            }
        }
        Ok(went) => {
            tracing::warn!(moved_to = %went.display(), "File moved to the error folder.");
            let _ = journal.failed(id, format!("moved to {}: {err}", went.display()));
            Outcome::Failed { kept: None }
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot move the failed file to the error folder; it stays in the source and is not retried until it changes or ferry restarts.");
            let _ = journal.failed(
                id,
                format!("{err}; and it could not be moved to the error folder: {e}"),
            );
            Outcome::Failed {
                kept: Some(found.meta),
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
