//! The sha256 of big originals that were planned before their hash was known
//! ([`super::deliver::DEFER_HASH_FROM`]): read on a thread of its own at the lowest CPU
//! priority, so that it takes the cycles the deliverers (and the server they send to) leave
//! idle instead of slowing the upload of the very file it reads.
//!
//! One thread for the process, fed through a short queue: a runner that gets ahead of it
//! waits, so at most a few deleted originals are held open (their disk space is freed when
//! the hash is done). `finish` waits for what is queued; `run` calls it before the journal
//! closes.

use std::fs::File;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use crate::journal::Journal;

/// Hashes waiting for the thread; the runner waits beyond that.
const QUEUED: usize = 4;

/// An original to hash: its journal id, a handle opened before the plan (the inode stays
/// readable after every name of it is gone), and its planned size.
pub struct Pending {
    pub id: i64,
    pub file: File,
    pub size: u64,
}

struct Worker {
    tx: mpsc::SyncSender<Pending>,
    thread: JoinHandle<()>,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

/// Starts the thread for this process's journal (a second call replaces nothing).
pub fn start(journal: Arc<Journal>) {
    let mut w = WORKER.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_some() {
        return;
    }
    let (tx, rx) = mpsc::sync_channel::<Pending>(QUEUED);
    let spawned = std::thread::Builder::new()
        .name("ferry-late-hash".into())
        .spawn(move || {
            lower_priority();
            for p in rx {
                hash_and_record(&journal, p);
            }
        });
    match spawned {
        Ok(thread) => *w = Some(Worker { tx, thread }),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot start the hashing thread; big originals are hashed in turn.")
        }
    }
}

/// Hands `p` to the thread, or hashes it here when there is none.
pub fn submit(journal: &Journal, p: Pending) {
    let tx = WORKER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|w| w.tx.clone());
    let p = match tx {
        Some(tx) => match tx.send(p) {
            Ok(()) => return,
            Err(mpsc::SendError(p)) => p,
        },
        None => p,
    };
    hash_and_record(journal, p);
}

/// Waits until every queued original is hashed and recorded.
pub fn finish() {
    let w = WORKER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(w) = w {
        drop(w.tx);
        if w.thread.join().is_err() {
            tracing::error!(
                "The hashing thread failed; some big originals have no sha256 in the history."
            );
        }
    }
}

fn hash_and_record(journal: &Journal, mut p: Pending) {
    match crate::fsutil::hash_reader(&mut p.file) {
        Ok((hash, n)) if n == p.size => {
            let _ = journal.hashed(p.id, hash);
        }
        Ok((_, n)) => tracing::warn!(
            expected = p.size,
            read = n,
            "The original changed size after it was planned; its sha256 is not recorded."
        ),
        Err(e) => tracing::warn!(error = %e, "Cannot read the original for its sha256."),
    }
}

/// Nice 19 for the calling thread only (on Linux a nice value belongs to a thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid(2) and setpriority(2) on the calling thread: no memory is passed,
        // and a failure (refused by a policy) leaves the priority as it was.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        }
    }
}
