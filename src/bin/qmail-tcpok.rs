//! qmail-tcpok: forget the addresses qmail-remote found dead
//! (`queue/lock/tcpto`), so that they are tried again at once.

fn main() {
    let roots = vqmail::paths::Roots::from_env();
    let path = roots.queue().join("lock").join("tcpto");
    if let Err(e) = vqmail::smtp::client::tcpto::clear(&path) {
        vqmail::elog!("{}", e.fatal("qmail-tcpok", &path));
        std::process::exit(111);
    }
}
