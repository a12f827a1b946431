//! Step 2, [`write_temporaries`]: every output of a file written under a temporary name
//! (`.ferry-out-<id>-<n>.tmp`) in its target folder and fsynced. Nothing is visible yet:
//! a failure here removes the temporary files, and the file fails or, when it changed
//! meanwhile, settles again.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::formats::{ParseError, Record};
use crate::fsutil;
use crate::job::Success;
use crate::job::data::{OutputData, OutputFormat};
use crate::job::template::Vars;
use crate::outputs::folder::{self as out, TempOutput};
use crate::sources::folder::Found;

use super::super::process::{meta_map, with_mail};
use super::super::{extract, pipeline};
use super::claim::is_split;
use super::{Delivery, FileError, Outcome, Resolved, Stop, Target, exists, rejects};

/// Originals from this size on whose outputs are all hard links to them (FTP and email
/// outputs, or the sole folder output of a deleted original) are planned before they are
/// hashed: their sha256 is computed after the plan, from a handle opened before it, while
/// the deliverers already send the file ([`super::super::late_hash`]), and recorded in the
/// journal when done (`Journal::hashed`). Nothing in delivery or recovery needs the hash
/// before then; a crash in between leaves the file's history without one.
pub const DEFER_HASH_FROM: u64 = 16 << 20;

/// What step 2 leaves for the plan.
pub struct Written {
    /// Every output to commit, in the plan's order: the outputs named at the claim, then
    /// the groups of split outputs and the pieces of extract outputs, and the rejects file.
    pub targets: Vec<Target>,
    /// The original's sha256; empty when it is computed after the plan (see
    /// [`DEFER_HASH_FROM`]).
    pub hash: String,
    /// The sha256 and size of each of `targets`.
    pub sums: Vec<(String, u64)>,
    /// The original, opened to be hashed after the plan.
    pub deferred: Option<File>,
}

/// The temporary files of one file while they are written.
#[derive(Default)]
struct Temps<'j> {
    /// Outputs that get the original's bytes as they are: all copied in one pass.
    raw: Vec<(u32, TempOutput)>,
    /// Outputs converted from records, with their format.
    records: Vec<(u32, TempOutput, &'j OutputData)>,
    /// Outputs written completely, waiting for their fsync (`u32::MAX`: the rejects file).
    finished: Vec<(u32, TempOutput)>,
    /// Outputs that are hard links to the original.
    linked: Vec<u32>,
}

/// What writing named on its way, kept when it fails so that its files are removed too.
#[derive(Default)]
struct Named {
    /// The files of split outputs (one per group of records) and of extract outputs.
    more: Vec<Target>,
    /// How many records went to the rejects file.
    rejected: u64,
}

/// Step 2: writes every output of `d` (its named outputs after their `exists` policies,
/// the groups of split outputs, the pieces of extract outputs, the rejects file) under its
/// temporary name and fsyncs it.
pub fn write_temporaries(d: &Delivery<'_>, resolved: Resolved) -> Result<Written, Stop> {
    let mut targets = exists::apply(resolved.targets, d.id, d.journal)?;
    // Rejected records (`on_error = "skip"`) go beside the first output.
    let first_folder = targets
        .first()
        .and_then(|t| t.final_path.parent().map(Path::to_path_buf))
        .or_else(|| resolved.split_dirs.first().map(|(_, d)| d.clone()));
    let rejects = rejects::target(d, first_folder);
    let mut named = Named::default();
    let dirs = Dirs {
        split: &resolved.split_dirs,
        extract: &resolved.extract_dirs,
    };
    let written = write(d, &targets, dirs, &rejects, &mut named);
    targets.extend(named.more);
    rejects::keep_if_rejected(rejects, named.rejected, &mut targets);
    let (hash, sums, deferred) = match written {
        Ok(w) => w,
        Err(e) => {
            super::remove_temporaries(&targets);
            // A file still being written (a writer that paused longer than `settle`) is
            // not a bad file: let it settle again.
            if d.found.now().is_ok_and(|now| now != d.found.meta) {
                tracing::info!("File changed while being taken; waiting for it to settle again.");
                let _ = d.journal.released(
                    d.id,
                    "the file changed while being taken; it settles again".into(),
                );
                return Err(Stop::Outcome(Outcome::Released));
            }
            return Err(Stop::Fail(None, e));
        }
    };
    // A writer that paused longer than `settle` and wrote on while the file was read:
    // the outputs miss what it added. Checked on the open handle before anything is
    // planned; the file is given back and taken again once it settles.
    if let Some(changed) = grew(d.found) {
        super::remove_temporaries(&targets);
        tracing::warn!(now = %changed, "File changed while being taken (its writer went on after a pause longer than `settle`); its outputs are dropped and it is taken again once it settles.");
        let _ = d.journal.released(
            d.id,
            format!("the file changed while being taken ({changed}); it settles again"),
        );
        return Err(Stop::Outcome(Outcome::Released));
    }
    Ok(Written {
        targets,
        hash,
        sums,
        deferred,
    })
}

/// The folders of the outputs named while the file is read.
#[derive(Clone, Copy)]
struct Dirs<'r> {
    split: &'r [(u32, PathBuf)],
    extract: &'r [(u32, PathBuf)],
}

type Sums = (String, Vec<(String, u64)>, Option<File>);

/// Writes and fsyncs the temporary files; returns the original's sha256, each output's
/// sha256 and size, and the original opened for a late hash.
fn write(
    d: &Delivery<'_>,
    targets: &[Target],
    dirs: Dirs<'_>,
    rejects: &Option<Target>,
    named: &mut Named,
) -> Result<Sums, FileError> {
    let mut temps = open_temporaries(d, targets, may_link(d, targets, dirs))?;
    let converting = !temps.records.is_empty() || !dirs.split.is_empty();
    let all_linked = temps.raw.is_empty()
        && !converting
        && !temps.linked.is_empty()
        && temps.linked.len() == targets.len()
        && dirs.extract.is_empty();
    let mut hash = None;
    let mut deferred = None;
    if all_linked && d.found.meta.size >= DEFER_HASH_FROM {
        let (file, n) = open_for_late_hash(targets, &temps.linked)?;
        hash = Some((String::new(), n));
        deferred = Some(file);
    } else if !temps.raw.is_empty() || !converting {
        // With every output linked this only hashes the original (no outputs to write).
        hash = Some(copy_original(d.found, &mut temps)?);
    }
    if converting {
        let h = convert(d, dirs.split, &mut temps, rejects, named)?;
        hash = hash.or(Some(h));
    }
    if !dirs.extract.is_empty() {
        extract_pieces(d, dirs.extract, &mut temps, named)?;
    }
    let (hash, n) = hash.expect("the file was read");
    if n != d.found.meta.size {
        return Err(FileError::new(format!(
            "read {n} bytes but the file had {} when it settled",
            d.found.meta.size
        )));
    }
    let sums = fsync_temporaries(targets, temps, &hash, n)?;
    Ok((hash, sums, deferred))
}

/// Whether outputs of `d` that carry the original's bytes may be hard links to it instead
/// of copies (docs/design.md, "Outputs by hard link"): into an outbox (an FTP or email
/// output, which only ferry's deliverer reads), or into a folder when it is the file's
/// only output and the original is deleted. Otherwise a folder output is a copy: a partner
/// that rewrites its file in place must not change the archived original or another
/// output.
fn may_link(d: &Delivery<'_>, targets: &[Target], dirs: Dirs<'_>) -> bool {
    let converting_job = !dirs.split.is_empty()
        || targets.iter().any(|t| {
            !matches!(
                d.job.outputs[t.idx as usize].data.format,
                OutputFormat::Original
            )
        });
    !converting_job
        && d.companions.is_empty()
        && d.job.after.success != Success::Keep
        && owned_by_us(d.found)
}

/// Creates (or links) the temporary file of every named output; a set member's output is
/// copied from that member at once.
fn open_temporaries<'j>(
    d: &Delivery<'j>,
    targets: &[Target],
    may_link: bool,
) -> Result<Temps<'j>, FileError> {
    let mut temps = Temps::default();
    for t in targets {
        let o = &d.job.outputs[t.idx as usize];
        let outbox = o.deliver.is_some() || o.email.is_some();
        let sole = targets.len() == 1 && d.job.after.success == Success::Delete;
        if may_link && (outbox || sole) && t.member.is_none() && link_output(d.found, &t.temp) {
            temps.linked.push(t.idx);
            continue;
        }
        let tmp = TempOutput::create(&t.temp).map_err(|e| {
            FileError::output_io(
                format!("cannot write output {} in {}", t.idx + 1, parent(&t.temp)),
                t.temp.parent().unwrap_or(Path::new("")),
                &e,
            )
            .at(t.idx)
        })?;
        if let Some(m) = &t.member {
            temps
                .finished
                .push((t.idx, copy_member(d.found, m, t.idx, tmp)?));
            continue;
        }
        match o.data.format {
            OutputFormat::Original => temps.raw.push((t.idx, tmp)),
            _ => temps.records.push((t.idx, tmp, &o.data)),
        }
    }
    Ok(temps)
}

/// Copies the set member `m` beside `found` into output `idx`'s temporary file.
fn copy_member(
    found: &Found,
    m: &str,
    idx: u32,
    mut tmp: TempOutput,
) -> Result<TempOutput, FileError> {
    let mut src = found
        .sibling(m)
        .map_err(|e| FileError::io(format!("cannot open {}", parent_join(&found.path, m)), &e))?;
    io::copy(&mut src, &mut tmp).map_err(|e| {
        FileError::io(format!("cannot copy {} to output {}", m, idx + 1), &e).at(idx)
    })?;
    Ok(tmp)
}

/// Opens the original through the first link to it (which only ferry uses: the content
/// that will be delivered), to be hashed after the plan; and its size.
fn open_for_late_hash(targets: &[Target], linked: &[u32]) -> Result<(File, u64), FileError> {
    let link = targets
        .iter()
        .find(|t| t.idx == linked[0])
        .map(|t| t.temp.as_path())
        .expect("a linked output is a target");
    let src = File::open(link)
        .map_err(|e| FileError::io(format!("cannot open {}", link.display()), &e))?;
    let n = src
        .metadata()
        .map_err(|e| FileError::io(format!("cannot read {}", link.display()), &e))?
        .len();
    Ok((src, n))
}

/// Copies the original into every output that gets its bytes as they are, in one pass
/// that hashes it; returns its sha256 and size.
fn copy_original(found: &Found, temps: &mut Temps<'_>) -> Result<(String, u64), FileError> {
    let mut src = found
        .reader()
        .map_err(|e| FileError::io(format!("cannot open {}", found.path.display()), &e))?;
    let (idxs, mut files): (Vec<u32>, Vec<TempOutput>) =
        std::mem::take(&mut temps.raw).into_iter().unzip();
    // A write that fails is most likely the first output's folder (a full or lost share).
    let dest = files
        .first()
        .and_then(|f| f.temp.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (h, n) = out::tee_copy(&mut src, &mut files).map_err(|e| {
        let err = FileError::output_io("cannot copy the file to its outputs", &dest, &e);
        match idxs.first() {
            Some(i) if err.transient.is_some() || idxs.len() == 1 => err.at(*i),
            _ => err,
        }
    })?;
    temps.finished.extend(idxs.into_iter().zip(files));
    Ok((h, n))
}

/// Reads the original as records into the record outputs, the groups of split outputs
/// (named by [`name_group`]) and the rejects file; returns the original's sha256 and size.
fn convert(
    d: &Delivery<'_>,
    split_dirs: &[(u32, PathBuf)],
    temps: &mut Temps<'_>,
    rejects_target: &Option<Target>,
    named: &mut Named,
) -> Result<(String, u64), FileError> {
    let records = std::mem::take(&mut temps.records);
    let idxs: Vec<u32> = records.iter().map(|(i, _, _)| *i).collect();
    let described = describe_tables(d, &records)?;
    let outs = records
        .into_iter()
        .zip(&described)
        .map(|((_, t, data), desc)| (t, desc.as_ref().unwrap_or(data)))
        .collect();
    let meta = with_mail(meta_map(d.job, d.found, d.vars.taken), d.vars.mail);
    let mut rejects = pipeline::Rejects {
        path: rejects::path(rejects_target),
        file: None,
        original: None,
    };
    let mut groups: Vec<Target> = Vec::new();
    let mut used = exists::UsedNames::default();
    let mut open =
        |oi: u32, rec: &Record| name_group(d, split_dirs, &mut used, &mut groups, oi, rec);
    let split = d
        .job
        .transform
        .split
        .as_deref()
        .map(|field| pipeline::Split {
            field,
            outputs: d
                .job
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| is_split(d.job, o))
                .map(|(i, o)| (i as u32, &o.data))
                .collect(),
            open: &mut open,
        });
    let src = d
        .found
        .reader()
        .map_err(|e| FileError::io(format!("cannot open {}", d.found.path.display()), &e))?;
    let result = pipeline::run(d.job, src, outs, meta, &mut rejects, split);
    named.more = groups;
    if let Some(r) = rejects.file {
        temps.finished.push((u32::MAX, r));
    }
    let pipeline::Converted {
        temps: files,
        hash,
        stats,
        split,
    } = result.map_err(|e| FileError::new(format!("cannot convert the file: {e}")))?;
    tracing::info!(
        read = stats.read,
        written = stats.written,
        filtered = stats.filtered,
        rejected = stats.rejected,
        "Records converted."
    );
    named.rejected = stats.rejected;
    temps.finished.extend(idxs.into_iter().zip(files));
    for (_, _, t) in split {
        let idx = named
            .more
            .iter()
            .find(|s| s.temp == t.temp)
            .map_or(u32::MAX - 1, |s| s.idx);
        temps.finished.push((idx, t));
    }
    Ok(hash)
}

/// The record outputs' data, a database output's with its table's columns (read from the
/// database now); `None` for the others. A database that cannot be reached is a failure
/// that may pass, for the output's outbox as destination.
fn describe_tables(
    d: &Delivery<'_>,
    records: &[(u32, TempOutput, &OutputData)],
) -> Result<Vec<Option<OutputData>>, FileError> {
    let mut out = Vec::new();
    for (i, t, data) in records {
        let OutputFormat::Database(db, _) = &data.format else {
            out.push(None);
            continue;
        };
        crate::outputs::database::register(d.job);
        match crate::outputs::database::prepare(db, &d.job.name, *i) {
            Ok(desc) => out.push(Some(OutputData {
                format: OutputFormat::Database(db.clone(), Some(desc)),
                ..(*data).clone()
            })),
            Err(e) => {
                let dest = parent(&t.temp);
                let mut err = FileError::new(format!("output {}: {}", i + 1, e.message)).at(*i);
                err.transient = e.transient.then_some(dest);
                return Err(err);
            }
        }
    }
    Ok(out)
}

/// Names the file of a new group of records (`rec` is its first) of split output `oi`,
/// after the output's `exists` policy; returns its final and temporary path.
fn name_group(
    d: &Delivery<'_>,
    split_dirs: &[(u32, PathBuf)],
    used: &mut exists::UsedNames,
    groups: &mut Vec<Target>,
    oi: u32,
    rec: &Record,
) -> Result<(PathBuf, PathBuf), ParseError> {
    let o = &d.job.outputs[oi as usize];
    let dir = &split_dirs
        .iter()
        .find(|(i, _)| *i == oi)
        .expect("a split output has a folder")
        .1;
    let v = Vars {
        record: Some(rec),
        mail: d.vars.mail,
        ..d.vars.clone()
    };
    let base = fsutil::safe_join(dir, &o.name.render(&v), true).map_err(|e| ParseError {
        pos: Some(rec.pos),
        ..ParseError::new(format!("output {}: {e}", oi + 1))
    })?;
    let Some(final_path) = exists::free_name(&base, o.exists, used) else {
        return Err(ParseError {
            pos: Some(rec.pos),
            value: Some(base.display().to_string()),
            ..ParseError::new(format!(
                "output {} exists already, or two groups of records have this name (exists = \"{}\")",
                oi + 1,
                o.exists.as_str()
            ))
        });
    };
    used.insert(&final_path);
    let idx = d.job.outputs.len() as u32 + 1 + groups.len() as u32;
    let temp = out::temp_path(&final_path, d.id, idx);
    groups.push(Target {
        idx,
        final_path: final_path.clone(),
        temp: temp.clone(),
        exists: o.exists,
        member: None,
    });
    Ok((final_path, temp))
}

/// Takes the pieces out of a PDF (and its set's members) into the extract outputs.
fn extract_pieces(
    d: &Delivery<'_>,
    extract_dirs: &[(u32, PathBuf)],
    temps: &mut Temps<'_>,
    named: &mut Named,
) -> Result<(), FileError> {
    let chain = |e: String| {
        let mut err = FileError::new("cannot take the pieces out of the PDF");
        err.chain.push(e);
        err
    };
    let opened = |f: &Found| {
        f.reader()
            .map_err(|e| chain(format!("cannot open {}: {e}", f.path.display())))
    };
    let mut members = Vec::new();
    for c in d.companions {
        members.push((c.found.path.clone(), opened(&c.found)?));
    }
    let pieces =
        extract::pieces_from(d.job, &d.found.path, opened(d.found)?, members).map_err(chain)?;
    let made = extract::write(d.job, d.vars, d.id, extract_dirs, pieces).map_err(chain)?;
    for m in made {
        named.more.push(Target {
            idx: m.idx,
            final_path: m.final_path,
            temp: m.temp,
            exists: m.exists,
            member: None,
        });
        temps.finished.push((m.idx, m.file));
    }
    Ok(())
}

/// Fsyncs every temporary file; returns each output's sha256 and size in the order of
/// the outputs, the rejects file's last. A linked output has the original's (`hash`, `n`).
fn fsync_temporaries(
    targets: &[Target],
    temps: Temps<'_>,
    hash: &str,
    n: u64,
) -> Result<Vec<(String, u64)>, FileError> {
    if let Some(first) = temps.linked.first() {
        // One fsync of the inode makes every link's content durable (each link's name
        // is made durable by the rename and folder fsync of the commit, as a copy's).
        let t = targets
            .iter()
            .find(|t| t.idx == *first)
            .expect("a linked output is a target");
        File::open(&t.temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| {
                FileError::io(format!("cannot fsync output {}", first + 1), &e).at(*first)
            })?;
    }
    let mut all: Vec<(u32, Option<TempOutput>)> = temps
        .finished
        .into_iter()
        .map(|(i, t)| (i, Some(t)))
        .chain(temps.linked.iter().map(|i| (*i, None)))
        .collect();
    all.sort_by_key(|(i, _)| *i);
    let mut sums = Vec::new();
    let mut rejects_sum = None;
    for (i, tmp) in all {
        let Some(tmp) = tmp else {
            sums.push((hash.to_string(), n));
            continue;
        };
        let what = if i == u32::MAX {
            "the rejects file".to_string()
        } else {
            format!("output {}", i + 1)
        };
        let dest = tmp.temp.parent().map(Path::to_path_buf).unwrap_or_default();
        // (The rejects file and split groups have indexes past the outputs': not counted.)
        let sum = tmp
            .finish()
            .map_err(|e| FileError::output_io(format!("cannot fsync {what}"), &dest, &e).at(i))?;
        if i == u32::MAX {
            rejects_sum = Some(sum);
        } else {
            sums.push(sum);
        }
    }
    sums.extend(rejects_sum);
    Ok(sums)
}

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
        == crate::sources::dir::stat_path(temp)
            .ok()
            .filter(|s| s.kind == crate::sources::dir::Kind::File)
            .map(|s| s.id);
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
