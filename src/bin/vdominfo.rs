//! vdominfo: see vdominfo(8). The work is done in
//! [`vqmail::vpop::cli::vdominfo`].

fn main() {
    vqmail::sys::reset_sigchld();
    let args = vqmail::vpop::cli::args();
    std::process::exit(vqmail::vpop::cli::vdominfo(&args));
}
