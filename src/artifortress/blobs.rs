//! Artifortress's blobs as upstream stores them, and the check of a restored
//! database's blob rows against the bucket.
//!
//! Upstream keeps one `blobs` row per distinct content: `digest` the bare
//! lowercase hex SHA-256 of the object, `length_bytes` its size, `storage_key`
//! its key from the bucket root (`staging/<tenant>/<repo>/<upload>`, treated as
//! opaque: repository keys may hold `/`). A row is referenced by artifact
//! entries and manifests, or only by a committed upload session (downloads are
//! authorised through `upload_sessions.committed_blob_digest`), or by nothing
//! (what upstream's GC may delete). Objects without a row are normal: an open
//! upload's staging object, or what aborted, duplicate and abandoned uploads
//! left (upstream never collects them). Multipart uploads in progress are not
//! objects at all.
//!
//! The rows (ordered by key in the database, byte order) and the bucket's
//! listing (byte order, listed in key-range slices at once) are merged like two
//! sorted files, so memory stays bounded whatever their number. What
//! references the rows is counted alongside, and asked row by row only for
//! rows whose object is missing and for the sample (`references.rs`).

use std::collections::HashSet;
use std::time::Instant;

use futures::StreamExt;
use sqlx::{Connection, PgConnection};

use super::schema::{self, Use};
use crate::db::{DatabaseUrl, DbError};
use crate::engine::EngineError;
use crate::engine::progress::{Progress, human_duration};
use crate::engine::verdict::{BlobCheck, BlobClasses, FromVersions, MissingSince, ObjectsWithoutRow};
use crate::store::{BackupStore, ObjectInfo, Versioning};

/// How many keys of each finding a report names.
const NAMED: usize = 10;
/// Missing referenced objects compared with the live database at most; more
/// are counted as not compared (a lost bucket is already the finding).
const COMPARED_AT_MOST: usize = 100_000;

/// What references a blob row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowClass {
    /// An artifact entry or a manifest.
    Referenced,
    /// Only a committed upload session.
    CommittedOnly,
    /// Nothing.
    Unreferenced,
}

/// A blob row of the restored database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRow {
    pub key: String,
    pub length: i64,
    pub digest: String,
}

/// How much of the content to hash.
#[derive(Clone, Copy, Debug)]
pub struct DigestCheck {
    /// Random present blobs to fetch and hash.
    pub sample: u64,
    /// Hash every present blob instead (`--verify-blob-digests`).
    pub all: bool,
}

fn note(keys: &mut Vec<String>, key: &str) {
    if keys.len() < NAMED {
        keys.push(key.to_string());
    }
}

fn count(classes: &mut BlobClasses, class: RowClass) {
    match class {
        RowClass::Referenced => classes.referenced += 1,
        RowClass::CommittedOnly => classes.committed_only += 1,
        RowClass::Unreferenced => classes.unreferenced += 1,
    }
}

/// A missing object of a referenced row, kept for the comparison with the
/// live database and the lookup in the bucket's versions.
#[derive(Clone)]
pub struct Missing {
    pub key: String,
    pub length: i64,
    pub digest: String,
}

/// What the merge found besides the counts.
#[derive(Default)]
pub struct Merged {
    pub check: BlobCheck,
    /// Missing objects of referenced and committed-only rows (up to [`COMPARED_AT_MOST`]).
    pub missing: Vec<Missing>,
    pub missing_beyond: u64,
}

/// Rows whose object is missing are classified this many at a time.
const CLASSIFIED_AT_ONCE: usize = 10_000;

/// Merges rows and objects (both in key order) into the counts of a
/// [`BlobCheck`]; `in_flight` are the staging keys of open uploads; every
/// present row of the right size is offered to `sample`. What references a
/// row matters only when its object is missing: `classify` tells it for the
/// digests of such rows, a batch at a time, so the rows need no join (the
/// database's joins over every row would hold back the first row, and the
/// merge with it, by seconds).
pub async fn merge<R, O, C, F>(
    mut rows: R,
    mut objects: O,
    in_flight: &HashSet<String>,
    mut classify: C,
    mut sample: impl FnMut(&BlobRow),
) -> Result<Merged, EngineError>
where
    R: futures::Stream<Item = Result<BlobRow, EngineError>> + Unpin,
    O: futures::Stream<Item = Result<ObjectInfo, EngineError>> + Unpin,
    C: FnMut(Vec<String>) -> F,
    F: std::future::Future<Output = Result<Vec<RowClass>, EngineError>>,
{
    let mut m = Merged::default();
    let (mut missing_classes, mut without) = (BlobClasses::default(), ObjectsWithoutRow::default());
    let mut unclassified: Vec<BlobRow> = Vec::new();
    let mut unmatched = |o: &ObjectInfo, check: &mut BlobCheck| {
        check.orphans += 1;
        note(&mut check.orphan_keys, &o.key);
        if in_flight.contains(&o.key) {
            without.in_flight += 1;
            without.in_flight_bytes += o.size;
        } else {
            without.leftovers += 1;
            without.leftover_bytes += o.size;
        }
    };
    let mut object = objects.next().await.transpose()?;
    // Whether the current object has a row (keys are unique in `blobs`).
    let mut matched = false;
    while let Some(r) = rows.next().await.transpose()? {
        m.check.referenced += 1;
        while let Some(o) = object.as_ref().filter(|o| o.key < r.key) {
            if !matched {
                unmatched(o, &mut m.check);
            }
            object = objects.next().await.transpose()?;
            matched = false;
        }
        match &object {
            Some(o) if o.key == r.key => {
                matched = true;
                m.check.present += 1;
                if i64::try_from(o.size).ok() != Some(r.length) {
                    m.check.size_mismatches += 1;
                    let finding = format!("{} (database {} bytes, store {} bytes)", r.key, r.length, o.size);
                    note(&mut m.check.size_mismatch_keys, &finding);
                } else {
                    sample(&r);
                }
            }
            _ => {
                m.check.missing += 1;
                unclassified.push(r);
                if unclassified.len() == CLASSIFIED_AT_ONCE {
                    settle_missing(&mut m, &mut missing_classes, std::mem::take(&mut unclassified), &mut classify)
                        .await?;
                }
            }
        }
    }
    settle_missing(&mut m, &mut missing_classes, unclassified, &mut classify).await?;
    while let Some(o) = object {
        if !matched {
            unmatched(&o, &mut m.check);
        }
        object = objects.next().await.transpose()?;
        matched = false;
    }
    m.check.missing_classes = Some(missing_classes);
    m.check.without_row = Some(without);
    Ok(m)
}

/// Counts rows whose object is missing by what references them; those
/// something references are named and kept for the comparisons after.
async fn settle_missing<C, F>(
    m: &mut Merged,
    classes: &mut BlobClasses,
    rows: Vec<BlobRow>,
    classify: &mut C,
) -> Result<(), EngineError>
where
    C: FnMut(Vec<String>) -> F,
    F: std::future::Future<Output = Result<Vec<RowClass>, EngineError>>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let found = classify(rows.iter().map(|r| r.digest.clone()).collect()).await?;
    for (r, class) in rows.into_iter().zip(found) {
        count(classes, class);
        if class != RowClass::Unreferenced {
            note(&mut m.check.missing_keys, &r.key);
            if m.missing.len() < COMPARED_AT_MOST {
                m.missing.push(Missing { key: r.key, length: r.length, digest: r.digest });
            } else {
                m.missing_beyond += 1;
            }
        }
    }
    Ok(())
}

/// A uniform random sample of up to `k` rows (reservoir sampling).
struct Reservoir {
    k: usize,
    seen: u64,
    kept: Vec<BlobRow>,
}

impl Reservoir {
    fn offer(&mut self, r: &BlobRow) {
        self.seen += 1;
        if self.kept.len() < self.k {
            self.kept.push(r.clone());
        } else if self.k > 0 {
            let slot = fastrand::u64(0..self.seen) as usize;
            if slot < self.k {
                self.kept[slot] = r.clone();
            }
        }
    }
}

/// The rows in the bucket's order (byte order of the keys).
const ROWS: &str = "SELECT storage_key, length_bytes, digest::text FROM blobs ORDER BY storage_key COLLATE \"C\"";

/// Checks the restored database's blob rows against `store`; with `live`,
/// each missing object of a referenced row is classified as deleted since the
/// restore point or missing for the live installation too; on a bucket that
/// keeps versions, as recoverable or lost, and with `bring_back` the
/// recoverable ones are made current again. A `blobs` table that cannot be
/// read is an error, never a skipped check.
pub async fn check(
    restored: &DatabaseUrl,
    store: &dyn BackupStore,
    live: Option<&DatabaseUrl>,
    digests: DigestCheck,
    bring_back: bool,
    progress: &Progress,
) -> Result<BlobCheck, EngineError> {
    let started = Instant::now();
    release_freed_memory();
    let db_err = |context: &'static str| {
        let url = restored.to_string();
        move |source| EngineError::Db(DbError::Query { context: context.into(), url, source })
    };
    let mut conn = PgConnection::connect_with(&restored.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: restored.to_string(), source })?;
    let shape = schema::detect(&mut conn).await.map_err(db_err("reading the schema"))?;
    if !shape.supports(Use::BlobCheck) {
        return Err(EngineError::Config(format!("the blob rows of {restored} cannot be checked: {}", shape.summary())));
    }
    progress.step(format!("checking blob rows against {}", store.url()));
    // A second session for what the merge does not wait for, so the
    // database's and the bucket's side work overlaps the listing.
    let mut side = PgConnection::connect_with(&restored.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: restored.to_string(), source })?;
    let in_flight = async {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT object_staging_key FROM upload_sessions
             WHERE state IN ('initiated', 'parts_uploading', 'pending_commit') AND object_staging_key IS NOT NULL",
        )
        .fetch_all(&mut side)
        .await
        .map_err(db_err("reading the open upload sessions"))?;
        Ok::<_, EngineError>(keys.into_iter().collect::<HashSet<String>>())
    };
    // Split points from a sample of the keys: sorting every key took longer
    // (0.4 s at 200 000 blobs) and the listing waits for them; slices need
    // not be even.
    let splits = async {
        let sample: Vec<String> = sqlx::query_scalar(
            "SELECT storage_key FROM blobs TABLESAMPLE BERNOULLI (1) REPEATABLE (0) ORDER BY storage_key COLLATE \"C\"",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(db_err("splitting the blob rows"))?;
        let per_slice = listing::SLICE / 100;
        Ok::<_, EngineError>(sample.into_iter().skip(per_slice - 1).step_by(per_slice).collect())
    };
    let (in_flight, splits): (HashSet<String>, Vec<String>) = tokio::try_join!(in_flight, splits)?;
    // The database's own references, as upstream's blob reconcile counts them.
    let side_work = async {
        // Not on the merge's path: parallel workers (each building the same
        // hash tables) and JIT compilation would only take CPU from the
        // listing and the merge (204 800 blobs in Garage, 2 cores: the step's
        // median 2.46 s with these settings, 3.08 s without).
        sqlx::query("SET max_parallel_workers_per_gather = 0")
            .execute(&mut side)
            .await
            .map_err(db_err("setting up the blob check's session"))?;
        sqlx::query("SET jit = off").execute(&mut side).await.map_err(db_err("setting up the blob check's session"))?;
        let dangling = sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM artifact_entries e WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = e.blob_digest))
                  + (SELECT count(*) FROM manifests m WHERE m.manifest_blob_digest IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.manifest_blob_digest))",
        )
        .fetch_one(&mut side)
        .await
        .map_err(db_err("counting references to missing blob rows"))?;
        let classes = references::counts(&mut side).await.map_err(db_err("counting what references the blob rows"))?;
        Ok::<_, EngineError>((dangling, classes))
    };
    let multipart = async { Ok::<_, EngineError>(store.incomplete_uploads("").await?.len() as u64) };
    let rows = sqlx::query_as::<_, (String, i64, String)>(ROWS).fetch(&mut conn).map(|row| {
        row.map(|(key, length, digest)| BlobRow { key, length, digest }).map_err(db_err("reading the blob rows"))
    });
    let objects = listing::sliced_listing(store, &splits);
    let lookup = tokio::sync::Mutex::new(
        PgConnection::connect_with(&restored.connect_options())
            .await
            .map_err(|source| DbError::Connect { url: restored.to_string(), source })?,
    );
    let classified = |digests: Vec<String>| {
        let lookup = &lookup;
        async move {
            references::classify(&mut *lookup.lock().await, &digests).await.map_err(db_err("classifying blob rows"))
        }
    };
    let k = if digests.all { 0 } else { usize::try_from(digests.sample).unwrap_or(usize::MAX) };
    // Twice the sample, from which the unreferenced are dropped after.
    let mut reservoir = Reservoir { k: k.saturating_mul(2), seen: 0, kept: Vec::new() };
    let merging = merge(Box::pin(rows), objects, &in_flight, classified, |r| reservoir.offer(r));
    let (merged, (dangling, classes), multipart) = tokio::try_join!(merging, side_work, multipart)?;
    drop(side);
    let mut check = merged.check;
    check.store = store.url();
    check.multipart_in_progress = multipart;
    check.dangling_references = u64::try_from(dangling).unwrap_or(0);
    check.row_classes = Some(classes);
    let (hashed, corrupt) = if digests.all {
        hashing::hash_every_row(&mut conn, store, restored).await?
    } else {
        // Only rows something references are hashed (an unreferenced object
        // may be deleted by upstream's GC at any moment): k of them at random.
        let kept: Vec<String> = reservoir.kept.iter().map(|r| r.digest.clone()).collect();
        let classes = classified(kept).await?;
        let mut referenced: Vec<BlobRow> = (reservoir.kept.into_iter().zip(classes))
            .filter_map(|(r, class)| (class != RowClass::Unreferenced).then_some(r))
            .collect();
        fastrand::shuffle(&mut referenced);
        referenced.truncate(k);
        let sample = referenced.into_iter().map(|r| Ok((r.key, r.digest)));
        hashing::hash_rows(store, futures::stream::iter(sample)).await?
    };
    check.all_digests_verified = digests.all;
    check.sampled = hashed;
    check.corrupt = corrupt.len() as u64;
    check.corrupt_keys = corrupt.into_iter().take(NAMED).collect();
    drop(conn);
    if !merged.missing.is_empty() || merged.missing_beyond > 0 {
        check.missing_since = Some(match live {
            Some(live) => compare_with_live(live, &merged.missing, merged.missing_beyond).await?,
            None => MissingSince { unknown: merged.missing.len() as u64 + merged.missing_beyond, ..Default::default() },
        });
        let looked_up = async {
            match keeps_versions(store).await? {
                true => versions::examine(store, &merged.missing, merged.missing_beyond, bring_back, progress)
                    .await
                    .map(Some),
                false => Ok(None),
            }
        };
        check.from_versions = match looked_up.await {
            Ok(found) => found,
            // Only reporting: the lookup adds to the finding, its failure must not replace it.
            Err(e) if !bring_back => Some(FromVersions {
                not_examined: merged.missing.len() as u64 + merged.missing_beyond,
                unreadable: Some(e.to_string()),
                ..Default::default()
            }),
            Err(e) => return Err(e),
        };
    }
    check.seconds = started.elapsed().as_secs_f64();
    progress.step(format!(
        "blobs: {} rows, {} present, {} missing, {} size mismatches, {} of {} hashed corrupt, {} objects without a row ({})",
        check.referenced,
        check.present,
        check.missing,
        check.size_mismatches,
        check.corrupt,
        check.sampled,
        check.orphans,
        human_duration(check.seconds)
    ));
    Ok(check)
}

/// Gives the heap a restore left freed (in a drill, the same process) back
/// to the system, so that what the blob step holds is what stays resident
/// (the pod's memory limit covers the peak).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim only returns free heap pages; no memory in use is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether deleted objects may still be kept as versions (versioning on, or
/// suspended after it was on).
pub async fn keeps_versions(store: &dyn BackupStore) -> Result<bool, EngineError> {
    Ok(matches!(store.versioning().await?, Versioning::Enabled { .. } | Versioning::Off { suspended: true }))
}

/// Which missing objects the live installation still references (missing
/// live too) and which it no longer does (deleted since the restore point).
async fn compare_with_live(live: &DatabaseUrl, missing: &[Missing], beyond: u64) -> Result<MissingSince, EngineError> {
    let mut conn = PgConnection::connect_with(&live.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: live.to_string(), source })?;
    let mut since = MissingSince { unknown: beyond, ..Default::default() };
    for chunk in missing.chunks(1_000) {
        let digests: Vec<&str> = chunk.iter().map(|m| m.digest.as_str()).collect();
        let still: HashSet<String> = sqlx::query_scalar(
            "SELECT b.digest::text FROM blobs b WHERE b.digest = ANY($1::text[]::bpchar[])
               AND (EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest)
                    OR EXISTS (SELECT 1 FROM manifests m WHERE m.manifest_blob_digest = b.digest)
                    OR EXISTS (SELECT 1 FROM upload_sessions u WHERE u.committed_blob_digest = b.digest AND u.state = 'committed'))",
        )
        .bind(&digests)
        .fetch_all(&mut conn)
        .await
        .map_err(|source| DbError::Query {
            context: "comparing missing blobs with the live database".into(),
            url: live.to_string(),
            source,
        })?
        .into_iter()
        .collect();
        for m in chunk {
            if still.contains(&m.digest) {
                since.missing_live += 1;
                note(&mut since.missing_live_keys, &m.key);
            } else {
                since.deleted_since_snapshot += 1;
            }
        }
    }
    Ok(since)
}

/// What a blob check means for a drill: failures (reason, message) and warnings.
pub fn findings(check: &BlobCheck) -> (Vec<(String, String)>, Vec<String>) {
    let (mut failures, mut warnings) = (Vec::new(), Vec::new());
    let first = |keys: &[String]| keys.join(", ");
    let missing = check.missing_classes.unwrap_or_default();
    let since = match &check.missing_since {
        Some(s) if s.unknown == 0 => format!(
            "; {} deleted since the restore point, {} missing for the live installation too{}",
            s.deleted_since_snapshot,
            s.missing_live,
            if s.missing_live_keys.is_empty() { String::new() } else { format!(" ({})", first(&s.missing_live_keys)) }
        ),
        Some(s) => format!("; {} not compared with the live database (give the live database to compare)", s.unknown),
        None => String::new(),
    };
    let since = since + &from_versions(check.from_versions.as_ref());
    if missing.referenced > 0 {
        failures.push((
            "BlobsMissing".to_string(),
            format!(
                "blobs: {} objects of blobs that artifact entries or manifests reference are missing from {} (first: {}){since}; restored as of this backup, the installation would fail to serve them",
                missing.referenced,
                check.store,
                first(&check.missing_keys)
            ),
        ));
    }
    if missing.committed_only > 0 {
        warnings.push(format!(
            "blobs: {} objects of blobs only a committed upload references are missing from {} (downloads through those uploads would fail; upstream's garbage collection may delete such blobs){}",
            missing.committed_only,
            check.store,
            if missing.referenced == 0 {
                format!(" (first: {}){}", first(&check.missing_keys), from_versions(check.from_versions.as_ref()))
            } else {
                String::new()
            }
        ));
    }
    if let Some(why) = check.from_versions.as_ref().and_then(|f| f.unreadable.as_ref()) {
        warnings.push(format!(
            "blobs: the blob bucket's versions could not be read ({why}); looking up missing objects needs s3:GetBucketVersioning, s3:ListBucketVersions and s3:GetObjectVersion"
        ));
    }
    if check.size_mismatches > 0 {
        failures.push((
            "BlobCorrupt".to_string(),
            format!(
                "blobs: {} objects in {} have another size than their row records (first: {})",
                check.size_mismatches,
                check.store,
                first(&check.size_mismatch_keys)
            ),
        ));
    }
    if check.corrupt > 0 {
        failures.push((
            "BlobCorrupt".to_string(),
            format!(
                "blobs: {} of {} hashed objects do not match their SHA-256 digest (first: {})",
                check.corrupt,
                check.sampled,
                first(&check.corrupt_keys)
            ),
        ));
    }
    if check.dangling_references > 0 {
        failures.push((
            "BlobReferencesDangling".to_string(),
            format!(
                "blobs: {} artifact entries or manifests reference blob rows the restored database lacks",
                check.dangling_references
            ),
        ));
    }
    (failures, warnings)
}

/// What the bucket's versions keep of the missing objects, for messages.
fn from_versions(found: Option<&FromVersions>) -> String {
    let Some(f) = found else { return String::new() };
    if let Some(why) = &f.unreadable {
        return format!("; whether the bucket's versions keep them is unknown: they could not be read ({why})");
    }
    let named = |keys: &[String]| if keys.is_empty() { String::new() } else { format!(" ({})", keys.join(", ")) };
    let mut text = format!(
        "; in the bucket's versions: {} recoverable{}, {} lost{}",
        f.recoverable,
        named(&f.recoverable_keys),
        f.lost,
        named(&f.lost_keys)
    );
    if f.not_examined > 0 {
        text += &format!(", {} not looked up", f.not_examined);
    }
    if f.brought_back > 0 {
        text += &format!(", {} brought back", f.brought_back);
    } else if f.recoverable > 0 {
        text += " (restore --restore-blobs brings the recoverable ones back)";
    }
    text
}

/// Writes every object of a seed of `sizes` into `store`, `parallel` at a
/// time (see `seed::objects_sql`); returns how many.
pub async fn write_seed_objects(
    database: &DatabaseUrl,
    sizes: &super::seed::Sizes,
    store: &dyn BackupStore,
    parallel: usize,
    progress: &Progress,
) -> Result<u64, EngineError> {
    let mut conn = PgConnection::connect_with(&database.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: database.to_string(), source })?;
    let sql = super::seed::objects_sql(sizes);
    let rows = sqlx::query_as::<_, (String, Option<i64>)>(&sql).fetch(&mut conn);
    let written = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    rows.map(|row| async {
        let (key, blob) = row.map_err(|source| DbError::Query {
            context: "listing the seed's objects".into(),
            url: database.to_string(),
            source,
        })?;
        let content = match blob {
            Some(j) => super::seed::blob_content(j),
            None => super::seed::leftover_content(&key),
        };
        store.put_bytes(&key, content).await?;
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

mod hashing;
mod listing;
mod references;
#[cfg(test)]
mod tests;
mod versions;
