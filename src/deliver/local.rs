//! qmail-local: delivers one message to one local address by the `.qmail`
//! rules (qmail-local(8), dot-qmail(5)).
//!
//! `qmail-local [-nN] [--] USER HOMEDIR LOCAL DASH EXT DOMAIN SENDER ALIASEMPTY`
//! with the message on fd 0. The order of work is qmail's: switch to HOMEDIR
//! and check its mode; refuse a message that already has our Delivered-To
//! line; find the .qmail file; then deliver line by line (Maildir, mbox,
//! program) and send all forwards in one qmail-queue call at the end. On
//! success `did F+W+P` (files, forwards, programs) and `qp N` are printed.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::dotqmail::{self, Line};
use super::message::Message;
use super::{errstr, mbox, program, qq, Fail};
use crate::maildir::{self, NameStyle};
use crate::paths::Roots;

/// How long one Maildir delivery may take (qmail's alarm).
pub const MAILDIR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86400);

/// The usage text.
pub const USAGE: &str =
    "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty";

/// qmail-local's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// False with `-n`: print what would be done instead.
    pub doit: bool,
    /// The account name.
    pub user: Vec<u8>,
    /// Its home directory (absolute).
    pub home: Vec<u8>,
    /// The local part of the recipient.
    pub local: Vec<u8>,
    /// `-` or empty.
    pub dash: Vec<u8>,
    /// The extension.
    pub ext: Vec<u8>,
    /// The recipient's domain.
    pub host: Vec<u8>,
    /// The envelope sender.
    pub sender: Vec<u8>,
    /// The default delivery instructions (used when there is no .qmail).
    pub aliasempty: Vec<u8>,
}

impl Args {
    /// Parses argv (without the program name).
    pub fn parse(argv: &[OsString]) -> Result<Args, Fail> {
        let mut doit = true;
        let mut i = 0;
        while i < argv.len() {
            let a = argv[i].as_bytes();
            if a == b"--" {
                i += 1;
                break;
            }
            if a.len() < 2 || a[0] != b'-' {
                break;
            }
            for &c in &a[1..] {
                match c {
                    b'n' => doit = false,
                    b'N' => doit = true,
                    _ => return Err(Fail::perm(USAGE)),
                }
            }
            i += 1;
        }
        let rest: Vec<Vec<u8>> = argv[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
        let [user, home, local, dash, ext, host, sender, aliasempty]: [Vec<u8>; 8] =
            rest.try_into().map_err(|_| Fail::perm(USAGE))?;
        if home.first() != Some(&b'/') {
            return Err(Fail::perm(USAGE));
        }
        Ok(Args {
            doit,
            user,
            home,
            local,
            dash,
            ext,
            host,
            sender,
            aliasempty,
        })
    }
}

/// The header lines and environment of one delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    /// `Delivered-To: LOCAL@HOST\n`
    pub dtline: Vec<u8>,
    /// `Return-Path: <SENDER>\n`
    pub rpline: Vec<u8>,
    /// `From SENDER DATE\n`
    pub ufline: Vec<u8>,
}

impl Lines {
    /// Builds the three lines for `local@host` from `sender` at time `now`.
    pub fn new(local: &[u8], host: &[u8], sender: &[u8], now: i64) -> Lines {
        use crate::smtp::addr::header_safe;
        let mut dtline = b"Delivered-To: ".to_vec();
        dtline.extend(header_safe(local.to_vec()));
        dtline.push(b'@');
        dtline.extend(header_safe(host.to_vec()));
        dtline.push(b'\n');
        let mut rpline = b"Return-Path: <".to_vec();
        rpline.extend(header_safe(quote2(sender)));
        rpline.extend_from_slice(b">\n");
        let mut ufline = b"From ".to_vec();
        if sender.is_empty() {
            ufline.extend_from_slice(b"MAILER-DAEMON");
        } else {
            ufline.extend(sender.iter().map(|&b| match b {
                b' ' | b'\t' | b'\n' => b'-',
                c => c,
            }));
        }
        ufline.push(b' ');
        ufline.extend_from_slice(crate::timefmt::ctime(now).as_bytes());
        ufline.push(b'\n');
        Lines {
            dtline,
            rpline,
            ufline,
        }
    }
}

use crate::smtp::addr::quote2;

/// The environment qmail-local gives programs (without DEFAULT/NEWSENDER).
pub fn environment(a: &Args, l: &Lines) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut put = |k: &str, v: &[u8]| env.push((OsString::from(k), OsString::from_vec(v.to_vec())));
    put("HOST", &a.host);
    put("HOME", &a.home);
    put("USER", &a.user);
    put("LOCAL", &a.local);
    let mut recip = a.local.clone();
    recip.push(b'@');
    recip.extend_from_slice(&a.host);
    put("RECIPIENT", &recip);
    put("DTLINE", &l.dtline);
    put("SENDER", &a.sender);
    put("RPLINE", &l.rpline);
    put("UFLINE", &l.ufline);
    let mut x: &[u8] = &a.ext;
    put("EXT", x);
    for name in ["EXT2", "EXT3", "EXT4"] {
        x = match x.iter().position(|&b| b == b'-') {
            Some(i) => &x[i + 1..],
            None => &x[x.len()..],
        };
        put(name, x);
    }
    let mut h: &[u8] = &a.host;
    for name in ["HOST2", "HOST3", "HOST4"] {
        h = match h.iter().rposition(|&b| b == b'.') {
            Some(i) => &h[..i],
            None => h,
        };
        put(name, h);
    }
    env
}

/// What was done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Maildir and mbox lines.
    pub files: u32,
    /// Forward addresses.
    pub forwards: u32,
    /// Program lines.
    pub programs: u32,
    /// The qmail-queue pid of the forward, if any.
    pub qp: Option<u32>,
}

/// Delivers `msg` by the rules in `args`. Writes the report lines (`did`,
/// `qp`, and with `-n` the would-be deliveries) to `out`.
pub fn run(
    roots: &Roots,
    args: &Args,
    msg: &mut Message,
    out: &mut dyn Write,
) -> Result<Counts, Fail> {
    let home = Path::new(OsStr::from_bytes(&args.home));
    crate::fsutil::chdir(home).map_err(|e| {
        Fail::temp(format!(
            "Unable to switch to {}: {}. (#4.3.0)",
            home.display(),
            errstr(&e)
        ))
    })?;
    check_home(args.doit, out)?;
    let now = crate::timefmt::now();
    let lines = Lines::new(&args.local, &args.host, &args.sender, now);
    if args.doit {
        loop_check(msg, &lines.dtline)?;
    }
    let mut env = environment(args, &lines);
    let dot = Path::new(".");
    let found = dotqmail::search(dot, &args.dash, &args.ext)?;
    if found.is_none() && !args.dash.is_empty() {
        return Err(Fail::perm("Sorry, no mailbox here by that name. (#5.1.1)"));
    }
    if let Some(d) = found.as_ref().and_then(|f| f.default.as_ref()) {
        env.push((OsString::from("DEFAULT"), OsString::from_vec(d.clone())));
    }
    let newsender = new_sender(args)?;
    env.push((
        OsString::from("NEWSENDER"),
        OsString::from_vec(newsender.clone()),
    ));

    let (contents, mut forward_only) = match found {
        Some(f) if !f.contents.is_empty() => (f.contents, f.forward_only),
        _ => (args.aliasempty.clone(), false),
    };
    let mut prefix = lines.rpline.clone();
    prefix.extend_from_slice(&lines.dtline);

    let mut counts = Counts::default();
    let mut forwards: Vec<Vec<u8>> = Vec::new();
    for line in dotqmail::parse(&contents)? {
        match line {
            Line::Blank | Line::Comment | Line::Plus => {}
            Line::PlusList => forward_only = true,
            Line::Maildir(path) => {
                counts.files += 1;
                if forward_only {
                    return Err(Fail::temp(
                        "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)",
                    ));
                }
                if args.doit {
                    deliver_maildir(Path::new(OsStr::from_bytes(&path)), &prefix, msg)?;
                } else {
                    say(out, "maildir ", &path)?;
                }
            }
            Line::Mbox(path) => {
                counts.files += 1;
                if forward_only {
                    return Err(Fail::temp(
                        "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)",
                    ));
                }
                if args.doit {
                    let mut p = lines.ufline.clone();
                    p.extend_from_slice(&prefix);
                    let r = msg.rewind().map_err(|_| rewind_fail())?;
                    mbox::deliver(Path::new(OsStr::from_bytes(&path)), &p, r)?;
                } else {
                    say(out, "mbox ", &path)?;
                }
            }
            Line::Program(cmd) => {
                counts.programs += 1;
                if forward_only {
                    return Err(Fail::temp(
                        "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)",
                    ));
                }
                if args.doit {
                    let _ = out.flush();
                    let stdin = msg.child_stdin().map_err(|_| rewind_fail())?;
                    if program::run(&cmd, dot, &env, stdin)? == program::Outcome::Stop {
                        break;
                    }
                } else {
                    say(out, "program ", &cmd)?;
                }
            }
            Line::Forward(addr) => {
                counts.forwards += 1;
                if args.doit {
                    forwards.push(addr);
                } else {
                    say(out, "forward ", &addr)?;
                }
            }
        }
    }
    if !forwards.is_empty() {
        let r = msg.rewind().map_err(|_| rewind_fail())?;
        let qp = qq::submit(
            &qq::program(roots),
            &roots.qmail,
            &[],
            &lines.dtline,
            r,
            &newsender,
            &forwards,
        )
        .map_err(|e| e.to_fail("Unable to forward message: ", "."))?;
        counts.qp = Some(qp);
    }
    let mut report = format!(
        "did {}+{}+{}\n",
        counts.files, counts.forwards, counts.programs
    );
    if let Some(qp) = counts.qp {
        report.push_str(&format!("qp {qp}\n"));
    }
    let _ = out.write_all(report.as_bytes());
    let _ = out.flush();
    Ok(counts)
}

fn say(out: &mut dyn Write, kind: &str, what: &[u8]) -> Result<(), Fail> {
    let mut l = kind.as_bytes().to_vec();
    l.extend_from_slice(what);
    l.push(b'\n');
    let _ = out.write_all(&l);
    Ok(())
}

fn rewind_fail() -> Fail {
    Fail::temp("Unable to rewind message. (#4.3.0)")
}

fn check_home(doit: bool, out: &mut dyn Write) -> Result<(), Fail> {
    let m = std::fs::metadata(".").map_err(|e| {
        Fail::temp(format!(
            "Unable to stat home directory: {}. (#4.3.0)",
            errstr(&e)
        ))
    })?;
    if m.mode() & 0o002 != 0 {
        return Err(Fail::temp("Uh-oh: home directory is writable. (#4.7.0)"));
    }
    if m.mode() & 0o1000 != 0 {
        if doit {
            return Err(Fail::temp(
                "Home directory is sticky: user is editing his .qmail file. (#4.2.1)",
            ));
        }
        let _ = out.write_all(b"Warning: home directory is sticky.\n");
    }
    Ok(())
}

/// Refuses a message whose header already holds `dtline`, byte for byte. As
/// in qmail-local, only a line of just `\n` ends the header here.
pub fn loop_check(msg: &mut Message, dtline: &[u8]) -> Result<(), Fail> {
    let looping = msg
        .any_header_line(false, |l| l == dtline)
        .map_err(|e| Fail::temp(format!("Unable to read message: {}. (#4.3.0)", errstr(&e))))?;
    if looping {
        return Err(Fail::perm(
            "This message is looping: it already has my Delivered-To line. (#5.4.6)",
        ));
    }
    Ok(())
}

fn new_sender(a: &Args) -> Result<Vec<u8>, Fail> {
    let dot = Path::new(".");
    if a.sender.is_empty()
        || a.sender == b"#@[]"
        || !dotqmail::exists(dot, &a.dash, &a.ext, "-owner")?
    {
        return Ok(a.sender.clone());
    }
    let mut s = a.local.clone();
    if dotqmail::exists(dot, &a.dash, &a.ext, "-owner-default")? {
        s.extend_from_slice(b"-owner-@");
        s.extend_from_slice(&a.host);
        s.extend_from_slice(b"-@[]");
    } else {
        s.extend_from_slice(b"-owner@");
        s.extend_from_slice(&a.host);
    }
    Ok(s)
}

/// A reader that remembers whether reading (not writing) failed.
struct Tracked<'a> {
    inner: &'a mut dyn Read,
    failed: bool,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        self.failed |= r.is_err();
        r
    }
}

/// Delivers into a Maildir with qmail-local's texts.
pub fn deliver_maildir(
    dir: &Path,
    prefix: &[u8],
    msg: &mut Message,
) -> Result<maildir::Delivered, Fail> {
    // As qmail-local's chdir: a directory it cannot enter (`DIR/.` cannot
    // be looked up) is refused here, not at the first file.
    match std::fs::metadata(dir.join(".")) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Fail::temp("Unable to chdir to maildir. (#4.2.1)")),
        Err(e) if super::is_temp(&e) => {
            return Err(Fail::temp("Temporary error on maildir delivery. (#4.3.0)"))
        }
        Err(_) => return Err(Fail::temp("Unable to chdir to maildir. (#4.2.1)")),
    }
    let r = msg.rewind().map_err(|_| rewind_fail())?;
    let mut t = Tracked {
        inner: r,
        failed: false,
    };
    // qmail's 24-hour alarm: a delivery hanging on a dead file server ends
    // as a temporary failure (the message stays queued; the file in tmp/ was
    // never linked into new/).
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    // (Without a thread to spare, the delivery goes on without the alarm.)
    let _ = std::thread::Builder::new().spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            waiting.recv_timeout(MAILDIR_TIMEOUT)
        {
            let _ = writeln!(io::stderr(), "Timeout on maildir delivery. (#4.3.0)");
            std::process::exit(111);
        }
    });
    let result = maildir::deliver(dir, prefix, &mut t, NameStyle::Plain);
    drop(done);
    result.map_err(|_| {
        if t.failed {
            Fail::temp("Unable to read message. (#4.3.0)")
        } else {
            Fail::temp("Temporary error on maildir delivery. (#4.3.0)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn args() {
        let a = Args::parse(&os(&[
            "--",
            "u",
            "/h",
            "l",
            "-",
            "e",
            "d",
            "s",
            "./Maildir/",
        ]))
        .unwrap();
        assert!(a.doit);
        assert_eq!(a.aliasempty, b"./Maildir/");
        let a = Args::parse(&os(&["-n", "u", "/h", "l", "", "", "d", "", "x"])).unwrap();
        assert!(!a.doit);
        assert_eq!(
            Args::parse(&os(&["u", "h", "l", "", "", "d", "", "x"]))
                .unwrap_err()
                .code,
            100
        );
        assert_eq!(Args::parse(&os(&["u"])).unwrap_err().text, USAGE);
        assert!(Args::parse(&os(&["-x", "u", "/h", "l", "", "", "d", "", "x"])).is_err());
    }

    #[test]
    fn lines_and_quoting() {
        let l = Lines::new(b"joe", b"example.com", b"a b@x.org", 812090814);
        assert_eq!(l.dtline, b"Delivered-To: joe@example.com\n");
        assert_eq!(l.rpline, b"Return-Path: <\"a b\"@x.org>\n");
        assert_eq!(l.ufline, b"From a-b@x.org Tue Sep 26 04:46:54 1995\n");
        let l = Lines::new(b"a\nb", b"h", b"", 0);
        assert_eq!(l.dtline, b"Delivered-To: a_b@h\n");
        assert_eq!(l.rpline, b"Return-Path: <>\n");
        // A CR or LF an envelope carries never breaks the header lines.
        let odd = Lines::new(b"jo\re", b"h\nx", b"a\rb\nc@x.org", 0);
        assert_eq!(odd.rpline, b"Return-Path: <\"a_b_c\"@x.org>\n");
        assert_eq!(odd.dtline, b"Delivered-To: jo_e@h_x\n");
        assert!(l.ufline.starts_with(b"From MAILER-DAEMON "));
        assert_eq!(quote2(b"a.b@c"), b"a.b@c");
        assert_eq!(quote2(b".a@c"), b"\".a\"@c");
        assert_eq!(quote2(b"#@[]"), b"#@[]");
    }

    #[test]
    fn env_parts() {
        let a = Args::parse(&os(&[
            "u",
            "/h",
            "l-a-b-c",
            "-",
            "a-b-c",
            "mx.example.com",
            "s",
            "x",
        ]))
        .unwrap();
        let env = environment(&a, &Lines::new(&a.local, &a.host, &a.sender, 0));
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .unwrap()
        };
        assert_eq!(get("EXT2"), "b-c");
        assert_eq!(get("EXT3"), "c");
        assert_eq!(get("EXT4"), "");
        assert_eq!(get("HOST2"), "mx.example");
        assert_eq!(get("HOST3"), "mx");
        assert_eq!(get("HOST4"), "mx");
        assert_eq!(get("RECIPIENT"), "l-a-b-c@mx.example.com");
    }
}
