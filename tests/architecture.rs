//! The top-level modules of the library depend on each other in one direction only (issue 12).
//!
//! Reads every `src/**/*.rs`, collects for each top-level module (the first path component
//! under `src/`: `job`, `formats`, `runtime`, `sources`, ...) the other top-level modules
//! it names (`crate::x`, `use crate::{x, ...}`, a `super::` that leaves the module), and
//! fails with the cycle when the graph has one. `main.rs` (the binary) and `lib.rs` (which
//! declares every module) are not modules of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, so that a doc link or a remark names nothing.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        if in_str {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b[i] == b'"' {
            in_str = true;
            out.push(' ');
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' (a lifetime has no closing quote here).
            let end = src[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
            i = end.max(i + 3);
            out.push(' ');
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named by one file of module `own` at `depth` (1 for `src/x.rs`
/// and `src/x/mod.rs`, 2 for `src/x/y.rs`, ...).
fn names(code: &str, depth: usize, tops: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |name: &str| {
        if tops.contains(name) {
            found.insert(name.to_string());
        }
    };
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code.as_bytes()[at - 1].is_ascii_alphanumeric() {
            continue; // e.g. `mycrate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first name of each top-level item.
            let mut level = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' if level == 0 => break,
                    '}' => level -= 1,
                    ',' if level == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        add(ident_at(&group[i..]));
                        item_start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => item_start = false,
                }
            }
        } else {
            add(ident_at(rest));
        }
    }
    let mut from = 0;
    while let Some(at) = code[from..].find("super::") {
        let start = from + at;
        let mut rest = &code[start..];
        let mut n = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            n += 1;
        }
        if n >= depth {
            add(ident_at(rest));
        }
        from = start + n * "super::".len();
    }
    found
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top_of = |f: &Path| -> (String, usize) {
        let rel: Vec<String> = f
            .strip_prefix(&src)
            .unwrap()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let top = rel[0].trim_end_matches(".rs").to_string();
        let last = rel.last().unwrap();
        let depth = if last == "mod.rs" {
            rel.len() - 1
        } else {
            rel.len()
        };
        (top, depth.max(1))
    };
    let tops: BTreeSet<String> = files
        .iter()
        .map(|f| top_of(f).0)
        .filter(|t| t != "main" && t != "lib")
        .collect();
    let mut g = Graph::new();
    for f in &files {
        let (top, depth) = top_of(f);
        if !tops.contains(&top) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let entry = g.entry(top.clone()).or_default();
        for name in names(&code, depth, &tops) {
            if name != top {
                entry.insert(name);
            }
        }
    }
    g
}

/// A cycle of `g`, as the list of modules from one back to itself, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn render(g: &Graph) -> String {
    g.iter()
        .map(|(m, to)| {
            format!(
                "  {m} -> {}\n",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let g = graph();
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "import cycle between top-level modules: {}\n\nthe whole graph:\n{}",
            cycle.join(" -> "),
            render(&g)
        );
    }
}

#[test]
fn configuration_depends_on_no_engine_code() {
    let g = graph();
    let job = g.get("job").cloned().unwrap_or_default();
    for engine in [
        "runtime", "sources", "outputs", "protocol", "cli", "journal",
    ] {
        assert!(
            !job.contains(engine),
            "job/ (configuration) names {engine}; job depends on: {job:?}"
        );
    }
}

#[test]
fn the_checker_finds_a_cycle_and_reads_use_groups() {
    let tops: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let code =
        code_only("use crate::{a::x, b::{y, z}};\n// crate::c in a comment\nlet s = \"crate::c\";");
    assert_eq!(
        names(&code, 1, &tops),
        ["a", "b"].iter().map(|s| s.to_string()).collect()
    );
    assert!(names("super::c::f()", 2, &tops).is_empty());
    assert_eq!(names("super::super::c::f()", 2, &tops).len(), 1);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
