//! Progress on stderr: a bar on a terminal; without one (a batch job's log, a pipe) plain lines
//! at every tenth of the work, at least once a minute while items finish, and at the end, with
//! the rate and the time left, so a Slurm log shows how far a run got and when it will end;
//! nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Progress over `len` items.
pub struct Progress {
    bar: ProgressBar,
    /// Plain lines instead of a bar (stderr is not a terminal).
    lines: bool,
    msg: String,
    len: u64,
    done: AtomicU64,
    start: Instant,
    /// When the last plain line was printed (ms since `start`).
    last_line_ms: AtomicU64,
}

/// Longest time between two plain lines while items finish.
const LINE_EVERY_S: f64 = 60.0;

/// Progress over `len` items with a message (a bar, plain lines, or nothing when `quiet`).
pub fn bar(len: u64, msg: &str, quiet: bool) -> Progress {
    let terminal = std::io::stderr().is_terminal();
    let bar = if quiet || !terminal {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta} left)")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        pb
    };
    Progress {
        bar,
        lines: !quiet && !terminal,
        msg: msg.to_string(),
        len,
        done: AtomicU64::new(0),
        start: Instant::now(),
        last_line_ms: AtomicU64::new(0),
    }
}

/// The line printed (without a terminal) when `done` of `len` items are done, if any: at each
/// tenth of the work, when `since_last_s` reaches [`LINE_EVERY_S`], and at the end.
fn line_at(msg: &str, done: u64, len: u64, elapsed_s: f64, since_last_s: f64) -> Option<String> {
    if len == 0 || done == 0 || done > len {
        return None;
    }
    let tenth = |d: u64| d * 10 / len;
    (done == len || tenth(done) > tenth(done - 1) || since_last_s >= LINE_EVERY_S).then(|| {
        let mut l = format!(
            "{msg}: {done}/{len} ({:.0} %) after {}",
            100.0 * done as f64 / len as f64,
            duration(elapsed_s)
        );
        if elapsed_s > 0.0 {
            let rate = done as f64 / elapsed_s;
            if rate >= 1.0 {
                l.push_str(&format!(", {rate:.1}/s"));
            } else {
                l.push_str(&format!(", {:.1} s each", 1.0 / rate));
            }
            if done < len {
                l.push_str(&format!(
                    ", about {} left",
                    duration((len - done) as f64 / rate)
                ));
            }
        }
        l
    })
}

/// `s` seconds as `12.3 s`, `4 min 05 s` or `2 h 03 min`.
fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

impl Progress {
    /// One more item done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        let before = self.done.fetch_add(n, Ordering::SeqCst);
        self.print_lines(before, before + n);
    }

    /// `done` items done in all.
    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
        let before = self.done.swap(done, Ordering::SeqCst);
        if done > before {
            self.print_lines(before, done);
        }
    }

    fn print_lines(&self, before: u64, after: u64) {
        if !self.lines {
            return;
        }
        // The last line crossed in (before, after].
        let secs = self.start.elapsed().as_secs_f64();
        let since = secs - self.last_line_ms.load(Ordering::SeqCst) as f64 / 1e3;
        if let Some(l) = (before + 1..=after)
            .rev()
            .find_map(|d| line_at(&self.msg, d, self.len, secs, since))
        {
            self.last_line_ms
                .store((secs * 1e3) as u64, Ordering::SeqCst);
            eprintln!("{l}");
        }
    }

    /// Runs `f` (printing a message) without the bar drawing over it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::line_at;

    #[test]
    fn plain_lines_at_each_tenth_and_at_the_end() {
        let at: Vec<u64> = (1..=25)
            .filter(|&d| line_at("x", d, 25, 0.0, 0.0).is_some())
            .collect();
        assert_eq!(at, [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
        let few: Vec<u64> = (1..=3)
            .filter(|&d| line_at("x", d, 3, 0.0, 0.0).is_some())
            .collect();
        assert_eq!(few, [1, 2, 3]);
        assert_eq!(
            line_at("segment", 5, 10, 2.0, 1.0).as_deref(),
            Some("segment: 5/10 (50 %) after 2.0 s, 2.5/s, about 2.0 s left")
        );
        assert!(line_at("x", 0, 10, 0.0, 0.0).is_none() && line_at("x", 1, 0, 0.0, 0.0).is_none());
    }

    #[test]
    fn a_slow_run_prints_a_line_at_least_once_a_minute_with_the_time_left() {
        // 1000 images at 18 s each: a tenth is 50 minutes; a line comes after a minute anyway.
        assert!(line_at("segment", 4, 1000, 72.0, 30.0).is_none());
        assert_eq!(
            line_at("segment", 4, 1000, 72.0, 61.0).as_deref(),
            Some("segment: 4/1000 (0 %) after 1 min 12 s, 18.0 s each, about 4 h 58 min left")
        );
        assert_eq!(
            line_at("segment", 1000, 1000, 18000.0, 0.0).as_deref(),
            Some("segment: 1000/1000 (100 %) after 5 h 00 min, 18.0 s each")
        );
    }
}
