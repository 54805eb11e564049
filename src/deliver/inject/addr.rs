//! Address lists in header fields (RFC 5322 section 3.4), as far as
//! qmail-inject needs them: find each address, rewrite it with the default
//! host and domain, and collect recipients. Comments, quoted strings,
//! `<route-addr>` and `group: a, b;` are understood; anything else is copied.

/// How addresses without a full domain are completed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Added as `@host` to an address without `@` (defaulthost).
    pub host: String,
    /// Appended as `.domain` to a host without a dot (defaultdomain).
    pub domain: String,
    /// Replaces a trailing `+` of a host (plusdomain).
    pub plus: String,
}

impl Defaults {
    /// [`Defaults::complete`] for an address of a header field, read as
    /// token822 words: one trailing dot goes first (qmail-inject's
    /// rwextradot), so `joe@example.com.` is `joe@example.com`, delivered
    /// here when that is a local domain. (A quoted local part, as qmail
    /// makes of a command-line argument, keeps its dot.)
    pub fn complete_word(&self, addr: &str) -> String {
        let addr = addr.strip_suffix('.').unwrap_or(addr);
        self.complete_at(addr, last_at_unquoted(addr))
    }

    /// Completes one address: `joe` -> `joe@host`, `joe@box` ->
    /// `joe@box.domain`, `joe@box+` -> `joe@box.plusdomain`. The empty
    /// address and `#@[]`-style addresses are left alone.
    pub fn complete(&self, addr: &str) -> String {
        self.complete_at(addr, addr.rfind('@'))
    }

    /// [`Defaults::complete`] with the `@` that ends the local part given.
    fn complete_at(&self, addr: &str, at: Option<usize>) -> String {
        if addr.is_empty() {
            return String::new();
        }
        let (local, host) = match at {
            // `root@` is `root` (qmail gives it the default host too).
            Some(i) if i + 1 < addr.len() => (&addr[..i], addr[i + 1..].to_string()),
            Some(i) => (&addr[..i], self.host.clone()),
            None => (addr, self.host.clone()),
        };
        let mut host = host;
        if let Some(h) = host.strip_suffix('+') {
            host = if self.plus.is_empty() {
                // An empty plusdomain (a sandbox's dotless host): the `+`
                // goes, rather than leave a trailing dot.
                h.to_string()
            } else if h.is_empty() {
                self.plus.clone()
            } else {
                format!("{h}.{}", self.plus)
            };
        }
        if !host.is_empty()
            && !host.contains('.')
            && !host.starts_with('[')
            && !self.domain.is_empty()
        {
            host = format!("{host}.{}", self.domain);
        }
        if host.is_empty() {
            local.to_string()
        } else {
            format!("{local}@{host}")
        }
    }
}

/// Where the `>` that closes a `<` is, in what follows the `<`: the first
/// one outside a quoted string or comment and not escaped (`<"a>b"@x.org>`,
/// `<joe@x.org (see <http://x>)>`). A `<` before it means this one was
/// never closed (`<c@d.org, <e@f.org>`).
fn close_angle(b: &[u8]) -> Option<usize> {
    outside(b)
        .find(|&k| matches!(b[k], b'<' | b'>'))
        .filter(|&k| b[k] == b'>')
}

/// Where an unclosed `<`'s address ends, in what follows it: at the first
/// `,`, or in a group the `;` ending it, outside a quoted string, comment or
/// domain literal.
fn unclosed_end(b: &[u8], in_group: bool) -> Option<usize> {
    let stops: &[u8] = if in_group { b",;" } else { b"," };
    outside(b).find(|&k| stops.contains(&b[k]))
}

/// The last `@` of a header address outside a quoted string or domain
/// literal and not escaped: in `"a@b"` there is none, as token822 reads it.
fn last_at_unquoted(addr: &str) -> Option<usize> {
    let b = addr.as_bytes();
    outside(b).filter(|&k| b[k] == b'@').last()
}

/// The positions of the bytes of `b` that are outside quoted strings,
/// comments and domain literals, and not escaped (their delimiters left out).
fn outside(b: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let (mut quoted, mut literal, mut escaped, mut depth) = (false, false, false, 0usize);
    b.iter().enumerate().filter_map(move |(k, &c)| {
        match c {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' if depth == 0 && !literal => quoted = !quoted,
            b'[' if depth == 0 && !quoted => literal = true,
            b']' if literal => literal = false,
            _ if literal => {}
            b'(' if !quoted => depth += 1,
            b')' if !quoted && depth > 0 => depth -= 1,
            _ if !quoted && depth == 0 => return Some(k),
            _ => {}
        }
        None
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Copied as is (atoms, specials, white space, comments, quoted strings).
    Text(String, bool),
    /// `<...>` content.
    Angle(String),
    Comma,
    Colon,
    Semi,
}

fn tokenize(v: &str) -> Vec<Tok> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Inside a group (`name:` seen, its `;` not yet).
    let mut in_group = false;
    while i < b.len() {
        match b[i] {
            b'(' => {
                let start = i;
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Tok::Text(v[start..i.min(b.len())].to_string(), true));
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push(Tok::Text(v[start..i].to_string(), false));
            }
            b'<' => {
                let start = i + 1;
                match close_angle(&b[start..]) {
                    Some(k) => {
                        out.push(Tok::Angle(v[start..start + k].to_string()));
                        i = start + k + 1;
                    }
                    // Never closed: the address ends at the next comma (or
                    // the `;` ending a group), so the rest of the list keeps
                    // its own addresses. A `<` with nothing after it but
                    // comments is no address: it stays in the header as a
                    // comment would, and takes none away.
                    None => {
                        let end =
                            unclosed_end(&b[start..], in_group).map_or(b.len(), |k| start + k);
                        if bare_spec(&v[start..end]).is_empty() {
                            out.push(Tok::Text("<".to_string(), true));
                            i = start;
                        } else {
                            out.push(Tok::Angle(v[start..end].to_string()));
                            i = end;
                        }
                    }
                }
            }
            // A domain literal (`[IPv6:2001:db8::1]`) is one word: its colons
            // are not a group's.
            b'[' => {
                let start = i;
                while i < b.len() && b[i] != b']' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push(Tok::Text(v[start..i].to_string(), false));
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b':' => {
                out.push(Tok::Colon);
                in_group = true;
                i += 1;
            }
            b';' => {
                out.push(Tok::Semi);
                in_group = false;
                i += 1;
            }
            _ => {
                // A backslash takes the next character into the word, as
                // token822 reads a quoted pair: `a\,b` is one address.
                let start = i;
                while i < b.len() && !b"(\"<,:;[".contains(&b[i]) {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = i.min(b.len());
                out.push(Tok::Text(v[start..i].to_string(), false));
            }
        }
    }
    out
}

/// token822's token kinds, as far as [`parses`] needs them.
#[derive(Clone, Copy, PartialEq)]
enum T {
    Word,
    Comment,
    Left,
    Right,
    Comma,
    Colon,
    Semi,
    Other,
}

/// token822_parse's half of [`parses`]: the tokens, or `None` when a
/// comment, quoted string or domain literal is left open or a word starts
/// with `)` or `]`. qmail-inject applies only this to an argument's domain.
fn lex(value: &str) -> Option<Vec<T>> {
    let b = value.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b')' | b']' => return None,
            open @ (b'(' | b'"' | b'[') => {
                let close = match open {
                    b'(' => b')',
                    b'"' => b'"',
                    _ => b']',
                };
                let mut level = 1;
                while level > 0 {
                    i += 1;
                    match b.get(i) {
                        None => return None,
                        Some(&b'\\') => {
                            i += 1;
                            if i >= b.len() {
                                return None;
                            }
                        }
                        Some(&c) if c == close => level -= 1,
                        Some(&b'(') if open == b'(' => level += 1,
                        Some(_) => {}
                    }
                }
                toks.push(if open == b'(' { T::Comment } else { T::Word });
            }
            b'<' => toks.push(T::Left),
            b'>' => toks.push(T::Right),
            b',' => toks.push(T::Comma),
            b':' => toks.push(T::Colon),
            b';' => toks.push(T::Semi),
            b'.' | b'@' => toks.push(T::Other),
            _ => {
                // An atom runs on over `)` and `]` (token822's atomok).
                while i < b.len() && !b" \t\r\n([\"<>,:;.@".contains(&b[i]) {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i -= 1;
                toks.push(T::Word);
            }
        }
        i += 1;
    }
    Some(toks)
}

/// Whether `value` passes token822_parse (see [`lex`]).
pub fn lexes(value: &str) -> bool {
    lex(value).is_some()
}

/// Whether qmail-inject could parse `value` as an address list, as
/// qmail's token822 parser decides: every comment, quoted string and
/// domain literal is closed (a backslash escapes the next character), no
/// word starts with `)` or `]`, every `>` has its `<`, and groups are well
/// formed (`name: a, b;`, read from the right: a `:` ends a group a `;`
/// opened, and groups do not nest). qmail refuses a message with such a
/// field rather than guess its addresses.
pub fn parses(value: &str) -> bool {
    let Some(toks) = lex(value) else {
        return false;
    };
    // A `<` right after another that was not closed (no comma between):
    // `<<a@b.org>` would make `<a@b.org` a recipient.
    let (mut open, mut comma) = (false, false);
    for &t in &toks {
        match t {
            T::Left if open && !comma => return false,
            T::Left => (open, comma) = (true, false),
            T::Right => open = false,
            T::Comma => comma = true,
            _ => {}
        }
    }
    // token822_addrlist's walk from the right.
    let mut ingroup = false;
    let mut k = toks.len();
    while k > 0 {
        k -= 1;
        match toks[k] {
            T::Semi => {
                if ingroup {
                    return false;
                }
                ingroup = true;
            }
            T::Colon => {
                if !ingroup {
                    return false;
                }
                ingroup = false;
                while k > 0 && toks[k - 1] != T::Comma {
                    k -= 1;
                }
            }
            T::Right => {
                // A `>` must close the `<` just before it: `<a@b>>` and
                // `<<a@b>>` would leave a `>` to be taken for an address.
                if toks[..k]
                    .iter()
                    .rposition(|&t| t == T::Left || t == T::Right)
                    .is_none_or(|l| toks[l] != T::Left)
                {
                    return false;
                }
                match toks[..k].iter().rposition(|&t| t == T::Left) {
                    Some(l) => k = l,
                    None => return false,
                }
                while k > 0 && matches!(toks[k - 1], T::Comment | T::Word | T::Other) {
                    k -= 1;
                }
            }
            _ => {}
        }
    }
    true
}

/// The addresses in the words of an addr-spec (quoted strings and domain
/// literals as given by the tokenizer, the rest as text), split where
/// qmail's token822_addrlist splits them: a word (atom, quoted string,
/// literal) right after another word, with only white space between,
/// starts a new address; `@` and `.` join. White space outside quoted
/// strings goes.
fn split_specs(parts: &[&str]) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut last_word = false;
    let word = |out: &mut Vec<String>, w: &str, last_word: &mut bool| {
        if *last_word {
            out.push(String::new());
        }
        if let Some(cur) = out.last_mut() {
            cur.push_str(w);
        }
        *last_word = true;
    };
    for p in parts {
        if p.starts_with('"') || p.starts_with('[') {
            word(&mut out, p, &mut last_word);
            continue;
        }
        let b = p.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                c @ (b'@' | b'.') => {
                    if let Some(cur) = out.last_mut() {
                        cur.push(c as char);
                    }
                    last_word = false;
                    i += 1;
                }
                _ => {
                    // A backslash takes the next character (white space,
                    // `@` or `.` too) into the word; a lone one at the end
                    // of the field or of a line goes (a line break is
                    // never part of an address).
                    let start = i;
                    let mut end = i;
                    while i < b.len() && !b" \t\r\n@.".contains(&b[i]) {
                        if b[i] == b'\\' {
                            if i + 1 == b.len() || b[i + 1] == b'\r' || b[i + 1] == b'\n' {
                                i += 1;
                                break;
                            }
                            i += 1;
                        }
                        i += 1;
                        end = i.min(b.len());
                    }
                    i = i.min(b.len());
                    if end > start {
                        word(&mut out, &p[start..end], &mut last_word);
                    }
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// An address written inside `<...>` without its comments and the white
/// space outside quoted strings and literals, as token822 reads it
/// (`< a @ b.org (x) >` is `a@b.org`).
fn bare_spec(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    let mut chars = spec.chars();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (Some(q), _) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            (None, '(') => depth += 1,
            (None, ')') if depth > 0 => depth -= 1,
            (None, '\\') if depth > 0 => {
                chars.next();
            }
            (None, _) if depth > 0 => {}
            // An escaped character stays with its backslash (an escaped
            // space is part of the address); a lone one at the end, or
            // before a line break, goes.
            (None, '\\') => {
                if let Some(n) = chars.next().filter(|n| !matches!(n, '\r' | '\n')) {
                    out.push(c);
                    out.push(n);
                }
            }
            (None, '"') => {
                out.push(c);
                quote = Some('"');
            }
            (None, '[') => {
                out.push(c);
                quote = Some(']');
            }
            (None, c) if c.is_whitespace() => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// A domain given on the command line, read as token822 reads it: its
/// comments and white space go (`example.com (Bob)` is `example.com`).
pub fn bare_domain(domain: &str) -> String {
    bare_spec(domain)
}

/// The colon that ends a source route: the first one outside `[...]`.
fn route_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Rewrites every address of an address-list field value and returns the
/// new value and the addresses found (after completion).
pub fn rewrite_list(value: &str, d: &Defaults) -> (String, Vec<String>) {
    let (out, addrs, _) = rewrite(value, d);
    (out, addrs)
}

/// The width qmail-inject folds address lists at (token822's LINELEN, less
/// the line end).
const WIDTH: usize = 78;

/// [`rewrite_list`] for a field whose value starts in column `col` (after
/// `Name:`): when completed addresses make a line longer than 78 columns,
/// the list is folded after a comma, as qmail-inject folds it; lines that
/// fit are kept as written.
pub fn rewrite_list_folded(value: &str, d: &Defaults, col: usize) -> (String, Vec<String>) {
    let (out, addrs, commas) = rewrite(value, d);
    let too_long = out
        .split('\n')
        .enumerate()
        .any(|(i, l)| l.chars().count() + if i == 0 { col } else { 0 } > WIDTH);
    if !too_long {
        return (out, addrs);
    }
    let mut folded = String::with_capacity(out.len() + commas.len() * 2);
    let mut at = col;
    let mut start = 0;
    for end in commas.iter().copied().chain(std::iter::once(out.len())) {
        let piece = &out[start..end];
        let first = piece.find('\n').unwrap_or(piece.len());
        // A piece that is only white space up to a fold of its own already
        // starts a new line (folding before it would leave a blank one).
        let own_fold = first < piece.len() && piece[..first].trim().is_empty();
        if start > 0 && !own_fold && at + piece[..first].chars().count() > WIDTH && at > 1 {
            folded.push('\n');
            if !piece.starts_with([' ', '\t']) {
                folded.push(' ');
            }
            at = 1;
        }
        folded.push_str(piece);
        at = match piece.rfind('\n') {
            Some(nl) => piece[nl + 1..].chars().count(),
            None => at + piece.chars().count(),
        };
        start = end;
    }
    (folded, addrs)
}

/// The rewrite, with the byte positions just after each top-level comma.
fn rewrite(value: &str, d: &Defaults) -> (String, Vec<String>, Vec<usize>) {
    let toks = tokenize(value);
    let mut commas = Vec::new();
    let mut out = String::with_capacity(value.len() + 16);
    let mut addrs = Vec::new();
    // One "mailbox" at a time: the tokens between separators.
    let mut cur: Vec<Tok> = Vec::new();
    let flush = |cur: &mut Vec<Tok>, out: &mut String, addrs: &mut Vec<String>| {
        if cur.is_empty() {
            return;
        }
        let angles: Vec<usize> = cur
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t, Tok::Angle(_)))
            .map(|(i, _)| i)
            .collect();
        if let (Some(&first), Some(&last)) = (angles.first(), angles.last()) {
            // As qmail's token822_addrlist reads them: every `<...>` is an
            // address, the words before it its phrase (`A <a@x> B <b@y>` is
            // two, written with a comma), and words after the last one are
            // addresses of their own (`<a@b.org> x` is two).
            let after: Vec<&str> = cur[last + 1..]
                .iter()
                .filter_map(|t| match t {
                    Tok::Text(s, false) if !s.trim().is_empty() => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            // A phrase runs back from its `<...>` over words and comments
            // only: a domain literal ends it, and the words up to that
            // literal are addresses (`a@b.org [1.2.3.4] <z@w.org>` is three).
            let mut in_front = vec![false; cur.len()];
            let mut lo = 0;
            for &k in &angles {
                let lit = (lo..k).rev().find(
                    |&i| matches!(&cur[i], Tok::Text(s, false) if s.trim_start().starts_with('[')),
                );
                if let Some(lit) = lit {
                    for f in in_front.iter_mut().take(lit + 1).skip(lo) {
                        *f = true;
                    }
                }
                lo = k + 1;
            }
            let mut front: Vec<&str> = Vec::new();
            let mut comments: Vec<&str> = Vec::new();
            // Whether the gap since the previous `<...>` has had its comma.
            let mut comma_owed = false;
            for (i, t) in cur.iter().enumerate() {
                if in_front[i] {
                    match t {
                        Tok::Text(s, false) => front.push(s),
                        Tok::Text(s, true) => comments.push(s),
                        _ => {}
                    }
                    continue;
                }
                if !front.is_empty() {
                    let lead: String = front[0].chars().take_while(|c| c.is_whitespace()).collect();
                    for spec in split_specs(&front) {
                        if comma_owed {
                            out.push_str(", ");
                        } else {
                            out.push_str(&lead);
                        }
                        let full = d.complete_word(&spec);
                        out.push_str(&full);
                        addrs.push(unquote(&full));
                        comma_owed = true;
                    }
                    front.clear();
                    out.push(',');
                    comma_owed = false;
                    if !matches!(t, Tok::Text(s, _) if s.starts_with([' ', '\t'])) {
                        out.push(' ');
                    }
                }
                match t {
                    // After the last one: its addresses, then its comments.
                    Tok::Text(_, false) if i > last && !after.is_empty() => {}
                    Tok::Text(s, true) if i > last && !after.is_empty() => comments.push(s),
                    Tok::Angle(a) => {
                        if comma_owed {
                            out.push_str(", ");
                        }
                        let inner = a.trim();
                        // A source route `@a,@b:x@y` keeps its route.
                        // The route ends at the first colon outside a
                        // domain literal (`@r1:u@[IPv6:::1]`).
                        let (route, spec) = match route_end(inner) {
                            Some(c) if inner.starts_with('@') => (&inner[..=c], &inner[c + 1..]),
                            _ => ("", inner),
                        };
                        let full = d.complete_word(&bare_spec(spec));
                        out.push('<');
                        out.push_str(route);
                        out.push_str(&full);
                        out.push('>');
                        addrs.push(unquote(&full));
                        comma_owed = i < last;
                    }
                    Tok::Text(s, _) => {
                        if comma_owed && i > first {
                            out.push(',');
                            comma_owed = false;
                        }
                        out.push_str(s);
                    }
                    _ => {}
                }
            }
            for spec in split_specs(&after) {
                let full = d.complete_word(&spec);
                out.push_str(", ");
                out.push_str(&full);
                addrs.push(unquote(&full));
            }
            for c in comments {
                out.push(' ');
                out.push_str(c);
            }
        } else {
            // addr-spec possibly with comments: the non-comment text is the
            // address, white space dropped except inside quoted strings.
            let spec: String = cur
                .iter()
                .filter_map(|t| match t {
                    Tok::Text(s, false) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<String>();
            let squeezed: String = cur
                .iter()
                .filter_map(|t| match t {
                    Tok::Text(s, false) if s.starts_with('"') => Some(s.clone()),
                    Tok::Text(s, false) => Some(bare_spec(s)),
                    _ => None,
                })
                .collect();
            let spec_trim = spec.trim();
            if spec_trim.is_empty() {
                for t in cur.iter() {
                    if let Tok::Text(s, _) = t {
                        out.push_str(s);
                    }
                }
            } else {
                let words: Vec<&str> = cur
                    .iter()
                    .filter_map(|t| match t {
                        Tok::Text(s, false) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                let specs = split_specs(&words);
                let lead: String = spec.chars().take_while(|c| c.is_whitespace()).collect();
                out.push_str(&lead);
                if specs.len() <= 1 {
                    let full = d.complete_word(&squeezed);
                    out.push_str(&full);
                    addrs.push(unquote(&full));
                } else {
                    // Two words with nothing but white space between are two
                    // addresses, as in qmail (`c@d e`): written with a comma.
                    for (k, spec) in specs.iter().enumerate() {
                        let full = d.complete_word(spec);
                        if k > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(&full);
                        addrs.push(unquote(&full));
                    }
                }
                for t in cur.iter() {
                    if let Tok::Text(s, true) = t {
                        out.push(' ');
                        out.push_str(s);
                    }
                }
            }
        }
        cur.clear();
    };
    for t in toks {
        match t {
            Tok::Comma => {
                flush(&mut cur, &mut out, &mut addrs);
                out.push(',');
                commas.push(out.len());
            }
            Tok::Colon => {
                // A group name: copy it, the members follow. (An address in
                // `<...>` written before it with no comma is copied too, as
                // qmail keeps it: part of the name, not a recipient.)
                for t in cur.drain(..) {
                    match t {
                        Tok::Text(s, _) => out.push_str(&s),
                        Tok::Angle(a) => {
                            out.push('<');
                            out.push_str(&a);
                            out.push('>');
                        }
                        _ => {}
                    }
                }
                out.push(':');
            }
            Tok::Semi => {
                flush(&mut cur, &mut out, &mut addrs);
                out.push(';');
            }
            t => cur.push(t),
        }
    }
    flush(&mut cur, &mut out, &mut addrs);
    (out, addrs, commas)
}

/// An address as the envelope has it: quoted strings without their quotes,
/// and a backslash's character without the backslash, in or out of quotes
/// (`"joe smith"@x.org` -> `joe smith@x.org`, `a\,b@x.org` -> `a,b@x.org`),
/// as token822_unquote gives it.
fn unquote(addr: &str) -> String {
    let mut out = String::with_capacity(addr.len());
    let mut quoted = false;
    let mut chars = addr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Defaults {
        Defaults {
            host: "mail.example.com".into(),
            domain: "example.com".into(),
            plus: "plus.example.com".into(),
        }
    }

    #[test]
    fn backslashes_and_quotes_as_token822_reads_them() {
        let d = d();
        let rcpts = |v: &str| rewrite_list(v, &d).1;
        // A backslash takes the next character into the word, and the
        // envelope has the character without it.
        assert_eq!(rcpts("a\\,b@x.org, c@y.org"), ["a,b@x.org", "c@y.org"]);
        assert_eq!(rcpts("\\\"a@x.org"), ["\"a@x.org"]);
        assert_eq!(rcpts("x\\(y@z.org"), ["x(y@z.org"]);
        // An @ inside quotes or after a backslash does not end the local part.
        assert_eq!(rcpts("\"a@b\""), ["a@b@mail.example.com"]);
        assert_eq!(rcpts("a\\@b"), ["a@b@mail.example.com"]);
        assert_eq!(rcpts("<\"a>b\"@x.org>, c@y.org"), ["a>b@x.org", "c@y.org"]);
        // An escaped space or tab is part of the word, not a separator.
        assert_eq!(rcpts("a\\ b@x.org"), ["a b@x.org"]);
        assert_eq!(
            rcpts("a\\\tb@x.org, c d"),
            ["a\tb@x.org", "c@mail.example.com", "d@mail.example.com"]
        );
        assert_eq!(rcpts("<a\\ b@x.org>"), ["a b@x.org"]);
        // A lone backslash at the end goes, in the header too.
        assert_eq!(rcpts("a\\"), ["a@mail.example.com"]);
        assert_eq!(rewrite_list(" a\\", &d).0, " a@mail.example.com");
        assert_eq!(rcpts("b c\\"), ["b@mail.example.com", "c@mail.example.com"]);
        // Before a line break (a field's end, a fold) too: a line break is
        // never part of an address.
        for v in [
            " a\\\n",
            " a\\\r\n",
            " x@y.org, a\\\n",
            " <a\\\n>",
            " a\\\n b@x.org\n",
        ] {
            let a = rcpts(v);
            assert!(
                a.contains(&"a@mail.example.com".to_string()),
                "{v:?}: {a:?}"
            );
            assert!(
                a.iter().all(|r| !r.contains(['\r', '\n', '\\'])),
                "{v:?}: {a:?}"
            );
        }
        assert_eq!(
            rewrite_list("\"a@b\", a\\,b@x.org", &d).0,
            "\"a@b\"@mail.example.com, a\\,b@x.org"
        );
    }

    #[test]
    fn parses_as_token822_does() {
        for ok in [
            "a@b.org",
            "a@b.org)",
            "Joe <joe@x.org>, (c) b@y.org",
            "group: a@b, c@d;",
            "undisclosed-recipients:;",
            "a, b;",
            "<@r1,@r2:u@h.org>",
            "\"x)y\" <q@[1.2.3.4]>",
            "(a (nested) comment) a@b",
            "a\\",
            "",
        ] {
            assert!(parses(ok), "{ok:?}");
        }
        for bad in [
            "a@b.org (open",
            "a@b.org )",
            "] a@b",
            "\"open",
            "a@[1.2.3.4",
            "(esc\\",
            "a@b>",
            "<a@b>>",
            "<<a@b>>",
            "<<a@b>",
            "x <a@b> y>",
            "g: a",
            "a: b; c: d",
            "a;, b;",
            "@a:x@y",
        ] {
            assert!(!parses(bad), "{bad:?}");
        }
    }

    #[test]
    fn long_lists_are_folded_after_a_comma() {
        let names: Vec<String> = (1..=12).map(|i| format!("user{i}")).collect();
        let v = format!(" {}, \"Smith, Joe\" <joe>", names.join(", "));
        let (out, addrs) = rewrite_list_folded(&v, &d(), 3);
        assert_eq!(addrs.len(), 13);
        let lines: Vec<&str> = out.split('\n').collect();
        assert!(lines.len() > 1, "{out}");
        for (i, l) in lines.iter().enumerate() {
            let width = l.len() + if i == 0 { 3 } else { 0 };
            assert!(width <= 78, "line {i} of {width}: {l:?}");
            assert!(i == 0 || l.starts_with(' '), "{l:?}");
            assert!(i == lines.len() - 1 || l.ends_with(','), "{l:?}");
        }
        // Only the folds were added, and never inside the quoted comma.
        assert_eq!(out.replace('\n', ""), rewrite_list(&v, &d()).0);
        assert!(out.contains("\"Smith, Joe\" <joe@mail.example.com>"));
        // A comma followed by white space and a fold of its own: no line of
        // white space alone.
        let v = format!(" {}@x.example, b@x.example, \n c@x.example", "a".repeat(50));
        let (out, _) = rewrite_list_folded(&v, &d(), 3);
        assert!(out.split('\n').all(|l| !l.trim().is_empty()), "{out:?}");
        // A list that fits stays as written, folds of its own included.
        let short = " a, b,\n c";
        assert_eq!(
            rewrite_list_folded(short, &d(), 3).0,
            " a@mail.example.com, b@mail.example.com,\n c@mail.example.com"
        );
    }

    #[test]
    fn completes() {
        let d = d();
        assert_eq!(d.complete("joe"), "joe@mail.example.com");
        assert_eq!(d.complete("joe@box"), "joe@box.example.com");
        assert_eq!(d.complete("joe@box+"), "joe@box.plus.example.com");
        assert_eq!(d.complete("joe@a.b"), "joe@a.b");
        assert_eq!(d.complete("joe@[1.2.3.4]"), "joe@[1.2.3.4]");
        // In a header, an @ inside a quoted local part does not end it.
        assert_eq!(d.complete_word("\"a@b\""), "\"a@b\"@mail.example.com");
        assert_eq!(d.complete_word("\"a@b\"@x.org"), "\"a@b\"@x.org");
        assert_eq!(d.complete_word("a\\@b"), "a\\@b@mail.example.com");
        // A sandbox's empty defaultdomain and plusdomain add nothing.
        let sandbox = Defaults {
            host: "localhost".into(),
            domain: String::new(),
            plus: String::new(),
        };
        assert_eq!(sandbox.complete("root"), "root@localhost");
        assert_eq!(sandbox.complete("root@localhost+"), "root@localhost");
        assert_eq!(sandbox.complete("joe@box"), "joe@box");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let alphabet: Vec<char> = "a@b.<>,;:()\\\" \té€\n".chars().collect();
        let mut x: u64 = 12345;
        for _ in 0..5000 {
            let mut v = String::new();
            for _ in 0..(x % 24) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let _ = rewrite_list(&v, &d());
        }
    }

    #[test]
    fn lists() {
        let d = d();
        let (v, a) = rewrite_list(
            " Joe User <joe>, \"A, B\" <ab@x.org>, bob (Bob), c@d.org",
            &d,
        );
        assert_eq!(
            v,
            " Joe User <joe@mail.example.com>, \"A, B\" <ab@x.org>, bob@mail.example.com (Bob), c@d.org"
        );
        assert_eq!(
            a,
            vec![
                "joe@mail.example.com",
                "ab@x.org",
                "bob@mail.example.com",
                "c@d.org"
            ]
        );
        let (v, a) = rewrite_list(" undisclosed-recipients:;", &d);
        assert_eq!(v, " undisclosed-recipients:;");
        assert!(a.is_empty());
        let (_, a) = rewrite_list(" team: x@y.org, z;", &d);
        assert_eq!(a, vec!["x@y.org", "z@mail.example.com"]);
        let (_, a) = rewrite_list(" <>", &d);
        assert_eq!(a, vec![""]);
        // Quoted local parts keep their spaces in the header and lose their
        // quotes in the envelope.
        let (v, a) = rewrite_list(" \"joe smith\"@x.org, Bob <\"b b\"@y.org>, \"q\\\"x\"", &d);
        assert_eq!(
            v,
            " \"joe smith\"@x.org, Bob <\"b b\"@y.org>, \"q\\\"x\"@mail.example.com"
        );
        assert_eq!(
            a,
            vec!["joe smith@x.org", "b b@y.org", "q\"x@mail.example.com"]
        );
        // A `<` never closed ends at the next comma: no address is lost
        // or merged with the next one, and the header gets its `>`.
        let (v, a) = rewrite_list(" a@b.org, <c@d.org, e@f.org", &d);
        assert_eq!(a, vec!["a@b.org", "c@d.org", "e@f.org"]);
        assert_eq!(v, " a@b.org, <c@d.org>, e@f.org");
        let (_, a) = rewrite_list(" x <joe", &d);
        assert_eq!(a, vec!["joe@mail.example.com"]);
        // A `<` with nothing after it (but a comment) takes no address away.
        let (v, a) = rewrite_list(" joe@ex.org, ann@ex.org <", &d);
        assert_eq!(a, vec!["joe@ex.org", "ann@ex.org"]);
        assert_eq!(v, " joe@ex.org, ann@ex.org <");
        let (_, a) = rewrite_list(" x@y.org, ann@ex.org <(c)", &d);
        assert_eq!(a, vec!["x@y.org", "ann@ex.org"]);
        // In a group, an unclosed `<` ends at the group's `;`.
        let (v, a) = rewrite_list(" g: a@b.org <;", &d);
        assert_eq!(a, vec!["a@b.org"]);
        assert!(v.ends_with(';'), "{v}");
        assert!(parses(" a@b.org, <c@d.org, <e@f.org>"));
        let (_, a) = rewrite_list(" a@b.org, <c@d.org, <e@f.org>", &d);
        assert_eq!(a, vec!["a@b.org", "c@d.org", "e@f.org"]);
        let (_, a) = rewrite_list(" <, <a@b.org>", &d);
        assert_eq!(a, vec!["a@b.org"]);
        // The unclosed address's end is looked for outside quotes and
        // comments.
        let (_, a) = rewrite_list(" <\"a;b\"@x.org", &d);
        assert_eq!(a, vec!["a;b@x.org"]);
        let (_, a) = rewrite_list(" g: <a@b.org (x;y);", &d);
        assert_eq!(a, vec!["a@b.org"]);
        // Outside a group a `;` does not end it; a domain literal's `<` is
        // no new address.
        // (What comes before an unclosed `<` is its display name.)
        let (_, a) = rewrite_list(" a@b.org <c;d@x.org", &d);
        assert_eq!(a, vec!["c;d@x.org"]);
        let (v, a) = rewrite_list(" <a@[1<2]>, c@d.org", &d);
        assert_eq!(a, vec!["a@[1<2]", "c@d.org"]);
        assert_eq!(v, " <a@[1<2]>, c@d.org");
        // A comment inside <...> is read whole, `>` and `"` in it included.
        for c in ["(see <http://x>)", "(5\" long)"] {
            let (v, a) = rewrite_list(&format!(" Joe <joe@ex.org {c}>, ann@ex.org"), &d);
            assert_eq!(a, vec!["joe@ex.org", "ann@ex.org"], "{c}");
            assert!(v.starts_with(" Joe <joe@ex.org"), "{v}");
        }
        // An address before a group name stays in the header (no recipient).
        let (v, a) = rewrite_list(" <b@y.org> g: c@z.org;", &d);
        assert_eq!(a, vec!["c@z.org"]);
        assert_eq!(v, " <b@y.org> g: c@z.org;");
        // Two words with only white space between are two addresses, and
        // words after `<...>` one more, as qmail's token822_addrlist reads
        // them; `@` and `.` join words, quoted strings and literals are words.
        let (v, a) = rewrite_list(" c@d.org e", &d);
        assert_eq!(a, vec!["c@d.org", "e@mail.example.com"]);
        assert_eq!(v, " c@d.org, e@mail.example.com");
        let (v, a) = rewrite_list(" <a@b.org> x (note)", &d);
        assert_eq!(a, vec!["a@b.org", "x@mail.example.com"]);
        assert_eq!(v, " <a@b.org>, x@mail.example.com (note)");
        let (_, a) = rewrite_list(
            " joe . smith @ x.org, \"a b\" @ [1.2.3.4], j (c) @x.org",
            &d,
        );
        assert_eq!(a, vec!["joe.smith@x.org", "a b@[1.2.3.4]", "j@x.org"]);
        let (v, a) = rewrite_list(" bob@example.com., <root@localhost.>", &d);
        assert_eq!(a, vec!["bob@example.com", "root@localhost.example.com"]);
        assert_eq!(v, " bob@example.com, <root@localhost.example.com>");
        let (v, a) = rewrite_list(" Alice <alice@x.org> Bob <bob@y.org>", &d);
        assert_eq!(a, vec!["alice@x.org", "bob@y.org"]);
        assert_eq!(v, " Alice <alice@x.org>, Bob <bob@y.org>");
        let (v, a) = rewrite_list(" <a@x.org><b@y.org> <c@z.org>", &d);
        assert_eq!(a, vec!["a@x.org", "b@y.org", "c@z.org"]);
        assert_eq!(v, " <a@x.org>, <b@y.org>, <c@z.org>");
        // Comments and white space inside <...> are not the address.
        let (v, a) = rewrite_list(" < a @ b.org (x) >, <(c)\"d e\"@f.org>", &d);
        assert_eq!(a, vec!["a@b.org", "d e@f.org"]);
        assert_eq!(v, " <a@b.org>, <\"d e\"@f.org>");
        let (v, a) = rewrite_list(" a@b.org [1.2.3.4] <z@w.org>, u@[1.2.3.4] <x@y.org>", &d);
        assert_eq!(
            a,
            vec![
                "a@b.org",
                "[1.2.3.4]@mail.example.com",
                "z@w.org",
                "u@[1.2.3.4]",
                "x@y.org"
            ]
        );
        assert_eq!(
            v,
            " a@b.org, [1.2.3.4]@mail.example.com, <z@w.org>, u@[1.2.3.4], <x@y.org>"
        );
        let (_, a) = rewrite_list(" \"q\"x@y.org", &d);
        assert_eq!(a, vec!["q@mail.example.com", "x@y.org"]);
        // Domain literals are one word, IPv6 colons and all.
        let (v, a) = rewrite_list(" u@[IPv6:2001:db8::1], v@[192.0.2.1]", &d);
        assert_eq!(a, vec!["u@[IPv6:2001:db8::1]", "v@[192.0.2.1]"]);
        assert_eq!(v, " u@[IPv6:2001:db8::1], v@[192.0.2.1]");
        assert_eq!(d.complete("root@"), "root@mail.example.com");
        // A route before an IPv6 literal ends at its own colon.
        let (v, a) = rewrite_list(" <@r1.org:u@[IPv6:::1]>", &d);
        assert_eq!(a, vec!["u@[IPv6:::1]"]);
        assert_eq!(v, " <@r1.org:u@[IPv6:::1]>");
        // A closed route-addr keeps its commas.
        let (_, a) = rewrite_list(" <@r1.org,@r2.org:u@v.org>, w@x.org", &d);
        assert_eq!(a.len(), 2);
    }
}
