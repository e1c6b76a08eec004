//! The loop of a writer thread that turns events from a bounded channel into
//! lines (the access log's and the audit trail's): events are written as
//! they come, a bounded batch at a time, flushed at least once a [`TICK`],
//! and on stop the queue is drained and the sink finished. The sinks differ
//! only in what they write and what they look after between ticks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often a writer flushes (at least) and looks after its file.
pub const TICK: Duration = Duration::from_secs(1);

/// What a writer thread writes to.
pub trait Sink<E> {
    /// One event (into a buffer: nothing need reach the file yet).
    fn write(&mut self, e: &E);
    /// What was written reaches the file.
    fn flush(&mut self);
    /// Once a [`TICK`], after the flush: rotations, alerts.
    fn tick(&mut self);
    /// At every wake-up (at least every [`TICK`]); `true` when it flushed
    /// (the access log's reopen on SIGHUP).
    fn poll(&mut self) -> bool {
        false
    }
    /// The last events are written: flush (and sync, where it matters).
    fn finish(&mut self);
}

/// Runs `sink` on the events of `rx` until `stop` is set (the queue is
/// written out first) or every sender is gone.
pub fn drive<E>(rx: &Receiver<E>, stop: &AtomicBool, sink: &mut impl Sink<E>) {
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        let wait = TICK.saturating_sub(last_flush.elapsed());
        match rx.recv_timeout(wait.max(Duration::from_millis(10))) {
            Ok(e) => {
                sink.write(&e);
                dirty = true;
                // Whatever else is queued, without waiting (bounded, so a
                // flood still flushes every second).
                for _ in 0..4096 {
                    match rx.try_recv() {
                        Ok(e) => sink.write(&e),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                sink.finish();
                return;
            }
        }
        if stop.load(Ordering::Acquire) {
            while let Ok(e) = rx.try_recv() {
                sink.write(&e);
            }
            sink.finish();
            return;
        }
        if last_flush.elapsed() >= TICK {
            if dirty {
                sink.flush();
                dirty = false;
            }
            last_flush = Instant::now();
            sink.tick();
        }
        if sink.poll() {
            dirty = false;
        }
    }
}
