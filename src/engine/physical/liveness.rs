//! Whether WAL is actually arriving at the archiver. A running process, fresh
//! heartbeats and uploads prove nothing: an archiver whose `pg_receivewal`
//! restarts every second (asking for a position ahead of the server, or for a
//! slot that is gone) uploads nothing real while looking busy. Health is the
//! receiver's position advancing whenever the source's does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Lsn;

/// How long the received position may stand still while the source's moves.
pub const STALL_AFTER: Duration = Duration::from_secs(5);
/// Exits of `pg_receivewal` within [`LOOP_WINDOW`] that make a restart loop.
const LOOP_EXITS: usize = 3;
const LOOP_WINDOW: Duration = Duration::from_secs(60);

pub struct Liveness {
    received: Option<Lsn>,
    advanced_at: Instant,
    exits: VecDeque<Instant>,
    /// The newest thing that explains a stall: the receiver's last words, or
    /// why receiving is paused.
    cause: Option<String>,
}

impl Liveness {
    pub fn new(now: Instant) -> Liveness {
        Liveness { received: None, advanced_at: now, exits: VecDeque::new(), cause: None }
    }

    /// `pg_receivewal` exited, with what it said.
    pub fn exited(&mut self, now: Instant, said: &str) {
        self.exits.push_back(now);
        while self.exits.front().is_some_and(|t| now.duration_since(*t) > LOOP_WINDOW) {
            self.exits.pop_front();
        }
        let said: Vec<&str> = said.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        self.cause = Some(said.join("; "));
    }

    /// Receiving is paused on purpose (the spool is full): the stall's cause.
    pub fn paused(&mut self, why: String) {
        self.cause = Some(why);
    }

    /// Seconds to wait before starting `pg_receivewal` again: one per recent exit, up to 10.
    pub fn backoff(&self) -> Duration {
        Duration::from_secs(self.exits.len().min(10) as u64)
    }

    /// Takes the receiver's position (`None`: no receiver streams) and the
    /// source's; returns why WAL is not arriving, when it is not.
    pub fn observe(&mut self, now: Instant, received: Option<Lsn>, server: Lsn) -> Option<String> {
        let caught_up = received.is_some_and(|r| r >= server);
        if caught_up || received > self.received {
            self.received = received;
            self.advanced_at = now;
            self.cause = None;
        }
        let recent = self.exits.iter().filter(|t| now.duration_since(**t) <= LOOP_WINDOW).count();
        let cause = self.cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
        if recent >= LOOP_EXITS {
            return Some(format!("pg_receivewal exited {recent} times in the last minute{cause}"));
        }
        let still = now.duration_since(self.advanced_at);
        if still > STALL_AFTER {
            let at = self.received.map_or("nothing yet".to_string(), |r| format!("up to {r}"));
            return Some(format!(
                "no WAL received for {} s while the source is at {server} (received {at}){cause}",
                still.as_secs()
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Option<Lsn> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn wal_arriving_or_an_idle_source_is_healthy() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        for (i, at) in ["0/3000000", "0/3100000", "0/3200000"].iter().enumerate() {
            let now = t0 + Duration::from_secs(4 * i as u64);
            assert_eq!(live.observe(now, lsn(at), "0/3300000".parse().unwrap()), None);
        }
        // An idle source: nothing moves, nothing is missing.
        let idle = "0/3300000".parse().unwrap();
        assert_eq!(live.observe(t0 + Duration::from_secs(60), lsn("0/3300000"), idle), None);
        assert_eq!(live.observe(t0 + Duration::from_secs(600), lsn("0/3300000"), idle), None);
    }

    #[test]
    fn a_receiver_standing_still_while_the_source_moves_is_a_stall() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        let server = "0/5000000".parse().unwrap();
        assert_eq!(live.observe(t0, lsn("0/4000000"), server), None);
        assert_eq!(live.observe(t0 + Duration::from_secs(5), lsn("0/4000000"), server), None);
        let stalled = live.observe(t0 + Duration::from_secs(6), lsn("0/4000000"), server).unwrap();
        assert_eq!(stalled, "no WAL received for 6 s while the source is at 0/5000000 (received up to 0/4000000)");
        // It arrives again: healthy at once.
        assert_eq!(live.observe(t0 + Duration::from_secs(7), lsn("0/4800000"), server), None);
    }

    #[test]
    fn a_restart_loop_is_a_stall_with_the_servers_words() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        let said = "pg_receivewal: error: requested starting point 0/4000000 is ahead of the WAL flush position of this server 0/3000148\n";
        live.exited(t0 + Duration::from_secs(1), said);
        live.exited(t0 + Duration::from_secs(2), said);
        assert_eq!(live.observe(t0 + Duration::from_secs(2), None, "0/3000148".parse().unwrap()), None);
        live.exited(t0 + Duration::from_secs(3), said);
        let stalled = live.observe(t0 + Duration::from_secs(3), None, "0/3000148".parse().unwrap()).unwrap();
        assert!(stalled.starts_with("pg_receivewal exited 3 times in the last minute: pg_receivewal: error: requested starting point 0/4000000 is ahead"), "{stalled}");
        assert_eq!(live.backoff(), Duration::from_secs(3));
    }

    #[test]
    fn a_paused_receiver_stalls_with_the_reason() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        let server = "0/9000000".parse().unwrap();
        assert_eq!(live.observe(t0, lsn("0/8000000"), server), None);
        live.paused("8 segments wait for upload: receiving paused".into());
        let stalled = live.observe(t0 + Duration::from_secs(10), None, server).unwrap();
        assert!(
            stalled.ends_with("(received up to 0/8000000): 8 segments wait for upload: receiving paused"),
            "{stalled}"
        );
    }
}
