//! qmail-tcpok: forget the addresses qmail-remote found dead
//! (`queue/lock/tcpto`), so that they are tried again at once.

fn main() {
    let roots = vqmail::paths::Roots::from_env();
    let path = roots.queue().join("lock").join("tcpto");
    if let Err(e) = vqmail::smtp::client::tcpto::clear(&path) {
        eprintln!(
            "qmail-tcpok: fatal: unable to {} {}: {}",
            e.step,
            path.display(),
            vqmail::deliver::errstr(&e.err)
        );
        std::process::exit(111);
    }
}
