//! Command lines of vpopmail's admin programs: getopt as glibc does it (options
//! and operands may be mixed; `--` ends the options), password prompts, and
//! output. Each program is one function here, `fn(args) -> exit code`, so the
//! binaries in `src/bin` stay one line long.
//!
//! As vpopmail's programs do, results and `Error: ...` lines go to stdout
//! (valias writes its errors to stderr, as vpopmail's valias does), and an
//! error exits with vpopmail's code modulo 256 (255 for most).

mod domains;
mod users;

pub use domains::{qmail_newmrh, qmail_newu, vaddaliasdomain, vadddomain, vdeldomain, vdominfo};
pub use users::{vadduser, valias, vdeluser, vmoduser, vpasswd, vsetuserquota, vuserinfo};

use std::io::{BufRead, Write};

use crate::vpop::error::VError;

/// The version string `-v` prints.
pub const VERSION: &str = concat!("vqmail ", env!("CARGO_PKG_VERSION"));

/// One parsed option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The option letter.
    pub c: char,
    /// Its argument, if it takes one.
    pub arg: Option<String>,
}

/// Parses `args` (without argv[0]) by a getopt spec such as `"vc:r::"`
/// (`:` = required argument, `::` = optional argument attached to the
/// option). Returns the options and the operands, or the offending letter.
pub fn getopt(args: &[String], spec: &str) -> Result<(Vec<Opt>, Vec<String>), String> {
    let kind = |c: char| -> Option<u8> {
        let s: Vec<char> = spec.chars().collect();
        let i = s.iter().position(|&x| x == c && x != ':')?;
        Some(match (s.get(i + 1), s.get(i + 2)) {
            (Some(':'), Some(':')) => 2,
            (Some(':'), _) => 1,
            _ => 0,
        })
    };
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            operands.push(a.clone());
            continue;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            match kind(c) {
                None => return Err(format!("invalid option -- '{c}'")),
                Some(0) => opts.push(Opt { c, arg: None }),
                Some(k) => {
                    let rest: String = chars[j..].iter().collect();
                    let arg = if !rest.is_empty() {
                        Some(rest)
                    } else if k == 1 {
                        match args.get(i) {
                            Some(v) => {
                                i += 1;
                                Some(v.clone())
                            }
                            None => return Err(format!("option requires an argument -- '{c}'")),
                        }
                    } else {
                        None
                    };
                    opts.push(Opt { c, arg });
                    break;
                }
            }
        }
    }
    Ok((opts, operands))
}

/// Writes to stdout, ignoring a closed pipe (a reader that wanted no more).
/// Output that cannot be written otherwise (a full disk) is an error: one
/// line on stderr and exit 111, not a listing silently lost with exit 0.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    // vpasswd fields keep their bytes (crate::vpop::entry::decode).
    let r = o
        .write_all(&crate::vpop::entry::encode(text))
        .and_then(|()| o.flush());
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            crate::elog!(
                "Error: can't write the output: {}",
                crate::deliver::errstr(&e)
            );
            std::process::exit(111);
        }
    }
}

/// Shows a random password before it is set: if it cannot be shown (stdout
/// closed, a full disk, a closed pipe), nothing is changed and the exit code
/// is returned, where setting it first would lock the account with a
/// password nobody saw.
pub fn show_random(random: &Option<String>) -> Result<(), i32> {
    let Some(r) = random else {
        return Ok(());
    };
    // Rust's stdout takes a closed descriptor 1 for a sink: ask the kernel.
    let open = crate::sys::fd_is_open(1);
    let mut o = std::io::stdout().lock();
    let line = format!("Random password: {r}\n");
    let shown = if open {
        o.write_all(line.as_bytes()).and_then(|()| o.flush())
    } else {
        Err(std::io::Error::from_raw_os_error(libc::EBADF))
    };
    match shown {
        Ok(()) => Ok(()),
        Err(e) => {
            crate::elog!(
                "Error: can't show the random password: {}; nothing changed",
                crate::deliver::errstr(&e)
            );
            Err(255)
        }
    }
}

/// Prints `Error: TEXT` on stdout and returns the exit code. When the
/// installation itself is not where the environment says (a shell without
/// `QMAIL_HOME` or `VPOPMAIL_HOME` exported), a line on stderr says so: the
/// `Error:` text alone (`Domain does not exist`) would mislead.
pub fn fail(e: &VError) -> i32 {
    out(&format!("Error: {}\n", e.text));
    let roots = crate::paths::Roots::from_env();
    let hint = [
        (roots.control(""), "QMAIL_HOME"),
        (roots.domains(), "VPOPMAIL_HOME"),
    ]
    .into_iter()
    .find(|(d, _)| !d.is_dir());
    if let Some((d, var)) = hint {
        let prog = crate::paths::program_name();
        crate::elog!("{prog}: {} is missing (is {var} right?)", d.display());
    }
    e.exit_code()
}

/// An `Error:` line for a command line that cannot be used, with the usage.
pub fn usage_error(problem: &str, usage: &str) -> i32 {
    out(&format!("Error: {problem}; usage: {usage}\n"));
    255
}

/// The program's arguments. Passwords are hashed and names stored as the
/// bytes given, and vpopmail's files are text, so an argument that is not
/// UTF-8 is refused (`Error:` line, exit 255) rather than changed.
pub fn args() -> Vec<String> {
    let mut v = Vec::new();
    for (n, a) in std::env::args_os().skip(1).enumerate() {
        match a.into_string() {
            // As vpasswd text (entry::decode), so that what is stored is
            // exactly the bytes given.
            Ok(s) => v.push(crate::vpop::entry::decode(s.as_bytes())),
            Err(_) => {
                // By its position only: the argument may be a password.
                let line = format!("Error: argument {} is not UTF-8 text\n", n + 1);
                // valias writes its errors on stderr, as vpopmail's does.
                if crate::paths::program_name() == "valias" {
                    eprint!("{line}");
                } else {
                    out(&line);
                }
                std::process::exit(255);
            }
        }
    }
    v
}

/// Reads one line without echo (when stdin is a terminal), after `prompt`
/// on stderr. `None` at end of input.
fn read_secret(prompt: &str) -> Option<String> {
    let tty = crate::sys::tty::is_tty(0);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let echo = if tty {
        crate::sys::tty::set_echo(0, false).ok()
    } else {
        None
    };
    let mut line = Vec::new();
    let n = std::io::stdin().lock().read_until(b'\n', &mut line);
    if let Some(was) = echo {
        let _ = crate::sys::tty::set_echo(0, was);
        crate::elog!();
    }
    match n {
        Ok(0) | Err(_) => None,
        Ok(_) => match String::from_utf8(line) {
            Ok(l) => Some(crate::vpop::entry::decode(
                l.trim_end_matches(['\n', '\r']).as_bytes(),
            )),
            Err(_) => {
                out("Error: the password is not UTF-8 text\n");
                std::process::exit(255);
            }
        },
    }
}

/// vpopmail's `vgetpasswd`: asks twice until both agree (`Passwords do not
/// match, try again` otherwise). End of input gives an empty password.
pub fn prompt_password(label: &str) -> String {
    loop {
        let Some(a) = read_secret(&format!("Please enter password for {label}: ")) else {
            return String::new();
        };
        let Some(b) = read_secret("enter password again: ") else {
            return String::new();
        };
        if a == b {
            return a;
        }
        out("Passwords do not match, try again\n");
    }
}

/// The length of `-r[len]` (default 12; over 128 is an error).
pub fn random_len(arg: Option<&str>) -> Result<usize, VError> {
    let n = arg
        .map(|a| crate::vpop::entry::atoi_u32(a) as usize)
        .unwrap_or(12);
    if n > 128 {
        return Err(VError::code(crate::vpop::error::VA_PASSWD_TOO_LONG));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopt_like_glibc() {
        let (o, r) = getopt(
            &v(&["-q", "50M", "joe@x.com", "-cJoe", "pw", "-r8", "-n"]),
            "svc:nq:e:r::C",
        )
        .unwrap();
        assert_eq!(r, v(&["joe@x.com", "pw"]));
        assert_eq!(
            o[0],
            Opt {
                c: 'q',
                arg: Some("50M".into())
            }
        );
        assert_eq!(
            o[1],
            Opt {
                c: 'c',
                arg: Some("Joe".into())
            }
        );
        assert_eq!(
            o[2],
            Opt {
                c: 'r',
                arg: Some("8".into())
            }
        );
        assert_eq!(o[3], Opt { c: 'n', arg: None });
        let (o, r) = getopt(&v(&["-r", "joe@x.com"]), "r::").unwrap();
        assert_eq!(o[0].arg, None);
        assert_eq!(r, v(&["joe@x.com"]));
        let (o, r) = getopt(&v(&["-pd", "--", "-x"]), "pd").unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(r, v(&["-x"]));
        assert!(getopt(&v(&["-z"]), "pd").is_err());
        assert!(getopt(&v(&["-q"]), "q:").is_err());
        let (_, r) = getopt(&v(&["-"]), "q:").unwrap();
        assert_eq!(r, v(&["-"]));
    }
}
