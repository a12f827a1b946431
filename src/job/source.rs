//! `[source]`: where a job takes its files from, which names it takes and when a file is
//! complete, read into a checked [`Source`].
//!
//! A source is a local folder, or the local staging folder of a source that fetches its
//! files (FTP, WebDAV, a mailbox, a database query, a REST endpoint): the keys of those are
//! read by their own modules; this one reads the keys every source shares (names,
//! readiness, schedule, document sets) and says what the checks across jobs need to know
//! of it (`plumbing::SourceFacts`).

use std::path::Path;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::template::Template;
use super::toml_reader::{Doc, Str, TableReader, one_of};
use super::{
    Ready, Source, Watch, compile_globs, database_source, duration, mail, pdf, plumbing,
    read_connections, refuse, remote, resolve, rest_source, set, share, template, timing, webdav,
};

/// Names that are skipped in every source: hidden files and the usual temporary names that
/// editors, office suites and transfer tools write while a file is not complete yet.
const ALWAYS_SKIPPED: &[&str] = &[
    ".*",
    "~*",
    "*~",
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.swp",
    "*.filepart",
];

/// Placeholders a done-file name may use.
const DONE_PLACEHOLDERS: &[&str] = &["name", "stem", "ext"];

/// Which kind of source a `[source]` table is, from the keys it has, with its remote URL
/// (`ftp` or `webdav`): read first, since the other keys are read per kind.
struct Origin {
    mailbox: bool,
    database: bool,
    http: bool,
    ftp: Option<Str>,
    webdav: Option<Str>,
}

impl Origin {
    fn read(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Origin {
        let (mailbox, database, http) = (t.has("mailbox"), t.has("database"), t.has("http"));
        let ftp = t.str(doc, "ftp");
        let webdav = webdav::url_key(doc, t, !mailbox && !database && !http, [ftp.as_ref()]);
        Origin {
            mailbox,
            database,
            http,
            ftp,
            webdav,
        }
    }

    /// The URL of an FTP or WebDAV source.
    fn url(&self) -> Option<&Str> {
        self.ftp.as_ref().or(self.webdav.as_ref())
    }

    /// The kind whose keys `[source]` may have (see `keys::known`).
    fn kind(&self) -> &'static str {
        match (self.mailbox, self.database) {
            (true, _) => "mailbox",
            (_, true) => "database",
            _ if self.http => "http",
            _ if self.webdav.is_some() => "webdav",
            _ => "",
        }
    }
}

/// What an FTP or WebDAV source reads beside its URL, each `None` when wrong (reported).
struct RemoteParts {
    endpoint: Option<remote::Endpoint>,
    success: Option<remote::Disposal>,
    connections: Option<usize>,
}

/// `settle`, `poll`, `watch`, `ready` and `done`: when a file is complete and how often
/// the folder is looked at, each `None` when wrong (reported).
struct Readiness {
    settle: Option<Duration>,
    poll: Option<Duration>,
    watch: Option<Watch>,
    /// Absent, `watch` depends on the folder: shares are polled (job::share).
    watch_written: bool,
    /// `Some(true)` for `ready = "done-file"`.
    done_file: Option<bool>,
    done: Option<Vec<Str>>,
}

/// The mailbox, database query or REST endpoint a staged source takes from, each
/// `Some(None)` when the source is not of that kind and `None` when wrong (reported).
struct Fetched {
    mailbox: Option<Option<mail::MailboxSource>>,
    database: Option<Option<database_source::DatabaseSource>>,
    http: Option<Option<rest_source::RestSource>>,
}

/// The compiled name patterns: `include` (when given), `exclude` with the usual skips, and
/// the done-files (never data). `None` inside when a pattern is wrong (reported).
struct NameSets {
    include: Option<Option<GlobSet>>,
    exclude: Option<GlobSet>,
    triggers: Option<GlobSet>,
}

/// Everything `[source]` says, read in the order its errors are reported.
struct SourceKeys {
    origin: Origin,
    folder: Option<Str>,
    remote: Option<RemoteParts>,
    include: Option<Vec<Str>>,
    exclude: Vec<Str>,
    readiness: Readiness,
    recursive: bool,
    allow_cycle: bool,
    fetched: Fetched,
    content: Option<Option<pdf::ContentRule>>,
    timing: Option<crate::schedule::Timing>,
    set: Option<Option<set::SetSpec>>,
}

/// Reads `[source]` into a [`Source`], and what the checks across jobs need to know of it
/// into `facts` (known even when the source has problems elsewhere).
pub(super) fn read_source(
    doc: &mut Doc<'_>,
    root: &Path,
    job_name: &str,
    mut t: TableReader<'_, '_>,
    facts: &mut Option<plumbing::SourceFacts>,
) -> Option<Source> {
    let has_include = t.has("include");
    let move_to_span = t.span_of("move_to");
    let mut k = read_keys(doc, root, job_name, &mut t);
    let poll_ok = check_poll(doc, &t, k.readiness.poll);
    let ready = read_ready(doc, &t, k.readiness.done_file, k.readiness.done.take());
    let sets = name_sets(doc, k.include.as_ref(), &k.exclude, ready.as_ref());
    t.finish_as(doc, "source", k.origin.kind());
    if (k.include.is_some() || !has_include)
        && let Some(f) = source_facts(doc, root, &k, move_to_span)
    {
        *facts = Some(f);
    }
    let folder = k.folder.as_ref()?;
    if !check_folder(doc, folder) || !poll_ok {
        return None;
    }
    build(root, k, ready?, sets)
}

/// Reads every key of `[source]`, kind by kind, then the shared ones.
fn read_keys(
    doc: &mut Doc<'_>,
    root: &Path,
    job_name: &str,
    t: &mut TableReader<'_, '_>,
) -> SourceKeys {
    let origin = Origin::read(doc, t);
    let (folder, remote) = read_folder(doc, root, t, &origin, job_name);
    let include = t.str_list(doc, "include");
    let exclude = t.str_list(doc, "exclude").unwrap_or_default();
    let readiness = read_readiness(doc, t);
    let recursive = t.bool(doc, "recursive").unwrap_or(false);
    let allow_cycle = t.bool(doc, "allow_cycle").unwrap_or(false);
    let fetched = read_fetched(doc, root, t, &origin, readiness.poll);
    let content = pdf::read_content_rule(doc, t);
    let timing = timing::read(doc, t);
    let set = match t.table(doc, "set") {
        Some(st) => set::read(doc, st).map(Some),
        None => Some(None),
    };
    let include = with_set_members(include, &set);
    SourceKeys {
        origin,
        folder,
        remote,
        include,
        exclude,
        readiness,
        recursive,
        allow_cycle,
        fetched,
        content,
        timing,
        set,
    }
}

/// The folder files are taken from: `folder`, or for a source that fetches its files its
/// local `staging` folder (`folder` is refused there); with FTP or WebDAV the remote side
/// too.
fn read_folder(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    origin: &Origin,
    job_name: &str,
) -> (Option<Str>, Option<RemoteParts>) {
    let mut folder = t.str(doc, "folder");
    let mut remote = None;
    if origin.database || origin.http {
        // A database or REST source stages each run's rows, like a mailbox its attachments.
        let kind = if origin.database { "database" } else { "http" };
        folder = polled_staging(
            doc,
            t,
            folder.as_ref(),
            origin.ftp.as_ref(),
            (job_name, kind),
        );
    } else if origin.mailbox {
        refuse(
            doc,
            folder.as_ref(),
            "a mailbox source stages its attachments locally in `staging` (default \"var/staging/{job}\"); remove `folder`",
        );
        refuse(
            doc,
            origin.ftp.as_ref(),
            "a source has either `mailbox` or `ftp`, not both",
        );
        folder = Some(staging(doc, t, job_name));
    } else if let Some(url) = origin.url() {
        refuse(
            doc,
            folder.as_ref(),
            "a remote source stages its files locally in `staging` (default \"var/staging/{job}\"); remove `folder`",
        );
        let (staging, parts) = read_remote(doc, root, t, origin, (url, job_name));
        folder = Some(staging);
        remote = Some(parts);
    }
    if folder.is_none() && t.span_of("folder") == t.span {
        doc.error(
            t.span.clone(),
            "source.folder",
            "missing `folder`: the folder to take files from, e.g. `folder = \"var/inbox\"`",
        );
    }
    (folder, remote)
}

/// `staging`: where a source that fetches its files puts them, `var/staging/{job}` by
/// default.
fn staging(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>, job_name: &str) -> Str {
    t.str(doc, "staging").unwrap_or_else(|| Str {
        value: format!("var/staging/{job_name}"),
        span: 0..0,
        key: "source.staging".into(),
    })
}

/// An FTP or WebDAV source: its endpoint, what becomes of a taken file there
/// (`success`, `move_to`), its staging folder and `connections`.
fn read_remote(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    origin: &Origin,
    (url, job_name): (&Str, &str),
) -> (Str, RemoteParts) {
    let endpoint = if origin.ftp.is_some() {
        remote::read_endpoint(doc, t, url)
    } else {
        // WebDAV sources (issue 17): staged as FTP's (src/job/webdav.rs).
        webdav::read_endpoint(doc, root, t, url).map(|e| remote::Endpoint::Webdav(Box::new(e)))
    };
    let success = read_disposal(doc, t);
    let staging = staging(doc, t, job_name);
    let connections = read_connections(doc, t, remote::DEFAULT_SOURCE_CONNECTIONS);
    let parts = RemoteParts {
        endpoint,
        success,
        connections,
    };
    (staging, parts)
}

/// `success` and `move_to` of a remote source: delete (the default), keep, or move the
/// taken file into a remote folder.
fn read_disposal(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Option<remote::Disposal> {
    let success_raw = t.str(doc, "success");
    let move_to = t.str(doc, "move_to");
    match (success_raw.as_ref().map(|s| s.value.as_str()), move_to) {
        (None | Some("delete"), None) => Some(remote::Disposal::Delete),
        (Some("keep"), None) => Some(remote::Disposal::Keep),
        (Some("move"), Some(m)) if !m.value.trim().is_empty() => Some(remote::Disposal::Move(
            m.value.trim_end_matches('/').to_string(),
        )),
        (Some("move"), _) => {
            doc.error(
                t.span.clone(),
                "source.move_to",
                "`success = \"move\"` needs `move_to`: the remote folder to move taken files into",
            );
            None
        }
        (_, Some(m)) => {
            doc.error(
                m.span.clone(),
                &m.key,
                "`move_to` only counts with `success = \"move\"`",
            );
            None
        }
        (Some(_), None) => {
            let s = success_raw.clone().expect("present");
            doc.error(
                s.span.clone(),
                &s.key,
                format!(
                    "expected one of \"delete\", \"move\", \"keep\", found {:?}",
                    s.value
                ),
            );
            None
        }
    }
}

/// The staging folder of a database or REST source (`staging`, default
/// `var/staging/{job}`); `folder`, `ftp`, `mailbox` (and a second such source) are refused
/// beside it. `kind` is the source's key: "database" or "http".
fn polled_staging(
    doc: &mut Doc<'_>,
    t: &mut TableReader<'_, '_>,
    folder: Option<&Str>,
    ftp: Option<&Str>,
    (job_name, kind): (&str, &str),
) -> Option<Str> {
    let (what, noun) = if kind == "http" {
        ("REST", "records")
    } else {
        ("database", "rows")
    };
    refuse(
        doc,
        folder,
        &format!(
            "a {what} source stages each run's {noun} locally in `staging` (default \"var/staging/{{job}}\"); remove `folder`"
        ),
    );
    if let Some(f) = ftp {
        doc.error(
            f.span.clone(),
            &f.key,
            format!("a source has either `{kind}` or `ftp`, not both"),
        );
    }
    for other in ["mailbox", "database", "http"] {
        if other != kind && t.has(other) {
            doc.error(
                t.span_of(other),
                &format!("source.{other}"),
                format!("a source has either `{kind}` or `{other}`, not both"),
            );
        }
    }
    Some(staging(doc, t, job_name))
}

/// `settle`, `poll`, `watch`, `ready` and `done`, with their defaults (2s, 5s, auto,
/// settle).
fn read_readiness(doc: &mut Doc<'_>, t: &mut TableReader<'_, '_>) -> Readiness {
    let settle_raw = t.str(doc, "settle");
    let settle = duration(doc, settle_raw, Duration::from_secs(2));
    let poll_raw = t.str(doc, "poll");
    let poll = duration(doc, poll_raw, Duration::from_secs(5));
    let watch_raw = t.str(doc, "watch");
    let watch_written = watch_raw.is_some();
    let watch = one_of(
        doc,
        watch_raw,
        &[("auto", Watch::Auto), ("poll", Watch::Poll)],
        Watch::Auto,
    );
    let ready_kind_raw = t.str(doc, "ready");
    let done_file = one_of(
        doc,
        ready_kind_raw,
        &[("settle", false), ("done-file", true)],
        false,
    );
    let done = t.str_list(doc, "done");
    Readiness {
        settle,
        poll,
        watch,
        watch_written,
        done_file,
        done,
    }
}

/// The mailbox, database query or REST endpoint of a source of that kind. Each is looked
/// at every minute unless `poll` says otherwise: a mailbox's IDLE wakes it sooner, and a
/// query or request with `schedule` or `every` runs then instead.
fn read_fetched(
    doc: &mut Doc<'_>,
    root: &Path,
    t: &mut TableReader<'_, '_>,
    origin: &Origin,
    poll: Option<Duration>,
) -> Fetched {
    let minute = Duration::from_secs(60);
    let every = if t.has("poll") {
        poll.unwrap_or(minute)
    } else {
        minute
    };
    let mailbox = if origin.mailbox {
        mail::read_mailbox(doc, root, t, every).map(Some)
    } else {
        Some(None)
    };
    let database = if origin.database {
        database_source::read_database(doc, root, t, every).map(Some)
    } else {
        Some(None)
    };
    let http = if origin.http && !origin.database {
        rest_source::read_rest(doc, root, t, every).map(Some)
    } else {
        Some(None)
    };
    Fetched {
        mailbox,
        database,
        http,
    }
}

/// A set's members are what the job takes, unless `include` says otherwise.
fn with_set_members(
    include: Option<Vec<Str>>,
    set: &Option<Option<set::SetSpec>>,
) -> Option<Vec<Str>> {
    match (include, set) {
        (None, Some(Some(s))) if s.manifest.is_none() => Some(
            s.members
                .iter()
                .map(|m| Str {
                    value: m.glob(),
                    span: 0..0,
                    key: "source.set.members".into(),
                })
                .collect(),
        ),
        (i, _) => i,
    }
}

/// `poll` must be at least 100ms; false (reported) when it is shorter.
fn check_poll(doc: &mut Doc<'_>, t: &TableReader<'_, '_>, poll: Option<Duration>) -> bool {
    if let Some(p) = poll
        && p < Duration::from_millis(100)
    {
        let span = t.span_of("poll");
        doc.error(span, "source.poll", "expected at least \"100ms\"");
        return false;
    }
    true
}

/// How a file is known to be complete: it settles, or a done-file named by `done`
/// (default `{name}.done`, then `{stem}.done`) appears beside it.
fn read_ready(
    doc: &mut Doc<'_>,
    t: &TableReader<'_, '_>,
    done_file: Option<bool>,
    done: Option<Vec<Str>>,
) -> Option<Ready> {
    match (done_file, done) {
        (Some(true), done) => {
            let done = done.unwrap_or_else(|| {
                ["{name}.done", "{stem}.done"]
                    .iter()
                    .map(|v| Str {
                        value: v.to_string(),
                        span: 0..0,
                        key: "source.done".into(),
                    })
                    .collect()
            });
            let templates: Vec<Option<Template>> =
                done.iter().map(|s| done_template(doc, s)).collect();
            templates
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Ready::DoneFile)
        }
        (Some(false), Some(d)) => {
            let span = d.first().map_or(t.span.clone(), |d| d.span.clone());
            doc.error(
                span,
                "source.done",
                "`done` names trigger files, which only count with `ready = \"done-file\"`",
            );
            None
        }
        (Some(false), None) => Some(Ready::Settle),
        (None, _) => None,
    }
}

/// One done-file name: a placeholder and fixed text, so that it names one file per data
/// file and is never a data file's name itself.
fn done_template(doc: &mut Doc<'_>, s: &Str) -> Option<Template> {
    let t = template(doc, s, DONE_PLACEHOLDERS)?;
    if t.to_glob().chars().all(|c| c == '*') || t.is_literal() {
        doc.error(
            s.span.clone(),
            &s.key,
            format!(
                "expected a done-file name made of a placeholder and fixed text, like \"{{name}}.done\", found {:?}",
                s.value
            ),
        );
        return None;
    }
    Some(t)
}

/// Compiles `include`, `exclude` (with [`ALWAYS_SKIPPED`]) and the done-file names.
fn name_sets(
    doc: &mut Doc<'_>,
    include: Option<&Vec<Str>>,
    exclude: &[Str],
    ready: Option<&Ready>,
) -> NameSets {
    let include = include.map(|list| glob_set(doc, list));
    let mut all_exclude: Vec<Str> = ALWAYS_SKIPPED
        .iter()
        .map(|p| Str {
            value: p.to_string(),
            span: 0..0,
            key: String::new(),
        })
        .collect();
    all_exclude.extend(exclude.iter().cloned());
    let exclude = glob_set(doc, &all_exclude);
    let mut triggers = GlobSetBuilder::new();
    if let Some(Ready::DoneFile(list)) = ready {
        for t in list {
            if let Ok(g) = Glob::new(&t.to_glob()) {
                triggers.add(g);
            }
        }
    }
    NameSets {
        include,
        exclude,
        triggers: triggers.build().ok(),
    }
}

/// What the checks across jobs need to know of this source: where it reads and which
/// names, where it moves taken remote files, and where its key stands. `None` without a
/// usable folder.
fn source_facts(
    doc: &Doc<'_>,
    root: &Path,
    k: &SourceKeys,
    move_to_span: std::ops::Range<usize>,
) -> Option<plumbing::SourceFacts> {
    let f = k.folder.as_ref().filter(|f| !f.value.trim().is_empty())?;
    let endpoint = k.remote.as_ref().and_then(|r| r.endpoint.as_ref());
    let remote_move = match (endpoint, k.remote.as_ref().map(|r| &r.success)) {
        (Some(e), Some(Some(remote::Disposal::Move(to)))) => Some(plumbing::Write {
            target: plumbing::Target::Ftp(plumbing::FtpPlace::of(e).below(to)),
            at: plumbing::At::new(doc, move_to_span, "source.move_to"),
        }),
        _ => None,
    };
    let at = match k.origin.url() {
        Some(url) => plumbing::At::new(doc, url.span.clone(), &url.key),
        None => plumbing::At::new(doc, f.span.clone(), &f.key),
    };
    Some(plumbing::SourceFacts {
        folder: resolve(root, &f.value),
        include: k
            .include
            .iter()
            .flatten()
            .map(|s| s.value.clone())
            .collect(),
        recursive: k.recursive,
        by_content: matches!(k.content, Some(Some(_))),
        allow_cycle: k.allow_cycle,
        ftp: endpoint.map(plumbing::FtpPlace::of),
        remote_move,
        at,
    })
}

/// The folder must be a path of this system; false (reported) when it is empty or foreign.
fn check_folder(doc: &mut Doc<'_>, folder: &Str) -> bool {
    if folder.value.trim().is_empty() {
        doc.error(
            folder.span.clone(),
            &folder.key,
            "expected a folder path, found an empty string",
        );
        return false;
    }
    if let Some(why) = share::foreign_path(&folder.value) {
        doc.error(folder.span.clone(), &folder.key, why);
        return false;
    }
    true
}

/// Compiles patterns on the file name (see [`compile_globs`]).
fn glob_set(doc: &mut Doc<'_>, patterns: &[Str]) -> Option<GlobSet> {
    compile_globs(doc, patterns, true, false)
}

/// The checked [`Source`], once every part read is good.
fn build(root: &Path, k: SourceKeys, ready: Ready, sets: NameSets) -> Option<Source> {
    let folder = resolve(root, &k.folder?.value);
    let r = k.readiness;
    let settle = r.settle?;
    let remote = match k.remote {
        Some(p) => Some(remote::RemoteSource {
            endpoint: p.endpoint?,
            success: p.success?,
            connections: p.connections?,
            settle,
            ready: ready.clone(),
        }),
        None => None,
    };
    let (mailbox, database, http) = (k.fetched.mailbox?, k.fetched.database?, k.fetched.http?);
    // A staging folder is read at once: files only ever appear there by rename.
    let staged = remote.is_some() || mailbox.is_some() || database.is_some() || http.is_some();
    let (settle, ready) = if staged {
        (Duration::ZERO, Ready::Settle)
    } else {
        (settle, ready)
    };
    Some(Source {
        remote,
        include: k
            .include
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect(),
        exclude: k.exclude.into_iter().map(|s| s.value).collect(),
        include_set: match sets.include {
            Some(s) => Some(s?),
            None => None,
        },
        exclude_set: sets.exclude?,
        trigger_set: sets.triggers?,
        settle,
        poll: r.poll?,
        watch: share::default_watch(r.watch_written.then_some(r.watch?), &folder),
        folder,
        ready,
        recursive: k.recursive,
        mailbox,
        database,
        http,
        content: k.content?,
        set: k.set?,
        timing: k.timing?,
    })
}
