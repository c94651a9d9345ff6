//! Why a benchmark gave no figures.

use crate::procfs::ProcError;

/// Why a benchmark failed. A run that goes wrong stops with the reason rather than printing
/// figures that would hide it.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The settings cannot make a run (the message names the flag).
    #[error("{0}")]
    Settings(String),
    /// An operation the benchmark needs failed: a file, a socket, a child process, or a
    /// part of Tally it drives.
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The system under measurement did not do what the run checks (an order refused, a
    /// line lost, a count that does not add up).
    #[error("{0}")]
    Check(String),
    /// A figure from `/proc` could not be read.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// Ctrl-C or SIGTERM arrived while the run was going.
    #[error("interrupted")]
    Interrupted,
}

/// Names the step that failed, as anyhow's `context` does, for the errors of the crates
/// and of the standard library that a benchmark calls.
pub(crate) trait Context<T> {
    /// Wraps an error in [`BenchError::Step`] named `step`.
    fn context(self, step: impl Into<String>) -> Result<T, BenchError>;
    /// [`Self::context`] with the name computed only on failure.
    fn with_context<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T, BenchError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, step: impl Into<String>) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Step {
            step: step.into(),
            source: Box::new(source),
        })
    }

    fn with_context<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T, BenchError> {
        self.map_err(|source| BenchError::Step {
            step: step().into(),
            source: Box::new(source),
        })
    }
}

/// A [`BenchError::Check`] with a formatted message, returned at once.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::error::BenchError::Check(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// An error and its sources, joined by ": ", as `{:#}` prints an anyhow error.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
