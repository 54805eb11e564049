//! vdelivermail '' ARG: vpopmail's delivery agent for a domain's
//! .qmail-default (vdelivermail(8)).
use std::io::Write;
use std::process::ExitCode;

use vqmail::deliver::{message::Message, vdeliver, Fail};

/// Marks this file as vqmail's vdelivermail: qmail-local then runs it inside
/// its own process instead of starting it (dot-qmail(5)).
#[used]
#[link_section = ".vqmail"]
static VQMAIL_PROGRAM: [u8; 28] = *b"vqmail-program vdelivermail\0";

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let roots = vqmail::paths::Roots::from_env();
    let env = vdeliver::Env::from_process();
    let result = vdeliver::become_owner(&roots, &env)
        .and_then(|()| {
            Message::from_stdin().map_err(|_| Fail::temp("Unable to read message. (#4.3.0)"))
        })
        .and_then(|mut msg| vdeliver::run(&roots, &args, &env, &mut msg));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.text.is_empty() {
                let _ = writeln!(std::io::stdout(), "{}", f.text);
            }
            ExitCode::from(f.code)
        }
    }
}
