//! Load-time checks of expressions and templates for what minijinja only finds when it
//! evaluates them: the names of filters, tests and functions. minijinja resolves those at
//! run time, so `Item | uper` compiles and then fails every record; a job loader calls
//! [`unknown_names`] so that `ferry check` reports it at its line and column instead.
//!
//! Theory of operation: a small scanner walks the tokens of the expression (or of each
//! `{{ }}` and `{% %}` block of a template), skipping string literals, and takes the name
//! after `|` as a filter, the name after `is` (or `is not`) as a test, and a name before
//! `(` that is not an attribute (`.name(`) as a function. Each is looked up by asking the
//! environment itself (a probe expression), so every built-in and every added filter is
//! known without a list. In templates, names the template defines (`macro`, `set`, `for`,
//! `import ... as`) are not functions to look up.

use std::ops::Range;

use minijinja::{Environment, ErrorKind};

/// Filters and functions a misspelling is compared with, for a "did you mean" hint; only
/// those the environment really has are suggested.
const KNOWN: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "date",
    "decimal",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lookup",
    "lower",
    "map",
    "max",
    "min",
    "num",
    "pprint",
    "range",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "defined",
    "undefined",
    "none",
    "number",
    "odd",
    "even",
    "divisibleby",
    "startingwith",
    "endingwith",
    "dict",
    "namespace",
];

/// Words that come before `(` without naming a function.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "elif",
    "for",
    "recursive",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
    "with",
    "set",
    "macro",
    "call",
    "filter",
    "import",
    "from",
    "as",
    "include",
    "extends",
    "block",
    "autoescape",
    "endif",
    "endfor",
];

#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Name(&'a str, Range<usize>),
    Punct(u8),
    Other,
}

/// The tokens of `src[range]`, with ranges in `src`.
fn tokens(src: &str, range: Range<usize>) -> Vec<Tok<'_>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < range.end && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < range.end && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(&src[start..i], start..i));
        } else if c.is_ascii_digit() {
            while i < range.end && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            out.push(if c.is_ascii() {
                Tok::Punct(c)
            } else {
                Tok::Other
            });
            i += src[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// What a name is used as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Use {
    Filter,
    Test,
    Function,
}

/// The filters, tests and functions `toks` use, and the names they define.
fn uses<'a>(toks: &[Tok<'a>], defined: &mut Vec<&'a str>) -> Vec<(Use, &'a str, Range<usize>)> {
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Name(name, range) = t else { continue };
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        let prev_name = |n: &str| matches!(prev, Some(Tok::Name(p, _)) if *p == n);
        if prev_name("macro") || prev_name("as") || prev_name("set") || prev_name("for") {
            defined.push(name);
            continue;
        }
        let used = match prev {
            Some(Tok::Punct(b'|')) => Some(Use::Filter),
            Some(Tok::Name("filter", _)) if i == 1 => Some(Use::Filter),
            Some(Tok::Name("is", _)) if *name != "not" => Some(Use::Test),
            Some(Tok::Name("not", _)) if i >= 2 && matches!(toks[i - 2], Tok::Name("is", _)) => {
                Some(Use::Test)
            }
            Some(Tok::Punct(b'.')) => None,
            _ if toks.get(i + 1) == Some(&Tok::Punct(b'(')) && !KEYWORDS.contains(name) => {
                Some(Use::Function)
            }
            _ => None,
        };
        if let Some(u) = used {
            out.push((u, *name, range.clone()));
        }
    }
    out
}

/// Whether `env` has a filter, test or function of this name.
fn known(env: &Environment<'_>, used: Use, name: &str) -> bool {
    let (probe, missing) = match used {
        Use::Filter => (format!("x | {name}"), ErrorKind::UnknownFilter),
        Use::Test => (format!("x is {name}"), ErrorKind::UnknownTest),
        Use::Function => (name.to_string(), ErrorKind::UndefinedError),
    };
    let Ok(e) = env.compile_expression(&probe) else {
        return true;
    };
    match e.eval(minijinja::context! { x => "" }) {
        Ok(v) => !v.is_undefined(),
        Err(e) => e.kind() != missing,
    }
}

/// The closest name the environment has, if one is close enough to be a misspelling.
fn suggestion(env: &Environment<'_>, used: Use, name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .map(|k| (strsim::osa_distance(k, name), *k))
        .filter(|(d, k)| *d <= if name.len() <= 4 { 1 } else { 2 } && known(env, used, k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The unknown filters, tests and functions of an expression (`template = false`) or a
/// template: each with its byte range in `src` and a message.
pub fn unknown_names(
    env: &Environment<'_>,
    src: &str,
    template: bool,
) -> Vec<(Range<usize>, String)> {
    let mut blocks = Vec::new();
    if template {
        blocks = template_blocks(src);
    } else {
        blocks.push(0..src.len());
    }
    let mut defined = Vec::new();
    let mut all = Vec::new();
    for b in blocks {
        all.extend(uses(&tokens(src, b), &mut defined));
    }
    const OWN: &[&str] = &["caller", "super", "self", "loop", "varargs", "kwargs"];
    all.into_iter()
        .filter(|(u, name, _)| {
            !(*u == Use::Function && (defined.contains(name) || OWN.contains(name)))
        })
        .filter(|(u, name, _)| !known(env, *u, name))
        .map(|(u, name, range)| {
            let what = match u {
                Use::Filter => "filter",
                Use::Test => "test",
                Use::Function => "function",
            };
            let hint = suggestion(env, u, name)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            (range, format!("unknown {what} `{name}`{hint}"))
        })
        .collect()
}

/// Whether the expression's last step is the filter `name` (`... | decimal(2)`): a `|` outside
/// any brackets, then the name, then at most its arguments.
pub fn ends_with_filter(src: &str, name: &str) -> bool {
    let toks = tokens(src, 0..src.len());
    let mut depth = 0i32;
    let mut last_pipe = None;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct(b'(' | b'[' | b'{') => depth += 1,
            Tok::Punct(b')' | b']' | b'}') => depth -= 1,
            Tok::Punct(b'|') if depth == 0 => last_pipe = Some(i),
            _ => {}
        }
    }
    let Some(p) = last_pipe else { return false };
    if !matches!(toks.get(p + 1), Some(Tok::Name(n, _)) if *n == name) {
        return false;
    }
    match toks.get(p + 2) {
        None => true,
        // Its arguments: the brackets that open here close at the very end.
        Some(Tok::Punct(b'(')) => {
            let mut depth = 0i32;
            for (i, t) in toks.iter().enumerate().skip(p + 2) {
                match t {
                    Tok::Punct(b'(' | b'[' | b'{') => depth += 1,
                    Tok::Punct(b')' | b']' | b'}') => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    return i == toks.len() - 1;
                }
            }
            false
        }
        Some(_) => false,
    }
}

/// The insides of a template's `{{ }}` and `{% %}` blocks.
fn template_blocks(src: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = src[at..].find('{').map(|o| at + o) {
        let close = match src.as_bytes().get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let start = open + 2;
        let end = src[start..].find(close).map_or(src.len(), |e| start + e);
        if close != "#}" {
            out.push(start..end);
        }
        at = (end + 2).min(src.len());
        // What `{% raw %}` holds is text, not blocks.
        if close == "%}"
            && src[start..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
                == "raw"
        {
            at = src[at..].find("endraw").map_or(src.len(), |e| at + e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, template: bool) -> Vec<String> {
        let env = crate::transform::environment(&Default::default());
        unknown_names(&env, src, template)
            .into_iter()
            .map(|(r, m)| format!("{}: {m}", &src[r]))
            .collect::<Vec<_>>()
    }

    #[test]
    fn unknown_filters_tests_and_functions_are_found_with_their_place() {
        assert_eq!(
            check("Itme | uper", false),
            ["uper: unknown filter `uper` (did you mean `upper`?)"]
        );
        assert_eq!(
            check("lookupp('t', a, 'c') ~ x is definedd", false),
            [
                "lookupp: unknown function `lookupp` (did you mean `lookup`?)",
                "definedd: unknown test `definedd` (did you mean `defined`?)"
            ]
        );
        assert_eq!(
            check("frobnicate(1)", false),
            ["frobnicate: unknown function `frobnicate`"]
        );
        for fine in [
            "Qty | num(',') * 2",
            "(a | decimal(2)) ~ ' | nope(' ~ \"x | y\"",
            "record['a b'] | default('x') | upper",
            "lookup('t', a, 'c') is not none",
            "x.items() | list | length",
            "range(3) | join(',') if (a) else not (b)",
            "a | date('%d.%m.%Y') | string | trim",
        ] {
            assert_eq!(check(fine, false), Vec::<String>::new(), "{fine}");
        }
    }

    #[test]
    fn the_last_filter_of_an_expression() {
        for yes in [
            "a | decimal",
            "(a | num) * 2 | decimal(2)",
            "((Qty | num) * (Price | num)) | decimal(2, '.')",
            "a|decimal()",
        ] {
            assert!(ends_with_filter(yes, "decimal"), "{yes}");
        }
        for no in [
            "a | decimal | string",
            "(a | decimal) ~ ''",
            "a | decimal if b else c",
            "a | decimal(2) ~ 'x'",
            "'| decimal'",
            "decimal(a)",
            "a | decimals",
        ] {
            assert!(!ends_with_filter(no, "decimal"), "{no}");
        }
    }

    #[test]
    fn templates_are_checked_block_by_block() {
        assert_eq!(
            check("{{ a | upper }} | nope {# x | gone #}{{ b | lowr }}", true),
            ["lowr: unknown filter `lowr` (did you mean `lower`?)"]
        );
        let fine = "{% macro row(x) %}{{ x }}{% endmacro %}{% for r in rows %}{{ row(r) }}{{ loop.index }}{% endfor %}{% set n = namespace(a=1) %}{% filter upper %}x{% endfilter %}";
        assert_eq!(check(fine, true), Vec::<String>::new());
        assert_eq!(
            check("{% raw %}{{ a | nope }}{% endraw %}{{ b | nah }}", true),
            ["nah: unknown filter `nah`"]
        );
        assert_eq!(
            check("{% filter uppr %}x{% endfilter %}", true),
            ["uppr: unknown filter `uppr` (did you mean `upper`?)"]
        );
    }
}
