//! clearopensmtp: drops open-smtp entries older than the POP-before-SMTP window
//! and rebuilds tcp.smtp.cdb (run from cron; the same as `relay-open -c`).
use std::process::ExitCode;

fn main() -> ExitCode {
    vqmail::sys::reset_sigchld();
    if std::env::args_os().len() > 1 {
        vqmail::elog!("clearopensmtp: usage: clearopensmtp");
        return ExitCode::from(100);
    }
    match vqmail::relay::clear(&vqmail::paths::Roots::from_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let what = if e
                .get_ref()
                .is_some_and(|i| i.is::<vqmail::relay::NotRebuilt>())
            {
                ""
            } else {
                "unable to clear open-smtp: "
            };
            vqmail::elog!(
                "clearopensmtp: fatal: {what}{}",
                vqmail::deliver::errstr(&e)
            );
            ExitCode::from(111)
        }
    }
}
