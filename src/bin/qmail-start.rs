//! qmail-start: turn on mail delivery (`qmail-start aliasempty [logger arg ...]`).
fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(vqmail::queue::start::start(&roots, &args));
}
