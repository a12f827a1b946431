//! `ferry run --once` on a terminal: a progress line on stderr (files done and waiting,
//! rate, time left) drawn with indicatif, under the log lines. When stderr is not a
//! terminal nothing is drawn and the log stays plain lines.
//!
//! The numbers are the jobs' metrics (`crate::metrics`), read four times a second. Log
//! lines go through [`stderr`], which lifts the bar while a line is written, so the two
//! never mix.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::web::board::Board;

/// Whether a bar is on the terminal now (a cheap check for every log line).
static SHOWN: AtomicBool = AtomicBool::new(false);
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The progress line of a `--once` run, while it runs.
pub struct Progress {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts drawing, if stderr is a terminal (`None`: it is not; the log stays plain).
    pub fn start(board: Arc<Board>) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {pos}/{len} files done, {msg}  {per_sec}  ETA {eta}  {wide_bar}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        if let Ok(mut b) = BAR.lock() {
            *b = Some(bar.clone());
        }
        SHOWN.store(true, Ordering::Release);
        let (stop, mut stop_rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => update(&bar, &board),
                    _ = stop_rx.changed() => break,
                }
            }
            update(&bar, &board);
        });
        Some(Progress { stop, handle })
    }

    /// Takes the line away (before the run's last log line).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        SHOWN.store(false, Ordering::Release);
        if let Ok(mut b) = BAR.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

fn update(bar: &ProgressBar, board: &Board) {
    let (mut done, mut failed, mut waiting) = (0, 0, 0);
    for v in board.snapshot().jobs.values() {
        let (d, f, w) = v.metrics.progress();
        done += d;
        failed += f;
        waiting += w;
    }
    bar.set_length(done + failed + waiting);
    bar.set_position(done + failed);
    bar.set_message(format!("{failed} failed, {waiting} waiting"));
}

/// Where log lines go: stderr, with the progress line lifted around each one.
pub fn stderr() -> Stderr {
    Stderr
}

/// See [`stderr`].
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if SHOWN.load(Ordering::Acquire)
            && let Ok(b) = BAR.lock()
            && let Some(bar) = b.as_ref()
        {
            return bar.suspend(|| std::io::stderr().write(buf));
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
