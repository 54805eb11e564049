//! vpopmail: vpasswd (+cdb), domains, users/assign, passwords, flags and quotas.
