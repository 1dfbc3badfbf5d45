//! Background batch production. Worker t of T builds batches start+t, start+t+T, ... into its own
//! bounded channel, and the consumer takes them round-robin, so batches arrive in order and each
//! batch's content depends only on its index, never on the number of threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A named int64 array in C order.
pub struct Array {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

pub type Batch = Vec<Array>;

/// One worker's queue of finished batches (or the error that stopped it).
type BatchQueue = Receiver<Result<Batch, String>>;

pub trait BatchMaker: Send + Sync + 'static {
    fn n_batches(&self) -> usize;
    fn make(&self, index: usize) -> Result<Batch, String>;
}

/// Batches kept ready per worker: enough to hide jitter, small enough to bound memory.
const DEPTH: usize = 2;

pub struct Prefetcher {
    maker: Arc<dyn BatchMaker>,
    /// Receivers are taken out while waiting (the wait runs without the GIL) and put back.
    receivers: Mutex<Vec<Option<BatchQueue>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    start: usize,
    next: usize,
    end: usize,
}

impl Prefetcher {
    /// With `threads == 0` batches are built in the consumer's thread on demand.
    pub fn new(maker: Arc<dyn BatchMaker>, start: usize, threads: usize) -> Self {
        let end = maker.n_batches();
        let start = start.min(end);
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        let mut workers = Vec::new();
        for t in 0..threads {
            let (tx, rx) = sync_channel(DEPTH);
            let (maker, stop) = (Arc::clone(&maker), Arc::clone(&stop));
            let handle = std::thread::Builder::new()
                .name(format!("seqrec-loader-{t}"))
                .spawn(move || {
                    for index in (start + t..end).step_by(threads) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let batch = maker.make(index);
                        let failed = batch.is_err();
                        if tx.send(batch).is_err() || failed {
                            break;
                        }
                    }
                })
                .expect("could not start a loader thread");
            receivers.push(Some(rx));
            workers.push(handle);
        }
        Prefetcher {
            maker,
            receivers: Mutex::new(receivers),
            workers: Mutex::new(workers),
            stop,
            start,
            next: start,
            end,
        }
    }

    pub fn remaining(&self) -> usize {
        self.end - self.next
    }

    /// Index the next call to `take` will return.
    pub fn next_index(&self) -> Option<usize> {
        (self.next < self.end).then_some(self.next)
    }

    /// Takes the receiver for the next batch (None: build it in this thread). Call from the
    /// Python thread, then `wait` without the GIL, then `put_back`.
    pub fn take_receiver(&self) -> Option<(usize, BatchQueue)> {
        let mut receivers = self.receivers.lock().unwrap();
        if receivers.is_empty() {
            return None;
        }
        let slot = (self.next - self.start) % receivers.len();
        receivers[slot].take().map(|rx| (slot, rx))
    }

    pub fn put_back(&self, slot: usize, rx: BatchQueue) {
        self.receivers.lock().unwrap()[slot] = Some(rx);
    }

    pub fn maker(&self) -> &Arc<dyn BatchMaker> {
        &self.maker
    }

    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Receives one batch from a worker's channel.
    pub fn wait(rx: &BatchQueue) -> Result<Batch, String> {
        rx.recv()
            .unwrap_or_else(|_| Err("a loader thread stopped unexpectedly".into()))
    }

    /// Blocking path for Rust callers (tests).
    #[cfg(test)]
    pub fn next_batch(&mut self) -> Option<Result<Batch, String>> {
        let index = self.next_index()?;
        let result = match self.take_receiver() {
            Some((slot, rx)) => {
                let r = Self::wait(&rx);
                self.put_back(slot, rx);
                r
            }
            None => self.maker.make(index),
        };
        self.advance();
        Some(result)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers unblocks workers waiting to send.
        self.receivers.lock().unwrap().clear();
        for handle in self.workers.lock().unwrap().drain(..) {
            let _ = handle.join();
        }
    }
}
