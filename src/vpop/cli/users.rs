//! vadduser, vdeluser, vpasswd, vmoduser, vsetuserquota, vuserinfo, valias.

use super::{fail, getopt, out, prompt_password, random_len, usage_error, VERSION};
use crate::paths::Roots;
use crate::vpop::admin::{self, InfoFields, Modify, NewUser};
use crate::vpop::error::{VError, VA_USER_DOES_NOT_EXIST};
use crate::vpop::{flags, names, password, quota};

const VADDUSER_USAGE: &str =
    "vadduser [-v] [-s] [-q quota] [-c comment] [-e crypted] [-n] [-r[len]] [-C] email_address [passwd]";

/// Splits an address given to an admin program, or fails like vadduser when
/// there is no domain at all.
fn full_address(roots: &Roots, email: &str) -> Result<(String, String), i32> {
    let (u, d) = admin::parse_address(roots, email);
    if d.is_empty() {
        out("You did not use a full email address for the user name\nOnly full email addresses should be used\n");
        return Err(255);
    }
    Ok((u, d))
}

/// The `email_address [passwd]` operands of vadduser and vpasswd: the user
/// and domain, or the exit code after the error line.
fn user_and_password_operands(
    roots: &Roots,
    ops: &[String],
    random: bool,
    usage: &str,
) -> Result<(String, String), i32> {
    let Some(email) = ops.first() else {
        return Err(usage_error("no email address given", usage));
    };
    if ops.len() > 2 {
        return Err(usage_error("too many arguments", usage));
    }
    if random && ops.len() > 1 {
        out("Error: don't use -r option when giving password on command line\n");
        return Err(255);
    }
    full_address(roots, email)
}

/// vadduser: adds a user. `-C` (ours) also stores the clear-text password.
pub fn vadduser(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let (opts, ops) = match getopt(args, "svc:nq:e:r::C") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, VADDUSER_USAGE),
    };
    let mut n = NewUser::default();
    let (mut no_pw, mut random, mut quota_in) = (false, None, None);
    for o in &opts {
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            's' => crate::elog!("Warning: The -s option has been disabled."),
            'c' => n.gecos = o.arg.clone().unwrap_or_default(),
            'q' => quota_in = o.arg.clone(),
            'e' => n.crypted = o.arg.clone().filter(|c| !c.is_empty()),
            'n' => no_pw = true,
            'C' => n.store_clear = true,
            'r' => match random_len(o.arg.as_deref()) {
                Ok(l) => random = Some(password::random_password(l)),
                Err(e) => return fail(&e),
            },
            _ => {}
        }
    }
    let (user, domain) =
        match user_and_password_operands(&roots, &ops, random.is_some(), VADDUSER_USAGE) {
            Ok(x) => x,
            Err(c) => return c,
        };
    n.user = user;
    n.domain = domain;
    if let Some(q) = quota_in {
        match quota::parse(&q, quota::range(&roots)) {
            Ok(q) => n.quota = Some(q),
            Err(e) => return fail(&e),
        }
    }
    // Everything that can be checked is, before asking for a password. A
    // missing domain exits 255, as vpopmail's vadduser checks it itself (its
    // `vexit(-1)`); the rest exit with their own codes, as vpopmail's do from
    // its `vadduser()` (a gecos over 48 characters: 228).
    if let Err(e) = admin::check_new_user(&roots, &n) {
        let code = fail(&e);
        return if e.code == crate::vpop::error::VA_DOMAIN_DOES_NOT_EXIST {
            255
        } else {
            code
        };
    }
    if !no_pw && n.crypted.is_none() {
        // An empty password argument is none: vpopmail asks for one.
        let pw = match (ops.get(1).filter(|p| !p.is_empty()), &random) {
            (Some(p), _) => p.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => prompt_password(&ops[0]),
        };
        if pw.is_empty() {
            out("Error: No password entered\n");
            return 255;
        }
        n.clear = Some(pw);
    }
    if let Err(c) = super::show_random(&random) {
        return c;
    }
    if let Err(e) = admin::add_user(&roots, &n) {
        return fail(&e);
    }
    0
}

/// vdeluser: deletes a user (never postmaster, never the catch-all).
pub fn vdeluser(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vdeluser [-v] email_address";
    let (opts, ops) = match getopt(args, "v") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    if opts.iter().any(|o| o.c == 'v') {
        out(&format!("version: {VERSION}\n"));
    }
    let [email] = ops.as_slice() else {
        return usage_error("one email address expected", usage);
    };
    let (user, domain) = match full_address(&roots, email) {
        Ok(x) => x,
        Err(c) => return c,
    };
    match admin::del_user(&roots, &user, &domain) {
        Ok(_) => 0,
        Err(e) => fail(&e),
    }
}

/// vpasswd: sets a user's password. `-C` (ours) also stores it in clear text.
pub fn vpasswd(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vpasswd [-v] [-r[len]] [-C] email_address [passwd]";
    let (opts, ops) = match getopt(args, "vr::C") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    let (mut random, mut store_clear) = (None, false);
    for o in &opts {
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'C' => store_clear = true,
            'r' => match random_len(o.arg.as_deref()) {
                Ok(l) => random = Some(password::random_password(l)),
                Err(e) => return fail(&e),
            },
            _ => {}
        }
    }
    let (user, domain) = match user_and_password_operands(&roots, &ops, random.is_some(), usage) {
        Ok(x) => x,
        Err(c) => return c,
    };
    if let Err(e) = names::check_user_lookup(&user) {
        return fail(&e);
    }
    // vpopmail says "Illegal username" for a missing user and for one that
    // may not change the password.
    match crate::vpop::find_user(&roots, &user, &domain) {
        Ok(Some((_, e))) if !e.has(flags::NO_PASSWD_CHNG) => {}
        Ok(_) => return fail(&VError::code(crate::vpop::error::VA_ILLEGAL_USERNAME)),
        Err(e) => return fail(&VError::lookup(&e)),
    }
    // An empty password argument is none: vpopmail asks for one.
    let pw = match (ops.get(1).filter(|p| !p.is_empty()), &random) {
        (Some(p), _) => p.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => prompt_password(&ops[0]),
    };
    if pw.is_empty() {
        out("Error: No password entered\n");
        return 255;
    }
    if let Err(c) = super::show_random(&random) {
        return c;
    }
    if let Err(e) = admin::set_password(&roots, &user, &domain, &pw, store_clear) {
        return fail(&e);
    }
    0
}

const VMODUSER_USAGE: &str = "vmoduser [-h] [-v] [-n] [-q quota] [-c comment] [-e crypted] [-C clear] [-D dir] [-x] [-dpswibroaSEfFmu0123] email_address|domain";

/// vmoduser: changes fields and flags of one user, or of every user of a domain.
pub fn vmoduser(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let (opts, ops) = match getopt(args, "D:avunxc:q:dpswibro0123he:C:fFSEm") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, VMODUSER_USAGE),
    };
    let mut m = Modify::default();
    let is_root = nix::unistd::getuid().is_root();
    for o in &opts {
        let arg = || o.arg.clone().unwrap_or_default();
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'h' => {
                out(&format!("vmoduser: usage: {VMODUSER_USAGE}\n"));
                return 0;
            }
            'n' => {}
            'x' => m.clear_flags = true,
            // An empty value changes nothing, as in vpopmail's vmoduser (a
            // script with an unset variable must not wipe a password).
            'e' => m.crypted = Some(arg()).filter(|v| !v.is_empty()),
            'C' => m.clear = Some(arg()).filter(|v| !v.is_empty()),
            'D' => m.dir = Some(arg()).filter(|v| !v.is_empty()),
            'c' => m.gecos = Some(arg()).filter(|v| !v.is_empty()),
            'q' => match quota::parse(&arg(), quota::range(&roots)) {
                Ok(q) => m.quota = Some(q),
                Err(e) => return fail(&e),
            },
            // Like vpopmail, only root may hand out the administrator flags.
            'S' | 'E' if !is_root => {}
            c => {
                if let Some(f) = flags::from_vmoduser_option(c) {
                    m.set_flags |= f;
                }
            }
        }
    }
    let [email] = ops.as_slice() else {
        return usage_error("one email address or domain expected", VMODUSER_USAGE);
    };
    let r = if email.contains('@') {
        let (user, domain) = crate::vpop::names::split_email(email);
        admin::modify_user(&roots, &user, &domain, &m)
    } else {
        admin::modify_domain(&roots, &email.to_ascii_lowercase(), &m)
    };
    match r {
        Ok(()) => 0,
        // vpopmail prints this one without "Error: ".
        Err(e) if e.text.starts_with("no such user ") => {
            out(&format!("{}\n", e.text));
            255
        }
        Err(e) => fail(&e),
    }
}

/// vsetuserquota: sets the quota of a user, or of every user of a domain, and
/// recreates their maildirsize.
pub fn vsetuserquota(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vsetuserquota [-v] email_address|domain_name quota";
    let (opts, ops) = match getopt(args, "v") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    if opts.iter().any(|o| o.c == 'v') {
        out(&format!("version: {VERSION}\n"));
    }
    let [email, q] = ops.as_slice() else {
        return usage_error("an email address or domain and a quota expected", usage);
    };
    let q = match quota::parse(&q.to_ascii_uppercase(), quota::range(&roots)) {
        Ok(q) => q,
        Err(e) => return fail(&e),
    };
    let r = if email.contains('@') {
        let (user, domain) = crate::vpop::names::split_email(email);
        admin::set_quota(&roots, &user, &domain, &q)
    } else {
        admin::set_domain_quota(&roots, &email.to_ascii_lowercase(), &q)
    };
    match r {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

/// vuserinfo: shows a user (or with `-D`, every user of a domain).
pub fn vuserinfo(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "vuserinfo [-v] [-a|-n|-p|-u|-g|-c|-d|-q|-Q|-C|-l] email_address | -D domain";
    let (opts, ops) = match getopt(args, "anpugcdqQvlD:C") {
        Ok(x) => x,
        Err(e) => return usage_error(&e, usage),
    };
    let mut f = InfoFields {
        all: true,
        ..InfoFields::default()
    };
    let mut domain_opt = None;
    for o in &opts {
        let pick = |f: &mut InfoFields| f.all = false;
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'D' => domain_opt = o.arg.clone(),
            'a' => f.all = true,
            'n' => (pick(&mut f), f.name = true).1,
            'p' => (pick(&mut f), f.passwd = true).1,
            'C' => (pick(&mut f), f.clear = true).1,
            'u' => (pick(&mut f), f.uid = true).1,
            'g' => (pick(&mut f), f.gid = true).1,
            'c' => (pick(&mut f), f.comment = true).1,
            'd' => (pick(&mut f), f.dir = true).1,
            'q' => (pick(&mut f), f.quota = true).1,
            'Q' => (pick(&mut f), f.usage = true).1,
            'l' => (pick(&mut f), f.lastauth = true).1,
            _ => {}
        }
    }
    if let Some(dom) = domain_opt {
        let d = match admin::domain(&roots, &dom.to_ascii_lowercase()) {
            Ok(d) => d,
            Err(e) => return fail(&e),
        };
        let entries = match crate::vpop::vpasswd::read_all(&d.dir) {
            Ok(v) => v,
            Err(e) => return fail(&VError::io("can't read vpasswd", &e)),
        };
        for e in entries {
            let flags = admin::effective_flags(&roots, &d, e.flags);
            out(&format!(
                "------------------------------------------\n{}",
                admin::user_info(&e, flags, &f)
            ));
        }
        return 0;
    }
    let Some(email) = ops.first() else {
        return usage_error("no email address given", usage);
    };
    let (user, domain) = admin::parse_address(&roots, email);
    if let Err(e) = names::check_user_lookup(&user) {
        return fail(&e);
    }
    let found = if domain.is_empty() {
        Ok(None)
    } else {
        crate::vpop::find_user(&roots, &user, &domain)
    };
    match found {
        Ok(Some((d, e))) => {
            let flags = admin::effective_flags(&roots, &d, e.flags);
            out(&admin::user_info(&e, flags, &f));
            0
        }
        Ok(None) => {
            if domain.is_empty() {
                out(&format!("no such user {user}\n"));
            } else {
                out(&format!("no such user {user}@{domain}\n"));
            }
            255
        }
        Err(e) => fail(&VError::lookup(&e)),
    }
}

/// valias: shows, adds and deletes aliases (`DOMDIR/.qmail-ALIAS` files).
pub fn valias(args: &[String]) -> i32 {
    let roots = Roots::from_env();
    let usage = "valias [-v] [-n] [-s] [-d] [-i alias_line] email_address|domain";
    let (opts, ops) = match getopt(args, "vnsdi:") {
        Ok(x) => x,
        Err(e) => {
            crate::elog!("Error: {e}; usage: {usage}");
            return 254;
        }
    };
    enum Act {
        Show,
        Names,
        Delete,
        Insert(String),
    }
    let mut act = Act::Show;
    for o in &opts {
        match o.c {
            'v' => out(&format!("version: {VERSION}\n")),
            'n' => act = Act::Names,
            's' => act = Act::Show,
            'd' => act = Act::Delete,
            'i' => act = Act::Insert(o.arg.clone().unwrap_or_default()),
            _ => {}
        }
    }
    let err = |e: &VError| {
        crate::elog!("Error: {}", e.text);
        e.exit_code()
    };
    let Some(email) = ops.first() else {
        crate::elog!("Error: must supply alias email address; usage: {usage}");
        return 255;
    };
    let whole_domain = !email.contains('@');
    let (alias, domain) = if whole_domain {
        (String::new(), email.to_ascii_lowercase())
    } else {
        crate::vpop::names::split_email(email)
    };
    match act {
        // Nothing to show is vpopmail's vexit(-1): no text, 255.
        Act::Show if whole_domain => match admin::alias_all(&roots, &domain) {
            Ok(all) if all.is_empty() => 255,
            Ok(all) => {
                for (a, lines) in all {
                    for l in lines {
                        out(&format!("{a}@{domain} -> {l}\n"));
                    }
                }
                0
            }
            Err(e) => err(&e),
        },
        Act::Show => match admin::alias_show(&roots, &alias, &domain) {
            Ok(Some(lines)) => {
                for l in lines {
                    out(&format!("{alias}@{domain} -> {l}\n"));
                }
                0
            }
            Ok(None) => 255,
            Err(e) => err(&e),
        },
        Act::Names if whole_domain => match admin::alias_all(&roots, &domain) {
            Ok(all) if all.is_empty() => 255,
            Ok(all) => {
                for (a, _) in all {
                    out(&format!("{a}\n"));
                }
                0
            }
            Err(e) => err(&e),
        },
        Act::Names => {
            crate::elog!("Please enter domain name only.");
            255
        }
        Act::Delete if whole_domain => err(&VError::code(VA_USER_DOES_NOT_EXIST)),
        Act::Delete => match admin::alias_delete(&roots, &alias, &domain) {
            Ok(()) => 0,
            Err(e) => err(&e),
        },
        Act::Insert(_) if whole_domain => {
            err(&VError::msg("an alias needs a full address (alias@domain)"))
        }
        Act::Insert(line) => match admin::alias_insert(&roots, &alias, &domain, &line) {
            Ok(()) => 0,
            Err(e) => err(&e),
        },
    }
}
