//! The admin commands that do not run the daemon: `check`, `test`, `history`, `status`
//! (and, in [`runs`], `runs` and `trigger`).
//! Each returns the process exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::job::{self, Exists, Job, Ready, Success};
use crate::journal::{self, HistoryFilter, Journal};

pub mod pending;
pub mod runs;

/// Exit codes shared by every command (documented in the README).
pub mod exit {
    /// Everything went well.
    pub const OK: i32 = 0;
    /// At least one file failed (`run --once`), or the file does not match (`test`).
    pub const FILE_FAILED: i32 = 1;
    /// A job file is invalid, or the command line is wrong.
    pub const INVALID: i32 = 2;
    /// ferry itself could not work: journal unreadable, state folder locked, ...
    pub const FATAL: i32 = 3;
}

pub use crate::say::{Say, print};

/// `ferry schema`: the JSON Schema of job files (with `settings`: of ferry.toml) on stdout.
pub fn schema(settings: bool) -> i32 {
    let schema = if settings {
        crate::settings::keys::json_schema()
    } else {
        job::keys::json_schema()
    };
    let text = serde_json::to_string_pretty(&schema).expect("serializable");
    // A closed pipe (`ferry schema | head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{text}");
    exit::OK
}

/// `ferry check`: validates ferry.toml and every job file; prints every problem.
pub fn check(jobs_dir: &Path) -> i32 {
    let (defaults, settings_problems) = check_settings(jobs_dir);
    let loaded = match job::load_dir_with(jobs_dir, &defaults) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot read the jobs folder {}: {e}",
                jobs_dir.display()
            );
            return exit::INVALID;
        }
    };
    for d in &loaded.diags {
        eprintln!("error: {d}");
    }
    for (name, why) in &loaded.left_out {
        let file = loaded.broken.get(name).cloned().unwrap_or_default();
        eprintln!(
            "left out: job `{name}` ({}) does not run: {why}",
            file.display()
        );
    }
    for job in loaded.jobs.values() {
        for w in crate::job::remote::check_warnings(job) {
            eprintln!("warning: {w}");
        }
        let local = job.source.remote.is_none() && job.source.mailbox.is_none();
        if local {
            for w in crate::sources::dir::check_warnings(&job.source.folder) {
                eprintln!("warning: {}: {w}", job.name);
            }
        }
        println!("ok: {} ({})", job.name, job.file.display());
    }
    let n_files = loaded.jobs.len() + loaded.broken.len();
    if loaded.diags.is_empty() && settings_problems == 0 {
        println!("{} job file(s) valid", loaded.jobs.len());
        exit::OK
    } else {
        eprintln!(
            "{} problem(s); {} of {n_files} job file(s) valid",
            loaded.diags.len() + settings_problems,
            loaded.jobs.len()
        );
        exit::INVALID
    }
}

/// For `ferry check`: ferry.toml's problems, printed; what jobs inherit from it (nothing
/// when it has problems) and how many problems it has.
fn check_settings(jobs_dir: &Path) -> (crate::settings::JobDefaults, usize) {
    match crate::settings::load(jobs_dir) {
        Ok(s) => {
            let path = crate::settings::path_for(jobs_dir);
            if path.exists() {
                println!("ok: settings ({})", path.display());
            }
            (s.jobs, 0)
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("error: {d}");
            }
            (Default::default(), diags.len())
        }
    }
}

fn find_job(jobs_dir: &Path, job: &str) -> Result<Job, i32> {
    let path = if job.ends_with(".toml") || job.contains('/') {
        PathBuf::from(job)
    } else {
        jobs_dir.join(format!("{job}.toml"))
    };
    if !path.exists() {
        eprintln!(
            "error: no job file {} (jobs are the *.toml files in {})",
            path.display(),
            jobs_dir.display()
        );
        return Err(exit::INVALID);
    }
    let root = job::deployment_root(path.parent().unwrap_or(Path::new(".")));
    // A job is tried with what it inherits from ferry.toml, as the daemon runs it.
    let defaults = match crate::settings::load(jobs_dir) {
        Ok(s) => s.jobs,
        Err(diags) => {
            for d in diags {
                eprintln!("error: {d}");
            }
            return Err(exit::INVALID);
        }
    };
    job::load_file_with(&path, &root, &defaults).map_err(|diags| {
        for d in diags {
            eprintln!("error: {d}");
        }
        exit::INVALID
    })
}

/// `ferry test JOB FILE`: a dry run that changes nothing.
pub fn test(jobs_dir: &Path, state_dir: &Path, job_name: &str, file: &Path) -> i32 {
    let job = match find_job(jobs_dir, job_name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    // A sample's records and errors may quote a secret: scrubbed as the logs are.
    let out = &mut crate::redact::Scrubbed::new(std::io::stdout().lock());
    let md = match std::fs::metadata(file) {
        Ok(md) if md.is_file() => md,
        Ok(_) => {
            eprintln!("error: {} is not a regular file", file.display());
            return exit::INVALID;
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return exit::INVALID;
        }
    };
    let abs = job::absolute(file);
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rel_dir = abs
        .parent()
        .and_then(|p| p.strip_prefix(&job.source.folder).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "job:       {} ({})", job.name, job.file.display());
    if let Some(d) = &job.description {
        let _ = writeln!(out, "           {d}");
    }
    let _ = writeln!(out, "file:      {} ({} bytes)", abs.display(), md.len());
    let _ = writeln!(out, "source:    {}", job.source.folder.display());
    let matches = show_taking(out, &job, &abs, &name);
    let conn = Journal::open_read_only(state_dir).ok().flatten();
    show_journal(out, &job, conn.as_ref(), &abs, &md);
    let seq = Journal::peek_seq(conn.as_ref(), &job.name);
    let taken = chrono::Local::now();
    // Names made of the file's first record (a PDF's captures, ...), as a run reads it.
    let first =
        crate::runtime::naming::record_for(&job, &abs, &name, &rel_dir).unwrap_or_else(|e| {
            let _ = writeln!(out, "names:     {e}");
            None
        });
    let vars = job::template::Vars {
        name: &name,
        dir: &rel_dir,
        job: &job.name,
        seq,
        taken,
        record: first.as_ref(),
        mail: None,
    };
    let _ = writeln!(out, "seq:       {seq} (the next number of this job)");
    // Every record is read first: split outputs are named after them, and what would fail
    // the file is found wherever it is.
    let records =
        (job.input.is_some() && matches).then(|| read_records(&job, &abs, &name, &rel_dir));
    let mut failures = Vec::new();
    match crate::runtime::process::preview(&job, &vars) {
        Ok(p) => {
            let groups = match &records {
                Some(Ok(r)) => &r.groups[..],
                _ => &[],
            };
            show_outputs(out, &job, &vars, &p, groups, &mut failures);
            show_set_and_pieces(out, &job, &abs, &vars, &p.extract_dirs, &mut failures);
            show_after(out, &job, &p, &name);
        }
        Err(e) => {
            let _ = writeln!(out, "error:     {e}");
            let _ = writeln!(out, "           the file would go to the error folder");
            failures.push(e.to_string());
        }
    }
    if let Some(r) = &records {
        show_records(out, &job, r, &mut failures);
    }
    let code = verdict(
        out,
        matches,
        &failures,
        records.as_ref().and_then(|r| r.as_ref().ok()),
    );
    let _ = writeln!(out, "(dry run: nothing was changed)");
    code
}

/// For `ferry test`: whether the job takes a file of this name, and when it is ready.
fn show_taking(out: &mut impl Write, job: &Job, abs: &Path, name: &str) -> bool {
    let matches = job.source.matches(name);
    if matches {
        let why = if job.source.include.is_empty() {
            "every file is included".to_string()
        } else {
            format!("include {:?}", job.source.include)
        };
        let _ = writeln!(out, "matches:   yes ({why})");
    } else {
        let _ = writeln!(
            out,
            "matches:   NO: the name {name:?} is not taken by this job (include {:?}, exclude {:?}, plus hidden and temporary names)",
            job.source.include, job.source.exclude
        );
    }
    match &job.source.ready {
        Ready::Settle => {
            let _ = writeln!(
                out,
                "ready:     once its size and modification time are unchanged for {:?}",
                job.source.settle
            );
        }
        Ready::DoneFile(_) => {
            let names = job.source.done_files(name);
            let present: Vec<&String> = names
                .iter()
                .filter(|n| abs.with_file_name(n).exists())
                .collect();
            let _ = writeln!(
                out,
                "ready:     when a done-file appears: {} (present now: {})",
                names.join(" or "),
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
    }
    matches
}

/// For `ferry test`: whether the journal has this very file as done already.
fn show_journal(
    out: &mut impl Write,
    job: &Job,
    conn: Option<&rusqlite::Connection>,
    abs: &Path,
    md: &std::fs::Metadata,
) {
    let mtime_ns = crate::sources::folder::meta_of(md).mtime_ns;
    if let Some((id, finished)) = conn.and_then(|c| {
        c.query_row(
            "SELECT id, finished_at FROM files WHERE job = ?1 AND path = ?2 AND size = ?3 AND mtime_ns = ?4 AND state = 'done' ORDER BY id DESC LIMIT 1",
            rusqlite::params![job.name, abs.to_string_lossy(), md.len() as i64, mtime_ns],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
        )
        .ok()
    }) {
        let _ = writeln!(
            out,
            "journal:   this exact file was processed on {} (history #{id}); it is not taken again while unchanged",
            finished.map(journal::fmt_time).unwrap_or_default()
        );
    }
}

/// For `ferry test`: every output the file would be written to, numbered as in the job
/// file; a split output once per group of records, named after the group's first record.
fn show_outputs(
    out: &mut impl Write,
    job: &Job,
    vars: &job::template::Vars<'_>,
    p: &crate::runtime::process::Preview,
    groups: &[crate::formats::Record],
    failures: &mut Vec<String>,
) {
    let split = crate::runtime::process::preview_split(job, vars, &p.split_dirs, groups);
    if p.outputs.is_empty() && p.split_dirs.is_empty() && p.extract_dirs.is_empty() {
        let _ = writeln!(out, "outputs:   none (the job only routes the original)");
    } else if p.outputs.is_empty() && p.split_dirs.is_empty() {
        let _ = writeln!(out, "outputs:   only files taken out of the PDF (below)");
    } else {
        let _ = writeln!(out, "outputs:");
    }
    let mut order: Vec<u32> = p.outputs.iter().map(|o| o.0).collect();
    order.extend(p.split_dirs.iter().map(|d| d.0));
    order.sort_unstable();
    for idx in order {
        if let Some((_, path, policy)) = p.outputs.iter().find(|o| o.0 == idx) {
            let _ = writeln!(out, "  {}. {}", idx + 1, path.display());
            if job.outputs.get(idx as usize).is_some_and(|o| o.combine) {
                let _ = writeln!(
                    out,
                    "     combined: a run's records all go into this one file (combine = true)"
                );
            }
            if fsutil::exists(path) {
                let _ = writeln!(
                    out,
                    "     exists already: {}",
                    exists_already(path, *policy)
                );
                if *policy == Exists::Fail {
                    failures.push(format!(
                        "output {}: {} exists already (exists = \"fail\")",
                        idx + 1,
                        path.display()
                    ));
                }
            }
        } else if let Some((_, dir)) = p.split_dirs.iter().find(|d| d.0 == idx) {
            let files: Vec<_> = split
                .iter()
                .filter(|(i, _)| *i == idx)
                .map(|(_, f)| f)
                .collect();
            show_split_output(out, job, (idx, dir), &files, failures);
        }
    }
}

/// For `ferry test`: a split output's files, one per group of records.
fn show_split_output(
    out: &mut impl Write,
    job: &Job,
    (idx, dir): (u32, &Path),
    files: &[&Result<PathBuf, String>],
    failures: &mut Vec<String>,
) {
    let _ = writeln!(
        out,
        "  {}. one file per value of `{}` in {}: {}",
        idx + 1,
        job.transform.split.as_deref().unwrap_or_default(),
        dir.display(),
        match files.len() {
            0 => "none (no record to write)".to_string(),
            1 => "1 file".to_string(),
            n => format!("{n} files"),
        }
    );
    for f in files {
        match f {
            Ok(path) => {
                let _ = writeln!(out, "     {}", path.display());
                if fsutil::exists(path) {
                    let policy = job.outputs[idx as usize].exists;
                    let _ = writeln!(
                        out,
                        "       exists already: {}",
                        exists_already(path, policy)
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "     ERROR: {e}");
                failures.push(e.clone());
            }
        }
    }
}

/// What happens to an output whose name is taken.
fn exists_already(path: &Path, policy: Exists) -> String {
    match policy {
        Exists::Fail => {
            "the file would FAIL and go to the error folder (exists = \"fail\")".to_string()
        }
        Exists::Overwrite => "it would be replaced (exists = \"overwrite\")".to_string(),
        Exists::Skip => "this output would be skipped (exists = \"skip\")".to_string(),
        Exists::Unique => {
            let free = (1..)
                .map(|n| fsutil::numbered(path, n))
                .find(|p| !fsutil::exists(p))
                .expect("free name");
            format!(
                "it would be written as {} (exists = \"unique\")",
                free.display()
            )
        }
    }
}

/// For `ferry test`: where the original goes after success, and after an error.
fn show_after(out: &mut impl Write, job: &Job, p: &crate::runtime::process::Preview, name: &str) {
    match (job.after.success, &p.archive_dir) {
        (Success::Archive, Some(dir)) => {
            let _ = writeln!(
                out,
                "then:      the original is archived to {}",
                dir.join(name).display()
            );
        }
        (Success::Delete, _) => {
            let _ = writeln!(out, "then:      the original is deleted");
        }
        _ => {
            let _ = writeln!(
                out,
                "then:      the original is kept in the source (the journal keeps it from being taken twice)"
            );
        }
    }
    if let Some(e) = &p.error_dir {
        let _ = writeln!(
            out,
            "on error:  the original goes to {} with {} beside it",
            e.join(name).display(),
            crate::runtime::process::report_path(&e.join(name))
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
    }
    if job.review.is_some() {
        let _ = writeln!(
            out,
            "review:    all of the above waits in the pending area until `ferry approve` (see `ferry pending`)"
        );
    }
}

/// The last line of `ferry test`, and its exit code: whether a run would deliver the file.
fn verdict(
    out: &mut impl Write,
    matches: bool,
    failures: &[String],
    records: Option<&crate::runtime::pipeline::Preview>,
) -> i32 {
    if !matches {
        let _ = writeln!(
            out,
            "verdict:   would not be taken: its name does not match the job"
        );
        return exit::FILE_FAILED;
    }
    if let Some(first) = failures.first() {
        let _ = writeln!(out, "verdict:   would fail: {first}");
        return exit::FILE_FAILED;
    }
    let counts = match records {
        Some(r) if r.rejected > 0 => format!(
            " ({} records read, {} to the rejects file)",
            r.read, r.rejected
        ),
        Some(r) => format!(" ({} records read)", r.read),
        None => String::new(),
    };
    let _ = writeln!(out, "verdict:   would deliver{counts}");
    exit::OK
}

/// `ferry test JOB FILE --text`: prints exactly the text the job's `[input]` reads its
/// records from (a PDF's text as capture patterns see it, an embedded file, or the file
/// decoded) and nothing else, for writing patterns.
pub fn test_text(jobs_dir: &Path, job_name: &str, file: &Path) -> i32 {
    let job = match find_job(jobs_dir, job_name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    if job.input.is_none() {
        eprintln!(
            "error: job {} has no [input]: it reads no text from its files",
            job.name
        );
        return exit::INVALID;
    }
    match crate::runtime::pipeline::input_text(&job, file) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            exit::FILE_FAILED
        }
    }
}

/// For `ferry test`: the members of the file's document set, and the files its `extract`
/// outputs would write (names and sizes), cut out of the PDF as a run would.
fn show_set_and_pieces(
    out: &mut impl Write,
    job: &job::Job,
    file: &Path,
    vars: &job::template::Vars<'_>,
    dirs: &[(u32, std::path::PathBuf)],
    failures: &mut Vec<String>,
) {
    use crate::runtime::sets::Role;
    let present = match crate::runtime::sets::role_of(job, file) {
        Ok(Role::Alone) => Vec::new(),
        Ok(Role::Member { lead }) => {
            let _ = writeln!(
                out,
                "set:       a member of a document set: taken along with {}",
                match lead {
                    Some(l) => format!("its lead {l}, which is present"),
                    None => "its lead (not present now: this file waits for it, until the set's timeout)".to_string(),
                }
            );
            return;
        }
        Ok(Role::Lead { present, missing }) => {
            let names: Vec<String> = present
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            let _ = writeln!(
                out,
                "set:       the lead, with {}{}",
                if names.is_empty() {
                    "no other member present".to_string()
                } else {
                    names.join(", ")
                },
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (missing now: {}; the set waits for them, until its timeout)",
                        missing.join(", ")
                    )
                }
            );
            present
        }
        Err(e) => {
            let _ = writeln!(out, "set:       {e}");
            let _ = writeln!(
                out,
                "           the set would FAIL and go to the error folder"
            );
            failures.push(e.to_string());
            return;
        }
    };
    if dirs.is_empty() {
        return;
    }
    match crate::runtime::extract::pieces(job, file, &present) {
        Ok(pieces) => {
            let _ = writeln!(out, "extracted: {} file(s)", pieces.len());
            for p in &pieces {
                match crate::runtime::extract::name_of(job, vars, dirs, p) {
                    Ok(path) => {
                        let _ = writeln!(
                            out,
                            "  output {}: {} ({} bytes){}",
                            p.output + 1,
                            path.display(),
                            p.data.len(),
                            if fsutil::exists(&path) {
                                format!(
                                    " exists already (exists = \"{}\")",
                                    job.outputs[p.output as usize].exists.as_str()
                                )
                            } else {
                                String::new()
                            }
                        );
                        if fsutil::exists(&path)
                            && job.outputs[p.output as usize].exists == Exists::Fail
                        {
                            failures.push(format!(
                                "output {}: {} exists already (exists = \"fail\")",
                                p.output + 1,
                                path.display()
                            ));
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "  output {}: error: {e}", p.output + 1);
                        failures.push(format!("output {}: {e}", p.output + 1));
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "extracted: error: cannot take the pieces out of the PDF: {e}"
            );
            let _ = writeln!(out, "           the file would go to the error folder");
            failures.push(format!("cannot take the pieces out of the PDF: {e}"));
        }
    }
}

/// `ferry history`.
pub fn history(jobs_dir: &Path, state_dir: &Path, filter: &HistoryFilter, json: bool) -> i32 {
    let conn = match Journal::open_read_only(state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot open the journal: {e}");
            return exit::FATAL;
        }
    };
    if let Some(name) = &filter.job
        && !job_is_known(jobs_dir, conn.as_ref(), name)
    {
        return unknown_job(jobs_dir, name);
    }
    let Some(conn) = conn else {
        warn_if_journal_lost(state_dir);
        if !json {
            println!("no history yet (no journal in {})", state_dir.display());
        }
        return exit::OK;
    };
    let rows = match journal::history(&conn, filter) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the journal: {e}");
            return exit::FATAL;
        }
    };
    if rows.is_empty() && !json {
        match &filter.job {
            Some(name) => println!("no file of job `{name}` matches"),
            None => println!("no file matches"),
        }
    }
    print_history(&conn, &rows, json);
    exit::OK
}

/// The rows of `ferry history`, as text or one JSON object per line.
fn print_history(conn: &rusqlite::Connection, rows: &[journal::FileHistory], json: bool) {
    let out = &mut std::io::stdout().lock();
    let now = crate::runtime::expect::now_ms(&crate::schedule::clock::Clock::from_env());
    for r in rows {
        // Two-way exchanges: what the file expects, or what it answers.
        let exchange = journal::expect::for_file(conn, r.id, now).unwrap_or_default();
        if json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if !exchange.is_empty()
                && let Some(o) = v.as_object_mut()
            {
                o.insert("exchange".into(), serde_json::json!(exchange));
            }
            let _ = writeln!(out, "{v}");
            continue;
        }
        let _ = writeln!(out, "#{} {} {} [{}]", r.id, r.job, r.path, r.state);
        let _ = writeln!(
            out,
            "    {} bytes, sha256 {}, attempt {}, seq {}",
            r.size,
            r.sha256.as_deref().unwrap_or("-"),
            r.attempts,
            r.seq
        );
        for o in &r.outputs {
            let _ = writeln!(
                out,
                "    output   {} ({} bytes, sha256 {})",
                o.path,
                o.size,
                if o.sha256.is_empty() { "-" } else { &o.sha256 }
            );
        }
        if let Some(o) = &r.original {
            let _ = writeln!(out, "    original {o}");
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "    error    {e}");
        }
        if let Some(s) = &r.seen {
            let _ = writeln!(out, "    {s}  seen");
        }
        for line in exchange.lines() {
            let _ = writeln!(out, "    {line}");
        }
        for e in &r.events {
            let _ = writeln!(out, "    {}  {} {}", e.at, e.state, e.detail);
        }
    }
}

/// `history --job NAME` for a job that is neither a job file nor in the journal.
fn unknown_job(jobs_dir: &Path, name: &str) -> i32 {
    let names = job_file_names(jobs_dir);
    eprintln!(
        "error: no job `{name}`: there is no job file {} and the journal has no file of it (jobs: {})",
        jobs_dir.join(format!("{name}.toml")).display(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    );
    exit::INVALID
}

/// No journal, but the state folder had one: it was lost, and `ferry run` will refuse to
/// start. Said on stderr, so that `--json` output stays as it is.
fn warn_if_journal_lost(state_dir: &Path) {
    if let Ok(Some(id)) = journal::recorded_id(state_dir) {
        eprintln!(
            "warning: the journal in {} is missing or empty, but this state folder had one (id {id}); `ferry run` refuses to start until it is restored (`ferry journal restore BACKUP`) or `--new-journal` accepts the loss",
            state_dir.display()
        );
    }
}

/// Whether `name` is a job: a job file names it, or the journal has its files.
fn job_is_known(jobs_dir: &Path, conn: Option<&rusqlite::Connection>, name: &str) -> bool {
    job_file_names(jobs_dir).iter().any(|n| n == name)
        || conn.is_some_and(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM files WHERE job = ?1)",
                [name],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(false)
        })
}

/// The stems of the job files (`*.toml`) in `jobs_dir`, sorted.
/// The names of the job files in `jobs_dir` (valid or not), sorted.
pub fn job_file_names(jobs_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(jobs_dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `ferry status`.
pub fn status(jobs_dir: &Path, state_dir: &Path, json: bool) -> i32 {
    let running = journal::running_pid(state_dir);
    let conn = match Journal::open_read_only(state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot open the journal: {e}");
            return exit::FATAL;
        }
    };
    let mut rows = match &conn {
        Some(c) => journal::job_status(c).unwrap_or_default(),
        None => {
            warn_if_journal_lost(state_dir);
            Vec::new()
        }
    };
    let defaults = crate::settings::load(jobs_dir)
        .map(|s| s.jobs)
        .unwrap_or_default();
    let loaded = job::load_dir_with(jobs_dir, &defaults).unwrap_or_default();
    let remote =
        crate::runtime::remote::status(conn.as_ref(), &loaded.jobs.values().collect::<Vec<_>>());
    for (name, job) in &loaded.jobs {
        match rows.iter_mut().find(|r| &r.job == name) {
            Some(r) => {
                r.source = Some(crate::sources::database::shown_source(job, r.source.take()))
            }
            None => rows.push(journal::JobStatusRow {
                job: name.clone(),
                source: Some(job.source.folder.display().to_string()),
                ..Default::default()
            }),
        }
    }
    rows.sort_by(|a, b| a.job.cmp(&b.job));
    let (queued, paused) = conn
        .as_ref()
        .and_then(|c| crate::runtime::retry::status(c).ok())
        .unwrap_or_default();
    if running.is_none() {
        // The count the daemon last reported says nothing about the source now: shown as
        // unknown, in the table and in JSON alike.
        for r in &mut rows {
            r.waiting = None;
        }
    }
    let waiting = |name: &str| rows.iter().find(|r| r.job == name).and_then(|r| r.waiting);
    let schedules = runs::schedules(conn.as_ref(), &loaded.jobs, &waiting, running.is_some());
    let exchanges = conn
        .as_ref()
        .and_then(|c| {
            let now = crate::runtime::expect::now_ms(&crate::schedule::clock::Clock::from_env());
            journal::expect::status(c, now).ok()
        })
        .unwrap_or_default();
    if json {
        let v = serde_json::json!({
            "running": running.is_some(),
            "pid": running,
            "jobs": rows,
            "remote": remote,
            "invalid_job_files": loaded.broken.values().collect::<Vec<_>>(),
            "schedules": schedules,
            "retry": { "queued": queued, "paused": paused },
            "exchanges": exchanges,
            "review": pending::status_json(conn.as_ref()),
        });
        println!("{v}");
        return exit::OK;
    }
    match &running {
        Some(pid) => println!(
            "ferry is running (pid {pid}); state in {}",
            state_dir.display()
        ),
        None => println!("ferry is not running; state in {}", state_dir.display()),
    }
    print_status_table(&rows, &remote, &loaded.broken);
    runs::print_schedules(&schedules);
    crate::runtime::retry::print_status(&queued, &paused);
    journal::expect::print_status(&exchanges);
    pending::print_status(conn.as_ref());
    exit::OK
}

/// The table of `ferry status`, its first column as wide as the longest job name.
fn print_status_table(
    rows: &[journal::JobStatusRow],
    remote: &[crate::runtime::remote::RemoteStatus],
    broken: &std::collections::BTreeMap<String, PathBuf>,
) {
    let w = rows
        .iter()
        .map(|r| r.job.chars().count())
        .chain(remote.iter().map(|r| r.job.chars().count()))
        .chain(broken.keys().map(|n| n.chars().count()))
        .fold(20, usize::max);
    println!(
        "{:<w$} {:>8} {:>12} {:>8} {:>8}  {:<23}  SOURCE",
        "JOB", "WAITING", "IN PROGRESS", "DONE", "FAILED", "LAST ACTIVITY"
    );
    for r in rows {
        println!(
            "{:<w$} {:>8} {:>12} {:>8} {:>8}  {:<23}  {}",
            r.job,
            r.waiting.map_or_else(|| "-".to_string(), |w| w.to_string()),
            r.in_progress,
            r.done,
            r.failed,
            r.last_activity.as_deref().unwrap_or("-"),
            r.source.as_deref().unwrap_or("(job file removed)")
        );
    }
    for r in remote {
        println!(
            "{:<w$} {:<9} {} pending  {}{}",
            r.job,
            r.part,
            r.pending,
            r.remote,
            r.last_error
                .as_ref()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    for (name, file) in broken {
        println!("{name:<w$} INVALID: run `ferry check` ({})", file.display());
    }
}

/// Reads every record of a file as the job would, keeping the first ones to show.
fn read_records(
    job: &Job,
    file: &Path,
    name: &str,
    dir: &str,
) -> Result<crate::runtime::pipeline::Preview, crate::formats::ParseError> {
    const SHOWN: usize = 5;
    let (stem, ext) = job::template::split_name(name);
    let meta = std::collections::BTreeMap::from([
        ("name".to_string(), name.to_string()),
        ("stem".to_string(), stem.to_string()),
        ("ext".to_string(), ext.to_string()),
        ("dir".to_string(), dir.to_string()),
        ("job".to_string(), job.name.clone()),
        ("source".to_string(), file.to_string_lossy().into_owned()),
    ]);
    crate::runtime::pipeline::preview(job, file, meta, SHOWN)
}

/// The first records of a file as the job reads, transforms and writes them.
fn show_records(
    out: &mut impl Write,
    job: &Job,
    p: &Result<crate::runtime::pipeline::Preview, crate::formats::ParseError>,
    failures: &mut Vec<String>,
) {
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "records:   cannot read the file: {e}");
            failures.push(format!("cannot read the file: {e}"));
            return;
        }
    };
    if let Some(e) = &p.failure {
        failures.push(e.to_string());
    }
    let _ = writeln!(
        out,
        "records:   the first {} as read, then as transformed:",
        p.parsed.len()
    );
    for (r, t) in p.parsed.iter().zip(&p.transformed) {
        let fields: Vec<String> = r.fields().map(|(k, v)| format!("{k}={v:?}")).collect();
        let _ = writeln!(
            out,
            "  #{} (line {}): {}",
            r.pos.record,
            r.pos.line,
            fields.join(" ")
        );
        match t {
            Ok(Some(t)) => {
                let fields: Vec<String> = t.fields().map(|(k, v)| format!("{k}={v:?}")).collect();
                let _ = writeln!(out, "     -> {}", fields.join(" "));
            }
            Ok(None) => {
                let _ = writeln!(out, "     -> dropped by the filter");
            }
            Err(e) => {
                let _ = writeln!(out, "     -> ERROR: {e}");
            }
        }
    }
    if let Some(e) = &p.error {
        let _ = writeln!(out, "  reading stops: {e}");
    }
    for (i, texts) in &p.outputs {
        for t in texts {
            let _ = match &t.group {
                Some(g) => writeln!(
                    out,
                    "output {}, the file for {} = {g:?}, as it would be written (these records only):",
                    i + 1,
                    job.transform.split.as_deref().unwrap_or_default()
                ),
                None => writeln!(
                    out,
                    "output {} as it would be written (these records only):",
                    i + 1
                ),
            };
            match &t.text {
                Ok(t) => {
                    for line in t.lines().take(40) {
                        let _ = writeln!(out, "  | {line}");
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "  ERROR: {e}");
                }
            }
        }
    }
}
