//! qmail-pop3d MAILDIR: the POP3 server after authentication, run by the
//! checkpassword program in the account's home (see qmail-pop3d(8)).

fn main() {
    vqmail::sys::reset_sigchld();
    std::process::exit(vqmail::pop3::server::pop3d(std::env::args_os().collect()));
}
