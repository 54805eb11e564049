//! The qmail-smtpd session as a pure state machine (RFC 5321, RFC 4954 AUTH,
//! RFC 3207 STARTTLS, RFC 1870 SIZE, RFC 2920 PIPELINING).
//!
//! The driver ([`super::server`]) reads command lines and hands them to
//! [`Session::input`]; the session answers with the reply bytes and an
//! [`Outcome`]. Everything the session has to ask the outside world (control
//! files, vpopmail, DNS, the checkpassword program) goes through the
//! [`Policy`] trait, so every dialog is testable without a socket.
//!
//! The message itself is not seen here: on [`Outcome::Data`] the driver starts
//! qmail-queue, reports with [`Session::data_started`], decodes the message
//! ([`super::data`]) and reports the end with [`Session::data_end`].

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::addr;
use super::reply;

/// A yes/no answer that may also fail temporarily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Yes: the domain exists / the recipient exists.
    Yes,
    /// No.
    No,
    /// Could not tell now (DNS failure, unreadable file).
    Temporary,
}

/// The outside world as the session sees it.
pub trait Policy {
    /// `control/badmailfrom` lists the sender (whole address or `@domain`).
    fn badmailfrom(&mut self, addr: &[u8]) -> bool;
    /// The recipient's domain is ours (rcpthosts, morercpthosts.cdb; no
    /// rcpthosts file at all means yes).
    fn rcpthosts(&mut self, addr: &[u8]) -> bool;
    /// The IP is one of this host's (for `user@[IP]`).
    fn is_my_ip(&mut self, ip: IpAddr) -> bool;
    /// The remote IP is in the open-smtp list within the relay window.
    fn relay_open(&mut self) -> bool;
    /// The sender domain has an MX or an address record.
    fn sender_domain(&mut self, domain: &[u8]) -> Verdict;
    /// The recipient exists (only asked for local vpopmail domains; other
    /// domains answer `Yes`).
    fn recipient(&mut self, addr: &[u8]) -> Verdict;
    /// The whole address is a vpopmail user of a local domain (so a `!` in
    /// its name is a name, not a route).
    fn is_vpop_user(&mut self, _addr: &[u8]) -> bool {
        false
    }
    /// Runs the checkpassword program: `Ok(true)` accepted, `Ok(false)`
    /// refused, `Err` the program could not be run.
    fn check_password(
        &mut self,
        user: &[u8],
        pass: &[u8],
        challenge: &[u8],
    ) -> Result<bool, String>;
    /// Called after a failed AUTH, before the reply goes out (the delay).
    fn auth_failed(&mut self);
    /// Seconds since the epoch.
    fn now(&mut self) -> i64;
}

/// The fixed facts of one connection.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `control/smtpgreeting` (else `control/me`).
    pub greeting: String,
    /// The host name for the CRAM-MD5 challenge (argv[1]).
    pub hostname: String,
    /// `control/localiphost` (else me), for `user@[our IP]`.
    pub localiphost: String,
    /// `TCPLOCALHOST` for the Received line.
    pub local_host: String,
    /// `TCPREMOTEIP`.
    pub remote_ip: String,
    /// `TCPREMOTEHOST`.
    pub remote_host: String,
    /// `TCPREMOTEINFO`.
    pub remote_info: Option<String>,
    /// `RELAYCLIENT` (set: relaying allowed, value appended to recipients).
    pub relayclient: Option<String>,
    /// `DATABYTES` or `control/databytes` (0 = no limit).
    pub databytes: u64,
    /// A checkpassword program was given: AUTH is offered.
    pub auth: bool,
    /// `control/smtpauthtls`: AUTH only after STARTTLS (or on SMTPS).
    pub auth_needs_tls: bool,
    /// `control/smtpauthcram` 0: CRAM-MD5 is not offered (a host that
    /// stores no clear-text passwords, so that clients pick PLAIN or LOGIN).
    pub cram_md5_off: bool,
    /// `control/servercert.pem` exists: STARTTLS is offered.
    pub tls_offered: bool,
    /// The client is on a pipe (`sendmail -bs`), not a network connection:
    /// STARTTLS is neither offered nor taken.
    pub on_pipe: bool,
    /// `control/mfcheck`: the sender domain DNS check.
    pub mfcheck: bool,
    /// `control/rcptcheck`: unknown users of local vpopmail domains refused.
    pub rcptcheck: bool,
    /// Our pid (CRAM-MD5 challenge).
    pub pid: u32,
}

/// What the driver does after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Continue,
    /// Close the connection after QUIT (qmail-smtpd exits 0).
    Quit,
    /// Close the connection on an error (qmail-smtpd exits 1).
    Close,
    /// Run the TLS handshake (when nothing is buffered), then
    /// [`Session::tls_started`].
    StartTls,
    /// Start qmail-queue and report with [`Session::data_started`].
    Data,
}

/// One answer of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bytes to send (possibly none).
    pub reply: Vec<u8>,
    /// What happens next.
    pub outcome: Outcome,
}

impl Step {
    fn r(reply: &[u8]) -> Step {
        Step {
            reply: reply.to_vec(),
            outcome: Outcome::Continue,
        }
    }
    fn close(reply: &[u8]) -> Step {
        Step {
            reply: reply.to_vec(),
            outcome: Outcome::Close,
        }
    }
}

/// A command line as the driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A line without its LF.
    Line(&'a [u8]),
    /// A line longer than [`MAX_AUTH_LINE`], already discarded.
    TooLong,
}

/// Longest command line, CRLF excluded (RFC 5321 4.5.3.1.4: 512 with CRLF;
/// we allow 1000, the text line limit, since AUTH lines can be long).
pub const MAX_LINE: usize = 998;
/// Longest `AUTH` command line and SASL response, CRLF excluded: RFC 4954
/// section 4 asks servers to take 12,288 octets, so a long initial response
/// or answer is not cut off at [`MAX_LINE`]. The driver reads lines up to
/// this length; [`Session::input`] refuses other commands over `MAX_LINE`.
pub const MAX_AUTH_LINE: usize = 12286;
/// Bad commands before `421` and close.
pub const MAX_BAD: u32 = 3;
/// Recipients per message.
pub const MAX_RCPTS: usize = 1000;

/// How the message ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEnd {
    /// qmail-queue took it: its pid and the time.
    Queued { time: i64, qp: u32 },
    /// qmail-queue failed with this exit code (`None`: crashed).
    QueueFailed(Option<i32>),
    /// Over databytes (read to the final dot).
    TooBig,
    /// Too many hops.
    Looping,
    /// A NUL byte in the message.
    Nul,
    /// A bare LF: 451 and close.
    BareLf,
}

/// Hop count at which a message is taken to be looping (qmail's MAXHOPS).
pub const MAX_HOPS: u32 = 100;

#[derive(Debug)]
enum AuthStep {
    None,
    LoginUser,
    LoginPass(Vec<u8>),
    Plain,
    Cram(String),
}

#[derive(Debug)]
struct Txn {
    from: Vec<u8>,
    rcpts: Vec<Vec<u8>>,
    bad_sender: bool,
}

/// One SMTP session.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    helo: Option<String>,
    txn: Option<Txn>,
    auth_user: Option<String>,
    auth: AuthStep,
    open: Option<bool>,
    tls: Option<String>,
    bad: u32,
}

impl Session {
    /// A new session; `tls` is the cipher when the connection is already
    /// encrypted (SMTPS).
    pub fn new(cfg: Config, tls: Option<String>) -> Session {
        Session {
            cfg,
            helo: None,
            txn: None,
            auth_user: None,
            auth: AuthStep::None,
            open: None,
            tls,
            bad: 0,
        }
    }

    /// The `220` greeting.
    pub fn greeting(&self) -> Vec<u8> {
        reply::greeting(&self.cfg.greeting)
    }

    /// The authenticated user, if any.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// The session's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The envelope of the transaction in DATA: sender and recipients.
    pub fn envelope(&self) -> Option<(&[u8], &[Vec<u8>])> {
        self.txn.as_ref().map(|t| (&t.from[..], &t.rcpts[..]))
    }

    /// The `Received:` line for the message in DATA.
    pub fn received(&self, t: i64) -> String {
        let info = self
            .auth_user
            .as_deref()
            .or(self.cfg.remote_info.as_deref());
        super::received::line(
            &super::received::Fields {
                remote_host: &self.cfg.remote_host,
                helo: self.helo.as_deref(),
                remote_info: info,
                remote_ip: &self.cfg.remote_ip,
                local_host: &self.cfg.local_host,
                authenticated: self.auth_user.is_some(),
                tls: self.tls.as_deref(),
            },
            t,
        )
    }

    /// The TLS handshake after STARTTLS succeeded: everything learnt before
    /// it is forgotten (RFC 3207 4.2).
    pub fn tls_started(&mut self, cipher: String) {
        self.tls = Some(cipher);
        self.helo = None;
        self.txn = None;
        self.auth_user = None;
        self.auth = AuthStep::None;
    }

    /// qmail-queue started (`true`) or not: `354` or `451 qqt failure`.
    pub fn data_started(&mut self, ok: bool) -> Step {
        if ok {
            Step::r(reply::GO_AHEAD)
        } else {
            self.txn = None;
            Step::r(reply::QQT_FAILURE)
        }
    }

    /// The end of the message: the transaction is over either way.
    pub fn data_end(&mut self, end: DataEnd) -> Step {
        self.txn = None;
        match end {
            DataEnd::Queued { time, qp } => Step::r(&reply::accepted(time, qp)),
            DataEnd::QueueFailed(code) => Step::r(&reply::queue_failure(code)),
            DataEnd::TooBig => Step::r(reply::TOO_BIG),
            DataEnd::Looping => Step::r(reply::LOOPING),
            DataEnd::Nul => Step::r(reply::NUL_IN_DATA),
            DataEnd::BareLf => Step::close(reply::STRAY_LF),
        }
    }

    /// One command line.
    pub fn input(&mut self, p: &mut dyn Policy, input: Input) -> Step {
        let line = match input {
            Input::TooLong => {
                self.auth = AuthStep::None;
                return self.bad_command(reply::LINE_TOO_LONG);
            }
            Input::Line(l) => {
                let auth = !matches!(self.auth, AuthStep::None)
                    || l.get(..5).is_some_and(|v| v.eq_ignore_ascii_case(b"AUTH "));
                if l.len() > MAX_LINE + 1 && !auth {
                    return self.input(p, Input::TooLong);
                }
                l.strip_suffix(b"\r").unwrap_or(l)
            }
        };
        if line.contains(&0) {
            self.auth = AuthStep::None;
            return self.bad_command(reply::NUL_IN_COMMAND);
        }
        if !matches!(self.auth, AuthStep::None) {
            return self.auth_continue(p, line);
        }
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => {
                let mut a = &line[i + 1..];
                while let [b' ', t @ ..] = a {
                    a = t;
                }
                (&line[..i], a)
            }
            None => (line, &line[line.len()..]),
        };
        let verb = verb.to_ascii_uppercase();
        match &verb[..] {
            b"HELO" => {
                self.set_helo(arg);
                Step::r(&reply::helo(&self.cfg.greeting))
            }
            b"EHLO" => {
                self.set_helo(arg);
                Step::r(&reply::ehlo(&self.cfg.greeting, &self.extensions()))
            }
            b"MAIL" => self.mail(p, arg),
            b"RCPT" => self.rcpt(p, arg),
            b"DATA" => self.data(),
            b"RSET" => {
                self.txn = None;
                Step::r(reply::FLUSHED)
            }
            b"NOOP" => Step::r(reply::OK),
            b"VRFY" => Step::r(reply::VRFY),
            b"HELP" => Step::r(reply::HELP),
            b"QUIT" => Step {
                reply: reply::quit(&self.cfg.greeting),
                outcome: Outcome::Quit,
            },
            b"STARTTLS" => {
                // Not offered without servercert.pem, but asked for anyway: the
                // server's attempt to load it gives the TLS patch's 454.
                if self.tls.is_some() || self.cfg.on_pipe {
                    Step::r(reply::UNIMPLEMENTED)
                } else if !arg.is_empty() {
                    Step::r(reply::STARTTLS_PARAMS)
                } else {
                    Step {
                        reply: reply::READY_FOR_TLS.to_vec(),
                        outcome: Outcome::StartTls,
                    }
                }
            }
            b"AUTH" => self.auth_start(p, arg),
            _ => self.bad_command(reply::UNIMPLEMENTED),
        }
    }

    fn bad_command(&mut self, r: &[u8]) -> Step {
        self.bad += 1;
        if self.bad >= MAX_BAD {
            Step::close(reply::TOO_MANY_ERRORS)
        } else {
            Step::r(r)
        }
    }

    fn set_helo(&mut self, arg: &[u8]) {
        self.helo = Some(ascii_or_mark(arg));
        self.txn = None;
    }

    fn auth_offered(&self) -> bool {
        self.cfg.auth && (self.tls.is_some() || !self.cfg.auth_needs_tls)
    }

    /// The EHLO keywords: the TLS patch's STARTTLS first, the AUTH patch's
    /// two lines (COMPAT 7), SIZE, then netqmail's PIPELINING and 8BITMIME.
    fn extensions(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.cfg.tls_offered && self.tls.is_none() {
            e.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            let mechs = if self.cfg.cram_md5_off {
                "LOGIN PLAIN"
            } else {
                "LOGIN CRAM-MD5 PLAIN"
            };
            e.push(format!("AUTH {mechs}"));
            e.push(format!("AUTH={mechs}"));
        }
        if self.cfg.databytes > 0 {
            e.push(format!("SIZE {}", self.cfg.databytes));
        } else {
            e.push("SIZE".to_string());
        }
        e.push("PIPELINING".to_string());
        e.push("8BITMIME".to_string());
        e
    }

    /// Relay rights: RELAYCLIENT, AUTH, or the open-smtp list (asked once).
    fn relay(&mut self, p: &mut dyn Policy) -> Option<String> {
        if let Some(r) = &self.cfg.relayclient {
            return Some(r.clone());
        }
        if self.auth_user.is_some() {
            return Some(String::new());
        }
        let open = *self.open.get_or_insert_with(|| p.relay_open());
        open.then(String::new)
    }

    /// addrparse plus the `user@[our IP]` rewrite.
    fn parse_addr(&self, p: &mut dyn Policy, arg: &[u8]) -> Option<Vec<u8>> {
        let mut a = addr::parse(arg)?;
        if let Some(at) = a.iter().rposition(|&b| b == b'@') {
            if let Some(ip) = addr::bracket_ip(&a[at + 1..]) {
                if p.is_my_ip(ip) {
                    a.truncate(at + 1);
                    a.extend_from_slice(self.cfg.localiphost.as_bytes());
                }
            }
        }
        Some(a)
    }

    fn mail(&mut self, p: &mut dyn Policy, arg: &[u8]) -> Step {
        let Some(from) = self.parse_addr(p, arg) else {
            return Step::r(reply::SYNTAX);
        };
        if self.cfg.databytes > 0 {
            if let Some(n) = addr::size_param(arg) {
                if n > self.cfg.databytes {
                    return Step::r(reply::TOO_BIG);
                }
            }
        }
        if self.cfg.mfcheck && !from.is_empty() && from != b"#@[]" && self.relay(p).is_none() {
            if let Some(d) = addr::domain(&from) {
                if !d.starts_with(b"[") && !p.rcpthosts(&from) {
                    match p.sender_domain(d) {
                        Verdict::Yes => {}
                        Verdict::No => return Step::r(&reply::sender_no_dns(&from)),
                        Verdict::Temporary => return Step::r(reply::SENDER_DNS_TEMP),
                    }
                }
            }
        }
        let bad_sender = p.badmailfrom(&from);
        self.txn = Some(Txn {
            from,
            rcpts: Vec::new(),
            bad_sender,
        });
        Step::r(reply::OK)
    }

    fn rcpt(&mut self, p: &mut dyn Policy, arg: &[u8]) -> Step {
        if self.txn.is_none() {
            return Step::r(reply::MAIL_FIRST);
        }
        let Some(mut to) = self.parse_addr(p, arg) else {
            return Step::r(reply::SYNTAX);
        };
        if to.is_empty() {
            return Step::r(reply::SYNTAX);
        }
        if self.txn.as_ref().is_some_and(|t| t.bad_sender) {
            return Step::r(reply::BADMAILFROM);
        }
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.rcpts.len() >= MAX_RCPTS)
        {
            return Step::r(reply::TOO_MANY_RCPTS);
        }
        // Ours without asking about relay rights first: the open-smtp list is
        // only read for recipients that need it.
        // A `!` is a route unless the whole address is a user of ours
        // (vpopmail allows `!` in names).
        let routed = addr::is_routed(&to) && !(addr::only_bang_routed(&to) && p.is_vpop_user(&to));
        let ours = p.rcpthosts(&to) && !routed;
        if ours && self.cfg.relayclient.is_none() && self.auth_user.is_none() {
            // A client the open-smtp list lets relay (read directly, where
            // tcpserver's rules would have set RELAYCLIENT) is not checked
            // either: the same rights however the list reaches us.
            if self.cfg.rcptcheck && self.relay(p).is_none() {
                match p.recipient(&to) {
                    Verdict::Yes => {}
                    Verdict::No => return Step::r(reply::NO_MAILBOX),
                    Verdict::Temporary => return Step::r(reply::RCPT_TEMP),
                }
            }
        } else if let Some(suffix) = self.relay(p) {
            to.extend_from_slice(suffix.as_bytes());
        } else {
            return Step::r(reply::NO_RELAY);
        }
        if let Some(t) = self.txn.as_mut() {
            t.rcpts.push(to);
        }
        Step::r(reply::OK)
    }

    fn data(&mut self) -> Step {
        match &self.txn {
            None => Step::r(reply::MAIL_FIRST),
            Some(t) if t.rcpts.is_empty() => Step::r(reply::RCPT_FIRST),
            Some(_) => Step {
                reply: Vec::new(),
                outcome: Outcome::Data,
            },
        }
    }

    fn auth_start(&mut self, p: &mut dyn Policy, arg: &[u8]) -> Step {
        if !self.cfg.auth {
            return Step::r(reply::AUTH_UNAVAILABLE);
        }
        if self.auth_user.is_some() {
            return Step::r(reply::AUTH_ALREADY);
        }
        if self.txn.is_some() {
            return Step::r(reply::AUTH_IN_MAIL);
        }
        if !self.auth_offered() {
            return Step::r(reply::AUTH_NEEDS_TLS);
        }
        let mut parts = arg.split(|&b| b == b' ').filter(|s| !s.is_empty());
        let mech = parts.next().unwrap_or_default().to_ascii_uppercase();
        let initial = parts.next();
        match &mech[..] {
            b"LOGIN" => match initial {
                None => {
                    self.auth = AuthStep::LoginUser;
                    Step::r(reply::AUTH_USERNAME)
                }
                Some(i) => match decode(i) {
                    Some(u) if !u.is_empty() => {
                        self.auth = AuthStep::LoginPass(u);
                        Step::r(reply::AUTH_PASSWORD)
                    }
                    _ => Step::r(reply::AUTH_MALFORMED),
                },
            },
            b"PLAIN" => match initial {
                None => {
                    self.auth = AuthStep::Plain;
                    Step::r(reply::AUTH_PLAIN_GO)
                }
                Some(b"=") => self.plain(p, b""),
                Some(i) => match decode(i) {
                    Some(d) => self.plain(p, &d),
                    None => Step::r(reply::AUTH_MALFORMED),
                },
            },
            b"CRAM-MD5" if !self.cfg.cram_md5_off => {
                let now = p.now();
                let ch = format!("<{}.{}@{}>", self.cfg.pid, now, self.cfg.hostname);
                let line = reply::challenge(&B64.encode(ch.as_bytes()));
                self.auth = AuthStep::Cram(ch);
                Step::r(&line)
            }
            // No mechanism matches none of the patch's table: 504.
            _ => Step::r(reply::AUTH_TYPE),
        }
    }

    fn auth_continue(&mut self, p: &mut dyn Policy, line: &[u8]) -> Step {
        let step = std::mem::replace(&mut self.auth, AuthStep::None);
        if line == b"*" {
            return Step::r(reply::AUTH_CANCELED);
        }
        let Some(d) = decode(line) else {
            return Step::r(reply::AUTH_MALFORMED);
        };
        match step {
            AuthStep::None => Step::r(reply::AUTH_MALFORMED),
            AuthStep::LoginUser => {
                if d.is_empty() {
                    return Step::r(reply::AUTH_MALFORMED);
                }
                self.auth = AuthStep::LoginPass(d);
                Step::r(reply::AUTH_PASSWORD)
            }
            AuthStep::LoginPass(user) => self.check(p, &user, &d, b""),
            AuthStep::Plain => self.plain(p, &d),
            AuthStep::Cram(ch) => {
                // "user hexdigest": the user may not contain a space, the digest is last.
                let Some(sp) = d.iter().rposition(|&b| b == b' ') else {
                    return Step::r(reply::AUTH_MALFORMED);
                };
                let (user, digest) = (&d[..sp], &d[sp + 1..]);
                if user.is_empty() || digest.is_empty() {
                    return Step::r(reply::AUTH_MALFORMED);
                }
                self.check(p, user, digest, ch.as_bytes())
            }
        }
    }

    /// PLAIN: `authzid NUL user NUL pass`.
    fn plain(&mut self, p: &mut dyn Policy, d: &[u8]) -> Step {
        let mut f = d.split(|&b| b == 0);
        let (authz, user, pass) = (f.next(), f.next(), f.next());
        match (user, pass, f.next()) {
            // RFC 4616: acting as another identity than the one whose password
            // is given is refused (nobody here may), as qmail-popup refuses it.
            (Some(u), Some(pw), None)
                if !pw.is_empty()
                    && authz.is_some_and(|z| !z.is_empty() && !z.eq_ignore_ascii_case(u)) =>
            {
                p.auth_failed();
                Step::r(reply::AUTH_FAILED)
            }
            (Some(u), Some(pw), None) if !u.is_empty() && !pw.is_empty() => {
                let (u, pw) = (u.to_vec(), pw.to_vec());
                self.check(p, &u, &pw, b"")
            }
            _ => Step::r(reply::AUTH_MALFORMED),
        }
    }

    fn check(&mut self, p: &mut dyn Policy, user: &[u8], pass: &[u8], ch: &[u8]) -> Step {
        if user.is_empty() || pass.is_empty() {
            return Step::r(reply::AUTH_MALFORMED);
        }
        match p.check_password(user, pass, ch) {
            Ok(true) => {
                self.auth_user = Some(ascii_or_mark(user));
                Step::r(reply::AUTH_OK)
            }
            Ok(false) => {
                p.auth_failed();
                Step::r(reply::AUTH_FAILED)
            }
            Err(_) => Step::r(reply::AUTH_CHILD),
        }
    }
}

fn decode(s: &[u8]) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// Bytes for the Received line: each byte outside ASCII becomes one `?`, as
/// qmail's safeput makes it (a lossy UTF-8 reading would make three).
fn ascii_or_mark(b: &[u8]) -> String {
    b.iter()
        .map(|&c| if c.is_ascii() { c as char } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests;
