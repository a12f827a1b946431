//! A combined run (`combine = true`, docs/schedules.md "Combined runs"): the records of
//! every original of a scheduled run go into one output per `[[output]]`, and every
//! original is disposed of only after those outputs are committed.
//!
//! The per-file steps, for a batch ([`deliver_batch`]):
//!
//! 1. claim every original (waited for); each claim lists the run's temporary names, which
//!    the first claim's id and `{seq}` give, so recovery removes them whichever original
//!    it looks at first;
//! 2. write the temporaries: each original in path order through the job's transform into
//!    one writer per output ([`Combined`]); an original that fails is left out: the pass
//!    goes on only checking, its temporaries are removed, the failed originals go to the
//!    error folder, and the run is written again without them;
//! 3. make the plans durable **in one transaction** (`plan_set`): the first original's plan
//!    carries the combined outputs, every other original's plan has none. Recovery then
//!    finishes all of them from their plans, or, before it, none;
//! 4. rename the outputs into place; 5. dispose of every original; 6. done.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::Local;

use crate::fsutil;
use crate::job::template::Vars;
use crate::job::{Exists, Job, Success};
use crate::journal::{Identity, Journal, Plan, PlannedOutput};
use crate::outputs::folder::{self as out, TempOutput};
use crate::sources::folder::Found;

use super::deliver::{
    Target, dispose_of_original, done, free_name, rename_into_place, resolve, template_base,
};
use super::pipeline::{Combined, Rejects};
use super::process::{FileError, Outcome, meta_map};
use super::retry::Decision;
use super::retry::batch::Original;

/// One original of the run, claimed.
struct Member {
    /// As the runner listed it (its outcome is reported under this).
    listed: Found,
    /// Opened and checked.
    found: Found,
    id: i64,
    seq: u64,
    attempts: u32,
}

/// Delivers the run's `files` (each with when it was first seen) as one combined batch;
/// returns every file's outcome. `taken` is the run's slot: the outputs' `{date}`.
pub fn deliver_batch(
    job: &Job,
    files: Vec<(Found, i64)>,
    taken: chrono::DateTime<Local>,
    journal: &Journal,
) -> Vec<(Found, Outcome)> {
    let span = tracing::info_span!("batch", job = %job.name, files = files.len());
    let _enter = span.enter();
    let mut files = files;
    files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut b = Batch {
        job,
        taken,
        journal,
        outcomes: Vec::new(),
    };
    // A retry of a run whose output failed: its queue rows go once it is delivered.
    let queued: HashSet<String> = super::retry::rows(journal, &job.name)
        .into_iter()
        .map(|r| r.path)
        .collect();

    // Step 1: claim every original.
    let Some((members, resolved, lead_id)) = b.claim_all(files) else {
        return b.outcomes;
    };
    let (resolved, rejects) = match resolved {
        Ok(r) => r,
        Err(e) => {
            b.fail_all(members, &e.chain.join(": "));
            return b.outcomes;
        }
    };
    let redo = members.iter().any(|m| m.attempts > 1);
    let good = b.set_aside_crashed(members);

    // Step 2: write the temporaries; leave out every original that fails.
    let Some((good, written)) = b.write_all(good, &resolved.targets, rejects.as_ref(), redo) else {
        return b.outcomes;
    };

    // Step 3: the plans, durable together.
    let temps = (&resolved.targets[..], rejects.as_ref());
    let archive_dir = resolved.archive_dir.as_deref();
    let Some((good, plans)) = b.plan_all(good, lead_id, &written, temps, archive_dir) else {
        return b.outcomes;
    };

    // Step 4: rename the combined outputs into place.
    let lead_plan = &plans[0];
    #[cfg(debug_assertions)]
    test_hook_before_rename(lead_plan);
    let renamed = match rename_into_place(journal, lead_id, &lead_plan.outputs) {
        Ok(r) => r.paths.len(),
        Err(e) => {
            b.withdraw(good, lead_plan, e);
            return b.outcomes;
        }
    };
    tracing::info!(
        outputs = renamed,
        originals = good.len(),
        "Run combined: {} record(s) in {renamed} output(s).",
        written.records
    );

    // Steps 5 and 6: dispose of every original.
    b.dispose_all(good, &plans, lead_id, &queued);
    b.outcomes
}

/// What is left of a claimed original's resolution: the outputs' targets, or why not.
type Resolution = Result<(super::deliver::Resolved, Option<Target>), FileError>;

/// One combined run being delivered, and the outcomes of its originals so far.
struct Batch<'a> {
    job: &'a Job,
    taken: chrono::DateTime<Local>,
    journal: &'a Journal,
    outcomes: Vec<(Found, Outcome)>,
}

impl Batch<'_> {
    /// Step 1: opens and claims every original; each claim lists the run's temporary
    /// names, resolved with the first claim's id and `{seq}`. `None`: nothing was claimed.
    fn claim_all(&mut self, files: Vec<(Found, i64)>) -> Option<(Vec<Member>, Resolution, i64)> {
        let (job, taken) = (self.job, self.taken);
        let mut resolved = None;
        let mut temps: Vec<String> = Vec::new();
        let mut members = Vec::new();
        for (listed, first_seen) in files {
            let found = match listed.open_checked() {
                Ok(f) => f,
                Err(e) => {
                    tracing::info!(file = %listed.path.display(), reason = ?e, "File changed since it settled; it waits for the next run.");
                    self.outcomes.push((listed, Outcome::Released));
                    continue;
                }
            };
            let claim = self.journal.claim(
                &job.name,
                &identity(&found),
                &found.name,
                &found.rel_dir,
                first_seen,
                |c| {
                    if resolved.is_none() {
                        let vars = Vars {
                            name: &found.name,
                            dir: &found.rel_dir,
                            job: &job.name,
                            seq: c.seq,
                            taken,
                            record: None,
                            mail: None,
                        };
                        let r = resolve(job, &vars, c.id).map(|r| {
                            let rejects = rejects_target(job, &r.targets, c.id);
                            (r, rejects)
                        });
                        if let Ok((r, rejects)) = &r {
                            temps = r
                                .targets
                                .iter()
                                .chain(rejects)
                                .map(|t| t.temp.to_string_lossy().into_owned())
                                .collect();
                        }
                        resolved = Some((r, c.id));
                    }
                    temps.clone()
                },
            );
            match claim {
                Ok(c) => members.push(Member {
                    listed,
                    found,
                    id: c.id,
                    seq: c.seq,
                    attempts: c.attempts,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot record the file in the journal; leaving it in place.");
                    self.outcomes.push((listed, Outcome::Released));
                }
            }
        }
        let (resolved, lead_id) = resolved?;
        Some((members, resolved, lead_id))
    }

    /// A run taken again after a crash marks each original it reads, so that the one ferry
    /// crashed on is found (`crashed_on`); only it is held to `max_attempts`. The first
    /// attempt reads unmarked: the original ferry crashes on is set aside at attempt
    /// `max + 2` at the latest; a run that keeps crashing elsewhere (not while reading) is
    /// set aside whole after twice that. Returns the others.
    fn set_aside_crashed(&mut self, members: Vec<Member>) -> Vec<Member> {
        let max = self.job.after.max_attempts;
        let mut good = Vec::new();
        for m in members {
            let crashes = crashed_on(self.journal, m.id);
            if m.attempts > max && (crashes >= max || m.attempts > 2 * max + 2) {
                let why = format!(
                    "ferry was interrupted {} times while processing this file (max_attempts = {max}); it is set aside so that it cannot stop the job again",
                    m.attempts - 1,
                );
                self.fail(m, why);
            } else {
                good.push(m);
            }
        }
        good
    }

    /// Step 3: every original's plan, made durable together. `None` when it cannot be:
    /// the temporaries (`temps`: the outputs', the rejects file's) are removed and the
    /// originals failed (no plan can be made) or released (the journal cannot be written).
    fn plan_all(
        &mut self,
        good: Vec<Member>,
        lead_id: i64,
        written: &Written,
        temps: (&[Target], Option<&Target>),
        archive_dir: Option<&Path>,
    ) -> Option<(Vec<Member>, Vec<Plan>)> {
        let plans = match plan(self.job, &good, lead_id, written, archive_dir) {
            Ok(p) => p,
            Err(e) => {
                remove(temps.0, temps.1);
                self.fail_all(good, &e);
                return None;
            }
        };
        let ids = good.iter().map(|m| m.id).zip(plans.iter().cloned());
        if let Err(e) = self.journal.plan_set(ids.collect()) {
            remove(temps.0, temps.1);
            tracing::error!(error = %e, "Cannot make the run's plan durable; its files stay in the source.");
            for m in good {
                self.outcomes.push((m.listed, Outcome::Released));
            }
            return None;
        }
        Some((good, plans))
    }

    /// Step 2: writes the run's temporaries, leaving out every original that fails (the
    /// pass is written again without them). `None`: nothing is left to commit (every
    /// original failed, or the output failed: the run is queued or failed).
    fn write_all(
        &mut self,
        mut good: Vec<Member>,
        targets: &[Target],
        rejects: Option<&Target>,
        redo: bool,
    ) -> Option<(Vec<Member>, Written)> {
        loop {
            if good.is_empty() {
                return None;
            }
            let meta = meta_map(self.job, &good[0].found, self.taken);
            let marks = redo.then_some(self.journal);
            match write_pass(self.job, &good, targets, rejects, meta, marks) {
                Ok(w) => return Some((good, w)),
                Err(Pass::Bad(bad)) => {
                    remove(targets, rejects);
                    let mut keep = Vec::new();
                    for (i, m) in good.into_iter().enumerate() {
                        match bad.iter().find(|(b, _)| *b == i) {
                            Some((_, why)) => self.fail(m, why.clone()),
                            None => keep.push(m),
                        }
                    }
                    good = keep;
                }
                Err(Pass::Output { why, dest }) => {
                    remove(targets, rejects);
                    tracing::error!(error = %why, "Cannot write the run's combined output.");
                    self.not_committed(good, why, dest);
                    return None;
                }
            }
        }
    }

    /// The run's output could not be written or committed: when the reason may pass
    /// (`dest`: the output folder that failed), every original is queued and the run is
    /// retried whole after the job's `[retry]` backoff; past `for`, or when it will not
    /// pass, every original fails with its report.
    fn not_committed(&mut self, members: Vec<Member>, why: String, dest: Option<String>) {
        let Some(dest) = dest else {
            return self.fail_all(members, &why);
        };
        let run: Vec<_> = members
            .iter()
            .map(|m| Original {
                path: &m.found.path,
                meta: m.found.meta,
                id: m.id,
            })
            .collect();
        match super::retry::batch::queue_run(self.job, self.journal, &run, &dest, &why) {
            Decision::Queued { first_failed } => {
                for m in members {
                    let o = Outcome::Queued {
                        dest: dest.clone(),
                        first_failed_ms: first_failed,
                        error: why.clone(),
                        // A combined run's failure is the run's, not one file's.
                        output: None,
                    };
                    self.outcomes.push((m.listed, o));
                }
            }
            Decision::GiveUp(gave_up) if !gave_up.is_empty() => {
                self.fail_all(members, &format!("{gave_up}: {why}"))
            }
            Decision::GiveUp(_) => self.fail_all(members, &why),
        }
    }

    /// After an output of the run could not be renamed into place: withdraws every
    /// original's plan in one transaction (so recovery finishes none of them), removes
    /// what was renamed and the temporaries, and queues the run (a reason that may pass)
    /// or fails its originals. When the plans cannot be withdrawn, everything stays as it
    /// is for recovery (stuck).
    fn withdraw(&mut self, members: Vec<Member>, lead_plan: &Plan, e: super::deliver::NotRenamed) {
        let why = format!(
            "cannot commit the run's output {} as {}: {}",
            e.idx + 1,
            e.final_path,
            e.error
        );
        let ids = members.iter().map(|m| m.id).collect();
        if let Err(je) = self.journal.unplan_set(ids, why.clone()) {
            tracing::error!(error = %je, "Cannot withdraw the run's plan; leaving its outputs and originals as they are for recovery.");
            for m in members {
                self.outcomes.push((m.listed, Outcome::Stuck));
            }
            return;
        }
        for p in &e.renamed {
            let _ = std::fs::remove_file(p);
        }
        for o in &lead_plan.outputs {
            let _ = std::fs::remove_file(&o.temp);
        }
        tracing::warn!(error = %why, "The run's output could not be committed; the run is withdrawn.");
        let dest = crate::outputs::failure::of_io(&e.error)
            .is_transient()
            .then(|| folder_of(Path::new(&e.final_path)));
        self.not_committed(members, why, dest);
    }

    /// Steps 5 and 6: disposes of every original after the run's outputs are in place.
    fn dispose_all(
        &mut self,
        good: Vec<Member>,
        plans: &[Plan],
        lead_id: i64,
        queued: &HashSet<String>,
    ) {
        let job = self.job;
        let archive_base =
            (job.after.success == Success::Archive).then(|| template_base(&job.after.archive));
        for (m, p) in good.into_iter().zip(plans) {
            let outcome = match dispose_of_original(&m.found, p, archive_base.as_deref()) {
                Ok(detail) => {
                    let _ = done(
                        self.journal,
                        m.id,
                        format!(
                            "combined into the run's output (file {lead_id}); original {detail}"
                        ),
                    );
                    if queued.contains(&*m.found.path.to_string_lossy()) {
                        super::retry::forget(self.journal, &job.name, &m.found.path);
                    }
                    Outcome::Done {
                        kept: (job.after.success == Success::Keep).then_some(m.found.meta),
                        // The run's output is one for all its files: counted with none.
                        outputs: Vec::new(),
                    }
                }
                Err(e) => {
                    tracing::error!(file = %m.found.path.display(), error = %e, "The run's outputs are delivered but an original could not be disposed of; ferry retries at its next start.");
                    let _ = self.journal.event(
                        m.id,
                        "stuck",
                        format!("cannot {} the original: {e}", p.disposition),
                    );
                    Outcome::Stuck
                }
            };
            self.outcomes.push((m.listed, outcome));
        }
    }

    fn fail_all(&mut self, members: Vec<Member>, why: &str) {
        for m in members {
            self.fail(m, why.to_string());
        }
    }

    /// Sends one original of the run to the error folder with its report.
    fn fail(&mut self, m: Member, why: String) {
        super::retry::forget(self.journal, &self.job.name, &m.found.path);
        let vars = Vars {
            name: &m.found.name,
            dir: &m.found.rel_dir,
            job: &self.job.name,
            seq: m.seq,
            taken: self.taken,
            record: None,
            mail: None,
        };
        let o = super::process::fail(
            self.job,
            &m.found,
            &vars,
            m.id,
            m.attempts,
            None,
            FileError::new(why),
            self.journal,
        );
        self.outcomes.push((m.listed, o));
    }
}

/// Tests only, compiled into debug builds only: `FERRY_TEST_BEFORE_RENAME` disturbs the
/// run's first output between its plan and its rename, as another writer or a share could
/// in that instant: `take` writes a file at its name (a name taken under `exists = "fail"`),
/// `lose-temp` removes its temporary (a rename that finds nothing, which may pass). The
/// withdrawal of a run (`Batch::withdraw`) is tested with it (tests/combine_retry.rs).
#[cfg(debug_assertions)]
fn test_hook_before_rename(plan: &Plan) {
    let (Ok(what), Some(o)) = (
        std::env::var("FERRY_TEST_BEFORE_RENAME"),
        plan.outputs.first(),
    ) else {
        return;
    };
    match what.as_str() {
        "take" => {
            let _ = std::fs::write(&o.final_path, "taken\n");
        }
        "lose-temp" => {
            let _ = std::fs::remove_file(&o.temp);
        }
        _ => {}
    }
}

/// The folder of an output path: its destination for the retry queue's circuit breaker.
fn folder_of(path: &Path) -> String {
    path.parent()
        .unwrap_or(Path::new(""))
        .to_string_lossy()
        .into_owned()
}

/// What a written pass made: each output's sha256 and size (the rejects file last, when
/// records were rejected), each original's sha256, and the records written.
struct Written {
    sums: Vec<(Target, String, u64)>,
    hashes: Vec<String>,
    records: u64,
}

enum Pass {
    /// Originals (by index) that failed, with why.
    Bad(Vec<(usize, String)>),
    /// An output could not be written: the whole run is queued (`dest`: the output folder,
    /// when the reason may pass) or fails.
    Output { why: String, dest: Option<String> },
}

impl Pass {
    /// An I/O error at the output `t`: it may pass or not, as `outputs::failure` sorts it.
    fn io(why: String, t: &Target, e: &std::io::Error) -> Pass {
        let dest = crate::outputs::failure::of_io(e)
            .is_transient()
            .then(|| folder_of(&t.final_path));
        Pass::Output { why, dest }
    }

    /// A writer's error (a header or trailer that cannot be made): a conversion error,
    /// which does not pass (as for a single file).
    fn will_not_pass(e: impl std::fmt::Display) -> Pass {
        Pass::Output {
            why: e.to_string(),
            dest: None,
        }
    }
}

fn write_pass(
    job: &Job,
    members: &[Member],
    targets: &[Target],
    rejects: Option<&Target>,
    meta: std::collections::BTreeMap<String, String>,
    marks: Option<&Journal>,
) -> Result<Written, Pass> {
    let mut outputs = Vec::new();
    for (t, o) in targets.iter().zip(&job.outputs) {
        let temp = TempOutput::create(&t.temp)
            .map_err(|e| Pass::io(format!("cannot create {}: {e}", t.temp.display()), t, &e))?;
        outputs.push((temp, &o.data));
    }
    let mut combined = Combined::new(outputs, &meta).map_err(Pass::will_not_pass)?;
    let rejects_path = rejects.map_or_else(PathBuf::new, |r| r.temp.clone());
    let mut rej = Rejects {
        path: &rejects_path,
        file: None,
        original: None,
    };
    let mut bad = Vec::new();
    let mut hashes = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let file = match m.found.reader() {
            Ok(f) => f,
            Err(e) => {
                bad.push((i, format!("cannot read the file: {e}")));
                continue;
            }
        };
        rej.original = Some(m.found.path.to_string_lossy().into_owned());
        mark(marks, m.id, READING);
        let fed = combined.feed(job, file, meta_map(job, &m.found, Local::now()), &mut rej);
        mark(marks, m.id, READ);
        match fed {
            Ok((h, _)) => hashes.push(h),
            Err(e) => bad.push((i, e.to_string())),
        }
    }
    if !bad.is_empty() {
        return Err(Pass::Bad(bad));
    }
    let records = combined.stats.written;
    let rejected = combined.stats.rejected;
    let temps = combined.finish().map_err(Pass::will_not_pass)?;
    let mut sums = Vec::new();
    for (temp, t) in temps.into_iter().zip(targets) {
        let (h, size) = temp
            .finish()
            .map_err(|e| Pass::io(format!("cannot write {}: {e}", t.temp.display()), t, &e))?;
        sums.push((clone_target(t), h, size));
    }
    if let (Some(f), Some(t)) = (rej.file.take(), rejects) {
        let (h, size) = f
            .finish()
            .map_err(|e| Pass::io(format!("cannot write the rejects file: {e}"), t, &e))?;
        if rejected > 0 {
            sums.push((clone_target(t), h, size));
        } else {
            let _ = std::fs::remove_file(&t.temp);
        }
    }
    Ok(Written {
        sums,
        hashes,
        records,
    })
}

/// The plans of the run's originals, the first carrying the combined outputs.
fn plan(
    job: &Job,
    members: &[Member],
    _lead_id: i64,
    written: &Written,
    archive_dir: Option<&Path>,
) -> Result<Vec<Plan>, String> {
    let mut used = super::deliver::UsedNames::default();
    let mut outputs = Vec::new();
    for (t, h, size) in &written.sums {
        let Some(final_path) = free_name(&t.final_path, t.exists, &used) else {
            if t.exists == Exists::Skip {
                let _ = std::fs::remove_file(&t.temp);
                continue;
            }
            return Err(format!(
                "the run's output {} exists (exists = \"{}\")",
                t.final_path.display(),
                t.exists.as_str()
            ));
        };
        used.insert(&final_path);
        outputs.push(PlannedOutput {
            idx: t.idx,
            temp: t.temp.to_string_lossy().into_owned(),
            final_path: final_path.to_string_lossy().into_owned(),
            hash: h.clone(),
            size: *size,
            policy: t.exists.as_str().to_string(),
        });
    }
    let mut dests: HashSet<PathBuf> = HashSet::new();
    let mut plans = Vec::new();
    for (i, (m, h)) in members.iter().zip(&written.hashes).enumerate() {
        let dest = match archive_dir {
            Some(dir) => {
                let base = fsutil::safe_join(dir, &m.found.name, false)?;
                let d = (0..)
                    .map(|n| fsutil::numbered(&base, n))
                    .find(|p| !fsutil::exists(p) && !dests.contains(p))
                    .expect("an unbounded search finds a free name");
                dests.insert(d.clone());
                Some(d.to_string_lossy().into_owned())
            }
            None => None,
        };
        plans.push(Plan {
            hash: h.clone(),
            outputs: if i == 0 {
                std::mem::take(&mut outputs)
            } else {
                Vec::new()
            },
            disposition: job.after.success.as_str().to_string(),
            dest,
            trigger: job
                .source
                .done_files(&m.found.name)
                .into_iter()
                .map(|n| m.found.path.with_file_name(n))
                .find(|p| p.exists())
                .map(|p| p.to_string_lossy().into_owned()),
        });
    }
    Ok(plans)
}

/// The rejects file of a run, beside its first output: `<name>.rejects.jsonl`.
fn rejects_target(job: &Job, targets: &[Target], id: i64) -> Option<Target> {
    let on_skip = job
        .input
        .as_ref()
        .is_some_and(|i| i.on_error == crate::job::data::OnError::Skip);
    let first = targets.first().filter(|_| on_skip)?;
    let name = first.final_path.file_name()?.to_string_lossy().into_owned();
    let final_path = first
        .final_path
        .with_file_name(fsutil::fit_component(&format!("{name}.rejects.jsonl")));
    let idx = job.outputs.len() as u32;
    Some(Target {
        idx,
        temp: out::temp_path(&final_path, id, idx),
        final_path,
        exists: Exists::Unique,
        member: None,
    })
}

fn clone_target(t: &Target) -> Target {
    Target {
        idx: t.idx,
        final_path: t.final_path.clone(),
        temp: t.temp.clone(),
        exists: t.exists,
        member: t.member.clone(),
    }
}

fn remove(targets: &[Target], rejects: Option<&Target>) {
    for t in targets.iter().chain(rejects) {
        let _ = std::fs::remove_file(&t.temp);
    }
}

/// The events that mark an original being read in a run taken again after a crash.
const READING: &str = "reading";
const READ: &str = "read";

/// Records, durably, that an original is about to be read (or was read).
fn mark(journal: Option<&Journal>, id: i64, what: &str) {
    if let Some(j) = journal {
        let _ = j.event(
            id,
            what,
            "in a combined run taken again after a crash".into(),
        );
        let _ = j.flush();
    }
}

/// How many times ferry stopped while reading this original in a combined run: `reading`
/// marks without their `read`.
fn crashed_on(journal: &Journal, id: i64) -> u32 {
    journal
        .read(|c| {
            c.query_row(
                "SELECT COUNT(*) FILTER (WHERE state = 'reading') - COUNT(*) FILTER (WHERE state = 'read') FROM events WHERE file_id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
        })
        .map_or(0, |n| n.max(0) as u32)
}

fn identity(found: &Found) -> Identity {
    Identity {
        path: found.path.to_string_lossy().into_owned(),
        size: found.meta.size,
        mtime_ns: found.meta.mtime_ns,
    }
}

/// Starts a combined run's delivery on a blocking thread; each file's outcome goes to
/// `done` as a single file's would.
pub(super) fn dispatch(
    set: &mut tokio::task::JoinSet<()>,
    job: &std::sync::Arc<Job>,
    journal: &std::sync::Arc<Journal>,
    files: Vec<(Found, i64)>,
    slot_ms: Option<i64>,
    permit: tokio::sync::OwnedSemaphorePermit,
    done: tokio::sync::mpsc::UnboundedSender<(Found, Outcome)>,
) {
    let (job, journal) = (job.clone(), journal.clone());
    set.spawn_blocking(move || {
        use chrono::TimeZone;
        let taken = slot_ms
            .and_then(|ms| Local.timestamp_millis_opt(ms).single())
            .unwrap_or_else(Local::now);
        let outcomes = deliver_batch(&job, files, taken, &journal);
        drop(permit);
        for o in outcomes {
            let _ = done.send(o);
        }
    });
}
