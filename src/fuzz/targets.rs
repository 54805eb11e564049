//! Fuzz targets for the parsers of bytes from the network and from files
//! other users write. Each names the property it checks besides "no panic".
//! The SMTP server session, the DNS decoder and the certificate reader have
//! theirs next to their own test helpers.

use super::run;

const ROUNDS: usize = 3000;

#[test]
fn smtp_data_decoder_does_not_depend_on_chunking() {
    use crate::smtp::data::{Decoder, Progress};
    // Feeds `input` in pieces of `n`; returns the stored message, where the
    // final dot line ended, and the error, as the driver sees them.
    fn decode(input: &[u8], n: usize) -> (Vec<u8>, Option<usize>, bool, u32, bool) {
        let mut d = Decoder::new(64);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut end = None;
        let mut err = false;
        while pos < input.len() {
            let piece = &input[pos..(pos + n).min(input.len())];
            match d.feed(piece, &mut out) {
                Ok(Progress::More) => pos += piece.len(),
                Ok(Progress::End(k)) => {
                    assert!(k <= piece.len());
                    end = Some(pos + k);
                    break;
                }
                Err(_) => {
                    err = true;
                    break;
                }
            }
        }
        (out, end, err, d.hops(), d.overflowed())
    }
    run(
        "smtp-data",
        &[
            b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n",
            b"Received: a\r\nDelivered-To: b\r\n\r\nx\r\n.\r\n",
            b".\r\n",
            b"a\r\n.\n",
            b"a\n.\r\n",
            b"a\r.\r\n.\r\n",
        ],
        &[
            b"\r\n.\r\n",
            b"\r\n..",
            b"\n.\n",
            b"\r.\r",
            b"Received:",
            b"delivered-to:",
        ],
        ROUNDS,
        |input| {
            let whole = decode(input, input.len().max(1));
            for n in [1, 2, 3, 7] {
                assert_eq!(decode(input, n), whole, "pieces of {n}");
            }
            let (out, end, _, _, overflow) = whole;
            assert!(out.len() <= 64, "stored past the limit");
            assert!(!overflow || out.len() == 64 || end.is_none());
            if let Some(e) = end {
                // The message ends only after CRLF . CRLF (or . CRLF at the start).
                let i = &input[..e];
                assert!(i == b".\r\n" || i.ends_with(b"\r\n.\r\n"), "ended at {e}");
            }
            // No bare LF is ever stored.
            assert!(!input.contains(&b'\n') || whole.2 || input.windows(2).any(|w| w == b"\r\n"));
        },
    );
}

#[test]
fn smtp_addresses() {
    use crate::smtp::addr;
    run(
        "smtp-addr",
        &[
            b"FROM:<joe@example.com> SIZE=100",
            b"TO:<@a,@b:joe@example.com>",
            b"TO:joe@[127.0.0.1]",
            b"TO:<\"a b\"@x>",
            b"FROM:<> BODY=8BITMIME",
        ],
        &[
            b"<", b">", b"\"", b"\\", b"@", b",", b"SIZE=", b"[", b"]", b"%", b"!",
        ],
        ROUNDS,
        |input| {
            if let Some(a) = addr::parse(input) {
                let _ = addr::domain(&a);
                let _ = addr::local(&a);
                let _ = addr::is_routed(&a);
                let _ = addr::only_bang_routed(&a);
                let q = addr::quote2(&a);
                assert!(q.len() >= a.len());
                if let Some(d) = addr::domain(&a) {
                    let _ = addr::bracket_ip(d);
                    assert!(!addr::rcpthosts_keys(d).is_empty() || d.is_empty());
                }
                let _ = addr::badmailfrom(&["@x".into(), "a@b".into()], &a);
            }
            let _ = addr::size_param(input);
        },
    );
}

#[test]
fn pop3_commands() {
    use crate::pop3::command;
    run(
        "pop3-command",
        &[
            b"USER joe%example.com\r",
            b"RETR 1",
            b"TOP 1 10",
            b"APOP joe 0123456789abcdef",
        ],
        &[b"  ", b"RETR ", b"TOP ", b"UIDL ", b"DELE "],
        ROUNDS,
        |input| match command::parse(input) {
            Ok(c) => {
                assert!(!input.contains(&0));
                assert_eq!(c.verb, c.verb.to_ascii_lowercase());
                if let Some((n, rest)) = command::scan_ulong(c.arg) {
                    assert!(rest.len() < c.arg.len());
                    let _ = n;
                }
            }
            Err(_) => assert!(input.contains(&0) || input.len() > command::MAX_LINE),
        },
    );
}

#[test]
fn sasl_responses() {
    use crate::auth::sasl;
    run(
        "sasl",
        &[
            b"AGpvZQBwYXNz",
            b"am9l",
            b"am9lIDAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm",
            b"=",
            b"*",
        ],
        &[b"=", b"==", b"AA", b"+/", b" "],
        ROUNDS,
        |input| {
            if let Ok(d) = sasl::b64_decode(input) {
                assert_eq!(
                    sasl::b64_decode(sasl::b64_encode(&d).as_bytes()).ok(),
                    Some(d)
                );
            }
            // Any bytes, encoded, come back unchanged.
            assert_eq!(
                sasl::b64_decode(sasl::b64_encode(input).as_bytes())
                    .ok()
                    .as_deref(),
                Some(input)
            );
            let _ = sasl::decode_plain(input);
            let _ = sasl::decode_login(input);
            let _ = sasl::decode_cram(input);
        },
    );
}

#[test]
fn checkpassword_requests() {
    use crate::auth::checkpassword::{encode, parse_request};
    run(
        "checkpassword",
        &[b"joe@example.com\0pw\0<1.2@h>\0", b"joe\0pw\0", b"\0\0\0"],
        &[b"\0"],
        ROUNDS,
        |input| {
            if let Some(r) = parse_request(input) {
                assert!(!r.login.contains(&0) && !r.password.contains(&0));
                assert!(!r.challenge.contains(&0));
                if let Some(again) = encode(&r.login, &r.password, &r.challenge) {
                    let r2 = parse_request(&again).expect("encoded request parses");
                    assert_eq!(
                        (r2.login, r2.password, r2.challenge),
                        (r.login, r.password, r.challenge)
                    );
                }
            }
        },
    );
}

#[test]
fn queue_envelopes() {
    use crate::queue::enqueue::{envelope, parse_todo, read_envelope};
    run(
        "envelope",
        &[
            b"Fjoe@a\0Tbob@b\0Tann@c\0\0",
            b"F\0\0",
            b"u0\0p1\0Fa@b\0Tc@d\0",
        ],
        &[b"\0", b"F", b"T", b"u", b"p"],
        ROUNDS,
        |input| {
            if let Ok(e) = read_envelope(input) {
                // What qmail-queue read, written again, reads the same.
                let again = envelope(&e.sender, &e.recipients);
                let e2 = read_envelope(&again[..]).expect("written envelope reads");
                assert_eq!((e2.sender, e2.recipients), (e.sender, e.recipients));
            }
            let _ = parse_todo(input);
        },
    );
}

#[test]
fn dot_qmail_files() {
    use crate::deliver::dotqmail;
    run(
        "dot-qmail",
        &[
            b"./Maildir/\n",
            b"|/home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n",
            b"# comment\n&joe@example.com\njoe@example.com\n./mbox\n",
            b"\n",
        ],
        &[b"\n", b"|", b"&", b"./", b"/", b"#", b" \t"],
        ROUNDS,
        |input| {
            if let Ok(lines) = dotqmail::parse(input) {
                let body = input.strip_suffix(b"\n").unwrap_or(input);
                assert_eq!(lines.len(), body.split(|&b| b == b'\n').count());
            }
            let _ = dotqmail::safe_ext(input);
        },
    );
}

#[test]
fn maildirsize_files_and_quotas() {
    use crate::maildir::quota::{size_from_name, Quota, SizeFile};
    run(
        "maildirsize",
        &[
            b"52428800S,1000C\n1234 1\n-1234 -1\n",
            b"NOQUOTA\n",
            b"10485760S\n9223372036854775807 1\n9223372036854775807 1\n",
        ],
        &[b"S", b"C", b",", b"\n", b" ", b"-", b"9223372036854775807"],
        ROUNDS,
        |input| {
            let f = SizeFile::parse(input, 0);
            assert_eq!(f.len, input.len() as u64);
            if let Some(q) = Quota::parse(&f.definition) {
                // A quota written out reads back the same.
                assert_eq!(Quota::parse(&q.to_string()), Some(q), "{q}");
                let _ = q.percent(&f.usage);
            }
            let _ = size_from_name(&String::from_utf8_lossy(input));
        },
    );
}

#[test]
fn vpasswd_lines() {
    use crate::vpop::entry::Entry;
    run(
        "vpasswd",
        &[
            b"joe:$1$abc$def:1:0:Joe User:/home/vpopmail/domains/x/joe:52428800S,1000C:secret",
            b"postmaster:x:1:0::/d/postmaster:NOQUOTA",
            b"old:pw:0:0:g:/d/old",
        ],
        &[b":", b"NOQUOTA", b"S", b"\n", b"\r"],
        ROUNDS,
        |input| {
            let line = String::from_utf8_lossy(input);
            if let Ok(e) = Entry::parse(&line) {
                // A parsed line, written again, parses to the same entry.
                let again = Entry::parse(&e.to_line()).expect("written line parses");
                assert_eq!(again, e);
                let _ = e.maildir();
                let _ = e.clear_password();
            }
        },
    );
}

#[test]
fn tcprules_lines_and_values() {
    use crate::tcprules;
    run(
        "tcprules",
        &[
            b"127.:allow,RELAYCLIENT=\"\"",
            b"10.0.0.1-9:deny",
            b"=host.example:allow,X='a,b'",
            b"joe@1.2.3.4:allow",
            b":allow",
        ],
        &[b",", b"=", b"\"", b"'", b"-", b":", b"allow", b"deny", b"."],
        ROUNDS,
        |input| {
            if let Ok(Some(rule)) = tcprules::parse_line(input) {
                let d = tcprules::decode(&rule.data);
                assert!(d.env.iter().all(|(k, _)| !k.contains(&0)));
                if let Some(keys) = tcprules::expand(&rule.address) {
                    assert!(keys.len() <= 256 * 256 || keys.is_empty());
                }
            }
            let _ = tcprules::decode(input);
            let _ = tcprules::compile(input);
        },
    );
}

#[test]
fn users_assign() {
    use crate::vpop::assign;
    run(
        "assign",
        &[
            b"+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::\n.\n",
            b"=joe:joe:1000:1000:/home/joe:::\n.\n",
        ],
        &[b":", b"+", b"=", b"\n", b".\n", b"-"],
        ROUNDS,
        |input| {
            let _ = assign::compile(input);
            let s = String::from_utf8_lossy(input);
            for l in s.lines() {
                let _ = assign::parse_wild(l);
            }
            let _ = assign::split_data(input);
        },
    );
}

#[test]
fn cdb_files_however_damaged() {
    use crate::cdb::{Reader, Writer};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.cdb");
    let mut w = Writer::new();
    for i in 0..20u32 {
        w.add(format!("k{i}").as_bytes(), format!("value {i}").as_bytes());
    }
    let good = w.to_bytes().unwrap();
    run(
        "cdb",
        &[&good],
        &[b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x01\0\0\0"],
        400,
        |input| {
            std::fs::write(&path, input).unwrap();
            let Ok(r) = Reader::open(&path) else {
                return;
            };
            for k in [&b"k3"[..], b"k19", b"", b"none"] {
                let _ = r.get(k);
                let _ = r.get_all(k);
            }
            let _ = r.records();
        },
    );
}

#[test]
fn inject_headers_and_address_lists() {
    use crate::deliver::inject::{addr, read_header};
    let d = addr::Defaults {
        host: "example.com".into(),
        domain: "example.com".into(),
        plus: "plus.example".into(),
    };
    run(
        "inject-header",
        &[
            b"To: joe, \"A B\" <ann@x>, list: a@b, c; (comment) d@e\nSubject: x\n\nbody\n",
            b"From: Joe <joe>\nCc: <@route:x@y>\n\n",
            b"To: a\n continued@x\n\n",
        ],
        &[
            b",", b"\"", b"(", b")", b"<", b">", b":", b";", b"\\", b"\n ", b"@",
        ],
        ROUNDS,
        |input| {
            let mut r = input;
            if let Ok((head, _body)) = read_header(&mut r) {
                assert!(head.len() <= input.len() + 1);
            }
            let value = String::from_utf8_lossy(input);
            let (out, addrs) = addr::rewrite_list(&value, &d);
            // Folding changes lines, never the addresses.
            let (folded, again) = addr::rewrite_list_folded(&value, &d, 4);
            assert_eq!(again, addrs);
            assert!(folded.len() <= out.len() + 2 * out.matches(',').count());
            assert!(addrs.len() <= value.len() + 1);
            assert!(
                out.len()
                    <= value.len()
                        + addrs.len() * (d.host.len() + d.domain.len() + d.plus.len() + 3)
                        + 16
            );
        },
    );
}

#[test]
fn smtp_client_replies() {
    use crate::smtp::client::message::Message;
    use crate::smtp::client::session::Session;
    use std::io::{Cursor, Read, Write};
    // The peer's replies come from the fuzzer; what we send goes nowhere.
    struct Peer(Cursor<Vec<u8>>);
    impl Read for Peer {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for Peer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    run(
        "smtp-client",
        &[
            b"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
            b"220 mx\r\n250 mx\r\n250 ok\r\n550 no such user\r\n554 no valid recipients\r\n",
            b"220-a\r\n220 b\r\n250 x\r\n451 later\r\n",
        ],
        &[b"\r\n", b"250 ok\r\n", b"250-", b"354 go\r\n", b"550 no\r\n", b"\n", b"\r"],
        ROUNDS,
        |input| {
            let mut s = Session::new(Peer(Cursor::new(input.to_vec())), "mx.example", "192.0.2.1");
            let Ok(Ok(())) = s.greeting() else { return };
            let Ok(Ok(ext)) = s.hello("me.example") else { return };
            let mut msg = Message::from_bytes(b"Subject: x\n\nbody\n.\n".to_vec());
            let rcpts = vec![b"a@x".to_vec(), b"b@x".to_vec()];
            let rep = s.transaction(&ext, b"s@y", &rcpts, &mut msg, "");
            // qmail-rspawn reads a report of up to 10000 bytes.
            let bytes = rep.to_bytes();
            assert!(bytes.len() < 10_000, "report of {} bytes", bytes.len());
        },
    );
}
