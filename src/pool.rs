//! Worker threads that are reused: starting and ending a thread costs about
//! 70 µs on a small virtual machine, more than many of the jobs they run.
//!
//! A job goes to an idle worker, or to a new one when none is idle (up to a
//! maximum; beyond it, jobs wait for the first free worker). When no thread
//! can be started and no worker exists, [`Pool::submit`] hands the job back
//! so that the caller runs it itself.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A pool of workers running jobs of type `T` with one handler.
pub struct Pool<T> {
    jobs: Sender<T>,
    queue: Arc<Mutex<Receiver<T>>>,
    idle: Arc<Mutex<usize>>,
    run: Arc<dyn Fn(T) + Send + Sync>,
    workers: Vec<JoinHandle<()>>,
    max: usize,
}

impl<T: Send + 'static> Pool<T> {
    /// A pool of at most `max` workers (none started yet) that run `run`.
    pub fn new(max: usize, run: impl Fn(T) + Send + Sync + 'static) -> Pool<T> {
        let (jobs, queue) = channel();
        Pool {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::new(Mutex::new(0)),
            run: Arc::new(run),
            workers: Vec::new(),
            max: max.max(1),
        }
    }

    /// Hands `job` to a worker; `Err(job)` when there is none and none can
    /// be started.
    pub fn submit(&mut self, job: T) -> Result<(), T> {
        let to_idle = match self.idle.lock() {
            Ok(mut n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if let Err(e) = self.jobs.send(job) {
            return Err(e.0);
        }
        if to_idle || self.workers.len() >= self.max {
            return Ok(());
        }
        let (queue, idle, run) = (
            Arc::clone(&self.queue),
            Arc::clone(&self.idle),
            Arc::clone(&self.run),
        );
        match std::thread::Builder::new().spawn(move || worker(&queue, &idle, &*run)) {
            Ok(t) => {
                self.workers.push(t);
                Ok(())
            }
            // A busy worker takes the job when it is free; with none, it
            // comes back (nobody else reads the queue).
            Err(_) if self.workers.is_empty() => {
                match self.queue.lock().ok().and_then(|q| q.try_recv().ok()) {
                    Some(job) => Err(job),
                    None => Ok(()),
                }
            }
            Err(_) => Ok(()),
        }
    }

    /// Waits until every job submitted has run and the workers have ended.
    pub fn finish(self) {
        drop(self.jobs);
        for t in self.workers {
            let _ = t.join();
        }
    }
}

fn worker<T>(queue: &Mutex<Receiver<T>>, idle: &Mutex<usize>, run: &(dyn Fn(T) + Send + Sync)) {
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        run(job);
        if let Ok(mut n) = idle.lock() {
            *n += 1;
        }
    }
}

/// For tests of code that runs jobs on a pool: called from each of `n`
/// jobs, waits (at most 10 s) until all `n` have arrived; true when they
/// did, so they ran at once.
#[cfg(test)]
pub(crate) fn all_at_once(
    started: &(std::sync::Mutex<usize>, std::sync::Condvar),
    n: usize,
) -> bool {
    use std::time::{Duration, Instant};
    let (m, cv) = started;
    let mut count = m.lock().unwrap();
    *count += 1;
    cv.notify_all();
    let deadline = Instant::now() + Duration::from_secs(10);
    while *count < n && Instant::now() < deadline {
        count = cv.wait_timeout(count, Duration::from_millis(50)).unwrap().0;
    }
    *count >= n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::{Duration, Instant};

    #[test]
    fn jobs_run_at_once_up_to_the_maximum_and_workers_are_reused() {
        const N: usize = 6;
        // Each job of the first round waits (at most 10 s) until all N run
        // at once; a pool that made one wait for another would time out.
        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (Arc::clone(&started), Arc::clone(&seen));
        let mut pool = Pool::new(N, move |first: bool| {
            let together = !first || all_at_once(&st, N);
            sn.lock()
                .unwrap()
                .push((std::thread::current().id(), together));
        });
        for _ in 0..N {
            assert!(pool.submit(true).is_ok());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < N && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // More jobs than workers: they wait for free ones, on the same threads.
        for _ in 0..3 * N {
            assert!(pool.submit(false).is_ok());
        }
        pool.finish();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4 * N);
        assert!(seen.iter().all(|&(_, together)| together));
        let threads: std::collections::HashSet<_> = seen.iter().map(|&(t, _)| t).collect();
        assert_eq!(threads.len(), N);
    }
}
