//! Session settings that speed up a restore into a scratch database: larger
//! memory for index builds, commits that do not wait for the WAL flush. They
//! go to pg_restore's own sessions only (through `PGOPTIONS`), so nothing on
//! the server changes and nothing is left to undo: they end with the sessions.
//!
//! Only settings that cannot change what is restored are accepted, and a
//! setting is only ever raised: a server configured with more than we would
//! ask for keeps its value. The memory they use is the target server's, per
//! pg_restore session (`-j` of them): `maintenance_work_mem` is sized for a
//! dedicated scratch server, not for one shared with production work.
//!
//! None is applied unless asked for: measured on the large seed (bench/
//! restore_bench.py, 2 CPUs, a durable server), each alone changed pg_restore's
//! time by -2 % to +2 %, within run-to-run noise. The restore is bound by its
//! largest table (one session copies it, 59 % of pg_restore there) while the
//! other session builds the smaller tables' indexes, so index-build memory and
//! commit cost are off the critical path. They remain for databases whose
//! restore is index-bound (many large indexes on one table).

use sqlx::PgConnection;

/// The settings a restore may change, and how to tell a raise from a cut.
const ALLOWED: [(&str, Kind); 4] = [
    ("maintenance_work_mem", Kind::Memory),
    ("work_mem", Kind::Memory),
    ("max_parallel_maintenance_workers", Kind::Count),
    ("synchronous_commit", Kind::Off),
];

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Count,
    /// Only `off` is accepted: it makes commits cheaper, nothing more.
    Off,
}

/// One session setting for the restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSetting {
    pub name: String,
    pub value: String,
}

impl SessionSetting {
    /// `maintenance_work_mem=1GB`, checked against what a restore may change.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, value) = spec
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .ok_or_else(|| format!("{spec:?} is not NAME=VALUE, e.g. maintenance_work_mem=1GB"))?;
        let allowed = || ALLOWED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let (_, kind) = ALLOWED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("{name} is not a setting a restore may change; these are: {}", allowed()))?;
        let valid = match kind {
            Kind::Memory => {
                let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
                digits > 0 && ["", "kB", "MB", "GB", "TB"].contains(&&value[digits..])
            }
            Kind::Count => value.parse::<u32>().is_ok(),
            Kind::Off => value == "off",
        };
        if !valid {
            let expected = match kind {
                Kind::Memory => "a size such as 512MB or 2GB",
                Kind::Count => "a whole number",
                Kind::Off => "off",
            };
            return Err(format!("{name}={value}: the value must be {expected}"));
        }
        Ok(SessionSetting { name: name.to_string(), value: value.to_string() })
    }
}

/// The wanted settings that raise what the server has now (`conn` is a
/// session on it); the others are left to the server.
pub async fn raising(conn: &mut PgConnection, wanted: &[SessionSetting]) -> Result<Vec<SessionSetting>, sqlx::Error> {
    let mut kept = Vec::new();
    for setting in wanted {
        let kind = ALLOWED.iter().find(|(n, _)| *n == setting.name).map(|(_, k)| *k);
        let sql = match kind {
            Some(Kind::Memory) => "SELECT pg_size_bytes(current_setting($1)) < pg_size_bytes($2)",
            Some(Kind::Count) => "SELECT current_setting($1)::bigint < $2::bigint",
            Some(Kind::Off) => "SELECT current_setting($1) <> $2",
            None => continue,
        };
        let raises: bool =
            sqlx::query_scalar(sql).bind(&setting.name).bind(&setting.value).fetch_one(&mut *conn).await?;
        if raises {
            kept.push(setting.clone());
        }
    }
    Ok(kept)
}

/// The `PGOPTIONS` value that gives every session of a libpq tool the settings.
pub fn pgoptions(settings: &[SessionSetting]) -> String {
    // Names and values are checked to hold no spaces or backslashes.
    settings.iter().map(|s| format!("-c {}={}", s.name, s.value)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_that_cannot_change_the_restored_data_are_accepted() {
        let s = SessionSetting::parse("maintenance_work_mem = 1GB").unwrap();
        assert_eq!((s.name.as_str(), s.value.as_str()), ("maintenance_work_mem", "1GB"));
        assert!(SessionSetting::parse("max_parallel_maintenance_workers=2").is_ok());
        assert!(SessionSetting::parse("synchronous_commit=off").is_ok());
        let refused = SessionSetting::parse("session_replication_role=replica").unwrap_err();
        assert!(refused.contains("not a setting a restore may change") && refused.contains("work_mem"), "{refused}");
        assert!(SessionSetting::parse("work_mem=1GB -c fsync=off").unwrap_err().contains("a size such as"));
        assert!(SessionSetting::parse("synchronous_commit=on").unwrap_err().contains("must be off"));
        assert!(SessionSetting::parse("maintenance_work_mem").unwrap_err().contains("NAME=VALUE"));
        assert!(SessionSetting::parse("max_parallel_maintenance_workers=-1").is_err());
        let all = ["maintenance_work_mem=256MB", "synchronous_commit=off"].map(|s| SessionSetting::parse(s).unwrap());
        assert_eq!(pgoptions(&all), "-c maintenance_work_mem=256MB -c synchronous_commit=off");
    }
}
