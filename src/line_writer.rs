//! The loop of a writer thread that turns events from a bounded channel into
//! lines (the access log's and the audit trail's): events are written as
//! they come, a bounded batch at a time, flushed at least once a [`TICK`],
//! and on stop the queue is drained and the sink finished. The sinks differ
//! only in what they write and what they look after between ticks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
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

/// A writer thread running [`drive`], and the way to stop it.
pub struct Thread {
    stop: Arc<AtomicBool>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thread").finish_non_exhaustive()
    }
}

impl Thread {
    /// Starts the thread `name` writing the events of `rx` to `sink`.
    pub fn spawn<E, S>(name: &str, rx: Receiver<E>, mut sink: S) -> std::io::Result<Thread>
    where
        E: Send + 'static,
        S: Sink<E> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                drive(&rx, &flag, &mut sink);
                let _ = done_tx.send(());
            })?;
        Ok(Thread {
            stop,
            done: Mutex::new(Some(done_rx)),
        })
    }

    /// Writes out what is queued, finishes the sink and stops the thread
    /// (at the end of a drain); waits for it at most `limit`.
    pub fn close(&self, limit: Duration) {
        self.stop.store(true, Ordering::Release);
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done {
            let _ = done.recv_timeout(limit);
        }
    }
}
