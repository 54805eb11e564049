//! qmail-tcpto: list the addresses qmail-remote remembers as timing out
//! (`queue/lock/tcpto`).

use std::io::Write;

fn main() {
    let roots = vqmail::paths::Roots::from_env();
    let path = roots.queue().join("lock").join("tcpto");
    let lines = match vqmail::smtp::client::tcpto::list(&path, vqmail::timefmt::now()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "qmail-tcpto: fatal: unable to {} {}: {}",
                e.step,
                path.display(),
                vqmail::deliver::errstr(&e.err)
            );
            std::process::exit(111);
        }
    };
    let mut out = std::io::stdout().lock();
    for l in lines {
        if let Err(e) = writeln!(out, "{l}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return;
            }
            eprintln!(
                "qmail-tcpto: fatal: unable to write output: {}",
                vqmail::deliver::errstr(&e)
            );
            std::process::exit(111);
        }
    }
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!(
                "qmail-tcpto: fatal: unable to write output: {}",
                vqmail::deliver::errstr(&e)
            );
            std::process::exit(111);
        }
    }
}
