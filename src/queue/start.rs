//! qmail-start: sets up the queue processes (qmail-start(8)).
//!
//! `qmail-start aliasempty [logger arg ...]`, run as root: starts qmail-lspawn
//! (root, with `aliasempty`), qmail-rspawn (qmailr), qmail-clean (qmailq) and
//! the optional logger (qmaill, reading the log on its fd 0), connected by
//! pipes, then becomes qmails and executes qmail-send with the pipes on fds
//! 0 to 6. Without a logger, qmail-send's log goes to qmail-start's fd 2.
//! When an account does not exist (a sandbox), the process keeps its identity.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::paths::Roots;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Gives the command the account's ids when we are root and it exists.
fn as_account(cmd: &mut Command, name: &str) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Some(a) = crate::sys::account(name) {
        cmd.uid(a.uid).gid(a.gid);
    }
}

fn helper(
    roots: &Roots,
    name: &str,
    args: &[OsString],
    stdin: OwnedFd,
    stdout: Option<OwnedFd>,
    account: Option<&str>,
) -> io::Result<()> {
    let mut cmd = Command::new(roots.qmail_bin(name));
    cmd.arg0(name).args(args).stdin(Stdio::from(stdin));
    if let Some(o) = stdout {
        cmd.stdout(Stdio::from(o));
    }
    if let Some(a) = account {
        as_account(&mut cmd, a);
    }
    cmd.spawn()
        .map(|_| ())
        .map_err(|e| unable(roots.qmail_bin(name).as_os_str(), e))
}

/// `unable to start PROGRAM: why`, so the admin sees which program.
fn unable(prog: &std::ffi::OsStr, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "unable to start {}: {}",
            prog.to_string_lossy(),
            crate::deliver::errstr(&e)
        ),
    )
}

/// Starts everything; returns only on failure (with the exit code).
pub fn start(roots: &Roots, args: &[OsString]) -> i32 {
    let Some(aliasempty) = args.first() else {
        crate::elog!("qmail-start: usage: qmail-start aliasempty [ logger arg ... ]");
        return 100;
    };
    crate::sys::queue::umask(0o077);
    match start_inner(roots, aliasempty, &args[1..]) {
        Ok(never) => match never {},
        Err(e) => {
            crate::elog!("qmail-start: fatal: {e}");
            111
        }
    }
}

fn start_inner(
    roots: &Roots,
    aliasempty: &OsString,
    logger: &[OsString],
) -> io::Result<std::convert::Infallible> {
    let log_w: OwnedFd = if let Some(prog) = logger.first() {
        let (r, w) = pipe()?;
        let mut cmd = Command::new(prog);
        cmd.args(&logger[1..]).stdin(Stdio::from(r));
        as_account(&mut cmd, "qmaill");
        cmd.spawn().map_err(|e| unable(prog, e))?;
        w
    } else {
        io::stderr().as_fd().try_clone_to_owned()?
    };
    let (l_r, l_w) = pipe()?; // qmail-send fd 1 -> lspawn
    let (lr_r, lr_w) = pipe()?; // lspawn -> qmail-send fd 2
    let (r_r, r_w) = pipe()?; // fd 3 -> rspawn
    let (rr_r, rr_w) = pipe()?; // rspawn -> fd 4
    let (c_r, c_w) = pipe()?; // fd 5 -> clean
    let (cr_r, cr_w) = pipe()?; // clean -> fd 6
    helper(
        roots,
        "qmail-lspawn",
        std::slice::from_ref(aliasempty),
        l_r,
        Some(lr_w),
        None,
    )?;
    helper(roots, "qmail-rspawn", &[], r_r, Some(rr_w), Some("qmailr"))?;
    helper(roots, "qmail-clean", &[], c_r, Some(cr_w), Some("qmailq"))?;
    crate::sys::become_user("qmail-start", "qmails")?;
    let send = roots.qmail_bin("qmail-send");
    crate::sys::queue::install_fds(&[
        (0, log_w.as_fd()),
        (1, l_w.as_fd()),
        (2, lr_r.as_fd()),
        (3, r_w.as_fd()),
        (4, rr_r.as_fd()),
        (5, c_w.as_fd()),
        (6, cr_r.as_fd()),
    ])?;
    let e = Command::new(send).arg0("qmail-send").exec();
    // fd 2 is no longer stderr; nobody can hear us.
    let _ = File::from(log_w);
    Err(e)
}
