//! vsetuserquota: see vsetuserquota(8). The work is done in [`vqmail::vpop::cli::vsetuserquota`].

fn main() {
    let args = vqmail::vpop::cli::args();
    std::process::exit(vqmail::vpop::cli::vsetuserquota(&args));
}
