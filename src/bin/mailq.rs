//! mailq: lists the queue by running qmail-qread (mailq(1)).
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let prog = roots.qmail_bin("qmail-qread");
    let e = Command::new(&prog).args(std::env::args_os().skip(1)).exec();
    let _ = writeln!(
        std::io::stderr(),
        "mailq: fatal: unable to run {}: {}",
        prog.display(),
        vqmail::deliver::errstr(&e)
    );
    ExitCode::from(111)
}
