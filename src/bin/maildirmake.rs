//! maildirmake DIR: creates a Maildir (qmail's maildirmake(1)).
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    // Names are bytes: one that is not UTF-8 is made as it is.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // As qmail's: the first name is made, any others are ignored.
    if args.is_empty() {
        vqmail::elog!("maildirmake: usage: maildirmake name");
        return ExitCode::from(100);
    }
    let dir = std::path::Path::new(&args[0]);
    let shown = dir.display();
    if dir.exists() {
        vqmail::elog!("maildirmake: fatal: unable to mkdir {shown}: file exists");
        return ExitCode::from(111);
    }
    use std::os::unix::fs::DirBuilderExt;
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    if let Err(e) = b.create(dir) {
        vqmail::elog!(
            "maildirmake: fatal: unable to mkdir {shown}: {}",
            vqmail::deliver::errstr(&e)
        );
        return ExitCode::from(111);
    }
    for (i, sub) in ["tmp", "new", "cur"].iter().enumerate() {
        if let Err(e) = b.create(dir.join(sub)) {
            vqmail::elog!(
                "maildirmake: fatal: unable to mkdir {}: {}",
                dir.join(sub).display(),
                vqmail::deliver::errstr(&e)
            );
            // Not half a Maildir: what this run made goes again (the
            // directory did not exist before it).
            for made in ["tmp", "new", "cur"].iter().take(i) {
                let _ = std::fs::remove_dir(dir.join(made));
            }
            let _ = std::fs::remove_dir(dir);
            return ExitCode::from(111);
        }
    }
    ExitCode::SUCCESS
}
