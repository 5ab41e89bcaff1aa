//! Inspecting a database: its server identity, its user tables and their
//! numbers (counts, checksums) — of a backup's source inside the snapshot, and
//! of the restored scratch database alike.

use sqlx::{Connection, PgConnection, Row};

use super::EngineError;
use super::manifest::{
    DatabaseProperties, ExtensionInfo, ParityMethod, RoleInfo, SourceIdentity, TableSnapshot, VerifyMode,
};
use super::progress::Meter;

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

/// The current database's encoding, locale and database-level settings.
pub async fn database_properties(conn: &mut PgConnection) -> Result<DatabaseProperties, sqlx::Error> {
    // to_jsonb: the locale columns differ between majors (daticulocale in 15–16,
    // datlocale from 17, daticurules from 16).
    let row = sqlx::query(
        "SELECT pg_catalog.pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, to_jsonb(d), \
                coalesce((SELECT array_agg(c ORDER BY n) FROM pg_catalog.pg_db_role_setting s, \
                          unnest(s.setconfig) WITH ORDINALITY AS u(c, n) \
                          WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'), \
                pg_catalog.pg_get_userbyid(d.datdba)::text \
         FROM pg_catalog.pg_database d WHERE d.datname = current_database()",
    )
    .fetch_one(conn)
    .await?;
    let raw: serde_json::Value = row.get(3);
    let text = |key: &str| raw.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
    let locale_provider = match text("datlocprovider").as_deref() {
        Some("i") => "icu",
        Some("b") => "builtin",
        _ => "libc",
    };
    Ok(DatabaseProperties {
        encoding: row.get(0),
        collate: row.get(1),
        ctype: row.get(2),
        locale_provider: locale_provider.to_string(),
        locale: if locale_provider == "libc" { None } else { text("datlocale").or_else(|| text("daticulocale")) },
        icu_rules: text("daticurules"),
        settings: row.get(4),
        owner: Some(row.get(5)),
    })
}

/// The roles the current database's objects name — owners, grantees and
/// grantors in ACLs, policy roles (PostgreSQL records these in `pg_shdepend`),
/// the database owner, the bootstrap superuser when it owns user objects (pinned
/// roles have no `pg_shdepend` rows) — and, transitively, the roles those are
/// members of. Sorted by name.
pub async fn needed_roles(conn: &mut PgConnection) -> Result<Vec<RoleInfo>, sqlx::Error> {
    let rows = sqlx::query(
        r"WITH RECURSIVE
          this_db AS (SELECT oid, datdba FROM pg_catalog.pg_database WHERE datname = current_database()),
          user_ns AS (SELECT oid FROM pg_catalog.pg_namespace
                      WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_toast%'
                        AND nspname NOT LIKE 'pg\_temp%'),
          used(role, how) AS (
            SELECT d.refobjid, CASE d.deptype WHEN 'o' THEN 'owner' WHEN 'a' THEN 'grantee' ELSE 'policy' END
            FROM pg_catalog.pg_shdepend d, this_db
            WHERE d.dbid = this_db.oid AND d.refclassid = 'pg_catalog.pg_authid'::regclass AND d.deptype IN ('o', 'a', 'r')
            UNION SELECT datdba, 'owner' FROM this_db
            UNION SELECT 10::oid, 'owner' WHERE
              EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typowner = 10 AND typnamespace IN (SELECT oid FROM user_ns))
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proowner = 10 AND pronamespace IN (SELECT oid FROM user_ns))
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspowner = 10 AND nspname <> 'public'
                         AND oid IN (SELECT oid FROM user_ns))
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata WHERE lomowner = 10)),
          closure(role, how) AS (
            SELECT role, how FROM used WHERE role <> 0
            UNION SELECT m.roleid, 'group' FROM pg_catalog.pg_auth_members m JOIN closure c ON m.member = c.role)
        SELECT r.rolname::text, r.rolinherit,
               array_agg(DISTINCT c.how ORDER BY c.how),
               coalesce((SELECT array_agg(DISTINCT p.rolname::text ORDER BY p.rolname::text)
                         FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles p ON p.oid = m.roleid
                         WHERE m.member = r.oid AND m.roleid IN (SELECT role FROM closure)), '{}')
        FROM closure c JOIN pg_catalog.pg_roles r ON r.oid = c.role
        GROUP BY r.oid, r.rolname, r.rolinherit ORDER BY 1",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RoleInfo { name: r.get(0), inherit: r.get(1), used_as: r.get(2), member_of: r.get(3) })
        .collect())
}

/// Extensions installed in the current database.
pub async fn extensions(conn: &mut PgConnection) -> Result<Vec<ExtensionInfo>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT extname::text, extversion FROM pg_catalog.pg_extension ORDER BY 1").fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| ExtensionInfo { name: r.get(0), version: r.get(1) }).collect())
}

/// A user table: `qualified` is `schema.table` quoted as PostgreSQL's `%I` would,
/// usable in SQL as is and the name reports and manifests use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub qualified: String,
}

/// Every user table that `method` measures, sorted: the tables that store
/// rows (partitions included), and with the first method also partitioned
/// parents (whose count covered their partitions).
pub async fn user_tables(conn: &mut PgConnection, method: ParityMethod) -> Result<Vec<Table>, sqlx::Error> {
    let kinds = match method {
        ParityMethod::Stored => "'r'",
        ParityMethod::Inclusive => "'r', 'p'",
    };
    let rows = sqlx::query(&format!(
        r"SELECT n.nspname::text, c.relname::text, format('%I.%I', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ({kinds})
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY 3"
    ))
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
            "unknown table(s) {}: name them as schema.table (see `\\dt *.*` in psql; a partitioned table holds no rows of its own: name its partitions)",
            unknown.join(", ")
        )));
    }
    Ok(tables.into_iter().filter(|t| wanted.iter().any(|w| matches(t, w))).collect())
}

/// Output settings pinned in every session that checksums rows, so both sides
/// of a comparison print every value the same way (dates, intervals, floats,
/// bytea, money, XML, and `reg*` types, whose text depends on `search_path`).
/// `row_security = off` makes a query that row-level security would filter fail
/// instead of counting fewer rows.
const PINNED_OUTPUT: &str = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; SET TimeZone = 'UTC'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET xmloption = content; \
     SET xmlbinary = base64; SET search_path = pg_catalog";

/// Prepares a connection for measuring tables (inside whatever transaction it is in).
pub async fn prepare_measuring(conn: &mut PgConnection, method: ParityMethod) -> Result<(), sqlx::Error> {
    sqlx::query("SET row_security = off").execute(&mut *conn).await?;
    if method == ParityMethod::Stored {
        sqlx::raw_sql(PINNED_OUTPUT).execute(conn).await?;
    }
    Ok(())
}

/// Counts (and with `Checksums` digests) every table, spreading the tables over
/// the given connections (prepared with [`prepare_measuring`]), which run their
/// queries concurrently. Each connection keeps whatever transaction and snapshot
/// it is in.
pub async fn measure_tables(
    conns: &mut [PgConnection],
    tables: &[Table],
    mode: VerifyMode,
    method: ParityMethod,
    rows_measured: Option<&Meter>,
) -> Result<Vec<TableSnapshot>, sqlx::Error> {
    let queue = std::sync::Mutex::new(tables.iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::with_capacity(tables.len()));
    let workers = conns.iter_mut().map(|conn| {
        let (queue, results) = (&queue, &results);
        async move {
            loop {
                let Some((index, table)) = queue.lock().unwrap().pop() else { return Ok::<_, sqlx::Error>(()) };
                let measured = measure(conn, table, mode, method).await?;
                rows_measured.iter().for_each(|m| m.add(measured.rows.max(0) as u64));
                results.lock().unwrap().push((index, measured));
            }
        }
    });
    futures::future::try_join_all(workers).await?;
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, t)| t).collect())
}

/// The SQL that measures one table. Checksums are an order-independent sum of
/// 64-bit row hashes: constant memory on the server (unlike
/// `md5(string_agg(…))`) and insensitive to the physical order of rows.
fn measure_sql(table: &str, mode: VerifyMode, method: ParityMethod, columns: &[String]) -> String {
    match (mode, method) {
        (VerifyMode::Counts, ParityMethod::Inclusive) => format!("SELECT count(*) FROM {table}"),
        (VerifyMode::Counts, ParityMethod::Stored) => format!("SELECT count(*) FROM ONLY {table}"),
        (VerifyMode::Checksums, ParityMethod::Inclusive) => {
            format!("SELECT count(*), coalesce(sum(hashtextextended(r::text, 0)), 0)::text FROM {table} AS r")
        }
        (VerifyMode::Checksums, ParityMethod::Stored) => {
            // The columns by name, not by position: a restored inheritance child
            // or a table with dropped columns may order them differently.
            let row: Vec<String> = columns.iter().map(|c| format!("r.{}", quote_ident(c))).collect();
            format!(
                "SELECT count(*), coalesce(sum(hashtextextended(ROW({})::text, 0)), 0)::text FROM ONLY {table} AS r",
                row.join(", ")
            )
        }
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn measure(
    conn: &mut PgConnection,
    table: &Table,
    mode: VerifyMode,
    method: ParityMethod,
) -> Result<TableSnapshot, sqlx::Error> {
    let t = &table.qualified;
    let columns: Vec<String> = if (mode, method) == (VerifyMode::Checksums, ParityMethod::Stored) {
        sqlx::query_scalar(
            "SELECT attname::text FROM pg_catalog.pg_attribute \
             WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attname",
        )
        .bind(t)
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    let sql = measure_sql(t, mode, method, &columns);
    match mode {
        VerifyMode::Counts => {
            let rows: i64 = sqlx::query_scalar(&sql).fetch_one(conn).await?;
            Ok(TableSnapshot { table: t.clone(), rows, checksum: None })
        }
        VerifyMode::Checksums => {
            let row = sqlx::query(&sql).fetch_one(conn).await?;
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
    fn stored_rows_are_measured_only_where_they_live_with_columns_by_name() {
        let t = r#""S"."T""#;
        assert_eq!(
            measure_sql(t, VerifyMode::Counts, ParityMethod::Stored, &[]),
            r#"SELECT count(*) FROM ONLY "S"."T""#
        );
        assert_eq!(measure_sql(t, VerifyMode::Counts, ParityMethod::Inclusive, &[]), r#"SELECT count(*) FROM "S"."T""#);
        let sql = measure_sql(t, VerifyMode::Checksums, ParityMethod::Stored, &["a".into(), "Odd \"col\"".into()]);
        assert_eq!(
            sql,
            r#"SELECT count(*), coalesce(sum(hashtextextended(ROW(r."a", r."Odd ""col""")::text, 0)), 0)::text FROM ONLY "S"."T" AS r"#
        );
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
