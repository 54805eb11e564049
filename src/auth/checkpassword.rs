//! The checkpassword interface (COMPAT section 10), both sides.
//!
//! The caller forks the checkpassword program with a pipe on descriptor 3
//! carrying `login\0password\0challenge\0` (at most [`MAX_REQUEST`] bytes),
//! closes its end and waits: exit 0 means accepted (the program has then
//! exec'd its argument program), 1 a bad password, 111 a temporary failure;
//! callers treat any nonzero exit as "no". The challenge field holds the APOP
//! timestamp or the CRAM-MD5 challenge; field 2 is then the client's digest.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// The most a checkpassword program reads from descriptor 3.
pub const MAX_REQUEST: usize = 512;

/// What a checkpassword program is asked.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The login as typed.
    pub login: Vec<u8>,
    /// The password, or the APOP / CRAM-MD5 digest.
    pub password: Vec<u8>,
    /// The APOP timestamp or CRAM-MD5 challenge (may be empty).
    pub challenge: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("login", &String::from_utf8_lossy(&self.login))
            .field("password", &"<hidden>")
            .field("challenge", &String::from_utf8_lossy(&self.challenge))
            .finish()
    }
}

/// How the checkpassword program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: accepted (and the argument program ran).
    Accepted,
    /// A nonzero exit code: refused (1, 3 ...) or a temporary failure (111).
    Rejected(i32),
    /// Killed by this signal ("aack, child crashed").
    Crashed(i32),
}

impl Outcome {
    /// The outcome of a finished child.
    pub fn from_status(status: ExitStatus) -> Outcome {
        match (status.code(), status.signal()) {
            (Some(0), _) => Outcome::Accepted,
            (Some(c), _) => Outcome::Rejected(c),
            (None, Some(s)) => Outcome::Crashed(s),
            (None, None) => Outcome::Crashed(0),
        }
    }
}

/// The bytes written to descriptor 3. `None` when a field holds a NUL (it
/// cannot be carried) or the whole exceeds [`MAX_REQUEST`].
pub fn encode(login: &[u8], password: &[u8], challenge: &[u8]) -> Option<Vec<u8>> {
    if [login, password, challenge].iter().any(|f| f.contains(&0)) {
        return None;
    }
    let mut v = Vec::with_capacity(login.len() + password.len() + challenge.len() + 3);
    for f in [login, password, challenge] {
        v.extend_from_slice(f);
        v.push(0);
    }
    (v.len() <= MAX_REQUEST).then_some(v)
}

/// Starts `argv` with `data` readable on its descriptor 3 (already written and
/// closed on our side, so the child sees EOF after it), and the given stdin
/// and stdout; stderr is inherited. The caller waits for the child.
///
/// qmail-popup passes the client connection as stdin/stdout (the program
/// execs the POP3 server); qmail-smtpd passes none (see [`run`]).
pub fn spawn<S: AsRef<OsStr>>(
    argv: &[S],
    data: &[u8],
    stdin: Stdio,
    stdout: Stdio,
) -> io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no checkpassword program"))?;
    if data.len() > MAX_REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "checkpassword request too long",
        ));
    }
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // The request fits in the pipe buffer, so writing it before the child runs
    // cannot block, and the child sees EOF once it has read it.
    let mut w = std::fs::File::from(wr);
    w.write_all(data)?;
    drop(w);
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(stdin).stdout(stdout);
    crate::sys::auth::give_fd3(&mut cmd, rd);
    cmd.spawn()
}

/// qmail-smtpd's check: runs `argv` (e.g. `vchkpw /bin/true`) with the request
/// on descriptor 3, stdin from /dev/null and stdout to our stderr, waits, and
/// says whether it was accepted. A field that cannot be carried is "no".
/// `Err` when the program cannot be started or was killed by a signal
/// (`454 oops, problem with child`: the failure is ours, not the password's).
pub fn run<S: AsRef<OsStr>>(
    argv: &[S],
    login: &[u8],
    password: &[u8],
    challenge: &[u8],
) -> io::Result<bool> {
    match run_outcome(argv, login, password, challenge)? {
        Outcome::Accepted => Ok(true),
        Outcome::Rejected(_) => Ok(false),
        Outcome::Crashed(sig) => Err(io::Error::other(format!(
            "checkpassword program killed by signal {sig}"
        ))),
    }
}

/// Like [`run`], with the exact outcome.
pub fn run_outcome<S: AsRef<OsStr>>(
    argv: &[S],
    login: &[u8],
    password: &[u8],
    challenge: &[u8],
) -> io::Result<Outcome> {
    let Some(data) = encode(login, password, challenge) else {
        return Ok(Outcome::Rejected(1));
    };
    use std::os::fd::AsFd;
    let out = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    };
    let mut child = spawn(argv, &data, Stdio::null(), out)?;
    Ok(Outcome::from_status(child.wait()?))
}

/// Why a request could not be read (the checkpassword side).
#[derive(Debug)]
pub enum ReadError {
    /// Descriptor 3 could not be read.
    Io(io::Error),
    /// More than [`MAX_REQUEST`] bytes, or the login or password field is not
    /// terminated.
    Malformed,
}

/// Reads the request from `r` until EOF (the checkpassword side).
pub fn read_request(r: &mut impl Read) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(MAX_REQUEST);
    let mut chunk = [0u8; MAX_REQUEST + 1];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return Err(ReadError::Malformed);
        }
    }
    parse_request(&buf).ok_or(ReadError::Malformed)
}

/// Splits `login\0password\0challenge\0`. The challenge's terminator and
/// anything after it are optional; login and password must be terminated.
pub fn parse_request(buf: &[u8]) -> Option<Request> {
    let mut fields = buf.splitn(3, |&c| c == 0);
    let login = fields.next()?;
    let password = fields.next()?;
    let rest = fields.next()?;
    let challenge = rest.split(|&c| c == 0).next().unwrap_or_default();
    Some(Request {
        login: login.to_vec(),
        password: password.to_vec(),
        challenge: challenge.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_parse_round_trip() {
        let d = encode(b"joe@example.com", b"pw", b"<1.2@h>").unwrap();
        assert_eq!(d, b"joe@example.com\0pw\0<1.2@h>\0");
        let r = parse_request(&d).unwrap();
        assert_eq!(r.login, b"joe@example.com");
        assert_eq!(r.password, b"pw");
        assert_eq!(r.challenge, b"<1.2@h>");
        assert_eq!(encode(b"a\0b", b"p", b""), None);
        assert_eq!(encode(b"a", &[b'x'; 600], b""), None);
        assert!(format!("{r:?}").contains("<hidden>"));
    }

    #[test]
    fn parse_tolerates_missing_challenge_and_refuses_unterminated() {
        let r = parse_request(b"u\0p\0").unwrap();
        assert_eq!(
            (r.login.as_slice(), r.challenge.as_slice()),
            (&b"u"[..], &b""[..])
        );
        let r = parse_request(b"u\0p\0ts").unwrap();
        assert_eq!(r.challenge, b"ts");
        assert!(parse_request(b"u\0p").is_none());
        assert!(parse_request(b"u").is_none());
        assert!(parse_request(b"").is_none());
    }

    #[test]
    fn read_request_bounds_its_input() {
        let mut ok: &[u8] = b"u\0p\0c\0";
        assert!(read_request(&mut ok).is_ok());
        let big = vec![b'a'; MAX_REQUEST + 1];
        assert!(matches!(
            read_request(&mut big.as_slice()),
            Err(ReadError::Malformed)
        ));
    }

    /// A reader that hands out its data in chunks of a fixed size.
    struct Chunked<'a>(&'a [u8], usize);

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_request_in_any_chunking() {
        let data = b"joe@example.com\0secret\0<1.2@host>\0";
        for size in 1..=512 {
            let r = read_request(&mut Chunked(data, size)).unwrap();
            assert_eq!(r.login, b"joe@example.com");
            assert_eq!(r.password, b"secret");
            assert_eq!(r.challenge, b"<1.2@host>");
        }
        let big = vec![b'a'; MAX_REQUEST + 1];
        for size in [1, 7, 512] {
            assert!(matches!(
                read_request(&mut Chunked(&big, size)),
                Err(ReadError::Malformed)
            ));
        }
    }

    #[test]
    fn run_passes_fd3_and_reports_exit_codes() {
        // The child copies fd 3 to a file, then exits with a code chosen by the
        // login, so both directions of the interface are checked.
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("fd3");
        let script = format!(
            "cat <&3 > '{}'; case \"$(tr '\\0' ' ' < '{}')\" in 'good '*) exit 0;; 'temp '*) exit 111;; 'kill '*) kill -9 $$;; *) exit 1;; esac",
            out.display(),
            out.display()
        );
        let argv = ["/bin/sh", "-c", &script];
        assert!(run(&argv, b"good", b"pw", b"ch").unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"good\0pw\0ch\0");
        assert!(!run(&argv, b"bad", b"pw", b"").unwrap());
        assert_eq!(
            run_outcome(&argv, b"temp", b"pw", b"").unwrap(),
            Outcome::Rejected(111)
        );
        assert_eq!(
            run_outcome(&argv, b"kill", b"pw", b"").unwrap(),
            Outcome::Crashed(9)
        );
        assert!(run(&["/nonexistent/checkpassword"], b"a", b"b", b"").is_err());
        let none: [&str; 0] = [];
        assert!(run(&none, b"a", b"b", b"").is_err());
    }
}
