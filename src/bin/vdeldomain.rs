//! vdeldomain: see vdeldomain(8). The work is done in [`vqmail::vpop::cli::vdeldomain`].

fn main() {
    vqmail::sys::reset_sigchld();
    let args = vqmail::vpop::cli::args();
    std::process::exit(vqmail::vpop::cli::vdeldomain(&args));
}
