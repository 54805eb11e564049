//! qmail-qread: list outgoing messages and recipients.
use std::io::Write;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let q = vqmail::queue::Queue::new(roots.queue());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = vqmail::queue::qread::qread(&q, &mut out);
    let r = r.and_then(|_| out.flush());
    if let Err(e) = r {
        let _ = out.flush();
        eprintln!(
            "qmail-qread: fatal: unable to read the queue: {}",
            vqmail::deliver::errstr(&e)
        );
        std::process::exit(111);
    }
}
