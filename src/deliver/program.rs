//! `|command` deliveries: `/bin/sh -c command` in the home directory with the
//! message on stdin (rewound) and qmail-local's environment. Its output goes
//! to ours, so it ends up in the delivery report.

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
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(OsStr::from_bytes(command))
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdin))
        .status()
        .map_err(|e| Fail::temp(format!("Unable to run /bin/sh: {}. (#4.3.0)", errstr(&e))))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
