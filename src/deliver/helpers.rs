//! qmail's small helpers for `.qmail` program lines: `preline`, `forward`,
//! `condredirect`, `bouncesaying` and `except`. qmail-local runs them with the
//! message on descriptor 0 (a file, so it can be read again) and the
//! delivery's environment (`UFLINE`, `RPLINE`, `DTLINE`, `SENDER`,
//! `NEWSENDER`); their exit codes speak qmail-local's language: 0 delivered,
//! 99 delivered and stop, 100 bounce, 111 try again later. What they print
//! goes into the delivery's log line.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::{errstr, is_temp, qq};
use crate::paths::Roots;

/// How a helper ends: its exit code and what it says on standard error.
#[derive(Debug, PartialEq, Eq)]
pub struct End {
    /// The exit code.
    pub code: i32,
    /// The line printed before exiting, if any (bytes: a bounce text from a
    /// .qmail file is passed on as written).
    pub say: Option<Vec<u8>>,
}

fn end(code: i32, say: impl Into<Vec<u8>>) -> End {
    End {
        code,
        say: Some(say.into()),
    }
}

fn quiet(code: i32) -> End {
    End { code, say: None }
}

/// Starts `argv` (set up by `setup`) as the execvp of qmail's helpers does
/// on a GNU system: a file the kernel cannot run (no `#!` line: ENOEXEC) is
/// run by `/bin/sh` instead, as a shell script.
fn spawn_execvp(argv: &[OsString], setup: impl Fn(&mut Command)) -> io::Result<Child> {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    setup(&mut c);
    match c.spawn() {
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            let Some(path) = find_program(&argv[0]) else {
                return Err(e);
            };
            let mut sh = Command::new("/bin/sh");
            sh.arg(path).args(&argv[1..]);
            setup(&mut sh);
            sh.spawn()
        }
        r => r,
    }
}

/// The file execvp runs for `name`: `name` itself when it holds a `/`, else
/// the first executable file of that name in `$PATH`.
fn find_program(name: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if name.as_bytes().contains(&b'/') {
        return Some(name.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `argv` with descriptor 0 shared; `Err` with the exit code qmail's
/// helpers give a program they cannot start: 111 for a temporary error, else 100.
fn run(argv: &[OsString]) -> Result<ExitStatus, i32> {
    spawn_execvp(argv, |_| {})
        .and_then(|mut c| c.wait())
        .map_err(|e| if is_temp(&e) { 111 } else { 100 })
}

/// The verdict of `condredirect`, `bouncesaying` and `except` on their
/// program: `Ok(true)` when it exited 0, `Ok(false)` for any other code but
/// 111, `Err` to end the helper with.
fn judge(name: &str, argv: &[OsString]) -> Result<bool, End> {
    // A program that cannot be started counts as one that exited 111 or 100.
    let code = match run(argv) {
        Ok(s) if s.signal().is_some() => {
            return Err(end(111, format!("{name}: fatal: child crashed")))
        }
        Ok(s) => s.code(),
        Err(c) => Some(c),
    };
    match code {
        Some(0) => Ok(true),
        Some(111) => Err(end(111, format!("{name}: fatal: temporary child error"))),
        _ => Ok(false),
    }
}

/// `preline [-frdFRD] command [arg ...]`: runs the command with the
/// delivery's `From ` line, `Return-Path:` and `Delivered-To:` (each unless
/// its flag `-f`, `-r` or `-d` turns it off) in front of the message, for
/// programs that expect an mbox-style message (procmail, maildrop).
pub fn preline(args: &[OsString]) -> End {
    let usage = || end(100, "preline: usage: preline cmd [ arg ... ]");
    let (Some(uf), Some(rp), Some(dt)) = (
        std::env::var_os("UFLINE"),
        std::env::var_os("RPLINE"),
        std::env::var_os("DTLINE"),
    ) else {
        return usage();
    };
    let (mut f, mut r, mut d) = (true, true, true);
    let mut i = 0;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'f' => f = false,
                'r' => r = false,
                'd' => d = false,
                'F' => f = true,
                'R' => r = true,
                'D' => d = true,
                _ => return usage(),
            }
        }
        i += 1;
    }
    let argv = &args[i..];
    if argv.is_empty() {
        return usage();
    }
    let mut child = match spawn_execvp(argv, |c| {
        c.stdin(Stdio::piped());
    }) {
        Ok(c) => c,
        Err(e) => {
            use std::os::unix::ffi::OsStrExt;
            let mut say = b"preline: fatal: unable to run ".to_vec();
            say.extend_from_slice(argv[0].as_bytes());
            say.extend_from_slice(format!(": {}", errstr(&e)).as_bytes());
            return end(if is_temp(&e) { 111 } else { 100 }, say);
        }
    };
    let copied = (|| -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let mut w = io::BufWriter::with_capacity(64 * 1024, child.stdin.take().expect("piped"));
        for (on, line) in [(f, &uf), (r, &rp), (d, &dt)] {
            if on {
                w.write_all(line.as_bytes())?;
            }
        }
        io::copy(&mut io::stdin().lock(), &mut w)?;
        w.flush()
    })();
    let status = child.wait();
    if let Err(e) = copied {
        return end(
            111,
            format!("preline: fatal: unable to copy input: {}", errstr(&e)),
        );
    }
    match status {
        Err(e) => end(111, format!("preline: fatal: wait failed: {}", errstr(&e))),
        Ok(s) if s.signal().is_some() => end(111, "preline: fatal: child crashed"),
        Ok(s) => quiet(s.code().unwrap_or(111)),
    }
}

/// Queues the message from descriptor 0, after `$DTLINE`, from `sender` to
/// `recips`; the qmail-queue pid, or how to end.
fn requeue(name: &str, sender_var: &str, recips: &[Vec<u8>]) -> Result<u32, End> {
    use std::os::unix::ffi::OsStringExt;
    let sender = std::env::var_os(sender_var)
        .ok_or_else(|| end(100, format!("{name}: fatal: {sender_var} not set")))?;
    let dtline = std::env::var_os("DTLINE")
        .ok_or_else(|| end(100, format!("{name}: fatal: DTLINE not set")))?;
    let roots = Roots::from_env();
    qq::submit(
        &qq::program(&roots),
        &roots.qmail,
        &[],
        &dtline.into_vec(),
        &mut io::stdin().lock(),
        &sender.into_vec(),
        recips,
    )
    .map_err(|e| {
        end(
            if e.permanent { 100 } else { 111 },
            format!("{name}: fatal: {}", e.text),
        )
    })
}

/// `forward address ...`: queues the message, `$DTLINE` first, from
/// `$NEWSENDER` to the addresses; prints `forward: qp PID`.
pub fn forward(args: &[OsString]) -> End {
    use std::os::unix::ffi::OsStrExt;
    let recips: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    match requeue("forward", "NEWSENDER", &recips) {
        Ok(qp) => end(0, format!("forward: qp {qp}")),
        Err(e) => e,
    }
}

/// `condredirect newaddress program [arg ...]`: when the program exits 0,
/// the message goes to `newaddress` (from `$SENDER`) and the delivery stops
/// here (99); 111 from the program defers; anything else lets the delivery
/// go on (0).
pub fn condredirect(args: &[OsString]) -> End {
    use std::os::unix::ffi::OsStrExt;
    if args.len() < 2 {
        return end(
            100,
            "condredirect: usage: condredirect newaddress program [ arg ... ]",
        );
    }
    match judge("condredirect", &args[1..]) {
        Err(e) => return e,
        Ok(false) => return quiet(0),
        Ok(true) => {}
    }
    if let Err(e) = nix::unistd::lseek(io::stdin(), 0, nix::unistd::Whence::SeekSet) {
        return end(
            111,
            format!(
                "condredirect: fatal: unable to rewind: {}",
                errstr(&io::Error::from(e))
            ),
        );
    }
    match requeue("condredirect", "SENDER", &[args[0].as_bytes().to_vec()]) {
        Ok(qp) => end(99, format!("condredirect: qp {qp}")),
        Err(e) => e,
    }
}

/// `bouncesaying error [program [arg ...]]`: bounces with `error`, always
/// or when the program exits 0 (111 defers, anything else goes on).
pub fn bouncesaying(args: &[OsString]) -> End {
    let Some(text) = args.first() else {
        return end(
            100,
            "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]",
        );
    };
    if args.len() > 1 {
        match judge("bouncesaying", &args[1..]) {
            Err(e) => return e,
            Ok(false) => return quiet(0),
            Ok(true) => {}
        }
    }
    end(
        100,
        std::os::unix::ffi::OsStrExt::as_bytes(text.as_os_str()),
    )
}

/// `except program [arg ...]`: turns the program's success into a bounce
/// (100) and its permanent failure into success (0); 111 defers.
pub fn except(args: &[OsString]) -> End {
    if args.is_empty() {
        return end(100, "except: usage: except program [ arg ... ]");
    }
    match judge("except", args) {
        Err(e) => e,
        Ok(true) => quiet(100),
        Ok(false) => quiet(0),
    }
}

/// Prints what a helper says and gives its exit code, for the programs' `main`.
pub fn finish(e: End) -> std::process::ExitCode {
    if let Some(mut s) = e.say {
        s.push(b'\n');
        let _ = io::stderr().write_all(&s);
    }
    std::process::ExitCode::from(u8::try_from(e.code).unwrap_or(111))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn usage_lines() {
        assert_eq!(bouncesaying(&[]).code, 100);
        assert_eq!(except(&[]).code, 100);
        assert_eq!(
            condredirect(&os(&["x@y"])).say.as_deref(),
            Some(&b"condredirect: usage: condredirect newaddress program [ arg ... ]"[..])
        );
    }

    #[test]
    fn verdicts_of_programs() {
        assert_eq!(bouncesaying(&os(&["Go away."])), end(100, "Go away."));
        assert_eq!(
            bouncesaying(&os(&["Go away.", "true"])),
            end(100, "Go away.")
        );
        assert_eq!(bouncesaying(&os(&["Go away.", "false"])), quiet(0));
        assert_eq!(
            bouncesaying(&os(&["x", "sh", "-c", "exit 111"])),
            end(111, "bouncesaying: fatal: temporary child error")
        );
        assert_eq!(
            bouncesaying(&os(&["x", "sh", "-c", "kill -9 $$"])),
            end(111, "bouncesaying: fatal: child crashed")
        );
        assert_eq!(except(&os(&["true"])), quiet(100));
        assert_eq!(except(&os(&["false"])), quiet(0));
        assert_eq!(except(&os(&["/nonexistent/program"])), quiet(0));
        // Not runnable: the program "failed" permanently (100), so except succeeds.
        assert_eq!(condredirect(&os(&["a@b", "false"])), quiet(0));
    }
}
