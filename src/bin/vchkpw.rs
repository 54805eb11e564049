//! vchkpw PROG [ARGS...]: vpopmail's checkpassword program (vchkpw(8)).
//! Reads `login\0password\0challenge\0` on descriptor 3; on success execs PROG.
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    // Started by root through its setuid-vpopmail bit (qmail's habit of a
    // root-run qmail-popup): root again, as if started without the bit, so
    // that it can read and become a domain of another owner.
    vqmail::auth::vchkpw::regain_root();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let roots = vqmail::paths::Roots::from_env();
    let fd3 = vqmail::sys::inherit_file(3);
    ExitCode::from(vqmail::auth::vchkpw::main(&roots, &args, fd3))
}
