//! The one way a benchmark reports: figures go out as sections of text as soon as each is
//! known (a benchmark can run for minutes), progress goes out separately, and the caller
//! decides where each is shown.

/// Where a benchmark's output goes while it runs. `tally bench` prints sections on stdout
/// and progress on stderr; a test collects them.
pub trait Report: Send + Sync {
    /// Long work has started (generating keys, signing orders, writing a database): what
    /// the user waits for, not a figure.
    fn progress(&self, step: &str);
    /// A finished part of the report: one or more lines of figures, without a final line
    /// break.
    fn section(&self, text: &str);
}

/// A report kept in memory, for tests of the benchmarks.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Transcript {
    progress: std::sync::Mutex<Vec<String>>,
    sections: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Transcript {
    pub(crate) fn progress(&self) -> Vec<String> {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub(crate) fn sections(&self) -> Vec<String> {
        self.sections.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
impl Report for Transcript {
    fn progress(&self, step: &str) {
        if let Ok(mut progress) = self.progress.lock() {
            progress.push(step.to_owned());
        }
    }

    fn section(&self, text: &str) {
        if let Ok(mut sections) = self.sections.lock() {
            sections.push(text.to_owned());
        }
    }
}
