//! Checks across the jobs of a deployment, on folders compared by their real identity: two
//! jobs must never take the same file (overlaps), and jobs must never feed each other's
//! sources in a loop (cycles), unless a job says the loop is intended (`allow_cycle`).
//!
//! A folder's real identity is the canonical path of its nearest existing ancestor with
//! the rest of the path appended: `in` and a symlink `alias -> in` are the same folder,
//! and a folder that does not exist yet is compared by where it will be. A folder template
//! with placeholders (`var/out/{Customer}`) is judged by its literal prefix: any folder the
//! prefix can lead to counts as written.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::template::{FixedEnd, Template};
use super::toml_reader::{Diag, Doc};

/// Where a key stands in its job file.
#[derive(Debug, Clone)]
pub struct At {
    pub span: Range<usize>,
    pub line: usize,
    pub col: usize,
    pub key: String,
}

impl At {
    pub fn new(doc: &Doc<'_>, span: Range<usize>, key: &str) -> At {
        let (line, col) = doc.position(span.start);
        At {
            span,
            line,
            col,
            key: key.to_string(),
        }
    }
}

/// A folder on an FTP server: `user@host:port` and the path below the login folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpPlace {
    pub server: String,
    pub path: String,
}

impl FtpPlace {
    pub fn of(endpoint: &crate::job::remote::Endpoint) -> FtpPlace {
        match endpoint {
            crate::job::remote::Endpoint::Ftp(e) => FtpPlace {
                server: format!("{}@{}:{}", e.user, e.host.to_lowercase(), e.port),
                path: e
                    .path
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .collect::<Vec<_>>()
                    .join("/"),
            },
            // A WebDAV folder: its own server name, never equal to an FTP one.
            crate::job::remote::Endpoint::Webdav(e) => FtpPlace {
                server: e.origin(),
                path: e.path.clone(),
            },
            // Not an FTP place: never compared with one (HTTP outputs feed no source).
            crate::job::remote::Endpoint::Http(e) => FtpPlace {
                server: e.display(),
                path: String::new(),
            },
        }
    }

    /// The folder `rel` below this one (`/rel`: from the login folder).
    pub fn below(&self, rel: &str) -> FtpPlace {
        let joined = if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.path)
        };
        FtpPlace {
            server: self.server.clone(),
            path: joined
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect::<Vec<_>>()
                .join("/"),
        }
    }

    fn display(&self) -> String {
        format!("ftp://{}/{}", self.server, self.path)
    }
}

/// What the checks need from a job's `[source]`, read even when other keys of it have
/// problems.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    /// Absolute, as configured (the staging folder of a remote source or mailbox).
    pub folder: PathBuf,
    pub include: Vec<String>,
    pub recursive: bool,
    /// The job chooses its files by their content (`contains`, `matches`).
    pub by_content: bool,
    pub allow_cycle: bool,
    pub ftp: Option<FtpPlace>,
    /// An FTP source's `move_to` folder (never taken from by its own job).
    pub remote_move: Option<Write>,
    pub at: At,
}

/// Somewhere a job writes files: an output, archive or error folder, or an FTP folder.
#[derive(Debug, Clone)]
pub enum Target {
    Folder(Folder),
    Ftp(FtpPlace),
}

/// A folder template as one job renders it: its fixed part is known (`{job}` included).
#[derive(Debug, Clone)]
pub struct Folder {
    /// As written (resolved against the deployment root), for messages.
    pub shown: String,
    /// The text before the first placeholder that varies from file to file.
    pub prefix: String,
    /// What follows `prefix`.
    pub end: FixedEnd,
}

impl Folder {
    pub fn of(t: &Template, job: &str) -> Folder {
        let (prefix, end) = t.fixed_prefix_for_job(job);
        Folder {
            shown: t.as_str().to_string(),
            prefix,
            end,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Write {
    pub target: Target,
    pub at: At,
}

/// What the checks across jobs need from one job file, known even when the job itself has
/// problems, so that one `check` reports an overlap together with everything else.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub name: String,
    pub file: PathBuf,
    pub source: Option<SourceFacts>,
    /// `None` when an output or `[after]` could not be read.
    pub writes: Option<Vec<Write>>,
    /// The job file has no problem of its own (the job can run).
    pub valid: bool,
}

impl Facts {
    /// Every place the job writes into, its source's remote `move_to` last.
    fn all_writes(&self) -> Vec<&Write> {
        let Some(writes) = &self.writes else {
            return Vec::new();
        };
        let moved = self.source.as_ref().and_then(|s| s.remote_move.as_ref());
        writes.iter().chain(moved).collect()
    }
}

/// A folder's real identity (see the module documentation). Touches the disk.
pub fn real_path(p: &Path) -> PathBuf {
    let mut existing = p;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut real) = std::fs::canonicalize(existing) {
            real.extend(rest.iter().rev());
            return super::absolute(&real);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Where a write target leads, with paths made real (or left as written).
enum Place {
    /// Every folder named `base/fragment*` or below it (`End`: exactly `base`; `Date`:
    /// `fragment` followed by a date in that format).
    Local {
        base: PathBuf,
        fragment: String,
        end: FixedEnd,
    },
    Ftp(FtpPlace),
}

fn place(target: &Target, real: bool) -> Place {
    let resolve = |p: &Path| if real { real_path(p) } else { p.to_path_buf() };
    match target {
        Target::Ftp(f) => Place::Ftp(f.clone()),
        Target::Folder(f) if f.end == FixedEnd::End => Place::Local {
            base: resolve(&super::absolute(Path::new(&f.prefix))),
            fragment: String::new(),
            end: FixedEnd::End,
        },
        Target::Folder(f) => {
            let prefix = f.prefix.as_str();
            let abs = super::absolute(Path::new(prefix));
            let (base, fragment) = if prefix.ends_with('/') {
                (abs, String::new())
            } else {
                let fragment = abs
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    abs.parent().map_or(abs.clone(), Path::to_path_buf),
                    fragment,
                )
            };
            Place::Local {
                base: resolve(&base),
                fragment,
                end: f.end.clone(),
            }
        }
    }
}

/// Whether files written to `place` are taken by a source at `folder` (and `ftp`).
fn lands_in(place: &Place, folder: &Path, ftp: Option<&FtpPlace>, recursive: bool) -> bool {
    match place {
        Place::Local {
            base,
            fragment,
            end,
        } => {
            let covered = recursive && base.starts_with(folder);
            let first = folder
                .strip_prefix(base)
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            let under_prefix =
                first.is_some_and(|c| match (end, c.strip_prefix(fragment.as_str())) {
                    (_, None) | (FixedEnd::End, _) => false,
                    (FixedEnd::Date(format), Some(rest)) => date_may_start(format, rest),
                    (FixedEnd::Other, Some(_)) => true,
                });
            covered || (*end == FixedEnd::End && base == folder) || under_prefix
        }
        Place::Ftp(w) => ftp.is_some_and(|s| {
            w.server == s.server
                && (w.path == s.path || (recursive && Path::new(&w.path).starts_with(&s.path)))
        }),
    }
}

/// Whether a folder name may begin with a date written in `format` (`rest` is the name
/// after the template's fixed text). Dates are compared by shape, every digit as `0`, over
/// sample dates that cover every month, weekday, one- and two-digit days and both halves
/// of the day.
fn date_may_start(format: &str, rest: &str) -> bool {
    use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
    use std::fmt::Write as _;
    let shape = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect()
    };
    let rest = shape(rest);
    let year = 2026;
    (1..=12)
        .flat_map(|m| (1..=7).chain(20..=26).map(move |d| (m, d)))
        .flat_map(|(m, d)| [0, 13].map(move |h| (m, d, h)))
        .filter_map(|(m, d, h)| {
            let date = NaiveDate::from_ymd_opt(year, m, d)?;
            Some(Utc.from_utc_datetime(&date.and_time(NaiveTime::from_hms_opt(h, 0, 0)?)))
        })
        .any(|t| {
            let mut text = String::new();
            if write!(text, "{}", t.format(format)).is_err() {
                return true;
            }
            let rendered = shape(&text);
            match rendered.split_once('/') {
                Some((first, _)) => first == rest,
                None => rest.starts_with(&rendered),
            }
        })
}

/// Whether a job's write lands in its own source, paths compared as written (the check of
/// one job file; `real` paths are compared across jobs).
pub fn feeds_itself(write: &Write, source: &SourceFacts) -> bool {
    matches!(write.target, Target::Folder(_))
        && lands_in(
            &place(&write.target, false),
            &source.folder,
            None,
            source.recursive,
        )
}

/// Problems found across jobs, and the jobs left out because of them.
#[derive(Debug, Default)]
pub struct Findings {
    pub diags: Vec<Diag>,
    /// Job name and why it is left out.
    pub left_out: Vec<(String, String)>,
}

/// Runs every check across jobs on the facts of every job file.
pub fn check(facts: &[Facts]) -> Findings {
    let mut found = Findings::default();
    let real: Vec<Option<PathBuf>> = facts
        .iter()
        .map(|f| f.source.as_ref().map(|s| real_path(&s.folder)))
        .collect();
    overlaps(facts, &real, &mut found);
    cycles(facts, &real, &mut found);
    found
}

fn diag(f: &Facts, at: &At, message: String) -> Diag {
    Diag {
        file: f.file.clone(),
        line: at.line,
        col: at.col,
        key: at.key.clone(),
        message,
    }
}

fn overlaps(facts: &[Facts], real: &[Option<PathBuf>], found: &mut Findings) {
    for (i, a) in facts.iter().enumerate() {
        for (j, b) in facts.iter().enumerate().skip(i + 1) {
            let (Some(sa), Some(sb), Some(ra), Some(rb)) =
                (&a.source, &b.source, &real[i], &real[j])
            else {
                continue;
            };
            let Some(why) = overlap(sa, sb, ra, rb) else {
                continue;
            };
            found.diags.push(diag(
                b,
                &sb.at,
                format!(
                    "jobs `{}` and `{}` would both take the same files: {why}; narrow `include`/`exclude` so that each file belongs to one job",
                    a.name, b.name
                ),
            ));
            // A job with errors does not run: the other one is not kept from running.
            if a.valid && b.valid {
                found.left_out.push((
                    a.name.clone(),
                    format!("it would take the same files as `{}`", b.name),
                ));
                found.left_out.push((
                    b.name.clone(),
                    format!("it would take the same files as `{}`", a.name),
                ));
            }
        }
    }
}

/// Why two sources could take the same file, if they can. They overlap when one's folder
/// is the other's (or inside it, when that one is recursive) and their include patterns
/// can match a common name. Jobs that both choose their files by content share a folder:
/// the content decides (see docs/pdf.md).
fn overlap(a: &SourceFacts, b: &SourceFacts, ra: &Path, rb: &Path) -> Option<String> {
    let same =
        ra == rb || (a.recursive && rb.starts_with(ra)) || (b.recursive && ra.starts_with(rb));
    if !same || (a.by_content && b.by_content) {
        return None;
    }
    let all = vec!["*".to_string()];
    let pa = if a.include.is_empty() {
        &all
    } else {
        &a.include
    };
    let pb = if b.include.is_empty() {
        &all
    } else {
        &b.include
    };
    let (x, y) = pa
        .iter()
        .flat_map(|x| pb.iter().map(move |y| (x, y)))
        .find(|(x, y)| super::globs_may_overlap(x, y))?;
    let alias = if a.folder != b.folder && ra == rb {
        format!(" (also named {})", b.folder.display())
    } else {
        String::new()
    };
    Some(format!(
        "both watch {}{alias} and {x:?} overlaps {y:?}",
        a.folder.display()
    ))
}

/// An edge of the feeding graph: job `from`'s write number `write` lands in `to`'s source.
#[derive(Clone, Copy)]
struct Edge {
    to: usize,
    write: usize,
}

/// Jobs that feed each other in a loop: every strongly connected part of the graph "writes
/// into the source of" is reported with one concrete loop. The valid jobs of the loops
/// that remain among valid jobs only are left out: a job with errors does not run, so it
/// closes no loop (a broken job file never stops the others). A job with
/// `allow_cycle = true` is left out of the graph: loops through it are intended.
fn cycles(facts: &[Facts], real: &[Option<PathBuf>], found: &mut Findings) {
    let edges = feeding_graph(facts, real);
    for (_, path) in loops(&edges) {
        report_loop(facts, real, &edges, &path, found);
    }
    let valid_edges: Vec<Vec<Edge>> = edges
        .iter()
        .enumerate()
        .map(|(v, out)| {
            out.iter()
                .copied()
                .filter(|e| facts[v].valid && facts[e.to].valid)
                .collect()
        })
        .collect();
    for (part, path) in loops(&valid_edges) {
        let why = if path.len() == 1 {
            "it writes into its own source folder".to_string()
        } else {
            format!(
                "it is part of a loop of jobs feeding each other ({})",
                loop_names(facts, &path)
            )
        };
        for u in part {
            found.left_out.push((facts[u].name.clone(), why.clone()));
        }
    }
}

/// The strongly connected parts of the graph that hold a loop, each with one shortest loop.
fn loops(edges: &[Vec<Edge>]) -> Vec<(BTreeSet<usize>, Vec<usize>)> {
    let reach: Vec<BTreeSet<usize>> = (0..edges.len()).map(|v| reachable(edges, v)).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in 0..edges.len() {
        if seen.contains(&v) || !reach[v].contains(&v) {
            continue;
        }
        let part: BTreeSet<usize> = reach[v]
            .iter()
            .copied()
            .filter(|&u| reach[u].contains(&v))
            .collect();
        let path = shortest_loop(edges, &part, v);
        seen.extend(part.iter().copied());
        out.push((part, path));
    }
    out
}

fn feeding_graph(facts: &[Facts], real: &[Option<PathBuf>]) -> Vec<Vec<Edge>> {
    let writes: Vec<Vec<&Write>> = facts.iter().map(Facts::all_writes).collect();
    let places: Vec<Vec<Place>> = writes
        .iter()
        .map(|w| w.iter().map(|w| place(&w.target, true)).collect())
        .collect();
    let mut edges = vec![Vec::new(); facts.len()];
    for (a, fa) in facts.iter().enumerate() {
        if fa.source.as_ref().is_none_or(|s| s.allow_cycle) {
            continue;
        }
        for (b, fb) in facts.iter().enumerate() {
            let (Some(sb), Some(rb)) = (&fb.source, &real[b]) else {
                continue;
            };
            if sb.allow_cycle {
                continue;
            }
            let hit = places[a].iter().enumerate().find(|(w, p)| {
                // A job writing into its own source as written is reported by its own
                // check, and its own `move_to` is never listed as input.
                let own_move = a == b
                    && (sb.remote_move.as_ref()).is_some_and(|m| std::ptr::eq(m, writes[a][*w]));
                let lexical_self = a == b && feeds_itself(writes[a][*w], sb);
                !own_move && !lexical_self && lands_in(p, rb, sb.ftp.as_ref(), sb.recursive)
            });
            if let Some((w, _)) = hit {
                edges[a].push(Edge { to: b, write: w });
            }
        }
    }
    edges
}

fn reachable(edges: &[Vec<Edge>], from: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = edges[from].iter().map(|e| e.to).collect();
    while let Some(v) = stack.pop() {
        if seen.insert(v) {
            stack.extend(edges[v].iter().map(|e| e.to));
        }
    }
    seen
}

/// The shortest loop from `v` back to `v` inside `part`, as the list of jobs (first = v).
fn shortest_loop(edges: &[Vec<Edge>], part: &BTreeSet<usize>, v: usize) -> Vec<usize> {
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([v]);
    while let Some(u) = queue.pop_front() {
        for e in &edges[u] {
            if e.to == v {
                let mut path = vec![u];
                while let Some(&p) = parent.get(path.last().expect("non-empty")) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if part.contains(&e.to) && e.to != v && !parent.contains_key(&e.to) {
                parent.insert(e.to, u);
                queue.push_back(e.to);
            }
        }
    }
    vec![v]
}

fn loop_names(facts: &[Facts], path: &[usize]) -> String {
    let mut names: Vec<&str> = path.iter().map(|&i| facts[i].name.as_str()).collect();
    names.push(&facts[path[0]].name);
    names.join(" → ")
}

/// One problem per step of the loop, at the key that writes into the next job's source.
fn report_loop(
    facts: &[Facts],
    real: &[Option<PathBuf>],
    edges: &[Vec<Edge>],
    path: &[usize],
    found: &mut Findings,
) {
    let names = loop_names(facts, path);
    for (k, &from) in path.iter().enumerate() {
        let to = path[(k + 1) % path.len()];
        let Some(edge) = edges[from].iter().find(|e| e.to == to) else {
            continue;
        };
        let f = &facts[from];
        let write = f.all_writes()[edge.write];
        let src = facts[to].source.as_ref().expect("source");
        let written = match &write.target {
            Target::Folder(f) => f.shown.clone(),
            Target::Ftp(p) => p.display(),
        };
        let folder = match (&write.target, &src.ftp) {
            (Target::Ftp(_), Some(p)) => p.display(),
            _ => real[to].as_ref().expect("real").display().to_string(),
        };
        let source_at = format!(
            "{}:{}:{}",
            facts[to].file.display(),
            src.at.line,
            src.at.col
        );
        let message = if path.len() == 1 {
            format!(
                "{written} leads into the job's own source folder {folder} ({source_at}): its files would be taken again as new input, forever; the job is left out. If the loop is intended, add `allow_cycle = true` to its `[source]`"
            )
        } else {
            format!(
                "{written} leads into the source folder of `{}`, {folder} ({source_at}): the jobs feed each other in a loop, {names}, and a file would go round forever; the jobs in the loop are left out. If the loop is intended, add `allow_cycle = true` to the `[source]` of one of them",
                facts[to].name
            )
        };
        found.diags.push(diag(f, &write.at, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Facts of jobs compiled from text, under a root that does not exist (so real paths
    /// are the paths as written).
    fn facts(jobs: &[(&str, &str)]) -> Vec<Facts> {
        jobs.iter()
            .map(|(name, src)| {
                let path = PathBuf::from(format!("jobs/{name}.toml"));
                super::super::compile_with_facts(
                    &path,
                    Path::new("/nonexistent-ferry"),
                    src,
                    &Default::default(),
                )
                .1
            })
            .collect()
    }

    fn left_out(jobs: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = check(&facts(jobs))
            .left_out
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn an_output_folder_with_placeholders_covers_every_folder_its_prefix_leads_to() {
        let pair = |source: &str, output: &str| {
            let a = format!("[source]\nfolder = \"{source}\"\n[[output]]\nfolder = \"mid\"\n");
            let b = format!("[source]\nfolder = \"mid\"\n[[output]]\nfolder = \"{output}\"\n");
            left_out(&[("a", &a), ("b", &b)]).len() == 2
        };
        assert!(!pair("in/acme", "in/{date:%Y}/x"));
        assert!(pair("in/acme", "in/{dir}"));
        // A fixed part of the last name counts: `in/cust-{x}` cannot lead to `in/acme`.
        assert!(!pair("in/acme", "in/cust-{dir}"));
        assert!(pair("in/cust-acme", "in/cust-{dir}"));
        // A date leads only where a date fits, any year.
        assert!(pair("in/2019", "in/{date:%Y}"));
        assert!(pair("in/2019-03/x", "in/{date:%Y-%m}/x"));
        assert!(!pair("in/2019-03/x", "in/{date:%Y/%m}"));
        assert!(pair("in/2019/03", "in/{date:%Y/%m}"));
        assert!(pair("in/March 2019", "in/{date:%B %Y}"));
        assert!(!pair("in/Smarch 2019", "in/{date:%B %Y}"));
        assert!(pair("in/x+0000", "in/x{date:%z}"));
    }

    #[test]
    fn a_recursive_source_covers_its_subfolders() {
        let a = "[source]\nfolder = \"in\"\nrecursive = true\n[[output]]\nfolder = \"mid\"\n";
        let b = "[source]\nfolder = \"mid\"\n[[output]]\nfolder = \"in/deep/er\"\n";
        assert_eq!(left_out(&[("a", a), ("b", b)]), ["a", "b"]);
        let a = a.replace("recursive = true\n", "");
        assert!(left_out(&[("a", &a), ("b", b)]).is_empty());
    }

    #[test]
    fn error_folders_feed_too() {
        let a = "[source]\nfolder = \"in\"\n[[output]]\nfolder = \"mid\"\n";
        let b =
            "[source]\nfolder = \"mid\"\n[[output]]\nfolder = \"out\"\n[after]\nerror = \"in\"\n";
        let found = check(&facts(&[("a", a), ("b", b)]));
        assert!(
            found
                .diags
                .iter()
                .any(|d| d.to_string().starts_with("jobs/b.toml:6:9: after.error: /nonexistent-ferry/in leads into the source folder of `a`")),
            "{:?}",
            found.diags
        );
    }

    #[test]
    fn ftp_outputs_into_ftp_sources_on_the_same_server() {
        let src = |from: &str, to: &str| {
            format!(
                "[source]\nftp = \"ftp://u@Files.example:21/{from}\"\npassword = \"p\"\n[[output]]\nftp = \"ftp://u@files.example/{to}/\"\npassword = \"p\"\n"
            )
        };
        let (a, b) = (src("in", "mid"), src("mid", "in"));
        assert_eq!(left_out(&[("a", &a), ("b", &b)]), ["a", "b"]);
        // Another server (another port) is another folder.
        let b = b.replace("files.example/in", "files.example:2121/in");
        assert!(left_out(&[("a", &a), ("b", &b)]).is_empty());
    }

    #[test]
    fn allow_cycle_accepts_only_the_loops_through_its_job() {
        let job = |src: &str, outs: &[&str]| {
            let mut s = format!("[source]\nfolder = \"{src}\"\n");
            for o in outs {
                s.push_str(&format!("[[output]]\nfolder = \"{o}\"\n"));
            }
            s
        };
        let a = job("a", &["b", "c"]);
        let b = job("b", &["a"]).replace("[source]\n", "[source]\nallow_cycle = true\n");
        let c = job("c", &["a"]);
        assert_eq!(left_out(&[("a", &a), ("b", &b), ("c", &c)]), ["a", "c"]);
        let c = c.replace("[source]\n", "[source]\nallow_cycle = true\n");
        assert!(left_out(&[("a", &a), ("b", &b), ("c", &c)]).is_empty());
    }

    #[test]
    fn a_job_with_errors_elsewhere_still_has_its_source_compared() {
        let a = "[source]\nfolder = \"in\"\nsettle = \"soon\"\n[[output]]\nfolder = \"{nope}\"\n";
        let b = "[source]\nfolder = \"in\"\n";
        let f = facts(&[("a", a), ("b", b)]);
        assert!(f[0].source.is_some() && f[0].writes.is_none());
        let found = check(&f);
        assert!(
            found.diags[0].to_string().starts_with(
                "jobs/b.toml:2:10: source.folder: jobs `a` and `b` would both take the same files"
            ),
            "{:?}",
            found.diags
        );
        // `a` does not run: `b` is not kept from running (a broken file never stops others).
        assert!(found.left_out.is_empty(), "{:?}", found.left_out);
    }

    #[test]
    fn a_loop_through_a_job_with_errors_is_reported_but_stops_no_valid_job() {
        let a = "[source]\nfolder = \"a\"\nsettle = \"soon\"\n[[output]]\nfolder = \"b\"\n";
        let b = "[source]\nfolder = \"b\"\n[[output]]\nfolder = \"a\"\n";
        let found = check(&facts(&[("a", a), ("b", b)]));
        assert_eq!(found.diags.len(), 2, "{:?}", found.diags);
        assert!(
            found.diags[0].message.contains("a → b → a"),
            "{:?}",
            found.diags
        );
        assert!(found.left_out.is_empty(), "{:?}", found.left_out);
    }

    #[test]
    fn an_ftp_move_to_feeds_other_jobs_but_never_its_own() {
        let a = "[source]\nftp = \"ftp://u@h/in\"\npassword = \"p\"\nrecursive = true\nsuccess = \"move\"\nmove_to = \"done\"\n";
        assert!(left_out(&[("a", a)]).is_empty());
        let a = a.replace("\"done\"", "\"/mid\"");
        let b = "[source]\nftp = \"ftp://u@h/mid\"\npassword = \"p\"\n[[output]]\nftp = \"ftp://u@h/in/x\"\npassword = \"p\"\n";
        let found = check(&facts(&[("a", &a), ("b", b)]));
        assert!(
            found.diags.iter().any(|d| d.to_string().starts_with("jobs/a.toml:6:11: source.move_to: ftp://u@h:21/mid leads into the source folder of `b`")),
            "{:?}",
            found.diags
        );
        assert_eq!(found.left_out.len(), 2);
    }

    #[test]
    fn job_in_a_folder_is_the_job_s_own_name() {
        // The default error folder is `var/error/{job}`: `retry`'s own is var/error/retry.
        let retry = "[source]\nfolder = \"var/error/orders\"\n[[output]]\nfolder = \"var/in\"\n";
        let f = facts(&[("retry", retry)]);
        assert!(f[0].valid);
        assert!(check(&f).diags.is_empty());
        // Files that fail in `orders` go to `retry`, which puts them back: a loop.
        let orders = "[source]\nfolder = \"var/in\"\n[[output]]\nfolder = \"out\"\n";
        assert_eq!(
            left_out(&[("orders", orders), ("retry", retry)]),
            ["orders", "retry"]
        );
        let other = orders.replace("var/in", "var/other");
        assert!(left_out(&[("other", &other), ("retry", retry)]).is_empty());
    }
}
