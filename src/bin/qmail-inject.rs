//! qmail-inject [-nNaAhH] [-fsender] [arg ...]: prepares a message from a
//! program and queues it (qmail-inject(8)).
use std::io::{Read, Write};
use std::process::ExitCode;

use vqmail::deliver::{inject, Fail};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let roots = vqmail::paths::Roots::from_env();
    let mut input = Vec::new();
    let read = match vqmail::sys::inherit_file(0) {
        Some(mut f) => f.read_to_end(&mut input).map(|_| ()),
        None => Ok(()),
    };
    let result = read
        .map_err(|e| {
            Fail::temp(format!(
                "qmail-inject: fatal: read error: {}",
                vqmail::deliver::errstr(&e)
            ))
        })
        .and_then(|()| {
            let env = |k: &str| std::env::var(k).ok();
            inject::run(&roots, &argv, &env, &input, &mut std::io::stdout().lock())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "{}", f.text);
            ExitCode::from(f.code)
        }
    }
}
