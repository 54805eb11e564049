//! vadddomain, vdeldomain, qmail-newu, qmail-newmrh.

use super::{fail, getopt, out, prompt_password, random_len, usage_error, VERSION};
use crate::paths::Roots;
use crate::vpop::admin::{self, Deleted, NewDomain};
use crate::vpop::{password, quota};

const VADDDOMAIN_USAGE: &str = "vadddomain [-v] [-q quota] [-b] [-e email|mailbox] [-u user] [-d dir] [-i uid] [-g gid] [-O] [-r[len]] [-C] virtual_domain [postmaster_password]";

/// vadddomain: adds a virtual domain with its postmaster. `-C` (ours) also
/// stores postmaster's clear-text password.
pub fn vadddomain(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let (opts, ops) = match getopt(args, "q:be:u:vi:g:d:Or::C") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, VADDDOMAIN_USAGE),
    };
    let mut nd = NewDomain::default();
    let (mut uid, mut gid, mut user) = (None, None, None);
    let (mut random, mut quota_in) = (None, None);
    for o in &opts {
        let arg = || o.arg.clone().unwrap_or_default();
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            // The directory goes into users/assign and vpasswd: it must not
            // depend on where the tool ran.
            'd' if !std::path::Path::new(&arg()).is_absolute() => {
                return usage_error("-d needs an absolute directory", VADDDOMAIN_USAGE)
            }
            'd' => nd.base = Some(arg().into()),
            'u' => user = Some(arg()),
            'q' => quota_in = Some(arg()),
            'e' => nd.catchall = Some(arg()),
            // A number, nothing else (vpopmail's atoi made "abc" root's 0).
            'i' | 'g' => {
                let v = arg();
                let Some(n) = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u32>().ok())
                    .flatten()
                else {
                    return usage_error(&format!("-{} needs a number", o.c), VADDDOMAIN_USAGE);
                };
                if o.c == 'i' {
                    uid = Some(n);
                } else {
                    gid = Some(n);
                }
            }
            'C' => nd.store_clear = true,
            'b' | 'O' => {}
            'r' => match random_len(o.arg.as_deref()) {
                Ok(l) => random = Some(password::random_password(l)),
                Err(e) => return fail(&e),
            },
            _ => {}
        }
    }
    let (du, dg) = admin::default_owner();
    let (mut u, mut g) = (uid.unwrap_or(du), gid.unwrap_or(dg));
    if let Some(name) = user {
        match crate::sys::account(&name) {
            Some(a) => {
                u = a.uid;
                g = a.gid;
                if nd.base.is_none() {
                    nd.base = Some(a.home);
                }
            }
            None => {
                out(&format!("Error: user {name} not found in /etc/passwd\n"));
                return 255;
            }
        }
    }
    nd.owner = Some((u, g));
    let Some(domain) = ops.first() else {
        return usage_error("no domain given", VADDDOMAIN_USAGE);
    };
    if ops.len() > 2 {
        return usage_error("too many arguments", VADDDOMAIN_USAGE);
    }
    nd.name = domain.to_ascii_lowercase();
    if let Err(e) = admin::check_new_domain(&roots, &nd.name) {
        return fail(&e);
    }
    if let Some(q) = quota_in {
        match quota::parse(&q, quota::range(&roots)) {
            Ok(q) => nd.quota = Some(q),
            Err(e) => return fail(&e),
        }
    }
    // An empty password argument is none: vpopmail asks for one.
    nd.password = match (ops.get(1).filter(|p| !p.is_empty()), &random) {
        (Some(_), Some(_)) => {
            out("Error: don't use -r option when giving password on command line\n");
            return 255;
        }
        (Some(p), None) => p.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => prompt_password("postmaster"),
    };
    if nd.password.is_empty() {
        out("Error: No password entered\n");
        return 255;
    }
    if let Err(c) = super::show_random(&random) {
        return c;
    }
    if let Err(e) = admin::add_domain(&roots, &nd) {
        return fail(&e);
    }
    0
}

/// vdeldomain: deletes a domain (and, with `-f`, its alias domains).
pub fn vdeldomain(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vdeldomain [-v] [-f] domain_name";
    let (opts, ops) = match getopt(args, "vf") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    let mut force = false;
    for o in &opts {
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'f' => force = true,
            _ => {}
        }
    }
    let [domain] = ops.as_slice() else {
        return usage_error("one domain expected", usage);
    };
    match admin::del_domain(&roots, domain, force) {
        Ok(Deleted::Done(aliases)) => {
            if !aliases.is_empty() {
                out("Warning: Alias domains deleted:\n");
                for a in aliases {
                    out(&format!("   {a}\n"));
                }
            }
            0
        }
        Ok(Deleted::Leftover(dir)) => {
            out(&format!(
                "Warning: {domain} was not a domain; removed its leftover directory {}\n",
                dir.display()
            ));
            0
        }
        Ok(Deleted::HasAliases(aliases)) => {
            out("Warning: Alias domains exist:\n");
            for a in aliases {
                out(&format!("   {a}\n"));
            }
            out("   use -f to force delete of domain and all aliases\n");
            // Nothing was deleted: unlike vpopmail (which exits 0), say so.
            1
        }
        Err(e) => fail(&e),
    }
}

/// qmail-newu: compiles users/assign into users/cdb.
pub fn qmail_newu(_args: &[String]) -> i32 {
    let roots = Roots::from_env();
    match crate::vpop::assign::newu(&roots) {
        Ok(()) => 0,
        Err(e) => {
            crate::elog!("qmail-newu: fatal: {e}");
            111
        }
    }
}

/// qmail-newmrh: compiles control/morercpthosts into morercpthosts.cdb.
pub fn qmail_newmrh(_args: &[String]) -> i32 {
    let roots = Roots::from_env();
    match crate::vpop::ctlfiles::newmrh(&roots) {
        Ok(()) => 0,
        Err(e) => {
            crate::elog!(
                "qmail-newmrh: fatal: unable to write control/morercpthosts.cdb: {}",
                crate::deliver::errstr(&e)
            );
            111
        }
    }
}

/// vaddaliasdomain: makes a domain an alias of an existing one.
pub fn vaddaliasdomain(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vaddaliasdomain [-v] real_domain alias_domain (either order)";
    let (opts, ops) = match getopt(args, "v") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    for o in &opts {
        if o.c == 'v' {
            out(&format!("version: {VERSION}\n"));
        }
    }
    let [a, b] = ops.as_slice() else {
        return usage_error("two domains expected", usage);
    };
    match admin::add_alias_domain(&roots, a, b) {
        Ok(_) => 0,
        Err(e) => fail(&e),
    }
}

/// What vdominfo prints: every field in its labelled format, or the fields
/// picked by `-n -u -g -d -t -r`, one value per line.
#[derive(Clone, Copy, Default)]
struct DomFields {
    name: bool,
    uid: bool,
    gid: bool,
    dir: bool,
    users: bool,
    real: bool,
}

/// vdominfo: shows one domain (with its aliases) or every domain of
/// users/assign.
pub fn vdominfo(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vdominfo [-v] [-a|-n|-u|-g|-d|-t|-r] [domain]";
    let (opts, ops) = match getopt(args, "vanugdtr") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    let mut f = DomFields::default();
    let mut all = true;
    for o in &opts {
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'a' => all = true,
            'n' => (all, f.name) = (false, true),
            'u' => (all, f.uid) = (false, true),
            'g' => (all, f.gid) = (false, true),
            'd' => (all, f.dir) = (false, true),
            't' => (all, f.users) = (false, true),
            'r' => (all, f.real) = (false, true),
            _ => {}
        }
    }
    if ops.len() > 1 {
        return usage_error("one domain at most", usage);
    }
    let entries = match crate::vpop::ctlfiles::domain_entries(&roots) {
        Ok(e) => e,
        Err(e) => {
            return fail(&crate::vpop::error::VError::io(
                "can't read users/assign",
                &e,
            ))
        }
    };
    let unread = std::cell::Cell::new(false);
    let show = |dom: &str, w: &crate::vpop::assign::Wild| -> String {
        // A domain this user may not read has no count to show: `?`, why on
        // stderr (not a count of 0), and a failing exit status at the end.
        let users = |w: &crate::vpop::assign::Wild| match crate::vpop::bigdir::DirControl::read(
            std::path::Path::new(&w.dir),
        ) {
            Ok(d) => d.cur_users.to_string(),
            Err(e) => {
                crate::elog!(
                    "vdominfo: can't read {}/.dir-control: {}",
                    w.dir,
                    crate::deliver::errstr(&e)
                );
                unread.set(true);
                "?".to_string()
            }
        };
        let name = if dom == w.user {
            dom.to_string()
        } else {
            format!("{dom} (alias of {})", w.user)
        };
        if all {
            return format!(
                "domain: {name}\nuid:    {}\ngid:    {}\ndir:    {}\nusers:  {}\n",
                w.uid,
                w.gid,
                w.dir,
                users(w)
            );
        }
        let mut s = String::new();
        if f.name {
            s += &format!("{name}\n");
        }
        if f.uid {
            s += &format!("{}\n", w.uid);
        }
        if f.gid {
            s += &format!("{}\n", w.gid);
        }
        if f.dir {
            s += &format!("{}\n", w.dir);
        }
        if f.users {
            s += &format!("{}\n", users(w));
        }
        if f.real {
            s += &format!("{}\n", w.user);
        }
        s
    };
    let Some(want) = ops.first() else {
        for (dom, w) in &entries {
            out(&(show(dom, w) + "\n"));
        }
        return if unread.get() { 255 } else { 0 };
    };
    // One domain: an alias stands for its real domain, which is shown
    // followed by the list of its aliases.
    let want = want.to_ascii_lowercase();
    let real = match entries.iter().find(|(dom, _)| *dom == want) {
        Some((_, w)) => w.user.clone(),
        None => {
            out("Invalid domain name\n");
            return crate::vpop::error::VError::code(crate::vpop::error::VA_DOMAIN_DOES_NOT_EXIST)
                .exit_code();
        }
    };
    let mut aliases = Vec::new();
    for (dom, w) in entries.iter().filter(|(_, w)| w.user == real) {
        if *dom == real {
            out(&show(dom, w));
        } else {
            aliases.push(dom.clone());
        }
    }
    // The alias lines belong to the full display; a field option prints
    // only its fields.
    if all {
        for a in aliases {
            out(&format!("alias: {a}\n"));
        }
    }
    if unread.get() {
        255
    } else {
        0
    }
}
