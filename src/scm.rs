//! What the daemon and the Windows service control manager (SCM) share (issue 13): the
//! SCM's stop request, which the daemon listens for beside Ctrl-C and Ctrl-Break, and the
//! service's state, which the daemon reports as it starts and stops. The SCM side
//! (`ferry service ...`) is [`crate::service_command`]; this module depends on no other
//! part of ferry, so that the runtime can use it. In a console (`ferry run`) nothing is
//! registered: the reports do nothing and only Ctrl-C/Ctrl-Break stop the daemon.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use windows_service::service::{
    ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::ServiceStatusHandle;

/// ferry runs in a process of its own.
pub const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;

/// The service is registered with the SCM: its status handle, and how long a stop may take
/// (the grace time and a margin), the wait hint of `StopPending`.
pub fn registered(handle: ServiceStatusHandle, stop_hint: Duration) {
    let _ = REPORTER.set(Reporter {
        handle,
        stop_hint,
        checkpoint: AtomicU32::new(0),
    });
}

/// The status handle of a running service; unset in a console.
struct Reporter {
    handle: ServiceStatusHandle,
    stop_hint: Duration,
    checkpoint: AtomicU32,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Tells the SCM the service's state (nothing in a console).
pub fn report(state: ServiceState, wait_hint: Duration, exit_code: ServiceExitCode) {
    let Some(r) = REPORTER.get() else {
        return;
    };
    let pending = matches!(
        state,
        ServiceState::StartPending | ServiceState::StopPending
    );
    let controls_accepted = match state {
        // A stop asked for while starting is kept: the daemon stops once it is up.
        ServiceState::StartPending | ServiceState::Running => {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        }
        _ => ServiceControlAccept::empty(),
    };
    let status = ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint: if pending {
            r.checkpoint.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        },
        wait_hint,
        process_id: None,
    };
    if let Err(e) = r.handle.set_service_status(status) {
        tracing::warn!(error = %e, state = ?state, "Cannot report the service's state.");
    }
}

/// Every job is watching: the service runs (nothing in a console).
pub fn report_running() {
    report(
        ServiceState::Running,
        Duration::ZERO,
        ServiceExitCode::NO_ERROR,
    );
}

/// A graceful stop began: Windows waits the grace time (and a margin) for it.
pub fn report_stopping() {
    if let Some(r) = REPORTER.get() {
        report(
            ServiceState::StopPending,
            r.stop_hint,
            ServiceExitCode::NO_ERROR,
        );
    }
}

fn stop_notify() -> &'static tokio::sync::Notify {
    static STOP: OnceLock<tokio::sync::Notify> = OnceLock::new();
    STOP.get_or_init(tokio::sync::Notify::new)
}

/// The SCM asked for a stop. Kept until the daemon listens (`notify_one` stores it).
pub fn request_stop() {
    stop_notify().notify_one();
}

/// The daemon's stop request besides Ctrl-C: Ctrl-Break in a console, or the SCM's Stop
/// and Shutdown for the service.
pub struct StopRequest {
    /// `None` where no console handler could be set (it is not needed by a service).
    ctrl_break: Option<tokio::signal::windows::CtrlBreak>,
}

impl Default for StopRequest {
    fn default() -> StopRequest {
        let ctrl_break = match tokio::signal::windows::ctrl_break() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "No Ctrl-Break handler; the service's stop request still stops ferry.");
                None
            }
        };
        StopRequest { ctrl_break }
    }
}

impl StopRequest {
    /// Waits for the next stop request.
    pub async fn recv(&mut self) -> Option<()> {
        let scm = stop_notify().notified();
        match &mut self.ctrl_break {
            Some(cb) => tokio::select! {
                r = cb.recv() => r,
                () = scm => Some(()),
            },
            None => {
                scm.await;
                Some(())
            }
        }
    }
}
