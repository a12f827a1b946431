//! The sha256 of a stream (an original, an output), computed where it costs least: on the
//! caller's thread for small streams, on a thread of its own once a stream has passed
//! [`BACKGROUND_FROM`] bytes, so that hashing a big file overlaps with parsing and writing
//! it (the machine's other core does it). The bytes are copied into buffers that go through
//! a bounded channel and come back to be reused: memory stays at a few buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Streams from this size on are hashed on a thread of their own.
pub const BACKGROUND_FROM: u64 = 1 << 20;
/// Bytes handed to the hashing thread at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks waiting for the hashing thread (the writer waits when it falls behind).
const IN_FLIGHT: usize = 4;
/// Hashing threads at once in the whole process; further big streams hash inline.
const MAX_BACKGROUND: usize = 8;
static BACKGROUND: AtomicUsize = AtomicUsize::new(0);

/// A sha256 being computed, with the number of bytes seen.
pub struct Hasher {
    size: u64,
    state: State,
}

enum State {
    Inline(Sha256),
    Background {
        chunk: Vec<u8>,
        tx: SyncSender<Vec<u8>>,
        back: Receiver<Vec<u8>>,
        thread: JoinHandle<Sha256>,
    },
    /// The hashing thread died (it cannot, short of a bug): no hash can be given.
    Poisoned,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher {
            size: 0,
            state: State::Inline(Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        match &mut self.state {
            State::Inline(h) => {
                h.update(data);
                if self.size >= BACKGROUND_FROM {
                    self.move_to_thread();
                }
            }
            State::Background {
                chunk, tx, back, ..
            } => {
                chunk.extend_from_slice(data);
                if chunk.len() >= CHUNK {
                    let next = back
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                    let full = std::mem::replace(chunk, next);
                    if tx.send(full).is_err() {
                        // The thread is gone (it panicked): nothing sensible can be hashed
                        // any more; `finish` reports it.
                        self.state = State::Poisoned;
                    }
                }
            }
            State::Poisoned => {}
        }
    }

    /// Hashes a whole buffer the caller has finished with, without copying it: on the
    /// hashing thread the buffer itself goes there. Returns an empty buffer to refill (the
    /// same one when hashed here, else one the hashing thread gave back, or a new one).
    pub fn update_owned(&mut self, data: Vec<u8>) -> Vec<u8> {
        let cap = data.capacity();
        match &mut self.state {
            State::Background {
                chunk, tx, back, ..
            } => {
                self.size += data.len() as u64;
                // Bytes still waiting in the copy chunk go first.
                if !chunk.is_empty() {
                    let next = back
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                    let pending = std::mem::replace(chunk, next);
                    if tx.send(pending).is_err() {
                        self.state = State::Poisoned;
                        let mut data = data;
                        data.clear();
                        return data;
                    }
                }
                if tx.send(data).is_err() {
                    self.state = State::Poisoned;
                    return Vec::with_capacity(cap);
                }
                let mut next = back.try_recv().unwrap_or_else(|_| Vec::with_capacity(cap));
                next.clear();
                if next.capacity() < cap {
                    next.reserve(cap);
                }
                next
            }
            _ => {
                let mut data = data;
                self.update(&data);
                data.clear();
                data
            }
        }
    }

    fn move_to_thread(&mut self) {
        // A file split into many big outputs must not start a thread (and its buffers) per
        // output: past the limit, streams are hashed where they are written.
        if BACKGROUND.fetch_add(1, Ordering::SeqCst) >= MAX_BACKGROUND {
            BACKGROUND.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let State::Inline(h) = std::mem::replace(&mut self.state, State::Poisoned) else {
            BACKGROUND.fetch_sub(1, Ordering::SeqCst);
            return;
        };
        let here = h.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (back_tx, back) = std::sync::mpsc::channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("ferry-hash".into())
            .spawn(move || {
                let mut h = h;
                for mut chunk in rx {
                    h.update(&chunk);
                    chunk.clear();
                    let _ = back_tx.send(chunk);
                }
                BACKGROUND.fetch_sub(1, Ordering::SeqCst);
                h
            });
        self.state = match spawned {
            Ok(thread) => State::Background {
                chunk: Vec::with_capacity(CHUNK),
                tx,
                back,
                thread,
            },
            // No thread to be had (a process limit): hash here, as for small streams.
            Err(_) => {
                BACKGROUND.fetch_sub(1, Ordering::SeqCst);
                State::Inline(here)
            }
        };
    }

    /// The hex sha256 and the size; `None` when the hashing thread failed.
    pub fn finish(self) -> Option<(String, u64)> {
        let h = match self.state {
            State::Inline(h) => h,
            State::Background {
                chunk, tx, thread, ..
            } => {
                if !chunk.is_empty() && tx.send(chunk).is_err() {
                    return None;
                }
                drop(tx);
                thread.join().ok()?
            }
            State::Poisoned => return None,
        };
        Some((hex::encode(h.finalize()), self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_big_streams_than_hashing_threads_all_hash_right() {
        let data: Vec<u8> = (0..(BACKGROUND_FROM as usize + 4096))
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let want = hex::encode(Sha256::digest(&data));
        let mut hashers: Vec<Hasher> = (0..MAX_BACKGROUND * 2).map(|_| Hasher::new()).collect();
        for piece in data.chunks(65536) {
            for h in &mut hashers {
                h.update(piece);
            }
        }
        let inline = hashers
            .iter()
            .filter(|h| matches!(h.state, State::Inline(_)))
            .count();
        assert!(inline >= MAX_BACKGROUND, "{inline} hashed inline");
        for h in hashers {
            assert_eq!(h.finish().unwrap().0, want);
        }
    }

    #[test]
    fn owned_buffers_mixed_with_copied_bytes_hash_in_order() {
        for len in [0usize, 1000, 1 << 20, (5 << 20) + 777] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 253) as u8).collect();
            let mut h = Hasher::new();
            let mut spare = Vec::new();
            // Alternately whole buffers handed over and small pieces copied, as a temporary
            // output does (its buffer, then a write too big to buffer).
            for (n, piece) in data.chunks(100_000).enumerate() {
                if n % 3 == 2 {
                    h.update(piece);
                } else {
                    assert!(spare.is_empty());
                    spare.extend_from_slice(piece);
                    spare = h.update_owned(std::mem::take(&mut spare));
                }
            }
            let (hex, size) = h.finish().unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(hex, hex::encode(Sha256::digest(&data)), "{len} bytes");
        }
    }

    #[test]
    fn inline_and_background_hashes_are_the_plain_sha256() {
        for len in [0usize, 10, 1 << 20, (3 << 20) + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut h = Hasher::new();
            // Uneven pieces, as writers and readers hand them over.
            for piece in data.chunks(7919) {
                h.update(piece);
            }
            let (hex, size) = h.finish().unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(hex, hex::encode(Sha256::digest(&data)), "{len} bytes");
        }
    }
}
