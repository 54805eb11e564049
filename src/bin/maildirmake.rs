//! maildirmake DIR: creates a Maildir (qmail's maildirmake(1)).
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    // Names are bytes: one that is not UTF-8 is made as it is.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.len() != 1 {
        eprintln!("maildirmake: usage: maildirmake name");
        return ExitCode::from(100);
    }
    let dir = std::path::Path::new(&args[0]);
    let shown = dir.display();
    if dir.exists() {
        eprintln!("maildirmake: fatal: unable to mkdir {shown}: file exists");
        return ExitCode::from(111);
    }
    match vqmail::maildir::create(dir, 0o700) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "maildirmake: fatal: unable to mkdir {shown}: {}",
                vqmail::deliver::errstr(&e)
            );
            ExitCode::from(111)
        }
    }
}
