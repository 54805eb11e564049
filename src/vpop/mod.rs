//! vpopmail's data model (cdb backend): domains wired up through qmail's
//! `users/assign`, one `vpasswd` (+ `vpasswd.cdb`) per domain, user directories
//! with a Maildir, passwords and per-user flags.
//!
//! Read side (used by vchkpw, vdelivermail, qmail-pop3d, qmail-smtpd):
//! [`find_domain`], [`find_user`], [`password::verify`], [`flags`],
//! [`set_lastauth`]. Write side (the admin programs): [`vpasswd::Lock`],
//! [`admin`], [`ctlfiles`].
//!
//! Formats: vpasswd(5); users/assign and users/cdb as qmail-newu(8) builds them
//! ([`assign`]); the big-directory hashing of `.dir-control` ([`bigdir`]).

pub mod admin;
pub mod assign;
pub mod bigdir;
pub mod cli;
pub mod ctlfiles;
pub mod entry;
pub mod error;
pub mod flags;
pub mod names;
pub mod password;
pub mod quota;
pub mod vpasswd;

pub use entry::Entry;

use std::io;
use std::path::{Path, PathBuf};

use crate::paths::Roots;

/// A virtual domain, as users/assign maps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// The real domain (an alias domain resolves to the domain it aliases).
    pub name: String,
    /// The domain directory (holds vpasswd, .qmail-default and the user dirs).
    pub dir: PathBuf,
    /// The owner's uid (the vpopmail account's, 89 conventionally).
    pub uid: u32,
    /// The owner's gid.
    pub gid: u32,
}

impl Domain {
    /// `(uid, gid)`, for chown.
    pub fn owner(&self) -> Option<(u32, u32)> {
        Some((self.uid, self.gid))
    }

    /// `DIR/vpasswd`.
    pub fn vpasswd(&self) -> PathBuf {
        self.dir.join(vpasswd::VPASSWD)
    }

    /// Whether a program started by root (vchkpw for POP3 and IMAP,
    /// vdelivermail by hand) becomes the domain's owner: any owner other
    /// than root, an account in /etc/passwd or only a number (`vadddomain
    /// -i`), except a bare number whose domain directory is itself a
    /// directory of root's (not a link): a sandbox, or a copied tree whose
    /// owner is not on this host, keeps root. The owner cannot fake that: it
    /// can make its domain's name a link, which is not a directory of root's.
    pub fn root_becomes_owner(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.uid != 0
            && (crate::sys::account_by_uid(self.uid).is_some()
                || !std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir() && m.uid() == 0))
    }
}

/// The owner of a domain when it is another account than vpopmail's (the
/// default owner) and root: an owner root's tools must not trust with its
/// tree (`vadddomain -u`, `-i`). Root then works in that tree with the
/// owner's rights ([`crate::sys::as_owner`]) or through directories it
/// pinned ([`vpasswd::pin_dir`]).
pub fn untrusted(owner: Option<(u32, u32)>) -> Option<(u32, u32)> {
    owner.filter(|&(uid, _)| uid != 0 && uid != admin::default_owner().0)
}

/// Finds a domain: users/cdb key `!DOMAIN-` (as vpopmail's `vget_assign`), with
/// users/assign read directly when the cdb is missing or older. The name is
/// lowercased first. `Ok(None)` for an unknown domain.
pub fn find_domain(roots: &Roots, domain: &str) -> io::Result<Option<Domain>> {
    let domain = domain.to_ascii_lowercase();
    if domain.is_empty() || domain.contains(['\0', '\n']) {
        return Ok(None);
    }
    let key = format!("!{domain}-");
    let Some(data) = assign::lookup(roots, key.as_bytes())? else {
        return Ok(None);
    };
    let f = assign::split_data(&data);
    if f.len() < 4 || f[3].is_empty() {
        return Ok(None);
    }
    let (Ok(uid), Ok(gid)) = (f[1].parse(), f[2].parse()) else {
        return Ok(None);
    };
    Ok(Some(Domain {
        name: f[0].to_ascii_lowercase(),
        dir: PathBuf::from(&f[3]),
        uid,
        gid,
    }))
}

/// The extension field of a domain's users/assign line (`+DOMAIN-:...:-:EXT:`):
/// empty in every line vpopmail writes. `Ok(None)` for an unknown domain.
pub fn find_domain_ext(roots: &Roots, domain: &str) -> io::Result<Option<String>> {
    let key = format!("!{}-", domain.to_ascii_lowercase());
    Ok(assign::lookup(roots, key.as_bytes())?.map(|data| {
        assign::split_data(&data)
            .get(5)
            .cloned()
            .unwrap_or_default()
    }))
}

/// Finds a user of a domain (both lowercased): the domain through
/// [`find_domain`], then its vpasswd.cdb (rebuilt from vpasswd when missing).
pub fn find_user(roots: &Roots, user: &str, domain: &str) -> io::Result<Option<(Domain, Entry)>> {
    if !user_name_ok(user) {
        return Ok(None);
    }
    let Some(d) = find_domain(roots, domain)? else {
        return Ok(None);
    };
    Ok(find_user_in(&d, user)?.map(|e| (d, e)))
}

/// [`find_user`] in a domain already found.
pub fn find_user_in(d: &Domain, user: &str) -> io::Result<Option<Entry>> {
    if !user_name_ok(user) {
        return Ok(None);
    }
    vpasswd::lookup(&d.dir, &user.to_ascii_lowercase(), d.owner())
}

fn user_name_ok(user: &str) -> bool {
    !user.is_empty() && !user.contains(['\0', '\n', ':'])
}

/// Records a successful login: `DIR/lastauth` holds the IP (no newline), its
/// mtime is the time. Owned like the directory when running as root.
pub fn set_lastauth(dir: &Path, ip: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join("lastauth");
    // Informational only: a crash may lose it, never tear it (no fsync per login).
    crate::fsutil::no_planted_links(dir)?;
    let owner = std::fs::metadata(dir).ok().map(|m| (m.uid(), m.gid()));
    crate::fsutil::replace_unsynced_owned(&path, ip.as_bytes(), 0o600, owner)
}

/// The last login: `(unix time, ip)`, or `None` when there is no lastauth file.
pub fn last_auth(dir: &Path) -> Option<(i64, String)> {
    if !dir.is_absolute() {
        return None;
    }
    let path = dir.join("lastauth");
    // A file vpopmail writes, read by root's vuserinfo: not through a link,
    // not a FIFO.
    let m = std::fs::symlink_metadata(&path)
        .ok()
        .filter(|m| m.is_file())?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let ip = crate::fsutil::read_nofollow(&path).ok()??;
    let ip = String::from_utf8_lossy(&ip);
    Some((t, ip.lines().next().unwrap_or("").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Roots) {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(d.path().join("q"), d.path().join("v"));
        std::fs::create_dir_all(roots.users()).unwrap();
        std::fs::create_dir_all(roots.domains()).unwrap();
        (d, roots)
    }

    #[test]
    fn finds_domains_and_users_through_the_cdbs() {
        let (_d, roots) = root();
        let dd = roots.domains().join("example.com");
        std::fs::create_dir_all(&dd).unwrap();
        let assign = format!(
            "+example.com-:example.com:89:89:{0}:-::\n+alias.org-:example.com:89:89:{0}:-::\n.\n",
            dd.display()
        );
        std::fs::write(roots.users().join("assign"), &assign).unwrap();
        // Without users/cdb, assign answers.
        let d = find_domain(&roots, "Example.COM").unwrap().unwrap();
        assert_eq!(d.name, "example.com");
        assert_eq!(d.dir, dd);
        assert_eq!((d.uid, d.gid), (89, 89));
        assign::newu(&roots).unwrap();
        let a = find_domain(&roots, "alias.org").unwrap().unwrap();
        assert_eq!(a.name, "example.com");
        assert!(find_domain(&roots, "nope.org").unwrap().is_none());
        assert!(find_domain(&roots, "").unwrap().is_none());

        std::fs::write(
            dd.join("vpasswd"),
            format!(
                "joe:$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0:1:2:Joe:{}/joe:NOQUOTA:password\n",
                dd.display()
            ),
        )
        .unwrap();
        let (dom, e) = find_user(&roots, "JOE", "alias.org").unwrap().unwrap();
        assert_eq!(dom.name, "example.com");
        assert!(e.has(flags::NO_POP));
        assert!(password::verify("password", &e.passwd));
        assert!(find_user(&roots, "ann", "example.com").unwrap().is_none());
        assert!(find_user(&roots, "joe", "nope.org").unwrap().is_none());
        assert!(find_user(&roots, "", "example.com").unwrap().is_none());
    }

    #[test]
    fn lastauth() {
        let d = tempfile::tempdir().unwrap();
        assert!(last_auth(d.path()).is_none());
        set_lastauth(d.path(), "192.0.2.1").unwrap();
        assert_eq!(
            std::fs::read(d.path().join("lastauth")).unwrap(),
            b"192.0.2.1"
        );
        assert_eq!(last_auth(d.path()).unwrap().1, "192.0.2.1");
    }
}
