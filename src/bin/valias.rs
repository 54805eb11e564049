//! valias: see valias(8). The work is done in [`vqmail::vpop::cli::valias`].

fn main() {
    vqmail::sys::reset_sigchld();
    let args = vqmail::vpop::cli::args();
    std::process::exit(vqmail::vpop::cli::valias(&args));
}
