//! maildirmake DIR: creates a Maildir (qmail's maildirmake(1)).
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 1 {
        eprintln!("maildirmake: usage: maildirmake name");
        return ExitCode::from(100);
    }
    let dir = std::path::Path::new(&args[0]);
    if dir.exists() {
        eprintln!(
            "maildirmake: fatal: unable to mkdir {}: file exists",
            args[0]
        );
        return ExitCode::from(111);
    }
    match vqmail::maildir::create(dir, 0o700) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "maildirmake: fatal: unable to mkdir {}: {}",
                args[0],
                vqmail::deliver::errstr(&e)
            );
            ExitCode::from(111)
        }
    }
}
