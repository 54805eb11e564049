//! qmail-popup's session before authentication, as a pure state machine:
//! lines in, replies and an [`Action`] out.
//!
//! Commands (COMPAT section 9, RFC 1939, 2449, 2595, 5034): USER, PASS, APOP,
//! AUTH PLAIN, CAPA, STLS, NOOP, QUIT; anything else is answered
//! `-ERR authorization first`. A PASS, APOP or AUTH gives [`Action::Login`]: the
//! caller runs the checkpassword program once and the connection ends with it
//! (qmail's one attempt per connection).

use base64::Engine;

use super::command::{self, Bad};
use super::reply;

/// Login name, password (or APOP digest) for the checkpassword program.
#[derive(PartialEq, Eq)]
pub struct Credentials {
    /// The login as typed.
    pub login: Vec<u8>,
    /// The password, or the APOP digest.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &String::from_utf8_lossy(&self.login))
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The checkpassword record for fd 3: `login\0password\0timestamp\0`.
    pub fn record(&self, timestamp: &str) -> Vec<u8> {
        let mut v =
            Vec::with_capacity(self.login.len() + self.password.len() + timestamp.len() + 3);
        v.extend_from_slice(&self.login);
        v.push(0);
        v.extend_from_slice(&self.password);
        v.push(0);
        v.extend_from_slice(timestamp.as_bytes());
        v.push(0);
        v
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        // Do not leave the password lying in freed memory (qmail's byte_zero).
        self.password.iter_mut().for_each(|b| *b = 0);
    }
}

/// What the caller does after sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the next line.
    Continue,
    /// Close the connection.
    Close,
    /// Run the TLS handshake, then read the next line.
    StartTls,
    /// Run the checkpassword program with these credentials (no reply is sent
    /// first: the server behind checkpassword answers on success).
    Login(Credentials),
}

/// A reply and what to do next.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes to send (may be empty).
    pub reply: Vec<u8>,
    /// The next action.
    pub action: Action,
}

impl Step {
    fn reply(r: &[u8]) -> Step {
        Step {
            reply: r.to_vec(),
            action: Action::Continue,
        }
    }
}

/// What the session knows about its connection.
#[derive(Clone, Debug)]
pub struct Options {
    /// A certificate is configured, so STLS can be offered.
    pub tls_available: bool,
    /// TLS is already on (POP3S, or after STLS).
    pub tls_active: bool,
    /// The poll limit in seconds (0 = off), for CAPA's LOGIN-DELAY.
    pub login_delay: u64,
    /// `control/pop3apop` 0: no APOP (no timestamp in the greeting, the
    /// command unimplemented), for a host that stores no clear passwords.
    pub apop_off: bool,
}

/// The pre-authentication session.
pub struct Popup {
    opts: Options,
    user: Option<Vec<u8>>,
    awaiting_plain: bool,
}

impl Popup {
    /// A new session.
    pub fn new(opts: Options) -> Popup {
        Popup {
            opts,
            user: None,
            awaiting_plain: false,
        }
    }

    /// Marks TLS as active (after a successful STLS handshake); the session
    /// forgets what it was told before (RFC 2595 section 4).
    pub fn tls_started(&mut self) {
        self.opts.tls_active = true;
        self.user = None;
        self.awaiting_plain = false;
    }

    /// The longest line the next read may return: a SASL response may be
    /// longer than a command.
    pub fn line_limit(&self) -> usize {
        if self.awaiting_plain {
            command::MAX_SASL_LINE
        } else {
            command::MAX_LINE
        }
    }

    /// Answer to a line that was over the bound (the reader discarded it).
    pub fn too_long(&mut self) -> Step {
        self.awaiting_plain = false;
        Step::reply(reply::TOO_LONG)
    }

    /// Handles one line (without its LF). `more_buffered` says whether further
    /// bytes already arrived after it (pipelining; refused after STLS).
    pub fn line(&mut self, line: &[u8], more_buffered: bool) -> Step {
        if self.awaiting_plain {
            self.awaiting_plain = false;
            return self.sasl_response(command::strip_cr(line));
        }
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(Bad::TooLong) => return Step::reply(reply::TOO_LONG),
            Err(Bad::Nul) => return Step::reply(reply::NUL_BYTE),
        };
        let arg = cmd.arg;
        match cmd.verb.as_str() {
            "user" => {
                if arg.is_empty() {
                    return Step::reply(reply::SYNTAX);
                }
                self.user = Some(arg.to_vec());
                Step::reply(reply::OK)
            }
            "pass" => {
                let Some(user) = &self.user else {
                    return Step::reply(reply::USER_FIRST);
                };
                if arg.is_empty() {
                    return Step::reply(reply::SYNTAX);
                }
                Self::login(user.clone(), arg.to_vec())
            }
            "apop" if self.opts.apop_off => Step::reply(reply::UNIMPLEMENTED),
            "apop" => {
                let Some(sp) = arg.iter().position(|&b| b == b' ') else {
                    return Step::reply(reply::SYNTAX);
                };
                Self::login(arg[..sp].to_vec(), arg[sp + 1..].to_vec())
            }
            "auth" => self.auth(arg),
            "capa" => Step {
                reply: reply::capa(
                    true,
                    self.opts.tls_available && !self.opts.tls_active,
                    self.opts.login_delay,
                ),
                action: Action::Continue,
            },
            "stls" => {
                if self.opts.tls_active {
                    Step::reply(reply::STLS_ACTIVE)
                } else if !arg.is_empty() {
                    // RFC 2595: STLS takes no arguments.
                    Step::reply(reply::STLS_ARGS)
                } else if !self.opts.tls_available {
                    Step::reply(reply::STLS_UNAVAILABLE)
                } else if more_buffered {
                    Step {
                        reply: reply::STLS_PIPELINED.to_vec(),
                        action: Action::Close,
                    }
                } else {
                    Step {
                        reply: reply::STLS_GO.to_vec(),
                        action: Action::StartTls,
                    }
                }
            }
            "noop" => Step::reply(reply::OK),
            "quit" => Step {
                reply: reply::OK.to_vec(),
                action: Action::Close,
            },
            _ => Step::reply(reply::AUTH_FIRST),
        }
    }

    fn login(login: Vec<u8>, password: Vec<u8>) -> Step {
        Step {
            reply: Vec::new(),
            action: Action::Login(Credentials { login, password }),
        }
    }

    fn auth(&mut self, arg: &[u8]) -> Step {
        if arg.is_empty() {
            return Step::reply(reply::SASL_LIST);
        }
        let (mech, initial) = match arg.iter().position(|&b| b == b' ') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        if !mech.eq_ignore_ascii_case(b"PLAIN") {
            return Step::reply(reply::SASL_UNKNOWN);
        }
        match initial {
            Some(r) => self.sasl_response(r),
            None => {
                self.awaiting_plain = true;
                Step::reply(reply::SASL_GO_AHEAD)
            }
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64; `=` is empty.
    fn sasl_response(&mut self, r: &[u8]) -> Step {
        if r == b"*" {
            return Step::reply(reply::SASL_CANCELLED);
        }
        let decoded = if r == b"=" {
            Vec::new()
        } else {
            match base64::engine::general_purpose::STANDARD.decode(r) {
                Ok(d) => d,
                Err(_) => return Step::reply(reply::SASL_MALFORMED),
            }
        };
        let mut parts = decoded.splitn(3, |&b| b == 0);
        let (Some(authz), Some(authc), Some(pass)) = (parts.next(), parts.next(), parts.next())
        else {
            return Step::reply(reply::SASL_MALFORMED);
        };
        if authc.is_empty() || pass.is_empty() || pass.contains(&0) {
            return Step::reply(reply::SASL_MALFORMED);
        }
        if !authz.is_empty() && authz != authc {
            return Step::reply(reply::SASL_AUTHZID);
        }
        Self::login(authc.to_vec(), pass.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            tls_available: true,
            tls_active: false,
            login_delay: 60,
            apop_off: false,
        }
    }

    fn say(p: &mut Popup, line: &str) -> Step {
        p.line(line.as_bytes(), false)
    }

    fn creds(s: &Step) -> (&[u8], &[u8]) {
        match &s.action {
            Action::Login(c) => (&c.login, &c.password),
            a => panic!("no login: {a:?}"),
        }
    }

    #[test]
    fn qmail_dialog() {
        let mut p = Popup::new(opts());
        assert_eq!(say(&mut p, "PASS x\r").reply, b"-ERR USER first\r\n");
        assert_eq!(say(&mut p, "USER\r").reply, b"-ERR syntax error\r\n");
        assert_eq!(say(&mut p, "user  joe@example.com\r").reply, b"+OK \r\n");
        assert_eq!(say(&mut p, "PASS\r").reply, b"-ERR syntax error\r\n");
        assert_eq!(say(&mut p, "STAT\r").reply, b"-ERR authorization first\r\n");
        assert_eq!(say(&mut p, "NOOP\r").reply, b"+OK \r\n");
        let s = say(&mut p, "PASS pass with spaces\r");
        assert!(s.reply.is_empty());
        assert_eq!(
            creds(&s),
            (&b"joe@example.com"[..], &b"pass with spaces"[..])
        );
        let s = say(&mut p, "QUIT");
        assert_eq!(
            (s.reply.as_slice(), s.action),
            (&b"+OK \r\n"[..], Action::Close)
        );
    }

    #[test]
    fn apop() {
        let mut p = Popup::new(opts());
        assert_eq!(say(&mut p, "APOP joe\r").reply, b"-ERR syntax error\r\n");
        let s = say(&mut p, "APOP joe c4c9334bac560ecc979e58001b3e22fb\r");
        assert_eq!(
            creds(&s),
            (&b"joe"[..], &b"c4c9334bac560ecc979e58001b3e22fb"[..])
        );
        let c = Credentials {
            login: b"joe".to_vec(),
            password: b"pw".to_vec(),
        };
        assert_eq!(c.record("<1.2@h>"), b"joe\0pw\0<1.2@h>\0");
    }

    #[test]
    fn sasl_plain() {
        let mut p = Popup::new(opts());
        assert_eq!(say(&mut p, "AUTH").reply, b"+OK \r\nPLAIN\r\n.\r\n");
        assert_eq!(
            say(&mut p, "AUTH CRAM-MD5").reply,
            b"-ERR unrecognized authentication type\r\n"
        );
        // AGpvZQBzZWNyZXQ= is "\0joe\0secret".
        let s = say(&mut p, "AUTH PLAIN AGpvZQBzZWNyZXQ=\r");
        assert_eq!(creds(&s), (&b"joe"[..], &b"secret"[..]));
        assert_eq!(say(&mut p, "auth plain\r").reply, b"+ \r\n");
        // The response line is not a command, whatever it looks like.
        assert_eq!(
            say(&mut p, "QUIT").reply,
            b"-ERR malformed authentication data\r\n"
        );
        assert_eq!(say(&mut p, "AUTH PLAIN").reply, b"+ \r\n");
        assert_eq!(say(&mut p, "*").reply, b"-ERR authentication cancelled\r\n");
        assert_eq!(say(&mut p, "AUTH PLAIN").reply, b"+ \r\n");
        // "joe\0joe\0secret"
        let s = say(&mut p, "am9lAGpvZQBzZWNyZXQ=");
        assert_eq!(creds(&s), (&b"joe"[..], &b"secret"[..]));
        // "ann\0joe\0secret": another authorization identity
        let s = say(&mut p, "AUTH PLAIN YW5uAGpvZQBzZWNyZXQ=");
        assert_eq!(s.reply, reply::SASL_AUTHZID);
        assert_eq!(say(&mut p, "AUTH PLAIN =").reply, reply::SASL_MALFORMED);
    }

    #[test]
    fn stls_and_capa() {
        let mut p = Popup::new(opts());
        let capa = String::from_utf8(say(&mut p, "CAPA").reply).unwrap();
        assert!(capa.starts_with("+OK capability list follows\r\n"));
        for c in [
            "TOP\r\n",
            "UIDL\r\n",
            "USER\r\n",
            "SASL PLAIN\r\n",
            "STLS\r\n",
            "LOGIN-DELAY 60\r\n",
        ] {
            assert!(capa.contains(c), "{c}");
        }
        assert!(capa.ends_with("\r\n.\r\n"));
        let s = p.line(b"STLS\r", true);
        assert_eq!(
            (s.reply.as_slice(), s.action),
            (reply::STLS_PIPELINED, Action::Close)
        );
        let s = say(&mut p, "STLS\r");
        assert_eq!(s.action, Action::StartTls);
        say(&mut p, "USER joe");
        p.tls_started();
        assert_eq!(say(&mut p, "PASS x").reply, b"-ERR USER first\r\n");
        assert_eq!(say(&mut p, "STLS").reply, reply::STLS_ACTIVE);
        let mut q = Popup::new(opts());
        assert_eq!(say(&mut q, "STLS now").reply, reply::STLS_ARGS);
        assert!(!String::from_utf8(say(&mut p, "CAPA").reply)
            .unwrap()
            .contains("STLS"));
        let mut p = Popup::new(Options {
            tls_available: false,
            tls_active: false,
            login_delay: 0,
            apop_off: true,
        });
        assert_eq!(
            say(&mut p, "APOP joe c4c9334bac560ecc979e58001b3e22fb").reply,
            reply::UNIMPLEMENTED
        );
        assert_eq!(say(&mut p, "STLS").reply, reply::STLS_UNAVAILABLE);
        assert!(!String::from_utf8(say(&mut p, "CAPA").reply)
            .unwrap()
            .contains("LOGIN-DELAY"));
    }

    #[test]
    fn bad_lines() {
        let mut p = Popup::new(opts());
        assert_eq!(p.line(&[b'a'; 300], false).reply, reply::TOO_LONG);
        assert_eq!(say(&mut p, "USER a\0b").reply, reply::NUL_BYTE);
        assert_eq!(p.too_long().reply, reply::TOO_LONG);
    }

    #[test]
    fn random_lines_never_panic() {
        // A small xorshift generator: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let words: [&[u8]; 9] = [
            b"USER ",
            b"PASS ",
            b"APOP ",
            b"AUTH PLAIN ",
            b"CAPA",
            b"STLS",
            b"NOOP",
            b"*",
            b"=",
        ];
        let mut p = Popup::new(opts());
        for _ in 0..20_000 {
            let mut line = words[(next() % 9) as usize].to_vec();
            for _ in 0..next() % 40 {
                line.push((next() % 256) as u8);
            }
            let s = p.line(&line, next() % 2 == 0);
            if matches!(s.action, Action::StartTls) {
                p.tls_started();
            }
        }
    }
}
