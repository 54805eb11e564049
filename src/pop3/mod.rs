//! POP3 (RFC 1939, 2449, 2595, 5034): qmail-popup and qmail-pop3d sessions over a Maildir.
