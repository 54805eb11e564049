//! Local delivery: .qmail files (dot-qmail(5)), Maildir, mbox, forwards, programs, vdelivermail.
