//! The `ferry` binary: parses the command line, sets up logging, and hands over to the
//! library (`ferry::runtime::run` for the daemon, `ferry::cli` for the admin commands).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ferry::cli::exit;

/// `ferry --version`: the release and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERRY_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "ferry",
    version = VERSION,
    about = "A watched-folder file integration engine: takes finished files from folders, delivers them atomically, never loses one.",
    after_help = "Examples:\n  ferry check                       validate every job in ./jobs\n  ferry run --once                  process what is waiting now, then exit\n  ferry run                         run as a daemon (Ctrl-C or SIGTERM stops it gracefully)\n  ferry test invoices samples/invoices/INV-2026-1001.xml
                                    dry-run one file through a job\n  ferry history --job invoices      what happened to each file\n  ferry status                      jobs, waiting files, failures"
)]
struct Cli {
    /// The folder of job files (one *.toml per job). Relative paths in jobs resolve against
    /// its parent folder, the deployment root.
    #[arg(long, global = true, default_value = "jobs", env = "FERRY_JOBS")]
    jobs: PathBuf,
    /// Where the journal lives [default: ferry.toml's `state`, else <deployment root>/var/state].
    #[arg(long, global = true, env = "FERRY_STATE")]
    state: Option<PathBuf>,
    /// Log format [default: ferry.toml's `[log] format`, else human].
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Log level filter, e.g. `info`, `debug`, `ferry=debug` (or RUST_LOG) [default:
    /// ferry.toml's `[log] level`, else info].
    #[arg(long, global = true, env = "FERRY_LOG")]
    log: Option<String>,
    /// Write the log to PATH.YYYY-MM-DD (a new file every day, UTC; the newest 31 kept)
    /// instead of stderr. Without it the log goes to stderr, where systemd gives it to
    /// journald (which adds its own timestamps: ferry then leaves its own out). [default:
    /// ferry.toml's `[log] file`]
    #[arg(long, global = true, env = "FERRY_LOG_FILE", value_name = "PATH")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every job: watch the sources and process files as they become ready.
    #[command(
        after_help = "Exit codes of `run --once`: 0 all files processed; 1 at least one file failed (it is in its error folder, with a report); 2 a job file is invalid (the valid jobs still ran); 3 ferry could not run (no jobs folder, state folder locked, journal unreadable or lost).\nThe daemon exits 0 after a clean stop (SIGINT/SIGTERM), whatever happened to files meanwhile, and 3 when it cannot run. SIGHUP makes it read the job files and ferry.toml again.\n\nExamples:\n  ferry run                     daemon; job file edits apply without a restart\n  ferry run --once              batch: take what is in the sources now, wait for files still being written, exit\n  ferry run --jobs /srv/ferry/jobs --log-format json"
    )]
    Run {
        /// Take what is in the sources now (waiting for files still being written),
        /// process it and exit. Every job runs once, scheduled or not, inside its `active`
        /// windows or not.
        #[arg(long)]
        once: bool,
        /// How many files are processed at once, over all jobs [default: ferry.toml's
        /// `workers`, else 32].
        #[arg(long)]
        workers: Option<usize>,
        /// On SIGINT/SIGTERM, how long to wait for files in progress before exiting (they
        /// are redone safely at the next start).
        #[arg(long, default_value = "30s", value_parser = ferry::job::toml_reader::parse_duration)]
        grace: Duration,
        /// Start although the journal this state folder had is gone (deleted, emptied or
        /// replaced): begin a new one (or go on with the one found), accepting that files
        /// kept in their sources (`success = "keep"`) will be taken again.
        #[arg(long)]
        new_journal: bool,
        /// Serve /healthz, /readyz and /metrics on ADDR:PORT (loopback only unless
        /// authentication is configured) [default: ferry.toml's `http`, else none].
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<std::net::SocketAddr>,
    },
    /// Validate ferry.toml and every job file; report every problem with file:line:column.
    #[command(
        after_help = "Exit codes: 0 every job file is valid; 2 at least one problem.\n\nExample:\n  ferry check --jobs /srv/ferry/jobs"
    )]
    Check,
    /// Dry run: show what the job would do with FILE. Changes nothing.
    #[command(
        after_help = "Exit codes: 0 a run would deliver the file (verdict: would deliver); 1 it would not take it, or would fail it (verdict: would fail: REASON); 2 bad job or file.\n\nExamples:\n  ferry test invoices samples/invoices/INV-2026-1001.xml\n  ferry test jobs/invoices.toml /tmp/x.pdf"
    )]
    Test {
        /// The job's name (its file's stem) or the path of its file.
        job: String,
        /// A sample file; it may be anywhere.
        file: PathBuf,
        /// Print only the text the job's [input] reads records from (a PDF's text, exactly
        /// as capture patterns see it; an embedded file; or the file decoded), nothing else.
        #[arg(long)]
        text: bool,
    },
    /// What happened to each file: seen, taken, outputs (path, sha256), where the original
    /// went, or why it failed.
    #[command(
        after_help = "Examples:\n  ferry history --job invoices\n  ferry history --file 'INV-*.xml' --limit 0\n  ferry history --json | jq .state      (one JSON object per line)"
    )]
    History {
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// Only files whose name or path matches this glob.
        #[arg(long)]
        file: Option<String>,
        /// One JSON object per file and line.
        #[arg(long)]
        json: bool,
        /// Show the newest N files; 0 shows all.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Every job, its source, files waiting / in progress / failed, last activity.
    #[command(after_help = "Example:\n  ferry status --json")]
    Status {
        /// One JSON object: `running`, `pid`, `jobs` (one object per job, with the table's
        /// columns; `waiting` is null while ferry is not running), `remote`,
        /// `invalid_job_files`, `schedules` (scheduled and windowed jobs: last run, next
        /// run, window), `review` (files waiting for a decision, per reviewed job).
        #[arg(long)]
        json: bool,
    },
    /// The runs of scheduled jobs: why each ran, when, and what it took, delivered and
    /// failed.
    #[command(
        after_help = "Examples:\n  ferry runs --job nightly\n  ferry runs --json | jq .delivered      (one JSON object per run and line)"
    )]
    Runs {
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// One JSON object per run and line, with the files of the run.
        #[arg(long)]
        json: bool,
        /// Show the newest N runs; 0 shows all.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Start a run of a scheduled job now, in the running daemon.
    #[command(
        after_help = "The daemon takes the request within a second (it looks for <state>/triggers/JOB). A run in progress finishes first. Outside the job's `active` windows too.\n\nExit codes: 0 the daemon took it (or will); 2 no such scheduled job; 3 ferry is not running.\n\nExample:\n  ferry trigger nightly"
    )]
    Trigger {
        /// The job's name (its file's stem).
        job: String,
    },
    /// Put failed files back from their error folder into their source, as a new attempt
    /// (recorded in `ferry history` beside the earlier ones). Works with or without a
    /// running daemon.
    #[command(
        after_help = "Exit codes: 0 every chosen file was put back; 1 at least one could not be (said why); 3 ferry could not run.\n\nExamples:\n  ferry retry 42                 the file with id 42 (see `ferry history`)\n  ferry retry --job invoices     every failed file of a job\n  ferry retry --all-failed"
    )]
    Retry {
        /// The file's id, as `ferry history` shows it.
        #[arg(required_unless_present_any = ["job", "all_failed"], conflicts_with_all = ["job", "all_failed"])]
        id: Option<i64>,
        /// Every failed file of this job.
        #[arg(long, conflicts_with = "all_failed")]
        job: Option<String>,
        /// Every failed file of every job.
        #[arg(long)]
        all_failed: bool,
    },
    /// Files of reviewed jobs (`[review]`) waiting for a decision: job, file, when, records,
    /// and what they would change compared with the last approved file.
    #[command(
        after_help = "Exit codes: 0 listed; 1 (show) no such pending file; 2 (show) the job's [review] has no `key`, so what would change cannot be shown (the rest is printed); 3 the journal cannot be read.\n\nExamples:\n  ferry pending\n  ferry pending --json | jq '.[].changes'\n  ferry pending show 42"
    )]
    Pending {
        #[command(subcommand)]
        action: Option<PendingAction>,
        /// A JSON array, one object per pending file.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending file: its held outputs are delivered (once) and its original
    /// archived as the job says.
    #[command(
        after_help = "The decision (who: the OS user, when) is recorded in the journal first, then carried out: at once when no ferry runs, else by the running ferry within seconds. A crash in between loses nothing: the next start carries it out.\n\nExit codes: 0 approved (and carried out, or left to the running ferry); 1 refused (unknown id, decided already, still being held) or not carried out yet (said why); 3 the journal cannot be written.\n\nExample:\n  ferry approve 42"
    )]
    Approve {
        /// The pending file's id, as `ferry pending` shows it.
        id: i64,
    },
    /// Reject a pending file: its original goes to the error folder with the reason in its
    /// report; its held outputs are dropped.
    #[command(
        after_help = "Exit codes: 0 rejected; 1 refused (unknown id, decided already); 2 no reason given; 3 the journal cannot be written.\n\nExample:\n  ferry reject 42 --why \"prices of group 7 are wrong\""
    )]
    Reject {
        /// The pending file's id, as `ferry pending` shows it.
        id: i64,
        /// Why: written into the error report and the file's history.
        #[arg(long)]
        why: String,
    },
    /// Print the JSON Schema of job files, for completion and hover help in editors
    /// (taplo, VS Code's Even Better TOML).
    #[command(
        after_help = "Examples:\n  ferry schema > ferry.schema.json\n  ferry schema --settings > ferry-settings.schema.json"
    )]
    Schema {
        /// The schema of ferry.toml, the installation-wide settings, instead.
        #[arg(long)]
        settings: bool,
    },
    /// The journal: back it up while ferry runs, or put a backup back.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Windows: install, start, stop or remove ferry as a Windows service. (On Linux, the
    /// service is systemd's: install/install.sh.)
    #[command(
        after_help = "Examples (as Administrator):\n  ferry --jobs C:\\ProgramData\\ferry\\jobs service install --user CORP\\svc-ferry --password-env FERRY_PW\n  ferry service start\n  ferry service status\n  ferry service stop\n  ferry service uninstall"
    )]
    Service {
        #[command(subcommand)]
        action: ferry::service_command::ServiceCommand,
    },
    /// Read a password on stdin and print its argon2 hash, for a `[[http.users]]`
    /// `password_hash` in ferry.toml (the web console's users; docs/console.md).
    #[command(
        after_help = "The password is read from the first line of stdin (typed, or piped); only its hash is printed.\n\nExample:\n  ferry hash-password          then type the password and Enter"
    )]
    HashPassword,
}

#[derive(Subcommand)]
enum PendingAction {
    /// One pending file in detail: its held outputs and where they go, and every record
    /// added, removed or changed (old -> new) compared with the last approved file.
    Show {
        /// The pending file's id.
        id: i64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// Copies the journal to PATH (a file, or a folder for a dated file) with SQLite's online
    /// backup: a consistent copy, safe while ferry runs.
    #[command(
        after_help = "Exit codes: 0 the backup is written (complete and checked); 3 it could not be made.\n\nExamples:\n  ferry journal backup /backup/ferry/journal.sqlite\n  ferry journal backup /backup/ferry/        (writes journal-YYYYMMDD-HHMMSS.sqlite there)"
    )]
    Backup {
        /// Where to write the backup; an existing file is replaced atomically.
        path: PathBuf,
    },
    /// Puts a backup back as the journal. ferry must be stopped.
    #[command(
        after_help = "Files taken after the backup was made are not in it: files kept in their sources (success = \"keep\") since then will be taken again.\n\nExit codes: 0 restored; 3 it could not be restored (ferry is running, not a journal).\n\nExample:\n  ferry journal restore /backup/ferry/journal.sqlite"
    )]
    Restore {
        /// The backup file (made by `ferry journal backup`).
        backup: PathBuf,
    },
}

/// Every log line goes through the redactor (no secret value is ever written), and the
/// libraries that trace credentials are capped unless the filter names them. Returns what
/// changes the filter later (a reload of ferry.toml), unless RUST_LOG fixed it.
fn init_logging(
    format: LogFormat,
    filter: &str,
    file: Option<&std::path::Path>,
) -> Option<ferry::settings::live::LogLevel> {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::reload;
    use tracing_subscriber::{EnvFilter, fmt};
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(&f).ok().map(|e| (f, e)));
    let fixed = from_env.is_some();
    let (spec, filter) = match from_env {
        Some(from_env) => from_env,
        None => (
            filter.to_string(),
            EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")),
        ),
    };
    let writer = match file {
        // On a terminal, `run --once` draws a progress line that log lines lift.
        None => BoxMakeWriter::new(ferry::redact::Redacting::new(
            ferry::runtime::progress::stderr,
        )),
        Some(path) => match ferry::service::log_file(path) {
            Ok(appender) => BoxMakeWriter::new(ferry::redact::Redacting::new(appender)),
            Err(e) => {
                eprintln!("error: cannot write the log file {}: {e}", path.display());
                std::process::exit(exit::FATAL);
            }
        },
    };
    let layer = fmt::layer()
        .with_writer(writer)
        .with_ansi(file.is_none() && std::io::stderr().is_terminal());
    let caps = ferry::redact::library_caps(&spec, filter.max_level_hint());
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (caps, caps_handle) = reload::Layer::new(caps);
    let registry = tracing_subscriber::registry().with(filter).with(caps);
    // journald stamps every line itself.
    let journald = file.is_none() && ferry::service::stderr_is_journal();
    match format {
        LogFormat::Human if journald => registry.with(layer.without_time()).init(),
        LogFormat::Human => registry.with(layer).init(),
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
    let set = move |spec: &str| -> Result<(), String> {
        let filter = EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
        let caps = ferry::redact::library_caps(spec, filter.max_level_hint());
        filter_handle.reload(filter).map_err(|e| e.to_string())?;
        caps_handle.reload(caps).map_err(|e| e.to_string())
    };
    (!fixed).then(|| ferry::settings::live::LogLevel(std::sync::Arc::new(set)))
}

/// ferry.toml beside the jobs folder; a broken one stops every command but `check` (which
/// reports it) and `schema`, with its problems (exit 2).
fn settings(cli: &Cli) -> ferry::settings::Settings {
    if matches!(
        cli.command,
        Command::Schema { .. } | Command::Check | Command::HashPassword
    ) {
        return Default::default();
    }
    match ferry::settings::load(&cli.jobs) {
        Ok(s) => s,
        Err(diags) => {
            for d in &diags {
                eprintln!("error: {d}");
            }
            eprintln!(
                "{} problem(s) in {}; nothing was done (`ferry check` lists them with the job files' problems)",
                diags.len(),
                ferry::settings::path_for(&cli.jobs).display()
            );
            std::process::exit(exit::INVALID);
        }
    }
}

/// Starts logging as the flags, then ferry.toml, say; gives back the handle that changes
/// the level live (ferry.toml reloaded), if the level may change.
fn start_logging(
    cli: &Cli,
    settings: &ferry::settings::Settings,
) -> Option<ferry::settings::live::LogLevel> {
    let log_format = cli
        .log_format
        .or(settings.log_format.map(|f| match f {
            ferry::settings::LogFormat::Human => LogFormat::Human,
            ferry::settings::LogFormat::Json => LogFormat::Json,
        }))
        .unwrap_or(LogFormat::Human);
    let log = cli
        .log
        .clone()
        .or(settings.log_level.clone())
        .unwrap_or_else(|| "info".into());
    // A Windows service has no stderr to read: its log goes to a file even when neither
    // the command line nor ferry.toml say where.
    let log_file = cli
        .log_file
        .clone()
        .or(settings.log_file.clone())
        .or_else(|| {
            (cfg!(windows)
                && matches!(
                    cli.command,
                    Command::Service {
                        action: ferry::service_command::ServiceCommand::Run { .. }
                    }
                ))
            .then(|| ferry::service_command::default_log_file(&cli.jobs))
        });
    init_logging(log_format, &log, log_file.as_deref())
}

/// The state folder: `--state`, else ferry.toml's `state`, else `var/state` of the
/// deployment.
fn state_dir(cli: &Cli, settings: &ferry::settings::Settings) -> PathBuf {
    cli.state
        .as_deref()
        // A relative --state is the cwd's, as before; absolute, its folders can be made.
        .map(ferry::job::absolute)
        .or(settings.state.clone())
        .unwrap_or_else(|| ferry::job::deployment_root(&cli.jobs).join("var/state"))
}

fn main() {
    let cli = Cli::parse();
    // Precedence: a flag (or its environment variable) > ferry.toml > the built-in default.
    let settings = settings(&cli);
    let set_log_level = start_logging(&cli, &settings);
    settings.jobs.learn_secrets();
    if !matches!(cli.command, Command::Run { .. }) {
        // `run` learns them as it loads (and reloads) the jobs.
        ferry::job::secrets::learn_jobs_dir(&cli.jobs);
    }
    let state = state_dir(&cli, &settings);
    let code = match cli.command {
        Command::Check => ferry::cli::check(&cli.jobs),
        Command::HashPassword => hash_password(),
        Command::Schema { settings } => ferry::cli::schema(settings),
        Command::Test {
            job,
            file,
            text: true,
        } => ferry::cli::test_text(&cli.jobs, &job, &file),
        Command::Test { job, file, .. } => ferry::cli::test(&cli.jobs, &state, &job, &file),
        Command::History {
            job,
            file,
            json,
            limit,
        } => history(&cli.jobs, &state, job, file, limit, json),
        Command::Journal { action } => journal(&state, action),
        Command::Retry {
            id,
            job,
            all_failed: _,
        } => retry(&state, id, job),
        Command::Pending { action, json } => match action {
            None => ferry::cli::pending::list(&cli.jobs, &state, json),
            Some(PendingAction::Show { id, json: j }) => {
                ferry::cli::pending::show(&cli.jobs, &state, id, json || j)
            }
        },
        Command::Approve { id } => ferry::cli::pending::approve(&state, id),
        Command::Reject { id, why } => ferry::cli::pending::reject(&state, id, &why),
        Command::Status { json } => ferry::cli::status(&cli.jobs, &state, json),
        Command::Runs { job, json, limit } => {
            ferry::cli::runs::runs(&cli.jobs, &state, job.as_deref(), limit, json)
        }
        Command::Trigger { job } => ferry::cli::runs::trigger(&cli.jobs, &state, &job),
        Command::Service { ref action } => {
            let globals = ferry::service_command::Globals {
                jobs: cli.jobs.clone(),
                state: cli.state.clone(),
                state_dir: state.clone(),
                log_file: cli.log_file.clone(),
                log: cli.log.clone(),
                log_format: cli.log_format.map(|f| match f {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }),
            };
            let run_options = |workers: Option<usize>, grace| {
                run_options(&cli, state, settings, set_log_level, workers, grace)
            };
            ferry::service_command::run(action.clone(), &globals, run_options)
        }
        Command::Run {
            once,
            workers,
            grace,
            new_journal,
            http,
        } => {
            let base = run_options(&cli, state, settings, set_log_level, workers, grace);
            let opts = ferry::runtime::RunOptions {
                once,
                new_journal,
                http: http.or(base.http),
                ..base
            };
            run(opts)
        }
    };
    std::process::exit(code);
}

/// `ferry history`: `--file` is a glob.
fn history(
    jobs: &std::path::Path,
    state: &std::path::Path,
    job: Option<String>,
    file: Option<String>,
    limit: usize,
    json: bool,
) -> i32 {
    let file = match file.map(|g| globset::Glob::new(&g).map(|g| g.compile_matcher())) {
        Some(Err(e)) => {
            eprintln!("error: --file: {e}");
            return exit::INVALID;
        }
        Some(Ok(m)) => Some(m),
        None => None,
    };
    let filter = ferry::journal::HistoryFilter { job, file, limit };
    ferry::cli::history(jobs, state, &filter, json)
}

/// `ferry retry ID | --job JOB | --all-failed`.
fn retry(state: &std::path::Path, id: Option<i64>, job: Option<String>) -> i32 {
    use ferry::runtime::retry::requeue::{Which, run};
    let which = match (id, job) {
        (Some(id), _) => Which::Id(id),
        (None, Some(j)) => Which::Job(j),
        (None, None) => Which::AllFailed,
    };
    match run(state, &which) {
        Ok((_, 0)) => exit::OK,
        Ok(_) => exit::FILE_FAILED,
        Err(e) => {
            eprintln!("error: {}", ferry::redact::scrub(&format!("{e:#}")));
            exit::FATAL
        }
    }
}

/// The daemon's options (`ferry run`, and the Windows service): flags first, then
/// ferry.toml, then the built-in defaults; ferry.toml is watched for what can change live.
fn run_options(
    cli: &Cli,
    state: PathBuf,
    settings: ferry::settings::Settings,
    set_log_level: Option<ferry::settings::live::LogLevel>,
    workers: Option<usize>,
    grace: Duration,
) -> ferry::runtime::RunOptions {
    let fixed = ferry::settings::live::Fixed {
        state: cli.state.is_some(),
        workers: workers.is_some(),
        log_format: cli.log_format.is_some(),
        log_level: cli.log.is_some() || set_log_level.is_none(),
        log_file: cli.log_file.is_some(),
        http: matches!(cli.command, Command::Run { http: Some(_), .. }),
    };
    ferry::runtime::RunOptions {
        jobs_dir: cli.jobs.clone(),
        state_dir: state,
        once: false,
        workers: workers.or(settings.workers).unwrap_or(32),
        grace,
        new_journal: false,
        http: settings.http,
        pages: Some(ferry::web::Pages(std::sync::Arc::new(
            ferry::console::pages,
        ))),
        settings: ferry::settings::live::Live::new(&cli.jobs, settings, fixed, set_log_level),
    }
}

fn run(opts: ferry::runtime::RunOptions) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FATAL;
        }
    };
    let once = opts.once;
    let result = rt.block_on(ferry::runtime::run(opts));
    // Blocking tasks still running after the grace period are abandoned: the journal lets
    // the next start redo them.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        // A daemon that was stopped cleanly exits 0: a file that failed is in its error folder
        // with a report, not a failure of the service.
        Ok(_) if !once => exit::OK,
        Ok(s) if s.failed > 0 || s.expect_problems > 0 => exit::FILE_FAILED,
        Ok(s) if s.invalid_jobs > 0 => exit::INVALID,
        Ok(_) => exit::OK,
        Err(e) => {
            // Printed once, plainly: the log goes to stderr too.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            exit::FATAL
        }
    }
}

/// `ferry hash-password`: the first line of stdin, hashed.
fn hash_password() -> i32 {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprint!("password (shown as typed; the hash alone is printed): ");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return exit::FATAL;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: the password is empty; type it (or pipe it) on stdin");
        return exit::INVALID;
    }
    match ferry::console::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot hash the password: {e}");
            exit::FATAL
        }
    }
}

fn journal(state: &std::path::Path, action: JournalAction) -> i32 {
    use ferry::journal::backup;
    let (result, verb) = match &action {
        JournalAction::Backup { path } => (backup::backup(state, path), "backed up to"),
        JournalAction::Restore { backup: from } => (backup::restore(state, from), "restored as"),
    };
    match result {
        Ok(c) => {
            println!(
                "journal {verb} {} ({} file(s) recorded, newest activity {})",
                c.path.display(),
                c.files,
                c.newest
                    .map(ferry::journal::fmt_time)
                    .unwrap_or_else(|| "-".into())
            );
            if let Some(n) = &c.note {
                eprintln!("note: {n}");
            }
            exit::OK
        }
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", ferry::redact::scrub(&chain.join(": ")));
            exit::FATAL
        }
    }
}
