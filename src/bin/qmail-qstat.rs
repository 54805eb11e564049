//! qmail-qstat: summarize the status of the queue.

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let q = vqmail::queue::Queue::new(roots.queue());
    let mut out = vqmail::queue::qread::Output::new(std::io::stdout().lock());
    let r = vqmail::queue::qread::qstat(&q, &mut out);
    if let Some(msg) = out.verdict("qmail-qstat", r) {
        vqmail::elog!("{msg}");
        std::process::exit(111);
    }
}
