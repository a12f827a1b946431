//! `combine = true` on an `[[output]]` (issue 14): a scheduled run's records in one output.
//!
//! What a combined output may be is checked here, when the job is read, so that `ferry
//! check` names every mistake at its line and column (docs/schedules.md, "Combined runs"):
//!
//! - only on a scheduled job (`schedule` or `every`): an event job has no batch;
//! - only with records (an `[input]` and a record `format`): bytes cannot be merged;
//! - not with `split`, `extract` or `member`: those make several files of one;
//! - its `folder` and `name` use only what a batch has: `{job}`, `{seq}`, `{date:...}`
//!   (not the original's `{name}`, `{stem}`, `{ext}`, `{dir}`, nor a record's fields), and
//!   a `name` is required (the default name is the original's stem);
//! - every `[[output]]` of the job combines, or none does: the originals are disposed of
//!   once, after the batch's outputs are committed, so a job cannot also dispose of each
//!   file after its own outputs.

use std::ops::Range;

use super::template::Template;
use super::toml_reader::{Doc, Str, TableReader};

/// The placeholders a combined output's `folder` and `name` may use.
pub const BATCH_PLACEHOLDERS: &[&str] = &["job", "seq", "seq:WIDTH", "date:FORMAT"];

impl super::Job {
    /// Whether a run's records go into one output (`combine = true`).
    pub fn combines(&self) -> bool {
        self.outputs.iter().any(|o| o.combine)
    }
}

/// What an output's reader knows about its job for `combine`.
pub(super) struct JobFacts {
    pub scheduled: bool,
    pub has_input: bool,
    pub split: bool,
}

/// Reads `combine` of one `[[output]]`: `Some(true)` when it combines, `None` after an
/// error was reported.
/// `records`: the output writes records (a format other than `original`), or its format
/// was already reported as wrong.
pub(super) fn read(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    job: &JobFacts,
    records: bool,
) -> Option<bool> {
    let span = t.span_of("combine");
    let key = format!("{}.combine", t.path);
    let on = t.bool(doc, "combine");
    if on != Some(true) {
        return if t.has("combine") && on.is_none() {
            None
        } else {
            Some(false)
        };
    }
    let mut ok = true;
    let mut no = |doc: &mut Doc<'_>, message: &str| {
        doc.error(span.clone(), &key, message);
        ok = false;
    };
    if !job.scheduled {
        no(
            doc,
            "`combine` puts a run's records in one output: the job needs `schedule` or `every` in `[source]`",
        );
    }
    if !job.has_input {
        no(
            doc,
            "`combine` merges records: the job needs an `[input]` and the output a record `format`",
        );
    }
    if job.split {
        no(
            doc,
            "`combine` makes one output of a run; remove `split` from `[transform]`",
        );
    }
    for other in ["extract", "member"] {
        if t.has(other) {
            no(
                doc,
                &format!("`combine` makes one output of a run's records; remove `{other}`"),
            );
        }
    }
    if job.has_input && !records {
        no(
            doc,
            "`combine` merges records: give the output a record `format` (csv, json, xml, fixed, text)",
        );
    }
    if !t.has("name") {
        no(
            doc,
            "a combined output needs a `name` of its own, e.g. `name = \"sales_{date:%Y%m%d}.csv\"` (the default is the original's name)",
        );
    }
    ok.then_some(true)
}

/// Checks that a combined output's `folder` or `name` uses only a batch's placeholders.
pub(super) fn check_template(doc: &mut Doc<'_>, s: &Str) -> bool {
    match Template::parse(&s.value, BATCH_PLACEHOLDERS) {
        Ok(_) => true,
        Err(errors) => {
            for e in errors {
                doc.error_in_str(
                    s,
                    e.at,
                    format!(
                        "{}; a combined output is made for a whole run, so only {{job}}, {{seq}} and {{date:...}} can be used",
                        e.message
                    ),
                );
            }
            false
        }
    }
}

/// Every output of a job combines, or none does.
pub(super) fn check_all_or_none(doc: &mut Doc<'_>, outputs: &[(bool, Range<usize>)]) -> bool {
    let combined = outputs.iter().filter(|(on, _)| *on).count();
    if combined == 0 || combined == outputs.len() {
        return true;
    }
    for (i, (on, span)) in outputs.iter().enumerate() {
        if !on {
            doc.error(
                span.clone(),
                &format!("output[{}].combine", i + 1),
                "another output of this job has `combine = true`: every output combines or none does (the originals are disposed of once, after the run's outputs)",
            );
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(src: &str) -> Vec<String> {
        match super::super::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), src) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    const SCHEDULED: &str =
        "[source]\nfolder = \"in\"\nschedule = \"0 23 * * *\"\n[input]\nformat = \"csv\"\n";

    #[test]
    fn a_scheduled_record_job_combines() {
        let src = format!(
            "{SCHEDULED}[[output]]\nfolder = \"out/{{date:%Y}}\"\nname = \"sales_{{date:%Y%m%d}}_{{seq}}.csv\"\nformat = \"csv\"\ncombine = true\n"
        );
        let job =
            super::super::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), &src).unwrap();
        assert!(job.outputs[0].combine);
        let src = format!("{SCHEDULED}[[output]]\nfolder = \"out\"\nformat = \"csv\"\n");
        let job =
            super::super::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), &src).unwrap();
        assert!(!job.outputs[0].combine);
    }

    #[test]
    fn combine_on_an_event_job_is_an_error_at_the_key() {
        let src = "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\nname = \"all.csv\"\nformat = \"csv\"\ncombine = true\n";
        let e = errors(src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("jobs/t.toml:9:11: output[1].combine: `combine` puts a run's records in one output: the job needs `schedule` or `every`"),
            "{e:?}"
        );
    }

    #[test]
    fn what_a_combined_output_cannot_be_is_reported() {
        // Bytes only, no name of its own.
        let src = "[source]\nfolder = \"in\"\nevery = \"3h\"\n[[output]]\nfolder = \"out\"\ncombine = true\n";
        let e = errors(src);
        assert!(
            e.iter().any(|e| e.contains("the job needs an `[input]`")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.contains("needs a `name` of its own")),
            "{e:?}"
        );
        // The original's name in a combined output's name.
        let src = format!(
            "{SCHEDULED}[[output]]\nfolder = \"out\"\nname = \"{{stem}}.csv\"\nformat = \"csv\"\ncombine = true\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("jobs/t.toml:8:9: output[1].name: ")
                && e[0].contains("only {job}, {seq} and {date:...}"),
            "{e:?}"
        );
        // `format = "original"`.
        let src = format!(
            "{SCHEDULED}[[output]]\nfolder = \"out\"\nname = \"a.csv\"\nformat = \"original\"\ncombine = true\n"
        );
        let e = errors(&src);
        assert!(
            e.iter()
                .any(|e| e.contains("give the output a record `format`")),
            "{e:?}"
        );
        // Not a boolean.
        let src = format!(
            "{SCHEDULED}[[output]]\nfolder = \"out\"\nname = \"a.csv\"\nformat = \"csv\"\ncombine = \"yes\"\n"
        );
        let e = errors(&src);
        assert!(
            e.iter()
                .any(|e| e.contains("output[1].combine: expected true or false")),
            "{e:?}"
        );
    }

    #[test]
    fn every_output_combines_or_none_does() {
        let src = format!(
            "{SCHEDULED}[[output]]\nfolder = \"out\"\nname = \"a.csv\"\nformat = \"csv\"\ncombine = true\n[[output]]\nfolder = \"each\"\nformat = \"csv\"\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("jobs/t.toml:11:1: output[2].combine: another output of this job has `combine = true`"),
            "{e:?}"
        );
    }
}
