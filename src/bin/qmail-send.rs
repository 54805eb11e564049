//! qmail-send: deliver queued messages (started by qmail-start with fds 0 to 6).
//! `VQMAIL_SEND_ONCE=1`: exit as soon as nothing is due now.
use vqmail::queue::send::{Fds, Send, Signals};
use vqmail::sys::inherit_file as fd;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    // As qmail-send does: it works from the qmail home.
    vqmail::fsutil::settle_in(&roots.qmail);
    let once = std::env::var("VQMAIL_SEND_ONCE").is_ok_and(|v| !v.is_empty() && v != "0");
    // Run by hand: its descriptors are qmail-start's pipes, not there. (Said
    // before any is taken: 2 is one of them, and taking it closes it.)
    if !(0..=6).all(vqmail::sys::fd_is_open) {
        vqmail::elog!(
            "qmail-send: fatal: descriptors 0 to 6 are not all open: qmail-start starts qmail-send"
        );
        std::process::exit(111);
    }
    let (Some(log), Some(l1), Some(l2), Some(r3), Some(r4), Some(c5), Some(c6)) =
        (fd(0), fd(1), fd(2), fd(3), fd(4), fd(5), fd(6))
    else {
        std::process::exit(111);
    };
    let fds = Fds {
        log,
        cmd: [l1, r3],
        rep: [l2, r4],
        clean_cmd: c5,
        clean_rep: c6,
    };
    let Ok(sig) = Signals::install() else {
        std::process::exit(111);
    };
    let code = match Send::new(roots, fds, sig, once) {
        Ok(s) => s.run(),
        Err(code) => code,
    };
    std::process::exit(code);
}
