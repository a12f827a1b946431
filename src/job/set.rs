//! `[source.set]`: document sets (companion files). A set is the files named by `members`
//! for one `{stem}`, like `12345.xml` + `12345.pdf`. The first member is the *lead*: it
//! is the file the job processes (its `[input]` reads it), it names the set, and the set
//! is taken once every member exists and has settled. The other members travel with it:
//! claimed, planned, archived or failed together.

use std::time::Duration;

use super::toml_reader::{Doc, TableReader, parse_duration};

pub const SET_KEYS: &[&str] = &["members", "timeout"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The text before and after `{stem}`.
    pub prefix: String,
    pub suffix: String,
}

impl Member {
    pub fn name(&self, stem: &str) -> String {
        format!("{}{stem}{}", self.prefix, self.suffix)
    }

    /// The stem when `name` is this member's name for some non-empty stem.
    pub fn stem_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        let s = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        (!s.is_empty()).then_some(s)
    }

    /// A glob taking this member's names.
    pub fn glob(&self) -> String {
        let esc = |s: &str| globset::escape(s);
        format!("{}*{}", esc(&self.prefix), esc(&self.suffix))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// The lead first.
    pub members: Vec<Member>,
    /// An incomplete set whose lead or first member was seen this long ago goes to the
    /// error folder.
    pub timeout: Duration,
}

impl SetSpec {
    /// Which member `name` is, and its stem. When several match (`annex-7.pdf` is both
    /// `annex-{stem}.pdf` and `{stem}.pdf`), the one with the most literal text wins.
    pub fn which<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                m.stem_of(name)
                    .map(|s| (i, s, m.prefix.len() + m.suffix.len()))
            })
            .max_by_key(|&(i, _, lit)| (lit, std::cmp::Reverse(i)))
            .map(|(i, s, _)| (i, s))
    }
}

/// Reads `[source.set]`.
pub fn read(doc: &mut Doc<'_>, mut t: TableReader<'_, '_>) -> Option<SetSpec> {
    let members = t.str_list(doc, "members");
    let timeout = t.str(doc, "timeout");
    let span = t.span.clone();
    t.finish(doc, SET_KEYS);
    let Some(members) = members else {
        doc.error(
            span,
            "source.set.members",
            "missing `members`: the names of a set's files, the lead first, like [\"{stem}.xml\", \"{stem}.pdf\"]",
        );
        return None;
    };
    let mut out = Vec::new();
    for m in &members {
        match m.value.split_once("{stem}") {
            Some((p, s)) if !s.contains("{stem}") && !p.contains(['{', '}', '/']) && !s.contains(['{', '}', '/']) => {
                out.push(Member {
                    prefix: p.to_string(),
                    suffix: s.to_string(),
                })
            }
            _ => doc.error(
                m.span.clone(),
                &m.key,
                format!(
                    "expected a file name with `{{stem}}` once and no other placeholder or `/`, like \"{{stem}}.pdf\", found {:?}",
                    m.value
                ),
            ),
        }
    }
    if out.len() != members.len() {
        return None;
    }
    if out.len() < 2 {
        doc.error(
            span,
            "source.set.members",
            "a set needs at least two members",
        );
        return None;
    }
    for (i, a) in out.iter().enumerate() {
        if out[..i].contains(a) {
            doc.error(
                span.clone(),
                "source.set.members",
                "a member is listed twice",
            );
            return None;
        }
    }
    let timeout = match timeout {
        None => Duration::from_secs(3600),
        Some(s) => match parse_duration(&s.value) {
            Ok(d) => d,
            Err(e) => {
                doc.error(s.span.clone(), &s.key, e);
                return None;
            }
        },
    };
    Some(SetSpec {
        members: out,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_stems() {
        let m = Member {
            prefix: "IDX_".into(),
            suffix: ".xml".into(),
        };
        assert_eq!(m.stem_of("IDX_12345.xml"), Some("12345"));
        assert_eq!(m.stem_of("IDX_.xml"), None);
        assert_eq!(m.stem_of("12345.xml"), None);
        assert_eq!(m.name("9"), "IDX_9.xml");
        assert_eq!(m.glob(), "IDX_*.xml");
        let set = SetSpec {
            members: vec![
                Member {
                    prefix: "".into(),
                    suffix: ".pdf".into(),
                },
                Member {
                    prefix: "annex-".into(),
                    suffix: ".pdf".into(),
                },
            ],
            timeout: Duration::from_secs(1),
        };
        assert_eq!(set.which("7.pdf"), Some((0, "7")));
        assert_eq!(set.which("annex-7.pdf"), Some((1, "7")));
    }
}
