//! qmail-remote: send one message to one remote domain by SMTP.
//!
//! `qmail-remote host sender recip...`, the message on fd 0; the report
//! (r/h/s per recipient, then K/Z/D, each ending in NUL) on fd 1; always
//! exits 0. See qmail-remote(8).

use std::io::Write;
use std::os::unix::ffi::OsStringExt;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let args: Vec<Vec<u8>> = std::env::args_os().skip(1).map(|a| a.into_vec()).collect();
    let input = vqmail::sys::inherit_file(0);
    let report = vqmail::smtp::client::run(&roots, &args, input);
    if let Some(mut out) = vqmail::sys::inherit_file(1) {
        let _ = out.write_all(&report.to_bytes());
    }
    std::process::exit(0);
}
