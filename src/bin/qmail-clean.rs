//! qmail-clean: remove queue files on qmail-send's request (fd 0 in, fd 1 out).
fn main() {
    vqmail::sys::reset_sigchld();
    let roots = vqmail::paths::Roots::from_env();
    let (Some(input), Some(output)) = (vqmail::sys::inherit_file(0), vqmail::sys::inherit_file(1))
    else {
        std::process::exit(111);
    };
    let q = vqmail::queue::Queue::new(roots.queue());
    let now = vqmail::timefmt::now();
    std::process::exit(match vqmail::queue::clean::serve(&q, input, output, now) {
        Ok(()) => 0,
        Err(_) => 111,
    });
}
