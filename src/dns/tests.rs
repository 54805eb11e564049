//! Resolver tests against a small fake nameserver on 127.0.0.1 (UDP and TCP
//! on the same port), answering from a fixed table.

use super::*;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// What the fake server answers for (name, type).
#[derive(Clone)]
enum Reply {
    Records(Vec<(String, u16, Vec<u8>)>),
    Rcode(u8),
    /// TC over UDP; the records only over TCP.
    Truncated(Vec<(String, u16, Vec<u8>)>),
    Silent,
}

fn name_wire(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    wire::encode_name(n, &mut v).unwrap();
    v
}

fn mx_rdata(pref: u16, host: &str) -> Vec<u8> {
    let mut v = pref.to_be_bytes().to_vec();
    v.extend(name_wire(host));
    v
}

fn table(name: &str, qtype: u16) -> Reply {
    let a = |n: &str, ip: [u8; 4]| (n.to_string(), TYPE_A, ip.to_vec());
    match (name, qtype) {
        ("mx.test", TYPE_MX) => Reply::Records(vec![
            ("mx.test".into(), TYPE_MX, mx_rdata(20, "b.mx.test")),
            ("mx.test".into(), TYPE_MX, mx_rdata(10, "a.mx.test")),
        ]),
        ("a.mx.test", TYPE_A) => Reply::Records(vec![a("a.mx.test", [192, 0, 2, 1])]),
        ("a.mx.test", TYPE_AAAA) => Reply::Records(vec![(
            "a.mx.test".into(),
            TYPE_AAAA,
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
        )]),
        ("alias.test", TYPE_A) => Reply::Records(vec![
            ("alias.test".into(), TYPE_CNAME, name_wire("a.mx.test")),
            a("a.mx.test", [192, 0, 2, 1]),
        ]),
        ("alias.test", TYPE_CNAME) => Reply::Records(vec![(
            "alias.test".into(),
            TYPE_CNAME,
            name_wire("a.mx.test"),
        )]),
        ("chase.test", TYPE_A) => Reply::Records(vec![(
            "chase.test".into(),
            TYPE_CNAME,
            name_wire("a.mx.test"),
        )]),
        ("big.test", TYPE_A) => {
            Reply::Truncated((1..=40u8).map(|i| a("big.test", [10, 0, 0, i])).collect())
        }
        ("bare.test", TYPE_A) => Reply::Truncated(vec![a("bare.test", [10, 0, 0, 9])]),
        ("we\\043rd.test", TYPE_MX) => Reply::Records(vec![(
            "we+rd.test".into(),
            TYPE_MX,
            mx_rdata(10, "a.mx.test"),
        )]),
        ("sp\\040c.test", TYPE_A) => Reply::Records(vec![a("sp(c.test", [192, 0, 2, 7])]),
        ("servfail.test", _) => Reply::Rcode(2),
        ("silent.test", _) => Reply::Silent,
        ("mx.test", _) | ("a.mx.test", _) | ("alias.test", _) => Reply::Records(vec![]),
        _ => Reply::Rcode(3),
    }
}

fn answer(query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let m = wire::decode(query).ok()?;
    let (name, qtype, _) = m.questions.first()?.clone();
    let reply = table(&name, qtype);
    if name == "bare.test" && !tcp {
        // A bare header with TC, as dnslib sends for oversized answers.
        let mut h = query[..2].to_vec();
        h.extend_from_slice(&[0x83, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]);
        return Some(h);
    }
    let mut out = query[..2].to_vec();
    let (rcode, tc, records) = match reply {
        Reply::Silent => return None,
        Reply::Rcode(rc) => (rc, false, vec![]),
        Reply::Records(r) => (0, false, r),
        Reply::Truncated(r) if tcp => (0, false, r),
        Reply::Truncated(_) => (0, true, vec![]),
    };
    let flags: u16 = 0x8180 | u16::from(rcode) | if tc { 0x0200 } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend(name_wire(&name));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    for (n, t, data) in records {
        out.extend(name_wire(&n));
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend(data);
    }
    Some(out)
}

struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A UDP socket and a TCP listener on the same free port (another process may
/// hold the TCP side of a port whose UDP side is free: try another port then).
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

fn fake() -> Fake {
    let (udp, tcp) = bind_pair();
    let addr = udp.local_addr().unwrap();
    tcp.set_nonblocking(true).unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !s.load(Ordering::Relaxed) {
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                // A stray answer with a wrong id first: must be ignored.
                let _ = udp.send_to(&[0, 0, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0], from);
                if let Some(a) = answer(&buf[..n], false) {
                    let _ = udp.send_to(&a, from);
                }
            }
            if let Ok((mut c, _)) = tcp.accept() {
                c.set_nonblocking(false).unwrap();
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_ok() {
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if c.read_exact(&mut q).is_ok() {
                        if let Some(a) = answer(&q, true) {
                            let mut o = (a.len() as u16).to_be_bytes().to_vec();
                            o.extend(a);
                            let _ = c.write_all(&o);
                        }
                    }
                }
            }
        }
    });
    Fake { addr, stop }
}

fn resolver(f: &Fake) -> Resolver {
    Resolver::new(vec![f.addr]).with_timeout(Duration::from_millis(300), 1)
}

#[test]
fn mx_sorted_by_preference() {
    let f = fake();
    let r = resolver(&f);
    let mx = r.mx("MX.test.").unwrap();
    assert_eq!(
        mx,
        vec![
            Mx {
                pref: 10,
                host: "a.mx.test".into()
            },
            Mx {
                pref: 20,
                host: "b.mx.test".into()
            }
        ]
    );
    assert_eq!(r.mx("a.mx.test"), Err(Error::NoData));
    assert_eq!(r.mx("nope.test"), Err(Error::NxDomain));
    assert!(matches!(r.mx("servfail.test"), Err(Error::Temporary(_))));
    assert!(r.has_mail_route("mx.test").unwrap());
    assert!(r.has_mail_route("a.mx.test").unwrap());
    assert!(!r.has_mail_route("nope.test").unwrap());
    assert!(r.has_mail_route("servfail.test").is_err());
}

#[test]
fn addresses_and_cnames() {
    let f = fake();
    let r = resolver(&f);
    assert_eq!(
        r.ips("a.mx.test").unwrap(),
        vec![
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(r.ips("b.mx.test"), Err(Error::NxDomain));
    assert_eq!(r.ips("mx.test"), Err(Error::NoData));
    assert_eq!(
        r.a("alias.test").unwrap(),
        vec![Ipv4Addr::new(192, 0, 2, 1)]
    );
    // The answer stops at the CNAME: a second query follows it.
    assert_eq!(
        r.a("chase.test").unwrap(),
        vec![Ipv4Addr::new(192, 0, 2, 1)]
    );
    assert_eq!(r.canonical("alias.test").unwrap(), "a.mx.test");
    assert_eq!(r.canonical("a.mx.test").unwrap(), "a.mx.test");
    assert_eq!(r.canonical("nope.test").unwrap(), "nope.test");
}

#[test]
fn truncated_answer_is_asked_again_over_tcp() {
    let f = fake();
    let r = resolver(&f);
    let v = r.a("big.test").unwrap();
    assert_eq!(v.len(), 40);
    assert_eq!(v[39], Ipv4Addr::new(10, 0, 0, 40));
    assert_eq!(r.a("bare.test").unwrap(), vec![Ipv4Addr::new(10, 0, 0, 9)]);
}

#[test]
fn silence_is_a_timeout_and_temporary() {
    let f = fake();
    let r = resolver(&f);
    match r.a("silent.test") {
        Err(Error::Temporary(s)) => assert!(s.contains("timed out"), "{s}"),
        other => panic!("{other:?}"),
    }
    // A server that never answers (the socket stays bound, so no other test
    // can take the port meanwhile): temporary.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r =
        Resolver::new(vec![dead.local_addr().unwrap()]).with_timeout(Duration::from_millis(200), 1);
    assert!(matches!(r.a("x.test"), Err(Error::Temporary(_))));
    drop(dead);
}

#[test]
fn names_with_other_characters_are_answered() {
    // Answers name their question with other bytes than letters, digits,
    // `-` and `_` escaped: the name asked for must compare with it, or
    // every answer would be dropped.
    let f = fake();
    let r = resolver(&f);
    assert_eq!(r.mx("we+rd.test").unwrap()[0].host, "a.mx.test");
    assert_eq!(r.mx("WE+RD.test.").unwrap()[0].host, "a.mx.test");
    assert_eq!(r.a("sp(c.test").unwrap(), vec![Ipv4Addr::new(192, 0, 2, 7)]);
    assert_eq!(r.a("no+such.test"), Err(Error::NxDomain));
    assert_eq!(r.a("[1.2.3]"), Err(Error::NxDomain));
    assert_eq!(wire::presentation("A\\066c.Test."), "abc.test");
    assert_eq!(wire::presentation("x y;z.test"), "x\\032y\\059z.test");
    // No CNAME: the name as given, never its escaped form (qmail-remote
    // puts it back into the recipient's address).
    assert_eq!(r.canonical("We+Rd.test.").unwrap(), "we+rd.test");
}

#[test]
fn bad_names_do_not_exist() {
    let f = fake();
    let r = resolver(&f);
    assert_eq!(r.a("a..b"), Err(Error::NxDomain));
    assert_eq!(r.a(""), Err(Error::NxDomain));
}

#[test]
fn server_configuration() {
    assert_eq!(
        parse_server("10.0.0.1"),
        Some("10.0.0.1:53".parse().unwrap())
    );
    assert_eq!(
        parse_server("10.0.0.1:5353"),
        Some("10.0.0.1:5353".parse().unwrap())
    );
    assert_eq!(
        parse_server("[::1]:5353"),
        Some("[::1]:5353".parse().unwrap())
    );
    assert_eq!(parse_server("[::1]"), Some("[::1]:53".parse().unwrap()));
    assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
    assert_eq!(
        parse_server("fe80::1%eth0"),
        Some("[fe80::1]:53".parse().unwrap())
    );
    assert_eq!(parse_server("nonsense"), None);
    let resolv = "# comment\nsearch x\nnameserver 10.255.255.53\nnameserver ::1\noptions ndots:1\n";
    assert_eq!(
        parse_resolv_conf(resolv),
        vec![
            "10.255.255.53:53".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    let control = vec!["127.0.0.1:5300".to_string()];
    assert_eq!(
        choose_servers(Some("127.0.0.2 [::1]:54"), Some(&control), Some(resolv)),
        Ok(vec![
            "127.0.0.2:53".parse().unwrap(),
            "[::1]:54".parse().unwrap()
        ])
    );
    assert_eq!(
        choose_servers(None, Some(&control), Some(resolv)),
        Ok(vec!["127.0.0.1:5300".parse().unwrap()])
    );
    assert_eq!(
        choose_servers(Some(" "), None, Some(resolv)).unwrap().len(),
        2
    );
    assert_eq!(choose_servers(None, None, Some(resolv)).unwrap().len(), 2);
    // A source that is there but names no server that can be asked is an
    // error: the lookup must not fall through to resolv.conf's servers.
    assert_eq!(parse_server("127.0.0.1:0"), None);
    assert_eq!(parse_server("127.0.0.1:99999"), None);
    for bad in [
        vec![],
        vec!["127.0.0.1:99999".to_string()],
        vec!["nonsense".to_string()],
    ] {
        let r = choose_servers(None, Some(&bad), Some(resolv));
        assert_eq!(
            r,
            Err("control/nameservers names no usable nameserver".into())
        );
    }
    assert!(choose_servers(Some("127.0.0.1:0"), Some(&control), Some(resolv)).is_err());
    assert_eq!(
        Resolver::new(vec![]).servers(),
        &["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn fuzzed_messages_decode_safely() {
    let q = |n: &str, t: u16| wire::encode_query(0x1234, n, t).unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        answer(&q("mx.test", TYPE_MX), false).unwrap(),
        answer(&q("alias.test", TYPE_A), false).unwrap(),
        answer(&q("a.mx.test", TYPE_AAAA), false).unwrap(),
        answer(&q("big.test", TYPE_A), true).unwrap(),
        // A compression pointer to the question's name, and one to itself.
        {
            let mut m = answer(&q("mx.test", TYPE_MX), false).unwrap();
            m.extend_from_slice(&[0xc0, 12, 0xc0, 0x0c]);
            m
        },
        vec![
            0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 15, 0, 1, 0xc0, 12,
        ],
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    crate::fuzz::run(
        "dns",
        &seeds,
        &[
            &[0xc0, 0x0c],
            &[0xc0, 0x00],
            &[0x3f],
            &[0, 15, 0, 1],
            &[0xff, 0xff],
            &[0x40],
        ],
        4000,
        |input| {
            if let Ok(m) = wire::decode(input) {
                // Names hold only lower-case letters, digits, `-`, `_`, the
                // dots between labels and `\\DDD` escapes, whatever the bytes.
                let tame = |n: &str| {
                    n.len() <= 255 * 4
                        && n.bytes().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.\\".contains(&c)
                        })
                };
                for r in &m.answers {
                    assert!(tame(&r.name), "{:?}", r.name);
                    match &r.data {
                        wire::RData::Mx { host, .. } => assert!(tame(host), "{host:?}"),
                        wire::RData::Cname(c) => assert!(tame(c), "{c:?}"),
                        _ => {}
                    }
                }
            }
            for pos in [0, 12, input.len().saturating_sub(2)] {
                if let Ok((name, end)) = wire::read_name(input, pos) {
                    assert!(end <= input.len());
                    let _ = name;
                }
            }
        },
    );
}
