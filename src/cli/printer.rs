//! The one owner of standard output and standard error. Every command prints through a
//! [`Printer`], which picks human or JSON output and treats a closed pipe
//! (`custody verify … | head -1`) as the reader having seen enough: further output is dropped
//! and the process ends with 0, as ripgrep does.

use std::cell::Cell;
use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

use super::OutputFormat;
use super::diagnostics::{self, ExitStatus, Failure};

/// Prints reports on stdout and diagnostics on stderr.
pub struct Printer {
    format: OutputFormat,
    /// Set once a write to stdout found the reading end closed.
    closed: Cell<bool>,
    /// `-q`: human reports are not printed (errors and JSON still are).
    quiet: bool,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Printer {
        Printer {
            format,
            closed: Cell::new(false),
            quiet: false,
        }
    }

    /// With `quiet`, human reports are dropped; errors, JSON and documents still print.
    pub fn quiet(mut self, quiet: bool) -> Printer {
        self.quiet = quiet;
        self
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Writes `text` to stdout as it is.
    pub fn stdout(&self, text: &str) {
        if self.closed.get() {
            return;
        }
        let mut out = io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            self.closed.set(true);
        }
    }

    /// Writes `value` to stdout as pretty JSON and a newline.
    pub fn json(&self, value: &impl Serialize) {
        let mut text = serde_json::to_string_pretty(value).expect("reports serialise");
        text.push('\n');
        self.stdout(&text);
    }

    /// `human` or `json`, whichever `--output` asked for.
    pub fn report(&self, human: &str, json: &impl Serialize) {
        match self.format {
            OutputFormat::Human if self.quiet => {}
            OutputFormat::Human => self.stdout(human),
            OutputFormat::Json => self.json(json),
        }
    }

    /// `human` or `json` on stderr, for a command whose stdout carries a document.
    pub fn report_to_stderr(&self, human: &str, json: &impl Serialize) {
        match self.format {
            OutputFormat::Human if self.quiet => {}
            OutputFormat::Human => self.stderr(human),
            OutputFormat::Json => {
                let mut text = serde_json::to_string_pretty(json).expect("reports serialise");
                text.push('\n');
                self.stderr(&text);
            }
        }
    }

    /// Writes `text` to stderr; a closed stderr is ignored (there is nobody left to tell).
    pub fn stderr(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }

    /// `error:` / `caused by:` / `hint:` on stderr, and with `--output json` the error document
    /// on stdout.
    pub fn failure(&self, failure: &Failure) {
        self.stderr(&diagnostics::render(
            &failure.error,
            failure.hint.as_deref(),
        ));
        if self.format == OutputFormat::Json {
            self.json(&diagnostics::document(failure));
        }
    }

    /// The process exit code for `status`. A reader that closed stdout early ends the output
    /// quietly but never changes the verdict: `custody verify ... | head -1` still exits 1 when
    /// the artifact was refused, so `set -o pipefail` cannot turn a refusal into a pass.
    pub fn exit(&self, status: ExitStatus) -> ExitCode {
        status.into()
    }
}

/// A size as people read it: `512 B`, `1.5 KiB`, `12.3 MiB`, `1.2 GiB` (powers of 1024, one
/// decimal). JSON output keeps exact byte counts.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for progress lines: `45s`, `3m 20s`, `2h 05m`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        let rows = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (12 * 1024 * 1024 + 300 * 1024, "12.3 MiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
            (u64::MAX, "16384.0 PiB"),
        ];
        for (bytes, text) in rows {
            assert_eq!(size(bytes), text, "{bytes}");
        }
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(200), "3m 20s");
        assert_eq!(duration(7500), "2h 05m");
    }
}
