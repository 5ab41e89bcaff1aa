use super::*;
use chrono::{DateTime, Utc};

fn probed_at(t: &str, generation: i64) -> ArtifortressStatus {
    ArtifortressStatus {
        observed_generation: Some(generation),
        database: Some(DependencyStatus {
            state: DependencyState::Up,
            latency_ms: 1.0,
            error: None,
            checked_at: t.parse().unwrap(),
        }),
        ..Default::default()
    }
}

#[test]
fn probes_wait_for_their_interval_unless_the_spec_changed() {
    let now: DateTime<Utc> = "2026-11-28T03:00:30Z".parse().unwrap();
    let interval = Duration::from_secs(30);
    assert_eq!(probe_due_in(&ArtifortressStatus::default(), Some(1), interval, now), None, "never probed");
    let recent = probed_at("2026-11-28T03:00:20Z", 1);
    assert_eq!(probe_due_in(&recent, Some(1), interval, now), Some(Duration::from_secs(20)));
    assert_eq!(probe_due_in(&recent, Some(2), interval, now), None, "spec changed");
    assert_eq!(probe_due_in(&probed_at("2026-11-28T03:00:00Z", 1), Some(1), interval, now), None, "due");
}
