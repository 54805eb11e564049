//! sendmail [-t] [-fsender] [-Fname] [-bp] [-bs] [arg ...]: the sendmail
//! interface for programs, on top of qmail-inject (sendmail(8)). Invoked as
//! `mailq` it lists the queue; as `newaliases` it explains and fails.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use vqmail::deliver::{inject, Fail};

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let argv0 = args.next().unwrap_or_default();
    let argv: Vec<String> = args.collect();
    let roots = vqmail::paths::Roots::from_env();
    let name = argv0.rsplit('/').next().unwrap_or("");
    let action = match name {
        "mailq" => Ok(inject::SendmailAction::ListQueue),
        "newaliases" => Err(Fail::perm(
            "sendmail: fatal: please use fastforward/newaliases instead",
        )),
        _ => inject::sendmail_args(&argv),
    };
    let result = action.and_then(|a| match a {
        inject::SendmailAction::ListQueue => {
            Err(exec(Command::new(roots.qmail_bin("qmail-qread"))))
        }
        inject::SendmailAction::Smtp => {
            let mut c = Command::new(roots.qmail_bin("qmail-smtpd"));
            if std::env::var_os("PROTO").is_some() {
                // Already under a TCP server: leave its variables alone.
                return Err(exec(c));
            }
            c.env("RELAYCLIENT", "")
                .env("DATABYTES", "0")
                .env("PROTO", "TCP")
                .env("TCPREMOTEINFO", "sendmail-bs")
                .env("TCPREMOTEIP", "127.0.0.1")
                .env("TCPREMOTEHOST", "localhost")
                .env("TCPLOCALIP", "127.0.0.1")
                .env("TCPLOCALHOST", "localhost")
                .env("TCPLOCALPORT", "25");
            Err(exec(c))
        }
        inject::SendmailAction::Inject(args, env) => {
            let lookup = |k: &str| {
                env.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(k).ok())
            };
            inject::run_stdio(&roots, &args, &lookup)
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "{}", f.text);
            ExitCode::from(f.code)
        }
    }
}

/// Replaces this process with `c`; returns only on failure.
fn exec(mut c: Command) -> Fail {
    let e = c.exec();
    Fail::temp(format!(
        "sendmail: fatal: unable to run {}: {}",
        c.get_program().to_string_lossy(),
        vqmail::deliver::errstr(&e)
    ))
}
