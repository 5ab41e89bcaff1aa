//! Which backups and drills a schedule prunes.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A backup as retention sees it.
#[derive(Clone, Debug)]
pub struct BackupEntry {
    pub name: String,
    /// When it completed; `None` while running or when it failed.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Successful backups to delete (objects and resource together). A backup is
/// kept while either rule keeps it: among the newest `keep_last`, or younger
/// than `max_age`. Without rules nothing is pruned, and the newest successful
/// backup is never pruned.
pub fn prune_backups(
    backups: &[BackupEntry],
    keep_last: Option<u32>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> Vec<String> {
    if keep_last.is_none() && max_age.is_none() {
        return Vec::new();
    }
    let mut done: Vec<(&String, DateTime<Utc>)> =
        backups.iter().filter_map(|b| b.completed_at.map(|t| (&b.name, t))).collect();
    done.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    done.iter()
        .enumerate()
        .skip(1) // the newest successful backup always stays
        .filter(|(i, (_, completed))| {
            let kept_by_count = keep_last.is_some_and(|n| (*i as u32) < n);
            let kept_by_age = max_age.is_some_and(|age| (now - *completed).to_std().unwrap_or_default() < age);
            !kept_by_count && !kept_by_age
        })
        .map(|(_, (name, _))| (*name).clone())
        .collect()
}

/// A finished object for history limits.
#[derive(Clone, Debug)]
pub struct Finished {
    pub name: String,
    pub finished_at: DateTime<Utc>,
}

/// The objects beyond the newest `limit`, to delete.
pub fn beyond_history(items: &[Finished], limit: u32) -> Vec<String> {
    let mut sorted: Vec<&Finished> = items.iter().collect();
    sorted.sort_by(|a, b| b.finished_at.cmp(&a.finished_at).then_with(|| a.name.cmp(&b.name)));
    sorted.into_iter().skip(limit as usize).map(|f| f.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn backups() -> Vec<BackupEntry> {
        // b1 oldest … b5 newest, one running and one failed backup beside them.
        let mut v: Vec<BackupEntry> = (1..=5)
            .map(|i| BackupEntry { name: format!("b{i}"), completed_at: Some(at(&format!("2026-11-2{i}T00:00:00Z"))) })
            .collect();
        v.push(BackupEntry { name: "running".into(), completed_at: None });
        v
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let mut pruned = prune_backups(&backups(), Some(2), None, at("2026-11-27T00:00:00Z"));
        pruned.sort();
        assert_eq!(pruned, ["b1", "b2", "b3"]);
    }

    #[test]
    fn max_age_keeps_the_young_and_either_rule_suffices() {
        let day = Duration::from_secs(86_400);
        let now = at("2026-11-26T12:00:00Z"); // b5 is 1.5 days old, b4 2.5 days
        let mut pruned = prune_backups(&backups(), None, Some(2 * day), now);
        pruned.sort();
        assert_eq!(pruned, ["b1", "b2", "b3", "b4"]);
        let mut pruned = prune_backups(&backups(), Some(4), Some(day), now);
        pruned.sort();
        assert_eq!(pruned, ["b1"]);
    }

    #[test]
    fn the_newest_successful_backup_is_never_pruned() {
        let old = vec![
            BackupEntry { name: "only".into(), completed_at: Some(at("2025-01-01T00:00:00Z")) },
            BackupEntry { name: "failed".into(), completed_at: None },
        ];
        assert!(prune_backups(&old, Some(1), Some(Duration::from_secs(1)), at("2026-11-27T00:00:00Z")).is_empty());
        assert!(prune_backups(&backups(), None, None, at("2030-01-01T00:00:00Z")).is_empty(), "no rules, no pruning");
    }

    #[test]
    fn history_keeps_the_newest_finished_objects() {
        let items: Vec<Finished> = (1..=5)
            .map(|i| Finished { name: format!("d{i}"), finished_at: at(&format!("2026-11-2{i}T00:00:00Z")) })
            .collect();
        let mut gone = beyond_history(&items, 3);
        gone.sort();
        assert_eq!(gone, ["d1", "d2"]);
        assert_eq!(beyond_history(&items, 0).len(), 5);
        assert!(beyond_history(&items, 10).is_empty());
    }
}
