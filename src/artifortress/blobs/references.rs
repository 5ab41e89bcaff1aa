//! What references a blob row of a restored database, as upstream counts it:
//! artifact entries and manifests, or only a committed upload session, or
//! nothing. Asked apart from the rows' own query: the joins over every row
//! take seconds on a restored database, and the merge with the bucket's
//! listing need not wait for them.

use sqlx::PgConnection;

use super::RowClass;
use crate::engine::verdict::BlobClasses;

/// What references each blob row, counted; no row waits for it.
const CLASS_COUNTS: &str = "SELECT count(*) FILTER (WHERE e.d IS NOT NULL OR m.d IS NOT NULL),
        count(*) FILTER (WHERE e.d IS NULL AND m.d IS NULL AND u.d IS NOT NULL),
        count(*) FILTER (WHERE e.d IS NULL AND m.d IS NULL AND u.d IS NULL)
 FROM blobs b
 LEFT JOIN (SELECT DISTINCT blob_digest AS d FROM artifact_entries) e ON e.d = b.digest
 LEFT JOIN (SELECT DISTINCT manifest_blob_digest AS d FROM manifests WHERE manifest_blob_digest IS NOT NULL) m ON m.d = b.digest
 LEFT JOIN (SELECT DISTINCT committed_blob_digest AS d FROM upload_sessions
            WHERE state = 'committed' AND committed_blob_digest IS NOT NULL) u ON u.d = b.digest";

/// What references each of the digests $1 (distinct: they are `blobs`'s
/// key), in their order: joins, as [`CLASS_COUNTS`], because neither
/// `manifests` nor `upload_sessions` has an index on these columns upstream.
const CLASSIFY: &str = "SELECT CASE WHEN e.d IS NOT NULL OR m.d IS NOT NULL THEN 'r' WHEN u.d IS NOT NULL THEN 'c' ELSE 'u' END
 FROM unnest($1::text[]::bpchar[]) WITH ORDINALITY AS given(digest, n)
 LEFT JOIN (SELECT DISTINCT blob_digest AS d FROM artifact_entries WHERE blob_digest = ANY($1::text[]::bpchar[])) e
   ON e.d = given.digest
 LEFT JOIN (SELECT DISTINCT manifest_blob_digest AS d FROM manifests WHERE manifest_blob_digest = ANY($1::text[]::bpchar[])) m
   ON m.d = given.digest
 LEFT JOIN (SELECT DISTINCT committed_blob_digest AS d FROM upload_sessions
            WHERE state = 'committed' AND committed_blob_digest = ANY($1::text[]::bpchar[])) u ON u.d = given.digest
 ORDER BY given.n";

pub(super) async fn classify(conn: &mut PgConnection, digests: &[String]) -> Result<Vec<RowClass>, sqlx::Error> {
    let classes: Vec<String> = sqlx::query_scalar(CLASSIFY).bind(digests).fetch_all(conn).await?;
    if classes.len() != digests.len() {
        return Err(sqlx::Error::Protocol(format!("{} classes for {} digests", classes.len(), digests.len())));
    }
    Ok(classes
        .iter()
        .map(|class| match class.as_str() {
            "r" => RowClass::Referenced,
            "c" => RowClass::CommittedOnly,
            _ => RowClass::Unreferenced,
        })
        .collect())
}

/// [`CLASS_COUNTS`], for the report.
pub(super) async fn counts(conn: &mut PgConnection) -> Result<BlobClasses, sqlx::Error> {
    let (referenced, committed_only, unreferenced) =
        sqlx::query_as::<_, (i64, i64, i64)>(CLASS_COUNTS).fetch_one(conn).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(BlobClasses {
        referenced: count(referenced),
        committed_only: count(committed_only),
        unreferenced: count(unreferenced),
    })
}
