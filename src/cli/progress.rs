//! Progress of long transfers on standard error: a bar with rate and time left on a terminal,
//! a few quiet lines in CI logs (every quarter, with the rate), nothing for small blobs. With
//! `-v`, one line per registry request.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use super::printer::{duration, size};

use custody::storage::store::Progress;

#[derive(Default)]
struct State {
    label: String,
    total: u64,
    done: u64,
    /// Last quarter (log mode) or percent (terminal mode) reported.
    shown: u64,
    started: Option<Instant>,
}

impl State {
    /// Bytes a second so far, once there is something to measure.
    fn rate(&self) -> Option<f64> {
        let secs = self.started?.elapsed().as_secs_f64();
        (secs > 0.2 && self.done > 0).then(|| self.done as f64 / secs)
    }

    /// `12.3 MiB/s, 40s left`, or nothing before the rate is known.
    fn pace(&self) -> String {
        match self.rate() {
            Some(rate) => {
                let left = self.total.saturating_sub(self.done) as f64 / rate;
                format!(
                    "{}/s, {} left",
                    size(rate as u64),
                    duration(left.ceil() as u64)
                )
            }
            None => String::new(),
        }
    }
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
            started: Some(Instant::now()),
        };
        if !self.terminal {
            line(format_args!("{label}: {}", size(total)));
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
                // Cleared to the end of the line: the pace text changes length.
                let _ = write!(
                    err,
                    "\r{} [{}{}] {percent:3}% {}/{} {}\x1b[K",
                    s.label,
                    "#".repeat(filled),
                    " ".repeat(25 - filled),
                    size(s.done),
                    size(s.total),
                    s.pace()
                );
                let _ = err.flush();
            }
        } else {
            let quarter = percent / 25;
            if quarter > s.shown && quarter < 4 {
                s.shown = quarter;
                match s.pace() {
                    pace if pace.is_empty() => line(format_args!("{}: {}%", s.label, quarter * 25)),
                    pace => line(format_args!("{}: {}% ({pace})", s.label, quarter * 25)),
                }
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
            let took = s.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
            let rate = s
                .rate()
                .map_or(String::new(), |r| format!(", {}/s", size(r as u64)));
            line(format_args!(
                "{}: done ({} in {}{rate})",
                s.label,
                size(s.done),
                duration(took.round() as u64)
            ));
        }
    }

    fn request(&self, method: &str, url: &str, status: u16) {
        if self.requests {
            line(format_args!("request: {method} {url} -> {status}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_says_rate_and_time_left_once_it_is_known() {
        let mut s = State {
            label: "blob".into(),
            total: 40 * 1024 * 1024,
            done: 10 * 1024 * 1024,
            shown: 0,
            started: Instant::now().checked_sub(std::time::Duration::from_secs(2)),
        };
        let pace = s.pace();
        // 10 MiB in (a little over) 2 s: about 5 MiB/s, 30 MiB left: about 6 s.
        assert!(
            pace.starts_with("5.0 MiB/s, ") || pace.starts_with("4.9 MiB/s, "),
            "{pace}"
        );
        assert!(pace.ends_with("s left"), "{pace}");
        s.started = Some(Instant::now());
        assert_eq!(s.pace(), "", "no rate before anything can be measured");
    }
}
