//! qmail-qread: list outgoing messages and recipients.

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let q = vqmail::queue::Queue::new(roots.queue());
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut out = vqmail::queue::qread::Output::new(out);
    let r = vqmail::queue::qread::qread(&q, &mut out);
    if let Some(msg) = out.verdict("qmail-qread", r) {
        vqmail::elog!("{msg}");
        std::process::exit(111);
    }
}
