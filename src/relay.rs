//! POP-before-SMTP: the open-smtp list and the tcp.smtp.cdb rebuild.
