//! qmail-inject [-nNaAhH] [-fsender] [arg ...]: prepares a message from a
//! program and queues it (qmail-inject(8)).
use std::io::Write;
use std::process::ExitCode;

use vqmail::deliver::inject;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    // Lossy: a non-UTF-8 argument must not crash the program.
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let roots = vqmail::paths::Roots::from_env();
    let env = |k: &str| std::env::var(k).ok();
    let result = inject::run_stdio(&roots, &argv, &env);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "{}", f.text);
            ExitCode::from(f.code)
        }
    }
}
