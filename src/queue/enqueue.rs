//! qmail-queue: put one message into the queue (qmail-queue(8)).
//!
//! The message comes on fd 0, the envelope on fd 1: `F<sender>\0`, then
//! `T<recipient>\0` for each recipient, then one more `\0`. The steps, each of
//! which a crash may interrupt (see the module docs of [`crate::queue`]):
//! create `pid/PID.TIME.SEQ` exclusively (or rename a spare file there, see
//! [`super::spare`]) and take its inode number as the
//! message number N; link it to `mess/S/N` and remove the pid file; write the
//! Received line and the message (`mess/S/` is synced meanwhile); create
//! `intd/N` with the envelope; fsync both (concurrently); link `intd/N` to
//! `todo/N`; pull the trigger; fsync `todo/`; exit 0. On any failure
//! before the todo link, what was created is truncated and removed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Queue, ADDR};

/// Exit codes of qmail-queue (qmail.c's texts are in [`exit_text`]).
pub mod exit {
    /// An envelope address is too long.
    pub const ADDR_TOO_LONG: i32 = 11;
    /// Timeout.
    pub const TIMEOUT: i32 = 52;
    /// Write error or disk full.
    pub const WRITE: i32 = 53;
    /// Unable to read the message or the envelope.
    pub const READ: i32 = 54;
    /// Trouble with the qmail home directory.
    pub const HOME: i32 = 61;
    /// Trouble in the queue directory.
    pub const QUEUE_DIR: i32 = 62;
    /// Trouble creating the pid file.
    pub const PID: i32 = 63;
    /// Trouble making the mess file.
    pub const MESS: i32 = 64;
    /// Trouble making the intd file.
    pub const INTD: i32 = 65;
    /// Trouble linking todo.
    pub const TODO: i32 = 66;
    /// Envelope format error.
    pub const ENVELOPE: i32 = 91;
    /// Out of memory (an envelope over [`super::MAX_ENVELOPE`]).
    pub const NOMEM: i32 = 51;
}

/// The largest envelope qmail-queue takes (about 300,000 recipients); a
/// bigger one is refused as qmail's "qq out of memory" (temporary), before it
/// can make qmail-queue or, later, qmail-send hold gigabytes.
pub const MAX_ENVELOPE: usize = 16 << 20;

/// The text a caller of qmail-queue makes of its exit code (qmail.c's
/// `qmail_close`), the first letter being `D` (permanent) or `Z` (temporary).
pub fn exit_text(code: i32) -> &'static str {
    match code {
        0 => "",
        11 | 115 => "Denvelope address too long for qq (#5.1.3)",
        31 => "Dmail server permanently rejected message (#5.3.0)",
        12..=40 => "Dqq permanent problem (#5.3.0)",
        51 => "Zqq out of memory (#4.3.0)",
        52 => "Zqq timeout (#4.3.0)",
        53 => "Zqq write error or disk full (#4.3.0)",
        54 => "Zqq read error (#4.3.0)",
        55 => "Zqq unable to read configuration (#4.3.0)",
        56 => "Zqq trouble making network connection (#4.3.0)",
        61 => "Zqq trouble in home directory (#4.3.0)",
        62..=66 => "Zqq trouble creating files in queue (#4.3.0)",
        71 => "Zmail server temporarily rejected message (#4.3.0)",
        72 => "Zconnection to mail server timed out (#4.4.1)",
        73 => "Zconnection to mail server rejected (#4.4.1)",
        74 => "Zcommunication with mail server failed (#4.4.2)",
        81 | 91 => "Zqq internal bug (#4.3.0)",
        120 => "Zunable to exec qq (#4.3.0)",
        _ => "Zqq temporary problem (#4.3.0)",
    }
}

/// A parsed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender (may be empty).
    pub sender: Vec<u8>,
    /// The recipients.
    pub recipients: Vec<Vec<u8>>,
}

/// An envelope in qmail-queue's format: `F<sender>\0`, `T<recipient>\0` for
/// each recipient, then one more `\0`. An address ends at a NUL, as qmail's
/// C strings do: bytes after one must never become records of their own.
pub fn envelope<R: AsRef<[u8]>>(sender: &[u8], recipients: &[R]) -> Vec<u8> {
    let cut = |a: &[u8]| a.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
    let mut e = Vec::with_capacity(64);
    e.push(b'F');
    e.extend_from_slice(&cut(sender));
    e.push(0);
    for r in recipients {
        e.push(b'T');
        e.extend_from_slice(&cut(r.as_ref()));
        e.push(0);
    }
    e.push(0);
    e
}

/// Reads an envelope in qmail-queue's format; `Err(exit code)` as qmail-queue:
/// 54 on EOF before the final NUL, 91 on a bad record byte, 11 on an address of
/// 1003 bytes or more.
pub fn read_envelope(r: impl Read) -> Result<Envelope, i32> {
    let mut r = BufReader::new(r);
    let mut total = 0usize;
    let mut byte = || -> Result<u8, i32> {
        let mut b = [0u8; 1];
        loop {
            match r.read(&mut b) {
                Ok(0) => return Err(exit::READ),
                Ok(_) => {
                    total += 1;
                    if total > MAX_ENVELOPE {
                        return Err(exit::NOMEM);
                    }
                    return Ok(b[0]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(exit::READ),
            }
        }
    };
    let addr = |byte: &mut dyn FnMut() -> Result<u8, i32>| -> Result<Vec<u8>, i32> {
        let mut a = Vec::new();
        loop {
            let b = byte()?;
            if b == 0 {
                return Ok(a);
            }
            a.push(b);
            if a.len() >= ADDR {
                return Err(exit::ADDR_TOO_LONG);
            }
        }
    };
    if byte()? != b'F' {
        return Err(exit::ENVELOPE);
    }
    let sender = addr(&mut byte)?;
    let mut recipients = Vec::new();
    loop {
        match byte()? {
            b'T' => recipients.push(addr(&mut byte)?),
            0 => break,
            _ => return Err(exit::ENVELOPE),
        }
    }
    Ok(Envelope { sender, recipients })
}

/// Who called: decides the wording of the Received line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invoker {
    /// The `alias` user.
    Alias,
    /// `qmaild` (qmail-smtpd).
    Network,
    /// `qmails` (bounces).
    Bounce,
    /// Anybody else.
    Uid(u32),
}

impl Invoker {
    /// Classifies a real uid by the qmail accounts that exist.
    pub fn of_uid(uid: u32) -> Invoker {
        match crate::sys::account_by_uid(uid).map(|a| a.name).as_deref() {
            Some("alias") => Invoker::Alias,
            Some("qmaild") => Invoker::Network,
            Some("qmails") => Invoker::Bounce,
            _ => Invoker::Uid(uid),
        }
    }
}

/// `Received: (qmail PID invoked by uid N); DATE\n`.
pub fn received_line(pid: u32, who: Invoker, now: i64) -> String {
    let by = match who {
        Invoker::Alias => "by alias".to_string(),
        Invoker::Network => "from network".to_string(),
        Invoker::Bounce => "for bounce".to_string(),
        Invoker::Uid(u) => format!("by uid {u}"),
    };
    format!(
        "Received: (qmail {pid} invoked {by}); {}\n",
        crate::timefmt::qmail_date(now)
    )
}

/// Files made so far, removed again if queueing fails. The file is emptied
/// first when a descriptor for it could be had (a reused spare may have
/// other names until the end); the name goes in any case, or a leftover
/// intd/N would refuse every later message given the same inode number.
struct Made {
    mess: Option<(PathBuf, Option<File>)>,
    intd: Option<(PathBuf, Option<File>)>,
}

impl Made {
    fn undo(&mut self) {
        for (p, f) in [self.mess.take(), self.intd.take()].into_iter().flatten() {
            if let Some(f) = f {
                let _ = f.set_len(0);
            }
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Queues one message; returns its number, or the exit code on failure.
pub fn enqueue(
    q: &Queue,
    msg: impl Read,
    envelope: impl Read,
    uid: u32,
    pid: u32,
    now: i64,
) -> Result<u64, i32> {
    if !q.dir().is_dir() {
        return Err(exit::QUEUE_DIR);
    }
    let mut made = Made {
        mess: None,
        intd: None,
    };
    let r = enqueue_steps(q, msg, envelope, uid, pid, now, &mut made);
    if r.is_err() {
        made.undo();
    }
    r
}

fn enqueue_steps(
    q: &Queue,
    mut msg: impl Read,
    envelope: impl Read,
    uid: u32,
    pid: u32,
    now: i64,
    made: &mut Made,
) -> Result<u64, i32> {
    // pid/PID.TIME.SEQ, exclusively: its inode number is the message number.
    // A spare file (finished messages' inodes, see queue::spare) is renamed
    // into place when there is one.
    let mut spares = super::spare::Taker::list(q);
    let mut pidfile = None;
    for seq in 1..=9 {
        let p = q.dir().join("pid").join(format!("{pid}.{now}.{seq}"));
        match spares.take(&p).map(Ok).unwrap_or_else(|| create_excl(&p)) {
            Ok(f) => {
                pidfile = Some((p, f));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return Err(exit::PID),
        }
    }
    let (pidpath, file) = pidfile.ok_or(exit::PID)?;
    let id = file.metadata().map_err(|_| exit::PID)?.ino();
    let mess = q.mess(id);
    if std::fs::hard_link(&pidpath, &mess).is_err() {
        let _ = std::fs::remove_file(&pidpath);
        return Err(exit::MESS);
    }
    // mess/S/N is a new name (a link, to a spare or to the pid file), which a
    // file system need not make durable with the file (ext4 without a journal
    // does so only for a file it has just created). One helper thread syncs
    // mess/S/ now, while the message comes in, then the message file once it
    // is written, while this thread syncs the envelope; both must be done
    // before the todo link. (Without a thread to spare, this one does it all.)
    let mess_dir = mess.parent().map(Path::to_path_buf).unwrap_or_default();
    let (written, is_written) = std::sync::mpsc::channel::<()>();
    let helper = file.try_clone().ok().and_then(|f| {
        let d = mess_dir.clone();
        std::thread::Builder::new()
            .spawn(move || {
                let dir = crate::fsutil::fsync_dir(&d).is_ok();
                dir && is_written.recv().is_ok() && f.sync_all().is_ok()
            })
            .ok()
    });
    made.mess = Some((mess, file.try_clone().ok()));
    if std::fs::remove_file(&pidpath).is_err() {
        return Err(exit::PID);
    }

    // The message: Received line, then the bytes unchanged.
    let mut w = BufWriter::with_capacity(65536, &file);
    w.write_all(received_line(pid, Invoker::of_uid(uid), now).as_bytes())
        .map_err(|_| exit::WRITE)?;
    copy(&mut msg, &mut w)?;
    w.flush().map_err(|_| exit::WRITE)?;
    drop(w);
    let _ = written.send(());

    // The envelope, then intd/N, then the todo link.
    let env = read_envelope(envelope)?;
    let intd = q.intd(id);
    let f = match spares
        .take(&intd)
        .map(Ok)
        .unwrap_or_else(|| create_intd(&intd))
    {
        Ok(f) => f,
        Err(_) => return Err(exit::INTD),
    };
    made.intd = Some((intd.clone(), f.try_clone().ok()));
    // u and p records, then the envelope without its closing empty record.
    let mut data = format!("u{uid}\0p{pid}\0").into_bytes();
    data.extend_from_slice(&self::envelope(&env.sender, &env.recipients));
    data.pop();
    (&f).write_all(&data).map_err(|_| exit::WRITE)?;
    // Until the todo link, a crash leaves only files that qmail-send's
    // cleanup removes (state S2/S3).
    let intd_synced = f.sync_all().is_ok();
    let mess_synced = match helper {
        Some(t) => t.join().unwrap_or(false),
        None => crate::fsutil::fsync_dir(&mess_dir).is_ok() && file.sync_all().is_ok(),
    };
    if !(intd_synced && mess_synced) {
        return Err(exit::WRITE);
    }
    if std::fs::hard_link(&intd, q.todo(id)).is_err() {
        return Err(exit::TODO);
    }
    // The todo link is the commit point; it is made durable before exit 0.
    // qmail-send is woken first, so that it reads todo/N (whose files are
    // on disk) while todo/ is synced.
    made.mess = None;
    made.intd = None;
    pull_trigger(q);
    let _ = crate::fsutil::fsync_dir(&q.dir().join("todo"));
    Ok(id)
}

/// intd/N, exclusively. One that exists already is a leftover: this
/// process holds inode N as mess/N, and a message's intd/N never outlives
/// its mess/N, so it belongs to no message (a renamed spare would replace
/// it just the same).
fn create_intd(p: &Path) -> io::Result<File> {
    match create_excl(p) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(p)?;
            create_excl(p)
        }
        r => r,
    }
}

fn create_excl(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(p)
}

/// Copies the message; read errors give 54, write errors 53.
fn copy(r: &mut impl Read, w: &mut impl Write) -> Result<(), i32> {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(exit::READ),
        };
        w.write_all(&buf[..n]).map_err(|_| exit::WRITE)?;
    }
}

/// Wakes qmail-send: one byte into `lock/trigger`, without blocking; errors
/// are ignored (qmail-send rescans todo/ on its own).
pub fn pull_trigger(q: &Queue) {
    if let Ok(mut f) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(q.lock("trigger"))
    {
        let _ = f.write_all(b"\0");
    }
}

/// A todo/intd file qmail-send cannot take: qmail-queue never writes one,
/// so it is damaged or foreign, and stays in todo/ for a later scan.
#[derive(Debug, PartialEq, Eq)]
pub enum BadTodo {
    /// A record that is not `u`, `p`, `F` or `T` (qmail: "unknown record type").
    UnknownRecord,
    /// No `F` record: the sender, which bounces need, is missing.
    NoSender,
}

/// A todo/intd file read: `(uid, pid, sender, recipients)`.
pub type Todo = (u64, u64, Vec<u8>, Vec<Vec<u8>>);

/// Reads a whole todo/intd file.
pub fn parse_todo(data: &[u8]) -> Result<Todo, BadTodo> {
    let (mut uid, mut pid, mut sender, mut rcpts) = (0, 0, None, Vec::new());
    let num = |s: &[u8]| -> u64 {
        let d: Vec<u8> = s
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        String::from_utf8_lossy(&d).parse().unwrap_or(0)
    };
    for r in super::records(data) {
        match r.first() {
            Some(b'u') => uid = num(&r[1..]),
            Some(b'p') => pid = num(&r[1..]),
            Some(b'F') => sender = Some(r[1..].to_vec()),
            Some(b'T') => rcpts.push(r[1..].to_vec()),
            _ => return Err(BadTodo::UnknownRecord),
        }
    }
    let sender = sender.ok_or(BadTodo::NoSender)?;
    Ok((uid, pid, sender, rcpts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rules() {
        let ok = read_envelope(&b"Fa@b\0Tc@d\0Te@f\0\0"[..]).unwrap();
        assert_eq!(ok.sender, b"a@b");
        assert_eq!(ok.recipients, vec![b"c@d".to_vec(), b"e@f".to_vec()]);
        assert_eq!(read_envelope(&b"F\0\0"[..]).unwrap().sender, b"");
        let todo = parse_todo(b"u0\0p1\0Fa@b\0Tc@d\0Te@f\0").unwrap();
        assert_eq!(
            todo,
            (
                0,
                1,
                b"a@b".to_vec(),
                vec![b"c@d".to_vec(), b"e@f".to_vec()]
            )
        );
        assert_eq!(parse_todo(b"u0\0p1\0F\0").unwrap().2, b"");
        assert_eq!(
            parse_todo(b"u0\0Fa@b\0Tc@d\0Xe@f\0"),
            Err(BadTodo::UnknownRecord)
        );
        assert_eq!(
            parse_todo(b"u0\0Fa@b\0\0Tc@d\0"),
            Err(BadTodo::UnknownRecord)
        );
        assert_eq!(parse_todo(b"u0\0p1\0Tc@d\0"), Err(BadTodo::NoSender));
        assert_eq!(envelope(b"a@b", &[b"c@d", b"e@f"]), b"Fa@b\0Tc@d\0Te@f\0\0");
        assert_eq!(envelope::<&[u8]>(b"", &[]), b"F\0\0");
        assert_eq!(read_envelope(&b"Fa@b\0Tc@d\0"[..]), Err(54));
        assert_eq!(read_envelope(&b"Fa@b\0Tc@d"[..]), Err(54));
        assert_eq!(read_envelope(&b""[..]), Err(54));
        assert_eq!(read_envelope(&b"Xa\0\0"[..]), Err(91));
        assert_eq!(read_envelope(&b"Fa\0Xb\0\0"[..]), Err(91));
        let mut long = b"F".to_vec();
        long.extend(vec![b'a'; 1002]);
        long.extend_from_slice(b"\0\0");
        assert!(read_envelope(&long[..]).is_ok());
        let mut long = b"Fa\0T".to_vec();
        long.extend(vec![b'a'; 1003]);
        long.extend_from_slice(b"\0\0");
        assert_eq!(read_envelope(&long[..]), Err(11));
        // Up to MAX_ENVELOPE bytes; beyond, qq out of memory (51).
        let rcpt = b"Tsomeone.with.a.long.name@example.com\0";
        let mut big = b"Fa\0".to_vec();
        while big.len() + rcpt.len() < MAX_ENVELOPE {
            big.extend_from_slice(rcpt);
        }
        big.push(0);
        assert!(read_envelope(&big[..]).is_ok());
        big.pop();
        big.extend_from_slice(rcpt);
        big.push(0);
        assert_eq!(read_envelope(&big[..]), Err(51));
    }

    #[test]
    fn received_wording() {
        assert_eq!(
            received_line(123, Invoker::Uid(89), 812090814),
            "Received: (qmail 123 invoked by uid 89); 26 Sep 1995 04:46:54 -0000\n"
        );
        assert!(received_line(1, Invoker::Bounce, 0).contains("invoked for bounce"));
        assert!(received_line(1, Invoker::Network, 0).contains("invoked from network"));
    }

    #[test]
    fn queues_and_undoes() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        for s in ["pid", "intd", "todo", "lock"] {
            std::fs::create_dir_all(d.path().join(s)).unwrap();
        }
        for i in 0..23 {
            std::fs::create_dir_all(d.path().join("mess").join(i.to_string())).unwrap();
        }
        let id = enqueue(
            &q,
            &b"Subject: x\n\nhi\n"[..],
            &b"Fa@b\0Tc@d\0\0"[..],
            7,
            42,
            0,
        )
        .unwrap();
        let m = std::fs::read(q.mess(id)).unwrap();
        assert!(m.starts_with(b"Received: (qmail 42 invoked by uid 7)"));
        assert!(m.ends_with(b"\n\nhi\n"));
        assert_eq!(std::fs::read(q.todo(id)).unwrap(), b"u7\0p42\0Fa@b\0Tc@d\0");
        let e = enqueue(&q, &b"x"[..], &b"Fa@b\0Tc@d\0"[..], 7, 43, 0);
        assert_eq!(e, Err(54));
        assert_eq!(std::fs::read_dir(d.path().join("pid")).unwrap().count(), 0);
        assert_eq!(q.list_split("mess").unwrap(), vec![id]);
        assert_eq!(q.list_flat("intd").unwrap(), vec![id]);

        // A failure after intd/N was made (no todo/ to link into) takes
        // intd/N away with mess/N.
        std::fs::rename(d.path().join("todo"), d.path().join("todo.off")).unwrap();
        let e = enqueue(&q, &b"x\n"[..], &b"Fa@b\0Tc@d\0\0"[..], 7, 44, 0);
        assert_eq!(e, Err(exit::TODO));
        assert_eq!(q.list_split("mess").unwrap(), vec![id]);
        assert_eq!(q.list_flat("intd").unwrap(), vec![id]);
        assert_eq!(std::fs::read_dir(d.path().join("pid")).unwrap().count(), 0);

        // Undo removes a name whose descriptor could not be had.
        let lone = d.path().join("intd").join("77");
        std::fs::write(&lone, b"x").unwrap();
        let mut made = Made {
            mess: None,
            intd: Some((lone.clone(), None)),
        };
        made.undo();
        assert!(!lone.exists());
    }

    #[test]
    fn leftover_intd_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("123");
        std::fs::write(&p, b"u0\0p1\0Fold\0").unwrap();
        let f = create_intd(&p).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }
}
