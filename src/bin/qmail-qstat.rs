//! qmail-qstat: summarize the status of the queue.
use std::io::Write;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let q = vqmail::queue::Queue::new(roots.queue());
    let mut out = std::io::stdout().lock();
    if let Err(e) = vqmail::queue::qread::qstat(&q, &mut out) {
        let _ = out.flush();
        eprintln!(
            "qmail-qstat: fatal: unable to read the queue: {}",
            vqmail::deliver::errstr(&e)
        );
        std::process::exit(111);
    }
}
