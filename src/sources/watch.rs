//! One file-system watcher for the whole daemon, shared by every job.
//!
//! A watcher per job would cost an inotify instance and a thread each, and Linux allows 128
//! instances per user by default: a deployment with a few hundred jobs would fall back to
//! rescans without saying why. Here one watcher watches every source folder once (however
//! many subscriptions name it) and routes each event to the subscribers whose folder holds
//! the path. The callback never blocks: a full channel drops the hint, and the next rescan
//! finds the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

struct Route {
    id: u64,
    folder: PathBuf,
    recursive: bool,
    tx: mpsc::Sender<PathBuf>,
}

#[derive(Default)]
struct Routes {
    list: Vec<Route>,
    next_id: u64,
    /// How many subscriptions watch each folder, and whether recursively.
    watched: HashMap<PathBuf, (usize, bool)>,
}

/// The shared watcher.
pub struct Hub {
    watcher: Mutex<Option<RecommendedWatcher>>,
    routes: Arc<Mutex<Routes>>,
}

/// A subscription; dropping it stops the events (and the watch, when it was the last one
/// for its folder).
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let r = routes.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            // Opening or reading a file is no change (and ferry's own reads raise them).
            if ev.kind.is_access()
                && ev.kind != EventKind::Access(AccessKind::Close(AccessMode::Write))
            {
                return;
            }
            let routes = r.lock().expect("watch routes");
            for p in &ev.paths {
                for route in &routes.list {
                    let hit = if route.recursive {
                        p.starts_with(&route.folder)
                    } else {
                        p.parent() == Some(route.folder.as_path()) || p == &route.folder
                    };
                    if hit {
                        let _ = route.tx.try_send(p.clone());
                    }
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, hint = error_hint(&e), "Cannot watch for file-system events; relying on rescans.");
                None
            }
        };
        Arc::new(Hub {
            watcher: Mutex::new(watcher),
            routes,
        })
    }

    /// Sends the paths of events in `folder` (and below it, when `recursive`) to `tx`.
    pub fn subscribe(
        self: &Arc<Self>,
        folder: &Path,
        recursive: bool,
        tx: mpsc::Sender<PathBuf>,
    ) -> notify::Result<Subscription> {
        // Lock order: `watcher`, then `routes`, never `routes` across a call into the
        // watcher. notify's watch and unwatch wait for its event thread, which may be in the
        // callback waiting for `routes`: holding it there deadlocked a job reload. The
        // `watcher` lock (which the callback never takes) keeps subscriptions in order.
        let mut watcher = self.watcher.lock().expect("watcher");
        let (count, rec) = self
            .routes
            .lock()
            .expect("watch routes")
            .watched
            .get(folder)
            .copied()
            .unwrap_or((0, false));
        if count == 0 || (recursive && !rec) {
            let w = watcher
                .as_mut()
                .ok_or_else(|| notify::Error::generic("no file-system watcher"))?;
            let mode = if recursive || rec {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            w.watch(folder, mode)?;
        }
        let mut routes = self.routes.lock().expect("watch routes");
        routes
            .watched
            .insert(folder.to_path_buf(), (count + 1, rec || recursive));
        let id = routes.next_id;
        routes.next_id += 1;
        routes.list.push(Route {
            id,
            folder: folder.to_path_buf(),
            recursive,
            tx,
        });
        Ok(Subscription {
            hub: self.clone(),
            id,
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The lock order of `subscribe`: the route goes under `routes`, the watch is removed
        // after `routes` is released.
        let mut watcher = self.hub.watcher.lock().expect("watcher");
        let gone = {
            let mut routes = self.hub.routes.lock().expect("watch routes");
            let Some(i) = routes.list.iter().position(|r| r.id == self.id) else {
                return;
            };
            let route = routes.list.remove(i);
            let last = match routes.watched.get_mut(&route.folder) {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => true,
            };
            if last {
                routes.watched.remove(&route.folder);
            }
            last.then_some(route.folder)
        };
        if let Some(folder) = gone
            && let Some(w) = watcher.as_mut()
        {
            let _ = w.unwatch(&folder);
        }
    }
}

/// A hint for operators when the OS refuses a watch.
pub fn error_hint(e: &notify::Error) -> &'static str {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            "the inotify watch limit is reached; raise fs.inotify.max_user_watches (sysctl), or set `watch = \"poll\"`"
        }
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) => {
            "too many open files or inotify instances; raise fs.inotify.max_user_instances or the open-files limit (LimitNOFILE=)"
        }
        _ => "falling back to rescans only",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn events_reach_the_subscribers_of_their_folder_only() {
        let base = std::env::temp_dir().join(format!("ferry-hub-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(b.join("deep")).unwrap();
        let hub = Hub::new();
        let (ta, mut ra) = mpsc::channel(64);
        let (tb, mut rb) = mpsc::channel(64);
        let (ta2, mut ra2) = mpsc::channel(64);
        let _sa = hub.subscribe(&a, false, ta).unwrap();
        let _sb = hub.subscribe(&b, true, tb).unwrap();
        let sa2 = hub.subscribe(&a, false, ta2).unwrap();
        std::fs::write(a.join("x"), "1").unwrap();
        std::fs::write(b.join("deep/y"), "2").unwrap();
        let got = |r: &mut mpsc::Receiver<PathBuf>| {
            let mut v = Vec::new();
            while let Ok(p) = r.try_recv() {
                v.push(p);
            }
            v
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (mut va, mut vb, mut va2) = (Vec::new(), Vec::new(), Vec::new());
        while tokio::time::Instant::now() < deadline
            && !(va.contains(&a.join("x"))
                && vb.contains(&b.join("deep/y"))
                && va2.contains(&a.join("x")))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            va.extend(got(&mut ra));
            vb.extend(got(&mut rb));
            va2.extend(got(&mut ra2));
        }
        assert!(
            va.contains(&a.join("x")) && !va.iter().any(|p| p.starts_with(&b)),
            "{va:?}"
        );
        assert!(
            vb.contains(&b.join("deep/y")) && !vb.iter().any(|p| p.starts_with(&a)),
            "{vb:?}"
        );
        assert!(va2.contains(&a.join("x")));
        // One subscription of a shared folder goes; the other still gets events.
        drop(sa2);
        std::fs::write(a.join("z"), "3").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline && !va.contains(&a.join("z")) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            va.extend(got(&mut ra));
        }
        assert!(va.contains(&a.join("z")), "{va:?}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Subscribing and unsubscribing while events arrive never hangs (it did: the watch
    /// was removed under the routes lock, which the callback needed to finish the event that
    /// notify's event thread was delivering, and notify's unwatch waits for that thread).
    #[test]
    fn subscriptions_come_and_go_while_events_arrive() {
        let base = std::env::temp_dir().join(format!("ferry-hub-churn-{}", std::process::id()));
        let (busy, other) = (base.join("busy"), base.join("other"));
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let hub = Hub::new();
        let (tx, _rx) = mpsc::channel(1);
        let watching = hub.subscribe(&busy, false, tx).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, busy) = (stop.clone(), busy.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::write(busy.join(format!("f{}", n % 16)), n.to_le_bytes()).unwrap();
                    n += 1;
                }
            })
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let churn = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let (tx, _rx) = mpsc::channel(1);
                    drop(hub.subscribe(&other, false, tx).unwrap());
                }
                let _ = done_tx.send(());
            })
        };
        let finished = done_rx.recv_timeout(Duration::from_secs(120)).is_ok();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        if !finished {
            // Dropping them would hang too: fail instead.
            std::mem::forget(watching);
            std::mem::forget(hub);
            panic!("subscribing and unsubscribing hung while events arrived");
        }
        churn.join().unwrap();
        drop(watching);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
