//! Blobs: an Artifortress database restored to a point in time is usable only
//! if every blob it references (`blobs.storage_key`, `size_bytes`, `digest`)
//! still exists in the blob store. Garbage collection deletes blobs that became
//! unreferenced after that point, a bucket incident can lose objects; this
//! check finds out.
//!
//! The references (ordered by key in the database, byte order) and the store's
//! listing (ListObjectsV2 pages, byte order) are merged like two sorted files,
//! so memory stays bounded whatever their number: only the first few keys of
//! each finding and the sample are kept.

use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use crate::db::{DatabaseUrl, DbError};
use crate::store::{BackupStore, ObjectInfo};

use super::EngineError;
use super::progress::{Progress, human_duration};
use super::verdict::BlobCheck;

/// How many keys of each finding a report names.
const NAMED: usize = 10;
/// The store is listed in slices of about this many referenced keys, this many
/// slices at once (in order): a listing is a page of 1 000 keys per request, and
/// one request after the other is what takes the time.
const SLICE: i64 = 10_000;
const SLICES_AT_ONCE: usize = 8;

/// A blob reference of the restored database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub key: String,
    pub size: i64,
    pub digest: String,
}

/// Keeps the first [`NAMED`] keys of a finding.
fn note(keys: &mut Vec<String>, key: &str) {
    if keys.len() < NAMED {
        keys.push(key.to_string());
    }
}

/// Merges references and objects (both in key order) into the counts of a
/// [`BlobCheck`], offering every present, size-matching reference to `sample`.
pub async fn merge<R, O>(mut refs: R, mut objects: O, mut sample: impl FnMut(BlobRef)) -> Result<BlobCheck, EngineError>
where
    R: futures::Stream<Item = Result<BlobRef, EngineError>> + Unpin,
    O: futures::Stream<Item = Result<ObjectInfo, EngineError>> + Unpin,
{
    let mut check = BlobCheck::default();
    let mut object = objects.next().await.transpose()?;
    // Whether the current object was referenced (several rows may share a key).
    let mut matched = false;
    while let Some(r) = refs.next().await.transpose()? {
        check.referenced += 1;
        while let Some(o) = object.as_ref().filter(|o| o.key < r.key) {
            if !matched {
                check.orphans += 1;
                note(&mut check.orphan_keys, &o.key);
            }
            object = objects.next().await.transpose()?;
            matched = false;
        }
        match &object {
            Some(o) if o.key == r.key => {
                matched = true;
                check.present += 1;
                if i64::try_from(o.size).ok() != Some(r.size) {
                    check.size_mismatches += 1;
                    note(
                        &mut check.size_mismatch_keys,
                        &format!("{} (database {} bytes, store {} bytes)", r.key, r.size, o.size),
                    );
                } else {
                    sample(r);
                }
            }
            _ => {
                check.missing += 1;
                note(&mut check.missing_keys, &r.key);
            }
        }
    }
    while let Some(o) = object {
        if !matched {
            check.orphans += 1;
            note(&mut check.orphan_keys, &o.key);
        }
        object = objects.next().await.transpose()?;
        matched = false;
    }
    Ok(check)
}

/// A uniform random sample of up to `k` references (reservoir sampling, so the
/// sample is fair without knowing the count in advance).
struct Reservoir {
    k: usize,
    seen: u64,
    kept: Vec<BlobRef>,
}

impl Reservoir {
    fn offer(&mut self, r: BlobRef) {
        self.seen += 1;
        if self.kept.len() < self.k {
            self.kept.push(r);
        } else if self.k > 0 {
            let slot = fastrand::u64(0..self.seen);
            if (slot as usize) < self.k {
                self.kept[slot as usize] = r;
            }
        }
    }
}

/// Checks the restored database's blob references against `store`: `None`
/// when the database has no Artifortress `blobs` table. With `sample` > 0, that
/// many random present blobs are fetched and their SHA-256 compared with the digest.
pub async fn check(
    target: &DatabaseUrl,
    store: &dyn BackupStore,
    sample: u64,
    progress: &Progress,
) -> Result<Option<BlobCheck>, EngineError> {
    let started = Instant::now();
    let db_err = |context: &'static str| {
        let url = target.to_string();
        move |source| EngineError::Db(DbError::Query { context: context.into(), url, source })
    };
    let mut conn = PgConnection::connect_with(&target.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: target.to_string(), source })?;
    let has_blobs: bool = sqlx::query_scalar(
        "SELECT count(*) = 3 FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass('public.blobs') AND attname IN ('storage_key', 'size_bytes', 'digest') \
           AND NOT attisdropped",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(db_err("looking for the blobs table"))?;
    if !has_blobs {
        progress.step("no blobs table (not an Artifortress database): blob check skipped");
        return Ok(None);
    }
    progress.step(format!("checking blob references against {}", store.url()));
    // Every SLICE-th referenced key splits the listing into slices.
    let splits: Vec<String> = sqlx::query_scalar(
        "SELECT storage_key FROM (SELECT storage_key, row_number() OVER (ORDER BY storage_key COLLATE \"C\") AS n \
         FROM public.blobs) AS k WHERE n % $1 = 0 ORDER BY storage_key COLLATE \"C\"",
    )
    .bind(SLICE)
    .fetch_all(&mut conn)
    .await
    .map_err(db_err("splitting the blob references"))?;
    let refs = sqlx::query_as::<_, (String, i64, String)>(
        "SELECT storage_key, size_bytes, digest FROM public.blobs ORDER BY storage_key COLLATE \"C\"",
    )
    .fetch(&mut conn)
    .map(|row| row.map(|(key, size, digest)| BlobRef { key, size, digest }).map_err(db_err("reading blob references")));
    let objects = sliced_listing(store, &splits);
    let mut reservoir = Reservoir { k: usize::try_from(sample).unwrap_or(usize::MAX), seen: 0, kept: Vec::new() };
    let mut check = merge(Box::pin(refs), objects, |r| reservoir.offer(r)).await?;
    check.store = store.url();
    for r in &reservoir.kept {
        check.sampled += 1;
        if !content_matches(store, r).await? {
            check.corrupt += 1;
            note(&mut check.corrupt_keys, &r.key);
        }
    }
    check.seconds = started.elapsed().as_secs_f64();
    progress.step(format!(
        "blobs: {} referenced, {} present, {} missing, {} size mismatches, {} orphans, {} of {} sampled corrupt ({})",
        check.referenced,
        check.present,
        check.missing,
        check.size_mismatches,
        check.orphans,
        check.corrupt,
        check.sampled,
        human_duration(check.seconds)
    ));
    Ok(Some(check))
}

/// The whole listing, in order, from slices listed [`SLICES_AT_ONCE`] at a
/// time; memory holds at most that many slices.
fn sliced_listing<'a>(
    store: &'a dyn BackupStore,
    splits: &'a [String],
) -> impl futures::Stream<Item = Result<ObjectInfo, EngineError>> + Unpin + 'a {
    let bounds: Vec<(Option<&str>, Option<&str>)> = (0..=splits.len())
        .map(|i| (i.checked_sub(1).map(|p| splits[p].as_str()), splits.get(i).map(String::as_str)))
        .collect();
    let slices = futures::stream::iter(bounds)
        .map(move |(after, up_to)| async move { store.list_range("", after, up_to).collect::<Vec<_>>().await })
        .buffered(SLICES_AT_ONCE);
    Box::pin(slices.flat_map(|slice| futures::stream::iter(slice.into_iter().map(|o| o.map_err(EngineError::from)))))
}

/// Whether a blob's bytes hash to its digest (`sha256:<hex>`; any other digest
/// algorithm cannot be checked and counts as matching).
async fn content_matches(store: &dyn BackupStore, r: &BlobRef) -> Result<bool, EngineError> {
    let Some(expected) = r.digest.strip_prefix("sha256:") else { return Ok(true) };
    let mut body = store.get_stream(&r.key).await?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| EngineError::Io { context: format!("reading blob {}", r.key), source: e })?;
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()) == expected)
}

/// The failures (or, with `warn_only`, warnings) a blob check means, each with
/// the reason a drill reports: `BlobsMissing`, `BlobCorrupt`.
pub fn findings(check: &BlobCheck) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let first = |keys: &[String]| keys.join(", ");
    if check.missing > 0 {
        out.push((
            "BlobsMissing",
            format!(
                "blobs: {} of {} referenced blobs are missing from {} (first: {}); restored as of this backup, the installation would fail to serve them",
                check.missing,
                check.referenced,
                check.store,
                first(&check.missing_keys)
            ),
        ));
    }
    if check.size_mismatches > 0 {
        out.push((
            "BlobCorrupt",
            format!(
                "blobs: {} referenced blobs have another size in {} than the database records (first: {})",
                check.size_mismatches,
                check.store,
                first(&check.size_mismatch_keys)
            ),
        ));
    }
    if check.corrupt > 0 {
        out.push((
            "BlobCorrupt",
            format!(
                "blobs: {} of {} sampled blobs do not match their SHA-256 digest (first: {})",
                check.corrupt,
                check.sampled,
                first(&check.corrupt_keys)
            ),
        ));
    }
    out
}

/// The content the seed gives blob row `i` (1-based): its SHA-256 is the row's
/// digest and its length the row's `size_bytes` (see `db::seed`).
pub fn seed_content(i: i64) -> Vec<u8> {
    let repeats = 1 + (i * 7919).rem_euclid(40) as usize;
    format!("artifortress seed blob {i}\n").repeat(repeats).into_bytes()
}

/// Writes the object of every seeded blob row into `store` (under its
/// `storage_key`), `parallel` at a time; returns how many.
pub async fn write_seed_objects(
    database: &DatabaseUrl,
    store: &dyn BackupStore,
    parallel: usize,
    progress: &Progress,
) -> Result<u64, EngineError> {
    let mut conn = PgConnection::connect_with(&database.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: database.to_string(), source })?;
    let rows = sqlx::query_as::<_, (i64, String)>(
        "SELECT id - (SELECT min(id) FROM blobs) + 1, storage_key FROM blobs ORDER BY id",
    )
    .fetch(&mut conn);
    let written = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    rows.map(|row| async {
        let (i, key) = row.map_err(|source| DbError::Query {
            context: "reading blob rows".into(),
            url: database.to_string(),
            source,
        })?;
        store.put_bytes(&key, seed_content(i)).await?;
        let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_multiple_of(50_000) {
            progress.step(format!("{n} blob objects written ({})", human_duration(started.elapsed().as_secs_f64())));
        }
        Ok::<_, EngineError>(())
    })
    .buffer_unordered(parallel.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()?;
    Ok(written.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, size: i64) -> Result<BlobRef, EngineError> {
        Ok(BlobRef { key: key.into(), size, digest: String::new() })
    }

    fn o(key: &str, size: u64) -> Result<ObjectInfo, EngineError> {
        Ok(ObjectInfo { key: key.into(), size })
    }

    async fn run(
        refs: Vec<Result<BlobRef, EngineError>>,
        objects: Vec<Result<ObjectInfo, EngineError>>,
    ) -> (BlobCheck, Vec<String>) {
        let mut offered = Vec::new();
        let check =
            merge(futures::stream::iter(refs), futures::stream::iter(objects), |r| offered.push(r.key)).await.unwrap();
        (check, offered)
    }

    #[tokio::test]
    async fn missing_mismatched_and_orphaned_keys_are_counted_and_named() {
        let (c, offered) = run(
            vec![r("a", 1), r("b", 2), r("c", 3), r("e", 5)],
            vec![o("a", 1), o("b", 20), o("d", 4), o("e", 5), o("f", 6)],
        )
        .await;
        assert_eq!((c.referenced, c.present, c.missing, c.size_mismatches, c.orphans), (4, 3, 1, 1, 2));
        assert_eq!(c.missing_keys, ["c"]);
        assert_eq!(c.size_mismatch_keys, ["b (database 2 bytes, store 20 bytes)"]);
        assert_eq!(c.orphan_keys, ["d", "f"]);
        assert_eq!(offered, ["a", "e"], "only present blobs of the right size are sampled");
    }

    #[tokio::test]
    async fn rows_sharing_a_key_share_its_object() {
        let (c, _) = run(vec![r("a", 1), r("a", 1), r("b", 1)], vec![o("a", 1), o("b", 1)]).await;
        assert_eq!((c.referenced, c.present, c.missing, c.orphans), (3, 3, 0, 0));
    }

    #[tokio::test]
    async fn empty_sides_and_the_named_keys_are_bounded() {
        let (c, _) = run(vec![], vec![o("x", 1)]).await;
        assert_eq!((c.referenced, c.orphans), (0, 1));
        let many: Vec<_> = (0..100).map(|i| r(&format!("k{i:03}"), 1)).collect();
        let (c, _) = run(many, vec![]).await;
        assert_eq!((c.missing, c.missing_keys.len()), (100, NAMED));
    }

    #[test]
    fn a_reservoir_keeps_k_of_what_it_saw() {
        let mut reservoir = Reservoir { k: 5, seen: 0, kept: Vec::new() };
        for i in 0..1000 {
            reservoir.offer(BlobRef { key: i.to_string(), size: 1, digest: String::new() });
        }
        assert_eq!((reservoir.kept.len(), reservoir.seen), (5, 1000));
    }

    #[test]
    fn seed_content_is_deterministic_and_varied() {
        assert_eq!(seed_content(1), seed_content(1));
        assert_ne!(seed_content(1).len(), seed_content(2).len());
        assert!(seed_content(1).starts_with(b"artifortress seed blob 1\n"));
    }
}
