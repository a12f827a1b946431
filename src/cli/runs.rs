//! `ferry runs`, `ferry trigger`, and the schedule lines of `ferry status` (issue 14,
//! schedules).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Say, exit};
use crate::job::{self, Job};
use crate::journal::runs::{self, RunRow};
use crate::journal::{self, Journal};
use crate::schedule::{Clock, When};

/// `ferry runs [--job NAME] [--limit N] [--json]`.
pub fn runs(jobs_dir: &Path, state_dir: &Path, job: Option<&str>, limit: usize, json: bool) -> i32 {
    let conn = match Journal::open_read_only(state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot open the journal: {e}");
            return exit::FATAL;
        }
    };
    let rows = match &conn {
        Some(c) => match runs::list(c, job, limit) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read the runs: {e}");
                return exit::FATAL;
            }
        },
        None => Vec::new(),
    };
    if let Some(name) = job
        && rows.is_empty()
        && !jobs_dir.join(format!("{name}.toml")).exists()
    {
        eprintln!(
            "error: no job `{name}`: there is no job file {} and the journal has no run of it",
            jobs_dir.join(format!("{name}.toml")).display()
        );
        return exit::INVALID;
    }
    let out = &mut std::io::stdout().lock();
    use std::io::Write;
    if json {
        for r in &rows {
            let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        return exit::OK;
    }
    let w = rows
        .iter()
        .map(|r| r.job.chars().count())
        .fold(12, usize::max);
    let _ = writeln!(
        out,
        "{:<w$} {:>5}  {:<8}  {:<23}  {:<23}  {:<23}  {:<11} {:>6} {:>9} {:>6}",
        "JOB",
        "RUN",
        "WHY",
        "SLOT",
        "STARTED",
        "FINISHED",
        "RESULT",
        "TAKEN",
        "DELIVERED",
        "FAILED"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<w$} {:>5}  {:<8}  {:<23}  {:<23}  {:<23}  {:<11} {:>6} {:>9} {:>6}",
            r.job,
            r.run,
            r.why,
            journal::fmt_time(r.slot_ms),
            journal::fmt_time(r.started_ms),
            r.finished_ms.map_or("-".to_string(), journal::fmt_time),
            r.result,
            r.taken,
            r.delivered,
            r.failed
        );
    }
    exit::OK
}

/// How long `ferry trigger` waits for the daemon to take the trigger.
const TRIGGER_WAIT: Duration = Duration::from_secs(10);

/// `ferry trigger JOB`: asks the running daemon to start a run of a scheduled job now, by
/// writing `<state>/triggers/JOB`, which the daemon's job looks for every second and removes
/// when it takes it (docs/schedules.md).
pub fn trigger(jobs_dir: &Path, state_dir: &Path, name: &str) -> i32 {
    trigger_with(jobs_dir, state_dir, name, &mut super::print)
}

/// [`trigger`], saying what it does through `say` (the web console's "Run now").
pub fn trigger_with(
    jobs_dir: &Path,
    state_dir: &Path,
    name: &str,
    say: &mut dyn FnMut(Say),
) -> i32 {
    let loaded = job::load_dir(jobs_dir).unwrap_or_default();
    let Some(job) = loaded.jobs.get(name) else {
        if loaded.broken.contains_key(name) {
            say(Say::Err(format!(
                "error: the job file of `{name}` has errors; `ferry check` lists them"
            )));
        } else {
            let names: Vec<&str> = loaded.jobs.keys().map(String::as_str).collect();
            say(Say::Err(format!(
                "error: no job `{name}` in {} (jobs: {})",
                jobs_dir.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        return exit::INVALID;
    };
    if !job.source.timing.is_scheduled() {
        say(Say::Err(format!(
            "error: `{name}` is not a scheduled job (it has no `schedule` or `every`): it takes files as soon as they are ready"
        )));
        return exit::INVALID;
    }
    if journal::running_pid(state_dir).is_none() {
        say(Say::Err(format!(
            "error: ferry is not running (state in {}); `ferry run --once` runs every job once now",
            state_dir.display()
        )));
        return exit::FATAL;
    }
    let dir = crate::runtime::runs::trigger_dir(state_dir);
    let path = dir.join(name);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let temp = dir.join(crate::fsutil::temp_name());
        std::fs::write(&temp, jiff::Timestamp::now().to_string())?;
        std::fs::rename(&temp, &path)
    });
    if let Err(e) = written {
        say(Say::Err(format!(
            "error: cannot write the trigger {}: {e}",
            path.display()
        )));
        return exit::FATAL;
    }
    let start = Instant::now();
    while start.elapsed() < TRIGGER_WAIT {
        if !crate::fsutil::exists(&path) {
            say(Say::Out(format!(
                "{name}: run triggered (it starts now, or right after the run in progress); `ferry runs --job {name}` shows it"
            )));
            return exit::OK;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say(Say::Out(format!(
        "{name}: the trigger is written but ferry has not taken it yet; it runs the job when it does"
    )));
    exit::OK
}

/// A scheduled or windowed job in `ferry status`.
#[derive(Debug, Serialize)]
pub struct ScheduleStatus {
    pub job: String,
    /// `schedule "0 23 * * *" (Europe/Athens)`, `every 3h`, or `on events`.
    pub schedule: String,
    pub timezone: String,
    pub active: Vec<String>,
    /// The last run, as `ferry runs --json` shows it but without its `files`.
    pub last_run: Option<RunRow>,
    /// RFC 3339 (UTC); `null` without a schedule.
    pub next_run: Option<String>,
    /// A slot passed while ferry was stopped: it runs once at the next start.
    pub missed: bool,
    /// Inside the `active` windows now (always `true` without windows).
    pub inside_window: bool,
    /// When the window opens (outside) or closes (inside); RFC 3339 (UTC).
    pub window_until: Option<String>,
    /// Files waiting for a run or a window (known while ferry runs).
    pub waiting: Option<u64>,
    #[serde(skip)]
    text: String,
}

/// The schedule lines of every gated job.
pub fn schedules(
    conn: Option<&rusqlite::Connection>,
    jobs: &std::collections::BTreeMap<String, Job>,
    waiting: &dyn Fn(&str) -> Option<u64>,
    running: bool,
) -> Vec<ScheduleStatus> {
    let now = Clock::from_env().now();
    let mut out = Vec::new();
    for (name, job) in jobs {
        let t = &job.source.timing;
        if !t.is_gated() {
            continue;
        }
        // Without its files: `ferry runs` lists them; a status stays small.
        let last = conn
            .and_then(|c| runs::last_run(c, name).ok().flatten())
            .map(|mut r| {
                r.files.clear();
                r
            });
        // A combined run's retry keeps the failed run's slot: the schedule counts from the
        // last run that was not a retry.
        let slot_ms = match &last {
            Some(r) if r.why == "retry" => conn
                .and_then(|c| runs::last_slot_run(c, name).ok().flatten())
                .map(|r| r.slot_ms),
            other => other.as_ref().map(|r| r.slot_ms),
        };
        let last_slot = slot_ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
        let anchor = match (&t.when, last_slot) {
            (Some(When::Every(_)), Some(s)) => s,
            _ => now,
        };
        let missed = !running && last_slot.is_some_and(|l| t.latest_slot(l, now, anchor).is_some());
        let next = t.next_slot(now, anchor);
        let inside = t.inside(now);
        let until = t.window_change(now);
        let waiting = waiting(name);
        let mut text = String::new();
        if t.is_scheduled() {
            text.push_str(&t.describe());
            match &last {
                Some(r) => text.push_str(&format!(
                    ": last run {} {} ({}, {} taken, {} delivered, {} failed)",
                    t.local(jiff::Timestamp::from_millisecond(r.started_ms).unwrap_or(now)),
                    r.result,
                    r.why,
                    r.taken,
                    r.delivered,
                    r.failed
                )),
                None => text.push_str(": no run yet"),
            }
            if last.as_ref().is_some_and(|r| r.result == "queued") {
                text.push_str("; files of it wait in the retry queue");
            }
            if missed {
                text.push_str("; a run was missed: it runs once at the next start");
            }
            match next {
                Some(n) => text.push_str(&format!("; next run {}", t.local(n))),
                None => text.push_str("; no next run inside its windows"),
            }
            if let Some(w) = waiting {
                text.push_str(&format!(", {w} file(s) waiting"));
            }
        } else if !inside {
            text.push_str("outside its window");
            if let Some(u) = until {
                text.push_str(&format!(" until {}", t.local(u)));
            }
            match waiting {
                Some(w) => text.push_str(&format!(", {w} file(s) waiting")),
                None => text.push_str(", files wait"),
            }
        } else {
            text.push_str("inside its window");
            if let Some(u) = until {
                text.push_str(&format!(" until {}", t.local(u)));
            }
        }
        out.push(ScheduleStatus {
            job: name.clone(),
            schedule: t.describe(),
            timezone: t.zone_name.clone(),
            active: t.active.iter().map(|w| w.text.clone()).collect(),
            last_run: last,
            next_run: next.map(|n| n.to_string()),
            missed,
            inside_window: inside,
            window_until: until.map(|u| u.to_string()),
            waiting,
            text,
        });
    }
    out
}

/// The schedule lines under `ferry status`'s table.
pub fn print_schedules(list: &[ScheduleStatus]) {
    if list.is_empty() {
        return;
    }
    let w = list
        .iter()
        .map(|s| s.job.chars().count())
        .fold(20, usize::max);
    println!();
    println!("{:<w$} SCHEDULE", "JOB");
    for s in list {
        println!("{:<w$} {}", s.job, s.text);
    }
}
