//! Name templates: `{stem}_{date:%Y%m%d}.{ext}` and friends.
//!
//! A template is parsed once, when the job is compiled, into literal text and placeholders,
//! so an unknown placeholder or strftime field is a job-file error and never a runtime one.
//! Rendering produces a *relative path*; [`crate::fsutil::safe_join`] later proves it cannot
//! leave its folder.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local};

/// Every placeholder a name template may use, for error messages and the README.
pub const PLACEHOLDERS: &[&str] = &[
    "name",
    "stem",
    "ext",
    "dir",
    "job",
    "seq",
    "seq:WIDTH",
    "date:FORMAT",
    "mail:FIELD",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Name,
    Stem,
    Ext,
    Dir,
    Job,
    Seq {
        width: usize,
    },
    Date {
        format: String,
    },
    /// A field of the record (only where the job splits its records into several files).
    Field(String),
    /// The message a mailbox attachment came from: `from`, `subject`, `date`,
    /// `message_id` (empty for files that did not come by mail).
    Mail(String),
}

/// Put in a template's allowed list to let it use record fields (`{OrderNo}`,
/// `{field:Order No}`).
pub const FIELDS: &str = "FIELDS";

/// What ends the fixed part of a template (see [`Template::fixed_prefix_for_job`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixedEnd {
    /// Nothing: the template is fixed.
    End,
    /// A `{date:FORMAT}`.
    Date(String),
    /// Any other placeholder.
    Other,
}

/// A parsed name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Where in the template text a problem is, as a byte range, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: std::ops::Range<usize>,
    pub message: String,
}

/// What a template is rendered with: the facts about one file taken by one job.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub name: &'a str,
    /// The file's folder relative to the source folder, `/`-separated, empty at the top.
    pub dir: &'a str,
    pub job: &'a str,
    pub seq: u64,
    pub taken: DateTime<Local>,
    /// The record whose fields `{Field}` placeholders name, when splitting.
    pub record: Option<&'a crate::formats::Record>,
    /// The message of a file taken from a mailbox.
    pub mail: Option<&'a crate::job::mail::MailMeta>,
}

impl Template {
    /// Parses `text`; `allowed` limits which placeholders this template may use
    /// (done-file names may not use `{seq}`, for example).
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Template, Vec<TemplateError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let Some(end) = text[i..].find('}').map(|e| i + e) else {
                        errors.push(TemplateError {
                            at: i..text.len(),
                            message: "`{` opens a placeholder that is never closed; write `{{` for a literal brace".into(),
                        });
                        break;
                    };
                    let inner = &text[i + 1..end];
                    while chars.peek().is_some_and(|p| p.0 <= end) {
                        chars.next();
                    }
                    match parse_placeholder(inner, allowed) {
                        Ok(p) => {
                            if !lit.is_empty() {
                                parts.push(Part::Lit(std::mem::take(&mut lit)));
                            }
                            parts.push(p);
                        }
                        Err(message) => errors.push(TemplateError {
                            at: i..end + 1,
                            message,
                        }),
                    }
                }
                '}' => errors.push(TemplateError {
                    at: i..i + 1,
                    message: "`}` without a matching `{`; write `}}` for a literal brace".into(),
                }),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if errors.is_empty() {
            Ok(Template {
                source: text.to_string(),
                parts,
            })
        } else {
            Err(errors)
        }
    }

    /// The template as written in the job file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses any placeholder at all.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The literal text before the first placeholder: for a folder template, the part of
    /// the path that is the same for every file.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(s)) => s,
            _ => "",
        }
    }

    /// The fixed part of a folder template for one job: the text before the first
    /// placeholder other than `{job}`, with `{job}` rendered; and what ends it.
    pub fn fixed_prefix_for_job(&self, job: &str) -> (String, FixedEnd) {
        let mut prefix = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => prefix.push_str(s),
                Part::Job => prefix.push_str(job),
                Part::Date { format } => return (prefix, FixedEnd::Date(format.clone())),
                _ => return (prefix, FixedEnd::Other),
            }
        }
        (prefix, FixedEnd::End)
    }

    /// A glob that matches every name this template can render: each placeholder becomes
    /// `*`. Done-file templates use it to recognise trigger files.
    pub fn to_glob(&self) -> String {
        let mut g = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => {
                    for c in s.chars() {
                        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
                            g.push('[');
                            g.push(c);
                            g.push(']');
                        } else {
                            g.push(c);
                        }
                    }
                }
                _ if g.ends_with('*') => {}
                _ => g.push('*'),
            }
        }
        g
    }

    /// Renders the template. When `{ext}` is empty, a `.` written right before it is
    /// dropped, so `{stem}.{ext}` of `README` is `README`, not `README.`. Likewise, when
    /// `{dir}` is empty (a file at the top of the source), a `/` written right after it is
    /// dropped, so `{dir}/{name}` of `a.pdf` is `a.pdf`, not the absolute `/a.pdf`.
    pub fn render(&self, v: &Vars<'_>) -> String {
        self.render_as(v, false)
    }

    /// Renders a folder template: like [`Template::render`], and a record field's value
    /// is also made a portable folder name ([`crate::fsutil::portable_component`]), as
    /// output file names are.
    pub fn render_folder(&self, v: &Vars<'_>) -> String {
        self.render_as(v, true)
    }

    fn render_as(&self, v: &Vars<'_>, folder: bool) -> String {
        let (stem, ext) = split_name(v.name);
        let mut out = String::new();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Lit(s) => {
                    let after_empty_dir =
                        i > 0 && matches!(self.parts[i - 1], Part::Dir) && v.dir.is_empty();
                    let s = match s.strip_prefix('/') {
                        Some(rest) if after_empty_dir => rest,
                        _ => s.as_str(),
                    };
                    let next_is_empty_ext =
                        matches!(self.parts.get(i + 1), Some(Part::Ext)) && ext.is_empty();
                    match s.strip_suffix('.') {
                        Some(trimmed) if next_is_empty_ext => out.push_str(trimmed),
                        _ => out.push_str(s),
                    }
                }
                Part::Name => out.push_str(v.name),
                Part::Stem => out.push_str(stem),
                Part::Ext => out.push_str(ext),
                Part::Dir => out.push_str(v.dir),
                Part::Job => out.push_str(v.job),
                Part::Seq { width } => out.push_str(&format!("{:0width$}", v.seq)),
                Part::Date { format } => out.push_str(&v.taken.format(format).to_string()),
                Part::Field(f) => {
                    let value = field_in_name(v.record.and_then(|r| r.get(f)).unwrap_or(""));
                    if folder {
                        out.push_str(&crate::fsutil::fit_component(
                            &crate::fsutil::portable_component(&value),
                        ));
                    } else {
                        out.push_str(&value);
                    }
                }
                Part::Mail(f) => {
                    let value = v.mail.map_or(String::new(), |m| match f.as_str() {
                        "from" => m.from.clone(),
                        "subject" => m.subject.clone(),
                        // The date in a name: the message's own date, 20261123-100000.
                        "date" => chrono::DateTime::parse_from_rfc3339(&m.date)
                            .map(|d| d.format("%Y%m%d-%H%M%S").to_string())
                            .unwrap_or_default(),
                        _ => m.message_id.clone(),
                    });
                    out.push_str(&field_in_name(&value));
                }
            }
        }
        out
    }
}

/// A field value as part of a file name: it comes from the file's content, so it may not
/// add folders or climb out of one: `/`, `\\` and control characters become `_`, and `.`
/// or `..` alone become `_`.
fn field_in_name(value: &str) -> String {
    let v: String = value
        .trim()
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if v.is_empty() || v == "." || v == ".." {
        "_".into()
    } else {
        v
    }
}

impl Template {
    /// The record fields this template names that `record` does not have, or has only
    /// blank: a name made of them would be `_`. Fields in `own` are left out (an extract
    /// output's `{attachment}`, `{page}`, ... come from the piece, not the record).
    pub fn missing_fields(
        &self,
        record: Option<&crate::formats::Record>,
        own: &[&str],
    ) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter(|f| !own.contains(f))
            .filter(|f| {
                record
                    .and_then(|r| r.get(f))
                    .is_none_or(|v| v.trim().is_empty())
            })
            .map(str::to_string)
            .collect()
    }

    /// The record fields this template names.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
}

pub use crate::fsutil::split_name;

fn parse_placeholder(inner: &str, allowed: &[&str]) -> Result<Part, String> {
    let (key, arg) = match inner.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a)),
        None => (inner.trim(), None),
    };
    let part = match (key, arg) {
        ("name", None) => Part::Name,
        ("stem", None) => Part::Stem,
        ("ext", None) => Part::Ext,
        ("dir", None) => Part::Dir,
        ("job", None) => Part::Job,
        ("seq", None) => Part::Seq { width: 0 },
        ("seq", Some(w)) => match w.trim().parse::<usize>() {
            Ok(width) if width <= 20 => Part::Seq { width },
            _ => {
                return Err(format!(
                    "`{{seq:{w}}}`: expected a zero-padding width from 0 to 20, like `{{seq:6}}`"
                ));
            }
        },
        ("date", None) => Part::Date {
            format: "%Y%m%d".into(),
        },
        ("date", Some(f)) => {
            check_strftime(f)?;
            Part::Date { format: f.into() }
        }
        ("name" | "stem" | "ext" | "dir" | "job", Some(_)) => {
            return Err(format!("`{{{key}}}` takes no `:argument`"));
        }
        ("mail", Some(f)) => {
            let f = f.trim();
            if !["from", "subject", "date", "message_id"].contains(&f) {
                return Err(format!(
                    "`{{mail:{f}}}`: expected one of {{mail:from}} {{mail:subject}} {{mail:date}} {{mail:message_id}}"
                ));
            }
            Part::Mail(f.to_string())
        }
        ("field", Some(f)) if allowed.contains(&FIELDS) && !f.trim().is_empty() => {
            return Ok(Part::Field(f.trim().to_string()));
        }
        (k, None)
            if allowed.contains(&FIELDS)
                && !k.is_empty()
                && k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
        {
            return Ok(Part::Field(k.to_string()));
        }
        _ => {
            return Err(format!(
                "unknown placeholder `{{{inner}}}`; expected one of {}",
                allowed
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    };
    let base = key;
    if !allowed.iter().any(|a| a.split(':').next() == Some(base)) {
        return Err(format!(
            "`{{{key}}}` cannot be used here; this name may use {}",
            allowed
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    Ok(part)
}

fn check_strftime(format: &str) -> Result<(), String> {
    if format.is_empty() {
        return Err("`{date:}` has an empty format; write e.g. `{date:%Y-%m-%d}`".into());
    }
    for item in StrftimeItems::new(format) {
        if let Item::Error = item {
            return Err(format!(
                "`{{date:{format}}}` has an unknown strftime field; use fields such as %Y %m %d %H %M %S %j"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vars(name: &str) -> Vars<'_> {
        Vars {
            name,
            dir: "sub/x",
            job: "j",
            seq: 42,
            taken: Local.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap(),
            record: None,
            mail: None,
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse(
            "{dir}/{stem}_{date:%Y%m%d}_{seq:5}_{job}.{ext}|{name}|{{x}}",
            PLACEHOLDERS,
        )
        .unwrap();
        assert_eq!(
            t.render(&vars("a.b.csv")),
            "sub/x/a.b_20260304_00042_j.csv|a.b.csv|{x}"
        );
    }

    #[test]
    fn empty_extension_drops_its_dot() {
        let t = Template::parse("{stem}.{ext}", PLACEHOLDERS).unwrap();
        assert_eq!(t.render(&vars("README")), "README");
        assert_eq!(t.render(&vars(".profile")), ".profile");
    }

    #[test]
    fn empty_dir_drops_its_slash() {
        let t = Template::parse("{dir}/{name}", PLACEHOLDERS).unwrap();
        let top = Vars {
            dir: "",
            ..vars("a.pdf")
        };
        assert_eq!(t.render(&top), "a.pdf");
        assert_eq!(t.render(&vars("a.pdf")), "sub/x/a.pdf");
    }

    #[test]
    fn errors_point_at_the_placeholder() {
        let e = Template::parse("ab{nope}c{date:%Q}", PLACEHOLDERS).unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].at, 2..8);
        assert!(e[0].message.contains("unknown placeholder `{nope}`"));
        assert!(e[1].message.contains("strftime"), "{}", e[1].message);
        assert!(Template::parse("a{stem", PLACEHOLDERS).is_err());
        assert!(Template::parse("a}b", PLACEHOLDERS).is_err());
        assert!(Template::parse("{seq:x}", PLACEHOLDERS).is_err());
    }

    #[test]
    fn globs_of_templates() {
        let g = |t: &str| Template::parse(t, PLACEHOLDERS).unwrap().to_glob();
        assert_eq!(g("{name}.done"), "*.done");
        assert_eq!(g("done_{stem}{ext}"), "done_*");
        assert_eq!(g("a[1]*{name}"), "a[[]1[]][*]*");
    }

    #[test]
    fn record_fields_in_names_are_made_safe() {
        let mut allowed = PLACEHOLDERS.to_vec();
        allowed.push(FIELDS);
        let t = Template::parse("order_{OrderNo}_{field:Cust No}.{ext}", &allowed).unwrap();
        assert_eq!(t.fields(), vec!["OrderNo", "Cust No"]);
        let rec = crate::formats::Record {
            names: vec!["OrderNo".to_string(), "Cust No".to_string()].into(),
            values: vec!["../../etc/x".into(), "..".into()],
            kinds: Vec::new(),
            pos: Default::default(),
        };
        let v = Vars {
            record: Some(&rec),
            mail: None,
            ..vars("a.xml")
        };
        assert_eq!(t.render(&v), "order_.._.._etc_x__.xml");
        assert!(
            Template::parse("{OrderNo}", PLACEHOLDERS).is_err(),
            "fields only where allowed"
        );
    }

    #[test]
    fn record_fields_in_folders_are_portable_folder_names() {
        let mut allowed = PLACEHOLDERS.to_vec();
        allowed.push(FIELDS);
        let t = Template::parse("out/{A}/{B}/{C}/{D}", &allowed).unwrap();
        let rec = crate::formats::Record {
            names: vec!["A".to_string(), "B".into(), "C".into(), "D".into()].into(),
            values: vec!["../..".into(), "CON".into(), "a:b?.".into(), " x/y ".into()],
            kinds: Vec::new(),
            pos: Default::default(),
        };
        let v = Vars {
            record: Some(&rec),
            ..vars("a.pdf")
        };
        assert_eq!(t.render_folder(&v), "out/.._/CON_/a_b_/x_y");
        assert_eq!(t.missing_fields(Some(&rec), &[]), Vec::<String>::new());
        let short = crate::formats::Record {
            names: vec!["A".to_string(), "B".into()].into(),
            values: vec!["1".into(), "  ".into()],
            kinds: Vec::new(),
            pos: Default::default(),
        };
        assert_eq!(t.missing_fields(Some(&short), &["C"]), vec!["B", "D"]);
        assert_eq!(t.missing_fields(None, &[]).len(), 4);
    }

    #[test]
    fn restricted_placeholders() {
        let e = Template::parse("{seq}.done", &["name", "stem", "ext"]).unwrap_err();
        assert!(e[0].message.contains("cannot be used here"));
    }
}
