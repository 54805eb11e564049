//! Per-user flag bits: the fourth ("gid") field of a vpasswd line, written in
//! decimal, OR'ed together (vpopmail's `vauth.h`).

/// The user may not change the password.
pub const NO_PASSWD_CHNG: u32 = 0x01;
/// POP3 access is closed.
pub const NO_POP: u32 = 0x02;
/// Webmail access (POP/IMAP from 127.0.0.1) is closed.
pub const NO_WEBMAIL: u32 = 0x04;
/// IMAP access is closed.
pub const NO_IMAP: u32 = 0x08;
/// Mail to the user bounces (the account is locked).
pub const BOUNCE_MAIL: u32 = 0x10;
/// A POP/IMAP login does not open the POP-before-SMTP relay.
pub const NO_RELAY: u32 = 0x20;
/// Dial-up access is closed.
pub const NO_DIALUP: u32 = 0x40;
/// User flag 0.
pub const V_USER0: u32 = 0x80;
/// User flag 1.
pub const V_USER1: u32 = 0x100;
/// User flag 2.
pub const V_USER2: u32 = 0x200;
/// User flag 3.
pub const V_USER3: u32 = 0x400;
/// SMTP AUTH is closed.
pub const NO_SMTP: u32 = 0x800;
/// qmailadmin administrator of the domain.
pub const QA_ADMIN: u32 = 0x1000;
/// The user's flags override the domain limits.
pub const V_OVERRIDE: u32 = 0x2000;
/// No spam scanning.
pub const NO_SPAMASSASSIN: u32 = 0x4000;
/// Spam is deleted.
pub const DELETE_SPAM: u32 = 0x8000;
/// SpamAssassin administrator.
pub const SA_ADMIN: u32 = 0x10000;
/// SpamAssassin expert.
pub const SA_EXPERT: u32 = 0x20000;
/// No maildrop filtering.
pub const NO_MAILDROP: u32 = 0x40000;

/// Every flag with the text vuserinfo prints for it under `limits:`, in
/// vuserinfo's order.
pub const VUSERINFO_ORDER: &[(u32, &str)] = &[
    (NO_PASSWD_CHNG, "password can not be changed by user"),
    (NO_POP, "pop access closed"),
    (NO_WEBMAIL, "webmail access closed"),
    (NO_IMAP, "imap access closed"),
    (NO_SMTP, "smtp access is closed"),
    (NO_RELAY, "user not allowed to relay mail"),
    (NO_SPAMASSASSIN, "spamassassin processing disabled"),
    (DELETE_SPAM, "delete spam"),
    (NO_MAILDROP, "maildrop processing disabled"),
    (NO_DIALUP, "no dialup flag has been set"),
    (BOUNCE_MAIL, "mail will be bounced back to sender"),
    (QA_ADMIN, "has qmailadmin administrator access"),
    (SA_ADMIN, "has system administrator access"),
    (SA_EXPERT, "has expert access"),
    (V_USER0, "user flag 0 is set"),
    (V_USER1, "user flag 1 is set"),
    (V_USER2, "user flag 2 is set"),
    (V_USER3, "user flag 3 is set"),
    (V_OVERRIDE, "user is not subject to domain limits"),
];

/// The flag set by a vmoduser option letter (`-d`, `-p`, ...), if any.
pub fn from_vmoduser_option(c: char) -> Option<u32> {
    Some(match c {
        'd' => NO_PASSWD_CHNG,
        'p' => NO_POP,
        's' => NO_SMTP,
        'w' => NO_WEBMAIL,
        'i' => NO_IMAP,
        'b' => BOUNCE_MAIL,
        'o' => V_OVERRIDE,
        'r' => NO_RELAY,
        'a' => QA_ADMIN,
        'S' => SA_ADMIN,
        'E' => SA_EXPERT,
        'f' => NO_SPAMASSASSIN,
        'F' => DELETE_SPAM,
        'm' => NO_MAILDROP,
        'u' => NO_DIALUP,
        '0' => V_USER0,
        '1' => V_USER1,
        '2' => V_USER2,
        '3' => V_USER3,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_vpopmails() {
        assert_eq!(NO_SMTP, 2048);
        assert_eq!(NO_MAILDROP, 262144);
        let all: u32 = VUSERINFO_ORDER.iter().map(|d| d.0).sum();
        assert_eq!(all, 0x7ffff);
        assert_eq!(from_vmoduser_option('p'), Some(NO_POP));
        assert_eq!(from_vmoduser_option('z'), None);
    }
}
