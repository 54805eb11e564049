//! The operations behind vpopmail's admin programs (vadddomain, vdeldomain,
//! vadduser, vdeluser, vpasswd, vmoduser, vsetuserquota, vuserinfo, valias).
//!
//! Each operation checks everything it can before it changes anything, so bad
//! input changes no file. Changes to a domain's users happen under the
//! domain's `.vpasswd.lock` (see [`crate::vpop::vpasswd`]), which also
//! serialises the `.dir-control` counter and the creation of user directories.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::maildir::quota as mdquota;
use crate::paths::Roots;
use crate::vpop::bigdir::DirControl;
use crate::vpop::ctlfiles;
use crate::vpop::entry::{Entry, MAX_CLEAR, MAX_DIR, MAX_GECOS, MAX_PASSWD};
use crate::vpop::error::*;
use crate::vpop::names;
use crate::vpop::untrusted;
use crate::vpop::vpasswd::{self, ChangeError, Lock};
use crate::vpop::{find_domain, password, Domain};

/// Directory mode of everything vpopmail creates (umask 077).
pub const DIR_MODE: u32 = 0o750;
/// The IP `lastauth` holds for an account that never logged in.
pub const NULL_REMOTE_IP: &str = "0.0.0.0";

/// The owner of new domains: the `vpopmail` account when it exists, else the
/// invoking user (a sandbox).
pub fn default_owner() -> (u32, u32) {
    match crate::sys::account("vpopmail") {
        Some(a) => (a.uid, a.gid),
        None => (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    }
}

/// The domain used when an address has none: `$VPOPMAIL_DOMAIN`, else the
/// first line of `~vpopmail/etc/defaultdomain` (vpopmail's `vset_default_domain`).
pub fn default_domain(roots: &Roots) -> String {
    if let Ok(d) = std::env::var("VPOPMAIL_DOMAIN") {
        if !d.is_empty() {
            return d.to_ascii_lowercase();
        }
    }
    crate::control::read_line(&roots.vpop_etc("defaultdomain"))
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Splits an address given on the command line into a user and a domain (the
/// default domain when it has none; empty when there is none either).
pub fn parse_address(roots: &Roots, email: &str) -> (String, String) {
    let (u, d) = names::split_email(email);
    if d.is_empty() {
        (u, default_domain(roots))
    } else {
        (u, d)
    }
}

/// Looks a domain up for an operation on it; `Domain does not exist` if absent.
pub fn domain(roots: &Roots, name: &str) -> Result<Domain, VError> {
    names::check_domain_chars(name)?;
    match find_domain(roots, name) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(VError::code(VA_DOMAIN_DOES_NOT_EXIST)),
        Err(e) => Err(VError::io("can't read users/assign", &e)),
    }
}

/// Takes domain `d`'s vpasswd lock for a change to its accounts and checks,
/// under the lock, that the domain is still the one users/assign names: a
/// vdeldomain holds the same lock while it removes a domain, so a tool that
/// waited for it answers `Domain does not exist` instead of writing into
/// the removed tree (or into a directory made again in its place, whose
/// lock it would not hold).
fn lock_domain(roots: &Roots, d: &Domain, what: &str) -> Result<Lock, VError> {
    let lock = Lock::take(&d.dir, d.owner()).map_err(io_err(what))?;
    still_there(roots, d, &lock)?;
    Ok(lock)
}

/// See [`lock_domain`].
fn still_there(roots: &Roots, d: &Domain, lock: &Lock) -> Result<(), VError> {
    use std::os::unix::fs::MetadataExt;
    let gone = || VError::code(VA_DOMAIN_DOES_NOT_EXIST);
    match find_domain(roots, &d.name) {
        Ok(Some(now)) if now.dir == d.dir => {}
        Ok(_) => return Err(gone()),
        Err(e) => return Err(VError::io("can't read users/assign", &e)),
    }
    match (std::fs::metadata(lock.dir()), std::fs::metadata(&d.dir)) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() && a.nlink() > 0 => Ok(()),
        _ => Err(gone()),
    }
}

fn io_err(what: &str) -> impl Fn(io::Error) -> VError + '_ {
    move |e| VError::io(what, &e)
}

fn change_err(e: ChangeError) -> VError {
    match e {
        ChangeError::Exists => VError::msg("User already exists"),
        ChangeError::Missing => VError::code(VA_USER_DOES_NOT_EXIST),
        ChangeError::Io(e) => VError::io("could not update vpasswd", &e),
    }
}

/// Creates `dir` and missing parents with mode 0750, owned by `owner` (root).
fn mkdirs(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(p) = dir.parent() {
        mkdirs(p, owner)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            vpasswd::chown_to(dir, owner);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn chown_tree(path: &Path, owner: Option<(u32, u32)>) {
    vpasswd::chown_to(path, owner);
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                chown_tree(&p, owner);
            } else {
                vpasswd::chown_to(&p, owner);
            }
        }
    }
}

/// What a vadduser killed before it wrote vpasswd leaves: the user's
/// directory with at most an empty Maildir skeleton. Removed (by rmdir, so
/// nothing that holds a file can go) when the caller, under the vpasswd lock
/// and with the rights of an owner root does not trust (`add_user_in`), has
/// found no such user; `true` when it is gone. Looked at whole first, so a
/// directory with anything else in it is left as it is.
fn remove_empty_skeleton(dir: &Path) -> bool {
    let real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    // Only these names, each a directory (not a link).
    let holds_only = |p: &Path, names: &[&str]| {
        std::fs::read_dir(p).is_ok_and(|rd| {
            rd.into_iter().all(|e| {
                e.is_ok_and(|e| names.iter().any(|n| e.file_name() == *n) && real_dir(&e.path()))
            })
        })
    };
    let md = dir.join("Maildir");
    let subs = ["new", "cur", "tmp"].map(|s| md.join(s));
    if !real_dir(dir)
        || !holds_only(dir, &["Maildir"])
        || (real_dir(&md) && !holds_only(&md, &["new", "cur", "tmp"]))
        || subs.iter().any(|p| real_dir(p) && !holds_only(p, &[]))
    {
        return false;
    }
    for p in subs.iter().filter(|p| real_dir(p)) {
        if std::fs::remove_dir(p).is_err() {
            return false;
        }
    }
    (!real_dir(&md) || std::fs::remove_dir(&md).is_ok()) && std::fs::remove_dir(dir).is_ok()
}

/// Whether an owner root does not trust (`untrusted`) can reach `path`
/// (shown as `shown`): one that cannot could not receive the domain's mail
/// either, since qmail-local works there as that owner.
fn owner_reaches(owner: Option<(u32, u32)>, path: &Path, shown: &Path) -> Result<(), VError> {
    match crate::sys::as_owner(untrusted(owner), || std::fs::metadata(path)) {
        Ok(_) => Ok(()),
        Err(e) => Err(VError::io(
            &format!(
                "the domain's owner (uid {}) cannot reach {}",
                owner.map_or(0, |o| o.0),
                shown.display()
            ),
            &e,
        )),
    }
}

/// Creates a user directory with its Maildir (`new`, `cur`, `tmp`), 0750.
fn make_user_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), VError> {
    crate::fsutil::no_planted_links(dir).map_err(io_err("could not make user dir"))?;
    let b = {
        let mut b = std::fs::DirBuilder::new();
        b.mode(DIR_MODE);
        b
    };
    let mut made = b.create(dir);
    if matches!(&made, Err(e) if e.kind() == io::ErrorKind::AlreadyExists)
        && remove_empty_skeleton(dir)
    {
        made = b.create(dir);
    }
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(VError::code(VA_EXIST_U_DIR))
        }
        Err(e) => return Err(VError::io("could not make user dir", &e)),
    }
    let md = dir.join("Maildir");
    let r = b
        .create(&md)
        .and_then(|_| b.create(md.join("new")))
        .and_then(|_| b.create(md.join("cur")))
        .and_then(|_| b.create(md.join("tmp")));
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(dir);
        return Err(VError::io(verror(VA_SUBDIR_CREATION), &e));
    }
    chown_tree(dir, owner);
    Ok(())
}

/// Removes `maildirsize` and, for a real quota, writes a fresh one (vpopmail's
/// `update_maildirsize`, as vsetuserquota and vmoduser -q do).
pub fn update_maildirsize(user_dir: &Path, quota: &str, owner: Option<(u32, u32)>) {
    // With the owner's rights (see add_user_in).
    let _ = crate::sys::as_owner(untrusted(owner), || {
        update_maildirsize_here(user_dir, quota, owner);
        Ok(())
    });
}

fn update_maildirsize_here(user_dir: &Path, quota: &str, owner: Option<(u32, u32)>) {
    // A line without an absolute directory names no Maildir (a relative one
    // would be taken from wherever the tool runs).
    if !user_dir.is_absolute() {
        return;
    }
    let md = user_dir.join("Maildir");
    // Root never follows a link the user's owner planted in its tree.
    if let Err(e) = crate::fsutil::no_planted_links(&md.join("tmp")) {
        crate::elog!(
            "Warning: maildirsize not updated: {}",
            crate::deliver::errstr(&e)
        );
        return;
    }
    // vpasswd (which vpopmail writes) says where the directory is: root
    // touches only a Maildir that belongs to the domain's owner, not another
    // account's that a line was pointed at.
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        if let (Some((uid, _)), Ok(m)) = (owner, std::fs::symlink_metadata(&md)) {
            if m.uid() != uid {
                crate::elog!(
                    "Warning: maildirsize not updated: {} does not belong to the domain's owner",
                    md.display()
                );
                return;
            }
        }
    }
    let file = md.join(mdquota::FILE);
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            // The old limit would stay in force until the file is rebuilt.
            crate::elog!(
                "Warning: maildirsize not updated: {}: {}",
                file.display(),
                crate::deliver::errstr(&e)
            );
            return;
        }
        _ => {}
    }
    if quota == "NOQUOTA" || !md.join("tmp").is_dir() {
        return;
    }
    // Run as root, the new file is left to the next delivery (which runs as
    // the owner and counts the Maildir when maildirsize is missing): writing
    // it here would go through a Maildir the owner could swap for a link
    // between the check above and the write.
    if nix::unistd::geteuid().is_root() && owner.is_some_and(|(u, _)| u != 0) {
        return;
    }
    let q = mdquota::Quota::from_vpasswd(quota);
    if !q.is_unlimited() {
        let _ = mdquota::rebuild_owned(&md, &q, owner);
    }
}

fn check_password_fields(clear: Option<&str>, crypted: Option<&str>) -> Result<(), VError> {
    if let Some(c) = clear {
        if c.len() > MAX_CLEAR {
            return Err(VError::code(VA_PASSWD_TOO_LONG));
        }
        names::check_text(c, true)?;
    }
    if let Some(c) = crypted {
        if c.len() > MAX_PASSWD {
            return Err(VError::code(VA_PASSWD_TOO_LONG));
        }
        names::check_text(c, false)?;
    }
    Ok(())
}

fn check_gecos(g: &str) -> Result<(), VError> {
    if g.len() > MAX_GECOS {
        return Err(VError::code(VA_GECOS_TOO_LONG));
    }
    names::check_text(g, false)
}

/// What vadduser (and vadddomain for postmaster) asks for.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    /// The user name.
    pub user: String,
    /// The domain.
    pub domain: String,
    /// The clear password (hashed with SHA-512-crypt), or `None` for no password.
    pub clear: Option<String>,
    /// A crypted password to store as is (`-e`); wins over `clear`.
    pub crypted: Option<String>,
    /// The gecos (defaults to the user name).
    pub gecos: String,
    /// The quota field, already checked by [`crate::vpop::quota::parse`].
    pub quota: Option<String>,
    /// Also store the clear password in the eighth field.
    pub store_clear: bool,
}

/// Checks a new user's fields (nothing is changed).
pub fn check_new_user(roots: &Roots, n: &NewUser) -> Result<Domain, VError> {
    names::check_user(&n.user)?;
    let d = domain(roots, &n.domain)?;
    check_new_user_in(roots, &d, n)?;
    Ok(d)
}

/// [`check_new_user`] for a domain already found (or being made).
fn check_new_user_in(roots: &Roots, d: &Domain, n: &NewUser) -> Result<(), VError> {
    names::check_user(&n.user)?;
    check_gecos(&n.gecos)?;
    check_password_fields(n.clear.as_deref(), n.crypted.as_deref())?;
    // A default quota from the domain's limits obeys the same range as -q.
    if n.quota.is_none() {
        let checked = default_quota(roots, d).and_then(|q| match q {
            Some(q) => crate::vpop::quota::parse(&q, crate::vpop::quota::range(roots))
                .map(|_| ())
                .map_err(|e| e.text),
            None => Ok(()),
        });
        if let Err(text) = checked {
            // The file the value came from (domain_limits' order).
            let own = d.dir.join(".qmailadmin-limits");
            let source = match crate::fsutil::read_nofollow(&own) {
                Ok(Some(_)) => own,
                _ => roots.vpop_etc("vlimits.default"),
            };
            return Err(VError::msg(format!(
                "default_quota in {}: {} (give -q)",
                source.display(),
                text
            )));
        }
    }
    match vpasswd::lookup(&d.dir, &n.user, d.owner()) {
        Ok(Some(_)) => return Err(VError::msg("User already exists")),
        Ok(None) => {}
        Err(e) => return Err(VError::io("can't read vpasswd", &e)),
    }
    Ok(())
}

/// Adds a user: directory (hashed when the domain is large) with a Maildir,
/// the vpasswd line (+ cdb), `lastauth` = `0.0.0.0`, and `maildirsize` for a
/// quota. Returns the new entry.
pub fn add_user(roots: &Roots, n: &NewUser) -> Result<Entry, VError> {
    let d = check_new_user(roots, n)?;
    add_user_in(roots, &d, n, None)
}

/// [`add_user`] into a domain already checked, or being made by vadddomain,
/// which holds its lock (`held`: users/assign does not name it yet).
fn add_user_in(
    roots: &Roots,
    d: &Domain,
    n: &NewUser,
    held: Option<&Lock>,
) -> Result<Entry, VError> {
    let owner = d.owner();
    let taken = match held {
        Some(_) => None,
        None => Some(lock_domain(roots, d, "can't lock vpasswd")?),
    };
    let Some(lock) = held.or(taken.as_ref()) else {
        return Err(VError::msg("can't lock vpasswd"));
    };
    // Checked again under the lock: another vadduser may have won the race.
    // (Through the cdb, which is current under the lock or detected as stale.)
    if vpasswd::lookup_locked(lock, lock.dir(), &n.user)
        .map_err(io_err("can't read vpasswd"))?
        .is_some()
    {
        return Err(VError::msg("User already exists"));
    }
    let mut dc = DirControl::read(lock.dir()).map_err(io_err("can't read .dir-control"))?;
    let bucket = dc.next_dir();
    let parent = if bucket.is_empty() {
        d.dir.clone()
    } else {
        d.dir.join(&bucket)
    };
    let user_dir = parent.join(&n.user);
    let dir_s = user_dir.to_string_lossy().into_owned();
    if dir_s.len() > MAX_DIR {
        return Err(VError::code(VA_DIR_TOO_LONG));
    }
    // The user's directory is made, and later written, with the domain
    // owner's rights, not root's: that owner may change the domain's tree
    // while this runs, and must not lead root's work out of it.
    owner_reaches(owner, &d.dir, &d.dir)?;
    crate::sys::as_owner(untrusted(owner), || {
        Ok(mkdirs(&parent, owner)
            .map_err(io_err("could not make hashed dir"))
            .and_then(|()| make_user_dir(&user_dir, owner)))
    })
    .map_err(io_err("could not become the domain's owner"))??;
    let crypted = match (&n.crypted, &n.clear) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) if !c.is_empty() => password::hash(c),
        _ => String::new(),
    };
    let gecos = if n.gecos.is_empty() {
        n.user.clone()
    } else {
        n.gecos.clone()
    };
    let mut e = Entry::new(&n.user, &crypted, &gecos, &dir_s);
    if let Some(q) = n
        .quota
        .clone()
        .or_else(|| default_quota(roots, d).ok().flatten())
    {
        e.quota = q;
    }
    if n.store_clear && n.crypted.is_none() {
        e.clear = Some(n.clear.clone().unwrap_or_default());
    }
    if let Err(err) = lock.add(&e) {
        let _ = crate::sys::as_owner(untrusted(owner), || std::fs::remove_dir_all(&user_dir));
        return Err(change_err(err));
    }
    // The counter is written once the user exists; a crash before this only
    // means the next user lands in the same bucket.
    let _ = dc.write(lock.dir(), owner);
    drop(taken);
    let _ = crate::sys::as_owner(untrusted(owner), || {
        crate::vpop::set_lastauth(&user_dir, NULL_REMOTE_IP)
    });
    // (With the owner's rights too, as update_maildirsize works.)
    update_maildirsize(&user_dir, &e.quota, owner);
    Ok(e)
}

/// A domain's limits as vpopmail reads them: `DOMDIR/.qmailadmin-limits`,
/// else `~vpopmail/etc/vlimits.default`; lines `key: value` or `key value`
/// (a `disable_*` key alone counts as set). `None` when neither file exists.
pub fn domain_limits(roots: &Roots, d: &Domain) -> Option<Vec<(String, String)>> {
    // Files vpopmail may write, read by root's tools: not through a link,
    // and not a FIFO.
    let read = |p: &Path| {
        crate::fsutil::read_nofollow(p)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let text = read(&d.dir.join(".qmailadmin-limits"))
        .or_else(|| read(&roots.vpop_etc("vlimits.default")))?;
    Some(
        text.lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (k, v) = match line.split_once(':') {
                    Some((k, v)) => (k, v),
                    None => line.split_once([' ', '\t']).unwrap_or((line, "")),
                };
                Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect(),
    )
}

/// The flags a domain's limits add to every user's (vpopmail's
/// `vlimits_get_flag_mask`): `disable_pop` is NO_POP, `disable_smtp` NO_SMTP,
/// `disable_external_relay` NO_RELAY, and so on. A `disable_*` key with the
/// value 0 is not set.
pub fn domain_flags(roots: &Roots, d: &Domain) -> u32 {
    use crate::vpop::flags as f;
    let Some(limits) = domain_limits(roots, d) else {
        return 0;
    };
    let mut mask = 0;
    for (k, v) in limits {
        if v == "0" {
            continue;
        }
        mask |= match k.as_str() {
            "disable_pop" => f::NO_POP,
            "disable_imap" => f::NO_IMAP,
            "disable_dialup" => f::NO_DIALUP,
            "disable_password_changing" => f::NO_PASSWD_CHNG,
            "disable_webmail" => f::NO_WEBMAIL,
            "disable_external_relay" => f::NO_RELAY,
            "disable_smtp" => f::NO_SMTP,
            "disable_spamassassin" => f::NO_SPAMASSASSIN,
            "delete_spam" => f::DELETE_SPAM,
            "disable_maildrop" => f::NO_MAILDROP,
            _ => 0,
        };
    }
    mask
}

/// A user's flags with the domain's limits added (vpopmail's `pw_flags`, from
/// `vlimits_setflags`), unless the user has V_OVERRIDE.
pub fn effective_flags(roots: &Roots, d: &Domain, user_flags: u32) -> u32 {
    if user_flags & crate::vpop::flags::V_OVERRIDE != 0 {
        user_flags
    } else {
        user_flags | domain_flags(roots, d)
    }
}

/// The default quota of new users from the domain limits (`default_quota`
/// bytes and `default_maxmsgcount`), as vpopmail's vadduser takes it; `None`
/// (so `NOQUOTA`) when neither is set. A value that is not a plain number
/// (`50M`, `-5`, a trailing comment) is an error rather than no quota: the
/// range the quota must be in is what it is there for.
pub fn default_quota(roots: &Roots, d: &Domain) -> Result<Option<String>, String> {
    let (mut bytes, mut count) = (0u64, 0u64);
    let Some(limits) = domain_limits(roots, d) else {
        return Ok(None);
    };
    for (k, v) in limits {
        let slot = match k.as_str() {
            "default_quota" => &mut bytes,
            "default_maxmsgcount" => &mut count,
            _ => continue,
        };
        let v = v.trim();
        *slot = if v.is_empty() {
            0
        } else {
            v.parse::<u64>()
                .map_err(|_| format!("{k} {v} is not a plain number"))?
        };
    }
    Ok(match (bytes, count) {
        (0, 0) => None,
        (b, 0) => Some(format!("{b}S")),
        (0, c) => Some(format!("{c}C")),
        (b, c) => Some(format!("{b}S,{c}C")),
    })
}

/// The user the domain's `.qmail-default` delivers unknown addresses to, if
/// it names one of its users (vpopmail's `isCatchall`).
pub fn catchall_user(d: &Domain) -> Option<String> {
    let text = crate::fsutil::read_nofollow(&d.dir.join(".qmail-default"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())?;
    // The first delivery line: comments and blank lines aside.
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    if !line.contains("vdelivermail") {
        return None;
    }
    let after = line.split_once("''")?.1.trim();
    // Written single-quoted by vadddomain, bare by vpopmail.
    let unquoted = after.replace("'\\''", "'");
    let after = unquoted
        .strip_prefix('\'')
        .and_then(|a| a.strip_suffix('\''))
        .unwrap_or(&unquoted);
    if after.starts_with('/') {
        let dom = d.dir.to_string_lossy();
        if after.starts_with(dom.as_ref()) {
            return after
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string);
        }
        None
    } else if let Some((u, dom)) = after.split_once('@') {
        (dom.eq_ignore_ascii_case(&d.name)).then(|| u.to_ascii_lowercase())
    } else {
        None
    }
}

fn inside(dir: &Path, parent: &Path) -> bool {
    dir.starts_with(parent)
        && dir != parent
        && !dir
            .components()
            .any(|c| c == std::path::Component::ParentDir)
}

/// Deletes a user: its vpasswd line, then its directory. `postmaster` is
/// refused (every domain keeps one; vdeldomain removes it with the domain),
/// and so is the catch-all account.
pub fn del_user(roots: &Roots, user: &str, domain_name: &str) -> Result<Entry, VError> {
    names::check_user_lookup(user)?;
    let d = domain(roots, domain_name)?;
    let owner = d.owner();
    if vpasswd::lookup(&d.dir, user, owner)
        .map_err(io_err("can't read vpasswd"))?
        .is_none()
    {
        return Err(VError::code(VA_USER_DOES_NOT_EXIST));
    }
    if user == "postmaster" {
        return Err(VError::msg(format!(
            "can't delete postmaster@{}: every domain keeps its postmaster (vdeldomain removes the whole domain)",
            d.name
        )));
    }
    if catchall_user(&d).as_deref() == Some(user) {
        return Err(VError::code(VA_CANNOT_DELETE_CATCHALL));
    }
    let lock = lock_domain(roots, &d, "can't lock vpasswd")?;
    let old = lock.delete(user).map_err(change_err)?;
    // A directory another user still has (vmoduser -D can point two users
    // at one, or one inside the other, or at a hash bucket holding others)
    // stays, with its mail.
    let shared = lock.lines().map_or(true, |lines| {
        let mine = Path::new(&old.dir);
        lines
            .iter()
            .filter_map(|l| Entry::parse(l).ok())
            .map(|e| PathBuf::from(&e.dir))
            .any(|d| d.starts_with(mine) || mine.starts_with(&d))
    });
    if let Ok(mut dc) = DirControl::read(lock.dir()) {
        dc.dec();
        let _ = dc.write(lock.dir(), owner);
    }
    // The directory goes while the lock is held: a vadduser of the same name
    // waits, and then makes a fresh directory rather than one this removal
    // would take parts of.
    let ud = PathBuf::from(&old.dir);
    // Only ever remove a directory inside the domain's own directory, and
    // never through a link planted in it.
    if inside(&ud, &d.dir) && !shared {
        // (The vpasswd line is gone by now, as in vpopmail: say so.)
        crate::fsutil::no_planted_links(&ud).map_err(io_err(&format!(
            "user removed from vpasswd, but not removing {}",
            ud.display()
        )))?;
        // With the domain owner's rights (see add_user_in).
        if let Err(e) = crate::sys::as_owner(untrusted(owner), || std::fs::remove_dir_all(&ud)) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(VError::io(
                    &format!("could not remove {}", ud.display()),
                    &e,
                ));
            }
        }
    }
    drop(lock);
    Ok(old)
}

/// Changes a user's password (vpasswd). A missing user and a user with
/// NO_PASSWD_CHNG both give vpopmail's `Illegal username`. Without
/// `store_clear` a clear-text field that was there is emptied (it would no
/// longer match).
pub fn set_password(
    roots: &Roots,
    user: &str,
    domain_name: &str,
    clear: &str,
    store_clear: bool,
) -> Result<(), VError> {
    names::check_user_lookup(user)?;
    check_password_fields(Some(clear), None)?;
    let d = domain(roots, domain_name)?;
    let lock = lock_domain(roots, &d, "can't lock vpasswd")?;
    let mut e = match lock.get(user).map_err(io_err("can't read vpasswd"))? {
        // vpopmail's vpasswd() checks pw_flags: the user's flags with the
        // domain's limits (disable_password_changing) added.
        Some(e)
            if effective_flags(roots, &d, e.flags) & crate::vpop::flags::NO_PASSWD_CHNG == 0 =>
        {
            e
        }
        _ => return Err(VError::code(VA_ILLEGAL_USERNAME)),
    };
    e.passwd = password::hash(clear);
    e.clear = if store_clear {
        Some(clear.to_string())
    } else {
        e.clear.map(|_| String::new())
    };
    lock.modify(&e).map_err(change_err)
}

/// What vmoduser changes.
#[derive(Clone, Debug, Default)]
pub struct Modify {
    /// `-c`: the gecos.
    pub gecos: Option<String>,
    /// `-D`: the directory.
    pub dir: Option<String>,
    /// `-C`: a clear password (hashed, and stored in the clear field).
    pub clear: Option<String>,
    /// `-e`: a crypted password (the clear field is emptied).
    pub crypted: Option<String>,
    /// `-x`: clear all flags first.
    pub clear_flags: bool,
    /// Flags to set.
    pub set_flags: u32,
    /// `-q`: the quota field (already checked).
    pub quota: Option<String>,
}

impl Modify {
    fn check(&self) -> Result<(), VError> {
        if let Some(g) = &self.gecos {
            check_gecos(g)?;
        }
        if let Some(d) = &self.dir {
            if d.len() > MAX_DIR {
                return Err(VError::code(VA_DIR_TOO_LONG));
            }
            names::check_text(d, false)?;
            if !d.starts_with('/') {
                return Err(VError::msg(format!("dir must be an absolute path: {d}")));
            }
        }
        check_password_fields(self.clear.as_deref(), self.crypted.as_deref())
    }

    fn apply(&self, e: &mut Entry) {
        if let Some(g) = &self.gecos {
            e.gecos = g.clone();
        }
        if let Some(d) = &self.dir {
            e.dir = d.clone();
        }
        if let Some(c) = &self.clear {
            e.passwd = password::hash(c);
            e.clear = Some(c.clone());
        } else if let Some(c) = &self.crypted {
            e.passwd = c.clone();
            e.clear = e.clear.take().map(|_| String::new());
        }
        if self.clear_flags {
            e.flags = 0;
        }
        e.flags |= self.set_flags;
        if let Some(q) = &self.quota {
            e.quota = q.clone();
        }
    }
}

/// vmoduser on one user (`no such user user@domain` when missing).
pub fn modify_user(roots: &Roots, user: &str, domain_name: &str, m: &Modify) -> Result<(), VError> {
    m.check()?;
    names::check_user_lookup(user)?;
    // vpopmail's vauth_getpw fails the same way for an unknown domain.
    let d = match domain(roots, domain_name) {
        Err(e) if e.code == VError::code(VA_DOMAIN_DOES_NOT_EXIST).code => {
            return Err(VError::msg(format!("no such user {user}@{domain_name}")))
        }
        r => r?,
    };
    let lock = lock_domain(roots, &d, "can't lock vpasswd")?;
    let Some(mut e) = lock.get(user).map_err(io_err("can't read vpasswd"))? else {
        return Err(VError::msg(format!("no such user {user}@{}", d.name)));
    };
    m.apply(&mut e);
    lock.modify(&e).map_err(change_err)?;
    drop(lock);
    if let Some(q) = &m.quota {
        update_maildirsize(&e.dir_path(), q, d.owner());
    }
    Ok(())
}

/// vmoduser on every user of a domain (one rewrite of vpasswd).
pub fn modify_domain(roots: &Roots, domain_name: &str, m: &Modify) -> Result<(), VError> {
    m.check()?;
    let d = domain(roots, domain_name)?;
    let lock = lock_domain(roots, &d, "can't lock vpasswd")?;
    let lines = lock.lines().map_err(io_err("can't read vpasswd"))?;
    let mut out = Vec::with_capacity(lines.len());
    let mut dirs = Vec::new();
    for l in lines {
        match Entry::parse(&l) {
            Ok(mut e) => {
                m.apply(&mut e);
                dirs.push(e.dir.clone());
                out.push(e.to_line());
            }
            Err(_) => out.push(l),
        }
    }
    lock.write(&out)
        .map_err(io_err("could not update vpasswd"))?;
    drop(lock);
    if let Some(q) = &m.quota {
        for dir in dirs {
            update_maildirsize(Path::new(&dir), q, d.owner());
        }
    }
    Ok(())
}

/// vsetuserquota for one user (quota already checked).
pub fn set_quota(roots: &Roots, user: &str, domain_name: &str, quota: &str) -> Result<(), VError> {
    names::check_user_lookup(user)?;
    // As vpopmail's vsetuserquota: the domain is checked first.
    let d = domain(roots, domain_name)?;
    let lock = lock_domain(roots, &d, "can't lock vpasswd")?;
    let Some(mut e) = lock.get(user).map_err(io_err("can't read vpasswd"))? else {
        return Err(VError::code(VA_USER_DOES_NOT_EXIST));
    };
    e.quota = quota.to_string();
    lock.modify(&e).map_err(change_err)?;
    drop(lock);
    update_maildirsize(&e.dir_path(), quota, d.owner());
    Ok(())
}

/// vsetuserquota for every user of a domain.
pub fn set_domain_quota(roots: &Roots, domain_name: &str, quota: &str) -> Result<(), VError> {
    modify_domain(
        roots,
        domain_name,
        &Modify {
            quota: Some(quota.to_string()),
            ..Modify::default()
        },
    )
}

/// What vadddomain asks for.
#[derive(Clone, Debug, Default)]
pub struct NewDomain {
    /// The domain (lowercased by the caller or here).
    pub name: String,
    /// The base directory (`-d`; default VPOPMAIL_HOME): the domain goes into
    /// `BASE/domains/[hash/]NAME`.
    pub base: Option<PathBuf>,
    /// Owner uid/gid (`-i`, `-g`, `-u`; default [`default_owner`]).
    pub owner: Option<(u32, u32)>,
    /// The postmaster's clear password.
    pub password: String,
    /// Store the postmaster's clear password too.
    pub store_clear: bool,
    /// The postmaster's quota (already checked).
    pub quota: Option<String>,
    /// `-e`: catch-all address (with `@`) or mailbox name.
    pub catchall: Option<String>,
}

/// Checks that a new domain can be added (nothing is changed).
pub fn check_new_domain(roots: &Roots, name: &str) -> Result<(), VError> {
    names::check_new_domain(name)?;
    // A domain lives in qmail's files as much as in vpopmail's: without them
    // (no setup-root yet, a wrong QMAIL_HOME) nothing is started.
    for d in [roots.control(""), roots.qmail_home().join("users")] {
        if !d.is_dir() {
            return Err(VError::msg(format!(
                "{} is missing (is QMAIL_HOME right?)",
                d.display()
            )));
        }
    }
    match find_domain(roots, name) {
        Ok(Some(_)) => {
            let mut e = VError::code(VA_DOMAIN_ALREADY_EXISTS);
            if let Some(missing) = missing_control_entry(roots, name) {
                // What a vadddomain killed half way leaves: say how to mend it.
                e.text = format!(
                    "{} (but not in {missing}: run vdeldomain {name}, then vadddomain again)",
                    e.text
                );
            }
            Err(e)
        }
        Ok(None) => Ok(()),
        Err(e) => Err(VError::io("can't read users/assign", &e)),
    }
}

/// The control file a domain of users/assign is missing from, if any:
/// rcpthosts (or morercpthosts), or virtualdomains for a domain that is not
/// in locals.
fn missing_control_entry(roots: &Roots, name: &str) -> Option<&'static str> {
    let lines = |f: &str| {
        crate::control::read_file(&roots.control(f))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let names = |f: &str| lines(f).lines().any(|l| ctlfiles::names_host(l, name));
    if !names("rcpthosts") && !names("morercpthosts") {
        return Some("control/rcpthosts");
    }
    let virtual_line = lines("virtualdomains").lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(d, _)| d.trim().eq_ignore_ascii_case(name))
    });
    if !virtual_line && !names("locals") {
        return Some("control/virtualdomains");
    }
    None
}

/// What vaddaliasdomain did: `alias` now delivers to `real`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasAdded {
    /// The new alias domain.
    pub alias: String,
    /// The domain it aliases.
    pub real: String,
}

/// Makes one of two domains an alias of the other, as vpopmail 5.4's
/// vaddaliasdomain: the one that exists is the real domain (either order is
/// taken), the other gets the users/assign line `+alias-:real:uid:gid:dir:-::`,
/// a line in rcpthosts (or morercpthosts) and `alias:alias` in virtualdomains,
/// and qmail-send is told.
pub fn add_alias_domain(roots: &Roots, a: &str, b: &str) -> Result<AliasAdded, VError> {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b {
        return Err(VError::msg("real domain and alias domain are the same!"));
    }
    let find = |n: &str| -> Result<Option<Domain>, VError> {
        names::check_domain_chars(n)?;
        find_domain(roots, n).map_err(io_err("can't read users/assign"))
    };
    let (alias, real) = match (find(&a)?, find(&b)?) {
        (Some(_), Some(_)) => {
            return Err(VError::msg(
                "Both domains already exist, unable to create alias.",
            ))
        }
        (None, None) => {
            return Err(VError::msg(format!(
                "Neither '{a}' or '{b}'  exist, unable to create alias."
            )))
        }
        (Some(real), None) => (b, real),
        (None, Some(real)) => (a, real),
    };
    // Under the real domain's lock, which vdeldomain holds while it removes
    // a domain and its aliases: an alias is never added to a domain that
    // is going (see `lock_domain`).
    let _lock = lock_domain(roots, &real, "can't lock vpasswd")?;
    check_new_domain(roots, &alias)?;
    let line = crate::vpop::assign::domain_line(&alias, &real.name, real.uid, real.gid, &real.dir);
    if let Err(e) = ctlfiles::add_domain(roots, &alias, &line) {
        return Err(VError::io(verror(VA_COULD_NOT_UPDATE_FILE), &e));
    }
    ctlfiles::hup_qmail_send(roots);
    Ok(AliasAdded {
        alias,
        real: real.name,
    })
}

/// The `.qmail-default` line of a domain.
pub fn qmail_default_line(roots: &Roots, dom_dir: &Path, catchall: Option<&str>) -> String {
    let bin = roots.vpop_bin("vdelivermail");
    // vpopmail's form, unquoted: add_domain lets no shell syntax into `c`.
    match catchall {
        Some(c) if c.contains('@') => format!("| {} '' {c}\n", bin.display()),
        Some(c) => format!(
            "| {} '' {}/{}\n",
            bin.display(),
            dom_dir.display(),
            c.to_ascii_lowercase()
        ),
        None => format!("| {} '' bounce-no-mailbox\n", bin.display()),
    }
}

/// Adds a domain as vadddomain does: its directory (hashed once there are
/// many domains) with `.qmail-default`, the users/assign line (+ users/cdb),
/// rcpthosts or morercpthosts (+ cdb), virtualdomains, removal from locals, a
/// HUP to qmail-send, and `postmaster@DOMAIN`. If postmaster cannot be
/// created the domain is removed again.
pub fn add_domain(roots: &Roots, nd: &NewDomain) -> Result<Domain, VError> {
    let name = nd.name.to_ascii_lowercase();
    check_new_domain(roots, &name)?;
    if nd.password.is_empty() {
        return Err(VError::msg("No password entered"));
    }
    check_password_fields(Some(&nd.password), None)?;
    if let Some(c) = &nd.catchall {
        names::check_text(c, false)?;
        // An address or a user name, written unquoted into .qmail-default
        // (which /bin/sh may read): no white space, no shell syntax.
        let odd = c
            .chars()
            .any(|ch| ch.is_whitespace() || ";|&$`<>(){}[]*?\\\"'#~".contains(ch));
        if c.is_empty() || odd || (!c.contains('@') && names::check_user_lookup(c).is_err()) {
            return Err(VError::msg(format!("invalid catch-all: {c}")));
        }
    }
    let (uid, gid) = nd.owner.unwrap_or_else(default_owner);
    let owner = Some((uid, gid));
    let base = nd.base.clone().unwrap_or_else(|| roots.vpopmail.clone());
    // As vpopmail's chdir(dir): the base (-d, or the -u user's home) must
    // exist; only its `domains` directory is made.
    if !base.is_dir() {
        return Err(VError::code(VA_BAD_V_DIR));
    }
    let domains = base.join("domains");
    // A base that passes through another owner's directories (-d under its
    // home, -u) could be changed by it while root makes `domains`: there
    // the owner's rights make it.
    let made = if untrusted(owner).is_some() && !trusted_path(&base) {
        crate::sys::as_owner(untrusted(owner), || mkdirs(&domains, owner))
    } else {
        mkdirs(&domains, owner)
    };
    made.map_err(|_| VError::msg("Can not make domains directory"))?;
    // Refused before anything is made (`domains/.`: entering it, not only
    // seeing it).
    owner_reaches(owner, &domains.join("."), &domains)?;
    // The domain counter is shared by concurrent vadddomain runs; it, and
    // its lock, stay the domains directory's owner's.
    let domains_owner = owner_of(&domains);
    let dc_lock = Lock::take_named(&domains, ".dir-control.lock", domains_owner)
        .map_err(io_err("can't lock .dir-control"))?;
    let mut dc = DirControl::read(dc_lock.dir()).map_err(io_err("can't read .dir-control"))?;
    let bucket = dc.next_dir();
    let parent = if bucket.is_empty() {
        domains.clone()
    } else {
        domains.join(&bucket)
    };
    let dom_dir = parent.join(&name);
    if dom_dir.to_string_lossy().len() > MAX_DIR {
        return Err(VError::code(VA_DIR_TOO_LONG));
    }
    // Made through the domains directory the lock pinned: a `domains` the
    // owner holds (-d, -u) may change under root's feet. There the owner's
    // rights make the directories (no chown by path); in vpopmail's own
    // `domains`, root makes them and gives them to the owner.
    let fs_parent = if bucket.is_empty() {
        dc_lock.dir().to_path_buf()
    } else {
        dc_lock.dir().join(&bucket)
    };
    let fs_dom = fs_parent.join(&name);
    if std::fs::symlink_metadata(&fs_dom).is_ok() {
        return Err(VError {
            code: VA_COULD_NOT_MAKE_DOMAIN_DIR,
            text: format!(
                "Could not make domain dir: {} already exists",
                dom_dir.display()
            ),
        });
    }
    let owners_domains = untrusted(owner).is_some() && {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dc_lock.dir()).is_ok_and(|m| m.uid() == uid)
    };
    let make = || {
        mkdirs(&fs_parent, owner)?;
        std::fs::DirBuilder::new().mode(DIR_MODE).create(&fs_dom)
    };
    let made_dir = if owners_domains {
        crate::sys::as_owner(untrusted(owner), make)
    } else {
        make().map(|()| vpasswd::chown_to(&fs_dom, owner))
    };
    made_dir.map_err(|_| VError::code(VA_COULD_NOT_MAKE_DOMAIN_DIR))?;
    // Written through the directory as made, whatever its owner does to the
    // path meanwhile (see vpasswd::pin_dir).
    let Ok((pinned, _dir_fd)) = vpasswd::pin_dir(&fs_dom, owner) else {
        let _ = remove_owned_tree(&dom_dir, owner);
        return Err(VError::code(VA_COULD_NOT_MAKE_DOMAIN_DIR));
    };
    let qd = pinned.join(".qmail-default");
    if crate::fsutil::atomic_write_owned(
        &qd,
        qmail_default_line(roots, &dom_dir, nd.catchall.as_deref()).as_bytes(),
        0o600,
        owner,
    )
    .is_err()
    {
        let _ = remove_owned_tree(&dom_dir, owner);
        return Err(VError::code(VA_COULD_NOT_OPEN_QMAIL_DEFAULT));
    }
    let _ = dc.write(dc_lock.dir(), domains_owner);
    // The counter's lock stays held until users/assign names the domain: a
    // vdeldomain of the same name takes it before it removes what looks like
    // a leftover directory, and must not take this one, half made.
    // postmaster exists before any control file names the domain: a run
    // killed before that leaves only a directory (vdeldomain removes it),
    // never a domain without its postmaster.
    let made = Domain {
        name: name.clone(),
        dir: dom_dir.clone(),
        uid,
        gid,
    };
    let pm = NewUser {
        user: "postmaster".into(),
        domain: name.clone(),
        clear: Some(nd.password.clone()),
        gecos: "Postmaster".into(),
        quota: nd.quota.clone(),
        store_clear: nd.store_clear,
        ..NewUser::default()
    };
    // The new domain's own lock too, held until users/assign and the other
    // control files name it: a vdeldomain that finds the domain in
    // users/assign meanwhile waits for it, and then removes it whole.
    let dom_lock = Lock::take(&dom_dir, owner).map_err(|e| {
        let _ = remove_owned_tree(&dom_dir, owner);
        count_one_less(&dom_dir);
        io_err("can't lock vpasswd")(e)
    })?;
    if let Err(e) = check_new_user_in(roots, &made, &pm)
        .and_then(|()| add_user_in(roots, &made, &pm, Some(&dom_lock)))
    {
        let _ = remove_owned_tree(&dom_dir, owner);
        count_one_less(&dom_dir);
        return Err(VError {
            code: e.code,
            text: format!("(vadduser) {}", e.text),
        });
    }
    let line = crate::vpop::assign::domain_line(&name, &name, uid, gid, &dom_dir);
    if let Err(e) = ctlfiles::add_domain(roots, &name, &line) {
        let _ = remove_owned_tree(&dom_dir, owner);
        count_one_less(&dom_dir);
        return Err(VError::io(verror(VA_COULD_NOT_UPDATE_FILE), &e));
    }
    ctlfiles::hup_qmail_send(roots);
    Ok(made)
}

/// What vdeldomain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The domain (and these alias domains) are gone.
    Done(Vec<String>),
    /// Not deleted: these alias domains point to it and `force` was not given.
    HasAliases(Vec<String>),
    /// The domain was not in the control files, but a directory of that name
    /// was left in `~vpopmail/domains` (a vadddomain or vdeldomain killed
    /// between its steps); it is gone now.
    Leftover(PathBuf),
}

/// Deletes a domain (vdeldomain). An alias domain loses only its control
/// entries; a real domain loses its directory tree and all its alias domains
/// (which needs `force` when there are any).
pub fn del_domain(roots: &Roots, name: &str, force: bool) -> Result<Deleted, VError> {
    let name = name.to_ascii_lowercase();
    let d = match domain(roots, &name) {
        Ok(d) => d,
        Err(e) if e.code == VError::code(VA_DOMAIN_DOES_NOT_EXIST).code => {
            let Some(dir) = leftover_dir(roots, &name) else {
                return Err(e);
            };
            // vadddomain holds the domains directory's counter lock from
            // making a domain's directory until users/assign names it: under
            // that lock a directory being made is not taken for a leftover.
            let dc_lock = domains_dir_of(&dir)
                .and_then(|dd| Lock::take_named(&dd, ".dir-control.lock", owner_of(&dd)).ok());
            if domain(roots, &name).is_ok() {
                // Made meanwhile: deleted as the domain it now is.
                drop(dc_lock);
                return del_domain(roots, &name, force);
            }
            return if dir.is_dir()
                && nothing_names(roots, &name)
                && !holds_mail(&dir)
                && (marked_for_deletion(&dir) || at_most_postmaster(&dir))
            {
                remove_leftover(&dir).map(|()| Deleted::Leftover(dir))
            } else {
                Err(e)
            };
        }
        Err(e) => return Err(e),
    };
    // A real domain goes under its vpasswd lock, held to the end: the tools
    // that change its accounts, and vaddaliasdomain, wait for it and then
    // find the domain gone (see `lock_domain`), rather than writing into a
    // tree being removed or aliasing a domain no longer there.
    // (A directory that cannot be locked, gone or not the owner's, is no
    // other tool's either: the domain's entries still go.)
    let _lock = match (name == d.name).then(|| Lock::take(&d.dir, d.owner())) {
        Some(Ok(lock)) => {
            still_there(roots, &d, &lock)?;
            Some(lock)
        }
        _ => None,
    };
    let entries =
        ctlfiles::domain_entries(roots).map_err(|_| VError::code(VA_CANNOT_READ_ASSIGN))?;
    let aliases: Vec<String> = entries
        .iter()
        .filter(|(dom, w)| w.user == d.name && *dom != d.name)
        .map(|(dom, _)| dom.clone())
        .collect();
    let all_lines =
        ctlfiles::assign_lines(roots).map_err(|_| VError::code(VA_CANNOT_READ_ASSIGN))?;
    let lines_for = |doms: &[String]| -> Vec<String> {
        all_lines
            .iter()
            .filter(|l| {
                crate::vpop::assign::parse_wild(l)
                    .and_then(|w| w.prefix.strip_suffix('-').map(str::to_string))
                    .is_some_and(|p| doms.contains(&p))
            })
            .cloned()
            .collect()
    };
    if name != d.name {
        // An alias domain: only its own entries go.
        let doms = vec![name.clone()];
        ctlfiles::del_domains(roots, &doms, &lines_for(&doms))
            .map_err(io_err("could not update control files"))?;
        ctlfiles::hup_qmail_send(roots);
        return Ok(Deleted::Done(Vec::new()));
    }
    if !aliases.is_empty() && !force {
        return Ok(Deleted::HasAliases(aliases));
    }
    let mut doms = vec![name.clone()];
    doms.extend(aliases.iter().cloned());
    // The tree goes only when it is a directory of its own below a domains dir.
    let dir = &d.dir;
    let is_link = std::fs::symlink_metadata(dir)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    // Marked first: a run killed from here on leaves a directory that the
    // next run may take for a leftover, whatever accounts it holds.
    // With the rights of an owner root does not trust (see `untrusted`).
    let as_owner = |f: &dyn Fn() -> bool| {
        crate::sys::as_owner(untrusted(d.owner()), || Ok(f())).unwrap_or(false)
    };
    let marked = !is_link && as_owner(&|| mark_for_deletion(dir));
    if let Err(e) = ctlfiles::del_domains(roots, &doms, &lines_for(&doms)) {
        // The mark goes only while the domain is still whole (assign names
        // it, so the next run finds it); once assign has changed, the next
        // run must be able to take the directory for a leftover.
        if marked && domain(roots, &name).is_ok() {
            as_owner(&|| std::fs::remove_file(dir.join(DELETING)).is_ok());
        }
        return Err(io_err("could not update control files")(e));
    }
    if is_link {
        as_owner(&|| std::fs::remove_file(dir).is_ok());
    } else if let Err(e) = crate::fsutil::no_planted_links(dir) {
        crate::elog!(
            "Warning: not removing {}: {}",
            dir.display(),
            crate::deliver::errstr(&e)
        );
    } else if dir.components().count() > 2 && dir.file_name().is_some_and(|f| f == name.as_str()) {
        if let Err(e) = remove_owned_tree(dir, d.owner()) {
            if e.kind() != io::ErrorKind::NotFound {
                crate::elog!("Warning: Failed to delete directory tree: {name}");
            }
        }
    } else {
        crate::elog!(
            "Warning: not removing {}: not a domain directory",
            dir.display()
        );
    }
    count_one_less(dir);
    ctlfiles::hup_qmail_send(roots);
    Ok(Deleted::Done(aliases))
}

/// One domain less in the `.dir-control` of the domains directory holding `dir`.
fn count_one_less(dir: &Path) {
    if let Some(dd) = domains_dir_of(dir) {
        // The counter is the domains directory's, and stays its owner's.
        let owner = owner_of(&dd);
        if let Ok(lock) = Lock::take_named(&dd, ".dir-control.lock", owner) {
            if let Ok(mut dc) = DirControl::read(lock.dir()) {
                dc.dec();
                let _ = dc.write(lock.dir(), owner);
            }
            drop(lock);
        }
    }
}

/// The directory a domain missing from the control files left behind in
/// `~vpopmail/domains`, directly or in a hash bucket (`0`, `0/A`, ...), as
/// vadddomain makes them.
fn leftover_dir(roots: &Roots, name: &str) -> Option<PathBuf> {
    fn search(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
        let here = dir.join(name);
        if std::fs::symlink_metadata(&here).is_ok_and(|m| m.is_dir()) {
            return Some(here);
        }
        if depth == 0 {
            return None;
        }
        let mut buckets: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| {
                e.file_name().len() == 1
                    && e.file_type().is_ok_and(|t| t.is_dir())
                    && e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric())
            })
            .map(|e| e.path())
            .collect();
        buckets.sort();
        buckets.iter().find_map(|b| search(b, name, depth - 1))
    }
    // A name vadddomain takes has no `/` and is not `.` or `..`.
    names::check_new_domain(name).ok()?;
    search(&roots.vpopmail.join("domains"), name, 3)
}

/// True only when qmail's files are certainly there and readable and none of
/// them names `name`: a directory is a leftover of a killed run only then.
/// A wrong QMAIL_HOME, or an assign that is empty, cut short or not in
/// assign format, must never make a live domain's mail look like one.
fn nothing_names(roots: &Roots, name: &str) -> bool {
    let read = |p: PathBuf| crate::control::read_file(&p);
    if !roots.control("me").is_file() {
        return false;
    }
    let Ok(Some(assign)) = read(crate::vpop::assign::assign_path(roots)) else {
        return false;
    };
    if crate::vpop::assign::compile(&assign).is_err() {
        return false;
    }
    let prefix = format!("{name}-");
    let in_assign = String::from_utf8_lossy(&assign)
        .lines()
        .take_while(|l| !l.starts_with('.'))
        .filter_map(crate::vpop::assign::parse_wild)
        .any(|w| w.prefix.eq_ignore_ascii_case(&prefix));
    if in_assign {
        return false;
    }
    let key = format!("!{prefix}");
    let in_cdb =
        || match crate::cdb::Reader::open_opt_nofollow(&crate::vpop::assign::cdb_path(roots)) {
            Ok(Some(r)) => !matches!(r.get(key.as_bytes()), Ok(None)),
            Ok(None) => false,
            Err(_) => true,
        };
    // A users/cdb naming it when assign no longer does is older than assign
    // (a vdeldomain killed between its rewrite of assign and qmail-newu):
    // compiled again, as qmail-newu would, it says what assign says.
    if in_cdb() && (crate::vpop::assign::newu(roots).is_err() || in_cdb()) {
        return false;
    }
    for (file, sep) in [
        ("rcpthosts", None),
        ("morercpthosts", None),
        ("virtualdomains", Some(':')),
    ] {
        let text = match read(roots.control(file)) {
            Ok(t) => t.unwrap_or_default(),
            Err(_) => return false,
        };
        let text = crate::vpop::entry::decode(&text);
        let named = text.lines().any(|l| {
            let host = match sep {
                Some(c) => l.split(c).next().unwrap_or(""),
                None => l,
            };
            ctlfiles::names_host(host, name)
        });
        if named {
            return false;
        }
    }
    true
}

/// The file vdeldomain leaves in a domain directory before it changes the
/// control files, so that the directory of a run killed half way can be
/// told from a live domain's.
const DELETING: &str = ".vdeldomain-running";

/// Leaves the [`DELETING`] mark in `dir` (never through a link planted at
/// that name). Whether it was made.
fn mark_for_deletion(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    // An old mark (a run killed before it changed anything, accounts changed
    // since) is made again, so that it is newer than vpasswd.
    if !marked_for_deletion(dir) {
        let _ = std::fs::remove_file(dir.join(DELETING));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(DELETING))
        .is_ok()
        || marked_for_deletion(dir)
}

/// Whether `dir` carries the [`DELETING`] mark, made after the last change
/// to its accounts (a mark left by a run killed before it changed anything,
/// in a domain that went on being used, does not count).
fn marked_for_deletion(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(mark) = std::fs::symlink_metadata(dir.join(DELETING)) else {
        return false;
    };
    let accounts_changed = std::fs::symlink_metadata(dir.join("vpasswd"))
        .map(|m| (m.mtime(), m.mtime_nsec()))
        .unwrap_or((0, 0));
    mark.is_file() && accounts_changed <= (mark.mtime(), mark.mtime_nsec())
}

/// Whether a domain directory holds nothing but what a vadddomain killed
/// half way leaves: no account but the postmaster, and no `.qmail-NAME`
/// file (aliases, forwards) but `.qmail-default`. Anything more is a live
/// domain's as far as anyone can tell (with QMAIL_HOME naming another
/// installation, nothing there names it), unless vdeldomain marked it.
fn at_most_postmaster(dir: &Path) -> bool {
    let accounts = match crate::fsutil::read_nofollow(&dir.join("vpasswd")) {
        Ok(None) => true,
        Ok(Some(text)) => text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with(b"postmaster:")),
        Err(_) => false,
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    accounts
        && entries.flatten().all(|e| {
            let n = e.file_name();
            let n = n.as_encoded_bytes();
            // (and the temporary file of a vadddomain killed writing it)
            !n.starts_with(b".qmail-")
                || n == b".qmail-default"
                || n.starts_with(b".qmail-default.tmp.")
        })
}

/// Whether a directory holds any message (a file in a `new` or `cur`
/// directory), links not followed; an error reading counts as yes. A leftover
/// is removed only without mail: even with QMAIL_HOME naming another real
/// installation, no live domain's mail is ever deleted as one.
fn holds_mail(dir: &Path) -> bool {
    fn walk(d: &Path, depth: usize) -> bool {
        let Ok(rd) = std::fs::read_dir(d) else {
            return true;
        };
        let in_box = d.file_name().is_some_and(|n| n == "new" || n == "cur");
        for e in rd {
            let Ok(e) = e else {
                return true;
            };
            let Ok(t) = e.file_type() else {
                return true;
            };
            if t.is_dir() {
                if depth == 0 || walk(&e.path(), depth - 1) {
                    return true;
                }
            } else if in_box {
                return true;
            }
        }
        false
    }
    walk(dir, 12)
}

fn remove_leftover(dir: &Path) -> Result<(), VError> {
    crate::fsutil::no_planted_links(dir).map_err(io_err("not removing it"))?;
    // `.dir-control` is left alone: whether the killed vadddomain counted
    // this directory is not known, and the count only places new domains.
    // With the rights of the account that owns it (see `untrusted`).
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(dir)
            .ok()
            .map(|m| (m.uid(), m.gid()))
    };
    remove_owned_tree(dir, owner).map_err(io_err("Failed to delete directory tree"))
}

/// Removes a domain directory (or a leftover) that `owner` may own: emptied,
/// the [`DELETING`] mark last (a run killed half way leaves the mark for the
/// next one to go on), with that owner's rights when it is not trusted
/// (`untrusted`), so no link it swaps in leads root's removals elsewhere;
/// the emptied directory itself is then removed by this process (its
/// parent may be vpopmail's, not the owner's).
fn remove_owned_tree(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    // A file made meanwhile (the lock file of a tool that then finds the
    // domain gone) is removed by another round.
    let mut tries = 0;
    loop {
        crate::sys::as_owner(untrusted(owner), || empty_tree_mark_last(dir))?;
        match rmdir_in_parent(dir) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 3 => tries += 1,
            r => return r,
        }
    }
}

/// The uid and gid that own `p` (following links).
fn owner_of(p: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.uid(), m.gid()))
}

/// Whether only root and vpopmail can change what `p` leads to: every
/// component as written (links themselves) and every directory of where it
/// leads belongs to one of them, and none of those directories may be
/// written by others unless sticky.
fn trusted_path(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let trusted = |uid: u32| uid == 0 || uid == default_owner().0;
    let mut cur = PathBuf::new();
    for c in p.components() {
        cur.push(c);
        if !std::fs::symlink_metadata(&cur).is_ok_and(|m| trusted(m.uid())) {
            return false;
        }
    }
    let Ok(real) = std::fs::canonicalize(p) else {
        return false;
    };
    let mut cur = PathBuf::new();
    for c in real.components() {
        cur.push(c);
        let ok = std::fs::metadata(&cur)
            .is_ok_and(|m| trusted(m.uid()) && (m.mode() & 0o002 == 0 || m.mode() & 0o1000 != 0));
        if !ok {
            return false;
        }
    }
    true
}

/// Removes the empty directory `dir` through its parent opened without
/// following a link as its last component, so that a parent swapped for a
/// link meanwhile leads root's rmdir nowhere.
fn rmdir_in_parent(dir: &Path) -> io::Result<()> {
    use nix::fcntl::OFlag;
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return std::fs::remove_dir(dir);
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let open = |f| nix::fcntl::open(parent, f, nix::sys::stat::Mode::empty());
    let fd = match open(flags | OFlag::O_NOFOLLOW) {
        // A link root or vpopmail made (`domains` on another disk) is
        // followed; one of anybody else's is not.
        Err(nix::errno::Errno::ELOOP) => {
            use std::os::unix::fs::MetadataExt;
            let trusted = std::fs::symlink_metadata(parent)
                .is_ok_and(|m| m.uid() == 0 || m.uid() == default_owner().0);
            if !trusted {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            open(flags)?
        }
        r => r?,
    };
    nix::unistd::unlinkat(&fd, name, nix::unistd::UnlinkatFlags::RemoveDir)?;
    Ok(())
}

/// Everything in `dir`, the [`DELETING`] mark last.
fn empty_tree_mark_last(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name() == DELETING {
            continue;
        }
        let r = if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())
        } else {
            std::fs::remove_file(e.path())
        };
        match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_file(dir.join(DELETING)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The `domains` directory holding a domain directory (skipping a hash bucket).
fn domains_dir_of(dom_dir: &Path) -> Option<PathBuf> {
    dom_dir
        .ancestors()
        .skip(1)
        .find(|a| a.file_name().is_some_and(|f| f == "domains"))
        .map(Path::to_path_buf)
}

/// What vuserinfo shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct InfoFields {
    /// No selection: everything, in vuserinfo's default format.
    pub all: bool,
    /// `-n`
    pub name: bool,
    /// `-p`
    pub passwd: bool,
    /// `-C`
    pub clear: bool,
    /// `-u`
    pub uid: bool,
    /// `-g`
    pub gid: bool,
    /// `-c`
    pub comment: bool,
    /// `-d`
    pub dir: bool,
    /// `-q`
    pub quota: bool,
    /// `-Q`
    pub usage: bool,
    /// `-l`
    pub lastauth: bool,
}

/// The quota usage in percent (vuserinfo's `usage:`), from maildirsize when
/// it is current, else from a scan of the Maildir; nothing is written.
pub fn usage_percent(e: &Entry) -> u64 {
    if !e.dir_path().is_absolute() {
        return 0;
    }
    let md = e.maildir();
    let file = mdquota::read(&md).ok().flatten();
    // An empty quota field: the quota of maildirsize's line 1 (vdelivermail's).
    let q = if e.quota.trim().is_empty() {
        file.as_ref().and_then(|f| f.quota)
    } else {
        Some(mdquota::Quota::from_vpasswd(&e.quota))
    };
    let Some(q) = q else {
        return 0;
    };
    let usage = match file {
        Some(f) if !f.needs_rebuild(crate::timefmt::now(), &q) => f.usage,
        _ => mdquota::scan(&md).unwrap_or_default(),
    };
    q.percent(&usage)
}

fn lastauth_lines(e: &Entry, out: &mut String) {
    match crate::vpop::last_auth(&e.dir_path()) {
        Some((t, ip)) if ip != NULL_REMOTE_IP && !ip.is_empty() => {
            out.push_str(&format!("last auth: {}\n", crate::timefmt::ctime(t)));
            out.push_str(&format!("last auth ip: {ip}\n"));
        }
        Some((t, _)) => {
            out.push_str(&format!("account created: {}\n", crate::timefmt::ctime(t)));
            out.push_str("last auth: Never logged in\n");
        }
        None => out.push_str("last auth: Never logged in\n"),
    }
}

/// vuserinfo's text for one entry; `flags` are its [`effective_flags`]. A
/// limit that only the domain sets is marked `(*)`.
pub fn user_info(e: &Entry, flags: u32, f: &InfoFields) -> String {
    let mut o = String::new();
    let usage = |o: &mut String, prefix: &str| {
        if e.quota != "NOQUOTA" {
            o.push_str(&format!("{prefix}{}%\n", usage_percent(e)));
        } else {
            o.push_str(&format!("{prefix}{}\n", e.quota));
        }
    };
    let clear = e.clear.as_deref().unwrap_or("");
    if f.all {
        o.push_str(&format!("name:   {}\n", e.name));
        o.push_str(&format!("passwd: {}\n", e.passwd));
        o.push_str(&format!("clear passwd: {clear}\n"));
        o.push_str(&format!("comment/gecos: {}\n", e.gecos));
        o.push_str(&format!(
            "uid:    {}\n",
            crate::vpop::entry::atoi_u32(&e.uid)
        ));
        o.push_str(&format!("gid:    {}\n", e.flags));
        o.push_str(&format!("flags:  {flags}\n"));
        o.push_str(&format!("gecos: {}\n", e.gecos));
        if flags == 0 {
            o.push_str("limits: No user limits set.\n");
        } else {
            o.push_str("limits:\n");
            for (flag, text) in crate::vpop::flags::VUSERINFO_ORDER {
                if flags & flag != 0 {
                    let mark = if e.flags & flag != 0 { "" } else { " (*)" };
                    o.push_str(&format!("        {text}{mark}\n"));
                }
            }
            if flags != e.flags {
                o.push_str("        * = set by domain-wide limits\n");
            }
        }
        o.push_str(&format!("dir:       {}\n", e.dir));
        o.push_str(&format!("quota:     {}\n", e.quota));
        usage(&mut o, "usage:     ");
        lastauth_lines(e, &mut o);
        return o;
    }
    if f.name {
        o.push_str(&format!("{}\n", e.name));
    }
    if f.passwd {
        o.push_str(&format!("{}\n", e.passwd));
    }
    if f.clear {
        o.push_str(&format!("{clear}\n"));
    }
    if f.uid {
        o.push_str(&format!("{}\n", crate::vpop::entry::atoi_u32(&e.uid)));
    }
    if f.gid {
        o.push_str(&format!("{}\n", e.flags));
    }
    if f.comment {
        o.push_str(&format!("{}\n", e.gecos));
    }
    if f.dir {
        o.push_str(&format!("{}\n", e.dir));
    }
    if f.quota {
        o.push_str(&format!("{}\n", e.quota));
    }
    if f.usage {
        usage(&mut o, "");
    }
    if f.lastauth {
        lastauth_lines(e, &mut o);
    }
    o
}

/// The file of an alias: `DOMDIR/.qmail-ALIAS`, dots written as `:`.
pub fn alias_file(d: &Domain, alias: &str) -> PathBuf {
    d.dir.join(alias_file_name(alias))
}

/// The name of an alias's `.qmail` file (`.` written as `:`).
fn alias_file_name(alias: &str) -> String {
    format!(".qmail-{}", alias.replace('.', ":"))
}

/// A `.qmail` file of the domain; a symbolic link there is refused, never
/// read (root runs valias in a directory vpopmail can write).
fn alias_lines(path: &Path) -> io::Result<Option<Vec<String>>> {
    Ok(crate::fsutil::read_nofollow(path)?.map(|b| {
        // Without loss (entry::decode): lines written back keep their bytes.
        crate::vpop::entry::decode(&b)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }))
}

/// The lines of one alias (`None` when it does not exist).
pub fn alias_show(
    roots: &Roots,
    alias: &str,
    domain_name: &str,
) -> Result<Option<Vec<String>>, VError> {
    names::check_user_lookup(alias)?;
    let d = domain(roots, domain_name)?;
    alias_lines(&alias_file(&d, alias)).map_err(io_err("can't read alias"))
}

/// Every alias of a domain with its lines, sorted by name (`.qmail-default`
/// is the catch-all, not an alias).
pub fn alias_all(roots: &Roots, domain_name: &str) -> Result<Vec<(String, Vec<String>)>, VError> {
    let d = domain(roots, domain_name)?;
    let mut out = Vec::new();
    let rd = std::fs::read_dir(&d.dir).map_err(io_err("can't read domain dir"))?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(a) = n.strip_prefix(".qmail-") else {
            continue;
        };
        let kind = e.file_type().ok();
        if a == "default" || a.is_empty() {
            continue;
        }
        if kind.is_some_and(|t| t.is_symlink()) {
            // Never followed here (a link may point anywhere), but qmail-local
            // delivers through it: say so instead of leaving it out unseen.
            crate::elog!(
                "Warning: {} is a symbolic link: not shown",
                e.path().display()
            );
            continue;
        }
        if !kind.is_some_and(|t| t.is_file()) {
            continue;
        }
        let lines = alias_lines(&e.path())
            .map_err(io_err("can't read alias"))?
            .unwrap_or_default();
        out.push((a.replace(':', "."), lines));
    }
    out.sort();
    Ok(out)
}

/// Adds a line to an alias (creating it). The same line twice is an error.
pub fn alias_insert(
    roots: &Roots,
    alias: &str,
    domain_name: &str,
    line: &str,
) -> Result<(), VError> {
    // An alias is a .qmail-ALIAS file, not a user directory: vpopmail's
    // valias_insert has no minimum length (a one-letter `a@` is fine).
    names::check_user_lookup(alias)?;
    if alias == "default" {
        return Err(VError::code(VA_ILLEGAL_USERNAME));
    }
    if line.len() > 160 {
        return Err(VError::code(VA_ALIAS_LINE_TOO_LONG));
    }
    if line.trim().is_empty() {
        return Err(VError::msg("empty alias line"));
    }
    names::check_text(line, true)?;
    let d = domain(roots, domain_name)?;
    let lock = lock_domain(roots, &d, "can't lock domain")?;
    // Through the directory the lock pinned (see Lock::take_named).
    let path = lock.dir().join(alias_file_name(alias));
    let mut lines = alias_lines(&path)
        .map_err(io_err("can't read alias"))?
        .unwrap_or_default();
    if lines.iter().any(|l| l == line) {
        return Err(VError::msg(format!(
            "alias {alias}@{} -> {line} already exists.",
            d.name
        )));
    }
    lines.push(line.to_string());
    let mut text = lines.join("\n");
    text.push('\n');
    crate::fsutil::atomic_write_owned(&path, &crate::vpop::entry::encode(&text), 0o600, d.owner())
        .map_err(io_err("could not write alias"))?;
    drop(lock);
    Ok(())
}

/// Deletes an alias.
pub fn alias_delete(roots: &Roots, alias: &str, domain_name: &str) -> Result<(), VError> {
    names::check_user_lookup(alias)?;
    if alias == "default" {
        return Err(VError::code(VA_ILLEGAL_USERNAME));
    }
    let d = domain(roots, domain_name)?;
    let lock = lock_domain(roots, &d, "could not delete alias")?;
    match std::fs::remove_file(lock.dir().join(alias_file_name(alias))) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VError::msg(format!(
            "alias {alias}@{} does not exist",
            d.name
        ))),
        Err(e) => Err(VError::io("could not delete alias", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Roots) {
        let t = tempfile::tempdir().unwrap();
        let roots = Roots::new(t.path().join("q"), t.path().join("v"));
        for d in [
            roots.users(),
            roots.qmail.join("control"),
            roots.domains(),
            roots.vpopmail.join("bin"),
            roots.queue(),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(roots.users().join("assign"), ".\n").unwrap();
        std::fs::write(roots.control("rcpthosts"), "localhost\n").unwrap();
        std::fs::write(roots.control("locals"), "localhost\nexample.com\n").unwrap();
        (t, roots)
    }

    fn nd(name: &str) -> NewDomain {
        NewDomain {
            name: name.into(),
            password: "pm-pass".into(),
            ..NewDomain::default()
        }
    }

    #[test]
    fn domain_and_user_life_cycle() {
        let (_t, roots) = root();
        let d = add_domain(&roots, &nd("Example.com")).unwrap();
        assert_eq!(d.dir, roots.domains().join("example.com"));
        let qd = std::fs::read_to_string(d.dir.join(".qmail-default")).unwrap();
        assert_eq!(
            qd,
            format!(
                "| {}/bin/vdelivermail '' bounce-no-mailbox\n",
                roots.vpopmail.display()
            )
        );
        let rcpt = std::fs::read_to_string(roots.control("rcpthosts")).unwrap();
        assert_eq!(rcpt, "example.com\nlocalhost\n");
        assert_eq!(
            std::fs::read_to_string(roots.control("virtualdomains")).unwrap(),
            "example.com:example.com\n"
        );
        assert_eq!(
            std::fs::read_to_string(roots.control("locals")).unwrap(),
            "localhost\n"
        );
        let (_, pm) = crate::vpop::find_user(&roots, "postmaster", "example.com")
            .unwrap()
            .unwrap();
        assert_eq!(pm.gecos, "Postmaster");
        assert!(password::verify("pm-pass", &pm.passwd));
        assert_eq!(pm.clear, None);
        assert!(
            matches!(add_domain(&roots, &nd("example.com")), Err(e) if e.code == VA_DOMAIN_ALREADY_EXISTS)
        );

        let n = NewUser {
            user: "joe".into(),
            domain: "example.com".into(),
            clear: Some("pw1".into()),
            store_clear: true,
            ..NewUser::default()
        };
        let e = add_user(&roots, &n).unwrap();
        assert_eq!(e.clear.as_deref(), Some("pw1"));
        assert!(d.dir.join("joe/Maildir/new").is_dir());
        assert_eq!(
            std::fs::read(d.dir.join("joe/lastauth")).unwrap(),
            b"0.0.0.0"
        );
        assert!(add_user(&roots, &n).is_err());
        set_password(&roots, "joe", "example.com", "pw2", false).unwrap();
        let (_, j) = crate::vpop::find_user(&roots, "joe", "example.com")
            .unwrap()
            .unwrap();
        assert!(password::verify("pw2", &j.passwd));
        assert_eq!(j.clear.as_deref(), Some(""));
        assert!(del_user(&roots, "postmaster", "example.com").is_err());
        del_user(&roots, "joe", "example.com").unwrap();
        assert!(!d.dir.join("joe").exists());
        assert!(
            matches!(del_user(&roots, "joe", "example.com"), Err(e) if e.code == VA_USER_DOES_NOT_EXIST)
        );

        assert_eq!(
            del_domain(&roots, "example.com", false).unwrap(),
            Deleted::Done(vec![])
        );
        assert!(!d.dir.exists());
        assert_eq!(
            std::fs::read_to_string(roots.control("rcpthosts")).unwrap(),
            "localhost\n"
        );
        assert_eq!(
            std::fs::read_to_string(roots.users().join("assign")).unwrap(),
            ".\n"
        );
        assert!(crate::vpop::find_domain(&roots, "example.com")
            .unwrap()
            .is_none());
    }

    #[test]
    fn catchall_detection() {
        let (_t, roots) = root();
        let mut n = nd("c.org");
        n.catchall = Some("postmaster".into());
        let d = add_domain(&roots, &n).unwrap();
        assert_eq!(catchall_user(&d).as_deref(), Some("postmaster"));
        let mut n = nd("e.org");
        n.catchall = Some("Boss@E.org".into());
        let d = add_domain(&roots, &n).unwrap();
        assert_eq!(catchall_user(&d).as_deref(), Some("boss"));
        // A comment line first (an old setting kept) does not hide it.
        let qd = d.dir.join(".qmail-default");
        let text = std::fs::read_to_string(&qd).unwrap();
        std::fs::write(&qd, format!("# was: bounce-no-mailbox\n\n{text}")).unwrap();
        assert_eq!(catchall_user(&d).as_deref(), Some("boss"));
    }

    #[test]
    fn info_format() {
        let e = Entry::parse("joe:$6$x$y:1:2050:Joe:/nonexistent/joe:NOQUOTA:pw").unwrap();
        let t = user_info(
            &e,
            e.flags,
            &InfoFields {
                all: true,
                ..Default::default()
            },
        );
        assert_eq!(
            t,
            "name:   joe\npasswd: $6$x$y\nclear passwd: pw\ncomment/gecos: Joe\nuid:    1\ngid:    2050\nflags:  2050\ngecos: Joe\nlimits:\n        pop access closed\n        smtp access is closed\ndir:       /nonexistent/joe\nquota:     NOQUOTA\nusage:     NOQUOTA\nlast auth: Never logged in\n"
        );
        // The domain closes IMAP too: flagged as the domain's.
        let t = user_info(
            &e,
            e.flags | crate::vpop::flags::NO_IMAP,
            &InfoFields {
                all: true,
                ..Default::default()
            },
        );
        assert!(t.contains("gid:    2050\nflags:  2058\n"), "{t}");
        assert!(t.contains("limits:\n        pop access closed\n        imap access closed (*)\n        smtp access is closed\n        * = set by domain-wide limits\ndir:"), "{t}");
        let t = user_info(
            &e,
            e.flags,
            &InfoFields {
                dir: true,
                quota: true,
                ..Default::default()
            },
        );
        assert_eq!(t, "/nonexistent/joe\nNOQUOTA\n");
    }
}
