//! Outputs with `extract`: pieces taken out of a PDF (embedded files, page ranges), one
//! output file each. Like split outputs, their number and names are known only once the
//! PDF is read, so the claim records their folders' temporary-file pattern and recovery
//! removes what matches; each piece is written under a temporary name, fsynced with the
//! others, and renamed only after the plan is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::formats::Record;
use crate::formats::pdf::{self, PdfLimits};
use crate::fsutil;
use crate::job::pdf::Extract;
use crate::job::template::Vars;
use crate::job::{Exists, Job};
use crate::outputs::folder::{self as out, TempOutput};

/// Output indexes of extracted pieces start here, above record outputs and split groups.
pub const FIRST_PIECE_IDX: u32 = 1_000_000;

/// One piece: which output, the fields its name may use, its bytes.
pub struct Piece {
    pub output: u32,
    pub fields: Vec<(&'static str, String)>,
    pub data: Vec<u8>,
}

/// A piece written under its temporary name.
pub struct Made {
    pub idx: u32,
    pub final_path: PathBuf,
    pub temp: PathBuf,
    pub exists: Exists,
    pub file: TempOutput,
}

/// Cuts the pieces every extract output of `job` wants out of the PDF at `path`, within
/// the job's limits (guarded: a panic or a hang of the parser is an error, not a crash).
/// `members` are the other PDFs of a document set, for `extract = "merge"`.
pub fn pieces(job: &Job, path: &Path, members: &[PathBuf]) -> Result<Vec<Piece>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let opened = members
        .iter()
        .map(|m| {
            std::fs::File::open(m)
                .map(|f| (m.clone(), f))
                .map_err(|e| format!("cannot open {}: {e}", m.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    pieces_from(job, path, f, opened)
}

/// [`pieces`] of files already open (originals, through their checked handles); the
/// paths only name them.
pub fn pieces_from(
    job: &Job,
    path: &Path,
    mut f: std::fs::File,
    members: Vec<(PathBuf, std::fs::File)>,
) -> Result<Vec<Piece>, String> {
    let is_pdf = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    pdf::check_file(&f, &job.pdf)?;
    let bytes = pdf::read_limited(&mut f, &job.pdf)?;
    let mut others = Vec::new();
    if job
        .outputs
        .iter()
        .any(|o| matches!(o.extract, Some(Extract::Merge)))
    {
        // A merge holds every part in memory: together they are bounded like one PDF.
        let mut total = if is_pdf(path) { bytes.len() as u64 } else { 0 };
        for (_, mut f) in members.into_iter().filter(|(m, _)| is_pdf(m)) {
            pdf::check_file(&f, &job.pdf)?;
            total += f.metadata().map_or(0, |md| md.len());
            if total > job.pdf.max_size {
                return Err(format!(
                    "the set's PDFs together are larger than [pdf] max_size ({} bytes): a merge holds them all in memory",
                    job.pdf.max_size
                ));
            }
            others.push(pdf::read_limited(&mut f, &job.pdf)?);
        }
    }
    // The lead is part of a merge only when it is a PDF itself (not an XML index), and
    // never when it is a manifest: its files are the merge.
    let is_manifest = job
        .source
        .set
        .as_ref()
        .is_some_and(|s| s.manifest.is_some());
    let lead_in_merge = !is_manifest && (is_pdf(path) || others.is_empty());
    let wanted: Vec<(u32, Extract)> = job
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.extract.clone().map(|e| (i as u32, e)))
        .collect();
    let limits: PdfLimits = job.pdf;
    pdf::guarded(limits.timeout, move || {
        let needs_lead = lead_in_merge || wanted.iter().any(|(_, e)| !matches!(e, Extract::Merge));
        let doc = if needs_lead {
            Some(pdf::load(&bytes, &limits)?)
        } else {
            None
        };
        let mut merged = Vec::new();
        if lead_in_merge && let Some(d) = &doc {
            merged.push(d.clone());
        }
        for b in &others {
            merged.push(pdf::load(b, &limits)?);
        }
        cut(doc.as_ref(), merged, &limits, &wanted)
    })
}

/// The pieces of one loaded document.
pub fn cut(
    doc: Option<&lopdf::Document>,
    merged: Vec<lopdf::Document>,
    limits: &PdfLimits,
    wanted: &[(u32, Extract)],
) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut attachments = None;
    for (idx, e) in wanted {
        match e {
            Extract::Attachments {
                include,
                patterns,
                required,
            } => {
                let doc = doc.ok_or("the file is not a PDF")?;
                if attachments.is_none() {
                    attachments = Some(pdf::attachments(doc, limits)?);
                }
                let all = attachments.as_ref().expect("just read");
                let before = out.len();
                for a in all {
                    if include.as_ref().is_none_or(|g| g.is_match(&a.name)) {
                        out.push(Piece {
                            output: *idx,
                            fields: vec![("attachment", a.name.clone())],
                            data: a.data.clone(),
                        });
                    }
                }
                if *required && out.len() == before {
                    let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
                    return Err(format!(
                        "output {}: the PDF has no embedded file{} (it has {}); set `required = false` on the output if that is fine",
                        idx + 1,
                        if patterns.is_empty() {
                            String::new()
                        } else {
                            format!(" matching {}", patterns.join(", "))
                        },
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ));
                }
            }
            Extract::Pages(how) => {
                let doc = doc.ok_or("the file is not a PDF")?;
                for (n, part) in pdf::split(doc, how)?.into_iter().enumerate() {
                    out.push(Piece {
                        output: *idx,
                        fields: vec![
                            ("page", part.first.to_string()),
                            ("last_page", part.last.to_string()),
                            ("part", (n + 1).to_string()),
                        ],
                        data: part.data,
                    });
                }
            }
            Extract::Merge => {
                let docs = merged.clone();
                if docs.is_empty() {
                    return Err(
                        "nothing to merge: the set has no PDF (files whose name ends in .pdf)"
                            .into(),
                    );
                }
                let data = pdf::merge(docs)?;
                out.push(Piece {
                    output: *idx,
                    fields: Vec::new(),
                    data,
                });
            }
        }
    }
    Ok(out)
}

/// The name piece `p` gets in its output's folder (before the `exists` policy).
pub fn name_of(
    job: &Job,
    vars: &Vars<'_>,
    dirs: &[(u32, PathBuf)],
    p: &Piece,
) -> Result<PathBuf, String> {
    let o = &job.outputs[p.output as usize];
    let dir = &dirs
        .iter()
        .find(|(i, _)| *i == p.output)
        .ok_or("an extract output has no folder")?
        .1;
    // The piece's own fields, then the file's first record's (names made of what the
    // file says).
    let mut names: Vec<String> = p.fields.iter().map(|(k, _)| k.to_string()).collect();
    let mut values: Vec<String> = p.fields.iter().map(|(_, v)| v.clone()).collect();
    for (n, v) in vars.record.iter().flat_map(|r| r.fields()) {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
            values.push(v.to_string());
        }
    }
    let rec = Record {
        names: Arc::from(names),
        values,
        kinds: Vec::new(),
        pos: Default::default(),
    };
    let v = Vars {
        record: Some(&rec),
        ..vars.clone()
    };
    let name = o.name.render(&v);
    fsutil::safe_join(dir, &name, true).map_err(|e| format!("output {}: {e}", p.output + 1))
}

/// Names every piece (with its output's `exists` policy) and writes it under a temporary
/// name in `dirs` (each extract output's folder). `first_idx` numbers them.
pub fn write(
    job: &Job,
    vars: &Vars<'_>,
    id: i64,
    dirs: &[(u32, PathBuf)],
    pieces: Vec<Piece>,
) -> Result<Vec<Made>, String> {
    let mut made: Vec<Made> = Vec::new();
    let mut used = super::deliver::UsedNames::default();
    let result = (|| {
        for p in pieces {
            let o = &job.outputs[p.output as usize];
            let base = name_of(job, vars, dirs, &p)?;
            let Some(final_path) = super::deliver::free_name(&base, o.exists, &used) else {
                return Err(format!(
                    "output {}: {} exists already, or two pieces have this name (exists = \"{}\")",
                    p.output + 1,
                    base.display(),
                    o.exists.as_str()
                ));
            };
            used.insert(&final_path);
            let idx = FIRST_PIECE_IDX + made.len() as u32;
            let temp = out::temp_path(&final_path, id, idx);
            let mut file = TempOutput::create(&temp)
                .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
            file.write_all(&p.data)
                .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
            made.push(Made {
                idx,
                final_path,
                temp,
                exists: o.exists,
                file,
            });
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(made),
        Err(e) => {
            for m in made {
                drop(m.file);
                let _ = std::fs::remove_file(&m.temp);
            }
            Err(e)
        }
    }
}
