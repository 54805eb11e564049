//! qmail-tcpto: list the addresses qmail-remote remembers as timing out
//! (`queue/lock/tcpto`).

use std::io::Write;

fn main() {
    let roots = vqmail::paths::Roots::from_env();
    let path = roots.queue().join("lock").join("tcpto");
    let lines = match vqmail::smtp::client::tcpto::list(&path, vqmail::timefmt::now()) {
        Ok(l) => l,
        Err(e) => {
            vqmail::elog!("{}", e.fatal("qmail-tcpto", &path));
            std::process::exit(111);
        }
    };
    // Quiet when the reader stops early (`| head`), as qmail-qread is.
    let mut out = vqmail::queue::qread::Output::new(std::io::stdout().lock());
    let r = lines.iter().try_for_each(|l| writeln!(out, "{l}"));
    if let Some(msg) = out.verdict("qmail-tcpto", r) {
        vqmail::elog!("{msg}");
        std::process::exit(111);
    }
}
