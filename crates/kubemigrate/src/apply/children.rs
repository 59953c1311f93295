//! The processes of a local run: the process groups of its containers, the signals
//! sent to them, and a watchdog that ends them when kubemigrate dies without doing
//! so itself.
//!
//! Each container runs in a process group of its own (`process_group(0)`), so that a
//! timed-out target can be stopped with everything it started (npm's node, psql…),
//! and so that the terminal's Ctrl-C does not reach them directly. That makes
//! kubemigrate responsible for them:
//!
//! - **SIGINT and SIGTERM** are forwarded by `apply --local` to every group it
//!   started ([`Children::signal_all`]), then it waits a bounded time and sends
//!   SIGKILL to what is left.
//! - **SIGKILL of kubemigrate** (or any death that runs no code of ours) is covered
//!   by a watchdog: a second kubemigrate process (`kubemigrate watch-children`,
//!   hidden), in a group of its own, that reads the groups to watch from a pipe. When
//!   the pipe reaches its end, kubemigrate is gone (the kernel closes its end of the
//!   pipe however it died): the watchdog sends SIGTERM to every group still
//!   registered, and SIGKILL after [`WATCHDOG_GRACE`].
//!
//! Why a watchdog rather than `prctl(PR_SET_PDEATHSIG)` in each child: the
//! parent-death signal reaches only the direct child, not the group (the
//! `exec --lock` child's command, npm's node, the psql loop's psql would be left
//! running); it is tied to the thread that forked, not the process; and setting it
//! needs `unsafe` code between fork and exec. The watchdog ends whole groups, and
//! needs no code in the child. Its one gap: a group registered in the instant between
//! the child's start and the write of its number to the pipe; a kill in that instant
//! leaves that child unwatched.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the watchdog.
pub const WATCHDOG_COMMAND: &str = "watch-children";

/// How long the watchdog waits after SIGTERM before it sends SIGKILL.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// Sends `sig` to every process of group `pgid`. Returns false when no process of
/// the group is left (or the signal cannot be sent).
pub fn signal_group(pgid: u32, sig: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        // kill(0) and kill(-1) would reach this process's group or every process.
        return false;
    }
    kill(-pgid, sig)
}

/// kill(2). std has no way to signal a process group; the libc call is the one
/// unsafe line, here alone.
#[expect(
    unsafe_code,
    reason = "kill(2) has no safe wrapper in std; it reads no memory of ours"
)]
fn kill(pid: libc::pid_t, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    // `pid` is the negated id of a process group that this process started (see
    // `signal_group`), never 0 or -1.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// The signal's name, for messages.
pub fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// The process groups of a local run's running containers, by target.
#[derive(Debug, Default)]
pub struct Children {
    groups: Mutex<BTreeMap<u32, String>>,
    watchdog: Mutex<Option<ChildStdin>>,
    /// The signal that interrupted the run, once one did.
    interrupted: Mutex<Option<libc::c_int>>,
}

impl Children {
    /// A registry whose groups a watchdog ends if this process dies: `binary` is
    /// this executable. Without a watchdog (it cannot start), the registry still
    /// forwards signals; the reason is returned so the caller can warn.
    pub fn with_watchdog(binary: &Path) -> (Children, Option<String>) {
        let children = Children::default();
        let spawned = std::process::Command::new(binary)
            .arg(WATCHDOG_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Not in our group: a Ctrl-C, or a kill of our group, must not end it.
            .process_group(0)
            .spawn();
        match spawned {
            Ok(mut child) => {
                if let Ok(mut w) = children.watchdog.lock() {
                    *w = child.stdin.take();
                }
                // The watchdog outlives us by design; it is reaped by init, or by
                // us when we exit normally (it ends when its pipe closes).
                drop(child);
                (children, None)
            }
            Err(e) => (
                children,
                Some(format!(
                    "cannot start the watchdog that stops this run's processes if kubemigrate is killed: {e}"
                )),
            ),
        }
    }

    fn tell_watchdog(&self, line: &str) {
        if let Ok(mut w) = self.watchdog.lock()
            && let Some(pipe) = w.as_mut()
            && writeln!(pipe, "{line}")
                .and_then(|()| pipe.flush())
                .is_err()
        {
            // The watchdog is gone; signals are still forwarded.
            *w = None;
        }
    }

    /// A container's process group started.
    pub fn register(&self, pgid: u32, target: &str) {
        if let Ok(mut g) = self.groups.lock() {
            g.insert(pgid, target.to_string());
        }
        self.tell_watchdog(&format!("+{pgid}"));
    }

    /// A container's process group ended (its leader was reaped).
    pub fn unregister(&self, pgid: u32) {
        if let Ok(mut g) = self.groups.lock() {
            g.remove(&pgid);
        }
        self.tell_watchdog(&format!("-{pgid}"));
    }

    /// Marks the run as interrupted by `sig` (no new target starts) and sends `sig`
    /// to every running group. Returns the targets that were running, sorted.
    pub fn interrupt(&self, sig: libc::c_int) -> Vec<String> {
        if let Ok(mut i) = self.interrupted.lock()
            && i.is_none()
        {
            *i = Some(sig);
        }
        self.signal_all(sig)
    }

    /// Sends `sig` to every running group; returns their targets, sorted.
    pub fn signal_all(&self, sig: libc::c_int) -> Vec<String> {
        let groups: Vec<(u32, String)> = self
            .groups
            .lock()
            .map(|g| g.iter().map(|(p, t)| (*p, t.clone())).collect())
            .unwrap_or_default();
        let mut targets: Vec<String> = groups
            .into_iter()
            .filter(|(pgid, _)| signal_group(*pgid, sig))
            .map(|(_, t)| t)
            .collect();
        targets.sort();
        targets.dedup();
        targets
    }

    /// The signal that interrupted the run, if one did.
    pub fn interrupted(&self) -> Option<libc::c_int> {
        self.interrupted.lock().ok().and_then(|i| *i)
    }
}

/// The watchdog (`kubemigrate watch-children`): reads `+PGID` and `-PGID` lines
/// from stdin; at its end, ends every group still registered (SIGTERM, then SIGKILL
/// after [`WATCHDOG_GRACE`]). Returns when that is done.
pub fn watch_children() {
    let mut groups: Vec<u32> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at(line.len().min(1));
        let Ok(pgid) = number.trim().parse::<u32>() else {
            continue;
        };
        match sign {
            "+" => groups.push(pgid),
            "-" => groups.retain(|g| *g != pgid),
            _ => {}
        }
    }
    // kubemigrate ended: whatever it did not stop, stop now.
    groups.retain(|g| signal_group(*g, libc::SIGTERM));
    let deadline = Instant::now() + WATCHDOG_GRACE;
    while !groups.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        groups.retain(|g| signal_group(*g, 0));
    }
    for g in groups {
        signal_group(g, libc::SIGKILL);
    }
}
