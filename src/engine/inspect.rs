//! Inspecting a database: its server identity, its user tables and their
//! numbers (counts, checksums) — of a backup's source inside the snapshot, and
//! of the restored scratch database alike.

use sqlx::{Connection, PgConnection, Row};

use super::EngineError;
use super::manifest::{SourceIdentity, TableSnapshot, VerifyMode};

/// Identity of the server and database a connection points at.
pub struct Identity {
    pub source: SourceIdentity,
    pub major: u32,
}

pub async fn identity(conn: &mut PgConnection) -> Result<Identity, sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database()::text,
                current_setting('server_version'), current_setting('server_version_num')::int",
    )
    .fetch_one(conn)
    .await?;
    let version_num: i32 = row.get(3);
    Ok(Identity {
        source: SourceIdentity { system_identifier: row.get(0), database: row.get(1), server_version: row.get(2) },
        major: (version_num / 10_000) as u32,
    })
}

/// A user table: `qualified` is `schema.table` quoted as PostgreSQL's `%I` would,
/// usable in SQL as is and the name reports and manifests use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub qualified: String,
}

/// Every user table (partitioned parents and partitions included), sorted.
pub async fn user_tables(conn: &mut PgConnection) -> Result<Vec<Table>, sqlx::Error> {
    let rows = sqlx::query(
        r"SELECT n.nspname::text, c.relname::text, format('%I.%I', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY 3",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| Table { schema: r.get(0), name: r.get(1), qualified: r.get(2) }).collect())
}

/// Narrows `tables` to the ones asked for. A name matches its quoted form
/// (`"My Schema"."T"`), its plain form (`My Schema.T`), or, without a schema,
/// the table in `public`. Unknown names are an error listing them.
pub fn select_tables(tables: Vec<Table>, wanted: &[String]) -> Result<Vec<Table>, EngineError> {
    if wanted.is_empty() {
        return Ok(tables);
    }
    let matches = |t: &Table, w: &str| {
        t.qualified == w || format!("{}.{}", t.schema, t.name) == w || (t.schema == "public" && t.name == w)
    };
    let unknown: Vec<&str> =
        wanted.iter().map(String::as_str).filter(|w| !tables.iter().any(|t| matches(t, w))).collect();
    if !unknown.is_empty() {
        return Err(EngineError::Config(format!(
            "unknown table(s) {}: name them as schema.table (see `\\dt *.*` in psql)",
            unknown.join(", ")
        )));
    }
    Ok(tables.into_iter().filter(|t| wanted.iter().any(|w| matches(t, w))).collect())
}

/// Counts (and with `Checksums` digests) every table, spreading the tables over
/// the given connections, which run their queries concurrently. Each connection
/// keeps whatever transaction and snapshot it is in.
pub async fn measure_tables(
    conns: &mut [PgConnection],
    tables: &[Table],
    mode: VerifyMode,
) -> Result<Vec<TableSnapshot>, sqlx::Error> {
    let queue = std::sync::Mutex::new(tables.iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::with_capacity(tables.len()));
    let workers = conns.iter_mut().map(|conn| {
        let (queue, results) = (&queue, &results);
        async move {
            loop {
                let Some((index, table)) = queue.lock().unwrap().pop() else { return Ok::<_, sqlx::Error>(()) };
                let measured = measure(conn, table, mode).await?;
                results.lock().unwrap().push((index, measured));
            }
        }
    });
    futures::future::try_join_all(workers).await?;
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, t)| t).collect())
}

async fn measure(conn: &mut PgConnection, table: &Table, mode: VerifyMode) -> Result<TableSnapshot, sqlx::Error> {
    let t = &table.qualified;
    match mode {
        VerifyMode::Counts => {
            let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}")).fetch_one(conn).await?;
            Ok(TableSnapshot { table: t.clone(), rows, checksum: None })
        }
        VerifyMode::Checksums => {
            // An order-independent sum of 64-bit row hashes: constant memory on the
            // server, unlike md5(string_agg(...)), and insensitive to physical order.
            let row = sqlx::query(&format!(
                "SELECT count(*), coalesce(sum(hashtextextended(r::text, 0)), 0)::text FROM {t} AS r"
            ))
            .fetch_one(conn)
            .await?;
            Ok(TableSnapshot { table: t.clone(), rows: row.get(0), checksum: Some(row.get(1)) })
        }
    }
}

/// Opens `n` connections, e.g. for parallel counting.
pub async fn connections(url: &crate::db::DatabaseUrl, n: usize) -> Result<Vec<PgConnection>, EngineError> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            PgConnection::connect_with(&url.connect_options())
                .await
                .map_err(|source| crate::db::DbError::Connect { url: url.to_string(), source })?,
        );
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str, qualified: &str) -> Table {
        Table { schema: schema.into(), name: name.into(), qualified: qualified.into() }
    }

    #[test]
    fn tables_are_selected_by_quoted_plain_or_public_name() {
        let all = vec![t("public", "tenants", "public.tenants"), t("My Schema", "T", r#""My Schema"."T""#)];
        let pick = |w: &[&str]| {
            select_tables(all.clone(), &w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map(|v| v.into_iter().map(|t| t.qualified).collect::<Vec<_>>())
        };
        assert_eq!(pick(&[]).unwrap().len(), 2);
        assert_eq!(pick(&["tenants"]).unwrap(), ["public.tenants"]);
        assert_eq!(pick(&[r#""My Schema"."T""#]).unwrap(), [r#""My Schema"."T""#]);
        assert_eq!(pick(&["My Schema.T"]).unwrap(), [r#""My Schema"."T""#]);
        let err = pick(&["public.nope", "tenants"]).unwrap_err().to_string();
        assert!(err.contains("public.nope") && !err.contains("tenants,"), "{err}");
    }
}
