//! qmail-queue: queue a mail message (message on fd 0, envelope on fd 1).
use vqmail::queue::{enqueue, Queue};

fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    vqmail::sys::queue::umask(0o033);
    vqmail::sys::alarm_exits_52(86400);
    let (Some(msg), Some(env)) = (vqmail::sys::inherit_file(0), vqmail::sys::inherit_file(1))
    else {
        std::process::exit(enqueue::exit::READ);
    };
    if !roots.qmail.is_dir() {
        std::process::exit(enqueue::exit::HOME);
    }
    let q = Queue::new(roots.queue());
    let uid = nix::unistd::getuid().as_raw();
    let now = vqmail::timefmt::now();
    match enqueue::enqueue(&q, msg, env, uid, std::process::id(), now) {
        Ok(_) => std::process::exit(0),
        Err(code) => std::process::exit(code),
    }
}
