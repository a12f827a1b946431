//! Review before release (issue 15; docs/review.md): a job with `[review]` is processed
//! like any other up to its outputs, but into the **pending area** of the state folder
//! (`<state>/pending/<job>/<seq>/`) instead of its destinations, and its original is held
//! there too (`.../original/`). An admin's decision (`ferry approve`, `ferry reject`,
//! written into the journal by the command) is then carried out here: the outputs are
//! moved to their destinations and the original to its archive, or the original goes to the
//! error folder with the reason.
//!
//! Theory of operation:
//! - **Holding is an ordinary delivery.** [`staged_job`] is the job with every output's
//!   folder in the pending area and `success = "archive"` into it; the engine's steps
//!   (claim, temporaries, plan, rename, dispose) and its recovery make holding exactly
//!   once. Before the plan, [`hold`] records in the journal (table `reviews`, durably) where
//!   each output and the original go once approved, rendered with the file's own
//!   placeholders. A file is pending when its row exists and its journal record is `done`.
//! - **A decision is durable before anything moves.** The command writes it (who, when,
//!   why) in one transaction with its event in the file's history; [`tick`] (the daemon
//!   every 2 s, every start, or the command itself when no ferry runs) finishes every
//!   decided row that is not finished.
//! - **Releasing is idempotent.** Each held file goes to a hidden temporary name in its
//!   destination folder (`.ferry-out-review-<id>-<n>.tmp`: a rename, or a durable copy
//!   across file systems before the held file is removed), then to its final name under
//!   its `exists` policy. A crash anywhere leaves the held file, the temporary, or the final
//!   name, never two of them for the same bytes (the held file and the temporary exist
//!   together only after a complete copy, and then the held file is removed), so running
//!   the release again neither loses nor duplicates an output.

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::fsutil;
use crate::job::template::{PLACEHOLDERS, Template, Vars};
use crate::job::{Exists, Job, Success};
use crate::journal::Journal;
use crate::outputs::folder as out;
use crate::sources::folder::Found;

use super::deliver::{render_dir, resolve};
use super::process::{Report, free_error_name, quarantine};

/// The pending area's folder in the state folder.
pub const PENDING: &str = "pending";
/// The held original's folder in a file's pending folder.
pub const ORIGINAL: &str = "original";

/// Where the files of `job` wait: `<state>/pending/<job>`.
pub fn job_dir(state_dir: &Path, job: &str) -> PathBuf {
    crate::job::absolute(state_dir).join(PENDING).join(job)
}

/// The job a reviewed file is processed with: the same job, but every output written into
/// the file's pending folder (`<state>/pending/<job>/<seq>/<output number>`, as a plain
/// folder output: nothing is uploaded or mailed yet), and the original archived into
/// `.../original`. `Err`: the state folder's path cannot be a folder template.
pub fn staged_job(job: &Job, state_dir: &Path) -> Result<Job, String> {
    let base = job_dir(state_dir, &job.name).join("{seq}");
    let folder = |sub: &str| {
        let p = base.join(sub);
        Template::parse(&p.to_string_lossy(), PLACEHOLDERS).map_err(|_| {
            format!(
                "the pending folder {} cannot be used: its path has `{{` or `}}`; give ferry a state folder without them",
                p.display()
            )
        })
    };
    let mut staged = job.clone();
    for (i, o) in staged.outputs.iter_mut().enumerate() {
        o.folder = folder(&(i + 1).to_string())?;
        o.deliver = None;
        o.email = None;
        // The pending folder is the file's own: nothing is there to collide with.
        o.exists = Exists::Fail;
    }
    // A kept original stays in the source (the producer owns it; [`hold`] holds a copy).
    if job.after.success != Success::Keep {
        staged.after.success = Success::Archive;
        staged.after.archive = folder(ORIGINAL)?;
    }
    Ok(staged)
}

/// One output's destination once approved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dest {
    /// The output's number in the job file (from 1), the name of its pending folder.
    pub n: u32,
    /// The folder it goes to (an output folder, or an FTP or email output's outbox).
    pub dir: String,
    pub exists: String,
}

/// Records, durably and before the file's plan, where the outputs and the original of
/// file `id` (taken by the reviewed `job`, named by `vars`) go once approved. `Err`: its
/// names do not resolve or the journal refused; the file fails.
pub fn hold(
    job: &Job,
    found: &Found,
    vars: &Vars<'_>,
    id: i64,
    journal: &Journal,
) -> Result<(), String> {
    let review = job.review.as_ref().ok_or("the job has no [review]")?;
    let r = resolve(job, vars, id).map_err(|e| e.to_string())?;
    let mut dests: Vec<Dest> = r
        .targets
        .iter()
        .map(|t| Dest {
            n: t.idx + 1,
            dir: parent_of(&t.final_path),
            exists: t.exists.as_str().into(),
        })
        .collect();
    for (idx, dir) in r.split_dirs.iter().chain(&r.extract_dirs) {
        dests.push(Dest {
            n: idx + 1,
            dir: dir.to_string_lossy().into_owned(),
            exists: job.outputs[*idx as usize].exists.as_str().into(),
        });
    }
    let error_dir = render_dir(&job.after.error, vars).map_err(|e| e.to_string())?;
    let held = job_dir(journal.state_dir(), &job.name).join(vars.seq.to_string());
    if job.after.success == Success::Keep {
        copy_original(found, &held.join(ORIGINAL).join(vars.name)).map_err(|e| {
            format!(
                "cannot hold a copy of the original in {}: {e}",
                held.display()
            )
        })?;
    }
    let source = &found.path;
    tracing::info!(held_in = %held.display(), "Reviewed job: the outputs wait in the pending area for a decision (`ferry pending`).");
    let _ = journal.event(
        id,
        "review",
        format!(
            "held for review in {}: nothing is delivered before `ferry approve {id}`",
            held.display()
        ),
    );
    journal
        .exec(
            "INSERT OR REPLACE INTO reviews (id, job, job_file, name, path, held, dests, disposition, archive, error_dir, key, expires_ms, held_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            vec![
                Value::Integer(id),
                Value::Text(job.name.clone()),
                Value::Text(job.file.to_string_lossy().into_owned()),
                Value::Text(vars.name.to_string()),
                Value::Text(source.to_string_lossy().into_owned()),
                Value::Text(held.to_string_lossy().into_owned()),
                Value::Text(serde_json::to_string(&dests).unwrap_or_default()),
                Value::Text(job.after.success.as_str().into()),
                r.archive_dir
                    .map_or(Value::Null, |d| Value::Text(d.to_string_lossy().into_owned())),
                Value::Text(error_dir.to_string_lossy().into_owned()),
                review.key.clone().map_or(Value::Null, Value::Text),
                Value::Integer(review.expires.as_millis() as i64),
                Value::Integer(now_ms()),
            ],
            true,
        )
        .map_err(|e| format!("cannot record the file as pending in the journal: {e}"))
}

/// A durable copy of the original (read through its checked handle) at `to`, replacing
/// what an interrupted earlier attempt left there.
fn copy_original(found: &Found, to: &Path) -> io::Result<()> {
    let dir = to.parent().expect("a folder");
    fsutil::create_dir_all_durable(dir)?;
    let tmp = dir.join(fsutil::temp_name());
    let result = (|| {
        let mut src = found.reader()?;
        let mut w = out::TempOutput::create(&tmp)?;
        io::copy(&mut src, &mut w)?;
        w.finish()?;
        std::fs::rename(&tmp, to)?;
        fsutil::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parent_of(p: &Path) -> String {
    p.parent()
        .unwrap_or(Path::new("/"))
        .to_string_lossy()
        .into_owned()
}

/// The time decisions and ages are measured in: the test clock when `FERRY_TEST_CLOCK` is
/// set (tests move it to make a file overdue), else the system's.
pub fn now_ms() -> i64 {
    crate::schedule::clock::Clock::from_env()
        .now()
        .as_millisecond()
}

/// A decided row whose decision is not carried out yet.
struct Decided {
    id: i64,
    job: String,
    job_file: String,
    name: String,
    path: String,
    held: PathBuf,
    dests: Vec<Dest>,
    disposition: String,
    archive: Option<String>,
    error_dir: String,
    key: Option<String>,
    decision: String,
    by: String,
    at: i64,
    why: Option<String>,
    /// The last error of an earlier try, logged once.
    outcome: Option<String>,
}

/// Carries out every decision not carried out yet, and reports what waits too long.
/// `jobs`: the jobs running now (their `[alert]`). Returns how many decisions were
/// finished.
pub fn tick<'a>(journal: &Journal, jobs: impl Iterator<Item = &'a Job> + Clone) -> usize {
    let decided = match decided(journal) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the review decisions from the journal.");
            return 0;
        }
    };
    let mut n = 0;
    for d in decided {
        let span = tracing::info_span!("review", job = %d.job, file = %d.name, id = d.id);
        let _e = span.enter();
        let result = match d.decision.as_str() {
            "approved" => approve(journal, &d),
            _ => reject(&d),
        };
        match result {
            Ok(detail) => {
                if finish(journal, &d, &detail).is_ok() {
                    n += 1;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if d.outcome.as_deref() != Some(&msg) {
                    tracing::error!(error = %msg, decision = %d.decision, "Cannot carry out the decision on a reviewed file; ferry tries again every few seconds.");
                    let _ = journal.event(d.id, "stuck", format!("{}: {msg}", d.decision));
                    let _ = journal.exec(
                        "UPDATE reviews SET outcome = ?2 WHERE id = ?1",
                        vec![Value::Integer(d.id), Value::Text(msg)],
                        false,
                    );
                }
            }
        }
    }
    overdue(journal, jobs);
    n
}

fn decided(journal: &Journal) -> crate::journal::Result<Vec<Decided>> {
    journal.read(|c| {
        let Some(()) = has_table(c)? else {
            return Ok(Vec::new());
        };
        let mut st = c.prepare(
            "SELECT r.id, r.job, r.job_file, r.name, r.path, r.held, r.dests, r.disposition, r.archive, r.error_dir, r.key, r.decision, r.decided_by, r.decided_at, r.why, r.outcome
             FROM reviews r JOIN files f ON f.id = r.id
             WHERE r.decision IS NOT NULL AND r.finished_at IS NULL AND f.state = 'done' ORDER BY r.decided_at, r.id",
        )?;
        st.query_map([], |r| {
            Ok(Decided {
                id: r.get(0)?,
                job: r.get(1)?,
                job_file: r.get(2)?,
                name: r.get(3)?,
                path: r.get(4)?,
                held: PathBuf::from(r.get::<_, String>(5)?),
                dests: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                disposition: r.get(7)?,
                archive: r.get(8)?,
                error_dir: r.get(9)?,
                key: r.get(10)?,
                decision: r.get(11)?,
                by: r.get(12)?,
                at: r.get(13)?,
                why: r.get(14)?,
                outcome: r.get(15)?,
            })
        })?
        .collect()
    })
}

/// `Some(())` when the journal has the `reviews` table (a journal the read-only commands
/// open may be older).
pub fn has_table(c: &rusqlite::Connection) -> rusqlite::Result<Option<()>> {
    c.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reviews'",
        [],
        |_| Ok(()),
    )
    .optional()
}

/// Records a decision carried out, with what happened, in the row and the file's history.
fn finish(journal: &Journal, d: &Decided, detail: &str) -> crate::journal::Result<()> {
    let state = if d.decision == "approved" {
        "released"
    } else {
        "rejected"
    };
    tracing::info!(decided_by = %d.by, detail = %detail, "Decision on a reviewed file carried out.");
    // Once in the history, also when a crash came between the event and the row's update.
    let recorded = journal.read(|c| {
        c.query_row(
            "SELECT 1 FROM events WHERE file_id = ?1 AND state = ?2",
            rusqlite::params![d.id, state],
            |_| Ok(()),
        )
        .optional()
    })?;
    if recorded.is_none() {
        journal.event(d.id, state, detail.to_string())?;
    }
    journal.exec(
        "UPDATE reviews SET finished_at = ?2, outcome = ?3 WHERE id = ?1",
        vec![
            Value::Integer(d.id),
            Value::Integer(now_ms()),
            Value::Text(detail.to_string()),
        ],
        true,
    )
}

/// An approved file: the original becomes the job's comparison base (with a `key`), every
/// output goes to its destination, then the original to its archive (or it is deleted).
fn approve(journal: &Journal, d: &Decided) -> io::Result<String> {
    let held_original = d.held.join(ORIGINAL).join(&d.name);
    if d.key.is_some() && held_original.exists() {
        keep_as_base(journal.state_dir(), &d.job, &held_original)?;
    }
    let manifest = manifest(&d.held)?;
    let mut placed = Vec::new();
    let mut went = Vec::new();
    // Outputs first, then the original: it leaves only once every output is delivered.
    for (i, entry) in manifest.iter().enumerate() {
        let (sub, rel) = entry.split_once('/').unwrap_or(("", entry));
        let Some(dest) = d.dests.iter().find(|x| x.n.to_string() == sub) else {
            continue;
        };
        let target = Path::new(&dest.dir).join(rel);
        let tag = format!("{}-{i}", d.id);
        let p = place(&d.held.join(entry), &target, &dest.exists, &tag)?;
        placed.push(p.unwrap_or(target).display().to_string());
    }
    for (i, entry) in manifest.iter().enumerate() {
        let Some(rel) = entry.strip_prefix(&format!("{ORIGINAL}/")) else {
            continue;
        };
        let src = d.held.join(entry);
        match (d.disposition.as_str(), &d.archive) {
            ("archive", Some(dir)) => {
                let tag = format!("{}-{i}", d.id);
                let target = Path::new(dir).join(rel);
                let p = place(&src, &target, "unique", &tag)?;
                went.push(format!("archived to {}", p.unwrap_or(target).display()));
            }
            (disposition, _) => {
                if src.exists() {
                    std::fs::remove_file(&src)?;
                    out::sync_parent(&src)?;
                }
                went.push(if disposition == "keep" {
                    "kept in the source".into()
                } else {
                    "deleted".into()
                });
            }
        }
    }
    remove_held(&d.held);
    let outputs = if placed.is_empty() {
        "no output".to_string()
    } else {
        placed.join(", ")
    };
    let original = if went.is_empty() {
        String::new()
    } else {
        format!("; original {}", went.join(", "))
    };
    Ok(format!(
        "delivered {outputs}{original} (approved by {})",
        d.by
    ))
}

/// The files held for a decision (`<output number>/<name>`, `original/<name>`), listed
/// once and kept in the pending folder (`.ferry-manifest`, durably) before the first of
/// them moves: a release taken up again after a crash goes through the same list with the
/// same temporary names, also for the files already moved out of the pending folder.
fn manifest(held: &Path) -> io::Result<Vec<String>> {
    let path = held.join(".ferry-manifest");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let list: Vec<String> = files_below(held)?
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    if held.exists() {
        let tmp = held.join(fsutil::temp_name());
        let mut text = list.join("\n");
        text.push('\n');
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        fsutil::sync_dir(held)?;
    }
    Ok(list)
}

/// A rejected file: the original goes to the error folder with a report that says who
/// rejected it and why; the held outputs are removed.
fn reject(d: &Decided) -> io::Result<String> {
    let originals = d.held.join(ORIGINAL);
    let why = d.why.clone().unwrap_or_default();
    let error = vec![format!(
        "rejected by {} on {}: {why}",
        d.by,
        crate::journal::fmt_time(d.at)
    )];
    let mut went = Vec::new();
    for rel in files_below(&originals)? {
        let src = originals.join(&rel);
        let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
        let report = Report {
            job: &d.job,
            job_file: Path::new(&d.job_file),
            source: Path::new(&d.path),
            size,
            hash: None,
            attempts: 1,
            error: &error,
        };
        let dest = free_error_name(&Path::new(&d.error_dir).join(&rel));
        let p = quarantine(&src, &dest, &report, Vec::new(), false)?;
        went.push(p.display().to_string());
    }
    remove_held(&d.held);
    Ok(format!(
        "original moved to {} (rejected by {}: {why})",
        if went.is_empty() {
            "the error folder (before a restart)".to_string()
        } else {
            went.join(", ")
        },
        d.by,
    ))
}

/// The files below `dir` (relative paths, sorted); none when it does not exist. Hidden
/// temporary files of a delivery interrupted before its plan are not among them (they
/// were never the file's outputs).
fn files_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let e = e.map_err(io::Error::other)?;
        if e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with(".ferry-") {
            out.push(e.path().strip_prefix(dir).unwrap_or(e.path()).to_path_buf());
        }
    }
    Ok(out)
}

/// Removes what is left of a file's pending folder (empty folders, litter).
fn remove_held(held: &Path) {
    let _ = std::fs::remove_dir_all(held);
    if let Some(p) = held.parent() {
        let _ = fsutil::sync_dir(p);
    }
}

/// Moves the held file `src` to `dest` exactly once, under the `exists` policy; `tag` names
/// its temporary file in `dest`'s folder. Returns where it went (`None`: skipped, or placed
/// before a crash). Safe to run again after a crash at any point.
fn place(src: &Path, dest: &Path, exists: &str, tag: &str) -> io::Result<Option<PathBuf>> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    fsutil::create_dir_all_durable(dir)?;
    let tmp = dir.join(format!(".ferry-out-review-{tag}.tmp"));
    if src.exists() {
        if tmp.exists() {
            // A complete copy was made before a crash (it only gets this name once
            // fsynced): the held file is the one left over.
            std::fs::remove_file(src)?;
            out::sync_parent(src)?;
        } else {
            match fsutil::rename_noreplace(src, &tmp) {
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    out::copy_new(src, &tmp)?;
                    std::fs::remove_file(src)?;
                    out::sync_parent(src)?;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    fsutil::sync_dir(dir)?;
                    out::sync_parent(src)?;
                }
            }
        }
    }
    if !tmp.exists() {
        return Ok(None);
    }
    let went = match exists {
        "overwrite" => {
            std::fs::rename(&tmp, dest)?;
            Some(dest.to_path_buf())
        }
        "skip" if fsutil::exists(dest) => {
            tracing::info!(output = %dest.display(), "The output exists already; skipped (exists = \"skip\").");
            std::fs::remove_file(&tmp)?;
            None
        }
        "unique" => {
            let mut went = None;
            for n in 0..10_000 {
                let candidate = fsutil::numbered(dest, n);
                match fsutil::rename_noreplace(&tmp, &candidate) {
                    Ok(()) => {
                        went = Some(candidate);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Some(went.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("no free name for {}", dest.display()),
                )
            })?)
        }
        _ => match fsutil::rename_noreplace(&tmp, dest) {
            Ok(()) => Some(dest.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists already (exists = \"fail\"); move it away and the approved output is delivered within seconds",
                        dest.display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        },
    };
    fsutil::sync_dir(dir)?;
    Ok(went)
}

/// The comparison base of a job: a copy of its last approved original.
pub fn base_path(state_dir: &Path, job: &str) -> PathBuf {
    crate::job::absolute(state_dir)
        .join("review")
        .join(job)
        .join("approved")
}

/// Makes `original` the comparison base of `job` (temporary name, fsync, rename over).
fn keep_as_base(state_dir: &Path, job: &str, original: &Path) -> io::Result<()> {
    let base = base_path(state_dir, job);
    let dir = base.parent().expect("a folder");
    fsutil::create_dir_all_durable(dir)?;
    let tmp = dir.join(fsutil::temp_name());
    let result = (|| {
        let mut src = fsutil::open_nofollow(original)?;
        let mut w = out::TempOutput::create(&tmp)?;
        io::copy(&mut src, &mut w)?;
        w.finish()?;
        std::fs::rename(&tmp, &base)?;
        fsutil::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reports (once each) the files that wait longer than their job's `expires`: a WARN in
/// the log, the row marked (for `ferry status`), and the admin alert when the job has one.
/// They stay pending: nothing is dropped or released.
fn overdue<'a>(journal: &Journal, jobs: impl Iterator<Item = &'a Job> + Clone) {
    let now = now_ms();
    let rows: Vec<(i64, String, String, i64, i64)> = match journal.read(|c| {
        if has_table(c)?.is_none() {
            return Ok(Vec::new());
        }
        let mut st = c.prepare(
            "SELECT r.id, r.job, r.name, r.held_at, r.expires_ms FROM reviews r JOIN files f ON f.id = r.id
             WHERE r.finished_at IS NULL AND r.decision IS NULL AND r.overdue_at IS NULL AND f.state = 'done' AND ?1 - r.held_at > r.expires_ms",
        )?;
        st.query_map([now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect()
    }) {
        Ok(r) => r,
        Err(_) => return,
    };
    for (id, job, name, held_at, expires) in rows {
        let since = crate::journal::fmt_time(held_at);
        let limit = humantime(expires);
        tracing::warn!(job = %job, file = %name, id, waiting_since = %since, expires = %limit, "A reviewed file has waited longer than `expires` for a decision; it stays pending (`ferry pending show {id}`, then `ferry approve {id}` or `ferry reject {id} --why ...`).");
        let text = format!(
            "ferry job {job}: the file {name} (pending id {id}) has waited for a decision since {since}, longer than `expires` ({limit}).\nIt stays pending: nothing was delivered or dropped.\n\n  ferry pending show {id}\n  ferry approve {id}\n  ferry reject {id} --why \"...\"\n"
        );
        if let Some(j) = jobs.clone().find(|j| j.name == job)
            && let Some(a) = &j.alert
            && let Err(e) = crate::outputs::alerts::put(
                &a.email.outbox,
                &format!("review-{id:09}-overdue.txt"),
                &text,
            )
        {
            tracing::error!(error = %format!("{e:#}"), "Cannot write the alert.");
        }
        let _ = journal.event(
            id,
            "overdue",
            format!("waiting for a decision since {since}, longer than {limit}"),
        );
        let _ = journal.exec(
            "UPDATE reviews SET overdue_at = ?2 WHERE id = ?1",
            vec![Value::Integer(id), Value::Integer(now)],
            true,
        );
    }
}

/// A duration in ms as the job file writes it (`7d`, `12h`, `30m`, `45s`).
pub fn humantime(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
