//! Dialogs against a fake [`Policy`].

use super::*;

#[derive(Default)]
struct Fake {
    rcpthosts: Vec<&'static str>,
    bmf: Vec<String>,
    open: bool,
    users: Vec<&'static str>,
    nodns: Vec<&'static str>,
    tempdns: Vec<&'static str>,
    password: &'static str,
    checks: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    failed: u32,
    child_broken: bool,
}

impl Policy for Fake {
    fn badmailfrom(&mut self, a: &[u8]) -> bool {
        addr::badmailfrom(&self.bmf, a)
    }
    fn rcpthosts(&mut self, a: &[u8]) -> bool {
        match addr::domain(a) {
            None => true,
            Some(d) => addr::rcpthosts_keys(d)
                .iter()
                .any(|k| self.rcpthosts.iter().any(|r| r.as_bytes() == &k[..])),
        }
    }
    fn is_my_ip(&mut self, ip: IpAddr) -> bool {
        ip.to_string() == "127.0.0.1"
    }
    fn relay_open(&mut self) -> bool {
        self.open
    }
    fn sender_domain(&mut self, d: &[u8]) -> Verdict {
        let d = String::from_utf8_lossy(d);
        let d = d.as_ref();
        if self.nodns.contains(&d) {
            Verdict::No
        } else if self.tempdns.contains(&d) {
            Verdict::Temporary
        } else {
            Verdict::Yes
        }
    }
    fn recipient(&mut self, a: &[u8]) -> Verdict {
        let a = String::from_utf8_lossy(a);
        let a = a.as_ref();
        if !a.ends_with("@example.test") || self.users.contains(&a) {
            Verdict::Yes
        } else {
            Verdict::No
        }
    }
    fn check_password(&mut self, u: &[u8], pw: &[u8], ch: &[u8]) -> Result<bool, String> {
        if self.child_broken {
            return Err("no child".into());
        }
        self.checks.push((u.to_vec(), pw.to_vec(), ch.to_vec()));
        Ok(u == b"joe@example.test" && pw == self.password.as_bytes())
    }
    fn auth_failed(&mut self) {
        self.failed += 1;
    }
    fn now(&mut self) -> i64 {
        1700000000
    }
}

fn cfg() -> Config {
    Config {
        greeting: "mx.example.test".into(),
        hostname: "mx.example.test".into(),
        localiphost: "localhost".into(),
        local_host: "mx.example.test".into(),
        remote_ip: "192.0.2.9".into(),
        remote_host: "unknown".into(),
        databytes: 1000,
        auth: true,
        tls_offered: true,
        on_pipe: false,
        mfcheck: true,
        rcptcheck: true,
        pid: 77,
        ..Config::default()
    }
}

fn fake() -> Fake {
    Fake {
        rcpthosts: vec!["example.test", "localhost", ".sub.test"],
        users: vec!["joe@example.test"],
        password: "secret",
        ..Fake::default()
    }
}

/// Sends each line, returns the replies as text.
fn talk(s: &mut Session, p: &mut Fake, lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let st = s.input(p, Input::Line(l.as_bytes()));
            String::from_utf8(st.reply).unwrap()
        })
        .collect()
}

fn one(s: &mut Session, p: &mut Fake, l: &str) -> String {
    talk(s, p, &[l]).remove(0)
}

#[test]
fn basic_dialog() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    assert_eq!(s.greeting(), b"220 mx.example.test ESMTP\r\n");
    assert_eq!(
        one(&mut s, &mut p, "EHLO client"),
        "250-mx.example.test\r\n250-STARTTLS\r\n250-AUTH LOGIN CRAM-MD5 PLAIN\r\n\
         250-AUTH=LOGIN CRAM-MD5 PLAIN\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    );
    let r = talk(
        &mut s,
        &mut p,
        &[
            "DATA",
            "RCPT TO:<joe@example.test>",
            "MAIL FROM:<a@b.example>",
            "DATA",
        ],
    );
    assert_eq!(
        r,
        [
            "503 MAIL first (#5.5.1)\r\n",
            "503 MAIL first (#5.5.1)\r\n",
            "250 ok\r\n",
            "503 RCPT first (#5.5.1)\r\n"
        ]
    );
    assert_eq!(
        one(&mut s, &mut p, "rcpt to:<joe@example.test>"),
        "250 ok\r\n"
    );
    let st = s.input(&mut p, Input::Line(b"DATA\r"));
    assert_eq!(st.outcome, Outcome::Data);
    let (from, rcpts) = s.envelope().unwrap();
    assert_eq!(from, b"a@b.example");
    assert_eq!(rcpts, &[b"joe@example.test".to_vec()]);
    assert_eq!(
        s.received(812090814),
        "Received: from unknown (HELO client) (192.0.2.9)\n  by mx.example.test with SMTP; 26 Sep 1995 04:46:54 -0000\n"
    );
    assert_eq!(s.data_started(true).reply, b"354 go ahead\r\n");
    assert_eq!(
        s.data_end(DataEnd::Queued { time: 5, qp: 9 }).reply,
        b"250 ok 5 qp 9\r\n"
    );
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<joe@example.test>"),
        "503 MAIL first (#5.5.1)\r\n"
    );
    let r = talk(
        &mut s,
        &mut p,
        &["NOOP", "VRFY x", "HELP", "RSET", "HELO x"],
    );
    assert_eq!(
        r,
        [
            "250 ok\r\n",
            "252 send some mail, i'll try my best\r\n",
            "214 netqmail home page: http://qmail.org/netqmail\r\n",
            "250 flushed\r\n",
            "250 mx.example.test\r\n"
        ]
    );
    let st = s.input(&mut p, Input::Line(b"QUIT"));
    assert_eq!(
        (st.reply, st.outcome),
        (b"221 mx.example.test\r\n".to_vec(), Outcome::Quit)
    );
}

#[test]
fn relay_refused_without_rights() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    for to in [
        "RCPT TO:<victim@evil.example>",
        "RCPT TO:<victim%evil.example@localhost>",
        "RCPT TO:<evil.example!victim@localhost>",
        "RCPT TO:<evil.example!victim>",
        "RCPT TO:<\"victim@evil.example\"@localhost>",
        "RCPT TO:<@localhost:victim@evil.example>",
        "RCPT TO:<victim@[192.0.2.1]>",
        "RCPT TO:<victim@evil.example.>",
        "RCPT TO:<VICTIM@EVIL.EXAMPLE>",
        "RCPT TO:victim@evil.example",
        "RCPT TO:<victim%evil.example@[127.0.0.1]>",
        "RCPT TO:<victim@localhost@evil.example>",
        "RCPT TO:<victim@sub.test>",
    ] {
        assert_eq!(
            one(&mut s, &mut p, to),
            "553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n",
            "{to}"
        );
    }
    assert_eq!(one(&mut s, &mut p, "RCPT TO:<x@a.sub.test>"), "250 ok\r\n");
    assert_eq!(one(&mut s, &mut p, "RCPT TO:<x@LocalHost>"), "250 ok\r\n");
    assert_eq!(one(&mut s, &mut p, "RCPT TO:<postmaster>"), "250 ok\r\n");
    assert_eq!(one(&mut s, &mut p, "RCPT TO:<x@[127.0.0.1]>"), "250 ok\r\n");
    assert_eq!(s.envelope().unwrap().1.last().unwrap(), b"x@localhost");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<nobody@example.test>"),
        "550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
    );
}

#[test]
fn rcptcheck_leaves_clients_with_relay_rights_alone() {
    // POP-before-SMTP through the open-smtp list read directly: the same as
    // RELAYCLIENT from tcpserver's rules, so an unknown local user is taken
    // (and bounced later), as for an authenticated client.
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    p.open = true;
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<nobody@example.test>"),
        "250 ok\r\n"
    );
    let mut c = cfg();
    c.relayclient = Some(String::new());
    let mut s = Session::new(c, None);
    let mut p = fake();
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<nobody@example.test>"),
        "250 ok\r\n"
    );
}

#[test]
fn relay_with_rights() {
    // RELAYCLIENT: its value is appended.
    let mut c = cfg();
    c.relayclient = Some("+x".into());
    let mut s = Session::new(c, None);
    let mut p = fake();
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<victim%evil.example@localhost>"),
        "250 ok\r\n"
    );
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<v@evil.example>"),
        "250 ok\r\n"
    );
    assert_eq!(s.envelope().unwrap().1[1], b"v@evil.example+x");
    // open-smtp.
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    p.open = true;
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<v@evil.example>"),
        "250 ok\r\n"
    );
    assert_eq!(s.envelope().unwrap().1[0], b"v@evil.example");
}

#[test]
fn auth_mechanisms() {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let e = |s: &[u8]| B64.encode(s);
    // PLAIN inline.
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    let r = one(
        &mut s,
        &mut p,
        &format!("AUTH PLAIN {}", e(b"\0joe@example.test\0secret")),
    );
    assert_eq!(r, "235 ok, go ahead (#2.0.0)\r\n");
    // Another authorization identity than the login (RFC 4616): refused
    // without asking the checkpassword program; the login itself as one is fine.
    let mut s2 = Session::new(cfg(), None);
    let mut p2 = fake();
    let r = one(
        &mut s2,
        &mut p2,
        &format!(
            "AUTH PLAIN {}",
            e(b"boss@example.test\0joe@example.test\0secret")
        ),
    );
    assert_eq!(r, "535 authorization failed (#5.7.0)\r\n");
    assert!(p2.checks.is_empty() && p2.failed == 1);
    let r = one(
        &mut s2,
        &mut p2,
        &format!(
            "AUTH PLAIN {}",
            e(b"joe@example.test\0joe@example.test\0secret")
        ),
    );
    assert_eq!(r, "235 ok, go ahead (#2.0.0)\r\n");
    assert_eq!(
        p.checks[0],
        (b"joe@example.test".to_vec(), b"secret".to_vec(), vec![])
    );
    assert_eq!(
        one(&mut s, &mut p, "AUTH PLAIN"),
        "503 you're already authenticated (#5.5.0)\r\n"
    );
    one(&mut s, &mut p, "MAIL FROM:<joe@example.test>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<v@evil.example>"),
        "250 ok\r\n"
    );
    assert!(s
        .received(0)
        .contains("(joe@example.test@192.0.2.9)\n  by mx.example.test with ESMTPA;"));
    // PLAIN in two steps, wrong password: delayed 535.
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    assert_eq!(one(&mut s, &mut p, "AUTH PLAIN"), "334 \r\n");
    assert_eq!(
        one(&mut s, &mut p, &e(b"x\0joe@example.test\0wrong")),
        "535 authorization failed (#5.7.0)\r\n"
    );
    assert_eq!(p.failed, 1);
    // LOGIN in steps and with the user inline.
    let r = talk(
        &mut s,
        &mut p,
        &["AUTH LOGIN", &e(b"joe@example.test"), &e(b"secret")],
    );
    assert_eq!(
        r,
        [
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "235 ok, go ahead (#2.0.0)\r\n"
        ]
    );
    let mut s = Session::new(cfg(), None);
    let r = talk(
        &mut s,
        &mut p,
        &[
            &format!("AUTH login {}", e(b"joe@example.test")),
            &e(b"secret"),
        ],
    );
    assert_eq!(r, ["334 UGFzc3dvcmQ6\r\n", "235 ok, go ahead (#2.0.0)\r\n"]);
    // CRAM-MD5: user, digest and challenge go to the program.
    let mut s = Session::new(cfg(), None);
    let r = one(&mut s, &mut p, "AUTH CRAM-MD5");
    let ch = B64
        .decode(r.trim_end().strip_prefix("334 ").unwrap())
        .unwrap();
    assert_eq!(ch, b"<77.1700000000@mx.example.test>");
    p.password = "abcdef0123";
    assert_eq!(
        one(&mut s, &mut p, &e(b"joe@example.test abcdef0123")),
        "235 ok, go ahead (#2.0.0)\r\n"
    );
    assert_eq!(p.checks.last().unwrap().2, ch);
    // Errors.
    let mut s = Session::new(cfg(), None);
    let r = talk(
        &mut s,
        &mut p,
        &[
            "AUTH LOGIN",
            "*",
            "AUTH LOGIN",
            "!!notbase64",
            "AUTH PLAIN ###",
            "AUTH X",
            "AUTH",
            "AUTH PLAIN",
            &e(b"onlyuser"),
        ],
    );
    assert_eq!(
        r,
        [
            "334 VXNlcm5hbWU6\r\n",
            "501 auth exchange canceled (#5.0.0)\r\n",
            "334 VXNlcm5hbWU6\r\n",
            "501 malformed auth input (#5.5.4)\r\n",
            "501 malformed auth input (#5.5.4)\r\n",
            "504 auth type unimplemented (#5.5.1)\r\n",
            "504 auth type unimplemented (#5.5.1)\r\n",
            "334 \r\n",
            "501 malformed auth input (#5.5.4)\r\n",
        ]
    );
    one(&mut s, &mut p, "MAIL FROM:<>");
    assert_eq!(
        one(&mut s, &mut p, "AUTH LOGIN"),
        "503 no auth during mail transaction (#5.5.0)\r\n"
    );
    p.child_broken = true;
    let mut s = Session::new(cfg(), None);
    assert_eq!(
        one(&mut s, &mut p, &format!("AUTH PLAIN {}", e(b"\0a\0b"))),
        "454 oops, problem with child and I can't auth (#4.3.0)\r\n"
    );
    let mut c = cfg();
    c.auth = false;
    let mut s = Session::new(c, None);
    assert_eq!(
        one(&mut s, &mut p, "AUTH LOGIN"),
        "503 auth not available (#5.3.3)\r\n"
    );
    assert!(!one(&mut s, &mut p, "EHLO x").contains("AUTH"));
}

#[test]
fn auth_needs_tls_when_configured() {
    let mut c = cfg();
    c.auth_needs_tls = true;
    let mut s = Session::new(c, None);
    let mut p = fake();
    assert!(!one(&mut s, &mut p, "EHLO x").contains("AUTH"));
    assert_eq!(
        one(&mut s, &mut p, "AUTH LOGIN"),
        "538 encryption required for requested authentication mechanism (#5.7.11)\r\n"
    );
    let st = s.input(&mut p, Input::Line(b"STARTTLS"));
    assert_eq!(st.outcome, Outcome::StartTls);
    s.tls_started("TLSv1_3:X".into());
    let e = one(&mut s, &mut p, "EHLO x");
    assert!(e.contains("AUTH LOGIN") && !e.contains("STARTTLS"));
    assert_eq!(
        one(&mut s, &mut p, "STARTTLS"),
        "502 unimplemented (#5.5.1)\r\n"
    );
    assert_eq!(one(&mut s, &mut p, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
}

#[test]
fn cram_md5_can_be_left_out() {
    let mut c = cfg();
    c.cram_md5_off = true;
    let mut s = Session::new(c, None);
    let mut p = fake();
    let e = one(&mut s, &mut p, "EHLO x");
    assert!(
        e.contains("250-AUTH LOGIN PLAIN\r\n250-AUTH=LOGIN PLAIN\r\n"),
        "{e}"
    );
    assert_eq!(
        one(&mut s, &mut p, "AUTH CRAM-MD5"),
        "504 auth type unimplemented (#5.5.1)\r\n"
    );
    assert_eq!(one(&mut s, &mut p, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
}

#[test]
fn tls_resets_state() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    one(&mut s, &mut p, "EHLO x");
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    s.input(&mut p, Input::Line(b"STARTTLS"));
    s.tls_started("C".into());
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<joe@example.test>"),
        "503 MAIL first (#5.5.1)\r\n"
    );
    one(&mut s, &mut p, "MAIL FROM:<a@b.example>");
    one(&mut s, &mut p, "RCPT TO:<joe@example.test>");
    assert!(s
        .received(0)
        .contains("(192.0.2.9)\n  by mx.example.test with ESMTPS (C encrypted);"));
}

#[test]
fn sender_checks() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    p.bmf = vec!["spam@x.example".into(), "@bad.example".into()];
    p.nodns = vec!["nx.example"];
    p.tempdns = vec!["slow.example"];
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@nx.example>"),
        "553 Non-existing DNS_MX: MAIL FROM:<a@nx.example> (#5.1.8)\r\n"
    );
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@slow.example>"),
        "451 temporary DNS failure checking the sender domain (#4.4.3)\r\n"
    );
    assert_eq!(one(&mut s, &mut p, "MAIL FROM:<>"), "250 ok\r\n");
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@nx.example>"),
        "553 Non-existing DNS_MX: MAIL FROM:<a@nx.example> (#5.1.8)\r\n"
    );
    // MAIL is accepted, RCPT refused (qmail's order).
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<SPAM@x.example>"),
        "250 ok\r\n"
    );
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<joe@example.test>"),
        "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
    );
    one(&mut s, &mut p, "MAIL FROM:<joe@bad.example>");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<joe@example.test>"),
        "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
    );
    // Local senders are not looked up; relay clients are not checked.
    p.nodns.push("example.test");
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<joe@example.test>"),
        "250 ok\r\n"
    );
    let mut c = cfg();
    c.relayclient = Some(String::new());
    let mut s = Session::new(c, None);
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@nx.example>"),
        "250 ok\r\n"
    );
}

#[test]
fn size_and_syntax_limits() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@b.example> SIZE=1001"),
        "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
    );
    assert_eq!(
        one(&mut s, &mut p, "MAIL FROM:<a@b.example> SIZE=1000"),
        "250 ok\r\n"
    );
    let long = format!("RCPT TO:<{}@example.test>", "a".repeat(900));
    assert_eq!(one(&mut s, &mut p, &long), "555 syntax error (#5.5.4)\r\n");
    assert_eq!(
        one(&mut s, &mut p, "RCPT TO:<>"),
        "555 syntax error (#5.5.4)\r\n"
    );
    assert_eq!(
        s.data_end(DataEnd::TooBig).reply,
        b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
    );
    let st = s.data_end(DataEnd::BareLf);
    assert_eq!(
        (st.reply, st.outcome),
        (
            b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n".to_vec(),
            Outcome::Close
        )
    );
}

#[test]
fn three_bad_commands_then_421() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    assert_eq!(
        one(&mut s, &mut p, "GET / HTTP/1.0"),
        "502 unimplemented (#5.5.1)\r\n"
    );
    assert_eq!(
        s.input(&mut p, Input::TooLong).reply,
        b"500 sorry, command line too long (#5.5.2)\r\n"
    );
    let st = s.input(&mut p, Input::Line(b"NOOP\0x"));
    assert_eq!(
        st.reply,
        b"421 too many bad commands, closing connection (#4.7.0)\r\n"
    );
    assert_eq!(st.outcome, Outcome::Close);
    let mut s = Session::new(cfg(), None);
    assert_eq!(
        one(&mut s, &mut p, "NOOP\0"),
        "501 sorry, NUL byte in command (#5.5.2)\r\n"
    );
}

/// A reader handing out its input in chunks of a fixed size.
struct Chunked<'a>(&'a [u8], usize);
impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Runs a whole pipelined client script through the line reader, the
/// session and the DATA decoder the way the driver does; returns the
/// transcript of replies and the stored messages.
fn run_script(script: &[u8], chunk: usize) -> (String, Vec<Vec<u8>>) {
    use crate::io::{Line, LineReader};
    use crate::smtp::data::{Decoder, Progress};
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    let mut rd = LineReader::new(Chunked(script, chunk));
    let mut out = s.greeting();
    let mut msgs = Vec::new();
    'session: loop {
        let line = match rd.read_line(MAX_LINE + 1).unwrap() {
            Line::Eof => break,
            Line::TooLong => None,
            Line::Line(l) => Some(l),
        };
        let st = match &line {
            Some(l) => s.input(&mut p, Input::Line(l)),
            None => s.input(&mut p, Input::TooLong),
        };
        out.extend_from_slice(&st.reply);
        match st.outcome {
            Outcome::Continue => {}
            Outcome::Quit | Outcome::Close | Outcome::StartTls => break,
            Outcome::Data => {
                out.extend_from_slice(&s.data_started(true).reply);
                let mut d = Decoder::new(s.config().databytes);
                let mut msg = Vec::new();
                let end = loop {
                    let buf = rd.fill_buf().unwrap();
                    if buf.is_empty() {
                        break 'session;
                    }
                    match d.feed(buf, &mut msg) {
                        Ok(Progress::More) => {
                            let n = buf.len();
                            rd.consume(n)
                        }
                        Ok(Progress::End(k)) => {
                            rd.consume(k);
                            break if d.overflowed() {
                                DataEnd::TooBig
                            } else {
                                DataEnd::Queued { time: 1, qp: 2 }
                            };
                        }
                        Err(_) => break DataEnd::BareLf,
                    }
                };
                if end == (DataEnd::Queued { time: 1, qp: 2 }) {
                    msgs.push(msg);
                }
                let st = s.data_end(end);
                out.extend_from_slice(&st.reply);
                if st.outcome == Outcome::Close {
                    break;
                }
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), msgs)
}

#[test]
fn pipelined_dialog_in_every_chunking() {
    let long = format!("NOOP {}\r\n", "x".repeat(1200));
    let big = "y".repeat(1100);
    let script = format!(
        "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<joe@example.test>\r\nDATA\r\n\
         Subject: 1\r\n\r\n..dot\r\nbare\rcr\r\n.\r\n\
         MAIL FROM:<a@b.example>\r\nRCPT TO:<joe@example.test>\r\nDATA\r\n{big}\r\n.\r\n\
         {long}RSET\r\nMAIL FROM:<>\r\nRCPT TO:<joe@example.test>\r\nDATA\r\nx\n.\r\nNOOP\r\n"
    );
    let want = "220 mx.example.test ESMTP\r\n250-mx.example.test\r\n250-STARTTLS\r\n\
                250-AUTH LOGIN CRAM-MD5 PLAIN\r\n250-AUTH=LOGIN CRAM-MD5 PLAIN\r\n\
                250-SIZE 1000\r\n250-PIPELINING\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n250 ok 1 qp 2\r\n\
                250 ok\r\n250 ok\r\n354 go ahead\r\n\
                552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n\
                500 sorry, command line too long (#5.5.2)\r\n250 flushed\r\n250 ok\r\n250 ok\r\n\
                354 go ahead\r\n451 See http://pobox.com/~djb/docs/smtplf.html.\r\n";
    for n in [1, 2, 3, 4, 5, 7, 8, 13, 16, 64, 100, 256, 512] {
        let (t, msgs) = run_script(script.as_bytes(), n);
        assert_eq!(t, want, "chunk {n}");
        assert_eq!(
            msgs,
            vec![b"Subject: 1\n\n.dot\nbare\rcr\n".to_vec()],
            "chunk {n}"
        );
    }
}

#[test]
fn fuzzed_dialogs_do_not_depend_on_chunking() {
    let seed = "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<joe@example.test>\r\n\
                RCPT TO:<x@elsewhere.example>\r\nDATA\r\nSubject: 1\r\n\r\n..dot\r\n.\r\n\
                AUTH PLAIN AGpvZQBzZWNyZXQ=\r\nRSET\r\nHELO x\r\nVRFY joe\r\nNOOP\r\nQUIT\r\n";
    let auth = "EHLO c\r\nAUTH LOGIN\r\nam9l\r\nc2VjcmV0\r\nAUTH CRAM-MD5\r\n*\r\nSTARTTLS\r\n";
    crate::fuzz::run(
        "smtp-session",
        &[seed.as_bytes(), auth.as_bytes()],
        &[
            b"\r\n",
            b"\n",
            b"\r\n.\r\n",
            b"\n.\n",
            b"DATA\r\n",
            b"MAIL FROM:<",
            b"RCPT TO:<",
            b"AUTH PLAIN ",
            b"AUTH LOGIN\r\n",
            b"STARTTLS\r\n",
            b"BDAT 10\r\n",
            b"*\r\n",
            b"QUIT\r\n",
            b"HELO",
            b"@[127.0.0.1]",
            b"%",
            b"!",
        ],
        4000,
        |input| {
            let (t, msgs) = run_script(input, input.len().max(1));
            for n in [1, 3, 64] {
                assert_eq!(
                    run_script(input, n),
                    (t.clone(), msgs.clone()),
                    "pieces of {n}"
                );
            }
            for line in t.split_terminator("\r\n") {
                let b = line.as_bytes();
                assert!(
                    b.len() >= 4
                        && b[..3].iter().all(u8::is_ascii_digit)
                        && (b[3] == b' ' || b[3] == b'-'),
                    "reply line {line:?}"
                );
            }
            assert!(t.ends_with("\r\n"));
            assert!(msgs.len() <= t.matches("354 ").count());
        },
    );
}

#[test]
fn received_marks_each_non_ascii_byte_once() {
    let mut s = Session::new(cfg(), None);
    let mut p = fake();
    s.input(&mut p, Input::Line(b"HELO x\xe9\xc3\xa9y"));
    assert!(s
        .received(0)
        .starts_with("Received: from unknown (HELO x???y) (192.0.2.9)\n"));
}
