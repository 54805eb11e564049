//! vchkpw: vpopmail's checkpassword program (COMPAT section 12).
//!
//! `vchkpw PROG [ARGS...]` reads `login\0password\0challenge\0` from
//! descriptor 3, finds the virtual user, checks the password (crypt, or
//! CRAM-MD5 for SMTP and APOP for POP3 when a clear password is stored), the
//! access flags, records `lastauth`, opens the POP-before-SMTP relay after a
//! POP3 or IMAP login, changes to the domain's uid/gid and the user's
//! directory (creating a missing Maildir), sets `USER`, `HOME`, `SHELL` and
//! `VPOPUSER`, and execs PROG.
//!
//! The connection type comes from `TCPLOCALPORT` (25/465/587 SMTP, 110/995
//! POP3, 143/993 IMAP; the loopback ports of `make run`, 2625/2587/2465,
//! 2110/2995 and 2143/2993, the same), otherwise from `SERVICE` (set by
//! Dovecot's checkpassword passdb: imap, pop3, smtp, submission, with or
//! without the s), otherwise from PROG: "true" in it means
//! SMTP AUTH, "imap" IMAP, anything else POP3; no PROG at all is SMTP AUTH
//! (`qmail-smtpd HOST vchkpw` without `/bin/true`), so it opens no relay. An IMAP login from a webmail
//! address (`~vpopmail/etc/webmail-ips`, one per line; 127.0.0.1 when the file
//! is missing) is a webmail login. vpopmail also counts POP3 from 127.0.0.1 as
//! webmail; we do not, so NO_POP and APOP mean the same from every address.
//!
//! The decisions are pure functions ([`connection`], [`parse_login`],
//! [`check`]); [`main`] does the I/O around them.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::auth::checkpassword::{self, ReadError, Request};
use crate::auth::sasl;
use crate::paths::Roots;
use crate::vpop::{self, flags, Domain, Entry};
use crate::{control, relay};

/// The service a login is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// SMTP AUTH (qmail-smtpd).
    Smtp,
    /// POP3 (qmail-popup).
    Pop,
    /// IMAP.
    Imap,
    /// IMAP from a webmail address.
    Webmail,
}

/// The connection: its service and the name used in log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The service.
    pub service: Service,
    /// `vchkpw-pop3`, `vchkpw-smtp`, `vchkpw-webmail`, `vchkpw-PORT` ...
    pub name: String,
}

/// Classifies a connection from `TCPLOCALPORT`, `SERVICE` (which Dovecot's
/// checkpassword passdb sets), the program to run and the client address.
pub fn connection(
    local_port: Option<&str>,
    service_env: Option<&str>,
    prog: Option<&str>,
    remote_ip: &str,
    webmail_ips: &[String],
) -> Connection {
    let port: u32 = local_port
        .map(|p| {
            p.trim()
                .bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0u32, |n, d| {
                    n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
                })
        })
        .unwrap_or(0);
    let (service, name) = match port {
        25 | 2625 => (Service::Smtp, "smtp".to_string()),
        465 | 2465 => (Service::Smtp, "smtps".to_string()),
        587 | 2587 => (Service::Smtp, "submission".to_string()),
        110 | 2110 => (Service::Pop, "pop3".to_string()),
        995 | 2995 => (Service::Pop, "pop3s".to_string()),
        143 | 2143 => (Service::Imap, "imap".to_string()),
        993 | 2993 => (Service::Imap, "imaps".to_string()),
        _ if service_env.is_some_and(|v| service_word(v).is_some()) => {
            let v = service_env.unwrap_or_default().to_ascii_lowercase();
            (service_word(&v).unwrap_or(Service::Pop), v)
        }
        _ => {
            // No program to run after the check: nothing is served, so
            // nothing is opened (a POP3 or IMAP server always follows).
            let p = prog.unwrap_or("true");
            let s = if p.contains("true") {
                Service::Smtp
            } else if p.contains("imap") {
                Service::Imap
            } else {
                Service::Pop
            };
            (s, port.to_string())
        }
    };
    if service == Service::Imap && webmail_ips.iter().any(|w| w == remote_ip) {
        return Connection {
            service: Service::Webmail,
            name: "vchkpw-webmail".to_string(),
        };
    }
    Connection {
        service,
        name: format!("vchkpw-{name}"),
    }
}

/// The service a `SERVICE` value names (Dovecot's words and the port names
/// vchkpw logs), if any.
fn service_word(v: &str) -> Option<Service> {
    match v.to_ascii_lowercase().as_str() {
        "imap" | "imaps" => Some(Service::Imap),
        "pop3" | "pop3s" => Some(Service::Pop),
        "smtp" | "smtps" | "submission" => Some(Service::Smtp),
        _ => None,
    }
}

/// A login split into user and domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The whole login, lowercased (`VPOPUSER`).
    pub name: String,
    /// The local part.
    pub user: String,
    /// The domain (the default domain when none was given).
    pub domain: String,
}

/// Splits a login as vpopmail's `parse_email`: lowercased; the separator is
/// the first `@`, else the first `%`, else the first `/`; no domain means the
/// default domain. `None` when the user or domain holds characters vpopmail
/// refuses (exit 20).
pub fn parse_login(login: &[u8], default_domain: impl FnOnce() -> String) -> Option<Login> {
    let name = std::str::from_utf8(login).ok()?.to_ascii_lowercase();
    let split = ['@', '%', '/'].iter().find_map(|&c| name.find(c));
    let (user, domain) = match split {
        Some(i) => (name[..i].to_string(), name[i + 1..].to_string()),
        None => (name.clone(), String::new()),
    };
    if !user.bytes().all(valid_user_char) || !domain.bytes().all(valid_domain_char) {
        return None;
    }
    let domain = if domain.is_empty() {
        default_domain().to_ascii_lowercase()
    } else {
        domain
    };
    Some(Login { name, user, domain })
}

/// A SHA-512-crypt hash no password matches, checked for unknown users.
const UNKNOWN_USER_HASH: &str = "$6$vqmailnouser$gYxbAEQLdKRwntflGMv0EtQf9r8.UqRV16p2W60F1zHU/Au9BtV.fRuHIpIANZLJg1rg5Hh3rs1.A2Ncnv7.11";

fn valid_user_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&'*+-./=?^_`{|}~".contains(&c)
}

fn valid_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_'
}

/// How the password was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// crypt(password) matched the stored hash.
    Plain,
    /// CRAM-MD5 against the clear password (SMTP).
    CramMd5,
    /// APOP against the clear password (POP3).
    Apop,
}

impl Method {
    /// The name vpopmail logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Plain => "PLAIN",
            Method::CramMd5 => "CRAM-MD5",
            Method::Apop => "APOP",
        }
    }
}

/// Why a login is refused: the exit code and the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// vchkpw's exit code.
    pub code: u8,
    /// The log line (never holds the password).
    pub log: String,
    /// A line logged before it, saying what the admin can do.
    pub hint: Option<String>,
}

/// Checks the password and the access flags of a found user.
pub fn check(
    conn: &Connection,
    login: &Login,
    entry: &Entry,
    req: &Request,
    ip: &str,
) -> Result<Method, Refusal> {
    let who = format!("{}@{}:{ip}", login.user, login.domain);
    let refuse = |code: u8, what: &str| Refusal {
        code,
        log: format!("{}: {what} {who}", conn.name),
        hint: None,
    };
    let mut method = None;
    // A challenge-response needs a challenge: without one (PLAIN, LOGIN,
    // USER/PASS from a qmail-popup that offers no APOP) only the password counts.
    if let Some(clear) = entry.clear_password().filter(|_| !req.challenge.is_empty()) {
        let clear = vpop::entry::encode(clear);
        match conn.service {
            Service::Smtp if sasl::cram_verify(&clear, &req.challenge, &req.password) => {
                method = Some(Method::CramMd5);
            }
            Service::Pop if sasl::apop_verify(&req.challenge, &clear, &req.password) => {
                method = Some(Method::Apop);
            }
            _ => {}
        }
    }
    if entry.passwd.is_empty() {
        return Err(refuse(15, "user has no password"));
    }
    let method = match method {
        Some(m) => m,
        None => {
            let hash_ok = vpop::password::verify(&req.password, &entry.passwd);
            // qmail-smtpd sends a challenge only with a CRAM-MD5 digest
            // (qmail-popup sends its banner with every login), and a digest
            // cannot be checked without the clear-text password: not a wrong
            // password (the client falls back to PLAIN or LOGIN), so not
            // logged as one. (Another caller may send a challenge with a
            // plain password: the hash still decides, as for any login.)
            if conn.service == Service::Smtp
                && !req.challenge.is_empty()
                && entry.clear_password().is_none()
                && !hash_ok
            {
                return Err(refuse(
                    3,
                    "CRAM-MD5 needs a clear-text password (vpasswd -C)",
                ));
            }
            if !hash_ok {
                let mut r = refuse(3, "password fail");
                // What looks like an APOP digest for a user without the
                // clear-text password: a line before the usual one (kept as
                // it is for log watchers) says what the admin can do.
                if conn.service == Service::Pop
                    && entry.clear_password().is_none()
                    && looks_like_apop(&req.password)
                {
                    r.hint = Some(format!(
                        "{}: APOP needs a clear-text password (vpasswd -C) {who}",
                        conn.name
                    ));
                }
                return Err(r);
            }
            Method::Plain
        }
    };
    let denied = match conn.service {
        Service::Pop if entry.has(flags::NO_POP) => Some("pop access denied"),
        Service::Smtp if entry.has(flags::NO_SMTP) => Some("smtp access denied"),
        Service::Webmail if entry.has(flags::NO_WEBMAIL) => Some("webmail access denied"),
        Service::Imap if entry.has(flags::NO_IMAP) => Some("imap access denied"),
        _ => None,
    };
    match denied {
        Some(what) => Err(refuse(1, what)),
        None => Ok(method),
    }
}

/// 32 lowercase hex digits: the form of an APOP digest.
fn looks_like_apop(password: &[u8]) -> bool {
    password.len() == 32
        && password
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The client address: `TCPREMOTEIP`, else `REMOTE_HOST` (vpopmail's two),
/// `::ffff:` stripped; [`main`] falls back to the peer of descriptor 0.
pub fn remote_ip(tcpremoteip: Option<String>, remote_host: Option<String>) -> String {
    let ip = tcpremoteip
        .filter(|s| !s.is_empty())
        .or(remote_host)
        .unwrap_or_default();
    let lower = ip.to_ascii_lowercase();
    match lower.strip_prefix("::ffff:") {
        Some(v4) => v4.to_string(),
        None => ip,
    }
}

/// The default domain: `$VPOPMAIL_DOMAIN`, else the domain `ip_alias_map`
/// gives `TCPLOCALIP`, else the first line of `~vpopmail/etc/defaultdomain`.
pub fn default_domain(roots: &Roots) -> String {
    if let Some(d) = std::env::var("VPOPMAIL_DOMAIN")
        .ok()
        .filter(|d| !d.is_empty())
    {
        return d;
    }
    if let Ok(local) = std::env::var("TCPLOCALIP") {
        if let Ok(Some(map)) = control::read_list(&roots.vpop_etc("ip_alias_map")) {
            for l in map {
                let mut f = l.split_whitespace();
                if let (Some(ip), Some(dom)) = (f.next(), f.next()) {
                    if ip == local {
                        return dom.to_string();
                    }
                }
            }
        }
    }
    control::read_line(&roots.vpop_etc("defaultdomain"))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The addresses whose IMAP logins are webmail logins.
pub fn webmail_ips(roots: &Roots) -> Vec<String> {
    match control::read_list(&roots.vpop_etc("webmail-ips")) {
        Ok(Some(l)) => l,
        _ => vec!["127.0.0.1".to_string()],
    }
}

/// The whole program: returns the exit code when it does not exec.
/// `fd3` is descriptor 3 (`None` when it is not open).
pub fn main(roots: &Roots, args: &[OsString], fd3: Option<std::fs::File>) -> u8 {
    let env = |k: &str| std::env::var(k).ok();
    let mut ip = remote_ip(env("TCPREMOTEIP"), env("REMOTE_HOST"));
    if ip.is_empty() {
        // Under inetd or a systemd socket unit no variable names the client:
        // the connection on descriptor 0 does (qmail-popup's, passed on).
        if let Some(peer) = crate::sys::stdin_peer_ip() {
            ip = peer.to_string();
        }
    }
    let prog = args.first().and_then(|p| p.to_str());
    let conn = connection(
        env("TCPLOCALPORT").as_deref(),
        env("SERVICE").as_deref(),
        prog,
        &ip,
        &webmail_ips(roots),
    );
    let log = |line: &str| log_notice(line);

    let req = match fd3.map(|mut f| checkpassword::read_request(&mut f)) {
        Some(Ok(r)) => r,
        Some(Err(ReadError::Malformed)) => {
            log(&format!(
                "{}: malformed request on descriptor 3 :{ip}",
                conn.name
            ));
            return 2;
        }
        None | Some(Err(ReadError::Io(_))) => {
            crate::elog!(
                "{}: vchkpw is only for talking with qmail-popup and qmail-pop3d. It is not for running on the command line.",
                conn.name
            );
            return 11;
        }
    };
    // Started through the setuid bit by someone else (a local user, not the
    // root-run qmail-popup or a server running as vpopmail): the client
    // address is whatever that user put in TCPREMOTEIP, and nothing slows
    // their guessing down.
    let foreign_caller =
        nix::unistd::getuid() != nix::unistd::geteuid() && !nix::unistd::getuid().is_root();
    let uid = nix::unistd::getuid().as_raw();
    // Any such caller but qmaild (qmail-smtpd's account in qmail's run
    // scripts, whose TCPREMOTEIP tcpserver set).
    let untrusted_caller = foreign_caller
        && guess_delay_for(crate::sys::account_by_uid(uid).map(|a| a.name).as_deref());
    if untrusted_caller {
        // Before any answer, right or wrong, and before the user is looked
        // up: a quick exit for an unknown user would tell which exist.
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let shown = String::from_utf8_lossy(&req.login).into_owned();
    if req.login.is_empty() {
        log(&format!("{}: null user name given :{ip}", conn.name));
        return 12;
    }
    if req.password.is_empty() {
        log(&format!("{}: null password given {shown}:{ip}", conn.name));
        return 13;
    }
    let Some(login) = parse_login(&req.login, || default_domain(roots)) else {
        log(&format!(
            "{}: invalid user/domain characters {shown}:{ip}",
            conn.name
        ));
        return 20;
    };
    let (domain, mut entry) = match vpop::find_user(roots, &login.user, &login.domain) {
        Ok(Some(found)) => found,
        Ok(None) => {
            // As long as a wrong password takes: an unknown user must not be
            // told apart by the time the answer takes (new hashes are $6$).
            let _ = vpop::password::verify(&req.password, UNKNOWN_USER_HASH);
            log(&format!(
                "{}: vpopmail user not found {}@{}:{ip}",
                conn.name, login.user, login.domain
            ));
            return 3;
        }
        Err(e) => {
            log(&format!(
                "{}: unable to read the user database ({}) {}@{}:{ip}",
                conn.name,
                crate::deliver::errstr(&e),
                login.user,
                login.domain
            ));
            return 111;
        }
    };
    // The domain's limits add their flags to the user's (vpopmail's
    // pw_flags): a domain closed for POP3 stays closed for every user
    // without V_OVERRIDE.
    entry.flags = vpop::admin::effective_flags(roots, &domain, entry.flags);
    if let Err(r) = check(&conn, &login, &entry, &req, &ip) {
        // Each its own message: the client address comes from the
        // environment, and a line break in it must not start a line of its
        // own (log_notice turns it into '?').
        if let Some(h) = &r.hint {
            log(h);
        }
        log(&r.log);
        return r.code;
    }
    // No directory (or a relative one, which would be taken from wherever
    // this runs): refused, as vpopmail refuses when it cannot make one.
    // Only after the password, as vpopmail does: a quick refusal before
    // the hash would tell such users from unknown ones.
    if !entry.dir_path().is_absolute() {
        log(&format!(
            "{}: dir auto create failed {}@{}:{ip}",
            conn.name, login.user, login.domain
        ));
        return 14;
    }
    let who = format!("{}@{}:{ip}", login.user, login.domain);
    let dir = entry.dir_path();
    // The domain's owner writes its vpasswd, and so the directory: nothing
    // is read or written there (lastauth included) unless that owner could.
    if let Err(why) = dir_is_the_domains(&dir, &domain) {
        log(&format!("{}: {why} {who}", conn.name));
        return 1;
    }
    // A POP3 login the poll limit is about to refuse (qmail-pop3d decides)
    // is not a login: it neither opens the relay nor counts as lastauth.
    let poll_refused = conn.service == Service::Pop
        && crate::pop3::interval::too_soon(
            &dir,
            crate::pop3::server::poll_interval(roots),
            crate::timefmt::now(),
        );
    if untrusted_caller {
        log(&format!(
            "{}: relay not opened, lastauth not written: started by uid {}, whose TCPREMOTEIP proves nothing {who}",
            conn.name,
            nix::unistd::getuid()
        ));
    }
    let open_relay = || {
        if let Err(e) = relay::open(roots, &ip) {
            let e = crate::deliver::errstr(&e);
            log(&format!(
                "{}: unable to open the relay ({e}) {who}",
                conn.name
            ));
        }
    };
    let wants_relay = conn.service != Service::Smtp
        && !entry.has(flags::NO_RELAY)
        && !ip.is_empty()
        && !poll_refused
        && !foreign_caller;
    // A user directory or Maildir that is missing (or not a directory) is
    // dealt with below; the relay opens only once that worked (a login that
    // ends in an error opens nothing). When both are there, it opens now,
    // with the rights vchkpw started with (a domain may belong to an account
    // that cannot write ~vpopmail/etc).
    let relay_later = wants_relay && !(dir.is_dir() && dir.join("Maildir").is_dir());
    if wants_relay && !relay_later {
        open_relay();
    }
    // lastauth is written with the rights vchkpw started with; a user
    // directory that is missing is created below, after the change of identity.
    // Root writes it as the domain's owner (whose directory it is), never
    // with root's rights: the owner could swap the directory for a link
    // between any check and the write.
    let write_lastauth = || {
        if let Err(e) = as_domain_owner(&domain, || vpop::set_lastauth(&dir, &ip)) {
            let e = crate::deliver::errstr(&e);
            log(&format!(
                "{}: unable to write lastauth ({e}) {who}",
                conn.name
            ));
        }
    };
    // (Nothing to write for a refused poll or an untrusted caller.)
    let lastauth_done = poll_refused || untrusted_caller || dir.is_dir();
    if lastauth_done && !poll_refused && !untrusted_caller {
        write_lastauth();
    }
    // Started by root, a missing user directory or Maildir is made with the
    // owner's rights (seteuid) before the change of identity, so that the
    // relay then opens with root's: the owner may not be able to write
    // ~vpopmail/etc. Otherwise it is made after the change, as the account
    // the program runs as.
    let enter_logged = |r: Result<(), (&'static str, io::Error)>| match r {
        Ok(()) => true,
        Err((what, e)) => {
            let e = crate::deliver::errstr(&e);
            log(&format!("{}: {what} ({e}) {} {who}", conn.name, entry.dir));
            false
        }
    };
    let early = relay_later && nix::unistd::geteuid().is_root();
    if early {
        let made = as_domain_owner(&domain, || Ok(enter(&dir)))
            .unwrap_or_else(|e| Err(("could not become the domain's owner", e)));
        if !enter_logged(made) {
            return 6;
        }
        if !lastauth_done && dir.is_dir() {
            write_lastauth();
        }
        open_relay();
    }
    if let Err((code, what)) = switch_identity(conn.service, &domain) {
        log(&format!("{}: {what} {who}", conn.name));
        return code;
    }
    if !early {
        if conn.service != Service::Smtp && !enter_logged(enter(&dir)) {
            return 6;
        }
        if !lastauth_done && dir.is_dir() {
            write_lastauth();
        }
        if relay_later {
            open_relay();
        }
    }
    let Some((prog, rest)) = args.split_first() else {
        return 0;
    };
    let e = std::process::Command::new(prog)
        .args(rest)
        .env("USER", &login.user)
        .env("HOME", &dir)
        .env("SHELL", "NOLOGIN")
        .env("VPOPUSER", &login.name)
        .exec();
    let e = crate::deliver::errstr(&e);
    log(&format!(
        "{}: unable to run {} ({e}) {who}",
        conn.name,
        Path::new(prog).display()
    ));
    111
}

/// Logs a line as vpopmail does: syslog, ident `vpopmail`, facility mail,
/// priority notice, `%` turned into `#`; on standard error when there is no
/// syslog socket (a sandbox, a container).
pub fn log_notice(line: &str) {
    let clean = crate::paths::loggable(line).replace('%', "#");
    let msg = format!("<21>vpopmail[{}]: {clean}", std::process::id());
    let sent = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.send_to(msg.as_bytes(), "/dev/log"))
        .is_ok();
    if !sent {
        crate::elog!("vpopmail: {clean}");
    }
}

/// Changes identity before the program runs.
///
/// POP3/IMAP started by root (tcpserver, possibly through a setuid-vpopmail
/// vchkpw): become the domain's owner completely (groups, real, effective and
/// saved ids), provided it is a real account other than root; in a sandbox the
/// identity is kept. Any service started through the setuid bit by another
/// user (qmail-smtpd as qmaild, or a local user): drop back to that user, so
/// the program never runs with vpopmail's rights it was not started with.
fn switch_identity(service: Service, d: &Domain) -> Result<(), (u8, String)> {
    use nix::unistd::{getgid, getuid, setgroups, setresgid, setresuid, Gid, Uid};
    let ruid = getuid();
    if service != Service::Smtp && (ruid.is_root() || nix::unistd::geteuid().is_root()) {
        if !d.root_becomes_owner() {
            return Ok(());
        }
        // Started by root through a setuid binary: regain root to drop its groups.
        let _ = nix::unistd::seteuid(Uid::from_raw(0));
        let (u, g) = (Uid::from_raw(d.uid), Gid::from_raw(d.gid));
        if nix::unistd::geteuid().is_root() {
            setgroups(&[g])
                .map_err(|e| (4, format!("setgroups {} failed errno {}", d.gid, e as i32)))?;
        }
        setresgid(g, g, g)
            .map_err(|e| (4, format!("setgid {} failed errno {}", d.gid, e as i32)))?;
        setresuid(u, u, u)
            .map_err(|e| (5, format!("setuid {} failed errno {}", d.uid, e as i32)))?;
        return Ok(());
    }
    if crate::sys::is_setid() && !ruid.is_root() {
        let g = getgid();
        setresgid(g, g, g).map_err(|e| (4, format!("setgid {g} failed errno {}", e as i32)))?;
        setresuid(ruid, ruid, ruid)
            .map_err(|e| (5, format!("setuid {ruid} failed errno {}", e as i32)))?;
    }
    Ok(())
}

/// Runs `f` as the domain's owner when running as root ([`crate::sys::as_owner`]).
fn as_domain_owner<T>(d: &Domain, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    crate::sys::as_owner(d.root_becomes_owner().then_some((d.uid, d.gid)), f)
}

/// With root as the real user and another effective one (the setuid bit,
/// for a root-run server), becomes root again: root started it, and only
/// root can read a domain of another owner and become that owner.
pub fn regain_root() {
    use nix::unistd::{getegid, geteuid, getgid, getuid, setegid, seteuid};
    if getuid().is_root() && !geteuid().is_root() {
        let _ = seteuid(getuid());
        if getegid() != getgid() {
            let _ = setegid(getgid());
        }
    }
}

/// Whether a login of domain `d` may use directory `dir`. Whoever owns the
/// domain's directory (and its vpasswd) decides where its logins go. With
/// vchkpw unable to become another account (neither its real nor its
/// effective uid is root), a POP3 or IMAP login of a domain owned by
/// another account than its own (or root's) is refused: nothing would keep
/// that owner (a domain made with `vadddomain -u`) out of other domains'
/// mail. And a user directory that exists must belong to the owner of the
/// domain's directory: a vpasswd line pointing into another domain, or at a
/// system directory, is refused whatever vchkpw runs as, before lastauth is
/// written there.
fn dir_is_the_domains(dir: &Path, d: &Domain) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| std::fs::metadata(p).ok();
    let Some(dom) = meta(&d.dir) else {
        return Ok(()); // (the lookup that follows reports it)
    };
    let dom_owner = dom.uid();
    let (ruid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
    let can_switch = ruid.is_root() || euid.is_root();
    if !can_switch {
        // Nobody else may change what the domain's path leads to, nor put
        // files in its directory: every directory on the way (links
        // followed, and the links themselves) is this account's or root's
        // and writable by no one else (a sticky one, /tmp, only on the way),
        // and so are vpasswd and its cdb.
        trusted_path(&d.dir, euid.as_raw())?;
        let foreign = |uid: u32| uid != 0 && uid != euid.as_raw();
        if let Some(uid) = [
            meta(&d.dir.join("vpasswd")).map(|m| m.uid()),
            meta(&d.dir.join("vpasswd.cdb")).map(|m| m.uid()),
        ]
        .into_iter()
        .flatten()
        .find(|&u| foreign(u))
        {
            return Err(format!(
                "domain belongs to uid {uid}, and vchkpw runs as uid {euid} without root to change to it"
            ));
        }
    }
    // Root writes lastauth there before it becomes the domain's owner: the
    // directory must be that owner's as well.
    let becomes = (can_switch && d.root_becomes_owner()).then_some(d.uid);
    match meta(dir) {
        Some(m) if m.uid() != dom_owner || becomes.is_some_and(|u| u != m.uid()) => Err(format!(
            "user directory {} belongs to uid {}, not to the domain's owner (uid {})",
            crate::paths::loggable(&dir.to_string_lossy()),
            m.uid(),
            becomes.unwrap_or(dom_owner)
        )),
        Some(m) if m.mode() & 0o002 != 0 => Err(format!(
            "user directory {} may be written by others",
            crate::paths::loggable(&dir.to_string_lossy()),
        )),
        _ => Ok(()),
    }
}

/// Whether no account but `uid` and root can change what `p` leads to: see
/// [`dir_is_the_domains`].
fn trusted_path(p: &Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(p).map_err(|e| {
        format!(
            "domain directory {}: {}",
            crate::paths::loggable(&p.to_string_lossy()),
            crate::deliver::errstr(&e)
        )
    })?;
    let egid = nix::unistd::getegid().as_raw();
    for path in [p, real.as_path()] {
        let mut cur = std::path::PathBuf::new();
        let mut comps = path.components().peekable();
        while let Some(c) = comps.next() {
            cur.push(c);
            let last = comps.peek().is_none() && path == real.as_path();
            let Ok(m) = std::fs::symlink_metadata(&cur) else {
                continue; // (a `..` or a link's own path: checked through `real`)
            };
            let shown = crate::paths::loggable(&cur.to_string_lossy());
            if m.uid() != 0 && m.uid() != uid {
                return Err(format!(
                    "domain belongs to uid {}, and vchkpw runs as uid {uid} without root to change to it ({shown})",
                    m.uid()
                ));
            }
            // Group write counts only for a group other than this
            // process's own and root's (a user's private group, umask 002).
            let group_write = m.mode() & 0o020 != 0 && m.gid() != 0 && m.gid() != egid;
            let others_write = m.is_dir() && (m.mode() & 0o002 != 0 || group_write);
            let sticky = m.mode() & 0o1000 != 0;
            if others_write && (last || !sticky) {
                return Err(format!("domain directory {shown} may be written by others"));
            }
        }
    }
    Ok(())
}

/// chdir to the user directory, creating it and its Maildir when missing,
/// with vadduser's mode (0750) whatever the umask.
fn enter(dir: &Path) -> Result<(), (&'static str, io::Error)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mode = crate::vpop::admin::DIR_MODE;
    let set = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    let made = "autocreate dir failed";
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        // There, but this account cannot look (a caller without rights).
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(("unable to enter the user directory", e))
        }
        _ => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| (made, e))?;
            set(dir).map_err(|e| (made, e))?;
        }
    }
    let md = dir.join("Maildir");
    let made_md = "autocreate Maildir failed";
    match std::fs::metadata(&md) {
        Ok(m) if m.is_dir() => {}
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(("unable to enter the user directory", e))
        }
        _ => {
            crate::maildir::create(&md, mode).map_err(|e| (made_md, e))?;
            for sub in ["", "tmp", "new", "cur"] {
                set(&md.join(sub)).map_err(|e| (made_md, e))?;
            }
        }
    }
    crate::fsutil::chdir(dir).map_err(|e| ("unable to enter the user directory", e))
}

/// Whether a caller that started vchkpw through its setuid bit waits two
/// seconds before its answer: every local user does, so that guessing
/// passwords is slow, except qmaild, qmail-smtpd's account in qmail's own
/// run scripts, whose SMTP AUTH must not take two seconds.
fn guess_delay_for(caller: Option<&str>) -> bool {
    caller != Some("qmaild")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmaild_does_not_wait() {
        assert!(!guess_delay_for(Some("qmaild")));
        assert!(guess_delay_for(Some("joe")));
        assert!(guess_delay_for(Some("qmaildx")));
        assert!(guess_delay_for(None));
    }

    fn conn(s: Service) -> Connection {
        Connection {
            service: s,
            name: "vchkpw-x".into(),
        }
    }

    fn entry(flags: u32, clear: Option<&str>) -> Entry {
        let hash = vpop::password::hash_with_salt("secret", "abcdefgh");
        let mut e = Entry::new("joe", &hash, "Joe", "/d/joe");
        e.flags = flags;
        e.clear = clear.map(str::to_string);
        e
    }

    fn req(pass: &str, ch: &str) -> Request {
        Request {
            login: b"joe@example.com".to_vec(),
            password: pass.as_bytes().to_vec(),
            challenge: ch.as_bytes().to_vec(),
        }
    }

    fn login() -> Login {
        Login {
            name: "joe@example.com".into(),
            user: "joe".into(),
            domain: "example.com".into(),
        }
    }

    #[test]
    fn connection_types() {
        let w = vec!["127.0.0.1".to_string()];
        let c =
            |port: Option<&str>, prog: Option<&str>, ip: &str| connection(port, None, prog, ip, &w);
        assert_eq!(c(Some("110"), None, "10.0.0.1").service, Service::Pop);
        assert_eq!(c(Some("995"), None, "10.0.0.1").name, "vchkpw-pop3s");
        assert_eq!(c(Some("25"), None, "1.1.1.1").name, "vchkpw-smtp");
        assert_eq!(c(Some("587"), None, "1.1.1.1").name, "vchkpw-submission");
        assert_eq!(c(Some("465"), None, "1.1.1.1").service, Service::Smtp);
        assert_eq!(c(Some("993"), None, "1.1.1.1").name, "vchkpw-imaps");
        assert_eq!(c(Some("2110"), None, "1.1.1.1").name, "vchkpw-pop3");
        assert_eq!(
            c(Some("2625"), Some("/bin/sh"), "1.1.1.1").service,
            Service::Smtp
        );
        assert_eq!(c(Some("2143"), None, "1.1.1.1").service, Service::Imap);
        let x = c(Some("4000"), Some("/bin/true"), "1.1.1.1");
        assert_eq!((x.service, x.name.as_str()), (Service::Smtp, "vchkpw-4000"));
        assert_eq!(
            c(Some("4000"), Some("/usr/sbin/imapd"), "1.1.1.1").service,
            Service::Imap
        );
        assert_eq!(
            c(Some("4000"), Some("qmail-pop3d"), "1.1.1.1").service,
            Service::Pop
        );
        assert_eq!(c(None, None, "").name, "vchkpw-0");
        // No program after vchkpw: a check only, never a POP3 login that
        // would open the relay.
        assert_eq!(c(Some("4000"), None, "1.1.1.1").service, Service::Smtp);
        // IMAP from a webmail address is webmail; POP3 and SMTP stay what they are.
        assert_eq!(c(Some("143"), None, "127.0.0.1").name, "vchkpw-webmail");
        assert_eq!(c(Some("110"), None, "127.0.0.1").service, Service::Pop);
        assert_eq!(c(Some("25"), None, "127.0.0.1").service, Service::Smtp);
        // Dovecot's SERVICE counts where the port says nothing: its
        // checkpassword-reply names no service.
        let reply = Some("/usr/lib/dovecot/checkpassword-reply");
        let d = |port: &str, svc: &str| connection(Some(port), Some(svc), reply, "1.1.1.1", &w);
        let x = d("4143", "imap");
        assert_eq!((x.service, x.name.as_str()), (Service::Imap, "vchkpw-imap"));
        assert_eq!(d("4110", "POP3").service, Service::Pop);
        assert_eq!(d("4587", "submission").service, Service::Smtp);
        assert_eq!(d("4000", "lmtp").service, Service::Pop);
        assert_eq!(d("110", "imap").service, Service::Pop);
        assert_eq!(
            connection(Some("4143"), Some("imap"), reply, "127.0.0.1", &w).service,
            Service::Webmail
        );
    }

    #[test]
    fn login_forms() {
        let p = |s: &str| parse_login(s.as_bytes(), || "Default.Example".to_string());
        let l = p("Joe@Example.COM").unwrap();
        assert_eq!(
            (l.name.as_str(), l.user.as_str(), l.domain.as_str()),
            ("joe@example.com", "joe", "example.com")
        );
        assert_eq!(p("joe%example.com").unwrap().domain, "example.com");
        assert_eq!(p("joe/example.com").unwrap().user, "joe");
        assert_eq!(p("joe").unwrap().domain, "default.example");
        // '@' wins over '%' and '/' wherever it is.
        let l = p("a/b@example.com").unwrap();
        assert_eq!((l.user.as_str(), l.domain.as_str()), ("a/b", "example.com"));
        // '%' splits before '/', and a '/' left in the domain is refused.
        assert!(p("a%b/c").is_none());
        for bad in [
            "jo e@example.com",
            "joe:x@example.com",
            "joe@exa mple.com",
            "jo\"e",
            "joe@ex:am",
        ] {
            assert!(p(bad).is_none(), "{bad}");
        }
        assert!(parse_login(&[0xff, b'a'], String::new).is_none());
    }

    #[test]
    fn passwords_and_methods() {
        let e = entry(0, Some("secret"));
        assert_eq!(
            check(
                &conn(Service::Pop),
                &login(),
                &e,
                &req("secret", "<1@h>"),
                "ip"
            ),
            Ok(Method::Plain)
        );
        let r = check(
            &conn(Service::Pop),
            &login(),
            &e,
            &req("wrong", ""),
            "1.2.3.4",
        )
        .unwrap_err();
        assert_eq!(
            r,
            Refusal {
                code: 3,
                log: "vchkpw-x: password fail joe@example.com:1.2.3.4".into(),
                hint: None,
            }
        );
        // APOP for POP3, CRAM-MD5 for SMTP, each only there.
        let apop = sasl::apop_digest(b"<1.2@h>", b"secret");
        assert_eq!(
            check(
                &conn(Service::Pop),
                &login(),
                &e,
                &req(&apop, "<1.2@h>"),
                "ip"
            ),
            Ok(Method::Apop)
        );
        assert_eq!(
            check(
                &conn(Service::Smtp),
                &login(),
                &e,
                &req(&apop, "<1.2@h>"),
                "ip"
            )
            .unwrap_err()
            .code,
            3
        );
        let cram = sasl::cram_digest(b"secret", b"<9.9@h>");
        assert_eq!(
            check(
                &conn(Service::Smtp),
                &login(),
                &e,
                &req(&cram, "<9.9@h>"),
                "ip"
            ),
            Ok(Method::CramMd5)
        );
        assert_eq!(
            check(
                &conn(Service::Pop),
                &login(),
                &e,
                &req(&cram, "<9.9@h>"),
                "ip"
            )
            .unwrap_err()
            .code,
            3
        );
        // Without a clear password neither digest works.
        let e2 = entry(0, None);
        assert_eq!(
            check(
                &conn(Service::Pop),
                &login(),
                &e2,
                &req(&apop, "<1.2@h>"),
                "ip"
            )
            .unwrap_err()
            .code,
            3
        );
        let r = check(
            &conn(Service::Smtp),
            &login(),
            &e2,
            &req(&cram, "<9.9@h>"),
            "ip",
        )
        .unwrap_err();
        assert_eq!(r.code, 3);
        // Logged as what it is, not as a wrong password.
        assert!(
            r.log.contains("CRAM-MD5 needs a clear-text password")
                && !r.log.contains("password fail"),
            "{}",
            r.log
        );
        // A plain password with a challenge (a caller that always sends one)
        // is still checked against the hash.
        assert!(matches!(
            check(
                &conn(Service::Smtp),
                &login(),
                &e2,
                &req("secret", "<9.9@h>"),
                "ip"
            ),
            Ok(Method::Plain)
        ));
        // An APOP digest for a user without the clear-text field: still a
        // password failure, with a line before it saying why.
        let r = check(
            &conn(Service::Pop),
            &login(),
            &e2,
            &req(&apop, "<1.2@h>"),
            "ip",
        )
        .unwrap_err();
        assert_eq!(r.code, 3);
        assert_eq!(
            (r.hint.as_deref(), r.log.as_str()),
            (
                Some("vchkpw-x: APOP needs a clear-text password (vpasswd -C) joe@example.com:ip"),
                "vchkpw-x: password fail joe@example.com:ip"
            )
        );
        // No stored hash at all.
        let mut e3 = entry(0, Some("secret"));
        e3.passwd.clear();
        assert_eq!(
            check(&conn(Service::Pop), &login(), &e3, &req("secret", ""), "ip")
                .unwrap_err()
                .code,
            15
        );
    }

    #[test]
    fn flags_deny_their_service_only() {
        let cases = [
            (flags::NO_POP, Service::Pop, "pop access denied"),
            (flags::NO_SMTP, Service::Smtp, "smtp access denied"),
            (flags::NO_IMAP, Service::Imap, "imap access denied"),
            (flags::NO_WEBMAIL, Service::Webmail, "webmail access denied"),
        ];
        for (flag, svc, text) in cases {
            let e = entry(flag, None);
            let r = check(&conn(svc), &login(), &e, &req("secret", ""), "5.6.7.8").unwrap_err();
            assert_eq!(r.code, 1);
            assert_eq!(r.log, format!("vchkpw-x: {text} joe@example.com:5.6.7.8"));
            for other in [Service::Pop, Service::Smtp, Service::Imap, Service::Webmail] {
                if other != svc {
                    assert!(check(&conn(other), &login(), &e, &req("secret", ""), "ip").is_ok());
                }
            }
        }
        // A wrong password is reported as such even when the flag would deny.
        let e = entry(flags::NO_POP, None);
        assert_eq!(
            check(&conn(Service::Pop), &login(), &e, &req("nope", ""), "ip")
                .unwrap_err()
                .code,
            3
        );
    }

    #[test]
    fn remote_ip_sources() {
        assert_eq!(remote_ip(Some("::ffff:1.2.3.4".into()), None), "1.2.3.4");
        assert_eq!(remote_ip(None, Some("5.6.7.8".into())), "5.6.7.8");
        assert_eq!(remote_ip(Some(String::new()), None), "");
    }
}
