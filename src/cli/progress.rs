//! Progress of long transfers on standard error: a bar on a terminal, a few quiet lines in CI
//! logs (every quarter), nothing for small blobs. With `-v`, one line per registry request.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use custody::storage::store::Progress;

#[derive(Default)]
struct State {
    label: String,
    total: u64,
    done: u64,
    /// Last quarter (log mode) or percent (terminal mode) reported.
    shown: u64,
}

pub struct StderrProgress {
    terminal: bool,
    /// Whether transfers are shown (not with `--no-progress`, `-q` or JSON output).
    bars: bool,
    /// Whether each registry request is shown (`-v`).
    requests: bool,
    state: Mutex<State>,
}

impl StderrProgress {
    pub fn new(bars: bool, requests: bool) -> StderrProgress {
        StderrProgress {
            terminal: std::io::stderr().is_terminal(),
            bars,
            requests,
            state: Mutex::new(State::default()),
        }
    }
}

/// One line on stderr; a closed stderr is ignored (progress is never worth a panic).
fn line(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Progress for StderrProgress {
    fn begin(&self, label: &str, total: u64) {
        if !self.bars {
            return;
        }
        let mut s = self.state.lock().expect("progress lock");
        *s = State {
            label: label.to_owned(),
            total: total.max(1),
            done: 0,
            shown: 0,
        };
        if !self.terminal {
            line(format_args!("{label}: {:.1} MiB", mib(total)));
        }
    }

    fn advance(&self, bytes: u64) {
        if !self.bars {
            return;
        }
        let mut s = self.state.lock().expect("progress lock");
        s.done += bytes;
        let percent = (s.done.min(s.total) * 100) / s.total;
        if self.terminal {
            if percent != s.shown {
                s.shown = percent;
                let filled = (percent / 4) as usize;
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r{} [{}{}] {percent:3}% {:.0}/{:.0} MiB",
                    s.label,
                    "#".repeat(filled),
                    " ".repeat(25 - filled),
                    mib(s.done),
                    mib(s.total)
                );
                let _ = err.flush();
            }
        } else {
            let quarter = percent / 25;
            if quarter > s.shown && quarter < 4 {
                s.shown = quarter;
                line(format_args!("{}: {}%", s.label, quarter * 25));
            }
        }
    }

    fn end(&self) {
        if !self.bars {
            return;
        }
        let s = self.state.lock().expect("progress lock");
        if self.terminal {
            line(format_args!(""));
        } else {
            line(format_args!("{}: done ({:.1} MiB)", s.label, mib(s.done)));
        }
    }

    fn request(&self, method: &str, url: &str, status: u16) {
        if self.requests {
            line(format_args!("request: {method} {url} -> {status}"));
        }
    }
}
