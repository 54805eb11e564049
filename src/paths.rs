//! The two roots every program works under: `QMAIL_HOME` (default `/var/qmail`) and
//! `VPOPMAIL_HOME` (default `/home/vpopmail`).
//!
//! They are read once at start and passed down; no other code names a fixed path.
//! A setuid or setgid program ignores both variables, so an unprivileged caller
//! cannot point a privileged program at files of its own choosing.

use std::path::{Path, PathBuf};

/// Default qmail home, as `conf-qmail`.
pub const DEFAULT_QMAIL_HOME: &str = "/var/qmail";
/// Default vpopmail home.
pub const DEFAULT_VPOPMAIL_HOME: &str = "/home/vpopmail";

/// The name this program was started as (the last part of argv[0]), for the
/// `NAME: ...` of its messages; never panics on an argv[0] that is not UTF-8.
pub fn program_name() -> String {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    Path::new(&arg0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Text from a client or a file for a log line: control characters (escape
/// sequences, CR, LF) and the Unicode characters that move or hide text
/// (bidirectional overrides, line and paragraph separators, zero-width
/// ones) become `?`, so that nobody can forge or hide log lines.
pub fn loggable(s: &str) -> String {
    s.chars()
        .map(|c| {
            let format = matches!(c,
                '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}');
            if c.is_control() || format {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// The installation roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    /// qmail's home: `bin`, `control`, `users`, `queue`, `alias`.
    pub qmail: PathBuf,
    /// vpopmail's home: `bin`, `etc`, `domains`.
    pub vpopmail: PathBuf,
}

impl Roots {
    /// Reads the roots from the environment (ignored when the process runs setuid
    /// or setgid), falling back to the defaults.
    pub fn from_env() -> Roots {
        let trusted = !crate::sys::is_setid();
        let pick = |var: &str, default: &str| -> PathBuf {
            if trusted {
                if let Some(v) = std::env::var_os(var) {
                    if !v.is_empty() {
                        return PathBuf::from(v);
                    }
                }
            }
            PathBuf::from(default)
        };
        Roots {
            qmail: pick("QMAIL_HOME", DEFAULT_QMAIL_HOME),
            vpopmail: pick("VPOPMAIL_HOME", DEFAULT_VPOPMAIL_HOME),
        }
    }

    /// Roots at explicit places (tests, setup).
    pub fn new(qmail: impl Into<PathBuf>, vpopmail: impl Into<PathBuf>) -> Roots {
        Roots {
            qmail: qmail.into(),
            vpopmail: vpopmail.into(),
        }
    }

    /// `QMAIL_HOME/control/NAME`.
    pub fn control(&self, name: &str) -> PathBuf {
        self.qmail.join("control").join(name)
    }
    /// `QMAIL_HOME/queue`.
    pub fn queue(&self) -> PathBuf {
        self.qmail.join("queue")
    }
    /// `QMAIL_HOME/users`.
    pub fn users(&self) -> PathBuf {
        self.qmail.join("users")
    }
    /// `QMAIL_HOME/bin/NAME`.
    pub fn qmail_bin(&self, name: &str) -> PathBuf {
        self.qmail.join("bin").join(name)
    }
    /// `VPOPMAIL_HOME/bin/NAME`.
    pub fn vpop_bin(&self, name: &str) -> PathBuf {
        self.vpopmail.join("bin").join(name)
    }
    /// `VPOPMAIL_HOME/etc/NAME`.
    pub fn vpop_etc(&self, name: &str) -> PathBuf {
        self.vpopmail.join("etc").join(name)
    }
    /// `VPOPMAIL_HOME/domains`.
    pub fn domains(&self) -> PathBuf {
        self.vpopmail.join("domains")
    }
    /// The qmail home as a `Path`.
    pub fn qmail_home(&self) -> &Path {
        &self.qmail
    }
}
