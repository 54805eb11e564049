//! Recipient rewriting at todo time (qmail-send's `rewrite`): `envnoathost`,
//! `percenthack`, `locals` and `virtualdomains`.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::control::Control;
use crate::paths::Roots;

/// The rewriting rules, from control files.
#[derive(Clone, Debug, Default)]
pub struct Rewrite {
    /// Domains delivered locally as they are (lowercase).
    pub locals: HashSet<Vec<u8>>,
    /// virtualdomains: key (lowercase address, domain, `.suffix` or empty) → prepend.
    pub vdoms: HashMap<Vec<u8>, Vec<u8>>,
    /// Domains for which `%` in the local part is a routing `@`.
    pub percenthack: HashSet<Vec<u8>>,
    /// Appended to addresses without `@`.
    pub envnoathost: Vec<u8>,
}

/// `locals`, else `me`; neither is an error, as in qmail-send.
fn read_locals(c: &Control) -> io::Result<HashSet<Vec<u8>>> {
    let locals = match c.list_opt("locals")? {
        Some(l) => l,
        None => match c.line("me")? {
            Some(m) => vec![m],
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "neither control/locals nor control/me exists",
                ))
            }
        },
    };
    Ok(locals.iter().map(|l| lower(l.as_bytes())).collect())
}

/// `virtualdomains`: the first line for a key counts.
fn read_vdoms(c: &Control) -> io::Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut vdoms = HashMap::new();
    for line in c.list("virtualdomains")? {
        if let Some((k, v)) = line.split_once(':') {
            vdoms
                .entry(lower(k.as_bytes()))
                .or_insert_with(|| v.as_bytes().to_vec());
        }
    }
    Ok(vdoms)
}

/// Where an address goes after rewriting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Local channel, with this (possibly prefixed) address.
    Local(Vec<u8>),
    /// Remote channel.
    Remote(Vec<u8>),
}

fn lower(s: &[u8]) -> Vec<u8> {
    s.to_ascii_lowercase()
}

impl Rewrite {
    /// Reads `locals` (default: me), `virtualdomains`, `percenthack` and
    /// `envnoathost` (default: me). Fails without locals and me, as qmail-send.
    pub fn load(roots: &Roots) -> io::Result<Rewrite> {
        let c = Control::new(roots);
        let mut r = Rewrite {
            locals: read_locals(&c)?,
            vdoms: read_vdoms(&c)?,
            envnoathost: c
                .line_or_me("envnoathost", Some("envnoathost"))?
                .unwrap_or_default()
                .into_bytes(),
            ..Rewrite::default()
        };
        r.percenthack = c
            .list("percenthack")?
            .iter()
            .map(|l| lower(l.as_bytes()))
            .collect();
        Ok(r)
    }

    /// Rereads `locals` and `virtualdomains` (qmail-send's SIGHUP); on
    /// failure, the file that could not be read, as qmail's alert names it.
    pub fn reload(&mut self, roots: &Roots) -> Result<(), &'static str> {
        let c = Control::new(roots);
        let locals = read_locals(&c).map_err(|_| "control/locals")?;
        let vdoms = read_vdoms(&c).map_err(|_| "control/virtualdomains")?;
        self.locals = locals;
        self.vdoms = vdoms;
        Ok(())
    }

    /// Rewrites one recipient address.
    pub fn rewrite(&self, addr: &[u8]) -> Dest {
        let mut a = addr.to_vec();
        if !a.contains(&b'@') {
            a.push(b'@');
            a.extend_from_slice(&self.envnoathost);
        }
        loop {
            let at = a.iter().rposition(|&b| b == b'@').unwrap_or(0);
            if !self.percenthack.contains(&lower(&a[at + 1..])) {
                break;
            }
            match a[..at].iter().rposition(|&b| b == b'%') {
                Some(p) => {
                    a.truncate(at);
                    a[p] = b'@';
                }
                None => break,
            }
        }
        let at = a.iter().rposition(|&b| b == b'@').unwrap_or(0);
        if self.locals.contains(&lower(&a[at + 1..])) {
            return Dest::Local(a);
        }
        for i in 0..=a.len() {
            if i == 0 || i == at + 1 || i == a.len() || (i > at && a[i] == b'.') {
                if let Some(p) = self.vdoms.get(&lower(&a[i..])) {
                    if p.is_empty() {
                        break;
                    }
                    let mut out = p.clone();
                    out.push(b'-');
                    out.extend_from_slice(&a);
                    return Dest::Local(out);
                }
            }
        }
        Dest::Remote(a)
    }

    /// Takes the `PREPEND-` of a virtual domain off again (bounces show the
    /// address the sender used).
    pub fn strip_vdom_prepend<'a>(&self, recip: &'a [u8]) -> &'a [u8] {
        let Some(at) = recip.iter().rposition(|&b| b == b'@') else {
            return recip;
        };
        let domain = &recip[at + 1..];
        for i in 0..=domain.len() {
            if i == 0 || i == domain.len() || domain[i] == b'.' {
                if let Some(p) = self.vdoms.get(&lower(&domain[i..])) {
                    if p.is_empty() || !recip.starts_with(p) || recip.get(p.len()) != Some(&b'-') {
                        break;
                    }
                    return &recip[p.len() + 1..];
                }
            }
        }
        recip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rewrite {
        let mut r = Rewrite {
            envnoathost: b"me.test".to_vec(),
            ..Rewrite::default()
        };
        r.locals.insert(b"me.test".to_vec());
        r.percenthack.insert(b"me.test".to_vec());
        r.vdoms
            .insert(b"example.com".to_vec(), b"example.com".to_vec());
        r.vdoms.insert(b"joe@virt.test".to_vec(), b"jj".to_vec());
        r.vdoms.insert(b".wild.test".to_vec(), b"w".to_vec());
        r.vdoms.insert(b"off.test".to_vec(), b"".to_vec());
        r
    }

    #[test]
    fn reload_names_the_file_it_cannot_read() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(d.path(), d.path().join("v"));
        let ctl = d.path().join("control");
        std::fs::create_dir_all(&ctl).unwrap();
        std::fs::write(ctl.join("me"), "me.test\n").unwrap();
        let mut r = rules();
        // No locals: me counts; no virtualdomains: none.
        assert_eq!(r.reload(&roots), Ok(()));
        assert!(r.locals.contains(&b"me.test"[..]) && r.vdoms.is_empty());
        std::fs::write(ctl.join("virtualdomains"), "v.test:v\n").unwrap();
        // A directory in a file's place cannot be read: the old rules stay.
        std::fs::create_dir(ctl.join("locals")).unwrap();
        assert_eq!(r.reload(&roots), Err("control/locals"));
        assert!(r.vdoms.is_empty());
        std::fs::remove_dir(ctl.join("locals")).unwrap();
        assert_eq!(r.reload(&roots), Ok(()));
        assert_eq!(r.vdoms.get(&b"v.test"[..]), Some(&b"v".to_vec()));
        std::fs::remove_file(ctl.join("virtualdomains")).unwrap();
        std::fs::create_dir(ctl.join("virtualdomains")).unwrap();
        assert_eq!(r.reload(&roots), Err("control/virtualdomains"));
        assert_eq!(r.vdoms.get(&b"v.test"[..]), Some(&b"v".to_vec()));
    }

    #[test]
    fn rewrite_rules() {
        let r = rules();
        assert_eq!(r.rewrite(b"joe"), Dest::Local(b"joe@me.test".to_vec()));
        assert_eq!(
            r.rewrite(b"joe@ME.test"),
            Dest::Local(b"joe@ME.test".to_vec())
        );
        assert_eq!(
            r.rewrite(b"joe@Example.COM"),
            Dest::Local(b"example.com-joe@Example.COM".to_vec())
        );
        assert_eq!(
            r.rewrite(b"joe@virt.test"),
            Dest::Local(b"jj-joe@virt.test".to_vec())
        );
        assert_eq!(
            r.rewrite(b"ann@virt.test"),
            Dest::Remote(b"ann@virt.test".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a@x.wild.test"),
            Dest::Local(b"w-a@x.wild.test".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a@off.test"),
            Dest::Remote(b"a@off.test".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a%far.test@me.test"),
            Dest::Remote(b"a@far.test".to_vec())
        );
        assert_eq!(
            r.strip_vdom_prepend(b"example.com-joe@example.com"),
            b"joe@example.com"
        );
        assert_eq!(r.strip_vdom_prepend(b"joe@me.test"), b"joe@me.test");
    }
}
