//! `|command` deliveries: `/bin/sh -c command` in the home directory with the
//! message on stdin (rewound) and qmail-local's environment. Its output goes
//! to ours, so it ends up in the delivery report.
//!
//! A command that is only an absolute program path and plain or single-quoted
//! words (`|/home/vpopmail/bin/vdelivermail '' bounce-no-mailbox`) means the
//! same to the shell as to execve, so it is started without the shell; any
//! other command, or one whose start fails, goes to `/bin/sh -c` unchanged.
//! When that program is vqmail's own vdelivermail (its `.vqmail` ELF section
//! says so), it runs inside this process, with the same arguments, variables,
//! message, output and exit codes; any other file at that path is executed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{errstr, program_code_is_permanent, Fail};

/// What a successful program asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: go on with the next line.
    Continue,
    /// Exit 99: delivered; skip the remaining lines.
    Stop,
}

/// Runs `command` and maps its exit status: 0 continue, 99 stop,
/// 100/64/65/70/76/77/78/112 permanent, a crash or anything else temporary.
pub fn run(
    command: &[u8],
    dir: &Path,
    env: &[(OsString, OsString)],
    stdin: File,
) -> Result<Outcome, Fail> {
    let words = simple_words(command);
    if let Some(w) = &words {
        let prog = Path::new(OsStr::from_bytes(&w[0]));
        if own_program(prog).as_deref() == Some("vdelivermail") {
            if let Some(r) = vdelivermail_here(&w[1..], env, &stdin) {
                return r;
            }
        }
    }
    let direct = words.and_then(|words| {
        let mut c = Command::new(OsStr::from_bytes(&words[0]));
        crate::fsutil::start_in(&mut c, dir);
        // PWD as the shell would set it: the absolute directory the program
        // runs in (qmail-local's `.` is the home).
        let pwd = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(dir)
        };
        // Components drop a `.` that is not at the start: /home/joe/. is /home/joe.
        let pwd: std::path::PathBuf = pwd.components().collect();
        c.args(words[1..].iter().map(|w| OsStr::from_bytes(w)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PWD", pwd)
            .stdin(Stdio::from(stdin.try_clone().ok()?));
        // A failed start (missing, not executable, a script without #!) is
        // left to the shell, which reports it as it always has.
        c.status().ok()
    });
    let status = match direct {
        Some(s) => s,
        None => {
            let mut sh = Command::new("/bin/sh");
            crate::fsutil::start_in(&mut sh, dir);
            sh.arg("-c")
                .arg(OsStr::from_bytes(command))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::from(stdin))
                .status()
                .map_err(|e| {
                    Fail::temp(format!("Unable to run /bin/sh: {}. (#4.3.0)", errstr(&e)))
                })?
        }
    };
    if status.signal().is_some() {
        return Err(Fail::temp("Aack, child crashed. (#4.3.0)"));
    }
    exit_outcome(status.code().unwrap_or(111))
}

/// Runs vqmail's vdelivermail in this process, as its own process would run
/// with `args`, `env` added to our environment and the message on stdin.
/// `None` when it cannot (relative roots): the caller starts the program.
fn vdelivermail_here(
    args: &[Vec<u8>],
    env: &[(OsString, OsString)],
    stdin: &File,
) -> Option<Result<Outcome, Fail>> {
    use super::{message::Message, vdeliver};
    let roots = crate::paths::Roots::from_env();
    if !roots.qmail.is_absolute() || !roots.vpopmail.is_absolute() {
        return None;
    }
    let venv = vdeliver::Env::with_vars(env.to_vec());
    let args: Vec<OsString> = args.iter().map(|a| OsStr::from_bytes(a).into()).collect();
    let result = stdin
        .try_clone()
        .and_then(Message::from_file)
        .map_err(|_| Fail::temp("Unable to read message. (#4.3.0)"))
        .and_then(|mut msg| vdeliver::run(&roots, &args, &venv, &mut msg));
    Some(match result {
        Ok(()) => Ok(Outcome::Continue),
        Err(f) => {
            if !f.text.is_empty() {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", f.text);
                let _ = out.flush();
            }
            exit_outcome(f.code as i32)
        }
    })
}

/// What a program's exit code means to qmail-local.
fn exit_outcome(code: i32) -> Result<Outcome, Fail> {
    match code {
        0 => Ok(Outcome::Continue),
        99 => Ok(Outcome::Stop),
        c if program_code_is_permanent(c) => Err(Fail::silent(100)),
        _ => Err(Fail::silent(111)),
    }
}

/// The name in a vqmail program's `.vqmail` ELF section
/// (`vqmail-program NAME`), read from the file at `path`; `None` for any other
/// file (another vdelivermail, a script, no such file).
pub fn own_program(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileExt;
    // Never wait on a FIFO or read a device: regular files only.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))?;
    let read = |off: u64, len: u64| -> Option<Vec<u8>> {
        let mut b = vec![0; usize::try_from(len).ok()?];
        f.read_exact_at(&mut b, off).ok()?;
        Some(b)
    };
    let h = read(0, 64)?;
    // 64-bit little-endian ELF only (the section table below assumes it).
    if !h.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let n16 = |b: &[u8], o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let n32 = |b: &[u8], o: usize| u64::from(u32::from_le_bytes(b[o..o + 4].try_into().unwrap()));
    let n64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, entsize, num, strndx) =
        (n64(&h, 0x28), n16(&h, 0x3a), n16(&h, 0x3c), n16(&h, 0x3e));
    if entsize < 64 || num == 0 || strndx >= num {
        return None;
    }
    let table = read(shoff, entsize * num)?;
    let section = |i: u64| &table[(i * entsize) as usize..(i * entsize + 64) as usize];
    let strtab = section(strndx);
    if n64(strtab, 0x20) > 1 << 20 {
        return None;
    }
    let names = read(n64(strtab, 0x18), n64(strtab, 0x20))?;
    let s = (0..num).map(section).find(|s| {
        let at = n32(s, 0) as usize;
        names.get(at..).is_some_and(|n| n.starts_with(b".vqmail\0"))
    })?;
    if n64(s, 0x20) > 256 {
        return None;
    }
    let data = read(n64(s, 0x18), n64(s, 0x20))?;
    let name = data.strip_prefix(b"vqmail-program ")?;
    let name = &name[..name.iter().position(|&b| b == 0)?];
    String::from_utf8(name.to_vec()).ok()
}

/// The words of a command the shell would run as `execve(words[0], words)`:
/// an absolute path first, then words made of characters the shell takes
/// literally, of single-quoted strings and of double-quoted ones without
/// `$`, `` ` `` or `\` (`""` is the empty word too), separated by blanks.
/// `None` for anything else (variables, redirections, globs, `~`, comments,
/// `;` ...).
pub fn simple_words(command: &[u8]) -> Option<Vec<Vec<u8>>> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_./+,:@%=-".contains(&b);
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while i < command.len() {
        match command[i] {
            b' ' | b'\t' => i += 1,
            _ => {
                let mut w = Vec::new();
                while i < command.len() && !matches!(command[i], b' ' | b'\t') {
                    match command[i] {
                        q @ (b'\'' | b'"') => {
                            let end = command[i + 1..].iter().position(|&b| b == q)?;
                            let inner = &command[i + 1..i + 1 + end];
                            if q == b'"' && inner.iter().any(|b| b"$`\\".contains(b)) {
                                return None;
                            }
                            w.extend_from_slice(inner);
                            i += end + 2;
                        }
                        b if plain(b) => {
                            w.push(b);
                            i += 1;
                        }
                        _ => return None,
                    }
                }
                words.push(w);
            }
        }
    }
    // The program: an absolute path written without quotes or `=` (no
    // assignment, no function or builtin of the shell).
    let raw = command.trim_ascii_start();
    let raw = &raw[..raw
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(raw.len())];
    if !raw.starts_with(b"/") || raw.contains(&b'\'') || raw.contains(&b'"') || raw.contains(&b'=')
    {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit ELF file whose `.vqmail` section holds `marker`.
    fn elf(marker: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.vqmail\0";
        let (names_at, data_at) = (64 + 3 * 64, 64 + 3 * 64 + names.len());
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        let sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        f.extend(sh(0, 0, 0));
        f.extend(sh(1, names_at, names.len()));
        f.extend(sh(11, data_at, marker.len()));
        f.extend_from_slice(names);
        f.extend_from_slice(marker);
        f
    }

    #[test]
    fn own_programs_are_known_by_their_elf_section() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("prog");
        std::fs::write(&p, elf(b"vqmail-program vdelivermail\0")).unwrap();
        assert_eq!(own_program(&p).as_deref(), Some("vdelivermail"));
        std::fs::write(&p, elf(b"another-program vdelivermail\0")).unwrap();
        assert_eq!(own_program(&p), None);
        let mut cut = elf(b"vqmail-program vdelivermail\0");
        cut.truncate(cut.len() - 5);
        std::fs::write(&p, cut).unwrap();
        assert_eq!(own_program(&p), None);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        assert_eq!(own_program(&p), None);
        assert_eq!(own_program(Path::new("/bin/sh")), None);
        assert_eq!(own_program(Path::new("/dev/zero")), None);
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(own_program(&fifo), None);
        assert_eq!(own_program(&t.path().join("missing")), None);
    }

    #[test]
    fn simple_commands_are_split_as_the_shell_would() {
        let w = |s: &str| simple_words(s.as_bytes());
        let v = |a: &[&str]| Some(a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>());
        assert_eq!(
            w("/home/vpopmail/bin/vdelivermail '' bounce-no-mailbox"),
            v(&["/home/vpopmail/bin/vdelivermail", "", "bounce-no-mailbox"])
        );
        assert_eq!(
            w("  /bin/prog\ta'b c'd  user@example.com 100%  "),
            v(&["/bin/prog", "ab cd", "user@example.com", "100%"])
        );
        assert_eq!(w("/bin/prog x=1 -f"), v(&["/bin/prog", "x=1", "-f"]));
        assert_eq!(
            w("/h/vdelivermail \"\" bounce-no-mailbox"),
            v(&["/h/vdelivermail", "", "bounce-no-mailbox"])
        );
        assert_eq!(w("/bin/prog \"a b\"'c'd"), v(&["/bin/prog", "a bcd"]));
        for shell in [
            "prog arg",
            "./prog",
            "exit 99",
            "A=1 /bin/prog",
            "/bin/a=b",
            "'/bin/prog' x",
            "/bin/prog $HOME",
            "/bin/prog \"$x\"",
            "/bin/prog \"`id`\"",
            "/bin/prog \"a\\\"b\"",
            "/bin/prog \"unclosed",
            "\"/bin/prog\" x",
            "/bin/prog > out",
            "/bin/prog; /bin/other",
            "/bin/prog *",
            "/bin/prog ~/x",
            "/bin/prog # note",
            "/bin/prog 'unclosed",
            "/bin/prog a\\ b",
            "/bin/prog `id`",
            "/bin/prog && /bin/x",
            "/bin/prog\n/bin/x",
            "",
            "   ",
        ] {
            assert_eq!(w(shell), None, "{shell:?}");
        }
    }

    #[test]
    fn direct_programs_keep_the_shell_meaning() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let cmd = format!("/bin/cp /dev/null '{}'", out.display());
        assert!(simple_words(cmd.as_bytes()).is_some());
        assert_eq!(
            run(cmd.as_bytes(), t.path(), &[], stdin()).unwrap(),
            Outcome::Continue
        );
        assert!(out.exists());
        // A missing program: the shell's own answer (127, temporary).
        let e = run(b"/nonexistent/prog x", t.path(), &[], stdin()).unwrap_err();
        assert_eq!(e.code, 111);
        // A script without #!: the shell runs it, as before.
        let script = t.path().join("s");
        std::fs::write(&script, "exit 99\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cmd = script.display().to_string();
        assert_eq!(
            run(cmd.as_bytes(), t.path(), &[], stdin()).unwrap(),
            Outcome::Stop
        );
        // Exit codes map as through the shell.
        assert_eq!(
            run(b"/bin/false", t.path(), &[], stdin()).unwrap_err().code,
            111
        );
    }

    fn stdin() -> File {
        File::open("/dev/null").unwrap()
    }

    #[test]
    fn exit_codes() {
        let d = Path::new("/");
        assert_eq!(run(b"exit 0", d, &[], stdin()).unwrap(), Outcome::Continue);
        assert_eq!(run(b"exit 99", d, &[], stdin()).unwrap(), Outcome::Stop);
        for c in [100, 64, 65, 70, 76, 77, 78, 112] {
            assert_eq!(
                run(format!("exit {c}").as_bytes(), d, &[], stdin())
                    .unwrap_err()
                    .code,
                100
            );
        }
        for c in [1, 111, 75, 101] {
            assert_eq!(
                run(format!("exit {c}").as_bytes(), d, &[], stdin())
                    .unwrap_err()
                    .code,
                111
            );
        }
        let e = run(b"kill -9 $$", d, &[], stdin()).unwrap_err();
        assert_eq!(e.text, "Aack, child crashed. (#4.3.0)");
    }

    #[test]
    fn environment_and_dir() {
        let t = tempfile::tempdir().unwrap();
        let env = vec![(OsString::from("RECIPIENT"), OsString::from("a@b"))];
        run(
            b"echo \"$RECIPIENT\" > out; pwd >> out",
            t.path(),
            &env,
            stdin(),
        )
        .unwrap();
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        assert!(out.starts_with("a@b\n"));
    }
}
