//! qmail-send: preprocesses new messages, schedules deliveries on the local and
//! remote channels, records results, and sends bounces (qmail-send(8)).
//!
//! File descriptors, set up by qmail-start: 0 the log, 1/2 commands to and
//! reports from qmail-lspawn, 3/4 the same for qmail-rspawn, 5/6 requests to and
//! answers from qmail-clean.
//!
//! Order of the disk writes, so that a kill at any moment is repaired by the
//! next start:
//! * todo/N: remove stale info/local/remote; write info, local, remote; fsync
//!   them and their directories; only then ask qmail-clean to remove todo/N.
//! * a delivery result: the bounce paragraph is appended (and fsynced) before the
//!   address is marked `D`; a kill between the delivery and the mark repeats it.
//! * a finished message: the bounce is injected, bounce/N removed, info removed,
//!   and last qmail-clean removes mess/N (a kill before that leaves an orphan
//!   mess file, removed 36 hours later).

use std::collections::BTreeSet;
use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::bounce;
use super::enqueue::BadTodo;
use super::rewrite::{Dest, Rewrite};
use super::{logsafe, next_retry, Queue, MAX_CONCURRENCY, OSSIFIED};
use crate::control::Control;
use crate::paths::Roots;

/// Seconds between todo rescans without a trigger.
const SLEEP_TODO: i64 = 1500;
/// Seconds before retrying after a system failure.
const SLEEP_SYSFAIL: i64 = 123;
/// Seconds between scans for orphan mess files.
const SLEEP_CLEANUP: i64 = 76431;
/// Longest report kept from a spawner.
const REPORTMAX: usize = 10000;

const CHAN_NAME: [&str; 2] = ["local", "remote"];

/// qmail-send's control settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// locals, virtualdomains, percenthack, envnoathost.
    pub rewrite: Rewrite,
    /// queuelifetime in seconds.
    pub lifetime: i64,
    /// concurrencylocal, concurrencyremote.
    pub concurrency: [usize; 2],
    /// The local part of the bounce sender (From:).
    pub bouncefrom: Vec<u8>,
    /// The host of bounces.
    pub bouncehost: Vec<u8>,
    /// Where double bounces go: doublebounceto@doublebouncehost.
    pub doublebounceto: Vec<u8>,
}

impl Config {
    /// Reads the control files qmail-send uses.
    pub fn load(roots: &Roots) -> io::Result<Config> {
        let c = Control::new(roots);
        let me = |name: &str| -> io::Result<Vec<u8>> {
            Ok(c.line_or_me(name, Some("bogus.host"))?
                .unwrap_or_default()
                .into_bytes())
        };
        let mut dbt = c
            .line("doublebounceto")?
            .unwrap_or_else(|| "postmaster".into())
            .into_bytes();
        dbt.push(b'@');
        dbt.extend(me("doublebouncehost")?);
        Ok(Config {
            rewrite: Rewrite::load(roots)?,
            lifetime: c.u64("queuelifetime", super::DEFAULT_LIFETIME)? as i64,
            concurrency: [
                // 0 holds the channel, as in qmail: nothing is delivered.
                c.u64("concurrencylocal", 10)?.min(MAX_CONCURRENCY) as usize,
                c.u64("concurrencyremote", 20)?.min(MAX_CONCURRENCY) as usize,
            ],
            bouncefrom: c
                .line("bouncefrom")?
                .unwrap_or_else(|| "MAILER-DAEMON".into())
                .into_bytes(),
            bouncehost: me("bouncehost")?,
            doublebounceto: dbt,
        })
    }
}

/// The descriptors qmail-send talks through.
pub struct Fds {
    /// fd 0: log lines.
    pub log: File,
    /// fd 1, fd 3: commands to qmail-lspawn, qmail-rspawn.
    pub cmd: [File; 2],
    /// fd 2, fd 4: their reports.
    pub rep: [File; 2],
    /// fd 5: requests to qmail-clean.
    pub clean_cmd: File,
    /// fd 6: its answers.
    pub clean_rep: File,
}

/// Signal flags (set by handlers, consumed by the loop).
#[derive(Clone, Default)]
pub struct Signals {
    /// TERM: finish deliveries in progress, then exit.
    pub term: Arc<AtomicBool>,
    /// ALRM: retry everything now.
    pub alrm: Arc<AtomicBool>,
    /// HUP: reread locals and virtualdomains.
    pub hup: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> io::Result<Signals> {
        let s = Signals::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&s.term))?;
        signal_hook::flag::register(signal_hook::consts::SIGALRM, Arc::clone(&s.alrm))?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&s.hup))?;
        Ok(s)
    }
}

struct Job {
    id: u64,
    sender: Vec<u8>,
    retry: i64,
    dying: bool,
    todo: std::collections::VecDeque<(u64, Vec<u8>)>,
    inflight: usize,
    complete: bool,
}

struct Del {
    id: u64,
    delid: u64,
    pos: u64,
    recip: Vec<u8>,
}

/// The running qmail-send.
pub struct Send {
    roots: Roots,
    q: Queue,
    cfg: Config,
    fds: Fds,
    sig: Signals,
    once: bool,
    pending: [BTreeSet<(i64, u64)>; 2],
    done: BTreeSet<(i64, u64)>,
    jobs: [Vec<Job>; 2],
    slots: [Vec<Option<Del>>; 2],
    repbuf: [Vec<u8>; 2],
    alive: [bool; 2],
    masterdelid: u64,
    next_todo: i64,
    next_cleanup: i64,
    todo_now: bool,
    /// Damaged envelopes in todo/, and when to read each again: at the next
    /// full scan (or ALRM), so they neither hold up the messages behind
    /// them nor fill the log at every trigger.
    todo_later: std::collections::HashMap<u64, i64>,
    exitasap: bool,
    trigger: Option<File>,
    spares: Spares,
    /// A todo batch whose files are being fsynced on a helper thread.
    syncing: Option<Syncing>,
}

/// A todo batch in flight: the fsync thread and what to finish afterwards.
struct Syncing {
    thread: std::thread::JoinHandle<SyncResult>,
    done: std::os::fd::OwnedFd,
    batch: Vec<Prepared>,
    now: i64,
}

/// Files whose fsync failed; a directory whose fsync failed.
type SyncResult = (BTreeSet<std::path::PathBuf>, Option<std::path::PathBuf>);

impl Send {
    /// Sets qmail-send up: controls, the send mutex, the trigger. `once` makes
    /// it exit as soon as nothing is due now (tests, batch runs).
    pub fn new(roots: Roots, mut fds: Fds, sig: Signals, once: bool) -> Result<Send, i32> {
        let cfg = match Config::load(&roots) {
            Ok(c) => c,
            Err(_) => {
                let _ = fds
                    .log
                    .write_all(b"alert: cannot start: unable to read controls\n");
                return Err(111);
            }
        };
        let q = Queue::new(roots.queue());
        let q_dir_info = q.dir().join("info");
        let now = crate::timefmt::now();
        // Each spawner first says how many deliveries it takes at once (one
        // byte); the concurrency is capped by it, as in qmail.
        let mut cfg = cfg;
        for c in 0..2 {
            let mut b = [0u8; 1];
            if fds.rep[c].read_exact(&mut b).is_err() {
                let _ = fds
                    .log
                    .write_all(b"alert: cannot start: hath the daemon spawn no fire?\n");
                return Err(111);
            }
            cfg.concurrency[c] = cfg.concurrency[c].min(usize::from(b[0]));
        }
        let slots = [
            (0..cfg.concurrency[0]).map(|_| None).collect(),
            (0..cfg.concurrency[1]).map(|_| None).collect(),
        ];
        let trigger = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(q.lock("trigger"))
            .ok();
        Ok(Send {
            roots,
            q,
            cfg,
            fds,
            sig,
            once,
            pending: [BTreeSet::new(), BTreeSet::new()],
            done: BTreeSet::new(),
            jobs: [Vec::new(), Vec::new()],
            slots,
            repbuf: [Vec::new(), Vec::new()],
            alive: [true, true],
            masterdelid: 1,
            next_todo: now,
            todo_later: std::collections::HashMap::new(),
            next_cleanup: now,
            todo_now: true,
            exitasap: false,
            trigger,
            spares: Spares::open(&q_dir_info),
            syncing: None,
        })
    }

    fn log(&mut self, s: &str) {
        let _ = self.fds.log.write_all(s.as_bytes());
    }

    fn status(&mut self) {
        let used = |c: usize, s: &Self| s.slots[c].iter().filter(|d| d.is_some()).count();
        let line = format!(
            "status: local {}/{} remote {}/{}{}\n",
            used(0, self),
            self.cfg.concurrency[0],
            used(1, self),
            self.cfg.concurrency[1],
            if self.exitasap { " exitasap" } else { "" }
        );
        self.log(&line);
    }

    fn inflight(&self) -> usize {
        (0..2)
            .map(|c| self.slots[c].iter().filter(|d| d.is_some()).count())
            .sum()
    }

    /// Runs until TERM (or, in once mode, until nothing is due); the exit code.
    pub fn run(mut self) -> i32 {
        let mutex = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.q.lock("sendmutex"))
        {
            Ok(f) => f,
            Err(_) => {
                self.log("alert: cannot start: unable to open mutex\n");
                return 111;
            }
        };
        if !matches!(crate::sys::try_lock_exclusive(&mutex), Ok(true)) {
            self.log("alert: cannot start: qmail-send is already running\n");
            return 111;
        }
        self.status();
        self.pqstart();
        loop {
            let now = crate::timefmt::now();
            if self.sig.term.swap(false, Ordering::Relaxed) && !self.exitasap {
                self.exitasap = true;
                self.status();
            }
            if self.sig.alrm.swap(false, Ordering::Relaxed) {
                for c in 0..2 {
                    let ids: Vec<u64> = self.pending[c].iter().map(|&(_, id)| id).collect();
                    self.pending[c] = ids.into_iter().map(|id| (now, id)).collect();
                }
                self.next_todo = now;
                self.todo_later.clear();
            }
            if self.sig.hup.swap(false, Ordering::Relaxed) {
                // The old rules stay when one cannot be read, as in qmail.
                if let Err(file) = self.cfg.rewrite.reload(&self.roots) {
                    self.log(&format!("alert: unable to reread {file}\n"));
                }
            }
            if !self.exitasap {
                if self.syncing.is_none() && (self.todo_now || now >= self.next_todo) {
                    self.todo_now = false;
                    self.next_todo = now + SLEEP_TODO;
                    self.scan_todo(now);
                }
                if now >= self.next_cleanup {
                    self.next_cleanup = now + SLEEP_CLEANUP;
                    self.cleanup(now);
                }
                while let Some(&(t, id)) = self.done.first() {
                    if t > now {
                        break;
                    }
                    self.done.pop_first();
                    self.messdone(id, now);
                }
                for c in 0..2 {
                    self.fill(c, now);
                }
            }
            if self.exitasap {
                self.finish_todo(true);
            }
            let inflight = self.inflight();
            if self.exitasap && inflight == 0 {
                break;
            }
            if self.once && inflight == 0 && !self.exitasap && self.idle(now) {
                break;
            }
            let wait = self.wait_ms(now);
            self.poll(wait);
        }
        self.pqfinish();
        self.log("status: exiting\n");
        self.reap_helpers();
        0
    }

    /// Closes the command pipes, so the spawners and qmail-clean finish, and
    /// the log, so the logger qmail-start started (also our child) sees its
    /// end; collects them all, waiting at most 10 seconds.
    fn reap_helpers(self) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let Fds {
            cmd,
            clean_cmd,
            log,
            ..
        } = self.fds;
        drop(cmd);
        drop(clean_cmd);
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    if std::time::Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(_) => {}
                Err(_) => return, // no children left
            }
        }
    }

    /// Once mode: nothing new in todo/, nothing due now.
    fn idle(&self, now: i64) -> bool {
        let due = |s: &BTreeSet<(i64, u64)>| s.first().is_some_and(|&(t, _)| t <= now);
        (0..2).all(|c| {
            !self.alive[c]
                || self.slots[c].is_empty() // held (concurrency 0)
                || (!due(&self.pending[c]) && self.jobs[c].is_empty())
        }) && !due(&self.done)
            && !self.todo_now
            && self.syncing.is_none()
    }

    /// How long to wait for reports or the trigger: not at all when there is
    /// work that can start now, else at most a second (times are in seconds).
    fn wait_ms(&self, now: i64) -> u16 {
        let due = |s: &BTreeSet<(i64, u64)>| s.first().is_some_and(|&(t, _)| t <= now);
        let work = (0..2).any(|c| {
            self.alive[c]
                && self.slots[c].iter().any(|d| d.is_none())
                && (self.jobs[c].iter().any(|j| !j.todo.is_empty()) || due(&self.pending[c]))
        });
        let todo = self.todo_now && self.syncing.is_none();
        if work
            || due(&self.done)
            || todo
            || (self.once && self.inflight() == 0 && self.syncing.is_none())
        {
            0
        } else {
            1000
        }
    }

    fn poll(&mut self, ms: u16) {
        use nix::poll::{PollFd, PollFlags};
        let mut rep_ready = [false; 2];
        let mut trig = false;
        {
            let mut fds = Vec::new();
            fds.push(PollFd::new(self.fds.rep[0].as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.fds.rep[1].as_fd(), PollFlags::POLLIN));
            let trig_at = self.trigger.as_ref().map(|t| {
                fds.push(PollFd::new(t.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            // The todo batch's fsync thread says it is done on this pipe.
            if let Some(s) = &self.syncing {
                fds.push(PollFd::new(s.done.as_fd(), PollFlags::POLLIN));
            }
            if nix::poll::poll(&mut fds, ms).is_ok() {
                for (i, ready) in rep_ready.iter_mut().enumerate() {
                    *ready = self.alive[i] && fds[i].any().unwrap_or(false);
                }
                trig = trig_at.is_some_and(|i| fds[i].any().unwrap_or(false));
            }
        }
        self.finish_todo(false);
        if trig {
            let mut buf = [0u8; 256];
            if let Some(t) = &mut self.trigger {
                while matches!(t.read(&mut buf), Ok(n) if n > 0) {}
            }
            self.todo_now = true;
        }
        for (c, ready) in rep_ready.into_iter().enumerate() {
            if ready {
                self.read_reports(c);
            }
        }
    }

    // ------------------------------------------------------------ priority queues

    fn pqstart(&mut self) {
        let now = crate::timefmt::now();
        let todo: BTreeSet<u64> = self
            .q
            .list_flat("todo")
            .unwrap_or_default()
            .into_iter()
            .collect();
        // As qmail's: on failure, say so and try again every 10 seconds
        // (messages in info/ would otherwise wait for a restart). TERM ends
        // the wait, and then qmail-send; ALRM cuts it short.
        let mut alrm = false;
        let infos = loop {
            match self.q.list_split("info") {
                Ok(v) => break v,
                Err(_) => {
                    self.log("alert: unable to opendir info, sleeping...\n");
                    let until = std::time::Instant::now() + Duration::from_secs(10);
                    while std::time::Instant::now() < until {
                        if self.sig.term.load(Ordering::Relaxed) {
                            return;
                        }
                        if self.sig.alrm.swap(false, Ordering::Relaxed) {
                            alrm = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        };
        if alrm {
            self.sig.alrm.store(true, Ordering::Relaxed);
        }
        for id in infos {
            if todo.contains(&id) {
                continue; // todo/N is processed again from the start
            }
            self.schedule_from_files(id, now);
        }
    }

    /// Schedules message `id`, whose info file exists, from its channel
    /// files (their times are the next tries), or as done when it has none
    /// left.
    fn schedule_from_files(&mut self, id: u64, now: i64) {
        let mut any = false;
        for c in 0..2 {
            if let Ok(m) = std::fs::metadata(self.q.chan(c, id)) {
                self.pending[c].insert((m.mtime(), id));
                any = true;
            }
        }
        if !any {
            self.done.insert((now, id));
        }
    }

    fn pqfinish(&mut self) {
        for c in 0..2 {
            let items: Vec<(i64, u64)> = self.pending[c].iter().copied().collect();
            for (t, id) in items {
                if set_times(&self.q.chan(c, id), t).is_err() {
                    let w = format!(
                        "warning: unable to utime {}; message will be retried too soon\n",
                        self.q.chan(c, id).display()
                    );
                    self.log(&w);
                }
            }
        }
    }

    // ------------------------------------------------------------ todo

    /// Processes every message in todo/ in one batch: first all info and
    /// channel files are written, then all are fsynced (with their
    /// directories, each once), and only then are the todo files removed. On a
    /// journaling file system the first fsync commits the whole batch, so a
    /// burst of new messages costs little more than one.
    fn scan_todo(&mut self, now: i64) {
        let ids = match self.q.list_flat("todo") {
            Ok(v) => v
                .into_iter()
                .filter(|id| self.todo_later.get(id).is_none_or(|&t| now >= t))
                .collect::<Vec<u64>>(),
            Err(_) => {
                self.log("alert: unable to opendir todo, sleeping...\n");
                return;
            }
        };
        if self.exitasap || ids.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        for &id in ids.iter().take(100) {
            if let Some(t) = self.todo_prepare(id, now) {
                self.todo_later.remove(&id);
                batch.push(t);
            }
        }
        // The rest right after this batch, when it took anything in: a batch
        // of which nothing could be taken (a full disk) waits for the next
        // trigger or scan rather than being read again at once.
        if ids.len() > 100 && !batch.is_empty() {
            self.todo_now = true;
        }
        // fsync every file of the batch, then every directory once, on
        // parallel threads so the journal commits them together; meanwhile
        // deliveries go on. The batch is finished when the thread is done.
        let Ok((rd, wr)) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        else {
            self.log("alert: unable to make a pipe, sleeping...\n");
            return;
        };
        let jobs: Vec<Vec<std::path::PathBuf>> = batch.iter().map(|t| t.files.clone()).collect();
        let thread = std::thread::Builder::new().spawn(move || {
            let files: Vec<std::path::PathBuf> = jobs.iter().flatten().cloned().collect();
            let failed = sync_parallel(&files);
            let dirs: BTreeSet<std::path::PathBuf> = jobs
                .iter()
                .filter(|fs| !fs.iter().any(|f| failed.contains(f)))
                .flatten()
                .map(|f| crate::fsutil::parent_dir(f).to_path_buf())
                .collect();
            let dirs: Vec<std::path::PathBuf> = dirs.into_iter().collect();
            let dir_failed = sync_parallel(&dirs).into_iter().next();
            let _ = nix::unistd::write(&wr, b"x");
            (failed, dir_failed)
        });
        let Ok(thread) = thread else {
            // The files stay in todo/ and are written again next time.
            self.log("alert: unable to start a thread, sleeping...\n");
            return;
        };
        self.syncing = Some(Syncing {
            thread,
            done: rd,
            batch,
            now,
        });
    }

    /// Finishes the todo batch in flight once its fsyncs are done (or, with
    /// `wait`, after waiting for them): logs, asks qmail-clean to remove the
    /// todo files, and schedules the deliveries.
    fn finish_todo(&mut self, wait: bool) {
        if !self
            .syncing
            .as_ref()
            .is_some_and(|s| wait || s.thread.is_finished())
        {
            return;
        }
        let Some(Syncing {
            thread, batch, now, ..
        }) = self.syncing.take()
        else {
            return;
        };
        let (failed, dir_failed) = thread.join().unwrap_or_else(|_| {
            let all = batch.iter().flat_map(|t| t.files.iter().cloned()).collect();
            (all, None)
        });
        let mut synced = Vec::new();
        for t in batch {
            match t.files.iter().find(|f| failed.contains(*f)) {
                Some(p) => self.log(&format!("warning: trouble fsyncing {}\n", rel(p))),
                None => synced.push(t),
            }
        }
        if let Some(d) = dir_failed {
            self.log(&format!("warning: trouble fsyncing {}\n", d.display()));
            return;
        }
        for t in &synced {
            self.log(&t.info_line);
        }
        let reqs: Vec<String> = synced.iter().map(|t| format!("todo/{}", t.id)).collect();
        let cleaned = self.clean_all(&reqs);
        for (t, ok) in synced.into_iter().zip(cleaned) {
            if !ok {
                continue;
            }
            for (c, has) in t.chans.iter().enumerate() {
                if *has {
                    self.pending[c].insert((now, t.id));
                }
            }
            if !t.chans.iter().any(|&h| h) {
                self.done.insert((now, t.id));
            }
        }
    }

    /// Writes info and the channel files of todo/N (not yet synced).
    fn todo_prepare(&mut self, id: u64, now: i64) -> Option<Prepared> {
        let todo = self.q.todo(id);
        let data = match std::fs::read(&todo) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone since it was listed: a qmail-send killed after its
                // info and channel files were synced had asked qmail-clean to
                // remove it, and the qmail-clean it left behind just did.
                // Those files are complete: scheduled as at startup.
                if self.q.info(id).exists() {
                    self.schedule_from_files(id, now);
                }
                return None;
            }
            Err(_) => {
                self.log(&format!("warning: unable to open {}\n", rel(&todo)));
                return None;
            }
        };
        let size = match std::fs::metadata(self.q.mess(id)) {
            Ok(m) => m.len(),
            Err(_) => {
                self.log(&format!(
                    "warning: unable to stat {}\n",
                    rel(&self.q.mess(id))
                ));
                return None;
            }
        };
        for p in [self.q.chan(0, id), self.q.chan(1, id), self.q.info(id)] {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    self.log(&format!("warning: unable to unlink {}\n", rel(&p)));
                    return None;
                }
            }
        }
        let (uid, pid, sender, rcpts) = match super::enqueue::parse_todo(&data) {
            Ok(t) => t,
            Err(bad) => {
                // As qmail: a damaged envelope is left in todo/ for a later
                // scan, with a warning, and nothing of it is delivered. It
                // waits for the full scan (or ALRM), not for the next
                // trigger: it changes only by hand. (Other trouble, a full
                // disk, is tried again at every trigger.)
                self.todo_later.insert(id, now + SLEEP_TODO);
                self.log(&match bad {
                    BadTodo::UnknownRecord => {
                        format!("warning: unknown record type in {}\n", rel(&todo))
                    }
                    BadTodo::NoSender => format!(
                        "warning: no sender record in {}; will try again later\n",
                        rel(&todo)
                    ),
                });
                return None;
            }
        };
        self.log(&format!("new msg {id}\n"));
        let mut info = b"F".to_vec();
        info.extend_from_slice(&sender);
        info.push(0);
        let mut chans: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for r in &rcpts {
            let (c, a) = match self.cfg.rewrite.rewrite(r) {
                Dest::Local(a) => (0, a),
                Dest::Remote(a) => (1, a),
            };
            chans[c].push(b'T');
            chans[c].extend_from_slice(&a);
            chans[c].push(0);
        }
        let mut files = vec![self.q.info(id)];
        let mut jobs = vec![(self.q.info(id), info)];
        for (c, d) in chans.iter().enumerate() {
            if !d.is_empty() {
                files.push(self.q.chan(c, id));
                jobs.push((self.q.chan(c, id), d.clone()));
            }
        }
        for (p, d) in &jobs {
            if self.spares.write_new(p, d, now).is_err() {
                self.log(&format!("warning: trouble writing to {}\n", rel(p)));
                return None;
            }
        }
        Some(Prepared {
            id,
            files,
            chans: [!chans[0].is_empty(), !chans[1].is_empty()],
            info_line: format!(
                "info msg {id}: bytes {size} from <{}> qp {pid} uid {uid}\n",
                logsafe(&sender)
            ),
        })
    }

    /// Sends qmail-clean several requests at once, then reads their answers
    /// (it answers each in order); whether each was done.
    fn clean_all(&mut self, reqs: &[String]) -> Vec<bool> {
        let mut msg = Vec::new();
        for r in reqs {
            msg.extend_from_slice(r.as_bytes());
            msg.push(0);
        }
        let mut answers = vec![0u8; reqs.len()];
        let ok = msg.is_empty()
            || (self.fds.clean_cmd.write_all(&msg).is_ok()
                && self.fds.clean_rep.read_exact(&mut answers).is_ok());
        if !ok {
            self.log("alert: oh no! lost qmail-clean connection! dying...\n");
            self.exitasap = true;
            return vec![false; reqs.len()];
        }
        reqs.iter()
            .zip(answers)
            .map(|(r, a)| {
                if a != b'+' {
                    self.log(&format!("warning: qmail-clean unable to clean up {r}\n"));
                }
                a == b'+'
            })
            .collect()
    }

    fn clean(&mut self, req: &str) -> bool {
        self.clean_all(&[req.to_string()])[0]
    }

    fn cleanup(&mut self, now: i64) {
        let Ok(ids) = self.q.list_split("mess") else {
            return;
        };
        for id in ids {
            let Ok(m) = std::fs::metadata(self.q.mess(id)) else {
                continue;
            };
            if now <= m.atime() + OSSIFIED {
                continue;
            }
            if self.q.info(id).exists() || self.q.todo(id).exists() {
                continue;
            }
            self.clean(&format!("foop/{id}"));
        }
    }

    // ------------------------------------------------------------ jobs and deliveries

    fn fill(&mut self, c: usize, now: i64) {
        while self.alive[c] && !self.exitasap {
            let Some(slot) = self.slots[c].iter().position(|d| d.is_none()) else {
                return;
            };
            if let Some(j) = self.jobs[c].iter().position(|j| !j.todo.is_empty()) {
                self.start_delivery(c, j, slot);
                continue;
            }
            let Some(&(t, id)) = self.pending[c].first() else {
                return;
            };
            if t > now {
                return;
            }
            self.pending[c].pop_first();
            self.open_job(c, id, now);
        }
    }

    fn open_job(&mut self, c: usize, id: u64, now: i64) {
        let path = self.q.chan(c, id);
        let (data, sender, birth) = match (std::fs::read(&path), self.getinfo(id)) {
            (Ok(d), Some((s, b))) => (d, s, b),
            (Err(e), _) if e.kind() == io::ErrorKind::NotFound => {
                // Gone already (finished by an earlier run): see whether the
                // message is done.
                self.done.insert((now, id));
                return;
            }
            _ => {
                self.log(&format!(
                    "warning: trouble opening {}; will try again later\n",
                    rel(&path)
                ));
                self.pending[c].insert((now + SLEEP_SYSFAIL, id));
                return;
            }
        };
        let mut job = Job {
            id,
            sender,
            retry: next_retry(birth, now, c),
            dying: now > birth + self.cfg.lifetime,
            todo: Default::default(),
            inflight: 0,
            complete: true,
        };
        let mut pos = 0u64;
        for rec in data.split_inclusive(|&b| b == 0) {
            if rec.last() != Some(&0) {
                break; // a partial record at the end: impossible after fsync
            }
            match rec[0] {
                b'T' => job.todo.push_back((pos, rec[1..rec.len() - 1].to_vec())),
                b'D' => {}
                _ => {
                    self.log(&format!(
                        "warning: unknown record type in {}!\n",
                        rel(&path)
                    ));
                    job.complete = false;
                    break;
                }
            }
            pos += rec.len() as u64;
        }
        self.jobs[c].push(job);
        let j = self.jobs[c].len() - 1;
        self.maybe_close(c, j, now);
    }

    fn getinfo(&self, id: u64) -> Option<(Vec<u8>, i64)> {
        let p = self.q.info(id);
        let mut f = File::open(&p).ok()?;
        let birth = f.metadata().ok()?.mtime();
        let mut d = Vec::new();
        f.read_to_end(&mut d).ok()?;
        let rec = d.split(|&b| b == 0).next().unwrap_or(&[]);
        let sender = rec.strip_prefix(b"F").unwrap_or(&[]).to_vec();
        Some((sender, birth))
    }

    fn start_delivery(&mut self, c: usize, j: usize, slot: usize) {
        let job = &mut self.jobs[c][j];
        let Some((pos, recip)) = job.todo.pop_front() else {
            return;
        };
        job.inflight += 1;
        let id = job.id;
        let sender = bounce::verp_sender(&job.sender, &recip);
        let delid = self.masterdelid;
        self.masterdelid += 1;
        // One byte of slot number, as qmail's spawners read it (the
        // concurrency is at most 120).
        let mut cmd = vec![slot as u8];
        cmd.extend_from_slice(format!("{}/{}", id % super::SPLIT, id).as_bytes());
        cmd.push(0);
        cmd.extend_from_slice(&sender);
        cmd.push(0);
        cmd.extend_from_slice(&recip);
        cmd.push(0);
        let line = format!(
            "starting delivery {delid}: msg {id} to {} {}\n",
            CHAN_NAME[c],
            logsafe(&recip)
        );
        self.slots[c][slot] = Some(Del {
            id,
            delid,
            pos,
            recip,
        });
        // Logged before the spawner has it, as qmail does: a delivery made
        // by a spawner whose qmail-send is killed at once is in the log.
        self.log(&line);
        if self.fds.cmd[c].write_all(&cmd).is_err() {
            self.spawn_died(c);
            return;
        }
        self.status();
    }

    fn spawn_died(&mut self, c: usize) {
        if self.alive[c] {
            self.log("alert: oh no! lost spawn connection! dying...\n");
        }
        self.alive[c] = false;
        self.exitasap = true;
        // Nothing will report on this channel any more: forget its deliveries;
        // their addresses stay T and are tried again at the next start.
        for s in self.slots[c].iter_mut() {
            *s = None;
        }
        self.jobs[c].clear();
    }

    fn read_reports(&mut self, c: usize) {
        let mut buf = [0u8; 4096];
        let n = match self.fds.rep[c].read(&mut buf) {
            Ok(0) => {
                self.spawn_died(c);
                return;
            }
            Ok(n) => n,
            Err(_) => return,
        };
        for &b in &buf[..n] {
            if self.repbuf[c].len() < REPORTMAX {
                self.repbuf[c].push(b);
            }
            if b == 0 && self.repbuf[c].len() > 1 {
                let mut rep = std::mem::take(&mut self.repbuf[c]);
                rep.pop();
                self.report(c, rep);
            }
        }
    }

    fn report(&mut self, c: usize, rep: Vec<u8>) {
        let now = crate::timefmt::now();
        let slot = usize::from(rep[0]);
        let Some(del) = self.slots[c].get_mut(slot).and_then(Option::take) else {
            self.log("warning: internal error: delivery report out of range\n");
            return;
        };
        let Some(j) = self.jobs[c].iter().position(|j| j.id == del.id) else {
            return;
        };
        let mut letter = rep.get(1).copied().unwrap_or(b'?');
        let mut text = rep.get(2..).unwrap_or(&[]).to_vec();
        // A missing qmail-remote is the host's fault, not the message's:
        // its remote mail waits however long that lasts, never bounced.
        let no_remote = c == 1 && text.starts_with(crate::queue::spawn::NO_REMOTE);
        if letter == b'Z' && self.jobs[c][j].dying && !no_remote {
            letter = b'D';
            text.extend_from_slice(
                b"I'm not going to try again; this message has been in the queue too long.\n",
            );
        }
        let d = del.delid;
        match letter {
            b'K' => {
                self.log(&format!("delivery {d}: success: {}\n", logsafe(&text)));
                self.markdone(c, del.id, del.pos);
            }
            b'Z' => {
                self.log(&format!("delivery {d}: deferral: {}\n", logsafe(&text)));
                self.jobs[c][j].complete = false;
            }
            b'D' => {
                self.log(&format!("delivery {d}: failure: {}\n", logsafe(&text)));
                if self.addbounce(del.id, &del.recip, &text) {
                    self.markdone(c, del.id, del.pos);
                } else {
                    // Stopped before its paragraph was on disk: the
                    // recipient stays undone and fails again after a
                    // restart, so the bounce never lacks it.
                    self.jobs[c][j].complete = false;
                }
            }
            _ => {
                self.log(&format!("delivery {d}: report mangled, will defer\n"));
                self.jobs[c][j].complete = false;
            }
        }
        self.jobs[c][j].inflight -= 1;
        self.status();
        self.maybe_close(c, j, now);
    }

    /// Closes job `j` once all its deliveries have reported: removes the channel
    /// file, or schedules the next retry.
    fn maybe_close(&mut self, c: usize, j: usize, now: i64) {
        let job = &self.jobs[c][j];
        if !job.todo.is_empty() || job.inflight > 0 {
            return;
        }
        let job = self.jobs[c].remove(j);
        let path = self.q.chan(c, job.id);
        if job.complete {
            if let Err(e) = self.spares.retire(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    self.log(&format!(
                        "warning: unable to unlink {}; will try again later\n",
                        rel(&path)
                    ));
                    self.pending[c].insert((now + SLEEP_SYSFAIL, job.id));
                    return;
                }
            }
            if !self.q.chan(1 - c, job.id).exists() {
                self.messdone(job.id, now);
            }
        } else {
            let _ = set_times(&path, job.retry);
            self.pending[c].insert((job.retry, job.id));
        }
    }

    fn markdone(&mut self, c: usize, id: u64, pos: u64) {
        let p = self.q.chan(c, id);
        let r = OpenOptions::new().write(true).open(&p).and_then(|mut f| {
            f.seek(SeekFrom::Start(pos))?;
            f.write_all(b"D")
        });
        if r.is_err() {
            self.log(&format!(
                "warning: trouble marking {}; message will be delivered twice!\n",
                rel(&p)
            ));
        }
    }

    /// Appends the failed recipient's paragraph to `bounce/N`, synced; tries
    /// again every 10 seconds while it cannot (a full disk), as qmail does.
    /// A paragraph written only in part is cut off again before the next
    /// try. False when qmail-send is told to stop before it succeeds.
    fn addbounce(&mut self, id: u64, recip: &[u8], text: &[u8]) -> bool {
        let para = bounce::paragraph(self.cfg.rewrite.strip_vdom_prepend(recip), text);
        let p = self.q.bounce(id);
        loop {
            let r = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&p)
                .and_then(|mut f| {
                    let len = f.metadata()?.len();
                    let w = f.write_all(&para).and_then(|()| f.sync_data());
                    if w.is_err() {
                        let _ = f.set_len(len);
                        // One this try made: gone again, so that a message
                        // whose failures all turn out otherwise sends no
                        // empty bounce.
                        if len == 0 {
                            let _ = std::fs::remove_file(&p);
                        }
                    }
                    w
                });
            if r.is_ok() {
                return true;
            }
            self.log("alert: unable to append to bounce message; HELP! sleeping...\n");
            std::thread::sleep(Duration::from_secs(10));
            if self.sig.term.load(Ordering::Relaxed) {
                return false;
            }
        }
    }

    // ------------------------------------------------------------ finished messages

    fn messdone(&mut self, id: u64, now: i64) {
        for c in 0..2 {
            if self.q.chan(c, id).exists() {
                return;
            }
        }
        if self.q.todo(id).exists() || !self.q.info(id).exists() {
            return;
        }
        if !self.inject_bounce(id, now) {
            self.done.insert((now + SLEEP_SYSFAIL, id));
            return;
        }
        self.log(&format!("end msg {id}\n"));
        if self.spares.retire(&self.q.info(id)).is_err() {
            self.log(&format!(
                "warning: unable to unlink {}; will try again later\n",
                rel(&self.q.info(id))
            ));
            self.done.insert((now + SLEEP_SYSFAIL, id));
            return;
        }
        self.clean(&format!("foop/{id}"));
    }

    fn inject_bounce(&mut self, id: u64, now: i64) -> bool {
        let Some((mut sender, _)) = self.getinfo(id) else {
            return false;
        };
        if sender.ends_with(b"-@[]") {
            sender.truncate(sender.len() - 4);
        }
        let bp = self.q.bounce(id);
        let paragraphs = match std::fs::read(&bp) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => {
                self.log(&format!("warning: unable to stat {}\n", rel(&bp)));
                return false;
            }
        };
        if paragraphs.is_empty() {
            // No failure was recorded in it (one whose paragraph could not
            // be written stayed undone): nothing to tell the sender.
            if std::fs::remove_file(&bp).is_err() {
                self.log(&format!("warning: unable to unlink {}\n", rel(&bp)));
                return false;
            }
            return true;
        }
        if sender == b"#@[]" {
            self.log(&format!("triple bounce: discarding {}\n", rel(&bp)));
        } else {
            let (bsender, brecip): (&[u8], Vec<u8>) = if sender.is_empty() {
                (b"#@[]", self.cfg.doublebounceto.clone())
            } else {
                (b"", sender.clone())
            };
            let head = bounce::notice(
                now,
                &self.cfg.bouncefrom,
                &self.cfg.bouncehost,
                &brecip,
                &sender,
                &paragraphs,
            );
            match self.qmail_queue(&head, id, bsender, &brecip) {
                Ok(qp) => {
                    self.log(&format!("bounce msg {id} qp {qp}\n"));
                    self.todo_now = true;
                }
                Err(_) => {
                    self.log("warning: trouble injecting bounce message, will try later\n");
                    return false;
                }
            }
        }
        if std::fs::remove_file(&bp).is_err() {
            self.log(&format!("warning: unable to unlink {}\n", rel(&bp)));
            return false;
        }
        true
    }

    /// Runs qmail-queue (or `$QMAILQUEUE`) with `head` + mess/N; its pid.
    fn qmail_queue(&self, head: &[u8], id: u64, sender: &[u8], recip: &[u8]) -> io::Result<u32> {
        let prog = std::env::var_os("QMAILQUEUE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| self.roots.qmail_bin("qmail-queue"));
        let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let mut cmd = Command::new(prog);
        crate::fsutil::start_in(&mut cmd, &self.roots.qmail);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::from(er))
            .stderr(Stdio::null())
            .spawn()?;
        let qp = child.id();
        let env = super::enqueue::envelope(sender, &[recip]);
        let mut ew = File::from(ew);
        // The message first, the envelope after its last byte, as qmail's
        // qmail_put/qmail_from do: if qmail-send dies part way, qmail-queue
        // sees an incomplete envelope and queues nothing (with the envelope
        // first it would queue the part of the bounce it had).
        let r = (|| -> io::Result<()> {
            let mut stdin = child.stdin.take().ok_or(io::ErrorKind::BrokenPipe)?;
            stdin.write_all(head)?;
            let mut m = File::open(self.q.mess(id))?;
            io::copy(&mut m, &mut stdin)?;
            drop(stdin);
            ew.write_all(&env)?;
            drop(ew);
            Ok(())
        })();
        let st = child.wait()?;
        r?;
        if st.success() {
            Ok(qp)
        } else {
            Err(io::Error::other("qmail-queue failed"))
        }
    }
}

/// A todo entry whose files are written but not yet synced.
struct Prepared {
    id: u64,
    files: Vec<std::path::PathBuf>,
    chans: [bool; 2],
    info_line: String,
}

/// Spare files for qmail-send's own queue files (info, local, remote), kept in
/// `info/spare/`: a finished file is renamed there instead of being removed,
/// and a new one is a spare renamed into place, then emptied and written. Only
/// qmail-send uses this directory, so a spare is not emptied when it is kept
/// (these files are small); what a spare held is never read, and a file
/// renamed into place is trusted only once the todo file that made it has been
/// synced and removed (todo/N is processed again after a crash). Renames cost the file
/// system less than creating and freeing inodes; qmail (and qmail-qstat) never
/// look into `info/spare/`. At most [`Spares::MAX`] are kept.
struct Spares {
    dir: Option<std::path::PathBuf>,
    names: Vec<std::path::PathBuf>,
    next: u64,
}

impl Spares {
    const MAX: usize = super::spare::MAX;

    fn open(info: &std::path::Path) -> Spares {
        let dir = info.join("spare");
        let ok = super::spare::prepare_dir(&dir);
        let mut names = Vec::new();
        let mut next = 0;
        if ok {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if let Some(n) = super::parse_id(&e.file_name().to_string_lossy()) {
                        next = next.max(n + 1);
                        names.push(e.path());
                    }
                }
            }
        }
        Spares {
            dir: ok.then_some(dir),
            names,
            next,
        }
    }

    /// Creates `p` (which must not exist) holding `data`, times set to `birth`.
    fn write_new(&mut self, p: &std::path::Path, data: &[u8], birth: i64) -> io::Result<()> {
        while let Some(spare) = self.names.pop() {
            match super::spare::claim(&spare, p) {
                Ok(mut f) => {
                    f.write_all(data)?;
                    return set_birth(&f, birth);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.names.push(spare);
                    return Err(e);
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&spare);
                }
            }
        }
        write_new(p, data, birth)
    }

    /// Removes `p`: empties it and keeps it as a spare, or unlinks it.
    fn retire(&mut self, p: &std::path::Path) -> io::Result<()> {
        if let Some(dir) = self.dir.as_ref().filter(|_| self.names.len() < Self::MAX) {
            let spare = dir.join(self.next.to_string());
            match std::fs::rename(p, &spare) {
                Ok(()) => {
                    self.next += 1;
                    self.names.push(spare);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
                Err(_) => {}
            }
        }
        std::fs::remove_file(p)
    }
}

/// Creates a queue file exclusively (mode 0600) with its times set to `birth`.
fn write_new(p: &std::path::Path, data: &[u8], birth: i64) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(data)?;
    set_birth(&f, birth)
}

/// Sets a queue file's times to `birth` (qmail reads a message's age from them).
fn set_birth(f: &File, birth: i64) -> io::Result<()> {
    let st = UNIX_EPOCH + Duration::from_secs(birth.max(0) as u64);
    f.set_times(FileTimes::new().set_accessed(st).set_modified(st))
}

/// A path to fsync and where to say whether that worked.
type SyncJob = (
    std::path::PathBuf,
    std::sync::mpsc::Sender<(std::path::PathBuf, bool)>,
);

fn sync_one((p, reply): SyncJob) {
    let ok = File::open(&p).and_then(|f| f.sync_all()).is_ok();
    let _ = reply.send((p, ok));
}

/// fsyncs files (or directories) on up to 16 threads at once, reused from
/// one call to the next ([`crate::pool`]); the ones that failed.
fn sync_parallel(paths: &[std::path::PathBuf]) -> BTreeSet<std::path::PathBuf> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<crate::pool::Pool<SyncJob>>> =
        std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| std::sync::Mutex::new(crate::pool::Pool::new(16, sync_one)));
    let (reply, replies) = std::sync::mpsc::channel();
    let mut pool = pool.lock().ok();
    for p in paths {
        let job = (p.clone(), reply.clone());
        let back = match pool.as_mut() {
            Some(pool) => pool.submit(job).err(),
            None => Some(job),
        };
        // Without a thread to spare, here.
        if let Some(job) = back {
            sync_one(job);
        }
    }
    drop((pool, reply));
    // Every job drops its sender when it has answered.
    let answered: Vec<(std::path::PathBuf, bool)> = replies.iter().collect();
    let ok: BTreeSet<&std::path::PathBuf> = answered
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(p, _)| p)
        .collect();
    paths.iter().filter(|p| !ok.contains(p)).cloned().collect()
}

fn set_times(p: &std::path::Path, t: i64) -> io::Result<()> {
    set_birth(&File::open(p)?, t)
}

/// A queue path as qmail logs it: relative to the queue directory.
fn rel(p: &std::path::Path) -> String {
    let comps: Vec<_> = p.components().rev().take(3).collect();
    let mut parts: Vec<String> = comps
        .iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    // flat names (todo/N, bounce/N) have two components worth showing
    if parts.len() == 3 && parts[1].parse::<u64>().is_err() {
        parts.remove(0);
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_files_are_reused_in_place_of_new_inodes() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let info = d.path().join("info");
        std::fs::create_dir_all(info.join("1")).unwrap();
        let mut sp = Spares::open(&info);
        let a = info.join("1").join("1");
        sp.write_new(&a, b"Fa@b\0", 1000).unwrap();
        let ino = std::fs::metadata(&a).unwrap().ino();
        assert_eq!(std::fs::metadata(&a).unwrap().mtime(), 1000);
        // Retired: kept under info/spare/ as it is.
        sp.retire(&a).unwrap();
        assert!(!a.exists());
        let spares: Vec<_> = std::fs::read_dir(info.join("spare"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(spares.len(), 1);
        assert_eq!(spares[0].metadata().unwrap().ino(), ino);
        // A new file takes the spare: same inode, emptied, new contents and times.
        let b = info.join("1").join("2");
        sp.write_new(&b, b"Fc\0", 2000).unwrap();
        let m = std::fs::metadata(&b).unwrap();
        assert_eq!((m.ino(), m.len(), m.mtime()), (ino, 3, 2000));
        assert_eq!(std::fs::read(&b).unwrap(), b"Fc\0");
        // Never over an existing file.
        sp.retire(&b).unwrap();
        std::fs::write(&a, "x").unwrap();
        assert!(sp.write_new(&a, b"y", 0).is_err());
        assert_eq!(std::fs::read(&a).unwrap(), b"x");
        // A missing file is NotFound, as unlink says; a new qmail-send finds
        // the spares left behind.
        assert_eq!(
            sp.retire(&info.join("1").join("9")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let mut again = Spares::open(&info);
        assert_eq!(again.names.len(), 1);
        again.write_new(&info.join("1").join("3"), b"z", 0).unwrap();
        assert_eq!(std::fs::read_dir(info.join("spare")).unwrap().count(), 0);
    }

    #[test]
    fn sync_parallel_reports_what_failed() {
        let d = tempfile::tempdir().unwrap();
        let mut paths: Vec<std::path::PathBuf> = (0..40)
            .map(|i| {
                let p = d.path().join(i.to_string());
                std::fs::write(&p, "x").unwrap();
                p
            })
            .collect();
        paths.push(d.path().to_path_buf());
        paths.push(d.path().join("missing"));
        for _ in 0..3 {
            let failed = sync_parallel(&paths);
            assert_eq!(
                failed.into_iter().collect::<Vec<_>>(),
                vec![d.path().join("missing")]
            );
        }
        assert!(sync_parallel(&[]).is_empty());
    }

    #[test]
    fn relative_names() {
        assert_eq!(rel(std::path::Path::new("/q/queue/mess/3/26")), "mess/3/26");
        assert_eq!(rel(std::path::Path::new("/q/queue/bounce/26")), "bounce/26");
    }
}
