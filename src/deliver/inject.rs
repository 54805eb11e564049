//! qmail-inject and sendmail: mail submission from programs (qmail-inject(8),
//! sendmail(8)).
//!
//! The message is read from fd 0; its header is rewritten as qmail-inject
//! does (addresses completed with `defaulthost`, `defaultdomain` and
//! `plusdomain`; `Bcc:`, `Resent-Bcc:`, `Return-Path:` and `Content-Length:`
//! removed; `Message-ID:`, `Date:`, `From:` and, without To/Cc, a
//! `Cc: recipient list not shown: ;` added); the body is copied unchanged.
//! Then it goes to qmail-queue. Exit 0 queued, 100 bad usage or refused
//! permanently, 111 temporary failure.

pub mod addr;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};

use super::{qq, Fail};
use crate::control::Control;
use crate::paths::Roots;
use addr::Defaults;

/// qmail-inject's usage text.
pub const USAGE: &str = "qmail-inject: usage: qmail-inject [ -nNaAhH ] [ -fsender ] [ arg ... ]";
/// sendmail's usage text.
pub const SENDMAIL_USAGE: &str =
    "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]";

/// Where the recipients come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-a`: the arguments only.
    Args,
    /// `-A` (default): the arguments if any, else the header.
    ArgsElseHeader,
    /// `-h`: the header only.
    Header,
    /// `-H`: both.
    Both,
}

/// qmail-inject's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The recipient source.
    pub mode: Mode,
    /// `-n`: print the message instead of queueing it.
    pub print: bool,
    /// `-f`: the envelope sender.
    pub sender: Option<String>,
    /// Recipients from the arguments.
    pub recips: Vec<String>,
}

/// Parses qmail-inject's arguments (without the program name).
pub fn parse_args(argv: &[String]) -> Result<Options, Fail> {
    let mut o = Options {
        mode: Mode::ArgsElseHeader,
        print: false,
        sender: None,
        recips: Vec::new(),
    };
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        for (pos, c) in a[1..].char_indices() {
            match c {
                'n' => o.print = true,
                'N' => o.print = false,
                'a' => o.mode = Mode::Args,
                'A' => o.mode = Mode::ArgsElseHeader,
                'h' => o.mode = Mode::Header,
                'H' => o.mode = Mode::Both,
                'f' => {
                    let rest = &a[1 + pos + 1..];
                    if rest.is_empty() {
                        i += 1;
                        o.sender = Some(argv.get(i).ok_or_else(|| Fail::perm(USAGE))?.clone());
                    } else {
                        o.sender = Some(rest.to_string());
                    }
                    break;
                }
                _ => return Err(Fail::perm(USAGE)),
            }
        }
        i += 1;
    }
    o.recips = argv[i.min(argv.len())..].to_vec();
    Ok(o)
}

/// The settings qmail-inject takes from its environment and control files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Address completion.
    pub defaults: Defaults,
    /// The user for From: (QMAILUSER, MAILUSER, USER, LOGNAME).
    pub user: String,
    /// The host for From: (QMAILHOST, MAILHOST, defaulthost).
    pub host: String,
    /// The name for From: (QMAILNAME, MAILNAME, NAME).
    pub name: Option<String>,
    /// The envelope sender's user and host (QMAILSUSER, QMAILSHOST).
    pub suser: String,
    /// See `suser`.
    pub shost: String,
    /// The host in Message-IDs (QMAILIDHOST, idhost, me).
    pub idhost: String,
    /// QMAILINJECT letters.
    pub flags: String,
    /// The mailing lists of `$QMAILMFTFILE` (lower case): a message to one of
    /// them gets a Mail-Followup-To field.
    pub mft: Vec<String>,
}

impl Settings {
    /// From `env` (a variable lookup) and the control files of `roots`.
    pub fn load(roots: &Roots, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Fail> {
        let c = Control::new(roots);
        let ctl = |name: &str| {
            c.line(name).map_err(|e| {
                Fail::temp(format!(
                    "qmail-inject: fatal: unable to read control/{name}: {}",
                    super::errstr(&e)
                ))
            })
        };
        let me = ctl("me")?.unwrap_or_else(crate::sys::hostname);
        // Values go into header lines: a line break or another control
        // character in one (sendmail -F, QMAILNAME ...) must not start a
        // header of its own, so each becomes a space.
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.is_empty()))
                .map(|v| {
                    v.chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect::<String>()
                })
        };
        let defaulthost = first(&["QMAILDEFAULTHOST"])
            .or(ctl("defaulthost")?)
            .unwrap_or(me.clone());
        let defaultdomain = first(&["QMAILDEFAULTDOMAIN"])
            .or(ctl("defaultdomain")?)
            .unwrap_or(me.clone());
        let plusdomain = first(&["QMAILPLUSDOMAIN"])
            .or(ctl("plusdomain")?)
            .unwrap_or(me.clone());
        let idhost = first(&["QMAILIDHOST"]).or(ctl("idhost")?).unwrap_or(me);
        let user = first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"])
            .unwrap_or_else(|| "anonymous".into());
        let host = first(&["QMAILHOST", "MAILHOST"]).unwrap_or_else(|| defaulthost.clone());
        Ok(Settings {
            suser: first(&["QMAILSUSER"]).unwrap_or_else(|| user.clone()),
            shost: first(&["QMAILSHOST"]).unwrap_or_else(|| host.clone()),
            name: first(&["QMAILNAME", "MAILNAME", "NAME"]),
            flags: env("QMAILINJECT").unwrap_or_default(),
            mft: match env("QMAILMFTFILE").filter(|f| !f.is_empty()) {
                Some(f) => read_mft(&f)?,
                None => Vec::new(),
            },
            defaults: Defaults {
                host: defaulthost,
                domain: defaultdomain,
                plus: plusdomain,
            },
            user,
            host,
            idhost,
        })
    }
}

/// The addresses in a `$QMAILMFTFILE`, one per line as in a control file
/// (trailing white space, empty lines and `#` lines ignored), in lower case.
/// A missing file is no list; an unreadable one is an error.
fn read_mft(path: &str) -> Result<Vec<String>, Fail> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b)
            .lines()
            .map(|l| l.trim_end().to_ascii_lowercase())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Fail::temp(format!(
            "qmail-inject: fatal: unable to read $QMAILMFTFILE: {}",
            super::errstr(&e)
        ))),
    }
}

/// A message ready for qmail-queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The rewritten header, the empty line, and the body.
    pub message: Vec<u8>,
    /// The envelope sender.
    pub sender: String,
    /// The envelope recipients.
    pub recips: Vec<String>,
}

/// The Resent- fields qmail-inject knows (hfield.c).
const RESENT_FIELDS: &[&str] = &[
    "resent-sender",
    "resent-from",
    "resent-reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-date",
    "resent-message-id",
];

/// The address of a command-line argument, as qmail-inject takes it: one
/// argument is one recipient. The part before the last `@` is the local
/// part as it is (qmail quotes it); in the rest, the domain, comments,
/// spaces and line ends go. Completed like header addresses. A source route
/// or a `<...>` form is read as an address list would be.
fn arg_addresses(arg: &str, d: &Defaults) -> Vec<String> {
    let flat = one_line(arg);
    if flat.contains('<') {
        return addr::rewrite_list(&flat, d).1;
    }
    // A source route (`@r1,@r2:u@h.org`) is one address, not a list.
    if flat.trim_start().starts_with('@') {
        return addr::rewrite_list(&format!("<{}>", flat.trim()), d).1;
    }
    // (One trailing dot goes from the domain, as qmail's rwextradot takes
    // it; the local part is quoted, and keeps its dot.)
    let one = match flat.rfind('@') {
        Some(i) => {
            let domain = addr::bare_domain(&flat[i + 1..]);
            let domain = domain.strip_suffix('.').unwrap_or(&domain).to_string();
            format!("{}@{}", &flat[..i], domain)
        }
        None => flat,
    };
    if one.is_empty() {
        return Vec::new();
    }
    vec![d.complete(&one)]
}

const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "apparently-to",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "errors-to",
    "return-receipt-to",
    "disposition-notification-to",
    "mail-followup-to",
    "mail-reply-to",
];

/// The fields qmail-inject parses as address lists (qmail's hfield
/// types with a rewriting routine); a field of these that does not parse
/// stops the message.
const QMAIL_PARSED: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "apparently-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "return-path",
    "sender",
    "from",
    "reply-to",
    "return-receipt-to",
    "errors-to",
    "resent-sender",
    "resent-from",
    "resent-reply-to",
];

struct Field {
    lname: String,
    raw: Vec<u8>,
}

/// Splits `input` into header fields and the body. The header ends at the
/// first empty line or at the first line that is neither a field nor a
/// continuation.
/// The name of a header field line: `Name:`, or the old `Name :` with white
/// space before the colon; `None` when the line is not a field.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let n = &line[..colon];
    let end = n.iter().rposition(|&b| b != b' ' && b != b'\t')? + 1;
    let name = &n[..end];
    name.iter().all(|&b| b > 32 && b < 127).then_some(name)
}

fn split(input: &[u8]) -> (Vec<Field>, &[u8]) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let end = input[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(input.len());
        let line = &input[pos..end];
        if line == b"\n" || line == b"\r\n" {
            return (fields, &input[end..]);
        }
        if (line[0] == b' ' || line[0] == b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.raw.extend_from_slice(line);
            }
            pos = end;
            continue;
        }
        // An mbox "From " line in the header is kept as a field of its own,
        // as qmail-inject keeps it.
        if line.starts_with(b"From ") {
            let mut raw = b"MBOX-Line: ".to_vec();
            raw.extend_from_slice(line);
            fields.push(Field {
                lname: "mbox-line".into(),
                raw,
            });
            pos = end;
            continue;
        }
        let Some(name) = field_name(line) else {
            return (fields, &input[pos..]);
        };
        fields.push(Field {
            lname: String::from_utf8_lossy(name).to_ascii_lowercase(),
            raw: line.to_vec(),
        });
        pos = end;
    }
    (fields, &input[input.len()..])
}

fn value_of(raw: &[u8]) -> &[u8] {
    let c = raw
        .iter()
        .position(|&b| b == b':')
        .map(|c| c + 1)
        .unwrap_or(0);
    &raw[c..]
}

fn message_id(s: &Settings, now: i64) -> String {
    let c = crate::timefmt::civil(now);
    format!(
        "<{:04}{:02}{:02}{:02}{:02}{:02}.{}.qmail@{}>",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.min,
        c.sec,
        std::process::id(),
        s.idhost
    )
}

fn quote_phrase(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `s` on one line: its line ends as spaces (for an error line).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// Rewrites the message and works out the envelope.
pub fn prepare(o: &Options, s: &Settings, input: &[u8], now: i64) -> Result<Prepared, Fail> {
    let d = &s.defaults;
    // qmail-inject parses the -f sender and each argument before it reads
    // the message (it quotes their local parts, so only the rest must lex):
    // one that does not (`a@b.org (open`) stops it.
    let domain_of = |a: &str| a.rfind('@').map_or("", |i| &a[i + 1..]).to_string();
    if let Some(f) = o.sender.as_deref().filter(|f| !f.is_empty() && *f != "<>") {
        if !addr::lexes(&domain_of(f)) || (f.contains('<') && !addr::lexes(f)) {
            return Err(Fail::perm(format!(
                "qmail-inject: fatal: unable to parse this line: {}",
                one_line(f)
            )));
        }
    }
    if !matches!(o.mode, Mode::Header) {
        if let Some(r) = o.recips.iter().find(|r| !addr::lexes(&domain_of(r))) {
            return Err(Fail::perm(format!(
                "qmail-inject: fatal: unable to parse address: {}",
                one_line(r)
            )));
        }
    }
    let (fields, body) = split(input);
    // Only qmail's eight Resent- fields make a message a resent one (an
    // invented `Resent-Comment:` does not).
    let resent = fields
        .iter()
        .any(|f| RESENT_FIELDS.contains(&f.lname.as_str()));
    let mut header: Vec<u8> = Vec::with_capacity(input.len().min(1 << 16) + 256);
    let mut header_recips = Vec::new();
    let mut tocc: Vec<String> = Vec::new();
    let mut return_path: Option<String> = None;
    let mut seen: HashMap<String, bool> = HashMap::new();
    for f in &fields {
        let lname = f.lname.as_str();
        let recip_field = if resent {
            matches!(lname, "resent-to" | "resent-cc" | "resent-bcc")
        } else {
            matches!(lname, "to" | "cc" | "bcc" | "apparently-to")
        };
        // qmail-inject parses these fields with token822 and refuses the
        // message when one does not parse (a comment or quoted string left
        // open, a `>` without its `<`, a group without its `;`); the others
        // of ADDRESS_FIELDS are rewritten as far as they can be.
        let skipped = (lname == "return-path" && s.flags.contains('s'))
            || (lname == "from" && s.flags.contains('f'));
        if QMAIL_PARSED.contains(&lname)
            && !skipped
            && !addr::parses(&crate::vpop::entry::decode(value_of(&f.raw)))
        {
            let line: String = String::from_utf8_lossy(&f.raw)
                .split(['\r', '\n'])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            return Err(Fail::perm(format!(
                "qmail-inject: fatal: unable to parse this line: {line}"
            )));
        }
        if lname == "return-path" {
            // The first field counts, completed like any address; of
            // several addresses in it the last one, as in qmail.
            if return_path.is_none() {
                let (_, a) = addr::rewrite_list(&String::from_utf8_lossy(value_of(&f.raw)), d);
                return_path = a.into_iter().last();
            }
            continue;
        }
        if lname == "content-length"
            || (lname == "from" && s.flags.contains('f'))
            || (lname == "message-id" && s.flags.contains('i'))
        {
            continue;
        }
        seen.insert(lname.to_string(), true);
        if ADDRESS_FIELDS.contains(&lname) {
            let colon = f.raw.iter().position(|&b| b == b':').unwrap_or(0);
            // 8-bit text that is not UTF-8 (an ISO-8859-1 name) goes through
            // the lossless decoding, so it is rewritten like the rest and
            // comes out, in the field and in the envelope, as it came in.
            let (new_raw, addrs) = {
                use crate::vpop::entry::{decode, encode};
                let v = decode(&f.raw[colon + 1..]);
                let (nv, a) = addr::rewrite_list_folded(&v, d, colon + 1);
                let mut r = f.raw[..=colon].to_vec();
                r.extend_from_slice(&encode(&nv));
                // The addresses stay decoded; the envelope encodes them.
                (r, a)
            };
            if lname == "to" || lname == "cc" {
                tocc.extend(addrs.iter().filter(|a| !a.is_empty()).cloned());
            }
            if recip_field {
                header_recips.extend(addrs.into_iter().filter(|a| !a.is_empty()));
            }
            if lname == "bcc" || lname == "resent-bcc" {
                continue;
            }
            header.extend_from_slice(&new_raw);
        } else {
            header.extend_from_slice(&f.raw);
        }
        if !header.ends_with(b"\n") {
            header.push(b'\n');
        }
    }
    // Added fields go in front of the message's own, as qmail-inject does;
    // a message with Resent- fields gets the Resent- forms.
    let pre = if resent { "resent-" } else { "" };
    let show = if resent { "Resent-" } else { "" };
    let has = |k: &str| seen.contains_key(format!("{pre}{k}").as_str());
    let mut added = String::new();
    if !has("date") {
        added += &format!("{show}Date: {}\n", crate::timefmt::qmail_date(now));
    }
    // QMAILINJECT f and i drop the incoming From and Message-ID; qmail-inject
    // then adds its own, as for a message without them.
    if !has("message-id") {
        added += &format!("{show}Message-ID: {}\n", message_id(s, now));
    }
    if !has("from") {
        // A user name that needs quoting (`a b`, `.a`) is quoted.
        let a = String::from_utf8_lossy(&crate::smtp::addr::quote2(
            d.complete(&format!("{}@{}", s.user, s.host)).as_bytes(),
        ))
        .into_owned();
        added += &match &s.name {
            Some(n) if s.flags.contains('c') => {
                let n = n
                    .replace('\\', "\\\\")
                    .replace('(', "\\(")
                    .replace(')', "\\)");
                format!("{show}From: {a} ({n})\n")
            }
            Some(n) => format!("{show}From: {} <{a}>\n", quote_phrase(n)),
            None => format!("{show}From: {a}\n"),
        };
    }
    if !has("to") && !has("cc") {
        added += &format!("{show}Cc: recipient list not shown: ;\n");
    }
    // $QMAILMFTFILE: a message to a listed mailing list gets a
    // Mail-Followup-To with all its To and Cc addresses.
    let to_list = tocc.iter().any(|a| s.mft.contains(&a.to_ascii_lowercase()));
    if !resent && to_list && !seen.contains_key("mail-followup-to") {
        let quoted: Vec<String> = tocc
            .iter()
            .map(|a| String::from_utf8_lossy(&crate::smtp::addr::quote2(a.as_bytes())).into_owned())
            .collect();
        added += &format!("Mail-Followup-To: {}\n", quoted.join(",\n  "));
    }
    let header = {
        let mut h = added.into_bytes();
        h.extend_from_slice(&header);
        h
    };
    let arg_recips: Vec<String> = o
        .recips
        .iter()
        .flat_map(|r| arg_addresses(r, d))
        .filter(|a| !a.is_empty())
        .collect();
    let recips = match o.mode {
        Mode::Args => arg_recips,
        Mode::Header => header_recips,
        Mode::Both => arg_recips.into_iter().chain(header_recips).collect(),
        Mode::ArgsElseHeader if !arg_recips.is_empty() => arg_recips,
        Mode::ArgsElseHeader => header_recips,
    };
    let sender = match (&o.sender, return_path) {
        (Some(f), _) => {
            if f.is_empty() || f == "<>" {
                String::new()
            } else {
                arg_addresses(f, d).into_iter().next().unwrap_or_default()
            }
        }
        // QMAILINJECT r: a per-recipient VERP (`-@[]`, which qmail-send
        // expands for each recipient).
        (None, Some(rp)) if !s.flags.contains('s') => {
            if s.flags.contains('r') && !rp.is_empty() {
                rp + "-@[]"
            } else {
                rp
            }
        }
        _ => {
            // QMAILINJECT m: a per-message VERP, the time and process id
            // after the user; r: as above.
            let mut user = s.suser.clone();
            if s.flags.contains('m') {
                user += &format!("-{now}.{}", std::process::id());
            }
            if s.flags.contains('r') {
                user += "-";
            }
            let mut a = d.complete(&format!("{user}@{}", s.shost));
            if s.flags.contains('r') {
                a += "-@[]";
            }
            a
        }
    };
    // No envelope address may hold a line break or another control
    // character: nothing downstream could carry it. A NUL ends an address,
    // as in qmail (whose envelope writer takes C strings); anything after it
    // must not become a record of its own in the envelope.
    if sender.chars().any(char::is_control) {
        return Err(Fail::perm(
            "qmail-inject: fatal: the sender address holds a control character",
        ));
    }
    let recips: Vec<String> = recips
        .into_iter()
        .filter_map(|r| match r.find('\0') {
            Some(0) => None,
            Some(i) => Some(r[..i].to_string()),
            None => Some(r),
        })
        .collect();
    if let Some(r) = recips.iter().find(|r| r.chars().any(char::is_control)) {
        return Err(Fail::perm(format!(
            "qmail-inject: fatal: a recipient address holds a control character: {}",
            r.escape_debug()
        )));
    }
    let mut message = header;
    message.push(b'\n');
    message.extend_from_slice(body);
    if !body.is_empty() && !body.ends_with(b"\n") {
        message.push(b'\n');
    }
    Ok(Prepared {
        message,
        sender,
        recips,
    })
}

/// The most header qmail-inject reads before it gives up.
pub const MAX_HEADER: u64 = 4 << 20;

/// Reads the header part of a message from `r`: the lines up to the empty
/// line (which is consumed) or up to the first line that is not a field
/// (which is returned as the start of the body).
pub fn read_header(r: &mut dyn BufRead) -> Result<(Vec<u8>, Vec<u8>), Fail> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let room = MAX_HEADER.saturating_sub(head.len() as u64);
        if room == 0 {
            return Err(Fail::perm(format!(
                "qmail-inject: fatal: the header is longer than {MAX_HEADER} bytes"
            )));
        }
        let n = r
            .take(room)
            .read_until(b'\n', &mut line)
            .map_err(read_fail)?;
        if n == 0 {
            return Ok((head, Vec::new()));
        }
        if line == b"\n" || line == b"\r\n" {
            return Ok((head, Vec::new()));
        }
        let mbox_from = line.starts_with(b"From ");
        let cont = (line[0] == b' ' || line[0] == b'\t') && !head.is_empty();
        let field = field_name(&line).is_some();
        if !(mbox_from || cont || field) {
            return Ok((head, line));
        }
        head.extend_from_slice(&line);
    }
}

fn read_fail(e: std::io::Error) -> Fail {
    Fail::temp(format!(
        "qmail-inject: fatal: read error: {}",
        super::errstr(&e)
    ))
}

/// A reader that adds a final newline to non-empty input lacking one.
struct EnsureNewline<R> {
    inner: R,
    any: bool,
    last: u8,
    done: bool,
}

impl<R: Read> Read for EnsureNewline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.any = true;
            self.last = buf[n - 1];
            return Ok(n);
        }
        self.done = true;
        if self.any && self.last != b'\n' {
            buf[0] = b'\n';
            return Ok(1);
        }
        Ok(0)
    }
}

/// [`run`] on this process's fd 0 (the message; none is an empty message)
/// and standard output, as qmail-inject and sendmail call it.
pub fn run_stdio(
    roots: &Roots,
    argv: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Fail> {
    let mut input: Box<dyn Read> = match crate::sys::inherit_file(0) {
        Some(f) => Box::new(f),
        None => Box::new(std::io::empty()),
    };
    run(roots, argv, env, &mut input, &mut std::io::stdout().lock())
}

/// qmail-inject with `argv` (without the program name), `env` and the
/// message on `input`. The header is read into memory (at most
/// [`MAX_HEADER`] bytes); the body is streamed to qmail-queue unchanged.
/// `out` receives the `-n` output.
pub fn run(
    roots: &Roots,
    argv: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), Fail> {
    let o = parse_args(argv)?;
    let s = Settings::load(roots, env)?;
    let mut r = BufReader::with_capacity(64 * 1024, input);
    let (head, body_start) = read_header(&mut r)?;
    let p = prepare(&o, &s, &head, crate::timefmt::now())?;
    let mut body = EnsureNewline {
        inner: (&body_start[..]).chain(r),
        any: false,
        last: 0,
        done: false,
    };
    if o.print {
        // As qmail-inject -n: the envelope sender first, as a Return-Path.
        let mut rp = b"Return-Path: <".to_vec();
        rp.extend_from_slice(&crate::smtp::addr::quote2(p.sender.as_bytes()));
        rp.extend_from_slice(b">\n");
        let res = out
            .write_all(&rp)
            .and_then(|()| out.write_all(&p.message))
            .and_then(|()| std::io::copy(&mut body, out).map(|_| ()))
            .and_then(|()| out.flush());
        return res.map_err(|e| Fail::temp(format!("qmail-inject: fatal: {}", super::errstr(&e))));
    }
    if p.recips.is_empty() {
        return Err(Fail::perm("qmail-inject: fatal: no recipients"));
    }
    let recips: Vec<Vec<u8>> = p
        .recips
        .iter()
        .map(|r| crate::vpop::entry::encode(r).into_owned())
        .collect();
    let prog = match env("QMAILQUEUE") {
        Some(q) if !q.is_empty() => std::path::PathBuf::from(q),
        _ => roots.qmail_bin("qmail-queue"),
    };
    qq::submit(
        &prog,
        &roots.qmail,
        &[],
        &p.message,
        &mut body,
        p.sender.as_bytes(),
        &recips,
    )
    .map(|_| ())
    .map_err(|e| e.to_fail("qmail-inject: fatal: ", ""))
}

/// What sendmail was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendmailAction {
    /// Inject with these qmail-inject arguments and extra environment.
    Inject(Vec<String>, Vec<(String, String)>),
    /// `-bp`: list the queue (qmail-qread).
    ListQueue,
    /// `-bs`: SMTP on stdin/stdout (qmail-smtpd).
    Smtp,
}

/// Parses sendmail's options as qmail's sendmail wrapper does.
pub fn sendmail_args(argv: &[String]) -> Result<SendmailAction, Fail> {
    let mut flag_t = false;
    let mut sender: Option<String> = None;
    let mut name: Option<String> = None;
    let mut action = None;
    let mut i = 0;
    let usage = || Fail::perm(SENDMAIL_USAGE);
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        // getopt style: flags may be grouped (-ti, -it), and an option with
        // a value takes the rest of its group or the next argument (-tf x).
        let mut k = 1;
        while k < a.len() {
            let opt = a.as_bytes()[k];
            let rest = a.get(k + 1..).unwrap_or("");
            let value = |i: &mut usize| -> Result<String, Fail> {
                if !rest.is_empty() {
                    Ok(rest.to_string())
                } else {
                    *i += 1;
                    argv.get(*i).cloned().ok_or_else(usage)
                }
            };
            let takes_value = b"frFboeBpNRVLhO".contains(&opt);
            match opt {
                b't' => flag_t = true,
                b'f' | b'r' => sender = Some(value(&mut i)?),
                b'F' => name = Some(value(&mut i)?),
                b'b' => match value(&mut i)?.as_str() {
                    "p" => action = Some(SendmailAction::ListQueue),
                    "s" => action = Some(SendmailAction::Smtp),
                    "m" => {}
                    _ => return Err(usage()),
                },
                // Ignored, with a value (-oi, -o i, -oem, -e m ...).
                b'o' | b'e' | b'B' | b'p' | b'N' | b'R' | b'V' | b'L' | b'h' | b'O' => {
                    let _ = value(&mut i)?;
                }
                // Ignored (-E and -J with whatever is attached).
                b'E' | b'J' => break,
                b'i' | b'v' | b'm' | b'x' | b'U' | b'G' => {}
                _ => return Err(usage()),
            }
            if takes_value {
                break;
            }
            k += 1;
        }
        i += 1;
    }
    if let Some(a) = action {
        return Ok(a);
    }
    let mut args = vec![if flag_t {
        "-H".to_string()
    } else {
        "-a".to_string()
    }];
    let mut env = Vec::new();
    if let Some(f) = sender {
        // As qmail's sendmail: the From line is built from the sender alone
        // (an empty value counts as unset).
        for var in ["QMAILNAME", "NAME", "QMAILHOST", "MAILHOST"] {
            env.push((var.to_string(), String::new()));
        }
        if name.is_none() {
            env.push(("MAILNAME".to_string(), String::new()));
        }
        let bare = f.trim_start_matches('<').trim_end_matches('>').to_string();
        match bare.rfind('@') {
            Some(at) => {
                env.push(("QMAILUSER".to_string(), bare[..at].to_string()));
                env.push(("QMAILHOST".to_string(), bare[at + 1..].to_string()));
            }
            None if !bare.is_empty() => env.push(("QMAILUSER".to_string(), bare.clone())),
            None => {}
        }
        args.push("-f".to_string());
        args.push(bare);
    }
    if let Some(n) = name {
        env.push(("MAILNAME".to_string(), n));
    }
    // The last setting of a variable wins.
    let mut seen = std::collections::HashSet::new();
    env.reverse();
    env.retain(|(k, _)| seen.insert(k.clone()));
    env.reverse();
    args.push("--".to_string());
    args.extend(argv[i.min(argv.len())..].iter().cloned());
    Ok(SendmailAction::Inject(args, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Settings {
        Settings {
            defaults: Defaults {
                host: "example.com".into(),
                domain: "example.com".into(),
                plus: "example.com".into(),
            },
            user: "joe".into(),
            host: "example.com".into(),
            name: Some("Joe User".into()),
            suser: "joe".into(),
            shost: "example.com".into(),
            idhost: "id.example.com".into(),
            flags: String::new(),
            mft: Vec::new(),
        }
    }

    #[test]
    fn envelope_addresses_stop_at_nul_and_refuse_control_characters() {
        let o = parse_args(&a(&["-h"])).unwrap();
        let p = prepare(&o, &s(), b"To: a@b.org\0Tevil@x.org, c@d.org\n\nhi\n", 0).unwrap();
        assert_eq!(p.recips, ["a@b.org", "c@d.org"]);
        let e = prepare(&o, &s(), b"To: \"x\ny\"@b.org\n\nhi\n", 0).unwrap_err();
        assert_eq!(e.code, 100);
    }

    #[test]
    fn arguments_and_headers_as_qmail_inject_reads_them() {
        let out = |args: &[&str], input: &[u8]| {
            let o = parse_args(&a(args)).unwrap();
            prepare(&o, &s(), input, 0).unwrap()
        };
        // Arguments are addresses: spaces, comments and line ends go.
        let p = out(&["bob@x.org ", "c@d.org (C)", "e@f.org\r\n"], b"\nhi\n");
        assert_eq!(p.recips, ["bob@x.org", "c@d.org", "e@f.org"]);
        let p = out(
            &["@r1.org,@r2.org:u@h.org", "w@[IPv6:2001:db8::1]"],
            b"\nhi\n",
        );
        assert_eq!(p.recips, ["u@h.org", "w@[IPv6:2001:db8::1]"]);
        let p = out(&["-f", "me@x.org (Me)", "bob"], b"\nhi\n");
        assert_eq!(p.sender, "me@x.org");
        assert_eq!(p.recips, ["bob@example.com"]);
        // Only qmail's Resent- fields make a resent message.
        let p = out(&["-h"], b"To: bob\nResent-Comment: x\n\nhi\n");
        assert_eq!(p.recips, ["bob@example.com"]);
        assert!(p.message.starts_with(b"Date: "));
        // The first Return-Path counts, completed.
        let p = out(
            &["bob"],
            b"Return-Path: <joe>\nReturn-Path: <x@y.org>\n\nhi\n",
        );
        assert_eq!(p.sender, "joe@example.com");
        let p = out(&["bob"], b"Return-Path: b@x.org, c@y.org\n\nhi\n");
        assert_eq!(p.sender, "c@y.org");
        // A user name that needs quoting is quoted in From; a comment is escaped.
        let st = Settings {
            user: "a b".into(),
            name: Some("J (x) \\".into()),
            flags: "c".into(),
            ..s()
        };
        let o = parse_args(&a(&["bob"])).unwrap();
        let p = prepare(&o, &st, b"\nhi\n", 0).unwrap();
        let m = String::from_utf8_lossy(&p.message).into_owned();
        assert!(
            m.contains("From: \"a b\"@example.com (J \\(x\\) \\\\)\n"),
            "{m}"
        );
    }

    #[test]
    fn verp_flags() {
        let o = parse_args(&a(&["bob"])).unwrap();
        let sender = |flags: &str, input: &[u8]| {
            let st = Settings {
                flags: flags.into(),
                ..s()
            };
            prepare(&o, &st, input, 1_700_000_000).unwrap().sender
        };
        let pid = std::process::id();
        assert_eq!(sender("", b"\n"), "joe@example.com");
        assert_eq!(sender("r", b"\n"), "joe-@example.com-@[]");
        assert_eq!(
            sender("m", b"\n"),
            format!("joe-1700000000.{pid}@example.com")
        );
        assert_eq!(
            sender("mr", b"\n"),
            format!("joe-1700000000.{pid}-@example.com-@[]")
        );
        // A Return-Path field gets the -@[] as it is; <> stays <>.
        assert_eq!(
            sender("r", b"Return-Path: <list-owner@x.org>\n\n"),
            "list-owner@x.org-@[]"
        );
        assert_eq!(sender("r", b"Return-Path: <>\n\n"), "");
        // -f is taken as given.
        let o = parse_args(&a(&["-f", "me@x.org", "bob"])).unwrap();
        let st = Settings {
            flags: "mr".into(),
            ..s()
        };
        assert_eq!(prepare(&o, &st, b"\n", 0).unwrap().sender, "me@x.org");
    }

    #[test]
    fn mail_followup_to() {
        let st = Settings {
            mft: vec!["list@lists.example.org".into()],
            ..s()
        };
        let o = parse_args(&a(&["-H"])).unwrap();
        let head = |input: &[u8]| {
            let p = prepare(&o, &st, input, 0).unwrap();
            let t = String::from_utf8(p.message).unwrap();
            t.split("\n\n").next().unwrap().to_string()
        };
        let h = head(
            b"To: List@Lists.Example.ORG, \"a b\"@x.org\nCc: carol\nBcc: hidden@x.org\n\nhi\n",
        );
        assert!(
            h.contains("\nMail-Followup-To: List@Lists.Example.ORG,\n  \"a b\"@x.org,\n  carol@example.com\n"),
            "{h}"
        );
        // Not to a list, already there, or a Resent- message: none added.
        assert!(!head(b"To: bob@x.org\n\nhi\n").contains("Mail-Followup-To"));
        let h = head(b"To: list@lists.example.org\nMail-Followup-To: me@x.org\n\nhi\n");
        assert_eq!(h.matches("Mail-Followup-To").count(), 1, "{h}");
        let h = head(b"To: list@lists.example.org\nResent-To: bob@x.org\n\nhi\n");
        assert!(!h.contains("Mail-Followup-To"), "{h}");
    }

    #[test]
    fn mbox_from_lines_become_mbox_line_fields() {
        let o = parse_args(&a(&["bob"])).unwrap();
        let input = b"From joe@x.org Sat Dec  5 10:00:00 2026\nSubject: s\nFrom nobody\n  more\n\nFrom body\n";
        let mut r: &[u8] = input;
        let (h, b) = read_header(&mut r).unwrap();
        assert!(b.is_empty());
        let p = prepare(&o, &s(), &h, 0).unwrap();
        let t = String::from_utf8(p.message).unwrap();
        assert!(t.ends_with("MBOX-Line: From joe@x.org Sat Dec  5 10:00:00 2026\nSubject: s\nMBOX-Line: From nobody\n  more\n\n"), "{t}");
        assert!(r.starts_with(b"From body"));
    }

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn line_breaks_in_names_start_no_header() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(d.path().join("q"), d.path().join("v"));
        let env = |n: &str| match n {
            "QMAILNAME" => Some("Joe\r\nBcc: victim@example.net".to_string()),
            "QMAILUSER" => Some("joe\nX: y".to_string()),
            "QMAILHOST" => Some("example.com".to_string()),
            _ => None,
        };
        let st = Settings::load(&roots, &env).unwrap();
        assert!(!st.name.as_deref().unwrap().contains(['\r', '\n']));
        assert!(!st.user.contains('\n'));
        let o = parse_args(&a(&["-H"])).unwrap();
        let p = prepare(&o, &st, b"To: bob@example.com\n\nbody\n", 0).unwrap();
        let text = String::from_utf8_lossy(&p.message);
        let head = text.split("\n\n").next().unwrap();
        assert!(
            !head
                .lines()
                .any(|l| l.starts_with("Bcc:") || l.starts_with("X:")),
            "{head}"
        );
    }

    #[test]
    fn options() {
        let o = parse_args(&a(&["-h", "-fme@x.org", "--", "r@y"])).unwrap();
        assert_eq!(o.mode, Mode::Header);
        assert_eq!(o.sender.as_deref(), Some("me@x.org"));
        assert_eq!(o.recips, a(&["r@y"]));
        let o = parse_args(&a(&["-f", "me@x.org", "r"])).unwrap();
        assert_eq!(o.sender.as_deref(), Some("me@x.org"));
        assert_eq!(parse_args(&a(&["-z"])).unwrap_err().code, 100);
    }

    #[test]
    fn rewrites_header_and_keeps_body() {
        let input = b"To: bob, Carol <carol@box>\nBcc: secret@x.org\nReturn-Path: <rp@x.org>\nSubject: hi\n  folded\n\nbody\r\n\x00\xff\nFrom x\n";
        let o = parse_args(&a(&["-H"])).unwrap();
        let p = prepare(&o, &s(), input, 812090813).unwrap();
        let text = p.message.clone();
        let (head, body) = text.split_at(text.windows(2).position(|w| w == b"\n\n").unwrap() + 2);
        let head = String::from_utf8(head.to_vec()).unwrap();
        assert!(
            head.starts_with("Date: 26 Sep 1995 04:46:53 -0000\nMessage-ID: <"),
            "{head}"
        );
        assert!(
            head.ends_with(
                "From: Joe User <joe@example.com>\nTo: bob@example.com, Carol <carol@box.example.com>\nSubject: hi\n  folded\n\n"
            ),
            "{head}"
        );
        assert!(!head.contains("Bcc"));
        assert!(!head.contains("Return-Path"));
        assert!(head.contains("Date: 26 Sep 1995 04:46:53 -0000\n"));
        assert!(head.contains(&format!(
            "Message-ID: <19950926044653.{}.qmail@id.example.com>\n",
            std::process::id()
        )));
        assert!(head.contains("From: Joe User <joe@example.com>\n"));
        assert_eq!(body, b"body\r\n\x00\xff\nFrom x\n");
        assert_eq!(p.sender, "rp@x.org");
        assert_eq!(
            p.recips,
            a(&["bob@example.com", "carol@box.example.com", "secret@x.org"])
        );
    }

    #[test]
    fn recipient_modes_and_sender() {
        let input = b"To: t@x.org\nFrom: f@x.org\n\nb\n";
        let p = prepare(&parse_args(&a(&["r@y.org"])).unwrap(), &s(), input, 0).unwrap();
        assert_eq!(p.recips, a(&["r@y.org"]));
        assert_eq!(p.sender, "joe@example.com");
        let p = prepare(&parse_args(&a(&[])).unwrap(), &s(), input, 0).unwrap();
        assert_eq!(p.recips, a(&["t@x.org"]));
        let p = prepare(&parse_args(&a(&["-a", "-f", ""])).unwrap(), &s(), input, 0).unwrap();
        assert!(p.recips.is_empty());
        assert_eq!(p.sender, "");
        let mut st = s();
        st.flags = "s".into();
        let p = prepare(
            &parse_args(&a(&[])).unwrap(),
            &st,
            b"Return-Path: <x@y.org>\nTo: a@b.org\n\n",
            0,
        )
        .unwrap();
        assert_eq!(p.sender, "joe@example.com");
        // No To/Cc.
        let p = prepare(
            &parse_args(&a(&["r@y.org"])).unwrap(),
            &s(),
            b"Subject: s\n\nb",
            0,
        )
        .unwrap();
        let m = String::from_utf8(p.message).unwrap();
        assert!(m.contains("Cc: recipient list not shown: ;\n"));
        assert!(m.ends_with("\n\nb\n"));
    }

    #[test]
    fn resent_fields_give_recipients() {
        let input = b"To: old@x.org\nResent-To: new@x.org\nResent-Bcc: hidden@x.org\n\nb\n";
        let p = prepare(&parse_args(&a(&["-h"])).unwrap(), &s(), input, 0).unwrap();
        assert_eq!(p.recips, a(&["new@x.org", "hidden@x.org"]));
        let m = String::from_utf8_lossy(&p.message).into_owned();
        assert!(!m.contains("hidden"));
        assert!(m.starts_with("Resent-Date: "), "{m}");
        assert!(m.contains("\nResent-Message-ID: <"));
        assert!(m.contains("\nResent-From: Joe User <joe@example.com>\n"));
        assert!(!m.contains("\nDate:"));
    }

    #[test]
    fn header_reading_and_final_newline() {
        let mut r: &[u8] = b"From x y\nTo: a\n b\nSubject: s\n\nbody";
        let (h, b) = read_header(&mut r).unwrap();
        assert_eq!(h, b"From x y\nTo: a\n b\nSubject: s\n");
        assert!(b.is_empty());
        assert_eq!(r, b"body");
        let mut r: &[u8] = b"To: a\nnot a header line\nmore\n";
        let (h, b) = read_header(&mut r).unwrap();
        assert_eq!(h, b"To: a\n");
        assert_eq!(b, b"not a header line\n");
        let mut out = Vec::new();
        let mut e = EnsureNewline {
            inner: &b"abc"[..],
            any: false,
            last: 0,
            done: false,
        };
        std::io::copy(&mut e, &mut out).unwrap();
        assert_eq!(out, b"abc\n");
        let mut out = Vec::new();
        let mut e = EnsureNewline {
            inner: &b""[..],
            any: false,
            last: 0,
            done: false,
        };
        std::io::copy(&mut e, &mut out).unwrap();
        assert!(out.is_empty());
    }

    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn header_reading_in_any_chunking() {
        let input = b"To: a@b.org,\n c@d.org\r\nSubject: x\n\nbody\nline\n";
        for size in 1..=512 {
            let mut r = BufReader::with_capacity(size.max(1), Chunks(input, size));
            let (h, b) = read_header(&mut r).unwrap();
            assert_eq!(h, b"To: a@b.org,\n c@d.org\r\nSubject: x\n", "chunk {size}");
            assert!(b.is_empty());
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"body\nline\n", "chunk {size}");
        }
    }

    #[test]
    fn sendmail_options() {
        match sendmail_args(&a(&[
            "-t",
            "-i",
            "-oi",
            "-f",
            "www@site.org",
            "-F",
            "Web Site",
        ]))
        .unwrap()
        {
            SendmailAction::Inject(args, env) => {
                assert_eq!(args, a(&["-H", "-f", "www@site.org", "--"]));
                let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                assert_eq!(get("QMAILUSER"), Some("www"));
                assert_eq!(get("QMAILHOST"), Some("site.org"));
                assert_eq!(get("NAME"), Some(""));
                assert!(env.contains(&("MAILNAME".into(), "Web Site".into())));
            }
            x => panic!("{x:?}"),
        }
        match sendmail_args(&a(&["-oem", "-fx@y", "a@b", "-c@d"])).unwrap() {
            SendmailAction::Inject(args, _) => {
                assert_eq!(args, a(&["-a", "-f", "x@y", "--", "a@b", "-c@d"]))
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(
            sendmail_args(&a(&["-bp"])).unwrap(),
            SendmailAction::ListQueue
        );
        assert_eq!(sendmail_args(&a(&["-bs"])).unwrap(), SendmailAction::Smtp);
        // Grouped flags, as PHP and cron pass them.
        for argv in [&["-ti"][..], &["-it"], &["-t", "-i"]] {
            match sendmail_args(&a(argv)).unwrap() {
                SendmailAction::Inject(args, _) => assert_eq!(args, a(&["-H", "--"]), "{argv:?}"),
                x => panic!("{x:?}"),
            }
        }
        match sendmail_args(&a(&["-tf", "x@y", "-oi"])).unwrap() {
            SendmailAction::Inject(args, _) => assert_eq!(args, a(&["-H", "-f", "x@y", "--"])),
            x => panic!("{x:?}"),
        }
        match sendmail_args(&a(&["-itfx@y", "r@z"])).unwrap() {
            SendmailAction::Inject(args, _) => {
                assert_eq!(args, a(&["-H", "-f", "x@y", "--", "r@z"]))
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(sendmail_args(&a(&["-q"])).unwrap_err().text, SENDMAIL_USAGE);
        assert_eq!(sendmail_args(&a(&["-é"])).unwrap_err().code, 100);
        assert_eq!(parse_args(&a(&["-é"])).unwrap_err().code, 100);
    }
}
