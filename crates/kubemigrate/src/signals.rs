//! SIGTERM and SIGINT, caught: what `sql` commands stop on, what `exec` passes on
//! to its command, and what stops a fan-out from starting more databases.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::exit::Exit;

/// A caught signal.
#[derive(Debug, Clone, Copy)]
pub struct Caught {
    /// The exit code it ends a run with: 143 (SIGTERM) or 130 (SIGINT).
    pub exit: Exit,
    /// `SIGTERM` or `SIGINT`.
    pub name: &'static str,
    /// Its number, to pass it on.
    pub number: libc::c_int,
}

/// Listeners for SIGTERM and SIGINT. While one exists, the signals no longer
/// end the process by themselves.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Listens.
    ///
    /// # Errors
    /// A handler cannot be installed (then the signals keep their default effect):
    /// `installing the SIGINT handler: …`.
    pub fn new() -> Result<Signals, String> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("installing the {name} handler: {e}"))
        };
        Ok(Signals {
            int: install(SignalKind::interrupt(), "SIGINT")?,
            term: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Caught {
        tokio::select! {
            _ = self.term.recv() => Caught { exit: Exit::Terminated, name: "SIGTERM", number: libc::SIGTERM },
            _ = self.int.recv() => Caught { exit: Exit::Interrupted, name: "SIGINT", number: libc::SIGINT },
        }
    }

    /// The next signal of `signals`; never, without listeners.
    pub async fn recv_some(signals: &mut Option<Signals>) -> Caught {
        match signals {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
}
