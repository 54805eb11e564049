//! qmail-popup HOST checkpassword subprogram...: the POP3 server before
//! authentication (see qmail-popup(8)).

fn main() {
    vqmail::sys::reset_sigchld();
    std::process::exit(vqmail::pop3::server::popup(std::env::args_os().collect()));
}
