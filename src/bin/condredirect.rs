//! condredirect: qmail's .qmail helper (condredirect(1)).
fn main() -> std::process::ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    vqmail::deliver::helpers::finish(vqmail::deliver::helpers::condredirect(&args))
}
