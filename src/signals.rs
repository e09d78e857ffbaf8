//! The signals that ask a run to stop: Ctrl-C anywhere; SIGTERM and SIGHUP, which schedulers and
//! closed terminals send, on Unix; Ctrl-Break and a closed console on Windows. Each is registered
//! when made, so one that comes before the first wait is kept, not fatal.

use std::fmt;

/// Which signal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
    HangUp,
    #[cfg_attr(unix, allow(dead_code))]
    Break,
    #[cfg_attr(unix, allow(dead_code))]
    Close,
}

impl Stop {
    /// What a person does to send a second one.
    pub fn again(self) -> &'static str {
        match self {
            Stop::Interrupt => "Ctrl-C",
            Stop::Break => "Ctrl-Break",
            Stop::Terminate | Stop::HangUp | Stop::Close => "a second signal",
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Interrupt => "interrupted",
            Stop::Terminate => "terminated (SIGTERM)",
            Stop::HangUp => "hung up (SIGHUP)",
            Stop::Break => "interrupted (Ctrl-Break)",
            Stop::Close => "the console is closing",
        })
    }
}

#[cfg(unix)]
pub struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
    hang_up: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    pub fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hang_up: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next signal; `None` when none can come any more.
    pub async fn next(&mut self) -> Option<Stop> {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match s {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.interrupt) => Some(Stop::Interrupt),
            Some(()) = recv(&mut self.terminate) => Some(Stop::Terminate),
            Some(()) = recv(&mut self.hang_up) => Some(Stop::HangUp),
            else => None,
        }
    }
}

#[cfg(windows)]
pub struct Signals {
    interrupt: Option<tokio::signal::windows::CtrlC>,
    brk: Option<tokio::signal::windows::CtrlBreak>,
    close: Option<tokio::signal::windows::CtrlClose>,
}

#[cfg(windows)]
impl Signals {
    pub fn register() -> Self {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
        Signals {
            interrupt: ctrl_c().ok(),
            brk: ctrl_break().ok(),
            close: ctrl_close().ok(),
        }
    }

    /// The next signal; `None` when none can come any more.
    pub async fn next(&mut self) -> Option<Stop> {
        let Signals {
            interrupt,
            brk,
            close,
        } = self;
        let interrupt = async {
            match interrupt {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let brk = async {
            match brk {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let close = async {
            match close {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = interrupt => Some(Stop::Interrupt),
            Some(()) = brk => Some(Stop::Break),
            Some(()) = close => Some(Stop::Close),
            else => None,
        }
    }
}
