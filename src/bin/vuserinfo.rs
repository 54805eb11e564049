//! vuserinfo: see vuserinfo(8). The work is done in [`vqmail::vpop::cli::vuserinfo`].

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(vqmail::vpop::cli::vuserinfo(&args));
}
