//! Progress lines on stderr for long steps, so a person watching a drill sees
//! where it is and how long each part took — and, while a long step runs
//! (dump and upload, download and indexing, pg_restore, parity), how far it
//! is, how fast, and when it will end.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Progress {
    label: &'static str,
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        Progress { label, started: Instant::now(), quiet: false }
    }

    /// A reporter that prints nothing (library callers that log instead).
    pub fn quiet() -> Self {
        Progress { label: "", started: Instant::now(), quiet: true }
    }

    pub fn step(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}: [{:>7.1}s] {}", self.label, self.started.elapsed().as_secs_f64(), message.as_ref());
        }
        tracing::debug!(step = message.as_ref(), "progress");
    }
}

/// How often a running step reports (`ARTIFORTRESS_PROGRESS_EVERY`, seconds,
/// overrides it): often enough that a log never goes quiet for long, rarely
/// enough not to flood a Job's log.
const REPORT_EVERY: Duration = Duration::from_secs(4);

fn report_every() -> Duration {
    std::env::var("ARTIFORTRESS_PROGRESS_EVERY")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(REPORT_EVERY, Duration::from_secs_f64)
}

impl Progress {
    /// Reports a step that moves bytes while it runs, until the returned
    /// [`Meter`] is dropped: every few seconds a line (in a Job's log), or a
    /// live bar on a terminal, with the bytes so far, the rate and — when
    /// `total` (exact or estimated) is known — the share done and the ETA.
    pub fn meter(&self, what: &'static str, total: Option<Total>) -> Meter {
        self.meter_in(what, Unit::Bytes, total)
    }

    /// [`Progress::meter`] for a step counted in rows or items instead of bytes.
    pub fn meter_in(&self, what: &'static str, unit: Unit, total: Option<Total>) -> Meter {
        let done = Arc::new(AtomicU64::new(0));
        if self.quiet {
            return Meter { done, task: None };
        }
        let (progress, counter) = (self.clone(), done.clone());
        let started = Instant::now();
        let task = if std::io::stderr().is_terminal() {
            tokio::spawn(async move { live_bar(&progress, what, unit, total, &counter).await })
        } else {
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + report_every(), report_every());
                loop {
                    ticks.tick().await;
                    let line = meter_line(what, unit, counter.load(Ordering::Relaxed), total, started.elapsed());
                    progress.step(line);
                }
            })
        };
        Meter { done, task: Some(task) }
    }
}

/// How large a metered step is: known exactly (a download of a recorded
/// size), or estimated (a backup, from the previous backup's size).
#[derive(Clone, Copy, Debug)]
pub enum Total {
    Exact(u64),
    Estimate(u64),
}

/// What a meter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Rows,
    /// Archive items: indexes, constraints, triggers.
    Items,
}

impl Unit {
    fn amount(self, n: u64) -> String {
        match self {
            Unit::Bytes => human_bytes(n),
            Unit::Rows => format!("{} rows", human_count(n)),
            Unit::Items => human_count(n),
        }
    }

    fn rate(self, per_second: f64) -> String {
        match self {
            Unit::Bytes => format!("{}/s", human_bytes(per_second as u64)),
            Unit::Rows => format!("{} rows/s", human_count(per_second as u64)),
            Unit::Items => format!("{per_second:.1}/s"),
        }
    }
}

/// The running count of a metered step; reporting stops when it is dropped.
pub struct Meter {
    done: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Meter {
    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The count itself, for a stream that moves the bytes elsewhere.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `uploading: 1.2 GiB of ~7.3 GiB (16%), 95.1 MiB/s, ETA 1m5s`.
fn meter_line(what: &str, unit: Unit, done: u64, total: Option<Total>, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / seconds;
    let mut line = format!("{what}: {}", unit.amount(done));
    match total {
        Some(Total::Exact(t) | Total::Estimate(t)) if done <= t && t > 0 => {
            let approx = if matches!(total, Some(Total::Estimate(_))) { "~" } else { "" };
            line += &format!(" of {approx}{} ({}%)", unit.amount(t), done * 100 / t);
            line += &format!(", {}", unit.rate(rate));
            if rate > 0.0 {
                line += &format!(", ETA {}", human_duration((t - done) as f64 / rate));
            }
            return line;
        }
        Some(Total::Estimate(t)) => line += &format!(" (past the estimate of {})", unit.amount(t)),
        _ => {}
    }
    line + &format!(", {}", unit.rate(rate))
}

async fn live_bar(progress: &Progress, what: &'static str, unit: Unit, total: Option<Total>, done: &AtomicU64) {
    let length = match total {
        Some(Total::Exact(t) | Total::Estimate(t)) => t,
        None => 0,
    };
    let bar = if length > 0 { indicatif::ProgressBar::new(length) } else { indicatif::ProgressBar::new_spinner() };
    let template = match (unit, length > 0) {
        (Unit::Bytes, true) => "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        (Unit::Bytes, false) => "{prefix}: {msg} {spinner} {bytes} {bytes_per_sec}",
        (_, true) => "{prefix}: {msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
        (_, false) => "{prefix}: {msg} {spinner} {human_pos} {per_sec}",
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
    bar.set_prefix(progress.label);
    bar.set_message(what);
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticks.tick().await;
        let now = done.load(Ordering::Relaxed);
        if length > 0 && now > length {
            bar.set_length(now);
        }
        bar.set_position(now);
    }
}

/// `1.2 GiB`-style sizes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// `1.2M`-style counts for people.
pub fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// `6m12s`-style durations for people; sub-second values keep milliseconds.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round() as u64);
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        (_, 0) if m == 0 => format!("{h}h"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_line_says_how_far_how_fast_and_how_long() {
        let second = Duration::from_secs(1);
        let b = Unit::Bytes;
        let line = meter_line("uploading", b, 100 << 20, Some(Total::Estimate(400 << 20)), 4 * second);
        assert_eq!(line, "uploading: 100.0 MiB of ~400.0 MiB (25%), 25.0 MiB/s, ETA 12.0s");
        let line = meter_line("downloading", b, 10 << 20, Some(Total::Exact(20 << 20)), 2 * second);
        assert_eq!(line, "downloading: 10.0 MiB of 20.0 MiB (50%), 5.0 MiB/s, ETA 2.0s");
        let line = meter_line("dumping", b, 500 << 20, Some(Total::Estimate(400 << 20)), 10 * second);
        assert_eq!(line, "dumping: 500.0 MiB (past the estimate of 400.0 MiB), 50.0 MiB/s");
        assert_eq!(meter_line("dumping", b, 3 << 20, None, second), "dumping: 3.0 MiB, 3.0 MiB/s");
        let line = meter_line("verifying", Unit::Rows, 1_500_000, Some(Total::Exact(6_000_000)), 3 * second);
        assert_eq!(line, "verifying: 1.5M rows of 6.0M rows (25%), 500.0k rows/s, ETA 9.0s");
        let line = meter_line("building indexes", Unit::Items, 12, Some(Total::Exact(48)), 6 * second);
        assert_eq!(line, "building indexes: 12 of 48 (25%), 2.0/s, ETA 18.0s");
    }

    #[test]
    fn sizes_and_durations_read_like_a_person_wrote_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(human_duration(0.25), "250ms");
        assert_eq!(human_duration(12.34), "12.3s");
        assert_eq!(human_duration(372.0), "6m12s");
        assert_eq!(human_duration(900.0), "15m");
        assert_eq!(human_duration(3600.0), "1h");
        assert_eq!(human_duration(5430.0), "1h30m30s");
    }
}
