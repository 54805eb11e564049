//! qmail-newu: see qmail-newu(8). The work is done in [`vqmail::vpop::cli::qmail_newu`].

fn main() {
    vqmail::sys::reset_sigchld();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(vqmail::vpop::cli::qmail_newu(&args));
}
