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
            'd' => nd.base = Some(arg().into()),
            'u' => user = Some(arg()),
            'q' => quota_in = Some(arg()),
            'e' => nd.catchall = Some(arg()),
            'i' => uid = Some(crate::vpop::entry::atoi_u32(&arg())),
            'g' => gid = Some(crate::vpop::entry::atoi_u32(&arg())),
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
    nd.password = match (ops.get(1), &random) {
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
    if let Err(e) = admin::add_domain(&roots, &nd) {
        return fail(&e);
    }
    if let Some(r) = random {
        out(&format!("Random password: {r}\n"));
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
            eprintln!("qmail-newu: fatal: {e}");
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
            eprintln!("qmail-newmrh: fatal: unable to write control/morercpthosts.cdb: {e}");
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
