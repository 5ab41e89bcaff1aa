//! S3 Object Lock on everything a store writes (`object_lock=compliance|governance`
//! and `retain=30d` in the store URL): each new object version gets that mode
//! and a retain-until date, so the operator's own credentials cannot delete it
//! before then (compliance: nobody can; governance: only with the bypass
//! permission). A lock protects versions, not keys: a newer version can still
//! be written over a key, and a delete without a version id only hides it
//! behind a delete marker.

use std::time::Duration;

use aws_sdk_s3::types::ObjectLockMode;

/// The retention every object written gets.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectLock {
    pub mode: ObjectLockMode,
    pub retain_for: Duration,
}

impl ObjectLock {
    /// From the URL's `object_lock` and `retain` parameters (both or neither).
    pub fn from_params(mode: Option<&str>, retain: Option<&str>) -> Result<Option<ObjectLock>, String> {
        let (mode, retain) = match (mode, retain) {
            (None, None) => return Ok(None),
            (Some(mode), Some(retain)) => (mode, retain),
            _ => return Err("object_lock and retain go together, e.g. object_lock=compliance&retain=30d".into()),
        };
        let mode = match mode {
            "compliance" => ObjectLockMode::Compliance,
            "governance" => ObjectLockMode::Governance,
            other => return Err(format!("object_lock must be compliance or governance, not {other:?}")),
        };
        let retain_for = humantime::parse_duration(retain).map_err(|e| format!("retain {retain:?}: {e}"))?;
        if retain_for < Duration::from_secs(1) {
            return Err(format!("retain {retain:?} is shorter than a second"));
        }
        Ok(Some(ObjectLock { mode, retain_for }))
    }

    /// The retain-until date of an object written now (whole seconds, rounded up).
    pub fn retain_until(&self) -> aws_sdk_s3::primitives::DateTime {
        let until = std::time::SystemTime::now() + self.retain_for + Duration::from_secs(1);
        let secs = until.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        aws_sdk_s3::primitives::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_go_together_and_say_what_is_wrong() {
        assert_eq!(ObjectLock::from_params(None, None), Ok(None));
        let lock = ObjectLock::from_params(Some("compliance"), Some("30d")).unwrap().unwrap();
        assert_eq!((lock.mode, lock.retain_for), (ObjectLockMode::Compliance, Duration::from_secs(30 * 86_400)));
        assert!(ObjectLock::from_params(Some("compliance"), None).unwrap_err().contains("go together"));
        assert!(ObjectLock::from_params(Some("forever"), Some("1d")).unwrap_err().contains("compliance or governance"));
        assert!(ObjectLock::from_params(Some("governance"), Some("soon")).is_err());
    }
}
