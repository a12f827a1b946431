//! Step 1, [`claim`]: the file gets its id and `{seq}` in the journal, durably, together
//! with the temporary names its outputs are about to be written under.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::job::data::OutputFormat;
use crate::job::template::{Template, Vars};
use crate::job::{Job, Success};
use crate::journal::{Identity, Journal};
use crate::outputs::folder as out;
use crate::sources::folder::Found;

use super::{Companion, FileError, Target};

/// Everything the names of one file resolve to.
pub struct Resolved {
    pub targets: Vec<Target>,
    /// Outputs named per group of records (`split`): their index and folder.
    pub split_dirs: Vec<(u32, PathBuf)>,
    /// Outputs that extract pieces of a PDF (`extract`): their index and folder.
    pub extract_dirs: Vec<(u32, PathBuf)>,
    pub archive_dir: Option<PathBuf>,
}

/// A file recorded in the journal, with its set's other members.
pub struct Claimed {
    pub id: i64,
    pub seq: u64,
    pub attempts: u32,
    /// The file's names, resolved with its `{seq}`.
    pub resolved: Result<Resolved, FileError>,
    pub companions: Vec<Companion>,
}

/// Step 1: records `found` (and a set's other `members`, which are planned, disposed of
/// or failed together with it) in the journal, and resolves its names with the `{seq}` it
/// gets (`vars` gives every other placeholder). The claim lists the temporary files about
/// to be written, so it is durable before they exist. `None`: the journal refused; the
/// file is left in place.
pub fn claim(
    job: &Job,
    found: &Found,
    first_seen_ms: i64,
    vars: &Vars<'_>,
    members: &[Found],
    journal: &Journal,
) -> Option<Claimed> {
    let mut resolved = None;
    let claim = journal.claim(
        &job.name,
        &identity(found),
        &found.name,
        &found.rel_dir,
        first_seen_ms,
        |c| {
            let vars = Vars {
                seq: c.seq,
                ..vars.clone()
            };
            let r = resolve(job, &vars, c.id);
            let temps = r.as_ref().map(|r| temporaries(r, c.id)).unwrap_or_default();
            resolved = Some(r);
            temps
        },
    );
    let claim = match claim {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Cannot record the file in the journal; leaving it in place.");
            return None;
        }
    };
    let mut companions = Vec::new();
    for m in members {
        match journal.claim(
            &job.name,
            &identity(m),
            &m.name,
            &m.rel_dir,
            first_seen_ms,
            |_| Vec::new(),
        ) {
            Ok(cl) => companions.push(Companion {
                found: m.clone(),
                id: cl.id,
                attempts: cl.attempts,
                seq: cl.seq,
            }),
            Err(e) => {
                tracing::error!(error = %e, "Cannot record a set member in the journal; leaving the set in place.");
                return None;
            }
        }
    }
    Some(Claimed {
        id: claim.id,
        seq: claim.seq,
        attempts: claim.attempts,
        resolved: resolved.expect("claim calls its closure"),
        companions,
    })
}

fn identity(found: &Found) -> Identity {
    Identity {
        path: found.path.to_string_lossy().into_owned(),
        size: found.meta.size,
        mtime_ns: found.meta.mtime_ns,
    }
}

/// The temporary files the claim of file `id` records. Split and extract outputs get their
/// names while the file is read: recovery removes their temporary files by pattern.
fn temporaries(r: &Resolved, id: i64) -> Vec<String> {
    r.targets
        .iter()
        .map(|t| t.temp.to_string_lossy().into_owned())
        .chain(r.split_dirs.iter().chain(&r.extract_dirs).map(|(_, d)| {
            d.join(format!(".ferry-out-{id}-*"))
                .to_string_lossy()
                .into_owned()
        }))
        .collect()
}

/// Whether output `o` of `job` is written per group of records.
pub(super) fn is_split(job: &Job, o: &crate::job::Output) -> bool {
    job.transform.split.is_some() && !matches!(o.data.format, OutputFormat::Original)
}

/// The folder a folder template's placeholders render below: its literal part. The
/// admin's path to it may go through symlinks; nothing below it is followed.
pub fn template_base(t: &Template) -> PathBuf {
    let prefix = crate::job::absolute(Path::new(t.literal_prefix()));
    // `\\` ends a folder too where it is a separator (Windows: `\\server\share\out\{dir}`).
    if t.literal_prefix().ends_with(std::path::is_separator) || t.is_literal() {
        prefix
    } else {
        prefix.parent().map(Path::to_path_buf).unwrap_or(prefix)
    }
}

/// A folder template rendered for a file; never outside its literal part.
pub fn render_dir(t: &Template, vars: &Vars<'_>) -> Result<PathBuf, FileError> {
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

/// Every name of a file: its outputs' final and temporary paths (`id` numbers the
/// temporary ones), the folders of outputs named later, the archive folder.
pub fn resolve(job: &Job, vars: &Vars<'_>, id: i64) -> Result<Resolved, FileError> {
    let mut targets = Vec::new();
    let mut split_dirs = Vec::new();
    let mut extract_dirs = Vec::new();
    for (i, o) in job.outputs.iter().enumerate() {
        super::super::naming::check(job, i, vars.record).map_err(FileError::new)?;
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
