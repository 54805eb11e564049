//! qmail-smtpd: receive mail via SMTP (under tcpserver: fd 0/1 = the client).
//!
//! `qmail-smtpd [HOSTNAME [CHECKPROGRAM SUBPROGRAM...]]`, e.g.
//! `qmail-smtpd mail.example.com /home/vpopmail/bin/vchkpw /bin/true`.
//! See qmail-smtpd(8).

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    // As qmail-smtpd does: it works from the qmail home.
    vqmail::fsutil::settle_in(roots.qmail_home());
    let args = vqmail::smtp::server::Args::parse(std::env::args_os().skip(1).collect());
    std::process::exit(vqmail::smtp::server::run(&roots, args));
}
