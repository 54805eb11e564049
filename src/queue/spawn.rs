//! qmail-lspawn and qmail-rspawn: run deliveries for qmail-send.
//!
//! qmail's protocol: the spawner first writes one byte on fd 1, how many
//! deliveries it runs at once ([`SPAWN`]). qmail-send then writes a command
//! per delivery on the spawner's fd 0: one byte of delivery slot, then `S/N\0`
//! (the message below `mess/`), `sender\0`, `recipient\0`. The spawner runs the
//! delivery in the background and answers on fd 1 with the slot byte, a letter
//! (`K` delivered, `Z` temporary failure, `D` permanent failure), a text and a
//! `\0`. When qmail-send closes fd 0, the spawner waits for the deliveries in
//! progress, then exits.
//!
//! qmail-lspawn (root) finds the recipient's account in `users/cdb` (or falls
//! back to system accounts and then the `alias` user), and runs `qmail-local`
//! under that account's uid and gid. qmail-rspawn (qmailr) runs
//! `qmail-remote HOST SENDER RECIPIENT` and folds its r/h/s and K/Z/D reports
//! into one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::paths::Roots;

/// One delivery request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The message file.
    pub mess: PathBuf,
    /// Envelope sender.
    pub sender: Vec<u8>,
    /// Recipient.
    pub recip: Vec<u8>,
}

/// A delivery function: request in, report (letter + text) out.
pub type Deliver = dyn Fn(&Request) -> Vec<u8> + Send + Sync;

/// The most deliveries a spawner runs at once (qmail's `conf-spawn`).
pub const SPAWN: u8 = 120;

/// The spawner loop: says how many deliveries it takes ([`SPAWN`]), reads commands from `input`, runs each with `deliver` on a
/// worker thread ([`crate::pool`]: reused, and a new one whenever none is idle,
/// so no delivery waits for another), writes reports to `output`; returns when
/// `input` ends and every delivery has reported.
pub fn serve(
    mess_dir: &Path,
    deliver: Arc<Deliver>,
    input: impl Read,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    let mut output = output;
    output.write_all(&[SPAWN]).and_then(|_| output.flush())?;
    let out = Arc::new(Mutex::new(output));
    let mut r = BufReader::new(input);
    // qmail-send never has more deliveries in flight than its concurrency.
    let mut pool = crate::pool::Pool::new(usize::MAX, Job::run_reporting_panics);
    loop {
        let mut slot = [0u8; 1];
        match r.read_exact(&mut slot) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut fields = Vec::new();
        for _ in 0..3 {
            let mut f = Vec::new();
            r.by_ref().take(4096).read_until(0, &mut f)?;
            if f.pop() != Some(0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "command from qmail-send cut off",
                ));
            }
            fields.push(f);
        }
        let recip = fields.pop().unwrap_or_default();
        let sender = fields.pop().unwrap_or_default();
        let path = fields.pop().unwrap_or_default();
        let mess = mess_path(mess_dir, &path);
        let job = Job {
            deliver: Arc::clone(&deliver),
            out: Arc::clone(&out),
            slot,
            mess,
            sender,
            recip,
        };
        // Without a thread to spare, the delivery runs here, in turn.
        if let Err(job) = pool.submit(job) {
            job.run_reporting_panics();
        }
    }
    pool.finish();
    Ok(())
}

/// One delivery of the spawner loop and where its report goes.
struct Job<W> {
    deliver: Arc<Deliver>,
    out: Arc<Mutex<W>>,
    slot: [u8; 1],
    mess: Option<PathBuf>,
    sender: Vec<u8>,
    recip: Vec<u8>,
}

impl<W: Write> Job<W> {
    fn run(self) {
        let report = match self.mess {
            Some(mess) => (self.deliver)(&Request {
                mess,
                sender: self.sender,
                recip: self.recip,
            }),
            None => b"ZInternal qmail-spawn bug: bad message name. (#4.3.0)\n".to_vec(),
        };
        send_report(&self.out, self.slot, report);
    }

    /// Runs the delivery; one that panics is reported as a temporary
    /// failure (qmail-send must hear of every delivery it started).
    fn run_reporting_panics(self) {
        let (slot, out) = (self.slot, Arc::clone(&self.out));
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run())).is_err() {
            let text = b"ZInternal qmail-spawn bug: the delivery failed. (#4.3.0)\n";
            send_report(&out, slot, text.to_vec());
        }
    }
}

/// Writes a report for qmail-send: the slot, the letter and text (no NUL
/// inside; an empty one is `Z`), a NUL.
fn send_report<W: Write>(out: &Mutex<W>, slot: [u8; 1], mut report: Vec<u8>) {
    report.retain(|&b| b != 0);
    if report.is_empty() {
        report.push(b'Z');
    }
    let mut msg = slot.to_vec();
    msg.extend_from_slice(&report);
    msg.push(0);
    if let Ok(mut o) = out.lock() {
        let _ = o.write_all(&msg).and_then(|_| o.flush());
    }
}

/// `S/N` below `mess/`, digits only.
fn mess_path(mess_dir: &Path, rel: &[u8]) -> Option<PathBuf> {
    let s = std::str::from_utf8(rel).ok()?;
    let (a, b) = s.split_once('/')?;
    super::parse_id(a)?;
    super::parse_id(b)?;
    Some(mess_dir.join(a).join(b))
}

/// True when the qmail accounts are missing or we are not root: programs keep
/// the invoking identity (tests, a sandbox root). Looked up once per process,
/// as qmail fixes its accounts when it is built.
pub fn sandbox() -> bool {
    static SANDBOX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SANDBOX.get_or_init(|| {
        !nix::unistd::geteuid().is_root() || crate::sys::account("qmails").is_none()
    })
}

/// The uid of `qmailq`, which owns every message file (once per process).
fn qmailq_uid() -> Option<u32> {
    static QMAILQ: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *QMAILQ.get_or_init(|| crate::sys::account("qmailq").map(|a| a.uid))
}

/// Opens the message for a delivery, checking that qmail-queue wrote it:
/// owned by qmailq, as qmail's spawners check. The check applies to both
/// spawners (qmail-rspawn runs as qmailr) wherever the queue belongs to
/// qmailq; in a sandbox whose queue belongs to its user there is no qmailq
/// to compare with.
fn open_mess(p: &Path) -> Result<File, Vec<u8>> {
    // Non-blocking: a FIFO put in a message file's place must not hang the
    // delivery (it is then refused as the wrong type). Regular files ignore
    // the flag.
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|_| b"Zqmail-spawn unable to open message. (#4.3.0)\n".to_vec())?;
    let m = f
        .metadata()
        .map_err(|_| b"Zqmail-spawn unable to fstat message. (#4.3.0)\n".to_vec())?;
    if !m.is_file() {
        return Err(b"ZSorry, message has wrong type. (#4.3.5)\n".to_vec());
    }
    // On a real installation (run as root with the qmail accounts, as
    // qmail-start starts us) every message must be qmailq's, whatever the
    // directories on the way say: qmailq can make mess/S, or a directory of
    // its own that a queue link goes through, point anywhere.
    if !sandbox() && !owner_ok(m.uid(), qmailq_uid(), qmailq_uid()) {
        return Err(b"ZSorry, message has wrong owner. (#4.3.5)\n".to_vec());
    }
    Ok(f)
}

/// Whether a message file's owner is right: qmailq's, where the queue
/// belongs to qmailq (`dir_uid`), as on a real installation.
fn owner_ok(mess_uid: u32, dir_uid: Option<u32>, qmailq: Option<u32>) -> bool {
    match qmailq {
        Some(q) if dir_uid == Some(q) => mess_uid == q,
        _ => true,
    }
}

/// Runs a child with the message on fd 0 and fd 1 + fd 2 into one pipe; its
/// output (at most `limit` bytes kept) and exit status.
fn run_child(mut cmd: Command, mess: File, limit: usize) -> io::Result<(Vec<u8>, i32, bool)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let w2 = w.try_clone()?;
    cmd.stdin(Stdio::from(mess))
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2));
    let mut child = cmd.spawn()?;
    drop(cmd);
    let mut out = Vec::new();
    let mut rf = File::from(r);
    let mut buf = [0u8; 4096];
    let mut too_long = false;
    loop {
        match rf.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(out.len());
                if n > room {
                    too_long = true;
                }
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let st = child.wait()?;
    if too_long {
        out.extend_from_slice(b"\nError report too long, sorry.\n");
    }
    match st.code() {
        Some(c) => Ok((out, c, false)),
        None => Ok((out, st.signal().unwrap_or(0), true)),
    }
}

// ---------------------------------------------------------------- local

/// A local account as qmail-lspawn hands it to qmail-local.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assign {
    /// User name.
    pub user: Vec<u8>,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Home directory.
    pub home: Vec<u8>,
    /// `-` or empty.
    pub dash: Vec<u8>,
    /// Extension.
    pub ext: Vec<u8>,
}

fn parse_assign(data: &[u8]) -> Option<Assign> {
    let f: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if f.len() < 6 {
        return None;
    }
    let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<u32>().ok();
    Some(Assign {
        user: f[0].to_vec(),
        uid: num(f[1])?,
        gid: num(f[2])?,
        home: f[3].to_vec(),
        dash: f[4].to_vec(),
        ext: f[5].to_vec(),
    })
}

/// qmail-lspawn's `users/cdb` lookup: `!local\0` exactly, then `!prefix` keys
/// for wildcard (`+`) assignments, longest first, only for prefixes ending in a
/// character listed in the cdb's `""` record; the rest of the local part is
/// appended to the extension.
pub fn lookup_users_cdb(roots: &Roots, local: &[u8]) -> io::Result<Option<Assign>> {
    Ok(lookup_users_cdb_exact(roots, local)?.map(|(a, _)| a))
}

/// [`lookup_users_cdb`], also telling whether the assignment found was the
/// exact (`=`) one for `local`.
pub fn lookup_users_cdb_exact(roots: &Roots, local: &[u8]) -> io::Result<Option<(Assign, bool)>> {
    let Some(cdb) = crate::cdb::Reader::open_opt(&roots.users().join("cdb"))? else {
        return Ok(None);
    };
    let mut key = b"!".to_vec();
    key.extend_from_slice(&local.to_ascii_lowercase());
    key.push(0);
    let wild = cdb.get(b"")?.unwrap_or_default();
    let mut i = key.len();
    let mut flagwild = false;
    while i > 0 {
        if !flagwild || i == 1 || wild.contains(&key[i - 1]) {
            if let Some(mut v) = cdb.get(&key[..i])? {
                if flagwild {
                    v.extend_from_slice(&local[i - 1..]);
                }
                v.push(0);
                return parse_assign(&v)
                    .map(|a| Some((a, !flagwild)))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad users/cdb"));
            }
        }
        i -= 1;
        flagwild = true;
    }
    Ok(None)
}

/// The qmail-getpw fallback: a system account named by the local part (or a
/// prefix of it ending before a `-`), lower-cased for the lookup, when it is
/// not root and its home directory exists and belongs to it (qmail's rule:
/// `www-data` or `nobody` without such a home are not mail users); the
/// extension keeps its case. Else the `alias` user with the whole local part
/// as extension.
pub fn getpw(roots: &Roots, local: &[u8]) -> Option<Assign> {
    use std::os::unix::fs::MetadataExt;
    let lower = local.to_ascii_lowercase();
    let mut cut = lower.len();
    loop {
        let name = std::str::from_utf8(&lower[..cut]).unwrap_or("");
        if !name.is_empty() && !name.contains(['.', '/']) {
            let found = crate::sys::account(name).filter(|a| {
                a.uid != 0 && std::fs::metadata(&a.home).is_ok_and(|m| m.uid() == a.uid)
            });
            if let Some(a) = found {
                let ext = local.get(cut + 1..).unwrap_or(b"");
                return Some(Assign {
                    user: a.name.into_bytes(),
                    uid: a.uid,
                    gid: a.gid,
                    home: a.home.into_os_string().into_encoded_bytes(),
                    dash: if cut < lower.len() {
                        b"-".to_vec()
                    } else {
                        Vec::new()
                    },
                    ext: ext.to_vec(),
                });
            }
        }
        match lower[..cut].iter().rposition(|&b| b == b'-') {
            Some(p) => cut = p,
            None => break,
        }
    }
    let (uid, gid, home) = match crate::sys::account("alias") {
        Some(a) => (a.uid, a.gid, a.home),
        None => (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            roots.qmail.join("alias"),
        ),
    };
    Some(Assign {
        user: b"alias".to_vec(),
        uid,
        gid,
        home: home.into_os_string().into_encoded_bytes(),
        dash: b"-".to_vec(),
        ext: local.to_vec(),
    })
}

fn os(b: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(b.to_vec())
}

/// One local delivery (qmail-lspawn): the report letter and text.
pub fn deliver_local(roots: &Roots, aliasempty: &str, req: &Request) -> Vec<u8> {
    let (local, domain) = match req.recip.iter().rposition(|&b| b == b'@') {
        Some(at) => (&req.recip[..at], &req.recip[at + 1..]),
        None => (&req.recip[..], &b""[..]),
    };
    if local.is_empty() {
        return b"K".to_vec();
    }
    let a = match lookup_users_cdb(roots, local) {
        Ok(Some(a)) => a,
        Ok(None) => match getpw(roots, local) {
            Some(a) => a,
            None => return b"ZUnable to find alias user!\n".to_vec(),
        },
        Err(_) => return b"ZTrouble reading users/cdb in qmail-lspawn.\n".to_vec(),
    };
    let sandbox = sandbox();
    if a.uid == 0 && !sandbox {
        return b"ZNot allowed to perform deliveries as root.\n".to_vec();
    }
    let mess = match open_mess(&req.mess) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut cmd = Command::new(roots.qmail_bin("qmail-local"));
    cmd.arg0("qmail-local")
        .arg("--")
        .args(
            [
                &a.user,
                &a.home,
                local,
                &a.dash,
                &a.ext,
                domain,
                &req.sender,
            ][..]
                .iter()
                .map(|s| os(s)),
        )
        .arg(aliasempty);
    crate::fsutil::start_in(&mut cmd, &roots.qmail);
    if !sandbox && nix::unistd::geteuid().as_raw() != a.uid {
        cmd.uid(a.uid).gid(a.gid);
    }
    match run_child(cmd, mess, 3000) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => b"ZUnable to run qmail-local.\n".to_vec(),
        Err(_) => b"ZUnable to run qmail-local.\n".to_vec(),
        Ok((out, _, true)) => {
            let _ = out;
            b"Zqmail-local crashed.\n".to_vec()
        }
        Ok((out, code, false)) => {
            let letter = match code {
                0 => b'K',
                111 | 71 | 74 | 75 => b'Z',
                _ => b'D',
            };
            let mut r = vec![letter];
            r.extend(out.iter().take_while(|&&b| b != 0));
            r
        }
    }
}

// ---------------------------------------------------------------- remote

/// Folds qmail-remote's output (recipient reports r/h/s, then a message report
/// K/Z/D, each ending in `\0`) into one report, as qmail-rspawn does.
pub fn fold_remote(out: &[u8]) -> Vec<u8> {
    if out.is_empty() {
        return b"Zqmail-remote produced no output.\n".to_vec();
    }
    let parts: Vec<&[u8]> = out.split(|&b| b == 0).filter(|p| !p.is_empty()).collect();
    let msg = parts
        .iter()
        .find(|p| matches!(p[0], b'K' | b'Z' | b'D'))
        .copied();
    let rcpt = parts
        .iter()
        .find(|p| matches!(p[0], b'r' | b'h' | b's'))
        .copied();
    let result: i32 = match msg.map(|m| m[0]) {
        Some(b'K') => 1,
        Some(b'Z') => 0,
        _ => -1,
    };
    let orr = match rcpt.map(|r| r[0]) {
        Some(b's') => 0,
        Some(b'h') => -1,
        _ => result,
    };
    let mut rep = vec![match orr {
        1 => b'K',
        0 => b'Z',
        _ => b'D',
    }];
    if let Some(r) = rcpt {
        rep.extend_from_slice(&r[1..]);
    }
    if let Some(m) = msg {
        if result <= orr || rcpt.is_none() || rcpt.map(|r| r[0]) == Some(b'r') {
            rep.extend_from_slice(&m[1..]);
        }
    }
    rep
}

/// How the report text (after the `Z`) of a remote delivery whose
/// qmail-remote could not be started begins (`Unable to run qmail-remote:
/// file does not exist.`): qmail-send never turns it into a bounce. A
/// qmail-remote that ran and exited 111 is `Unable to run qmail-remote.`,
/// as in qmail, and bounces once the message is too old, as any temporary
/// failure does.
pub const NO_REMOTE: &[u8] = b"Unable to run qmail-remote: ";

/// One remote delivery (qmail-rspawn). A missing qmail-remote defers the
/// delivery, however long it stays missing: [`NO_REMOTE`].
pub fn deliver_remote(roots: &Roots, req: &Request) -> Vec<u8> {
    let host = match req.recip.iter().rposition(|&b| b == b'@') {
        Some(at) => &req.recip[at + 1..],
        None => &b""[..],
    };
    let mess = match open_mess(&req.mess) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut cmd = Command::new(roots.qmail_bin("qmail-remote"));
    cmd.arg0("qmail-remote")
        .args([os(host), os(&req.sender), os(&req.recip)]);
    crate::fsutil::start_in(&mut cmd, &roots.qmail);
    match run_child(cmd, mess, 10_000) {
        Err(e) => format!(
            "Z{}{}.\n",
            String::from_utf8_lossy(NO_REMOTE),
            crate::deliver::errstr(&e)
        )
        .into_bytes(),
        Ok((_, _, true)) => b"Zqmail-remote crashed.\n".to_vec(),
        Ok((out, 0, false)) => fold_remote(&out),
        Ok((_, 111, false)) => b"ZUnable to run qmail-remote.\n".to_vec(),
        Ok((_, _, false)) => b"DUnable to run qmail-remote.\n".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_remote_reports() {
        assert_eq!(
            fold_remote(b"r\0K1.2.3.4 accepted message./Remote host said: 250 ok\n\0"),
            b"K1.2.3.4 accepted message./Remote host said: 250 ok\n".to_vec()
        );
        assert_eq!(
            fold_remote(b"h1.2.3.4 does not like recipient.\n\0DGiving up on 1.2.3.4.\n\0"),
            b"D1.2.3.4 does not like recipient.\nGiving up on 1.2.3.4.\n".to_vec()
        );
        assert_eq!(
            fold_remote(b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"),
            b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n".to_vec()
        );
        assert_eq!(
            fold_remote(b""),
            b"Zqmail-remote produced no output.\n".to_vec()
        );
    }

    #[test]
    fn users_cdb_lookup() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(d.path(), d.path());
        std::fs::create_dir_all(roots.users()).unwrap();
        let mut w = crate::cdb::Writer::new();
        w.add(b"!joe\0", b"joe\x001000\x001000\0/home/joe\0\0\0");
        w.add(b"", b"-");
        w.add(
            b"!example.com-",
            b"example.com\x0089\x0089\0/v/d/example.com\0-\0",
        );
        w.write_atomic(&roots.users().join("cdb"), 0o644).unwrap();
        let a = lookup_users_cdb(&roots, b"Joe").unwrap().unwrap();
        assert_eq!(
            (a.user, a.uid, a.home, a.dash, a.ext),
            (b"joe".to_vec(), 1000, b"/home/joe".to_vec(), vec![], vec![])
        );
        let a = lookup_users_cdb(&roots, b"example.com-Ann")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.user, a.uid, a.dash, a.ext),
            (b"example.com".to_vec(), 89, b"-".to_vec(), b"Ann".to_vec())
        );
        assert!(lookup_users_cdb(&roots, b"nobody-x").unwrap().is_none());
    }

    #[test]
    fn message_owner_rule() {
        // A real installation: mess/S and its messages are qmailq's (7411).
        assert!(owner_ok(7411, Some(7411), Some(7411)));
        assert!(!owner_ok(1000, Some(7411), Some(7411)));
        assert!(!owner_ok(0, Some(7411), Some(7411)));
        // A sandbox (its user's queue) or no qmailq account: nothing to check.
        assert!(owner_ok(1000, Some(1000), Some(7411)));
        assert!(owner_ok(1000, Some(1000), None));
        assert!(owner_ok(1000, None, Some(7411)));
    }

    #[test]
    fn spawner_reports_in_order_of_completion() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("3")).unwrap();
        let deliver: Arc<Deliver> = Arc::new(|r: &Request| {
            let mut v = b"K".to_vec();
            v.extend_from_slice(&r.recip);
            v
        });
        let out = Arc::new(Mutex::new(Vec::new()));
        serve(
            d.path(),
            deliver,
            &b"\x013/26\0s\0a@b\0\x02x/y\0s\0c@d\0"[..],
            Shared(out.clone()),
        )
        .unwrap();
        let o = out.lock().unwrap().clone();
        assert_eq!(o[0], SPAWN);
        assert!(o.windows(6).any(|w| w == b"\x01Ka@b\0"));
        assert!(o.windows(2).any(|w| w == b"\x02Z"));
    }

    /// Output shared with the test.
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// How many reports (`Kok` or `Znot all at once`) came.
    fn reports(out: &Mutex<Vec<u8>>) -> usize {
        let o = out.lock().unwrap();
        o.windows(4).filter(|w| w == b"Kok\0").count()
            + o.windows(5).filter(|w| w == b"Znot ").count()
    }

    #[test]
    fn deliveries_run_at_once_and_workers_are_reused() {
        use std::sync::Condvar;
        use std::time::{Duration, Instant};
        const N: usize = 6;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("3")).unwrap();
        // Each delivery of the first round waits (at most 10 s) until all N
        // run at once; a pool that made one wait for another would time out.
        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let (st, th) = (Arc::clone(&started), Arc::clone(&threads));
        let deliver: Arc<Deliver> = Arc::new(move |r: &Request| {
            th.lock().unwrap().insert(std::thread::current().id());
            if r.recip.starts_with(b"first") && !crate::pool::all_at_once(&st, N) {
                return b"Znot all at once".to_vec();
            }
            b"Kok".to_vec()
        });
        let (mut to_spawner, input) = std::os::unix::net::UnixStream::pair().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&out);
        let dir = d.path().to_path_buf();
        let server = std::thread::spawn(move || serve(&dir, deliver, input, Shared(o)).unwrap());
        let command = |slot: u8, rcpt: &str| {
            let mut c = vec![slot];
            c.extend_from_slice(format!("3/26\0s\0{rcpt}\0").as_bytes());
            c
        };
        for i in 0..N {
            to_spawner
                .write_all(&command(i as u8, &format!("first{i}")))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while reports(&out) < N && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(reports(&out), N);
        // The second round, one at a time, runs on the same threads.
        for i in 0..N {
            to_spawner.write_all(&command(i as u8, "second")).unwrap();
            while reports(&out) < N + i + 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop(to_spawner);
        server.join().unwrap();
        let o = out.lock().unwrap().clone();
        // qmail's protocol: the concurrency byte first, then each report
        // behind its one slot byte.
        assert_eq!(o[0], SPAWN);
        assert_eq!(o.windows(3).filter(|w| w == b"Kok").count(), 2 * N, "{o:?}");
        for i in 0..N as u8 {
            let mut r = vec![0, i];
            r.extend_from_slice(b"Kok\0");
            assert!(o.windows(r.len()).any(|w| w[1..] == r[1..]), "{o:?}");
        }
        assert_eq!(threads.lock().unwrap().len(), N);
    }
}
