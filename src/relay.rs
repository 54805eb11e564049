//! POP-before-SMTP: the open-smtp list and the tcp.smtp.cdb rebuild, as
//! vpopmail 5.4 keeps them (COMPAT section 13).
//!
//! Files in `~vpopmail/etc`:
//! * `tcp.smtp`: the static tcpserver rules, written by the admin;
//! * `open-smtp`: one line per IP that logged in by POP3 or IMAP,
//!   `IP:allow,RELAYCLIENT="",RBLSMTPD=""<TAB>EPOCH`;
//! * `open-smtp.lock`: the fcntl lock every writer holds (vpopmail's kind);
//! * `tcp.smtp.cdb`: what `tcpserver -x` reads, compiled from `tcp.smtp`
//!   followed by every open-smtp line cut at the TAB, exactly as `tcprules`
//!   compiles the same text; a static line for the same IP wins, an open-smtp
//!   entry beats prefix rules and the catch-all;
//! * `relay-clear-minutes`: the window (60 in the hosting profile).
//!
//! Writers replace `open-smtp` through `open-smtp.tmp.PID` (write, rename) and
//! `tcp.smtp.cdb` through `tcp.smtp.tmp.PID` (write, fsync, rename): a crash
//! leaves the old or the new file and at worst a stale temporary file; only
//! open-smtp's newest timestamps may be lost (that user logs in again).
//! Readers take no lock.
//!
//! IPv6 addresses (other than `::ffff:`-mapped IPv4, which is stripped) are
//! recorded in open-smtp, so [`is_open`] sees them, but are left out of the cdb:
//! tcprules' syntax has no room for their colons and tcpserver 0.88 serves IPv4.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::paths::Roots;
use crate::{sys, tcprules, timefmt};

/// The window when `relay-clear-minutes` is missing: the hosting profile's.
pub const DEFAULT_CLEAR_MINUTES: u64 = 60;

/// True when `ip` has an open-smtp entry younger than the window, and no
/// static tcp.smtp rule for exactly that address (or `INFO@IP`, with `info`
/// from TCPREMOTEINFO) withholds RELAYCLIENT: in tcp.smtp.cdb such a line
/// comes first and tcpserver takes it, so it wins here too.
pub fn is_open(roots: &Roots, ip: &str, info: Option<&str>) -> bool {
    let Some(ip) = normalize_ip(ip) else {
        return false;
    };
    let Ok(Some(text)) = crate::fsutil::read_nofollow(&roots.vpop_etc("open-smtp")) else {
        return false;
    };
    let cutoff = cutoff(roots);
    // The first recent line for the address decides, as the first rule for
    // a key does in tcp.smtp.cdb: it must allow and set RELAYCLIENT (a line
    // written by hand may say `IP:deny` or `IP:allow`).
    let open = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(Entry::parse)
        .find(|e| e.ip == ip && e.time.is_some_and(|t| t > cutoff))
        .is_some_and(|e| grants_relay(&e.line));
    open && static_rule(roots, &ip, info).is_none_or(|d| relays(&d))
}

fn relays(d: &tcprules::Decision) -> bool {
    !d.deny && d.env.iter().any(|(k, _)| k == b"RELAYCLIENT")
}

/// Whether an open-smtp line's rule (up to its TAB) allows and sets
/// RELAYCLIENT.
fn grants_relay(line: &str) -> bool {
    let rule = line.split('\t').next().unwrap_or_default();
    // The address may be IPv6, with colons of its own: the rule is what
    // follows it.
    let rest = &rule[rule_ip(rule).len()..];
    matches!(tcprules::parse_line(format!("0{rest}").as_bytes()),
        Ok(Some(r)) if relays(&tcprules::decode(&r.data)))
}

/// The first static tcp.smtp rule whose key is exactly `INFO@IP` or `IP`.
fn static_rule(roots: &Roots, ip: &str, info: Option<&str>) -> Option<tcprules::Decision> {
    let text = crate::fsutil::read_nofollow(&roots.vpop_etc("tcp.smtp")).ok()??;
    let mut wanted: Vec<Vec<u8>> = Vec::new();
    if let Some(i) = info.filter(|i| !i.is_empty()) {
        wanted.push(format!("{i}@{ip}").into_bytes());
    }
    wanted.push(ip.as_bytes().to_vec());
    let mut found: Vec<(usize, tcprules::Decision)> = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let Ok(Some(rule)) = tcprules::parse_line(line) else {
            continue;
        };
        for key in tcprules::expand(&rule.address).unwrap_or_default() {
            if let Some(rank) = wanted.iter().position(|w| *w == key) {
                if !found.iter().any(|(r, _)| *r == rank) {
                    found.push((rank, tcprules::decode(&rule.data)));
                }
            }
        }
    }
    found.sort_by_key(|(r, _)| *r);
    found.into_iter().next().map(|(_, d)| d)
}

/// Records `ip` (a successful POP3/IMAP login from it), drops expired entries
/// and, when the list changed in a way tcpserver can see, rebuilds tcp.smtp.cdb.
pub fn open(roots: &Roots, ip: &str) -> io::Result<()> {
    let ip = normalize_ip(ip).ok_or_else(|| bad_ip(ip))?;
    let _lock = lock(roots)?;
    let now = timefmt::now();
    let cutoff = cutoff(roots);
    let old = read_entries(roots)?;
    let mut known = false;
    let mut expired = false;
    let mut keep = Vec::with_capacity(old.len() + 1);
    for e in old {
        if e.ip == ip {
            known = true;
        } else if e.time.is_none_or(|t| t <= cutoff) {
            expired = true;
        } else {
            keep.push(e.line);
        }
    }
    keep.push(format!("{ip}:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t{now}"));
    write_open_smtp(roots, &keep)?;
    if !known || expired || !roots.vpop_etc("tcp.smtp.cdb").exists() {
        rebuild(roots).map_err(not_rebuilt)?;
    }
    Ok(())
}

/// open-smtp was written but tcp.smtp.cdb could not be rebuilt from it: the
/// error says so, since the address is recorded for a qmail-smtpd that
/// reads open-smtp itself, and not for tcpserver's rules.
#[derive(Debug)]
pub struct NotRebuilt(pub io::Error);

impl std::fmt::Display for NotRebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open-smtp was written, but tcp.smtp.cdb was not rebuilt: {}",
            crate::deliver::errstr(&self.0)
        )
    }
}

impl std::error::Error for NotRebuilt {}

fn not_rebuilt(e: io::Error) -> io::Error {
    io::Error::other(NotRebuilt(e))
}

/// clearopensmtp: keeps the entries younger than the window, rewrites
/// open-smtp and always rebuilds tcp.smtp.cdb.
pub fn clear(roots: &Roots) -> io::Result<()> {
    let _lock = lock(roots)?;
    remove_stale_tmps(roots);
    let cutoff = cutoff(roots);
    let keep: Vec<String> = read_entries(roots)?
        .into_iter()
        .filter(|e| e.time.is_some_and(|t| t > cutoff))
        .map(|e| e.line)
        .collect();
    write_open_smtp(roots, &keep)?;
    rebuild(roots).map_err(not_rebuilt)
}

/// The rules text tcp.smtp.cdb is compiled from: tcp.smtp, then each open-smtp
/// line up to its TAB.
pub fn rules_text(roots: &Roots) -> io::Result<Vec<u8>> {
    let mut text =
        crate::fsutil::read_nofollow_single(&roots.vpop_etc("tcp.smtp"))?.unwrap_or_default();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    if let Some(open) = crate::fsutil::read_nofollow_single(&roots.vpop_etc("open-smtp"))? {
        for line in open.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let rule = line.split(|&c| c == b'\t').next().unwrap_or_default();
            let ip = rule_ip(&String::from_utf8_lossy(rule)).to_string();
            if normalize_ip(&ip).is_some_and(|ip| ip.contains(':')) {
                continue;
            }
            text.extend_from_slice(rule);
            text.push(b'\n');
        }
    }
    Ok(text)
}

/// Compiles [`rules_text`] into tcp.smtp.cdb (through `tcp.smtp.tmp.PID`).
/// A line tcprules refuses leaves the old cdb in place and is the error.
pub fn rebuild(roots: &Roots) -> io::Result<()> {
    let text = rules_text(roots)?;
    let cdb = roots.vpop_etc("tcp.smtp.cdb");
    let tmp = roots.vpop_etc(&format!("tcp.smtp.tmp.{}", std::process::id()));
    tcprules::compile(&text)?.write_via_owned(&cdb, &tmp, 0o644, vpopmail_owner())
}

/// An IP as it is recorded: `::ffff:` stripped, validated, canonical text.
/// `None` for anything that is not an IP address.
pub fn normalize_ip(ip: &str) -> Option<String> {
    let ip = ip.trim();
    let lower = ip.to_ascii_lowercase();
    let ip = lower.strip_prefix("::ffff:").unwrap_or(&lower);
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        }),
    }
}

/// The window in seconds, from `relay-clear-minutes`.
pub fn window_secs(roots: &Roots) -> i64 {
    // Not through a link vpopmail put there (root runs clearopensmtp).
    let minutes = crate::fsutil::read_nofollow(&roots.vpop_etc("relay-clear-minutes"))
        .ok()
        .flatten()
        .map_or(DEFAULT_CLEAR_MINUTES, |b| {
            crate::control::parse_u64(&b, DEFAULT_CLEAR_MINUTES)
        });
    i64::try_from(minutes.saturating_mul(60)).unwrap_or(i64::MAX)
}

/// One open-smtp line.
struct Entry {
    line: String,
    ip: String,
    time: Option<i64>,
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        if line.is_empty() {
            return None;
        }
        let (rule, time) = match line.split_once('\t') {
            Some((r, t)) => (r, t.trim().parse::<i64>().ok()),
            None => (line, None),
        };
        let ip = rule_ip(rule);
        Some(Entry {
            line: line.to_string(),
            ip: normalize_ip(ip).unwrap_or_else(|| ip.to_string()),
            time,
        })
    }
}

/// The address of an open-smtp rule: the text before `:allow` (or `:deny`),
/// else before the first `:` as vpopmail reads it.
fn rule_ip(rule: &str) -> &str {
    match rule.find(":allow").or_else(|| rule.find(":deny")) {
        Some(i) => &rule[..i],
        None => rule.split(':').next().unwrap_or(rule),
    }
}

fn cutoff(roots: &Roots) -> i64 {
    timefmt::now().saturating_sub(window_secs(roots))
}

fn bad_ip(ip: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not an IP address: {ip:?}"),
    )
}

fn lock(roots: &Roots) -> io::Result<std::fs::File> {
    let path = roots.vpop_etc("open-smtp.lock");
    // Root runs clearopensmtp: ~vpopmail/etc must be the directory itself,
    // not a link vpopmail put in its place.
    if let Some(etc) = path.parent() {
        crate::fsutil::no_planted_links(etc)?;
    }
    let f = crate::fsutil::open_lock(&path)?;
    sys::lock_exclusive(&f)?;
    // vchkpw (setuid vpopmail) takes this lock too: a lock file root made
    // must be vpopmail's, or POP-before-SMTP would stop working.
    crate::fsutil::fchown_if_root(&f, vpopmail_owner())?;
    Ok(f)
}

/// Removes the temporary files of writers killed before their renames (the
/// caller holds the lock every writer takes, so none is between its write
/// and rename). Done by the periodic clear, not on every POP3 login.
fn remove_stale_tmps(roots: &Roots) {
    if let Ok(rd) = std::fs::read_dir(roots.vpopmail.join("etc")) {
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with("open-smtp.tmp.") || n.starts_with("tcp.smtp.tmp.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn read_entries(roots: &Roots) -> io::Result<Vec<Entry>> {
    // Its lines are copied into the new open-smtp and tcp.smtp.cdb.
    let text =
        crate::fsutil::read_nofollow_single(&roots.vpop_etc("open-smtp"))?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&text)
        .split('\n')
        .filter_map(Entry::parse)
        .collect())
}

fn write_open_smtp(roots: &Roots, lines: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let path: PathBuf = roots.vpop_etc("open-smtp");
    // Written on every POP3/IMAP login. A crash may lose the newest timestamps
    // (the user logs in again), never tear the file; tcp.smtp.cdb, rebuilt only
    // for a new IP, is still fsynced.
    crate::fsutil::replace_unsynced_owned(&path, text.as_bytes(), 0o644, vpopmail_owner())
}

/// As vpopmail: the files belong to vpopmail when root writes them.
/// vpopmail's uid and gid, given to the files root writes here (through
/// their descriptors, before they take their names: ~vpopmail/etc is
/// vpopmail's, so nothing is changed by name there).
fn vpopmail_owner() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    sys::account("vpopmail").map(|a| (a.uid, a.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> (tempfile::TempDir, Roots) {
        let d = tempfile::tempdir().unwrap();
        let r = Roots::new(d.path().join("q"), d.path().join("v"));
        std::fs::create_dir_all(r.vpopmail.join("etc")).unwrap();
        std::fs::write(r.vpop_etc("tcp.smtp"), ":allow\n").unwrap();
        (d, r)
    }

    #[test]
    fn normalizes_addresses() {
        assert_eq!(normalize_ip("::ffff:1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(normalize_ip("::FFFF:1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(normalize_ip("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(normalize_ip("2001:DB8::1").as_deref(), Some("2001:db8::1"));
        for bad in ["", "1.2.3", "1.2.3.4:allow", "1.2.3.4\n:allow", "x"] {
            assert_eq!(normalize_ip(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_lines_that_set_relayclient_open() {
        let (_d, r) = roots();
        let now = timefmt::now();
        std::fs::write(
            r.vpop_etc("open-smtp"),
            format!(
                "1.2.3.4:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t{now}\n\
                 1.2.3.5:deny\t{now}\n\
                 1.2.3.6:allow\t{now}\n\
                 1.2.3.7:allow,RBLSMTPD=\"\"\t{now}\n\
                 1.2.3.8:deny\t{now}\n1.2.3.8:allow,RELAYCLIENT=\"\"\t{now}\n\
                 2001:db8::1:allow,RELAYCLIENT=\"\"\t{now}\n\
                 2001:db8::2:deny\t{now}\n\
                 1.2.3.9:allow,RELAYCLIENT=\"\"\t{}\n",
                now - 7200
            ),
        )
        .unwrap();
        for (ip, open) in [
            ("1.2.3.4", true),
            ("1.2.3.5", false),
            ("1.2.3.6", false),
            ("1.2.3.7", false),
            ("1.2.3.8", false),
            ("2001:db8::1", true),
            ("2001:db8::2", false),
            ("1.2.3.9", false),
            ("1.2.3.10", false),
        ] {
            assert_eq!(is_open(&r, ip, None), open, "{ip}");
        }
    }

    #[test]
    fn entry_lines_parse() {
        let e = Entry::parse("1.2.3.4:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t1700000000").unwrap();
        assert_eq!((e.ip.as_str(), e.time), ("1.2.3.4", Some(1_700_000_000)));
        let e = Entry::parse("1.2.3.4:ALLOW,RELAYCLIENT=\"\"").unwrap();
        assert_eq!((e.ip.as_str(), e.time), ("1.2.3.4", None));
        let e = Entry::parse("2001:db8::1:allow,RELAYCLIENT=\"\"\t5").unwrap();
        assert_eq!((e.ip.as_str(), e.time), ("2001:db8::1", Some(5)));
    }

    #[test]
    fn rules_text_is_tcp_smtp_then_open_smtp_cut_at_tab() {
        let (_d, r) = roots();
        std::fs::write(
            r.vpop_etc("tcp.smtp"),
            "127.:allow,RELAYCLIENT=\"\"\n:allow",
        )
        .unwrap();
        std::fs::write(
            r.vpop_etc("open-smtp"),
            "1.2.3.4:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t100\n2001:db8::1:allow,RELAYCLIENT=\"\"\t100\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(rules_text(&r).unwrap()).unwrap(),
            "127.:allow,RELAYCLIENT=\"\"\n:allow\n1.2.3.4:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n"
        );
    }

    #[test]
    fn temporary_files_of_killed_writers_go() {
        let (_d, r) = roots();
        for n in ["open-smtp.tmp.99999", "tcp.smtp.tmp.99998"] {
            std::fs::write(r.vpop_etc(n), "x").unwrap();
        }
        open(&r, "10.1.2.3").unwrap();
        clear(&r).unwrap();
        let left: Vec<String> = std::fs::read_dir(r.vpopmail.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(std::fs::read_to_string(r.vpop_etc("open-smtp"))
            .unwrap()
            .starts_with("10.1.2.3:allow"));
    }
}
