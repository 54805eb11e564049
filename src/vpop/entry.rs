//! One line of a domain's `vpasswd` file (vpasswd(5)).
//!
//! ```text
//! name:crypted:uid:flags:gecos:dir:quota[:clear]
//! joe:$1$AbCdEfGh$...:1:0:Joe User:/home/vpopmail/domains/example.com/joe:NOQUOTA:secret
//! ```
//!
//! The fourth field is the `pw_gid` of vpopmail's `struct vqpasswd`, used as a
//! set of per-user flag bits ([`crate::vpop::flags`]). The eighth field, the clear
//! password, is optional; when it is absent the line has seven fields (fewer
//! read as empty fields, as vpopmail reads them). Everything
//! after the seventh `:` is the clear password, so a clear password containing `:`
//! survives. Every field is kept as read, so an unchanged entry is written back
//! byte for byte.

use std::fmt;

/// Field length limits (vpopmail's `MAX_PW_*`).
pub const MAX_NAME: usize = 32;
/// Longest domain name.
pub const MAX_DOMAIN: usize = 96;
/// Longest crypted password.
pub const MAX_PASSWD: usize = 128;
/// Longest gecos.
pub const MAX_GECOS: usize = 48;
/// Longest clear password.
pub const MAX_CLEAR: usize = 128;
/// Longest directory.
pub const MAX_DIR: usize = 160;
/// Longest quota field.
pub const MAX_QUOTA: usize = 20;

/// One vpasswd entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The user name (the local part, lowercase).
    pub name: String,
    /// The crypted password (DES, `$1$`, `$5$`, `$6$`, `$2y$`), or empty.
    pub passwd: String,
    /// vpopmail's "uid" field: `1` normal, `2` APOP (legacy). Not a unix uid.
    pub uid: String,
    /// Per-user flag bits (the "gid" field), see [`crate::vpop::flags`].
    pub flags: u32,
    /// The comment (full name); never contains `:`.
    pub gecos: String,
    /// The user directory (absolute; the Maildir is `dir/Maildir`).
    pub dir: String,
    /// The quota: `NOQUOTA`, `NNNS`, `NNNC` or `NNNS,NNNC`.
    pub quota: String,
    /// The clear-text password field, when the line has one.
    pub clear: Option<String>,
    /// The flags field exactly as read, with the value it had then.
    raw_flags: Option<(String, u32)>,
}

/// Why a line is not a vpasswd entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// C's `atoi` on a field: optional leading blanks and sign, then digits.
pub(crate) fn atoi_u32(s: &str) -> u32 {
    let t = s.trim_start_matches([' ', '\t']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: u64 = 0;
    for c in t.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + u64::from(c - b'0')) & 0xffff_ffff;
    }
    let v = v as u32;
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

impl Entry {
    /// A new entry as vadduser makes it: uid `1`, no flags, quota `NOQUOTA`,
    /// gecos defaulting to the name, no clear password.
    pub fn new(name: &str, passwd: &str, gecos: &str, dir: &str) -> Entry {
        Entry {
            name: name.to_string(),
            passwd: passwd.to_string(),
            uid: "1".to_string(),
            flags: 0,
            gecos: if gecos.is_empty() {
                name.to_string()
            } else {
                strip_colons(gecos)
            },
            dir: dir.to_string(),
            quota: "NOQUOTA".to_string(),
            clear: None,
            raw_flags: None,
        }
    }

    /// Parses one line (a trailing `\n` or `\r\n` is ignored).
    pub fn parse(line: &str) -> Result<Entry, ParseError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (name, rest) = line
            .split_once(':')
            .ok_or(ParseError("no ':' in vpasswd line"))?;
        Entry::from_parts(name, rest)
    }

    /// Builds an entry from the name and the rest of its line (a vpasswd.cdb
    /// record: key = name, data = everything after the first `:`).
    pub fn from_parts(name: &str, rest: &str) -> Result<Entry, ParseError> {
        if name.is_empty() {
            return Err(ParseError("empty user name in vpasswd line"));
        }
        // Missing trailing fields are empty, as vpopmail's vauth_getpw reads
        // them (a hand-written `name:hash:1:0:gecos:dir` has no quota field).
        let mut it = rest.splitn(7, ':');
        let passwd = it.next().unwrap_or("");
        let uid = it.next().unwrap_or("");
        let flags = it.next().unwrap_or("");
        let gecos = it.next().unwrap_or("");
        let dir = it.next().unwrap_or("");
        let quota = it.next().unwrap_or("");
        let clear = it.next().map(str::to_string);
        let fv = atoi_u32(flags);
        Ok(Entry {
            name: name.to_string(),
            passwd: passwd.to_string(),
            uid: uid.to_string(),
            flags: fv,
            gecos: gecos.to_string(),
            dir: dir.to_string(),
            quota: quota.to_string(),
            clear,
            raw_flags: Some((flags.to_string(), fv)),
        })
    }

    /// The flags field as written: the original text while the value is unchanged.
    fn flags_text(&self) -> String {
        match &self.raw_flags {
            Some((raw, v)) if *v == self.flags => raw.clone(),
            _ => self.flags.to_string(),
        }
    }

    /// Everything after the name and its `:` (the vpasswd.cdb data), no newline.
    pub fn rest(&self) -> String {
        let mut s = format!(
            "{}:{}:{}:{}:{}:{}",
            self.passwd,
            self.uid,
            self.flags_text(),
            self.gecos,
            self.dir,
            self.quota
        );
        if let Some(c) = &self.clear {
            s.push(':');
            s.push_str(c);
        }
        s
    }

    /// The line, without the trailing newline.
    pub fn to_line(&self) -> String {
        format!("{}:{}", self.name, self.rest())
    }

    /// True when the flag bit(s) are set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The Maildir of this user (`dir/Maildir`).
    pub fn maildir(&self) -> std::path::PathBuf {
        self.dir_path().join("Maildir")
    }

    /// The user's directory as a path, with its bytes as vpasswd has them.
    pub fn dir_path(&self) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStrExt;
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&encode(&self.dir)))
    }

    /// The clear password, when one is stored and non-empty.
    pub fn clear_password(&self) -> Option<&str> {
        self.clear.as_deref().filter(|c| !c.is_empty())
    }
}

/// Removes every `:` (vpopmail strips them from the gecos).
pub fn strip_colons(s: &str) -> String {
    s.chars().filter(|&c| c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[&str] = &[
        "joe:$1$AbCdEfGh$0123456789abcdefghijkl:1:0:Joe User:/home/vpopmail/domains/example.com/joe:NOQUOTA:secret",
        "postmaster:$1$saltsalt$abcdefghijklmnopqrstuv:1:0:Postmaster:/home/vpopmail/domains/example.com/postmaster:NOQUOTA",
        "ann:aZGJuE6EXrjEE:1:2048:ann:/home/vpopmail/domains/example.com/0/ann:52428800S,1000C:",
        "bob:$6$abcdefgh$x:2:4163:Bob:/home/vpopmail/domains/example.com/bob:52428800S:pa:ss:wd",
        "odd:x:1:007:g:/d:NOQUOTA",
        "empty::1:0::/d::",
    ];

    #[test]
    fn golden_lines_round_trip_byte_for_byte() {
        for l in GOLDEN {
            let e = Entry::parse(l).unwrap();
            assert_eq!(e.to_line(), *l);
            let e2 = Entry::parse(&format!("{l}\n")).unwrap();
            assert_eq!(e2, e);
        }
    }

    #[test]
    fn fields() {
        let e = Entry::parse(GOLDEN[0]).unwrap();
        assert_eq!(e.name, "joe");
        assert_eq!(e.passwd, "$1$AbCdEfGh$0123456789abcdefghijkl");
        assert_eq!(e.uid, "1");
        assert_eq!(e.flags, 0);
        assert_eq!(e.gecos, "Joe User");
        assert_eq!(e.dir, "/home/vpopmail/domains/example.com/joe");
        assert_eq!(e.quota, "NOQUOTA");
        assert_eq!(e.clear.as_deref(), Some("secret"));
        let e = Entry::parse(GOLDEN[1]).unwrap();
        assert_eq!(e.clear, None);
        let e = Entry::parse(GOLDEN[3]).unwrap();
        assert_eq!(e.flags, 4163);
        assert_eq!(e.clear.as_deref(), Some("pa:ss:wd"));
        assert_eq!(Entry::parse(GOLDEN[2]).unwrap().clear_password(), None);
    }

    #[test]
    fn changed_flags_are_written_in_decimal() {
        let mut e = Entry::parse(GOLDEN[4]).unwrap();
        assert_eq!(e.flags, 7);
        assert_eq!(e.to_line(), GOLDEN[4]);
        e.flags |= 0x800;
        assert_eq!(e.to_line(), "odd:x:1:2055:g:/d:NOQUOTA");
    }

    #[test]
    fn cdb_data_is_rest_of_line() {
        let e = Entry::parse(GOLDEN[0]).unwrap();
        assert_eq!(format!("joe:{}", e.rest()), GOLDEN[0]);
        let f = Entry::from_parts("joe", &e.rest()).unwrap();
        assert_eq!(f, e);
    }

    #[test]
    fn bad_lines() {
        assert!(Entry::parse("").is_err());
        assert!(Entry::parse("joe").is_err());
        assert!(Entry::parse(":x:1:0:g:/d:NOQUOTA").is_err());
    }

    #[test]
    fn missing_trailing_fields_are_empty() {
        let e = Entry::parse("joe:x:1:0:g:/d").unwrap();
        assert_eq!(
            (e.dir.as_str(), e.quota.as_str(), e.clear.as_deref()),
            ("/d", "", None)
        );
        let e = Entry::parse("joe:x").unwrap();
        assert_eq!(
            (e.passwd.as_str(), e.uid.as_str(), e.flags, e.dir.as_str()),
            ("x", "", 0, "")
        );
    }

    #[test]
    fn new_entry_like_vadduser() {
        let e = Entry::new("joe", "$6$s$h", "J:o:e", "/d/joe");
        assert_eq!(e.to_line(), "joe:$6$s$h:1:0:Joe:/d/joe:NOQUOTA");
        let e = Entry::new("joe", "$6$s$h", "", "/d/joe");
        assert_eq!(e.gecos, "joe");
    }

    #[test]
    fn atoi() {
        assert_eq!(atoi_u32("12abc"), 12);
        assert_eq!(atoi_u32(""), 0);
        assert_eq!(atoi_u32(" 7"), 7);
        assert_eq!(atoi_u32("x"), 0);
    }
}

/// The escape of [`decode`]'s private-use range.
const ESC: char = '\u{F700}';

fn in_range(c: char) -> bool {
    ('\u{F700}'..='\u{F7FF}').contains(&c)
}

/// vpasswd text as a `String` without losing bytes: valid UTF-8 is kept, and
/// each byte that is not (ISO-8859-1 names and passwords from older hosts)
/// becomes a character of the private-use range U+F780..U+F7FF; a character
/// of U+F700..U+F7FF that really is in the text gets U+F700 in front, so
/// [`encode`] turns every string back into exactly the bytes it came from.
/// A line the tools do not change is written back byte for byte, and a
/// stored clear-text password compares as the bytes it is. Text typed or
/// given on the command line goes through here too.
pub fn decode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if in_range(c) {
                s.push(ESC);
            }
            s.push(c);
        }
        for &x in chunk.invalid() {
            s.push(char::from_u32(0xF700 + u32::from(x)).expect("U+F780..U+F7FF"));
        }
    }
    s
}

/// The bytes of text made by [`decode`].
pub fn encode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    if !s.chars().any(in_range) {
        return std::borrow::Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let n = u32::from(c);
        if c == ESC {
            // An escaped character of the range, as it was.
            let e = chars.next().unwrap_or(ESC);
            out.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
        } else if (0xF780..=0xF7FF).contains(&n) {
            out.push((n - 0xF700) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod bytes_tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_survive() {
        let line: &[u8] = b"anna:$6$x$y:1:0:Anna M\xfcller:/d/anna:NOQUOTA:p\xe4ss \xc3\xa9t\xc3";
        let s = decode(line);
        assert_eq!(&*encode(&s), line);
        let e = Entry::parse(&s).unwrap();
        assert_eq!(
            &*encode(e.clear_password().unwrap()),
            b"p\xe4ss \xc3\xa9t\xc3"
        );
        assert_eq!(&*encode(&e.to_line()), line);
        assert_eq!(decode("plain é".as_bytes()), "plain é");
        // Characters of the private-use range that are really in the text
        // stay themselves.
        for t in [
            "Dora \u{F7E9}",
            "x\u{F700}y",
            "\u{F700}",
            "a\u{F780}\u{F7FF}b",
        ] {
            assert_eq!(&*encode(&decode(t.as_bytes())), t.as_bytes(), "{t:?}");
        }
        let mixed: &[u8] = b"\xef\x9f\xa9\xe9\xef\x9c\x80\xff";
        assert_eq!(&*encode(&decode(mixed)), mixed);
    }
}
