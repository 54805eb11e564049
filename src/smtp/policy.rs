//! The answers to the session's questions ([`Policy`]) on a real host: qmail's
//! control files, vpopmail's users and `.qmail` files, the open-smtp list, DNS
//! and the checkpassword program.
//!
//! Control files read once at start (qmail-smtpd(8) lists them):
//! `badmailfrom`, `rcpthosts`, `morercpthosts.cdb`, and `smtpauthdelay`
//! (seconds a failed AUTH is answered late; default 5). `locals`,
//! `virtualdomains` and `users/cdb` are read at the first recipient checked
//! (control/rcptcheck).

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

use super::addr;
use super::session::{Policy, Verdict};
use crate::cdb;
use crate::control::Control;
use crate::paths::{loggable, Roots};

/// Seconds a failed AUTH waits when `control/smtpauthdelay` is missing (the
/// SMTP AUTH patch's fixed 5 s).
pub const DEFAULT_AUTH_DELAY: u64 = 5;

/// The policy of one connection.
pub struct HostPolicy {
    roots: Roots,
    remote_ip: String,
    local_ip: Option<IpAddr>,
    badmailfrom: Vec<String>,
    rcpthosts: Option<HashSet<String>>,
    morercpthosts: Option<cdb::Reader>,
    checkpassword: Vec<OsString>,
    auth_delay: Duration,
    warned: bool,
    /// This host's addresses, read at the first `[IP]` literal.
    ipme: Option<Vec<IpAddr>>,
    /// qmail-send's rewriting (locals, virtualdomains), read at the first
    /// recipient checked; `None` inside when it cannot be read.
    rewrite: Option<Option<crate::queue::rewrite::Rewrite>>,
}

impl HostPolicy {
    /// Reads the control files. `Err` when one exists but cannot be read
    /// (qmail's `421 unable to read controls`).
    pub fn load(
        roots: &Roots,
        remote_ip: &str,
        local_ip: Option<IpAddr>,
        checkpassword: Vec<OsString>,
    ) -> std::io::Result<HostPolicy> {
        let c = Control::new(roots);
        let rcpthosts: Option<HashSet<String>> = c
            .list_opt("rcpthosts")?
            .map(|l| l.into_iter().map(|s| s.to_ascii_lowercase()).collect());
        if rcpthosts.is_none() && !roots.control("morercpthosts.cdb").exists() {
            crate::elog!(
                "qmail-smtpd: warning: no control/rcpthosts: only clients with relay rights may send mail"
            );
        }
        Ok(HostPolicy {
            roots: roots.clone(),
            remote_ip: remote_ip.to_string(),
            local_ip,
            badmailfrom: c.list("badmailfrom")?,
            rcpthosts,
            morercpthosts: cdb::Reader::open_opt(&roots.control("morercpthosts.cdb"))?,
            checkpassword,
            auth_delay: Duration::from_secs(c.u64("smtpauthdelay", DEFAULT_AUTH_DELAY)?),
            warned: false,
            ipme: None,
            rewrite: None,
        })
    }

    /// Whether `local` (lowercase) has a `.qmail` file in the domain
    /// directory, the way qmail-local looks: `.qmail-EXT`, then
    /// `.qmail-PREFIX-default` for every `-` from the right (dots in the
    /// address become colons). The plain `.qmail-default` is handled apart.
    fn has_dot_qmail(dir: &std::path::Path, local: &str) -> bool {
        let ext = local.replace('.', ":");
        // `default@` finds .qmail-default itself: the catch-all, decided
        // below like any other unknown user. (With dots made colons no name
        // leaves the directory; a `/` finds no file, as in qmail-local, and
        // the `-default` files are still looked for.)
        if ext.is_empty() || ext == "default" {
            return false;
        }
        if dir.join(format!(".qmail-{ext}")).exists() {
            return true;
        }
        let mut cut = ext.as_str();
        while let Some(i) = cut.rfind('-') {
            cut = &cut[..i];
            if dir.join(format!(".qmail-{cut}-default")).exists() {
                return true;
            }
        }
        false
    }

    /// Whether qmail routes address `a` of vpopmail domain `d` past vpopmail:
    /// a domain in `control/locals` (qmail-send looks there first), a
    /// `user@domain` line of `control/virtualdomains`, an assignment in
    /// `users/cdb` for the local name qmail-send makes of it (`PREFIX-user`)
    /// that is exact, or sends it to another directory than the domain's;
    /// or a domain line that is not vpopmail's (one with an extension, whose
    /// `.qmail-EXT-*` files qmail-local reads, made by hand).
    fn routed_past_vpopmail(&mut self, a: &[u8], d: &crate::vpop::Domain) -> std::io::Result<bool> {
        use crate::queue::rewrite::{Dest, Rewrite};
        let lower = a.to_ascii_lowercase();
        let domain = lower
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(&[][..], |at| &lower[at + 1..]);
        let by_hand = |e: Option<String>| e.is_some_and(|e| !e.is_empty());
        if by_hand(crate::vpop::find_domain_ext(
            &self.roots,
            &String::from_utf8_lossy(domain),
        )?) {
            return Ok(true);
        }
        let roots = &self.roots;
        let Some(rw) = self
            .rewrite
            .get_or_insert_with(|| Rewrite::load(roots).ok())
            .as_ref()
        else {
            return Ok(false);
        };
        if rw.vdoms.contains_key(&lower) || rw.locals.contains(domain) {
            return Ok(true);
        }
        let Dest::Local(to) = rw.rewrite(a) else {
            return Ok(false);
        };
        let local = &to[..to.iter().rposition(|&b| b == b'@').unwrap_or(to.len())];
        use std::os::unix::ffi::OsStrExt;
        Ok(
            crate::queue::spawn::lookup_users_cdb_exact(&self.roots, local)?
                .is_some_and(|(asg, exact)| exact || asg.home != d.dir.as_os_str().as_bytes()),
        )
    }

    fn vpop_recipient(&mut self, a: &[u8], local: &str, domain: &str) -> std::io::Result<Verdict> {
        let Some(d) = crate::vpop::find_domain(&self.roots, domain)? else {
            // Not a vpopmail domain: qmail-send decides later.
            return Ok(Verdict::Yes);
        };
        // What qmail routes past vpopmail is looked at last, since it can
        // only turn a refusal (or vpopmail's unreadable files) into a yes,
        // and reads more files than the common case needs.
        match Self::vpop_has(&d, local) {
            Ok(true) => Ok(Verdict::Yes),
            Ok(false) if self.routed_past_vpopmail(a, &d)? => Ok(Verdict::Yes),
            // A refusal needs the domain directory to be there: one that is
            // not (a disk not mounted yet, a domain being moved) has no
            // vpasswd to tell, and deliveries wait rather than bounce: 451.
            Ok(false) => std::fs::metadata(&d.dir).map(|_| Verdict::No),
            Err(_) if self.routed_past_vpopmail(a, &d).unwrap_or(false) => Ok(Verdict::Yes),
            Err(e) => Err(e),
        }
    }

    /// Whether vpopmail delivers `local@domain` of domain `d`: a user, a
    /// `.qmail` file, a user-ext, or a catch-all that is not a bounce.
    fn vpop_has(d: &crate::vpop::Domain, local: &str) -> std::io::Result<bool> {
        // A user vpopmail bounces mail for (the BOUNCE_MAIL flag) has no
        // mailbox as far as a sender can tell, unless a .qmail file of the
        // domain takes its mail first.
        let takes = |e: crate::vpop::Entry| e.flags & crate::vpop::flags::BOUNCE_MAIL == 0;
        if let Some(e) = crate::vpop::find_user_in(d, local)? {
            return Ok(takes(e) || Self::has_dot_qmail(&d.dir, local));
        }
        if Self::has_dot_qmail(&d.dir, local) {
            return Ok(true);
        }
        // vdelivermail's qmail-ext rule: joe-lists@ is joe's when joe exists.
        if let Some((base, _)) = local.split_once('-') {
            if let Some(e) = crate::vpop::find_user_in(d, base)? {
                return Ok(takes(e));
            }
        }
        // The domain's catch-all: vdelivermail with bounce-no-mailbox refuses
        // unknown users; anything else (delete, an address, a Maildir)
        // accepts them.
        Ok(
            match crate::control::read_file(&d.dir.join(".qmail-default"))? {
                None => false,
                Some(b) => !bounces_unknown_users(&b),
            },
        )
    }
}

/// Whether a domain's `.qmail-default` bounces unknown users: its first
/// delivery line (comments aside) is `| .../vdelivermail '' bounce-no-mailbox`.
/// A line before it (a filter, a copy) runs first and may take the message;
/// a commented-out line or an address that merely contains the word does
/// not count.
pub fn bounces_unknown_users(dot_qmail: &[u8]) -> bool {
    use crate::deliver::dotqmail::Line;
    let Ok(lines) = crate::deliver::dotqmail::parse(dot_qmail) else {
        return false;
    };
    let Some(first) = lines
        .into_iter()
        .find(|l| !matches!(l, Line::Blank | Line::Comment | Line::Plus | Line::PlusList))
    else {
        return false;
    };
    let Line::Program(cmd) = first else {
        return false;
    };
    let Some(words) = crate::deliver::program::simple_words(&cmd) else {
        return false;
    };
    words.len() == 3
        && words[0].rsplit(|&b| b == b'/').next() == Some(&b"vdelivermail"[..])
        && words[2] == b"bounce-no-mailbox"
}

impl Policy for HostPolicy {
    fn is_vpop_user(&mut self, a: &[u8]) -> bool {
        let (Some(Ok(domain)), Ok(local)) = (
            addr::domain(a).map(std::str::from_utf8),
            std::str::from_utf8(addr::local(a)),
        ) else {
            return false;
        };
        let local = local.to_ascii_lowercase();
        let found = |u: &str| matches!(crate::vpop::find_user(&self.roots, u, domain), Ok(Some(_)));
        // vdelivermail's qmail-ext rule too: `bang!user-ext@` is bang!user's.
        found(&local) || local.split_once('-').is_some_and(|(base, _)| found(base))
    }

    fn badmailfrom(&mut self, a: &[u8]) -> bool {
        addr::badmailfrom(&self.badmailfrom, a)
    }

    /// Unlike qmail, a host without `control/rcpthosts` (and without
    /// morercpthosts.cdb) takes no domain for its own: it is never an open
    /// relay, whatever its control files.
    fn rcpthosts(&mut self, a: &[u8]) -> bool {
        let Some(d) = addr::domain(a) else {
            return true;
        };
        let keys = addr::rcpthosts_keys(d);
        if let Some(rh) = &self.rcpthosts {
            if keys
                .iter()
                .any(|k| std::str::from_utf8(k).is_ok_and(|k| rh.contains(k)))
            {
                return true;
            }
        }
        if let Some(m) = &self.morercpthosts {
            return keys.iter().any(|k| matches!(m.get(k), Ok(Some(_))));
        }
        false
    }

    fn is_my_ip(&mut self, ip: IpAddr) -> bool {
        if ip.is_loopback() || Some(ip) == self.local_ip {
            return true;
        }
        // qmail's ipme: every interface, plus moreipme, minus notipme.
        let roots = &self.roots;
        self.ipme
            .get_or_insert_with(|| {
                crate::smtp::client::ipme(&Control::new(roots)).unwrap_or_default()
            })
            .contains(&ip)
    }

    fn relay_open(&mut self) -> bool {
        let info = std::env::var("TCPREMOTEINFO").ok();
        crate::relay::is_open(&self.roots, &self.remote_ip, info.as_deref())
    }

    fn sender_domain(&mut self, domain: &[u8]) -> Verdict {
        let Ok(d) = std::str::from_utf8(domain) else {
            return Verdict::No;
        };
        let d = d.trim_end_matches('.');
        if d.is_empty() || !d.contains('.') {
            return Verdict::No;
        }
        let lookup = crate::dns::Resolver::from_roots(&self.roots)
            .and_then(|r| r.has_mail_route(d).map_err(|e| e.to_string()));
        match lookup {
            Ok(true) => Verdict::Yes,
            Ok(false) => Verdict::No,
            Err(e) => {
                crate::elog!(
                    "qmail-smtpd: sender domain {}: {}",
                    loggable(d),
                    loggable(&e)
                );
                Verdict::Temporary
            }
        }
    }

    fn recipient(&mut self, a: &[u8]) -> Verdict {
        let Some(domain) = addr::domain(a) else {
            return Verdict::Yes;
        };
        let (Ok(domain), Ok(local)) = (
            std::str::from_utf8(domain),
            std::str::from_utf8(addr::local(a)),
        ) else {
            return Verdict::No;
        };
        let local = local.to_ascii_lowercase();
        match self.vpop_recipient(a, &local, domain) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // qmail-smtpd cannot read vpopmail's files (it runs as qmaild
                // rather than vpopmail): accept, vdelivermail decides later.
                if !self.warned {
                    crate::elog!(
                        "qmail-smtpd: warning: rcptcheck: {}; recipients not checked",
                        crate::deliver::errstr(&e)
                    );
                    self.warned = true;
                }
                Verdict::Yes
            }
            Err(e) => {
                crate::elog!(
                    "qmail-smtpd: rcptcheck {}@{}: {}",
                    loggable(&local),
                    loggable(domain),
                    loggable(&e.to_string())
                );
                Verdict::Temporary
            }
        }
    }

    fn check_password(&mut self, user: &[u8], pass: &[u8], ch: &[u8]) -> Result<bool, String> {
        crate::auth::checkpassword::run(&self.checkpassword, user, pass, ch).map_err(|e| {
            crate::elog!("qmail-smtpd: checkpassword: {}", crate::deliver::errstr(&e));
            e.to_string()
        })
    }

    fn auth_failed(&mut self) {
        std::thread::sleep(self.auth_delay);
    }

    fn now(&mut self) -> i64 {
        crate::timefmt::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_dot_qmail_default_bounces_unknown_users() {
        let b = |t: &str| bounces_unknown_users(t.as_bytes());
        assert!(b(
            "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n"
        ));
        assert!(b(
            "# the default\n|/h/v/bin/vdelivermail '' bounce-no-mailbox\n"
        ));
        assert!(b(
            "|/home/vpopmail/bin/vdelivermail \"\" bounce-no-mailbox\n"
        ));
        // A catch-all, with the old line commented out.
        assert!(!b("# | /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n| /home/vpopmail/bin/vdelivermail '' catch@other.org\n"));
        // A filter first: it may take the message.
        assert!(!b(
            "| /usr/bin/filter\n| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n"
        ));
        // An address that contains the word.
        assert!(!b(
            "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox-x@other.org\n"
        ));
        assert!(!b("| /home/vpopmail/bin/vdelivermail '' delete\n"));
        assert!(!b("./Maildir/\n"));
        assert!(!b(""));
    }

    #[test]
    fn rcpthosts_and_dot_qmail() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("q");
        std::fs::create_dir_all(q.join("control")).unwrap();
        std::fs::write(q.join("control/rcpthosts"), "example.com\n.sub.example\n").unwrap();
        let mut w = cdb::Writer::new();
        w.add(b"more.example", b"");
        w.write_atomic(&q.join("control/morercpthosts.cdb"), 0o644)
            .unwrap();
        let roots = Roots::new(&q, t.path().join("v"));
        let mut p = HostPolicy::load(&roots, "192.0.2.1", None, vec![]).unwrap();
        assert!(p.rcpthosts(b"a@Example.COM"));
        assert!(p.rcpthosts(b"a@x.sub.example"));
        assert!(!p.rcpthosts(b"a@sub.example"));
        assert!(p.rcpthosts(b"a@more.example"));
        assert!(!p.rcpthosts(b"a@evil.example"));
        assert!(p.rcpthosts(b"postmaster"));

        let d = t.path().join("dom");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(".qmail-sales"), "&x@y\n").unwrap();
        std::fs::write(d.join(".qmail-list-default"), "|ezmlm\n").unwrap();
        std::fs::write(d.join(".qmail-first:last"), "&x@y\n").unwrap();
        assert!(HostPolicy::has_dot_qmail(&d, "sales"));
        assert!(HostPolicy::has_dot_qmail(&d, "list-subscribe"));
        assert!(HostPolicy::has_dot_qmail(&d, "first.last"));
        assert!(!HostPolicy::has_dot_qmail(&d, "list"));
        assert!(!HostPolicy::has_dot_qmail(&d, "nobody"));
        assert!(!HostPolicy::has_dot_qmail(&d, "../x"));
        // A `/` finds no .qmail-EXT, but the -default files still count.
        assert!(HostPolicy::has_dot_qmail(&d, "list-a/b"));
        assert!(!HostPolicy::has_dot_qmail(&d, "sales/x"));
        assert!(!HostPolicy::has_dot_qmail(&d, "/etc/passwd"));
    }

    #[test]
    fn client_text_cannot_forge_log_lines() {
        assert_eq!(
            loggable("servfail\x1b[2J\rfake: line\n.test"),
            "servfail?[2J?fake: line?.test"
        );
        // Characters that reorder or hide text: `?` too; other text stays.
        assert_eq!(
            loggable("a\u{202e}b\u{2028}c\u{200b}d\u{feff}é"),
            "a?b?c?d?é"
        );
    }
}
