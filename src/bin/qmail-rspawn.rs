//! qmail-rspawn: run remote deliveries (qmail-remote) for qmail-send.
use std::sync::Arc;
use vqmail::queue::spawn;

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    vqmail::fsutil::settle_in(&roots.qmail);
    let (Some(cmds), Some(reports)) = (vqmail::sys::inherit_file(0), vqmail::sys::inherit_file(1))
    else {
        std::process::exit(111);
    };
    let mess = roots.queue().join("mess");
    let r2 = roots.clone();
    let deliver: Arc<spawn::Deliver> = Arc::new(move |req| spawn::deliver_remote(&r2, req));
    std::process::exit(match spawn::serve(&mess, deliver, cmds, reports) {
        Ok(()) => 0,
        Err(_) => 111,
    });
}
