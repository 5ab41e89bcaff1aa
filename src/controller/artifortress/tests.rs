use super::wal::{WAL_SILENT_AFTER, wal_archiving};
use super::*;
use crate::engine::physical::wal::WalStatus;
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

#[test]
fn wal_archiving_is_true_only_while_wal_arrives() {
    let streaming = WalStatus {
        retained_bytes: 1 << 20,
        last_segment: Some("000000010000000000000003".into()),
        ..WalStatus::starting("artifortress_wal")
    };
    let fresh = Duration::from_secs(5);
    assert_eq!(wal_archiving(&streaming, fresh).1, "Streaming");
    let stalled =
        WalStatus { stalled: Some("pg_receivewal exited 3 times in the last minute".into()), ..streaming.clone() };
    let (ok, reason, message) = wal_archiving(&stalled, fresh);
    assert_eq!((ok, reason), (false, "ArchiverStalled"));
    assert!(message.contains("no WAL arrives from the source: pg_receivewal exited 3 times"), "{message}");
    // Silent or stopped says more than a stall reported before.
    assert_eq!(wal_archiving(&stalled, WAL_SILENT_AFTER + fresh).1, "ArchiverSilent");
    let stopped = WalStatus { stopped: Some("stopped".into()), ..stalled };
    assert_eq!(wal_archiving(&stopped, fresh).1, "ArchiverStopped");
}
