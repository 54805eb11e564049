//! qmail-local [-nN] user homedir local dash ext domain sender aliasempty:
//! delivers the message on fd 0 by the .qmail rules (qmail-local(8)).
use std::io::Write;
use std::process::ExitCode;

use vqmail::deliver::{local, message::Message, Fail};

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    // As qmail-local: what it and its programs create is private to the user.
    vqmail::sys::queue::umask(0o077);
    // SIGPIPE stays ignored (Rust's default), as in qmail-local.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let roots = vqmail::paths::Roots::from_env();
    let result = local::Args::parse(&argv).and_then(|args| {
        let mut msg =
            Message::from_stdin().map_err(|_| Fail::temp("Unable to rewind message. (#4.3.0)"))?;
        let mut out = std::io::stdout().lock();
        local::run(&roots, &args, &mut msg, &mut out)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.text.is_empty() {
                let _ = std::io::stdout().flush();
                let _ = writeln!(std::io::stderr(), "{}", f.text);
            }
            ExitCode::from(f.code)
        }
    }
}
