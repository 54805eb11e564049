//! vdelivermail: vpopmail's delivery agent, run from a domain's
//! `.qmail-default` as `| vdelivermail '' ARG` (vdelivermail(8)).
//!
//! The user comes from `$EXT`, the domain from `$HOST` (both lowercased).
//! Flow: loop check; user lookup (retried with the part before the first `-`);
//! a found user gets their own `.qmail` (if any) or their `Maildir/` under the
//! Maildir++ quota of their vpasswd entry; an unknown user gets ARG:
//! `bounce-no-mailbox`, `delete`, a catch-all directory, or a catch-all
//! address. Exit 0 delivered or discarded, 99 delivered-stop, 100 bounce,
//! 111 try again later; the printed text ends up in the report.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::dotqmail::{self, Line};
use super::message::Message;
use super::{errstr, program, Fail};
use crate::maildir::{self, quota, NameStyle, Quota};
use crate::paths::Roots;
use crate::vpop;

/// The text for an unknown user (COMPAT section A: the vpopmail 5.2-5.4 text).
pub const NO_MAILBOX: &str = "Sorry, no mailbox here by that name. vpopmail (#5.1.1)";
/// The default over-quota text (vpopmail's).
pub const OVER_QUOTA: &str = "user is over quota";
/// The quota warning threshold in percent.
pub const QUOTA_WARN_PERCENT: u64 = 90;

/// What vdelivermail reads from its environment (set by qmail-local).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `$EXT`: the user part.
    pub ext: Option<Vec<u8>>,
    /// `$HOST`: the domain.
    pub host: Option<Vec<u8>>,
    /// `$DTLINE`.
    pub dtline: Option<Vec<u8>>,
    /// `$RPLINE`.
    pub rpline: Option<Vec<u8>>,
    /// `$SENDER`.
    pub sender: Option<Vec<u8>>,
    /// Variables for the programs it starts (`|` lines, qmail-inject): the
    /// delivery's environment when it runs inside qmail-local; empty in its own
    /// process, whose children inherit that environment anyway.
    pub vars: Vec<(OsString, OsString)>,
}

impl Env {
    /// From the process environment.
    pub fn from_process() -> Env {
        Env::with_vars(Vec::new())
    }

    /// From `vars` (a delivery's variables, as qmail-local gives them to its
    /// programs) over the process environment; `vars` also go to the programs
    /// vdelivermail starts. How qmail-local runs vdelivermail in-process.
    pub fn with_vars(vars: Vec<(OsString, OsString)>) -> Env {
        let get = |k: &str| {
            match vars.iter().rev().find(|(n, _)| n == k) {
                Some((_, v)) => Some(v.clone()),
                None => std::env::var_os(k),
            }
            .map(|v| v.as_bytes().to_vec())
        };
        Env {
            ext: get("EXT"),
            host: get("HOST"),
            dtline: get("DTLINE"),
            rpline: get("RPLINE"),
            sender: get("SENDER"),
            vars,
        }
    }
}

/// Runs vdelivermail with `args` (without the program name).
pub fn run(roots: &Roots, args: &[OsString], env: &Env, msg: &mut Message) -> Result<(), Fail> {
    if args.len() != 2 {
        return Err(Fail::temp(
            "vdelivermail: invalid syntax in .qmail-default file",
        ));
    }
    let arg = args[1].as_bytes();
    let (Some(ext), Some(host)) = (&env.ext, &env.host) else {
        return Err(Fail::perm(
            "vdelivermail: EXT and HOST are not set; run me from a .qmail file",
        ));
    };
    let user = String::from_utf8_lossy(ext).to_ascii_lowercase();
    let domain = String::from_utf8_lossy(host).to_ascii_lowercase();
    let d = Delivery::new(roots, env, &user, &domain);
    d.loop_check(&d.addr(), msg)?;

    let lookup = |u: &str| {
        vpop::find_user(roots, u, &domain).map_err(|e| {
            Fail::temp(format!(
                "vdelivermail: unable to read the user database: {}. (#4.3.0)",
                errstr(&e)
            ))
        })
    };
    let mut found = lookup(&user)?.map(|f| (f, Vec::new()));
    if found.is_none() {
        // qmail-ext: joe-lists@ is joe with extension "lists".
        if let Some((base, rest)) = user.split_once('-') {
            found = lookup(base)?.map(|f| (f, rest.as_bytes().to_vec()));
        }
    }
    match found {
        Some(((dom, entry), ext)) => d.to_user(&dom, &entry, &ext, msg),
        None => d.unknown(arg, msg),
    }
}

/// Started by root (by hand: qmail-lspawn starts it with the owner's uid),
/// vdelivermail becomes the owner of `$HOST`'s domain for good, as a root-run
/// vchkpw does ([`vpop::Domain::root_becomes_owner`]): the domain's tree,
/// its links and its users' `|program` lines are the owner's, and root
/// must not follow or run them. An unknown domain changes nothing here
/// ([`run`] answers for it).
pub fn become_owner(roots: &Roots, env: &Env) -> Result<(), Fail> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let Some(host) = &env.host else {
        return Ok(());
    };
    let domain = String::from_utf8_lossy(host);
    let d = vpop::find_domain(roots, &domain).map_err(|e| {
        Fail::temp(format!(
            "vdelivermail: unable to read the user database: {}. (#4.3.0)",
            errstr(&e)
        ))
    })?;
    match d {
        Some(d) if d.root_becomes_owner() => crate::sys::set_ids(d.uid, d.gid).map_err(|e| {
            Fail::temp(format!(
                "vdelivermail: unable to become the owner of {} (uid {}): {}. (#4.3.0)",
                d.name,
                d.uid,
                errstr(&e)
            ))
        }),
        _ => Ok(()),
    }
}

struct Delivery<'a> {
    roots: &'a Roots,
    user: String,
    domain: String,
    rpline: Vec<u8>,
    dtline: Option<Vec<u8>>,
    vars: Vec<(OsString, OsString)>,
}

impl<'a> Delivery<'a> {
    fn new(roots: &'a Roots, env: &Env, user: &str, domain: &str) -> Delivery<'a> {
        let rpline = match &env.rpline {
            Some(r) => r.clone(),
            None => {
                let mut r = b"Return-Path: <".to_vec();
                r.extend(crate::smtp::addr::header_safe(
                    env.sender.clone().unwrap_or_default(),
                ));
                r.extend_from_slice(b">\n");
                r
            }
        };
        Delivery {
            roots,
            user: user.to_string(),
            domain: domain.to_string(),
            rpline,
            dtline: env.dtline.clone(),
            vars: env.vars.clone(),
        }
    }

    fn addr(&self) -> String {
        format!("{}@{}", self.user, self.domain)
    }

    /// `Delivered-To: ADDR` in DTLINE or in the header: a loop.
    fn loop_check(&self, addr: &str, msg: &mut Message) -> Result<(), Fail> {
        let want = format!("Delivered-To: {addr}");
        let is = |l: &[u8]| {
            let l = l.strip_suffix(b"\n").unwrap_or(l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            l.eq_ignore_ascii_case(want.as_bytes())
        };
        let looping = self.dtline.as_deref().is_some_and(is)
            || msg.any_header_line(true, is).map_err(|e| {
                Fail::temp(format!("Unable to read message: {}. (#4.3.0)", errstr(&e)))
            })?;
        if looping {
            return Err(Fail::perm("mail is looping"));
        }
        Ok(())
    }

    /// The header lines added to a Maildir delivery for mailbox `to`.
    fn prefix(&self, to: &str) -> Vec<u8> {
        let mut p = self.rpline.clone();
        p.extend_from_slice(format!("Delivered-To: {to}\n").as_bytes());
        p
    }

    fn to_user(
        &self,
        dom: &vpop::Domain,
        entry: &vpop::Entry,
        ext: &[u8],
        msg: &mut Message,
    ) -> Result<(), Fail> {
        if entry.flags & vpop::flags::BOUNCE_MAIL != 0 {
            return Err(Fail::perm(format!(
                "vdelivermail: account is locked email bounced {}",
                self.addr()
            )));
        }
        // Delivered-To names the mailbox, as vpopmail's maildir_to_email
        // does: the user at the real domain, whatever extension or alias
        // domain the mail came by. The loop check stays on the address the
        // mail came to (joe's own mail resent to joe-todo is no loop).
        let mailbox = format!("{}@{}", entry.name, dom.name);
        let dir = entry.dir_path();
        // A vpasswd line without a directory (or with a relative one, hand-
        // written or from an older tool): a relative path would deliver into
        // whatever directory this runs in. The mail waits for the admin.
        if !dir.is_absolute() {
            return Err(Fail::temp(format!(
                "vdelivermail: {} has no absolute directory in vpasswd. (#4.3.0)",
                self.addr()
            )));
        }
        let md = dir.join("Maildir");
        if !md.join("new").is_dir() {
            // With vadduser's mode (0750), whatever the umask.
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            let mode = vpop::admin::DIR_MODE;
            let set = |p: &std::path::Path| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            };
            let had_dir = dir.is_dir();
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&dir)
                .and_then(|()| if had_dir { Ok(()) } else { set(&dir) })
                .and_then(|()| maildir::create(&md, mode))
                .and_then(|()| {
                    ["", "new", "cur", "tmp"]
                        .iter()
                        .try_for_each(|s| set(&md.join(s)))
                })
                .map_err(|_| Fail::perm("Auto creation of maildir failed. (#5.9.8)"))?;
        }
        let dq = if ext.is_empty() {
            dotqmail::search(&dir, b"", b"")?
        } else {
            match dotqmail::search(&dir, b"-", ext)? {
                Some(f) => Some(f),
                None => dotqmail::search(&dir, b"", b"")?,
            }
        };
        // An empty quota field leaves the quota to line 1 of maildirsize,
        // as vpopmail's deliver_mail does.
        let q = (!entry.quota.trim().is_empty()).then(|| Quota::from_vpasswd(&entry.quota));
        if let Some(f) = dq.filter(|f| !f.contents.is_empty()) {
            return self.dot_qmail(&dir, &f.contents, &mailbox, dom, Some((&md, q)), msg);
        }
        self.to_maildir(&md, q, &mailbox, dom, msg)
    }

    /// The lines of a user's (or catch-all's) .qmail file; `to` is the
    /// mailbox its Maildir lines deliver for. `own`: the user's Maildir and
    /// quota; a line naming that Maildir (`./Maildir/`, or its full path) or
    /// one of its folders (`./Maildir/.Spam/`) delivers under the user's
    /// quota, as the direct delivery does, so a copy kept by a `.qmail` is
    /// not a way around the quota. A folder of any other Maildir counts in
    /// that Maildir's maildirsize.
    fn dot_qmail(
        &self,
        dir: &Path,
        contents: &[u8],
        to: &str,
        dom: &vpop::Domain,
        own: Option<(&Path, Option<Quota>)>,
        msg: &mut Message,
    ) -> Result<(), Fail> {
        let lines = dotqmail::parse(contents).unwrap_or_default();
        for line in lines {
            match line {
                Line::Blank | Line::Comment | Line::Plus | Line::PlusList => {}
                Line::Maildir(p) => {
                    let p = dir.join(OsStr::from_bytes(&p));
                    // A folder (`./Maildir/.Spam/`, or a link to one) counts
                    // in its Maildir's quota; the user's own Maildir has
                    // the user's quota.
                    let root = quota_root(&p);
                    let q = own
                        .filter(|(md, _)| same_dir(&root, md))
                        .and_then(|(_, q)| q);
                    self.to_maildir_under(&p, &root, q, to, dom, msg)?;
                }
                Line::Mbox(p) => {
                    return Err(Fail::temp(format!(
                        "can't handle mbox delivery for {}",
                        String::from_utf8_lossy(&p)
                    )))
                }
                Line::Program(cmd) => {
                    let stdin = msg
                        .child_stdin()
                        .map_err(|_| Fail::temp("Unable to rewind message. (#4.3.0)"))?;
                    if program::run(&cmd, dir, &self.vars, stdin)? == program::Outcome::Stop {
                        return Err(Fail::silent(99));
                    }
                }
                Line::Forward(addr) => self.forward(&addr, msg)?,
            }
        }
        Ok(())
    }

    /// Delivers into a Maildir. `quota`: the account's own quota for its own
    /// Maildir; `None` for other Maildirs (line 1 of their maildirsize).
    fn to_maildir(
        &self,
        md: &Path,
        q: Option<Quota>,
        to: &str,
        dom: &vpop::Domain,
        msg: &mut Message,
    ) -> Result<(), Fail> {
        self.to_maildir_under(md, md, q, to, dom, msg)
    }

    /// [`Self::to_maildir`] into `md`, a Maildir or one of the Maildir++
    /// folders of `root`, whose maildirsize and quota count it.
    fn to_maildir_under(
        &self,
        md: &Path,
        root: &Path,
        q: Option<Quota>,
        to: &str,
        dom: &vpop::Domain,
        msg: &mut Message,
    ) -> Result<(), Fail> {
        let prefix = self.prefix(to);
        // The message as handed over (vpopmail's fstat of descriptor 0),
        // without the two lines added in front.
        let size = msg.size().unwrap_or(0);
        // Only where a quota can apply: NOQUOTA mailboxes need no turns.
        let quota_applies = match &q {
            Some(q) => !q.is_unlimited(),
            None => root.join(quota::FILE).exists(),
        };
        let _turn = quota_applies.then(|| mailbox_turn(root));
        let check = quota::check(root, q.as_ref(), size).map_err(|e| {
            Fail::temp(format!(
                "Unable to read the quota of the mailbox: {}. (#4.3.0)",
                errstr(&e)
            ))
        })?;
        if check.over {
            self.quota_warning(root, dom, &check.quota, &check.usage);
            return Err(self.over_quota(dom));
        }
        let r = msg
            .rewind()
            .map_err(|_| Fail::temp("Unable to rewind message. (#4.3.0)"))?;
        let done = maildir::deliver(md, &prefix, r, NameStyle::WithSize).map_err(|e| {
            if e.raw_os_error() == Some(libc::EDQUOT) {
                self.over_quota(dom)
            } else {
                // vpopmail's text, with the reason.
                Fail::temp(format!("system error: {}. (#4.3.0)", errstr(&e)))
            }
        })?;
        // Delivered: a failure to count it now only delays the count until
        // the next rebuild.
        if let Err(e) = quota::append(root, done.size as i64, 1) {
            crate::elog!(
                "vdelivermail: warning: unable to update maildirsize: {}",
                errstr(&e)
            );
        }
        let after = quota::Usage {
            bytes: check.usage.bytes + done.size as i64,
            count: check.usage.count + 1,
        };
        self.quota_warning(root, dom, &check.quota, &after);
        Ok(())
    }

    fn over_quota(&self, dom: &vpop::Domain) -> Fail {
        match self.domain_msg(dom, ".over-quota.msg") {
            Some(t) => Fail::perm(t),
            None => Fail::perm(OVER_QUOTA),
        }
    }

    /// `.quotawarn.msg` (domain, then global) delivered into the Maildir at
    /// most once a day when the mailbox is 90% full or more.
    fn quota_warning(&self, md: &Path, dom: &vpop::Domain, q: &Quota, u: &quota::Usage) {
        if q.is_unlimited() || q.percent(u) < QUOTA_WARN_PERCENT {
            return;
        }
        let Some(text) = self.domain_msg(dom, ".quotawarn.msg") else {
            return;
        };
        let stamp = md.join("quotawarn");
        let now = crate::timefmt::now();
        if let Ok(m) = std::fs::metadata(&stamp) {
            use std::os::unix::fs::MetadataExt;
            if now - m.mtime() < 86400 {
                return;
            }
        }
        // vpopmail adds To: and Date: to the file, which normally has its
        // own From: and Subject: headers; a file of body text alone gets
        // ours too, and the blank line.
        let date = crate::timefmt::rfc5322(now);
        let mut head = String::new();
        let first = text.lines().next().unwrap_or("");
        let starts_with_headers = first.split_once(':').is_some_and(|(n, _)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let header_block = if starts_with_headers {
            text.split("\n\n").next().unwrap_or("")
        } else {
            ""
        };
        let has_header = |name: &str| {
            header_block.lines().any(|l| {
                l.get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
            })
        };
        if !has_header("from:") {
            head.push_str(&format!("From: MAILER-DAEMON@{}\n", self.domain));
        }
        if !has_header("to:") {
            head.push_str(&format!("To: {}\n", self.addr()));
        }
        if !has_header("subject:") {
            head.push_str("Subject: mailbox quota warning\n");
        }
        if !has_header("date:") {
            head.push_str(&format!("Date: {date}\n"));
        }
        if !starts_with_headers {
            head.push('\n');
        } else if !text.contains("\n\n") {
            // Headers only: the message ends with its (empty) body.
            head.clear();
        }
        let text = format!("{text}\n");
        let mut body = text.as_bytes();
        if let Ok(d) = maildir::deliver(md, head.as_bytes(), &mut body, NameStyle::WithSize) {
            let _ = quota::append(md, d.size as i64, 1);
            let _ = std::fs::write(&stamp, b"");
        }
    }

    /// A file of the domain dir, else of ~vpopmail/domains.
    fn domain_msg(&self, dom: &vpop::Domain, name: &str) -> Option<String> {
        [dom.dir.join(name), self.roots.domains().join(name)]
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
    }

    fn unknown(&self, arg: &[u8], msg: &mut Message) -> Result<(), Fail> {
        let dom = vpop::find_domain(self.roots, &self.domain)
            .ok()
            .flatten()
            .unwrap_or_else(|| vpop::Domain {
                name: self.domain.clone(),
                dir: self.roots.domains().join(&self.domain),
                uid: 0,
                gid: 0,
            });
        match arg {
            b"delete" => Ok(()),
            b"bounce-no-mailbox" => Err(Fail::perm(
                self.domain_msg(&dom, ".no-user.msg")
                    .unwrap_or_else(|| NO_MAILBOX.to_string()),
            )),
            a if a.first() == Some(&b'/') => {
                let mut dir = PathBuf::from(OsStr::from_bytes(a));
                if dir.join("new").is_dir() && dir.join("tmp").is_dir() {
                    return self.to_maildir(&dir, None, &self.addr(), &dom, msg);
                }
                if let Some(f) =
                    dotqmail::search(&dir, b"", b"")?.filter(|f| !f.contents.is_empty())
                {
                    return self.dot_qmail(&dir, &f.contents, &self.addr(), &dom, None, msg);
                }
                dir.push("Maildir");
                self.to_maildir(&dir, None, &self.addr(), &dom, msg)
            }
            a => {
                // A leading `&` (a .qmail forward written as an argument) goes.
                let a = a.strip_prefix(b"&").unwrap_or(a);
                let mut addr = a.to_vec();
                if !addr.contains(&b'@') {
                    addr.push(b'@');
                    addr.extend_from_slice(self.domain.as_bytes());
                }
                self.forward(&addr, msg)
            }
        }
    }

    /// Forwards through `qmail-inject -- ADDR` with RPLINE (the envelope
    /// sender for qmail-inject) and our Delivered-To line in front.
    fn forward(&self, addr: &[u8], msg: &mut Message) -> Result<(), Fail> {
        let head = forward_header(
            &self.rpline,
            self.dtline.as_deref(),
            &self.user,
            &self.domain,
        );
        let inject = self.roots.qmail_bin("qmail-inject");
        let mut child = Command::new(&inject)
            .arg("--")
            .arg(OsStr::from_bytes(addr))
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Fail::temp(format!(
                    "Unable to run {}: {}. (#4.3.0)",
                    inject.display(),
                    errstr(&e)
                ))
            })?;
        let mut ok = true;
        if let Some(mut w) = child.stdin.take() {
            use std::io::Write;
            ok &= w.write_all(&head).is_ok();
            match msg.rewind() {
                Ok(r) => ok &= std::io::copy(r, &mut w).is_ok(),
                Err(_) => ok = false,
            }
        }
        let status = child
            .wait()
            .map_err(|_| Fail::temp("Unable to wait for qmail-inject. (#4.3.0)"))?;
        match status.code() {
            Some(0) if ok => Ok(()),
            Some(0) => Err(Fail::temp("Unable to write to qmail-inject. (#4.3.0)")),
            Some(c) => Err(Fail::silent(c.clamp(0, 255) as u8)),
            None => Err(Fail::temp("qmail-inject crashed. (#4.3.0)")),
        }
    }
}

/// The lines put in front of a forwarded message: RPLINE (qmail-inject takes
/// the envelope sender from it) and `Delivered-To:` with the address from
/// DTLINE minus qmail-local's `DOMAIN-` prefix (else `user@domain`).
pub fn forward_header(rpline: &[u8], dtline: Option<&[u8]>, user: &str, domain: &str) -> Vec<u8> {
    let mut head = rpline.to_vec();
    if !head.is_empty() && !head.ends_with(b"\n") {
        head.push(b'\n');
    }
    let pre = format!("{domain}-");
    let addr = dtline
        .and_then(|d| d.strip_prefix(b"Delivered-To: "))
        .map(|d| {
            if d.len() >= pre.len() && d[..pre.len()].eq_ignore_ascii_case(pre.as_bytes()) {
                d[pre.len()..].to_vec()
            } else {
                d.to_vec()
            }
        })
        .unwrap_or_else(|| format!("{user}@{domain}").into_bytes());
    head.extend_from_slice(b"Delivered-To: ");
    head.extend_from_slice(&addr);
    if !head.ends_with(b"\n") {
        head.push(b'\n');
    }
    head
}

/// Deliveries into one Maildir with a quota take turns from the quota check to the count
/// in maildirsize, so that parallel ones cannot all pass a check only one of
/// them fits (vpopmail leaves that race open). The turn is a flock on `new/`
/// (qmail-pop3d locks the Maildir itself, not `new/`), held until the
/// returned file is dropped; after 30 s of waiting the delivery goes on
/// without it, as an mbox delivery does without locks.
/// Whether `a` and `b` name the same directory (whatever the spelling:
/// `./Maildir/`, a full path, a symbolic link).
fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The Maildir whose maildirsize counts deliveries into Maildir `p`: the
/// Maildir holding it when `p` (links resolved) is one of its Maildir++
/// folders (`.NAME` with `new` and `cur` beside it), else `p` itself.
fn quota_root(p: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(p) {
        if let (Some(name), Some(parent)) = (real.file_name(), real.parent()) {
            if name.as_bytes().first() == Some(&b'.')
                && parent.join("new").is_dir()
                && parent.join("cur").is_dir()
            {
                return parent.to_path_buf();
            }
        }
    }
    p.to_path_buf()
}

fn mailbox_turn(md: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(md.join("new"))
        .ok()?;
    let until = std::time::Instant::now() + super::mbox::LOCK_WAIT;
    loop {
        match crate::sys::try_flock_exclusive(&f) {
            Ok(true) => return Some(f),
            Ok(false) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_header_strips_the_domain_prefix() {
        assert_eq!(
            forward_header(
                b"Return-Path: <a@b>\n",
                Some(b"Delivered-To: example.com-joe@example.com\n"),
                "joe",
                "example.com"
            ),
            b"Return-Path: <a@b>\nDelivered-To: joe@example.com\n"
        );
        assert_eq!(
            forward_header(b"Return-Path: <>\n", None, "joe", "example.com"),
            b"Return-Path: <>\nDelivered-To: joe@example.com\n"
        );
        assert_eq!(
            forward_header(
                b"",
                Some(b"Delivered-To: other@x.org"),
                "joe",
                "example.com"
            ),
            b"Delivered-To: other@x.org\n"
        );
    }
}
