//! PostgreSQL access: connections, the Artifortress schema (migrations) and
//! demo data. Nothing here knows about Kubernetes.

pub mod ops_summary;
pub mod seed;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The Artifortress schema, embedded at compile time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Errors of this module; every message names the database (without its password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url}: {reason}; expected postgres://user:password@host:5432/dbname")]
    InvalidUrl { url: String, reason: String },
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("applying migrations to {url}: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error(
        "refusing to seed {url}: it already holds data ({rows} rows in tenants and audit_log); pass --reset to truncate every Artifortress table first"
    )]
    NotEmpty { url: String, rows: i64 },
    #[error("{context} on {url}: {source}")]
    Query { context: String, url: String, source: sqlx::Error },
}

/// A PostgreSQL connection URL whose `Display` never shows the password, so it can
/// go into logs and error messages.
#[derive(Clone)]
pub struct DatabaseUrl {
    raw: String,
    redacted: String,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let parsed = url::Url::parse(raw)
            .map_err(|e| DbError::InvalidUrl { url: "<unparseable>".to_string(), reason: e.to_string() })?;
        let redacted = crate::redact::redact_url(&parsed);
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(DbError::InvalidUrl {
                url: redacted,
                reason: format!("scheme {:?} is not postgres", parsed.scheme()),
            });
        }
        PgConnectOptions::from_str(raw)
            .map_err(|e| DbError::InvalidUrl { url: redacted.clone(), reason: e.to_string() })?;
        Ok(DatabaseUrl { raw: raw.to_string(), redacted })
    }

    /// The URL with credentials, for the client library and child processes only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.raw)
            .expect("validated in parse")
            .application_name("artifortress-operator")
            // Bulk work (seed, counts over large tables) is slow by design; keep
            // sqlx's slow-statement warnings out of the operator's logs.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
    }

    /// The same server and credentials, another database (e.g. `postgres` for
    /// maintenance such as dropping the scratch database).
    pub fn with_database(&self, database: &str) -> DatabaseUrl {
        let mut u = url::Url::parse(&self.raw).expect("validated in parse");
        u.set_path(&format!("/{}", urlencode_path_segment(database)));
        DatabaseUrl::parse(u.as_str()).expect("changing the path keeps a valid URL")
    }

    /// The libpq environment for child processes (pg_dump, pg_restore). The
    /// password travels here, never on a command line where `ps` would show it.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let opts = self.connect_options();
        let u = url::Url::parse(&self.raw).expect("validated in parse");
        let mut env = vec![
            ("PGHOST", opts.get_host().to_string()),
            ("PGPORT", opts.get_port().to_string()),
            ("PGUSER", opts.get_username().to_string()),
            ("PGDATABASE", self.database()),
            ("PGAPPNAME", "artifortress-operator".to_string()),
        ];
        if let Some(password) = u.password() {
            env.push(("PGPASSWORD", percent_decode(password)));
        }
        for (key, value) in u.query_pairs() {
            let var = match key.as_ref() {
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "password" => "PGPASSWORD",
                _ => continue,
            };
            env.push((var, value.into_owned()));
        }
        env
    }

    /// Database name from the URL path (libpq defaults it to the user name).
    pub fn database(&self) -> String {
        let opts = self.connect_options();
        opts.get_database().map(str::to_string).unwrap_or_else(|| opts.get_username().to_string())
    }

    /// `host:port` of the server, for messages.
    pub fn server(&self) -> String {
        let opts = self.connect_options();
        format!("{}:{}", opts.get_host(), opts.get_port())
    }

    /// Same host, port and database as written (aliases of one server are not
    /// detected here; the engine compares server identities before restoring).
    pub fn same_database(&self, other: &DatabaseUrl) -> bool {
        let (a, b) = (self.connect_options(), other.connect_options());
        a.get_host() == b.get_host() && a.get_port() == b.get_port() && self.database() == other.database()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted)
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Encodes everything but RFC 3986's unreserved characters, so usual names such
/// as `artifortress_drill` stay readable in messages.
fn urlencode_path_segment(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

/// A small pool; `max_connections` bounds the load this process puts on the server.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })
}

/// Applies every pending migration; running it again is a no-op.
pub async fn migrate(pool: &PgPool, url: &DatabaseUrl) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(|source| DbError::Migrate { url: url.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_shows_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cr3t@db:5432/af?sslmode=disable").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/af?sslmode=disable");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        assert_eq!(url.database(), "af");

        let url = DatabaseUrl::parse("postgres://app@db/af?password=s3cr3t").unwrap();
        assert!(!url.to_string().contains("s3cr3t"), "{url}");
    }

    #[test]
    fn child_processes_get_the_connection_through_libpq_variables() {
        let url = DatabaseUrl::parse("postgres://app:p%40ss@db.example:6432/af?sslmode=require").unwrap();
        let env = url.libpq_env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some("db.example"));
        assert_eq!(get("PGPORT"), Some("6432"));
        assert_eq!(get("PGUSER"), Some("app"));
        assert_eq!(get("PGPASSWORD"), Some("p@ss"));
        assert_eq!(get("PGDATABASE"), Some("af"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
        let scratch = url.with_database("af drill");
        assert_eq!(scratch.database(), "af drill");
        let readable = url.with_database("artifortress_drill-2.x~");
        assert!(readable.to_string().contains("/artifortress_drill-2.x~"), "{readable}");
        assert_eq!(scratch.libpq_env().iter().find(|(n, _)| *n == "PGPASSWORD").unwrap().1, "p@ss");
    }

    #[test]
    fn bad_urls_are_explained_without_secrets() {
        let err = DatabaseUrl::parse("mysql://root:hunter2@db/af").err().unwrap().to_string();
        assert!(err.contains("not postgres") && !err.contains("hunter2"), "{err}");
        let err = DatabaseUrl::parse("not a url").err().unwrap().to_string();
        assert!(err.contains("expected postgres://"), "{err}");
    }
}
