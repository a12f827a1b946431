//! The Windows service (issue 13): `ferry service install | uninstall | start | stop |
//! status` talk to the service control manager (SCM) through its plain API (what `sc.exe`
//! uses, and what Wine implements); `ferry service run` is what the SCM starts.
//!
//! Theory of operation: the SCM starts `ferry.exe --jobs .. --log-file .. service run
//! --grace ..`. [`run_service`] hands the main thread to the SCM's dispatcher
//! (`StartServiceCtrlDispatcher`), which calls `service_main` on a thread of its own.
//! That registers the control handler, reports `StartPending`, and runs the same daemon as
//! `ferry run`. The daemon reports when every job is watching
//! ([`crate::scm::report_running`], from [`crate::service::ready`]) and when a graceful
//! stop begins ([`crate::scm::report_stopping`]: the grace time is the wait hint, so
//! Windows waits that long for files in progress). The SCM's Stop and Shutdown requests
//! wake the daemon's stop listener ([`crate::scm::StopRequest`]), as Ctrl-Break does in a
//! console: the stop is the same graceful stop. When the daemon returns, the service
//! reports `Stopped` with ferry's exit code (`3`, ferry could not run, as a
//! service-specific code, which makes the SCM's recovery restart it).
//!
//! Logs go to a daily file (`--log-file`, default `var\log\ferry.log` in the deployment)
//! and not to the event log: the event log needs a registered source with a message file
//! to show text properly, and the SCM already writes the service's starts, stops and
//! failures there (System log, source "Service Control Manager"). See docs/windows.md.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{DEFAULT_NAME, Globals, ServiceCommand};
use crate::cli::exit;

const DISPLAY_NAME: &str = "ferry file integration";
const DESCRIPTION: &str = "Takes finished files from watched folders and shares and delivers them atomically (ferry). Jobs, journal and log are in the deployment folder it was installed with.";
const SERVICE_TYPE: ServiceType = crate::scm::SERVICE_TYPE;
/// How long the SCM waits for a start: the journal opens and interrupted files are
/// recovered before every job watches.
const START_HINT: Duration = Duration::from_secs(60);
/// What a stop needs beyond the grace time: closing the journal.
const STOP_MARGIN: Duration = Duration::from_secs(15);

/// Runs one `ferry service` command; returns the exit code.
pub fn command(
    cmd: ServiceCommand,
    g: &Globals,
    run_options: impl FnOnce(Option<usize>, Duration) -> crate::runtime::RunOptions,
) -> i32 {
    let result = match cmd {
        ServiceCommand::Install {
            user,
            password_env,
            workers,
            grace,
            manual,
            name,
        } => install(
            g,
            &Install {
                user,
                password_env,
                workers,
                grace,
                manual,
                name,
            },
        ),
        ServiceCommand::Uninstall { name } => uninstall(&name),
        ServiceCommand::Start { name } => start(&name),
        ServiceCommand::Stop { name } => stop(&name),
        ServiceCommand::Status { name } => status(&name),
        ServiceCommand::Run {
            workers,
            grace,
            name,
        } => return run_service(g, run_options(workers, grace), name),
    };
    match result {
        Ok(()) => exit::OK,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            exit::INVALID
        }
        Err(Failure::Scm(m)) => {
            eprintln!("error: {m}");
            exit::FATAL
        }
    }
}

/// Why a command failed: the command line (exit 2), or the SCM refused (exit 3).
enum Failure {
    Usage(String),
    Scm(String),
}

/// An error of the SCM's API as Windows words it ("Access is denied. (os error 5)").
fn describe(e: &windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// The Windows error code of an SCM call that failed.
fn os_code(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

/// The SCM's refusal, with what to do about the usual ones.
fn scm_error(what: &str, name: &str, e: windows_service::Error) -> Failure {
    let (detail, code) = (describe(&e), os_code(&e));
    let hint = match code {
        Some(5) => " (access denied: run it as Administrator)",
        Some(1056) => " (it is running already)",
        Some(1060) => " (no such service: `ferry service install` it first)",
        Some(1062) => " (it is not running)",
        Some(1069) => {
            " (the account could not log on: check its password, and that it has the right \"Log on as a service\")"
        }
        Some(1072) => " (it is marked for deletion: close the Services window and try again)",
        Some(1073) => {
            " (a service of this name exists: `ferry service uninstall` it first, or give another --name)"
        }
        _ => "",
    };
    Failure::Scm(format!(
        "cannot {what} the service `{name}`: {detail}{hint}"
    ))
}

struct Install {
    user: Option<String>,
    password_env: Option<String>,
    workers: Option<usize>,
    grace: Duration,
    manual: bool,
    name: String,
}

/// The command line the SCM starts the service with: the deployment's paths made
/// absolute (a service starts in System32), then `service run`.
fn launch_arguments(g: &Globals, a: &Install) -> Vec<OsString> {
    let jobs = crate::job::absolute(&g.jobs);
    let mut args: Vec<OsString> = vec!["--jobs".into(), jobs.into()];
    if let Some(state) = &g.state {
        args.push("--state".into());
        args.push(crate::job::absolute(state).into());
    }
    // What the command line does not say, ferry.toml (beside the jobs) decides when the
    // service starts, and a change of it needs no new registration.
    if let Some(file) = &g.log_file {
        args.push("--log-file".into());
        args.push(crate::job::absolute(file).into());
    }
    if let Some(level) = &g.log {
        args.push("--log".into());
        args.push(level.into());
    }
    if let Some(format) = g.log_format {
        args.push("--log-format".into());
        args.push(format.into());
    }
    args.push("service".into());
    args.push("run".into());
    if let Some(workers) = a.workers {
        args.push("--workers".into());
        args.push(workers.to_string().into());
    }
    let rest = [
        "--grace".into(),
        duration_arg(a.grace).into(),
        "--name".into(),
        a.name.clone().into(),
    ];
    args.extend(rest);
    args
}

/// A duration as `--grace` reads it: `30s`, or `1500ms`.
fn duration_arg(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

fn install(g: &Globals, a: &Install) -> Result<(), Failure> {
    let jobs = crate::job::absolute(&g.jobs);
    if !jobs.is_dir() {
        return Err(Failure::Usage(format!(
            "the jobs folder {} does not exist: create it (install\\install.ps1 does) or give --jobs DIR",
            jobs.display()
        )));
    }
    // The password only travels from the variable to the SCM; it is never printed.
    let password =
        match &a.password_env {
            Some(var) => Some(std::env::var_os(var).filter(|v| !v.is_empty()).ok_or_else(
                || {
                    Failure::Usage(format!(
                        "the environment variable {var} (--password-env) is not set or is empty"
                    ))
                },
            )?),
            None => None,
        };
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Usage(format!("cannot tell where ferry.exe is: {e}")))?;
    let display_name = if a.name == DEFAULT_NAME {
        DISPLAY_NAME.to_string()
    } else {
        format!("{DISPLAY_NAME} ({})", a.name)
    };
    let args = launch_arguments(g, a);
    let info = ServiceInfo {
        name: a.name.clone().into(),
        display_name: display_name.into(),
        service_type: SERVICE_TYPE,
        start_type: if a.manual {
            ServiceStartType::OnDemand
        } else {
            ServiceStartType::AutoStart
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: args.clone(),
        dependencies: Vec::new(),
        account_name: a.user.clone().map(OsString::from),
        account_password: password,
    };
    let manager = manager(ServiceManagerAccess::CREATE_SERVICE)
        .map_err(|e| scm_error("install", &a.name, e))?;
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(|e| scm_error("install", &a.name, e))?;
    // Refinements: the service works without them, so a refusal is only a warning (an
    // older Windows, or Wine, may not know one).
    let refinements = [
        ("a description", service.set_description(DESCRIPTION)),
        (
            "a delayed automatic start (after the network is up)",
            if a.manual {
                Ok(())
            } else {
                service.set_delayed_auto_start(true)
            },
        ),
        (
            "restarts after a failure",
            service
                .update_failure_actions(restart_on_failure())
                .and_then(|()| service.set_failure_actions_on_non_crash_failures(true)),
        ),
    ];
    for (what, r) in refinements {
        if let Err(e) = r {
            eprintln!(
                "warning: the service is installed, but Windows refused {what}: {}",
                describe(&e)
            );
        }
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    println!(
        "installed the service `{}` ({}, restarted by Windows if it fails), as {}:\n  {} {}",
        a.name,
        if a.manual {
            "started on request"
        } else {
            "started at boot"
        },
        a.user.as_deref().unwrap_or("LocalSystem"),
        exe.display(),
        shown.join(" ")
    );
    println!("start it with: ferry service start --name {}", a.name);
    Ok(())
}

/// Like `Restart=on-failure`: restarted after 10 s, three times a day at most before
/// Windows gives up (the failure count is reset after a day).
fn restart_on_failure() -> ServiceFailureActions {
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(10),
    };
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    }
}

fn manager(extra: ServiceManagerAccess) -> windows_service::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT | extra)
}

fn open(
    name: &str,
    access: ServiceAccess,
    what: &str,
) -> Result<windows_service::service::Service, Failure> {
    manager(ServiceManagerAccess::empty())
        .and_then(|m| m.open_service(name, access))
        .map_err(|e| scm_error(what, name, e))
}

fn uninstall(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        "uninstall",
    )?;
    let st = service
        .query_status()
        .map_err(|e| scm_error("uninstall", name, e))?;
    if st.current_state != ServiceState::Stopped {
        println!("stopping the service `{name}` first");
        stop_and_wait(&service, name)?;
    }
    service
        .delete()
        .map_err(|e| scm_error("uninstall", name, e))?;
    println!("removed the service `{name}`; its jobs, journal and logs stay where they are");
    Ok(())
}

fn start(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        "start",
    )?;
    match service.start::<&OsStr>(&[]) {
        Ok(()) => {}
        // ERROR_SERVICE_ALREADY_RUNNING: what was asked for is the case.
        Err(e) if os_code(&e) == Some(1056) => {
            println!("the service `{name}` is running already");
            return Ok(());
        }
        Err(e) => return Err(scm_error("start", name, e)),
    }
    let st = wait_while(&service, ServiceState::StartPending)
        .map_err(|e| scm_error("start", name, e))?;
    match st.current_state {
        ServiceState::Running => {
            println!(
                "the service `{name}` is running (pid {}): every job is watching",
                st.process_id.unwrap_or(0)
            );
            Ok(())
        }
        ServiceState::StartPending => Err(Failure::Scm(format!(
            "the service `{name}` is still starting; see `ferry service status --name {name}` and its log"
        ))),
        other => Err(Failure::Scm(format!(
            "the service `{name}` did not start ({other:?}, exit code {}); see its log (`ferry service status --name {name}` shows where)",
            exit_code_of(&st)
        ))),
    }
}

fn stop(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::STOP | ServiceAccess::QUERY_STATUS,
        "stop",
    )?;
    stop_and_wait(&service, name)?;
    println!("the service `{name}` has stopped");
    Ok(())
}

/// Asks for the graceful stop and waits while the service finishes its files (it tells
/// how long: its wait hint is its grace time).
fn stop_and_wait(service: &windows_service::service::Service, name: &str) -> Result<(), Failure> {
    match service.stop() {
        Ok(_) => {}
        // Stopped already, or stopping: wait all the same.
        Err(windows_service::Error::Winapi(e))
            if matches!(e.raw_os_error(), Some(1062) | Some(1061)) => {}
        Err(e) => return Err(scm_error("stop", name, e)),
    }
    let st =
        wait_while(service, ServiceState::StopPending).map_err(|e| scm_error("stop", name, e))?;
    if st.current_state == ServiceState::Stopped {
        Ok(())
    } else {
        Err(Failure::Scm(format!(
            "the service `{name}` did not stop in time (it is {:?})",
            st.current_state
        )))
    }
}

/// Waits while the service is in `pending`, as Microsoft's samples do: polled at a tenth of
/// its wait hint (1 to 10 s), given up when its checkpoint stops moving for longer than the
/// hint.
fn wait_while(
    service: &windows_service::service::Service,
    pending: ServiceState,
) -> windows_service::Result<ServiceStatus> {
    let mut st = service.query_status()?;
    let mut checkpoint = st.checkpoint;
    let mut since = Instant::now();
    while st.current_state == pending {
        let hint = st.wait_hint.max(Duration::from_secs(5));
        std::thread::sleep((hint / 10).clamp(Duration::from_secs(1), Duration::from_secs(10)));
        st = service.query_status()?;
        if st.checkpoint != checkpoint {
            checkpoint = st.checkpoint;
            since = Instant::now();
        } else if since.elapsed() > hint {
            break;
        }
    }
    Ok(st)
}

fn exit_code_of(st: &ServiceStatus) -> String {
    match st.exit_code {
        // ERROR_SERVICE_NEVER_STARTED
        ServiceExitCode::Win32(1077) => "none (never started)".into(),
        ServiceExitCode::Win32(c) => format!("{c}"),
        ServiceExitCode::ServiceSpecific(c) => format!("ferry's {c}"),
    }
}

fn status(name: &str) -> Result<(), Failure> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
        "query",
    )?;
    let st = service
        .query_status()
        .map_err(|e| scm_error("query", name, e))?;
    let cfg = service
        .query_config()
        .map_err(|e| scm_error("query", name, e))?;
    println!(
        "service `{name}`: {:?}{}",
        st.current_state,
        st.process_id
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default()
    );
    if st.current_state == ServiceState::Stopped {
        println!("last exit code: {}", exit_code_of(&st));
    }
    println!("start:   {:?}", cfg.start_type);
    println!(
        "account: {}",
        cfg.account_name
            .as_deref()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "LocalSystem".into())
    );
    // The whole command line as registered (it holds no password).
    println!("command: {}", cfg.executable_path.display());
    Ok(())
}

/// What the dispatcher thread needs to start the daemon.
struct Launch {
    name: String,
    opts: crate::runtime::RunOptions,
}

static LAUNCH: OnceLock<Launch> = OnceLock::new();
static EXIT: OnceLock<i32> = OnceLock::new();

/// `ferry service run`: gives this thread to the SCM's dispatcher until the service
/// stopped; returns ferry's exit code.
fn run_service(g: &Globals, mut opts: crate::runtime::RunOptions, name: String) -> i32 {
    opts.jobs_dir = crate::job::absolute(&g.jobs);
    opts.state_dir = crate::job::absolute(&g.state_dir);
    // The SCM starts a service in System32: anything relative means the deployment.
    let _ = std::env::set_current_dir(crate::job::deployment_root(&opts.jobs_dir));
    let _ = LAUNCH.set(Launch {
        name: name.clone(),
        opts,
    });
    match windows_service::service_dispatcher::start(&name, ffi_service_main) {
        Ok(()) => EXIT.get().copied().unwrap_or(exit::OK),
        // ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: started from a console, not by the SCM.
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(1063) => {
            eprintln!(
                "error: `ferry service run` is what the service control manager starts; in a console, use `ferry run`"
            );
            exit::INVALID
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot connect to the service control manager.");
            eprintln!("error: cannot connect to the service control manager: {e}");
            exit::FATAL
        }
    }
}

windows_service::define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let code = match LAUNCH.get() {
        Some(launch) => serve(launch),
        None => exit::FATAL,
    };
    let _ = EXIT.set(code);
}

/// The service's life: registered, starting, the daemon, stopped.
fn serve(launch: &Launch) -> i32 {
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            crate::scm::request_stop();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(&launch.name, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "Cannot register with the service control manager.");
            return exit::FATAL;
        }
    };
    crate::scm::registered(handle, launch.opts.grace + STOP_MARGIN);
    crate::scm::report(
        ServiceState::StartPending,
        START_HINT,
        ServiceExitCode::NO_ERROR,
    );
    tracing::info!(service = %launch.name, "Started by the service control manager.");
    let code = run_daemon(launch.opts.clone());
    let exit_code = if code == exit::OK {
        ServiceExitCode::NO_ERROR
    } else {
        ServiceExitCode::ServiceSpecific(code as u32)
    };
    crate::scm::report(ServiceState::Stopped, Duration::ZERO, exit_code);
    code
}

/// The daemon, as `ferry run` runs it.
fn run_daemon(opts: crate::runtime::RunOptions) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the runtime.");
            return exit::FATAL;
        }
    };
    let result = rt.block_on(crate::runtime::run(opts));
    // Blocking tasks still running after the grace period are abandoned: the journal lets
    // the next start redo them.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(_) => exit::OK,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            tracing::error!(error = %chain.join(": "), "ferry cannot run; the service stops.");
            exit::FATAL
        }
    }
}
