//! except: qmail's .qmail helper (except(1)).
fn main() -> std::process::ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    vqmail::deliver::helpers::finish(vqmail::deliver::helpers::except(&args))
}
