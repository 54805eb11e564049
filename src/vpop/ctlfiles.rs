//! The qmail control files a virtual domain lives in: `users/assign`,
//! `control/rcpthosts`, `control/morercpthosts` (+ `morercpthosts.cdb`),
//! `control/virtualdomains` and `control/locals`, changed the way vpopmail
//! changes them, and the HUP that makes qmail-send reread them.
//!
//! Every change takes vpopmail's fcntl lock on `FILE.lock`, reads the file,
//! and writes the new version atomically (temporary file, fsync, rename),
//! mode 0644. New lines go in sorted position, the sort key being the domain
//! with its last two labels moved to the front (`mail.example.com` sorts as
//! `example.com.mail`), as vpopmail's `update_file`; a file found out of order
//! is sorted as a whole, with vpopmail's notice on stderr.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cdb;
use crate::paths::Roots;

/// Which file a line belongs to (how its domain is extracted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// users/assign: `+DOMAIN-:...`, ends with a `.` line.
    Assign,
    /// rcpthosts, morercpthosts, locals: the whole line.
    Hosts,
    /// virtualdomains: `DOMAIN:prefix`.
    Virtual,
}

/// vpopmail's `extract_domain`: the sort key of a line.
pub fn sort_key(line: &str, kind: Kind) -> String {
    // An assign line's first character (`+`, `=`, or anything a hand edit
    // put there, whatever its length in bytes) is not part of the domain.
    let body = match kind {
        Kind::Assign => {
            let mut c = line.chars();
            c.next();
            c.as_str()
        }
        _ => line,
    };
    let mut dom = body.split(':').next().unwrap_or("").to_string();
    if kind == Kind::Assign {
        dom.pop();
    }
    let parts: Vec<&str> = dom.split('.').filter(|p| !p.is_empty()).collect();
    if parts.len() > 1 {
        let n = parts.len();
        let mut v = vec![parts[n - 2], parts[n - 1]];
        v.extend_from_slice(&parts[..n - 2]);
        v.join(".")
    } else {
        dom
    }
}

/// vpopmail's lock for `path`: an exclusive fcntl lock on `PATH.lock`, held
/// until the returned file is dropped.
pub(crate) fn lock(path: &Path) -> io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let f = crate::fsutil::open_lock(Path::new(&name))?;
    crate::sys::lock_exclusive(&f)?;
    Ok(f)
}

fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    let Some(b) = crate::control::read_file(path)? else {
        return Ok(Vec::new());
    };
    // Bytes that are not UTF-8 (an ISO-8859-1 home in an `=` line of
    // assign) are kept as they are (vpasswd's lossless decoding).
    let mut v: Vec<String> = crate::vpop::entry::decode(&b)
        .split('\n')
        .map(str::to_string)
        .collect();
    // A final newline leaves one empty string behind.
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    Ok(v)
}

fn write_lines(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    crate::fsutil::atomic_write(path, &crate::vpop::entry::encode(&text), 0o644)
}

/// Inserts `line` into `path` in sorted position (vpopmail's `update_file`),
/// unless the file already holds exactly that line. Whether it was added.
pub fn insert_sorted(path: &Path, line: &str, kind: Kind) -> io::Result<bool> {
    let _l = lock(path)?;
    let mut lines = read_lines(path)?;
    // users/assign ends at its first line starting with `.` (qmail-newu
    // reads no further): the lines are sorted up to there, and whatever
    // follows stays after the end as it was.
    let mut tail = Vec::new();
    if kind == Kind::Assign {
        if let Some(end) = lines.iter().position(|l| l.starts_with('.')) {
            tail = lines.split_off(end);
        } else {
            tail.push(".".to_string());
        }
    }
    let add = !lines.iter().any(|l| l == line);
    if add {
        let key = sort_key(line, kind);
        let keys: Vec<String> = lines.iter().map(|l| sort_key(l, kind)).collect();
        let at = keys.iter().position(|k| *k > key).unwrap_or(lines.len());
        let unsorted = keys.windows(2).any(|w| w[0] > w[1]);
        lines.insert(at, line.to_string());
        if unsorted {
            crate::elog!(
                "NOTICE: Out of order entries found in {}\n   Sorting...\n",
                path.display()
            );
            lines.sort_by_cached_key(|l| sort_key(l, kind));
        }
    }
    lines.append(&mut tail);
    write_lines(path, &lines)?;
    Ok(add)
}

/// Removes every line equal to one of `remove`; returns how many went. A
/// missing file removes nothing (and is not created).
pub fn remove_lines(path: &Path, remove: &[String]) -> io::Result<usize> {
    remove_matching(path, |l| remove.iter().any(|r| r == l))
}

/// Whether a line of a host list (locals, rcpthosts, morercpthosts) names
/// `host` as qmail reads it: without regard to case, trailing spaces and
/// tabs ignored.
pub fn names_host(line: &str, host: &str) -> bool {
    line.trim_end_matches([' ', '\t', '\r'])
        .eq_ignore_ascii_case(host)
}

/// Removes the lines of a host list that name one of `hosts`
/// ([`names_host`]). Returns how many went.
pub fn remove_hosts(path: &Path, hosts: &[String]) -> io::Result<usize> {
    remove_matching(path, |l| hosts.iter().any(|h| names_host(l, h)))
}

/// Removes the lines of users/assign equal to one of `remove`, up to its end
/// line (what follows that line, which qmail-newu never reads, stays).
pub fn remove_assign_lines(path: &Path, remove: &[String]) -> io::Result<usize> {
    let mut ended = false;
    remove_matching(path, |l| {
        ended |= l.starts_with('.');
        !ended && remove.iter().any(|r| r == l)
    })
}

fn remove_matching(path: &Path, mut gone: impl FnMut(&str) -> bool) -> io::Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let _l = lock(path)?;
    let lines = read_lines(path)?;
    let before = lines.len();
    let kept: Vec<String> = lines.into_iter().filter(|l| !gone(l)).collect();
    let n = before - kept.len();
    if n > 0 {
        write_lines(path, &kept)?;
    }
    Ok(n)
}

/// Number of lines in control/rcpthosts (vpopmail's `count_rcpthosts`).
pub fn count_rcpthosts(roots: &Roots) -> usize {
    read_lines(&roots.control("rcpthosts"))
        .map(|l| l.len())
        .unwrap_or(0)
}

/// qmail-newmrh: compiles control/morercpthosts into morercpthosts.cdb
/// (lowercased, trailing blanks stripped, blank and `#` lines skipped; key =
/// host, empty data), through `morercpthosts.tmp`. A missing morercpthosts
/// gives an empty cdb.
///
/// It holds the morercpthosts lock while it reads and writes: concurrent
/// domain tools each compile what the file holds when their turn comes, one
/// after the other, through the one temporary name.
pub fn newmrh(roots: &Roots) -> io::Result<()> {
    let _l = lock(&roots.control("morercpthosts"))?;
    newmrh_locked(roots)
}

fn newmrh_locked(roots: &Roots) -> io::Result<()> {
    let text = crate::control::read_file(&roots.control("morercpthosts"))?.unwrap_or_default();
    let mut w = cdb::Writer::new();
    for line in text.split(|&b| b == b'\n') {
        let mut l = line.to_ascii_lowercase();
        while l
            .last()
            .is_some_and(|&c| c == b' ' || c == b'\t' || c == b'\r')
        {
            l.pop();
        }
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        w.add(&l, b"");
    }
    w.write_via(
        &roots.control("morercpthosts.cdb"),
        &roots.control("morercpthosts.tmp"),
        0o644,
    )
}

/// Adds a (real or alias) domain to the control files, as vpopmail's
/// `add_domain_assign`: assign line + qmail-newu, rcpthosts (or morercpthosts
/// once rcpthosts has 50 lines, + qmail-newmrh), virtualdomains, and removal
/// from locals.
/// The errors name the file (`/var/qmail/users/assign: No such file or directory`).
/// On an error the lines this run added are taken back, every file tried
/// even when one cannot be written, so the domain is left in none of them
/// (a line that was there before, made by hand, stays).
pub fn add_domain(roots: &Roots, alias: &str, assign_line: &str) -> io::Result<()> {
    let mut added = Added::default();
    let r = add_domain_entries(roots, alias, assign_line, &mut added);
    if r.is_err() {
        added.undo(roots, alias, assign_line);
    }
    r
}

/// Which lines [`add_domain_entries`] added, each with whether its file
/// (and for morercpthosts its cdb) was new.
#[derive(Default)]
struct Added {
    assign: bool,
    rcpthosts: Option<bool>,
    morercpthosts: Option<(bool, bool)>,
    virtualdomains: Option<bool>,
}

/// Removes `line` from `path`, and the file too when this run made it and
/// nothing else is in it. Whether the file went.
fn take_back(path: &Path, line: &str, new: bool) -> bool {
    let _ = remove_lines(path, &[line.to_string()]);
    new && std::fs::metadata(path).is_ok_and(|m| m.len() == 0) && std::fs::remove_file(path).is_ok()
}

impl Added {
    /// Removes the lines that were added, each file tried.
    fn undo(&self, roots: &Roots, alias: &str, assign_line: &str) {
        if let Some(new) = self.rcpthosts {
            take_back(&roots.control("rcpthosts"), alias, new);
        }
        if let Some((new, cdb_new)) = self.morercpthosts {
            // A file made by this run goes again, with a cdb made with it.
            if take_back(&roots.control("morercpthosts"), alias, new) && cdb_new {
                let _ = std::fs::remove_file(roots.control("morercpthosts.cdb"));
            } else {
                let _ = newmrh(roots);
            }
        }
        if let Some(new) = self.virtualdomains {
            take_back(
                &roots.control("virtualdomains"),
                &format!("{alias}:{alias}"),
                new,
            );
        }
        if self.assign {
            let assign = crate::vpop::assign::assign_path(roots);
            let _ = remove_assign_lines(&assign, &[assign_line.to_string()]);
            let _ = crate::vpop::assign::newu(roots);
        }
    }
}

fn add_domain_entries(
    roots: &Roots,
    alias: &str,
    assign_line: &str,
    added: &mut Added,
) -> io::Result<()> {
    let named = |p: &Path| {
        let p = p.to_path_buf();
        move |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("{}: {}", p.display(), crate::deliver::errstr(&e)),
            )
        }
    };
    let assign = crate::vpop::assign::assign_path(roots);
    // An assign qmail-newu could not compile is refused before it is
    // touched (sorted, with the new line), not after.
    match crate::control::read_file(&assign).map_err(named(&assign))? {
        Some(text) if crate::vpop::assign::compile(&text).is_err() => {
            return Err(io::Error::other(
                crate::vpop::assign::NewuError::Format.to_string(),
            ));
        }
        // users/cdb without the assign it was made from: a new assign
        // holding this domain alone would lose every other route.
        None if crate::vpop::assign::cdb_path(roots).exists() => {
            return Err(io::Error::other(format!(
                "{} is missing while {} exists; restore it first",
                assign.display(),
                crate::vpop::assign::cdb_path(roots).display()
            )));
        }
        _ => {}
    }
    added.assign = insert_sorted(&assign, assign_line, Kind::Assign).map_err(named(&assign))?;
    crate::vpop::assign::newu(roots).map_err(|e| io::Error::other(e.to_string()))?;
    if count_rcpthosts(roots) >= 50 {
        let mrh = roots.control("morercpthosts");
        let cdb = roots.control("morercpthosts.cdb");
        let new = (!mrh.exists(), !cdb.exists());
        if insert_sorted(&mrh, alias, Kind::Hosts).map_err(named(&mrh))? {
            added.morercpthosts = Some(new);
        }
        newmrh(roots).map_err(named(&cdb))?;
    } else {
        let rh = roots.control("rcpthosts");
        let new = !rh.exists();
        if insert_sorted(&rh, alias, Kind::Hosts).map_err(named(&rh))? {
            added.rcpthosts = Some(new);
        }
    }
    let vd = roots.control("virtualdomains");
    let line = format!("{alias}:{alias}");
    let new = !vd.exists();
    if insert_sorted(&vd, &line, Kind::Virtual).map_err(named(&vd))? {
        added.virtualdomains = Some(new);
    }
    let locals = roots.control("locals");
    remove_hosts(&locals, &[alias.to_string()]).map_err(named(&locals))?;
    Ok(())
}

/// Removes domains from rcpthosts/morercpthosts and virtualdomains (vpopmail's
/// `del_control`) and their lines from users/assign (+ qmail-newu). The first
/// failure stops it, in vpopmail's order, so that the domain is still whole
/// in assign and a second run finishes the job.
pub fn del_domains(roots: &Roots, domains: &[String], assign_lines: &[String]) -> io::Result<()> {
    // Without users/assign, or with a control file that is not a file, a
    // later step could not be done: nothing starts.
    let assign = crate::vpop::assign::assign_path(roots);
    if crate::control::read_file(&assign)?.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: file does not exist", assign.display()),
        ));
    }
    for name in ["rcpthosts", "morercpthosts", "virtualdomains"] {
        let path = roots.control(name);
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
    }
    remove_hosts(&roots.control("rcpthosts"), domains)?;
    // morercpthosts too, even when rcpthosts named every domain: a domain
    // added while rcpthosts already named it (by hand) is in both.
    let mrh = roots.control("morercpthosts");
    if remove_hosts(&mrh, domains)? > 0 {
        let _l = lock(&mrh)?;
        if std::fs::metadata(&mrh)
            .map(|m| m.len() == 0)
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(&mrh);
            let _ = std::fs::remove_file(roots.control("morercpthosts.cdb"));
        } else {
            newmrh_locked(roots)?;
        }
    }
    // The order of vpopmail's del_control and then assign: the domain is
    // refused at RCPT first.
    let virt: Vec<String> = domains.iter().map(|d| format!("{d}:{d}")).collect();
    remove_lines(&roots.control("virtualdomains"), &virt)?;
    remove_assign_lines(&assign, assign_lines)?;
    crate::vpop::assign::newu(roots).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(())
}

/// Sends SIGHUP to the qmail-send of this installation, if one runs: a
/// process named `qmail-send` that works in this QMAIL_HOME (its working
/// directory is the home or its queue, or its environment's `QMAIL_HOME` names
/// it, or it has none and this is the default `/var/qmail`). Nothing running:
/// nothing to do, quietly, as vpopmail's `signal_process`.
pub fn hup_qmail_send(roots: &Roots) {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(home) = canon(&roots.qmail) else {
        return;
    };
    let queue = canon(&roots.queue());
    let is_default = home == Path::new(crate::paths::DEFAULT_QMAIL_HOME);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "qmail-send" || pid == std::process::id() as i32 {
            continue;
        }
        let cwd = std::fs::read_link(p.path().join("cwd")).ok();
        let env_home = std::fs::read(p.path().join("environ")).ok().map(|env| {
            env.split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"QMAIL_HOME=").map(|v| v.to_vec()))
        });
        let ours = cwd.as_deref() == Some(home.as_path())
            || (queue.is_some() && cwd == queue)
            || match env_home {
                Some(Some(v)) if !v.is_empty() => {
                    canon(Path::new(std::ffi::OsStr::from_bytes(&v))).as_deref()
                        == Some(home.as_path())
                }
                Some(_) => is_default,
                None => false,
            };
        if ours {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
    }
}

/// All `+` entries of users/assign: `(domain, real domain, uid, gid, dir)`,
/// as vpopmail's `get_domain_entries` (entries without a `.` are skipped).
pub fn domain_entries(roots: &Roots) -> io::Result<Vec<(String, crate::vpop::assign::Wild)>> {
    let path = crate::vpop::assign::assign_path(roots);
    // A file qmail-newu would refuse is reported, not read as "no domains".
    if let Some(text) = crate::control::read_file(&path)? {
        if crate::vpop::assign::compile(&text).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad format in users/assign",
            ));
        }
    }
    let lines = read_lines(&path)?;
    let mut out = Vec::new();
    for l in lines {
        if !l.starts_with('+') {
            continue;
        }
        if let Some(w) = crate::vpop::assign::parse_wild(&l) {
            if let Some(dom) = w.prefix.strip_suffix('-') {
                if dom.contains('.') {
                    out.push((dom.to_string(), w));
                }
            }
        }
    }
    Ok(out)
}

/// The raw lines of users/assign (for removal by exact text).
pub fn assign_lines(roots: &Roots) -> io::Result<Vec<String>> {
    read_lines(&crate::vpop::assign::assign_path(roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            sort_key("mail.example.com", Kind::Hosts),
            "example.com.mail"
        );
        assert_eq!(sort_key("example.com", Kind::Hosts), "example.com");
        assert_eq!(sort_key("localhost", Kind::Hosts), "localhost");
        assert_eq!(
            sort_key("+a.b.org-:a.b.org:1:1:/d:-::", Kind::Assign),
            "b.org.a"
        );
        assert_eq!(sort_key("x.net:x.net", Kind::Virtual), "x.net");
        assert_eq!(sort_key(".", Kind::Assign), "");
    }

    #[test]
    fn sorted_insert_and_removal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rcpthosts");
        std::fs::write(&p, "a.com\nc.com\n").unwrap();
        insert_sorted(&p, "b.com", Kind::Hosts).unwrap();
        insert_sorted(&p, "b.com", Kind::Hosts).unwrap();
        insert_sorted(&p, "www.a.com", Kind::Hosts).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a.com\nwww.a.com\nb.com\nc.com\n"
        );
        assert_eq!(remove_lines(&p, &["b.com".into(), "zz".into()]).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a.com\nwww.a.com\nc.com\n"
        );
        // A line starting with a character of several bytes sorts too.
        assert_eq!(sort_key("\u{e9}x.com-:x", Kind::Assign), "x.com");
        // Host lists as qmail reads them: any case, trailing blanks.
        std::fs::write(&p, "Shop.Example \nkeep.example\nx.example\t\n").unwrap();
        let hosts = ["shop.example".to_string(), "x.example".to_string()];
        assert_eq!(remove_hosts(&p, &hosts).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "keep.example\n");
        // Bytes that are not UTF-8 stay as they were.
        std::fs::write(&p, b"caf\xe9.example\nb.com\n").unwrap();
        assert_eq!(remove_lines(&p, &["b.com".into()]).unwrap(), 1);
        assert_eq!(std::fs::read(&p).unwrap(), b"caf\xe9.example\n");
        let a = d.path().join("assign");
        insert_sorted(&a, "+b.com-:b.com:1:1:/b:-::", Kind::Assign).unwrap();
        insert_sorted(&a, "+a.com-:a.com:1:1:/a:-::", Kind::Assign).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "+a.com-:a.com:1:1:/a:-::\n+b.com-:b.com:1:1:/b:-::\n.\n"
        );
        // What follows the end line stays after it, unsorted: qmail-newu
        // never reads it.
        std::fs::write(&a, "+z.com-:z.com:1:1:/z:-::\n.\ntrailing junk\n").unwrap();
        insert_sorted(&a, "+c.com-:c.com:1:1:/c:-::", Kind::Assign).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "+c.com-:c.com:1:1:/c:-::\n+z.com-:z.com:1:1:/z:-::\n.\ntrailing junk\n"
        );
        assert_eq!(
            remove_lines(&d.path().join("missing"), &["x".into()]).unwrap(),
            0
        );
        assert!(!d.path().join("missing").exists());
    }
}
