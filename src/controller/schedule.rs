//! When a `BackupSchedule` runs: 5-field cron in an IANA time zone, missed runs
//! (`startingDeadlineSeconds`) and concurrency, as one pure decision.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::api::backup_schedule::ConcurrencyPolicy;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `expression` (5 fields or a macro such as `@daily`) in `time_zone`;
    /// errors say what a valid value looks like.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Schedule, String> {
        let zone = Tz::from_str(time_zone)
            .map_err(|_| format!("unknown time zone {time_zone:?}: use an IANA name such as UTC or Europe/Berlin"))?;
        let fields = expression.split_whitespace().count();
        if !expression.trim_start().starts_with('@') && fields != 5 {
            return Err(format!(
                "invalid schedule {expression:?}: {fields} fields; use 5 (minute hour day-of-month month day-of-week), e.g. \"*/15 * * * *\""
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("invalid schedule {expression:?}: {e}; e.g. \"*/15 * * * *\" or \"0 2 * * *\""))?;
        Ok(Schedule { cron, zone })
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.zone), false).ok().map(|n| n.with_timezone(&Utc))
    }

    /// The latest run at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&self.zone), true).ok().map(|n| n.with_timezone(&Utc))
    }
}

/// What a schedule should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due; look again at `next`.
    Wait { next: Option<DateTime<Utc>> },
    /// Start the run scheduled for `scheduled`.
    Run { scheduled: DateTime<Utc> },
    /// Stop the running backup, then start the run (`concurrencyPolicy: Replace`).
    ReplaceAndRun { scheduled: DateTime<Utc> },
    /// A run was due but a backup is running (`Forbid`); it is skipped.
    SkipBusy { scheduled: DateTime<Utc> },
    /// The run was missed by more than `startingDeadlineSeconds`; it is skipped.
    SkipMissed { scheduled: DateTime<Utc> },
    /// `suspend: true`.
    Suspended,
}

/// Inputs of a decision.
pub struct State {
    /// The run last acted upon (`status.lastScheduleTime`), or the schedule's
    /// creation when it never ran: runs before it are not owed.
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub suspended: bool,
    /// Whether a backup of the installation is running.
    pub active: bool,
    pub policy: ConcurrencyPolicy,
    pub starting_deadline: Option<Duration>,
}

/// Only the latest owed run counts: after an outage of many periods the schedule
/// runs once, not once per missed period (as a CronJob does).
pub fn decide(schedule: &Schedule, s: &State) -> Decision {
    if s.suspended {
        return Decision::Suspended;
    }
    let due = schedule.latest_at_or_before(s.now).filter(|t| *t > s.since);
    let Some(scheduled) = due else {
        return Decision::Wait { next: schedule.next_after(s.now) };
    };
    let late = (s.now - scheduled).to_std().unwrap_or_default();
    if s.starting_deadline.is_some_and(|deadline| late > deadline) {
        return Decision::SkipMissed { scheduled };
    }
    match (s.active, s.policy) {
        (false, _) => Decision::Run { scheduled },
        (true, ConcurrencyPolicy::Forbid) => Decision::SkipBusy { scheduled },
        (true, ConcurrencyPolicy::Replace) => Decision::ReplaceAndRun { scheduled },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn state(since: &str, now: &str) -> State {
        State {
            since: at(since),
            now: at(now),
            suspended: false,
            active: false,
            policy: ConcurrencyPolicy::Forbid,
            starting_deadline: None,
        }
    }

    #[test]
    fn a_daily_run_keeps_its_wall_clock_time_across_dst_in_berlin() {
        let s = Schedule::parse("0 9 * * *", "Europe/Berlin").unwrap();
        // Winter (CET, UTC+1) then summer (CEST, UTC+2) after 2026-03-29.
        assert_eq!(s.next_after(at("2026-03-28T00:00:00Z")), Some(at("2026-03-28T08:00:00Z")));
        assert_eq!(s.next_after(at("2026-03-28T08:00:00Z")), Some(at("2026-03-29T07:00:00Z")));
        // And back after 2026-10-25.
        assert_eq!(s.next_after(at("2026-10-24T07:00:00Z")), Some(at("2026-10-25T08:00:00Z")));
    }

    #[test]
    fn a_run_in_the_skipped_spring_hour_happens_once_and_a_repeated_autumn_hour_runs_once() {
        let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 2026-03-29 02:30 does not exist in Berlin: the run is not lost, and
        // it happens exactly once that day.
        let first = s.next_after(at("2026-03-28T23:00:00Z")).unwrap();
        assert!(first >= at("2026-03-29T00:30:00Z") && first <= at("2026-03-29T01:30:00Z"), "{first}");
        let second = s.next_after(first).unwrap();
        assert_eq!(second, at("2026-03-30T00:30:00Z"), "next day, 02:30 CEST");
        // 2026-10-25 02:30 happens twice (CEST then CET): one run only.
        let first = s.next_after(at("2026-10-24T22:00:00Z")).unwrap();
        let second = s.next_after(first).unwrap();
        assert!(second >= at("2026-10-26T00:00:00Z"), "one run on the day the hour repeats: {first}, {second}");
    }

    #[test]
    fn only_the_latest_owed_run_starts_after_an_outage() {
        let s = Schedule::parse("*/15 * * * *", "UTC").unwrap();
        let d = decide(&s, &state("2026-11-27T10:00:00Z", "2026-11-27T11:07:00Z"));
        assert_eq!(d, Decision::Run { scheduled: at("2026-11-27T11:00:00Z") });
        let d = decide(&s, &state("2026-11-27T11:00:00Z", "2026-11-27T11:07:00Z"));
        assert_eq!(d, Decision::Wait { next: Some(at("2026-11-27T11:15:00Z")) });
    }

    #[test]
    fn a_run_missed_by_more_than_the_deadline_is_skipped() {
        let s = Schedule::parse("0 * * * *", "UTC").unwrap();
        let mut st = state("2026-11-27T09:00:00Z", "2026-11-27T10:04:00Z");
        st.starting_deadline = Some(Duration::from_secs(300));
        assert_eq!(decide(&s, &st), Decision::Run { scheduled: at("2026-11-27T10:00:00Z") });
        st.now = at("2026-11-27T10:06:00Z");
        assert_eq!(decide(&s, &st), Decision::SkipMissed { scheduled: at("2026-11-27T10:00:00Z") });
    }

    #[test]
    fn concurrency_policy_and_suspend_decide_over_a_due_run() {
        let s = Schedule::parse("@hourly", "UTC").unwrap();
        let mut st = state("2026-11-27T09:00:00Z", "2026-11-27T10:01:00Z");
        st.active = true;
        assert_eq!(decide(&s, &st), Decision::SkipBusy { scheduled: at("2026-11-27T10:00:00Z") });
        st.policy = ConcurrencyPolicy::Replace;
        assert_eq!(decide(&s, &st), Decision::ReplaceAndRun { scheduled: at("2026-11-27T10:00:00Z") });
        st.suspended = true;
        assert_eq!(decide(&s, &st), Decision::Suspended);
    }

    #[test]
    fn bad_schedules_and_zones_say_what_to_write() {
        let err = Schedule::parse("*/15 * * * *", "Mars/Olympus").unwrap_err();
        assert!(err.contains("unknown time zone") && err.contains("Europe/Berlin"), "{err}");
        let err = Schedule::parse("0 */15 * * * *", "UTC").unwrap_err();
        assert!(err.contains("6 fields") && err.contains("use 5"), "{err}");
        let err = Schedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(err.contains("invalid schedule"), "{err}");
    }
}
