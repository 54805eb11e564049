//! Authentication: the checkpassword interface (both sides), SASL PLAIN, LOGIN,
//! CRAM-MD5 and APOP, and vchkpw's logic.

pub mod checkpassword;
pub mod sasl;
pub mod vchkpw;
