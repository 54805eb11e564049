//! qmail-lspawn: run local deliveries for qmail-send (`qmail-lspawn aliasempty`).
use std::sync::Arc;
use vqmail::queue::spawn;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    vqmail::fsutil::settle_in(&roots.qmail);
    // As qmail's: no aliasempty, no deliveries (exit 100).
    let Some(aliasempty) = std::env::args_os()
        .nth(1)
        .map(|a| a.to_string_lossy().into_owned())
    else {
        vqmail::elog!("qmail-lspawn: usage: qmail-lspawn aliasempty");
        std::process::exit(100);
    };
    let (Some(cmds), Some(reports)) = (vqmail::sys::inherit_file(0), vqmail::sys::inherit_file(1))
    else {
        std::process::exit(111);
    };
    let mess = roots.queue().join("mess");
    let r2 = roots.clone();
    let deliver: Arc<spawn::Deliver> =
        Arc::new(move |req| spawn::deliver_local(&r2, &aliasempty, req));
    std::process::exit(match spawn::serve(&mess, deliver, cmds, reports) {
        Ok(()) => 0,
        Err(_) => 111,
    });
}
