//! Configuration of a job's `[expect]`: every file the job delivers expects an answer,
//! which arrives through another job (`from`) within `within` (two-way exchanges; the
//! tracking itself: `crate::runtime::expect`, decisions: docs/expect.md).

use std::ops::Range;
use std::time::Duration;

use super::plumbing::At;
use super::template::{FIELDS, Template};
use super::toml_reader::{Diag, Doc, Str, TableReader, parse_duration};

/// How an answer is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The answer's file name is this pattern rendered for the request (`{stem}.ack`,
    /// `ORDRSP_{OrderNo}.xml`: one expected name per distinct value of the fields it names).
    Name(Template),
    /// A record of the answer has this field with the value a record of the request has
    /// (one expectation per distinct value in the request).
    Field(String),
}

/// A job's `[expect]`.
#[derive(Debug, Clone)]
pub struct Expect {
    pub answer: Match,
    pub within: Duration,
    /// The job whose files are the answers.
    pub from: String,
    /// Where `from` is written, for the check across jobs.
    pub from_at: At,
    /// Where `field` is written (the check that `from` reads records).
    pub field_at: Option<At>,
}

impl PartialEq for Expect {
    fn eq(&self, other: &Self) -> bool {
        self.answer == other.answer && self.within == other.within && self.from == other.from
    }
}

impl Expect {
    /// The record fields the request's records must give: `field`, or those the pattern names.
    pub fn request_fields(&self) -> Vec<String> {
        match &self.answer {
            Match::Name(t) => {
                let mut f: Vec<String> = Vec::new();
                for name in t.fields() {
                    if !f.iter().any(|x| x == name) {
                        f.push(name.to_string());
                    }
                }
                f
            }
            Match::Field(f) => vec![f.clone()],
        }
    }
}

/// The placeholders an `answer` pattern may use: the request's names, and its record fields.
const ANSWER_PLACEHOLDERS: &[&str] = &[
    "name",
    "stem",
    "ext",
    "job",
    "seq",
    "seq:WIDTH",
    "date:FORMAT",
    FIELDS,
];

/// Reads `[expect]` (`answer` or `field`, `within`, `from`). `has_input`: the job reads
/// records (needed for `field` and for fields in `answer`).
pub fn read(doc: &mut Doc<'_>, mut t: TableReader<'_, '_>, has_input: bool) -> Option<Expect> {
    let answer_s = t.str(doc, "answer");
    let field_s = t.str(doc, "field");
    let within_s = t.str(doc, "within");
    let from_s = t.str(doc, "from");
    let table_span = t.span.clone();
    t.finish_as(doc, "expect", "");
    let answer = read_answer(doc, (answer_s, field_s.clone()), &table_span, has_input);
    let within = read_within(doc, within_s, &table_span);
    let from = read_from(doc, from_s, table_span)?;
    let field_at = field_s.map(|f| At::new(doc, f.span.clone(), &f.key));
    Some(Expect {
        answer: answer?,
        within: within?,
        from: from.value.trim().to_string(),
        from_at: At::new(doc, from.span.clone(), &from.key),
        field_at,
    })
}

/// How an answer is recognised: by the name pattern `answer`, or by the record field
/// `field` (one of the two).
fn read_answer(
    doc: &mut Doc<'_>,
    (answer, field): (Option<Str>, Option<Str>),
    table_span: &Range<usize>,
    has_input: bool,
) -> Option<Match> {
    match (answer, field) {
        (Some(a), None) => answer_pattern(doc, &a, has_input).map(Match::Name),
        (None, Some(f)) => answer_field(doc, &f, has_input).map(Match::Field),
        (Some(a), Some(_)) => {
            doc.error(
                a.span.clone(),
                "expect",
                "expected one of `answer` (a name pattern) or `field` (a field of the records), found both",
            );
            None
        }
        (None, None) => {
            doc.error(
                table_span.clone(),
                "expect",
                "expected `answer = \"{stem}.ack\"` (the answer's name) or `field = \"OrderNo\"` (a field the answer's records share with this file's)",
            );
            None
        }
    }
}

/// `answer`: the answer's file name (no folders), record fields only when the job reads
/// records.
fn answer_pattern(doc: &mut Doc<'_>, a: &Str, has_input: bool) -> Option<Template> {
    let tpl = super::template(doc, a, ANSWER_PLACEHOLDERS)?;
    if !tpl.fields().is_empty() && !has_input {
        doc.error(
            a.span.clone(),
            &a.key,
            format!(
                "the pattern names record fields ({}), but the job reads no records: add an `[input]`, or match by the request's name only (`{{stem}}`)",
                tpl.fields().join(", ")
            ),
        );
        return None;
    }
    if tpl.as_str().contains('/') || tpl.as_str().contains('\\') {
        doc.error(
            a.span.clone(),
            &a.key,
            "expected a file name pattern without folders (the answer's name is compared, not its path)",
        );
        return None;
    }
    Some(tpl)
}

/// `field`: a field the answer's records share with the request's, so the job must read
/// records.
fn answer_field(doc: &mut Doc<'_>, f: &Str, has_input: bool) -> Option<String> {
    if f.value.trim().is_empty() {
        doc.error(f.span.clone(), &f.key, "expected a field name, found \"\"");
        None
    } else if !has_input {
        doc.error(
            f.span.clone(),
            &f.key,
            "the job reads no records, so its files have no fields: add an `[input]`, or match by name with `answer = \"{stem}.ack\"`",
        );
        None
    } else {
        Some(f.value.trim().to_string())
    }
}

/// `within` (required): how long an answer may take, more than 0.
fn read_within(
    doc: &mut Doc<'_>,
    within: Option<Str>,
    table_span: &Range<usize>,
) -> Option<Duration> {
    let Some(s) = within else {
        doc.error(
            table_span.clone(),
            "expect.within",
            "missing `within`: how long an answer may take, like `within = \"4h\"`",
        );
        return None;
    };
    match parse_duration(&s.value) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "expected a duration longer than 0, like \"4h\", found {:?}",
                    s.value
                ),
            );
            None
        }
        Err(e) => {
            doc.error(s.span.clone(), &s.key, e);
            None
        }
    }
}

/// `from` (required): the job whose files are the answers (checked across jobs later).
fn read_from(doc: &mut Doc<'_>, from: Option<Str>, table_span: Range<usize>) -> Option<Str> {
    match from {
        None => {
            doc.error(
                table_span,
                "expect.from",
                "missing `from`: the name of the job whose files are the answers, like `from = \"confirmations\"`",
            );
            None
        }
        Some(s) if s.value.trim().is_empty() => {
            doc.error(s.span.clone(), &s.key, "expected a job name, found \"\"");
            None
        }
        Some(s) => Some(s),
    }
}

/// What the check across jobs needs to know of every job file.
pub struct JobFacts<'a> {
    pub name: &'a str,
    /// `None`: the job file has errors of its own.
    pub job: Option<&'a super::Job>,
}

/// Checks every valid job's `[expect]` against the other job files: `from` must name
/// another job file of the folder, and a `field` match needs `from` to read records.
/// Returns the problems, each at its key, by the name of the job it belongs to.
pub fn check_across(jobs: &[JobFacts<'_>]) -> Vec<(String, Diag)> {
    let mut out = Vec::new();
    for j in jobs {
        let Some(job) = j.job else { continue };
        let Some(e) = &job.expect else { continue };
        if let Some((at, message)) = problem_across(jobs, job, e) {
            let diag = Diag {
                file: job.file.clone(),
                line: at.line,
                col: at.col,
                key: at.key.clone(),
                message,
            };
            out.push((job.name.clone(), diag));
        }
    }
    out
}

/// The first problem of `job`'s `[expect]` (`e`) against the other jobs, if any: where it
/// is and what it is.
fn problem_across<'e>(
    jobs: &[JobFacts<'_>],
    job: &super::Job,
    e: &'e Expect,
) -> Option<(&'e At, String)> {
    if e.from == job.name {
        return Some((
            &e.from_at,
            "expected another job: a job cannot answer its own files".into(),
        ));
    }
    if job.combines() {
        return Some((
            &e.from_at,
            "a job with `combine = true` cannot expect answers (its files leave as one output per run, not one request per file): remove `[expect]` or `combine`".into(),
        ));
    }
    let Some(other) = jobs.iter().find(|o| o.name == e.from) else {
        return Some((&e.from_at, no_such_job(jobs, job, e)));
    };
    if other.job.is_some_and(super::Job::combines) {
        return Some((
            &e.from_at,
            format!(
                "the answers' job `{}` has `combine = true`: its files are not taken one by one, so they cannot be linked to requests",
                e.from
            ),
        ));
    }
    if let (Match::Field(f), Some(answers)) = (&e.answer, other.job)
        && answers.input.is_none()
    {
        let at = e.field_at.as_ref().unwrap_or(&e.from_at);
        return Some((
            at,
            format!(
                "the answers' job `{}` reads no records, so `{f}` cannot be read from its files: give it an `[input]`, or match by name with `answer`",
                e.from
            ),
        ));
    }
    None
}

/// `from` names no job of the folder: the message, with the closest other job's name as
/// a hint.
fn no_such_job(jobs: &[JobFacts<'_>], job: &super::Job, e: &Expect) -> String {
    let names: Vec<&str> = jobs
        .iter()
        .map(|o| o.name)
        .filter(|n| *n != job.name)
        .collect();
    let hint = names
        .iter()
        .filter(|n| strsim::levenshtein(n, &e.from) <= 2)
        .min_by_key(|n| strsim::levenshtein(n, &e.from))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!(
        "no job named `{}` in this jobs folder{hint}; `from` names the job whose files are the answers (its file's name without .toml)",
        e.from
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn compile(expect: &str) -> Result<Expect, Vec<String>> {
        let src = format!(
            "[source]\nfolder = \"in\"\n[input]\nformat = \"csv\"\n[[output]]\nfolder = \"out\"\n{expect}"
        );
        crate::job::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), &src)
            .map(|j| j.expect.expect("an [expect]"))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn expect_keys_are_read_and_a_pattern_names_each_field_once() {
        let e = compile(
            "[expect]\nanswer = \"ORDRSP_{OrderNo}_{Customer}_{OrderNo}.xml\"\nwithin = \"90m\"\nfrom = \"back\"\n",
        )
        .unwrap();
        assert_eq!(e.request_fields(), ["OrderNo", "Customer"]);
        assert_eq!(e.within, Duration::from_secs(5400));
        assert_eq!(e.from, "back");
        let e =
            compile("[expect]\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"back\"\n").unwrap();
        assert_eq!(e.answer, Match::Field("OrderNo".into()));
        assert_eq!(e.request_fields(), ["OrderNo"]);
    }

    #[test]
    fn bad_expect_keys_are_reported_at_their_position() {
        let errs =
            compile("[expect]\nanswer = \"{dir}/{stem}.ack\"\nwithin = \"0\"\nfrom = \"\"\n")
                .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("jobs/t.toml:8:11: expect.answer: `{dir}` cannot be used here")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                == "jobs/t.toml:9:10: expect.within: expected a duration longer than 0, like \"4h\", found \"0\""),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "jobs/t.toml:10:8: expect.from: expected a job name, found \"\""),
            "{errs:?}"
        );
        let src = "[source]\nfolder = \"in\"\n[[output]]\nfolder = \"out\"\n[expect]\nfield = \"OrderNo\"\nwithin = \"4h\"\nfrom = \"back\"\n";
        let errs = crate::job::compile(Path::new("jobs/t.toml"), Path::new("/srv/ferry"), src)
            .unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("jobs/t.toml:6:9: expect.field: the job reads no records"),
            "{errs:?}"
        );
    }
}
