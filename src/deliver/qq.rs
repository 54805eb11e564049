//! The client side of qmail-queue (qmail's `qmail.c`): the message on the
//! child's fd 0, the envelope `Fsender\0Trcpt\0...\0` on its fd 1, and the
//! exit code turned into qmail's text.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::Fail;
use crate::paths::Roots;

/// The qmail-queue to run: `$QMAILQUEUE` when set and not empty, else
/// `QMAIL_HOME/bin/qmail-queue`.
pub fn program(roots: &Roots) -> PathBuf {
    match std::env::var_os("QMAILQUEUE") {
        Some(p) if !p.is_empty() && !crate::sys::is_setid() => PathBuf::from(p),
        _ => roots.qmail_bin("qmail-queue"),
    }
}

/// qmail's text for a qmail-queue exit code: `""` for success, else a
/// `D` (permanent) or `Z` (temporary) letter and the text.
pub fn exit_text(code: i32, write_failed: bool) -> &'static str {
    // qmail.c: a write to qmail-queue that failed makes even exit 0 a read error.
    if code == 0 && write_failed {
        return "Zqq read error (#4.3.0)";
    }
    crate::queue::enqueue::exit_text(code)
}

/// A failed hand-over: permanent or not, and qmail's text (without the letter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QqError {
    /// True for a `D` text.
    pub permanent: bool,
    /// The text, e.g. `qq write error or disk full (#4.3.0)`.
    pub text: String,
}

impl QqError {
    fn from_letter(t: &str) -> QqError {
        QqError {
            permanent: t.starts_with('D'),
            text: t[1..].to_string(),
        }
    }
    /// As a delivery failure with `prefix` before the text.
    pub fn to_fail(&self, prefix: &str, suffix: &str) -> Fail {
        Fail {
            code: if self.permanent { 100 } else { 111 },
            text: format!("{prefix}{}{suffix}", self.text),
        }
    }
}

/// Queues `header` + `body` from `sender` to `recips` through `prog`, with
/// `env` added to its environment. Returns the qmail-queue pid (qmail's "qp").
pub fn submit(
    prog: &std::path::Path,
    cwd: &std::path::Path,
    env: &[(OsString, OsString)],
    header: &[u8],
    body: &mut dyn Read,
    sender: &[u8],
    recips: &[Vec<u8>],
) -> Result<u32, QqError> {
    let (env_r, env_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|_| QqError::from_letter(exit_text(51, false)))?;
    // As qmail's callers: qmail-queue (or $QMAILQUEUE, which may be a
    // relative name) runs in qmail's home.
    let mut child = match Command::new(prog)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(env_r))
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return Err(QqError::from_letter(exit_text(120, false))),
    };
    let qp = child.id();
    let mut failed = false;
    if let Some(mut w) = child.stdin.take() {
        let res = (|| -> io::Result<()> {
            let mut bw = io::BufWriter::with_capacity(64 * 1024, &mut w);
            bw.write_all(header)?;
            io::copy(body, &mut bw)?;
            bw.flush()
        })();
        failed |= res.is_err();
        drop(w);
    }
    let mut env_file = std::fs::File::from(env_w);
    let envelope = crate::queue::enqueue::envelope(sender, recips);
    // After a failed message transfer (a read error on our side) the
    // envelope is withheld: qmail-queue then sees a truncated envelope and
    // queues nothing.
    if !failed {
        failed |= env_file.write_all(&envelope).is_err();
    }
    drop(env_file);
    let status = match child.wait() {
        Ok(s) => s,
        Err(_) => return Err(QqError::from_letter("Zqq waitpid surprise (#4.3.0)")),
    };
    if status.signal().is_some() {
        return Err(QqError::from_letter("Zqq crashed (#4.3.0)"));
    }
    match exit_text(status.code().unwrap_or(81), failed) {
        "" => Ok(qp),
        t => Err(QqError::from_letter(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_texts() {
        assert_eq!(exit_text(0, false), "");
        assert_eq!(exit_text(0, true), "Zqq read error (#4.3.0)");
        assert_eq!(
            exit_text(53, false),
            "Zqq write error or disk full (#4.3.0)"
        );
        assert_eq!(
            exit_text(31, false),
            "Dmail server permanently rejected message (#5.3.0)"
        );
        assert_eq!(exit_text(20, false), "Dqq permanent problem (#5.3.0)");
        assert_eq!(exit_text(100, false), "Zqq temporary problem (#4.3.0)");
    }

    #[test]
    fn submits_message_and_envelope() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("fakeqq");
        let out = d.path().join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > {0}.msg\ncat <&1 > {0}.env 2>/dev/null || true\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut body: &[u8] = b"body\n";
        let qp = submit(
            &script,
            d.path(),
            &[],
            b"H: 1\n",
            &mut body,
            b"s@x",
            &[b"r@y".to_vec()],
        )
        .unwrap();
        assert!(qp > 0);
        assert_eq!(
            std::fs::read(out.with_extension("msg")).unwrap(),
            b"H: 1\nbody\n"
        );
        assert_eq!(
            std::fs::read(out.with_extension("env")).unwrap(),
            b"Fs@x\0Tr@y\0\0"
        );
        std::fs::write(&script, "#!/bin/sh\ncat >/dev/null\nexit 53\n").unwrap();
        let mut body: &[u8] = b"x\n";
        let e = submit(
            &script,
            d.path(),
            &[],
            b"",
            &mut body,
            b"",
            &[b"r@y".to_vec()],
        )
        .unwrap_err();
        assert!(!e.permanent);
        assert_eq!(e.text, "qq write error or disk full (#4.3.0)");
    }
}
