//! `|command` deliveries: `/bin/sh -c command` in the home directory with the
//! message on stdin (rewound) and qmail-local's environment. Its output goes
//! to ours, so it ends up in the delivery report.
//!
//! A command that is only an absolute program path and plain or single-quoted
//! words (`|/home/vpopmail/bin/vdelivermail '' bounce-no-mailbox`) means the
//! same to the shell as to execve, so it is started without the shell; any
//! other command, or one whose start fails, goes to `/bin/sh -c` unchanged.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{errstr, program_code_is_permanent, Fail};

/// What a successful program asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: go on with the next line.
    Continue,
    /// Exit 99: delivered; skip the remaining lines.
    Stop,
}

/// Runs `command` and maps its exit status: 0 continue, 99 stop,
/// 100/64/65/70/76/77/78/112 permanent, a crash or anything else temporary.
pub fn run(
    command: &[u8],
    dir: &Path,
    env: &[(OsString, OsString)],
    stdin: File,
) -> Result<Outcome, Fail> {
    let direct = simple_words(command).and_then(|words| {
        let mut c = Command::new(OsStr::from_bytes(&words[0]));
        c.args(words[1..].iter().map(|w| OsStr::from_bytes(w)))
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(stdin.try_clone().ok()?));
        // A failed start (missing, not executable, a script without #!) is
        // left to the shell, which reports it as it always has.
        c.status().ok()
    });
    let status = match direct {
        Some(s) => s,
        None => Command::new("/bin/sh")
            .arg("-c")
            .arg(OsStr::from_bytes(command))
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(stdin))
            .status()
            .map_err(|e| Fail::temp(format!("Unable to run /bin/sh: {}. (#4.3.0)", errstr(&e))))?,
    };
    if status.signal().is_some() {
        return Err(Fail::temp("Aack, child crashed. (#4.3.0)"));
    }
    match status.code().unwrap_or(111) {
        0 => Ok(Outcome::Continue),
        99 => Ok(Outcome::Stop),
        c if program_code_is_permanent(c) => Err(Fail::silent(100)),
        _ => Err(Fail::silent(111)),
    }
}

/// The words of a command the shell would run as `execve(words[0], words)`:
/// an absolute path first, then words made of characters the shell takes
/// literally and of single-quoted strings, separated by blanks. `None` for
/// anything else (variables, redirections, globs, `~`, comments, `;` ...).
pub fn simple_words(command: &[u8]) -> Option<Vec<Vec<u8>>> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_./+,:@%=-".contains(&b);
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while i < command.len() {
        match command[i] {
            b' ' | b'\t' => i += 1,
            _ => {
                let mut w = Vec::new();
                while i < command.len() && !matches!(command[i], b' ' | b'\t') {
                    match command[i] {
                        b'\'' => {
                            let end = command[i + 1..].iter().position(|&b| b == b'\'')?;
                            w.extend_from_slice(&command[i + 1..i + 1 + end]);
                            i += end + 2;
                        }
                        b if plain(b) => {
                            w.push(b);
                            i += 1;
                        }
                        _ => return None,
                    }
                }
                words.push(w);
            }
        }
    }
    // The program: an absolute path written without quotes or `=` (no
    // assignment, no function or builtin of the shell).
    let raw = command.trim_ascii_start();
    let raw = &raw[..raw
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(raw.len())];
    if !raw.starts_with(b"/") || raw.contains(&b'\'') || raw.contains(&b'=') {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_commands_are_split_as_the_shell_would() {
        let w = |s: &str| simple_words(s.as_bytes());
        let v = |a: &[&str]| Some(a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>());
        assert_eq!(
            w("/home/vpopmail/bin/vdelivermail '' bounce-no-mailbox"),
            v(&["/home/vpopmail/bin/vdelivermail", "", "bounce-no-mailbox"])
        );
        assert_eq!(
            w("  /bin/prog\ta'b c'd  user@example.com 100%  "),
            v(&["/bin/prog", "ab cd", "user@example.com", "100%"])
        );
        assert_eq!(w("/bin/prog x=1 -f"), v(&["/bin/prog", "x=1", "-f"]));
        for shell in [
            "prog arg",
            "./prog",
            "exit 99",
            "A=1 /bin/prog",
            "/bin/a=b",
            "'/bin/prog' x",
            "/bin/prog $HOME",
            "/bin/prog \"x\"",
            "/bin/prog > out",
            "/bin/prog; /bin/other",
            "/bin/prog *",
            "/bin/prog ~/x",
            "/bin/prog # note",
            "/bin/prog 'unclosed",
            "/bin/prog a\\ b",
            "/bin/prog `id`",
            "/bin/prog && /bin/x",
            "/bin/prog\n/bin/x",
            "",
            "   ",
        ] {
            assert_eq!(w(shell), None, "{shell:?}");
        }
    }

    #[test]
    fn direct_programs_keep_the_shell_meaning() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let cmd = format!("/bin/cp /dev/null '{}'", out.display());
        assert!(simple_words(cmd.as_bytes()).is_some());
        assert_eq!(
            run(cmd.as_bytes(), t.path(), &[], stdin()).unwrap(),
            Outcome::Continue
        );
        assert!(out.exists());
        // A missing program: the shell's own answer (127, temporary).
        let e = run(b"/nonexistent/prog x", t.path(), &[], stdin()).unwrap_err();
        assert_eq!(e.code, 111);
        // A script without #!: the shell runs it, as before.
        let script = t.path().join("s");
        std::fs::write(&script, "exit 99\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cmd = script.display().to_string();
        assert_eq!(
            run(cmd.as_bytes(), t.path(), &[], stdin()).unwrap(),
            Outcome::Stop
        );
        // Exit codes map as through the shell.
        assert_eq!(
            run(b"/bin/false", t.path(), &[], stdin()).unwrap_err().code,
            111
        );
    }

    fn stdin() -> File {
        File::open("/dev/null").unwrap()
    }

    #[test]
    fn exit_codes() {
        let d = Path::new("/");
        assert_eq!(run(b"exit 0", d, &[], stdin()).unwrap(), Outcome::Continue);
        assert_eq!(run(b"exit 99", d, &[], stdin()).unwrap(), Outcome::Stop);
        for c in [100, 64, 65, 70, 76, 77, 78, 112] {
            assert_eq!(
                run(format!("exit {c}").as_bytes(), d, &[], stdin())
                    .unwrap_err()
                    .code,
                100
            );
        }
        for c in [1, 111, 75, 101] {
            assert_eq!(
                run(format!("exit {c}").as_bytes(), d, &[], stdin())
                    .unwrap_err()
                    .code,
                111
            );
        }
        let e = run(b"kill -9 $$", d, &[], stdin()).unwrap_err();
        assert_eq!(e.text, "Aack, child crashed. (#4.3.0)");
    }

    #[test]
    fn environment_and_dir() {
        let t = tempfile::tempdir().unwrap();
        let env = vec![(OsString::from("RECIPIENT"), OsString::from("a@b"))];
        run(
            b"echo \"$RECIPIENT\" > out; pwd >> out",
            t.path(),
            &env,
            stdin(),
        )
        .unwrap();
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        assert!(out.starts_with("a@b\n"));
    }
}
