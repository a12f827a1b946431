//! Before a file is claimed: is it part of a complete document set (`[source.set]`), and
//! does its content match the job (`[source] contains` / `matches`)?
//!
//! A set is driven by its lead (the first member). When the lead is ready, every other
//! member must exist and must have kept the same size and modification time for `settle`
//! as seen by ferry (the same rule as for any file; the observations are kept here between
//! looks). Until then the lead *waits*: it is looked at again after `settle`, and in
//! `--once` mode it is left for a later run. A member that is not the lead waits for its
//! lead, which takes it along. A set still incomplete `timeout` after its first file was
//! seen goes to the error folder: the files present, each with a report naming the
//! missing ones.
//!
//! A manifest set works the same way with the manifest as the lead and the files it
//! lists as the other members; any other file waits until a good manifest lists it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::formats::Record;
use crate::job::Job;
use crate::job::set::{MAX_MANIFEST, Manifest};
use crate::journal::{Identity, Journal, now_ms};
use crate::readiness::Meta;
use crate::sources::folder::{Found, meta_of};

use super::process::Outcome;

/// A set about to be processed with its lead.
pub struct SetCtx {
    /// The other members present (all of them, unless the set is incomplete).
    pub companions: Vec<Found>,
    /// The lead's first record as the job reads and transforms it: the index fields that
    /// output names may use.
    pub index: Option<Record>,
    /// Set when the set timed out incomplete: the error to fail it with.
    pub incomplete: Option<String>,
}

pub enum Prep {
    /// Not a set job: process the file as usual.
    Alone,
    Set(SetCtx),
    /// Nothing to do now.
    Outcome(Outcome),
}

/// When each companion was first seen with its current size and mtime.
static SEEN: Mutex<Option<HashMap<PathBuf, (Meta, Instant)>>> = Mutex::new(None);

/// Whether `path` (with `meta` now) has been unchanged for `settle`.
fn settled(path: &PathBuf, meta: Meta, settle: Duration) -> bool {
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match map.get(path) {
        Some((m, since)) if *m == meta => now.duration_since(*since) >= settle,
        _ => {
            map.insert(path.clone(), (meta, now));
            settle.is_zero()
        }
    }
}

/// `path` has settled by the runtime's own readiness check (it was handed over as ready).
fn mark_settled(path: &std::path::Path, meta: Meta, settle: Duration) {
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let since = Instant::now()
        .checked_sub(settle)
        .unwrap_or_else(Instant::now);
    g.get_or_insert_with(HashMap::new)
        .insert(path.to_path_buf(), (meta, since));
}

fn forget(paths: &[PathBuf]) {
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = g.as_mut() {
        for p in paths {
            map.remove(p);
        }
    }
}

/// Reads and checks the manifest at `path` (at most [`MAX_MANIFEST`] bytes).
pub fn read_manifest(m: &Manifest, path: &Path) -> Result<Vec<String>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Another manifest of the folder, named by path: never read through a symlink.
    let f =
        crate::fsutil::open_nofollow(path).map_err(|e| format!("cannot open the manifest: {e}"))?;
    read_manifest_from(m, &name, f)
}

/// [`read_manifest`] of a manifest already open (a lead, through its checked handle).
pub fn read_manifest_from(
    m: &Manifest,
    name: &str,
    f: std::fs::File,
) -> Result<Vec<String>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    f.take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the manifest: {e}"))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(format!(
            "the manifest is larger than {} KiB: it lists file names, not data",
            MAX_MANIFEST / 1024
        ));
    }
    m.members(name, &bytes)
}

/// The names the good manifests of a folder list, as last read, and when.
type Listed = HashMap<(String, PathBuf), (Instant, Arc<HashSet<String>>)>;
static LISTED: Mutex<Option<Listed>> = Mutex::new(None);

/// How long the names a folder's manifests list are reused: every waiting file of a batch
/// asks, and reading the folder and its manifests for each would be quadratic. A stale
/// answer only delays: either way the file waits; a fresh look decides a timeout.
const LISTED_FOR: Duration = Duration::from_secs(1);

/// Whether a good manifest in `dir` lists `name`; `fresh` reads the folder again.
fn listed(m: &Manifest, dir: &Path, name: &str, fresh: bool) -> bool {
    let now = Instant::now();
    let key = (m.pattern.clone(), dir.to_path_buf());
    if !fresh {
        let g = LISTED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, names)) = g.as_ref().and_then(|map| map.get(&key))
            && now.duration_since(*at) < LISTED_FOR
        {
            return names.contains(name);
        }
    }
    let mut names = HashSet::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if m.glob.is_match(&n)
                && !n.starts_with('.')
                && e.file_type().is_ok_and(|t| t.is_file())
                && let Ok(l) = read_manifest(m, &e.path())
            {
                names.extend(l);
            }
        }
    }
    let found = names.contains(name);
    let mut g = LISTED.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    map.retain(|_, (at, _)| now.duration_since(*at) < LISTED_FOR);
    map.insert(key, (now, Arc::new(names)));
    found
}

/// What a file is in its job's document set, for `ferry test`.
pub enum Role {
    /// Not a set job.
    Alone,
    /// The lead: the other members present, in their order, and those missing.
    Lead {
        present: Vec<PathBuf>,
        missing: Vec<String>,
    },
    /// Another member: taken along by its lead (named when present).
    Member { lead: Option<String> },
}

/// The role of the file at `path` in `job`'s document set.
pub fn role_of(job: &Job, path: &Path) -> Result<Role, String> {
    let Some(set) = &job.source.set else {
        return Ok(Role::Alone);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let names: Vec<String> = match &set.manifest {
        Some(m) if m.glob.is_match(&name) => read_manifest(m, path)?,
        Some(m) => {
            let lead = std::fs::read_dir(dir).ok().and_then(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| {
                        m.glob.is_match(n)
                            && read_manifest(m, &dir.join(n)).is_ok_and(|l| l.contains(&name))
                    })
            });
            return Ok(Role::Member { lead });
        }
        None => match set.which(&name) {
            Some((0, stem)) => set.members[1..].iter().map(|m| m.name(stem)).collect(),
            Some((_, stem)) => {
                let lead = set.members[0].name(stem);
                let present = dir.join(&lead).is_file();
                return Ok(Role::Member {
                    lead: present.then_some(lead),
                });
            }
            None => return Ok(Role::Member { lead: None }),
        },
    };
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for n in names {
        let p = dir.join(&n);
        if p.is_file() {
            present.push(p);
        } else {
            missing.push(n);
        }
    }
    Ok(Role::Lead { present, missing })
}

/// A manifest set: the manifest is the lead; any other file waits to be listed by one.
fn prepare_manifest(
    job: &Job,
    m: &Manifest,
    timeout: Duration,
    found: &Found,
    first_seen_ms: i64,
    journal: &Journal,
) -> Prep {
    let timed_out = now_ms().saturating_sub(first_seen_ms) > timeout.as_millis() as i64;
    if !m.glob.is_match(&found.name) {
        let dir = found.path.parent().unwrap_or(Path::new("."));
        return member_waits(
            job,
            found,
            journal,
            || listed(m, dir, &found.name, timed_out),
            timed_out,
            || {
                format!(
                    "no manifest ({}) lists this file after {}: a file of a manifest set waits for the manifest that lists it",
                    m.pattern,
                    fmt_duration(timeout)
                )
            },
        );
    }
    let read = found
        .reader()
        .map_err(|e| format!("cannot open the manifest: {e}"))
        .and_then(|f| read_manifest_from(m, &found.name, f));
    match read {
        // An untrusted list is not acted on at all: the manifest alone fails; the files
        // it names wait for a good manifest (or their own timeout).
        Err(e) => Prep::Set(SetCtx {
            companions: Vec::new(),
            index: None,
            incomplete: Some(format!(
                "bad manifest {}: {e}; nothing it names was taken",
                found.name
            )),
        }),
        Ok(names) => gather(
            job,
            found,
            names,
            timed_out,
            &format!("of the manifest {:?}", found.name),
            timeout,
        ),
    }
}

/// Decides what to do with a ready file of a set job.
pub fn prepare(job: &Job, found: &Found, first_seen_ms: i64, journal: &Journal) -> Prep {
    let Some(set) = &job.source.set else {
        return Prep::Alone;
    };
    if let Some(m) = &set.manifest {
        return prepare_manifest(job, m, set.timeout, found, first_seen_ms, journal);
    }
    let Some((which, stem)) = set.which(&found.name) else {
        // Taken by `include` but not a member: a set job processes sets only.
        tracing::info!("Not a member of a document set; left alone.");
        return Prep::Outcome(Outcome::Ignored { meta: found.meta });
    };
    let timed_out = now_ms().saturating_sub(first_seen_ms) > set.timeout.as_millis() as i64;
    if which != 0 {
        let lead = found.path.with_file_name(set.members[0].name(stem));
        return member_waits(
            job,
            found,
            journal,
            || lead.exists(),
            timed_out,
            || {
                format!(
                    "the document set {stem:?} is incomplete after {}: {} is missing",
                    fmt_duration(set.timeout),
                    set.members[0].name(stem)
                )
            },
        );
    }
    let names = set.members[1..].iter().map(|m| m.name(stem)).collect();
    gather(
        job,
        found,
        names,
        timed_out,
        &format!("{stem:?}"),
        set.timeout,
    )
}

/// A set's file that is not its lead: ignored when kept and already done; waiting while
/// the lead (or a manifest listing it) will take it along, or until `timed_out`; then
/// failed alone as incomplete, with `why`.
fn member_waits(
    job: &Job,
    found: &Found,
    journal: &Journal,
    taken_along: impl FnOnce() -> bool,
    timed_out: bool,
    why: impl FnOnce() -> String,
) -> Prep {
    if job.after.success == crate::job::Success::Keep {
        let id = Identity {
            path: found.path.to_string_lossy().into_owned(),
            size: found.meta.size,
            mtime_ns: found.meta.mtime_ns,
        };
        if journal.was_finished(&job.name, &id).unwrap_or(false) {
            return Prep::Outcome(Outcome::Ignored { meta: found.meta });
        }
    }
    if taken_along() {
        // The file that takes it along has it settled already.
        mark_settled(&found.path, found.meta, job.source.settle);
        return Prep::Outcome(Outcome::Waiting);
    }
    if !timed_out {
        return Prep::Outcome(Outcome::Waiting);
    }
    Prep::Set(SetCtx {
        companions: Vec::new(),
        index: None,
        incomplete: Some(why()),
    })
}

/// The lead's other members `names` (in order): the set when all are present and
/// settled, else wait, or fail it as incomplete once `timed_out`.
fn gather(
    job: &Job,
    found: &Found,
    names: Vec<String>,
    timed_out: bool,
    label: &str,
    timeout: Duration,
) -> Prep {
    let mut companions = Vec::new();
    let mut missing = Vec::new();
    let mut unsettled = false;
    for name in names {
        let path = found.path.with_file_name(&name);
        // Through the lead's folder handle, never following a symlink.
        let st = match &found.dir {
            Some(d) => d.stat(&name).ok(),
            None => std::fs::symlink_metadata(&path)
                .ok()
                .map(|md| crate::sources::dir::Stat {
                    kind: if md.is_file() {
                        crate::sources::dir::Kind::File
                    } else {
                        crate::sources::dir::Kind::Other
                    },
                    id: crate::sources::dir::FileId { dev: 0, ino: 0 },
                    meta: meta_of(&md),
                }),
        };
        match st {
            Some(st) if st.kind == crate::sources::dir::Kind::File => {
                let meta = st.meta;
                if !settled(&path, meta, job.source.settle) {
                    unsettled = true;
                }
                companions.push(Found {
                    path,
                    rel_dir: found.rel_dir.clone(),
                    name,
                    meta,
                    dir: found.dir.clone(),
                    id: found.dir.as_ref().map(|_| st.id),
                    opened: None,
                });
            }
            _ => missing.push(name),
        }
    }
    if missing.is_empty() && !unsettled {
        forget(
            &companions
                .iter()
                .map(|c| c.path.clone())
                .collect::<Vec<_>>(),
        );
        return Prep::Set(SetCtx {
            companions,
            index: None,
            incomplete: None,
        });
    }
    if !timed_out {
        // Present but not seen settled yet: look again after `settle` (in `--once` mode
        // too). Missing: wait for it.
        return Prep::Outcome(if missing.is_empty() {
            Outcome::Released
        } else {
            Outcome::Waiting
        });
    }
    forget(
        &companions
            .iter()
            .map(|c| c.path.clone())
            .collect::<Vec<_>>(),
    );
    let what = if missing.is_empty() {
        "still being written".to_string()
    } else {
        format!("missing: {}", missing.join(", "))
    };
    Prep::Set(SetCtx {
        companions,
        index: None,
        incomplete: Some(format!(
            "the document set {label} is incomplete after {}; {what}",
            fmt_duration(timeout)
        )),
    })
}

/// The lead's first record, read and transformed by the job, for names that use index
/// fields. `Ok(None)` when the job reads no records.
pub fn read_index(
    job: &Job,
    found: &Found,
    meta: std::collections::BTreeMap<String, String>,
) -> Result<Option<Record>, String> {
    if job.input.is_none() {
        return Ok(None);
    }
    let f = found
        .reader()
        .map_err(|e| format!("cannot open the set's index {}: {e}", found.name))?;
    let p = super::pipeline::preview_file(job, f, meta, 1)
        .map_err(|e| format!("cannot read the set's index {}: {e}", found.name))?;
    if let Some(e) = p.error {
        return Err(format!("cannot read the set's index {}: {e}", found.name));
    }
    match p.transformed.into_iter().next() {
        Some(Ok(Some(r))) => Ok(Some(r)),
        Some(Ok(None)) => Err(format!(
            "the set's index {} has no record (the filter dropped it)",
            found.name
        )),
        Some(Err(e)) => Err(format!("cannot read the set's index {}: {e}", found.name)),
        None => Err(format!("the set's index {} has no record", found.name)),
    }
}

/// `[source] contains` / `matches`: `Ok(Some(outcome))` when the file is not this job's
/// (left alone until it changes). A PDF that cannot be read at all is not left alone: the
/// error fails it with its reason.
pub fn route(job: &Job, found: &Found) -> Result<Option<Outcome>, String> {
    let Some(rule) = job.source.content.as_ref() else {
        return Ok(None);
    };
    let limits = job.pdf;
    let f = found.reader().map_err(|e| format!("cannot open: {e}"));
    let text = crate::formats::pdf::guarded(limits.timeout, move || {
        let mut f = f?;
        crate::formats::pdf::check_file(&f, &limits)?;
        let bytes = crate::formats::pdf::read_limited(&mut f, &limits)?;
        let doc = crate::formats::pdf::load(&bytes, &limits)?;
        crate::formats::pdf::text(&doc, &limits)
    });
    match text {
        Ok(t) if rule.accepts(&t) => Ok(None),
        Ok(_) => {
            tracing::info!("The content does not match this job's rule; left alone.");
            Ok(Some(Outcome::Ignored { meta: found.meta }))
        }
        Err(e) => Err(format!("cannot check the job's content rule: {e}")),
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
