//! Progress lines on stderr for long steps, so a person watching a drill sees
//! where it is and how long each part took.

use std::time::Instant;

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
