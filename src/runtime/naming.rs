//! Output folders and names made of what a file says: the fields of its first record (a
//! PDF's captures, an XML's header paths, a CSV's first row), read before the file is
//! claimed, like a document set's index. A split output's name takes its group's record
//! instead, and an extract output's `{attachment}`, `{page}`, ... come from the piece.

use std::collections::BTreeMap;
use std::path::Path;

use crate::formats::Record;
use crate::job::pdf::extract_fields;
use crate::job::{Job, Output};

use super::pipeline;

/// Whether output `o` is written per group of records (`split`).
fn is_split(job: &Job, o: &Output) -> bool {
    job.transform.split.is_some()
        && !matches!(o.data.format, crate::job::data::OutputFormat::Original)
}

/// The placeholders output `o`'s name fills itself, not from the first record.
fn own_fields(o: &Output) -> &'static [&'static str] {
    o.extract.as_ref().map_or(&[], extract_fields)
}

/// Whether any output's folder or name uses a field of the file's first record.
pub fn use_record(job: &Job) -> bool {
    job.outputs.iter().any(|o| {
        let own = own_fields(o);
        !o.folder.fields().is_empty()
            || (!is_split(job, o) && o.name.fields().iter().any(|f| !own.contains(f)))
    })
}

/// Refuses to name output `idx` when its folder or name uses a field that `record` does
/// not have, or has empty: the file fails with the reason instead of landing in `_`.
pub fn check(job: &Job, idx: usize, record: Option<&Record>) -> Result<(), String> {
    let o = &job.outputs[idx];
    let mut problems = Vec::new();
    let mut look = |what: &str, t: &crate::job::template::Template, own: &[&str]| {
        let missing = t.missing_fields(record, own);
        if !missing.is_empty() {
            problems.push(format!(
                "its {what} {:?} needs {}",
                t.as_str(),
                missing
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    look("folder", &o.folder, &[]);
    if !is_split(job, o) {
        look("name", &o.name, own_fields(o));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "output {}: {}, but {}",
        idx + 1,
        problems.join(" and "),
        if record.is_some() {
            "the file's first record has no value for it (a capture that did not match, or a path the document does not have)"
        } else {
            "no record was read from the file"
        }
    ))
}

/// The record output names take fields from: the file's first record as read, with the
/// fields the transform computes from it (those win where both have a name). `file` is
/// the original as opened through its folder's handle, read from its start.
pub fn first_record(
    job: &Job,
    file: std::fs::File,
    meta: BTreeMap<String, String>,
) -> Result<Record, String> {
    let fail = |e: String| format!("cannot read the first record, which names the outputs: {e}");
    let p = pipeline::preview_file(job, file, meta, 1).map_err(|e| fail(e.to_string()))?;
    if let Some(e) = p.error {
        return Err(fail(e.to_string()));
    }
    let Some(read) = p.parsed.into_iter().next() else {
        return Err("the file has no record, and its fields name the outputs".into());
    };
    let t = match p.transformed.into_iter().next() {
        Some(Ok(Some(t))) => t,
        Some(Err(e)) => return Err(fail(e.to_string())),
        // Dropped by the filter: the fields as read still name the outputs.
        _ => return Ok(read),
    };
    let mut names = t.names.to_vec();
    let mut values = t.values;
    for (n, v) in read.fields() {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
            values.push(v.to_string());
        }
    }
    Ok(Record {
        names: names.into(),
        values,
        kinds: Vec::new(),
        pos: read.pos,
    })
}

/// For `ferry test` and a file that is not a set's lead: its first record when the names
/// use it (`Ok(None)` when they do not).
pub fn record_for(
    job: &Job,
    path: &Path,
    name: &str,
    rel_dir: &str,
) -> Result<Option<Record>, String> {
    if !use_record(job) || job.input.is_none() {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    first_record(
        job,
        file,
        meta(job, path, name, rel_dir, chrono::Local::now()),
    )
    .map(Some)
}

/// What expressions see as `meta` for a file.
pub fn meta(
    job: &Job,
    path: &Path,
    name: &str,
    rel_dir: &str,
    taken: chrono::DateTime<chrono::Local>,
) -> BTreeMap<String, String> {
    let (stem, ext) = crate::job::template::split_name(name);
    BTreeMap::from([
        ("name".to_string(), name.to_string()),
        ("stem".to_string(), stem.to_string()),
        ("ext".to_string(), ext.to_string()),
        ("dir".to_string(), rel_dir.to_string()),
        ("job".to_string(), job.name.clone()),
        ("source".to_string(), path.to_string_lossy().into_owned()),
        ("received".to_string(), taken.to_rfc3339()),
    ])
}
