//! vchkpw PROG [ARGS...]: vpopmail's checkpassword program (vchkpw(8)).
//! Reads `login\0password\0challenge\0` on descriptor 3; on success execs PROG.
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let roots = vqmail::paths::Roots::from_env();
    let fd3 = vqmail::sys::inherit_file(3);
    ExitCode::from(vqmail::auth::vchkpw::main(&roots, &args, fd3))
}
