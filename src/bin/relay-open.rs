//! relay-open: POP-before-SMTP (vpopmail's open_smtp_relay as a program).
//!
//! `relay-open IP` records IP; `relay-open PROGRAM [ARGS...]` records
//! `$TCPREMOTEIP` and execs PROGRAM (a link in a checkpassword chain);
//! `relay-open -c` expires old entries and rebuilds tcp.smtp.cdb (clearopensmtp).
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use vqmail::{paths::Roots, relay};

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let roots = Roots::from_env();
    let Some(first) = args.first().and_then(|a| a.to_str().map(str::to_string)) else {
        vqmail::elog!(
            "relay-open: usage: relay-open IP | relay-open -c | relay-open PROGRAM [ARGS...]"
        );
        return ExitCode::from(100);
    };
    if first == "-c" && args.len() == 1 {
        return done(relay::clear(&roots), "unable to clear open-smtp");
    }
    if relay::normalize_ip(&first).is_some() && args.len() == 1 {
        return done(relay::open(&roots, &first), "unable to record the IP");
    }
    if first.starts_with('-') || relay::normalize_ip(&first).is_some() {
        vqmail::elog!(
            "relay-open: usage: relay-open IP | relay-open -c | relay-open PROGRAM [ARGS...]"
        );
        return ExitCode::from(100);
    }
    // Without a slash, a word that starts with a digit or `=` (tcprules'
    // host form), or with hex digits and a colon, is a mistyped address
    // (`1.2.3.4-255`, `1.2.3.4:deny`, `fe80::1%eth0`), not a program to run.
    let ipish = !first.is_empty()
        && !first.contains('/')
        && (first.starts_with(|c: char| c.is_ascii_digit() || c == '=')
            || first
                .split_once(':')
                .is_some_and(|(h, _)| h.bytes().all(|b| b.is_ascii_hexdigit())));
    if ipish {
        vqmail::elog!("relay-open: fatal: not an IP address: {first:?}");
        return ExitCode::from(100);
    }
    // Chain form: a failure to record must not stop the login.
    match std::env::var("TCPREMOTEIP") {
        Ok(ip) if !ip.is_empty() => {
            if let Err(e) = relay::open(&roots, &ip) {
                vqmail::elog!(
                    "relay-open: warning: unable to record {ip}: {}",
                    vqmail::deliver::errstr(&e)
                );
            }
        }
        _ => vqmail::elog!("relay-open: warning: TCPREMOTEIP is not set; nothing recorded"),
    }
    let e = std::process::Command::new(&args[0]).args(&args[1..]).exec();
    vqmail::elog!(
        "relay-open: fatal: unable to run {first}: {}",
        vqmail::deliver::errstr(&e)
    );
    ExitCode::from(111)
}

fn done(r: std::io::Result<()>, what: &str) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            vqmail::elog!("relay-open: fatal: {e}");
            ExitCode::from(100)
        }
        // The file was written; only the cdb is behind: no "unable to record".
        Err(e) if e.get_ref().is_some_and(|i| i.is::<relay::NotRebuilt>()) => {
            vqmail::elog!("relay-open: fatal: {}", vqmail::deliver::errstr(&e));
            ExitCode::from(111)
        }
        Err(e) => {
            vqmail::elog!("relay-open: fatal: {what}: {}", vqmail::deliver::errstr(&e));
            ExitCode::from(111)
        }
    }
}
