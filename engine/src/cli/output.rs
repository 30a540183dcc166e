//! Standard output and error for the commands, without the panics of `print!`/`eprint!`.
//!
//! A reader that goes away early (`flux-engine schema | head -1`) closes the pipe; as with any
//! Unix tool, what is left to print is dropped quietly and the command ends with its own exit
//! code. Any other failure to write standard output (a full disk) is reported once, at the end,
//! and fails the command. Failing to write standard error is ignored: there is nowhere left to
//! say it.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

/// What became of standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// The reader went away (`EPIPE`): nothing more is written, quietly.
    Closed,
    /// Writing failed otherwise: nothing more is written, and the command fails.
    Failed(String),
}

static STDOUT: Mutex<State> = Mutex::new(State::Open);

/// Writes to standard output (use `outln!`/`out!`).
pub(crate) fn stdout(args: fmt::Arguments<'_>) {
    let Ok(mut state) = STDOUT.lock() else {
        return;
    };
    if *state != State::Open {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        *state = if e.kind() == std::io::ErrorKind::BrokenPipe {
            State::Closed
        } else {
            State::Failed(e.to_string())
        };
    }
}

/// Writes to standard error (use `errln!`/`err!`); failures are
/// ignored.
pub(crate) fn stderr(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// The exit code of a command that returned `code`, given what became of standard output: a
/// failure to write it (other than its reader going away) fails a command that succeeded.
pub(crate) fn finish(code: i32) -> i32 {
    let failed = match STDOUT.lock() {
        Ok(s) => match &*s {
            State::Failed(e) => Some(e.clone()),
            _ => None,
        },
        Err(_) => None,
    };
    match failed {
        Some(e) => {
            stderr(format_args!(
                "error: cannot write to standard output: {e}\n"
            ));
            if code == super::EXIT_OK {
                super::EXIT_RUNTIME
            } else {
                code
            }
        }
        None => code,
    }
}

/// `println!` to standard output without the panic (see the module documentation).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to standard output without the panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` without the panic.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` without the panic.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr(format_args!($($arg)*))
    };
}
