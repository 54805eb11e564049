//! vpopmail's error codes (`VA_*`) and their `verror()` texts. The admin
//! programs print `Error: TEXT` and exit with the code modulo 256, as
//! vpopmail's `vexit(code)` does (so -1 exits 255, -11 exits 245).

use std::fmt;

/// An error of an admin operation, with vpopmail's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VError {
    /// vpopmail's (negative) error code.
    pub code: i32,
    /// The text printed after `Error: `.
    pub text: String,
}

macro_rules! codes {
    ($($name:ident = $code:expr, $text:expr;)*) => {
        $(
            #[doc = $text]
            pub const $name: i32 = $code;
        )*
        /// vpopmail's text for an error code.
        pub fn verror(code: i32) -> &'static str {
            match code {
                $($code => $text,)*
                _ => "Unknown error",
            }
        }
    };
}

codes! {
    VA_ILLEGAL_USERNAME = -1, "Illegal username";
    VA_USERNAME_EXISTS = -2, "Username exists";
    VA_BAD_DIR = -3, "Unable to chdir to vpopmail directory";
    VA_BAD_D_DIR = -5, "Unable to chdir to vpopmail/domains directory";
    VA_BAD_V_DIR = -6, "Unable to chdir to vpopmail/domains/domain directory";
    VA_EXIST_U_DIR = -7, "User's directory already exists";
    VA_SUBDIR_CREATION = -9, "Creation of user's subdirectories failed";
    VA_USER_DOES_NOT_EXIST = -10, "User does not exist";
    VA_DOMAIN_DOES_NOT_EXIST = -11, "Domain does not exist";
    VA_INVALID_DOMAIN_NAME = -12, "Invalid domain name";
    VA_DOMAIN_ALREADY_EXISTS = -13, "Domain already exists";
    VA_COULD_NOT_MAKE_DOMAIN_DIR = -14, "Could not make domain dir";
    VA_COULD_NOT_OPEN_QMAIL_DEFAULT = -15, "Could not open qmail default";
    VA_COULD_NOT_UPDATE_FILE = -17, "Could not update file";
    VA_BAD_CHAR = -20, "bad character";
    VA_BAD_UID = -22, "running as invalid uid";
    VA_USER_NAME_TOO_LONG = -25, "user name too long (max=32)";
    VA_DOMAIN_NAME_TOO_LONG = -26, "domain name too long (max=96)";
    VA_PASSWD_TOO_LONG = -27, "password too long (max=128)";
    VA_GECOS_TOO_LONG = -28, "gecos too long (max=48)";
    VA_QUOTA_TOO_LONG = -29, "quota too long (max=20)";
    VA_DIR_TOO_LONG = -30, "dir too long (max=160)";
    VA_CLEAR_PASSWD_TOO_LONG = -31, "clear password too long (max=128)";
    VA_ALIAS_LINE_TOO_LONG = -32, "alias line too long (max=160)";
    VA_INVALID_EMAIL_CHAR = -34, "invalid email character";
    VA_CANNOT_READ_ASSIGN = -37, "can't read users/assign file";
    VA_CANNOT_DELETE_CATCHALL = -55, "can't delete catchall account";
}

impl VError {
    /// The error with vpopmail's text for `code`.
    pub fn code(code: i32) -> VError {
        VError {
            code,
            text: verror(code).to_string(),
        }
    }

    /// An error with its own text (exit 255, as vpopmail's `vexit(-1)`).
    pub fn msg(text: impl Into<String>) -> VError {
        VError {
            code: -1,
            text: text.into(),
        }
    }

    /// A system error while doing `what`.
    pub fn io(what: &str, e: &std::io::Error) -> VError {
        VError {
            code: -1,
            text: format!("{what}: {}", crate::deliver::errstr(e)),
        }
    }

    /// A failed user lookup ([`crate::vpop::find_user`]), which reads
    /// users/assign (or users/cdb) and then the domain's vpasswd: the error
    /// names the file that failed.
    pub fn lookup(e: &std::io::Error) -> VError {
        if e.to_string().contains("users/assign") {
            VError::io("can't read users/assign", e)
        } else {
            VError::io("can't read vpasswd", e)
        }
    }

    /// The process exit status (`code` modulo 256; never 0).
    pub fn exit_code(&self) -> i32 {
        match self.code & 0xff {
            0 => 255,
            c => c,
        }
    }
}

impl fmt::Display for VError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for VError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_exit_codes() {
        assert_eq!(verror(VA_DOMAIN_DOES_NOT_EXIST), "Domain does not exist");
        assert_eq!(VError::code(VA_DOMAIN_DOES_NOT_EXIST).exit_code(), 245);
        assert_eq!(VError::msg("x").exit_code(), 255);
        assert_eq!(verror(-999), "Unknown error");
    }
}
