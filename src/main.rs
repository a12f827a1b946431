//! The `ferry` binary: parses the command line, sets up logging, and hands over to the
//! library (`ferry::runtime::run` for the daemon, `ferry::cli` for the admin commands).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ferry::cli::exit;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "A watched-folder file integration engine: takes finished files from folders, delivers them atomically, never loses one.",
    after_help = "Examples:\n  ferry check                       validate every job in ./jobs\n  ferry run --once                  process what is waiting now, then exit\n  ferry run                         run as a daemon (Ctrl-C or SIGTERM stops it gracefully)\n  ferry test invoices samples/a.xml dry-run one file through a job\n  ferry history --job invoices      what happened to each file\n  ferry status                      jobs, waiting files, failures"
)]
struct Cli {
    /// The folder of job files (one *.toml per job). Relative paths in jobs resolve against
    /// its parent folder, the deployment root.
    #[arg(long, global = true, default_value = "jobs", env = "FERRY_JOBS")]
    jobs: PathBuf,
    /// Where the journal lives [default: <deployment root>/var/state].
    #[arg(long, global = true, env = "FERRY_STATE")]
    state: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log level filter, e.g. `info`, `debug`, `ferry=debug` (or RUST_LOG).
    #[arg(long, global = true, default_value = "info", env = "FERRY_LOG")]
    log: String,
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
        after_help = "Exit codes: 0 all files processed; 1 at least one file failed (it is in its error folder, with a report); 2 a job file is invalid (the valid jobs still ran); 3 ferry could not run (state folder locked, journal unreadable).\n\nExamples:\n  ferry run                     daemon; job file edits apply without a restart\n  ferry run --once              batch: take what is in the sources now, wait for files still being written, exit\n  ferry run --jobs /srv/ferry/jobs --log-format json"
    )]
    Run {
        /// Take what is in the sources now (waiting for files still being written),
        /// process it and exit.
        #[arg(long)]
        once: bool,
        /// How many files are processed at once, over all jobs.
        #[arg(long, default_value_t = 32)]
        workers: usize,
        /// On SIGINT/SIGTERM, how long to wait for files in progress before exiting (they
        /// are redone safely at the next start).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Validate every job file; report every problem with file:line:column.
    #[command(
        after_help = "Exit codes: 0 every job file is valid; 2 at least one problem.\n\nExample:\n  ferry check --jobs /srv/ferry/jobs"
    )]
    Check,
    /// Dry run: show what the job would do with FILE. Changes nothing.
    #[command(
        after_help = "Exit codes: 0 a run would deliver the file (verdict: would deliver); 1 it would not take it, or would fail it (verdict: would fail: REASON); 2 bad job or file.\n\nExamples:\n  ferry test invoices samples/invoices/INV-1001.xml\n  ferry test jobs/invoices.toml /tmp/x.pdf"
    )]
    Test {
        /// The job's name (its file's stem) or the path of its file.
        job: String,
        /// A sample file; it may be anywhere.
        file: PathBuf,
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
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ferry::job::toml_reader::parse_duration(s)
}

fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let state = cli
        .state
        .clone()
        .unwrap_or_else(|| ferry::job::deployment_root(&cli.jobs).join("var/state"));
    let code = match cli.command {
        Command::Check => ferry::cli::check(&cli.jobs),
        Command::Test { job, file } => ferry::cli::test(&cli.jobs, &state, &job, &file),
        Command::History {
            job,
            file,
            json,
            limit,
        } => {
            let file = match file.map(|g| globset::Glob::new(&g).map(|g| g.compile_matcher())) {
                Some(Err(e)) => {
                    eprintln!("error: --file: {e}");
                    std::process::exit(exit::INVALID);
                }
                Some(Ok(m)) => Some(m),
                None => None,
            };
            let filter = ferry::journal::HistoryFilter { job, file, limit };
            ferry::cli::history(&state, &filter, json)
        }
        Command::Status { json } => ferry::cli::status(&cli.jobs, &state, json),
        Command::Run {
            once,
            workers,
            grace,
        } => {
            let opts = ferry::runtime::RunOptions {
                jobs_dir: cli.jobs.clone(),
                state_dir: state,
                once,
                workers,
                grace,
            };
            run(opts)
        }
    };
    std::process::exit(code);
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
        Ok(s) => {
            if once {
                tracing::info!(done = s.done, failed = s.failed, "Run finished.");
            }
            if s.failed > 0 {
                exit::FILE_FAILED
            } else if s.invalid_jobs > 0 {
                exit::INVALID
            } else {
                exit::OK
            }
        }
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            tracing::error!(error = %chain.join(": "), "ferry cannot run.");
            eprintln!("error: {}", chain.join(": "));
            exit::FATAL
        }
    }
}
