//! Artifortress's configuration as the Kublai Helm chart ships it: a Secret
//! (`<fullname>-secrets`, or `secrets.existingSecretName`) with
//! `ConnectionStrings__Postgres` (an Npgsql connection string) and the object
//! storage keys, and a ConfigMap (`<fullname>-config`) with the object storage
//! endpoint and bucket and the `Lifecycle__*` settings. Upstream talks to its
//! bucket path-style, signing for region `us-east-1`.

use std::collections::BTreeMap;

pub const CONNECTION_STRING: &str = "ConnectionStrings__Postgres";
pub const ACCESS_KEY: &str = "ObjectStorage__AccessKey";
pub const SECRET_KEY: &str = "ObjectStorage__SecretKey";
pub const ENDPOINT: &str = "ObjectStorage__Endpoint";
pub const BUCKET: &str = "ObjectStorage__Bucket";
pub const TOMBSTONE_RETENTION_DAYS: &str = "Lifecycle__DefaultTombstoneRetentionDays";
pub const GC_RETENTION_GRACE_HOURS: &str = "Lifecycle__DefaultGcRetentionGraceHours";
pub const GC_BATCH_SIZE: &str = "Lifecycle__DefaultGcBatchSize";
/// The chart's default names (its fullname is the chart's name, `kublai`).
pub const DEFAULT_SECRET: &str = "kublai-secrets";
pub const DEFAULT_CONFIG_MAP: &str = "kublai-config";
/// Upstream's S3 client settings.
pub const REGION: &str = "us-east-1";
pub const PATH_STYLE: bool = true;

/// Where the blobs are, from the ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    pub endpoint: Option<String>,
    pub bucket: String,
}

/// The `Lifecycle__*` settings (absent when the ConfigMap does not set them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub tombstone_retention_days: Option<u32>,
    pub gc_retention_grace_hours: Option<u32>,
    pub gc_batch_size: Option<u32>,
}

/// The bucket and endpoint a Kublai ConfigMap names; `config_map` names it in messages.
pub fn storage(data: &BTreeMap<String, String>, config_map: &str) -> Result<Storage, String> {
    let bucket = data.get(BUCKET).map(|b| b.trim()).filter(|b| !b.is_empty()).ok_or_else(|| {
        format!("ConfigMap {config_map:?} has no {BUCKET}: set it (the Kublai chart's config.{BUCKET}) or give spec.objectStorage")
    })?;
    let endpoint = data.get(ENDPOINT).map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(format!("ConfigMap {config_map:?} key {ENDPOINT} is {e:?}: expected an http:// or https:// URL"));
    }
    Ok(Storage { endpoint, bucket: bucket.to_string() })
}

/// The `Lifecycle__*` settings of a Kublai ConfigMap; a value that is not a
/// whole number is an error naming its key.
pub fn lifecycle(data: &BTreeMap<String, String>, config_map: &str) -> Result<Lifecycle, String> {
    let number = |key: &str| -> Result<Option<u32>, String> {
        match data.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("ConfigMap {config_map:?} key {key} is {v:?}: expected a whole number")),
        }
    };
    Ok(Lifecycle {
        tombstone_retention_days: number(TOMBSTONE_RETENTION_DAYS)?,
        gc_retention_grace_hours: number(GC_RETENTION_GRACE_HOURS)?,
        gc_batch_size: number(GC_BATCH_SIZE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_charts_config_map_is_read() {
        let data = map(&[
            (ENDPOINT, "https://object-storage.production.example.com"),
            (BUCKET, "kublai-prod"),
            (TOMBSTONE_RETENTION_DAYS, "30"),
            (GC_RETENTION_GRACE_HOURS, "24"),
            (GC_BATCH_SIZE, "200"),
        ]);
        let s = storage(&data, "kublai-config").unwrap();
        assert_eq!(s.bucket, "kublai-prod");
        assert_eq!(s.endpoint.as_deref(), Some("https://object-storage.production.example.com"));
        let l = lifecycle(&data, "kublai-config").unwrap();
        assert_eq!(
            (l.tombstone_retention_days, l.gc_retention_grace_hours, l.gc_batch_size),
            (Some(30), Some(24), Some(200))
        );
    }

    #[test]
    fn missing_or_bad_values_name_the_key() {
        let e = storage(&map(&[]), "kublai-config").unwrap_err();
        assert!(e.contains(BUCKET) && e.contains("kublai-config"), "{e}");
        let e = storage(&map(&[(BUCKET, "b"), (ENDPOINT, "minio:9000")]), "c").unwrap_err();
        assert!(e.contains("http://"), "{e}");
        let e = lifecycle(&map(&[(GC_RETENTION_GRACE_HOURS, "a day")]), "c").unwrap_err();
        assert!(e.contains(GC_RETENTION_GRACE_HOURS), "{e}");
    }
}
