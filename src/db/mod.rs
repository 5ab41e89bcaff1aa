//! PostgreSQL access: connections and their addresses. Nothing here knows
//! about Kubernetes or about the application in the database.

pub mod npgsql;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Errors of this module; every message names the database (without its password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "invalid database address {url}: {reason}; expected postgres://user:password@host:5432/dbname or an Npgsql string Host=…;Port=…;Username=…;Password=…;Database=…"
    )]
    InvalidUrl { url: String, reason: String },
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("{url}: {reason}")]
    NoSuitableHost { url: String, reason: String },
    #[error("{context} on {url}: {source}")]
    Query { context: String, url: String, source: sqlx::Error },
}

/// A PostgreSQL address whose `Display` never shows the password, so it can go
/// into logs and error messages. Written as a libpq URL (several hosts too:
/// `postgres://u@a:5432,b:5432/db?target_session_attrs=primary`) or as an
/// Npgsql connection string; connections go to its first host until
/// [`DatabaseUrl::resolve`] has chosen the one its session attributes ask for.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// A libpq URL of one host, with credentials.
    raw: String,
    redacted: String,
    /// Every host in order, the first being the one `raw` names.
    hosts: Vec<(String, u16)>,
    target_session_attrs: Option<String>,
}

/// Encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

fn url_host(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// A libpq URL from the parts of an Npgsql connection string.
fn url_from_npgsql(p: &npgsql::ConnectionParts) -> String {
    let mut userinfo = String::new();
    if let Some(user) = &p.username {
        userinfo.push_str(&encode(user));
        if let Some(password) = &p.password {
            userinfo.push(':');
            userinfo.push_str(&encode(password));
        }
        userinfo.push('@');
    }
    let mut params: Vec<(&str, String)> = Vec::new();
    let mut hosts = Vec::new();
    for (host, port) in &p.hosts {
        if host.starts_with('/') {
            // A Unix socket directory travels as the `host` parameter.
            params.push(("host", host.clone()));
            hosts.push(format!("localhost:{port}"));
        } else {
            hosts.push(url_host(host, *port));
        }
    }
    for (key, value) in [
        ("sslmode", &p.ssl_mode),
        ("sslrootcert", &p.root_certificate),
        ("sslcert", &p.ssl_certificate),
        ("sslkey", &p.ssl_key),
        ("application_name", &p.application_name),
        ("target_session_attrs", &p.target_session_attributes),
    ] {
        if let Some(v) = value {
            params.push((key, v.clone()));
        }
    }
    let options: Vec<String> = [p.search_path.as_ref().map(|path| format!("-c search_path={path}")), p.options.clone()]
        .into_iter()
        .flatten()
        .collect();
    if !options.is_empty() {
        params.push(("options", options.join(" ")));
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    format!(
        "postgres://{userinfo}{}/{}{}{}",
        hosts.join(","),
        p.database.as_deref().map(encode).unwrap_or_default(),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    )
}

impl DatabaseUrl {
    /// Reads a libpq URL or an Npgsql connection string. Errors never repeat a password.
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Self::parse_url(raw);
        }
        if raw.contains('=') {
            let parts = npgsql::parse(raw)
                .map_err(|e| DbError::InvalidUrl { url: "<Npgsql connection string>".into(), reason: e.to_string() })?;
            return Self::parse_url(&url_from_npgsql(&parts));
        }
        if let Ok(parsed) = url::Url::parse(raw) {
            let reason = format!("scheme {:?} is not postgres", parsed.scheme());
            return Err(DbError::InvalidUrl { url: crate::redact::redact_url(&parsed), reason });
        }
        let shown = if raw.contains('@') { "<not shown: it may hold a password>" } else { raw };
        Err(DbError::InvalidUrl {
            url: shown.to_string(),
            reason: "neither a postgres:// URL nor an Npgsql string".into(),
        })
    }

    fn parse_url(raw: &str) -> Result<Self, DbError> {
        let invalid = |url: String, reason: String| DbError::InvalidUrl { url, reason };
        let (scheme, rest) = raw.split_once("://").expect("checked by the caller");
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, host_list) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        // The session attributes are ours to honour (resolve); sqlx does not know them.
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut target_session_attrs = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter(|kv| match kv.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    target_session_attrs = Some(percent_decode(v));
                    false
                }
                _ => true,
            })
            .collect();
        let entries: Vec<&str> = host_list.split(',').collect();
        let first = entries[0];
        let single = format!(
            "{scheme}://{}{first}{path}{}{}",
            userinfo.map(|u| format!("{u}@")).unwrap_or_default(),
            if kept.is_empty() { "" } else { "?" },
            kept.join("&")
        );
        let parsed = url::Url::parse(&single).map_err(|e| invalid("<unparseable>".to_string(), e.to_string()))?;
        let mut redacted = crate::redact::redact_url(&parsed);
        if entries.len() > 1 {
            redacted = redacted.replacen(first, host_list, 1);
        }
        if let Some(attrs) = &target_session_attrs {
            redacted.push_str(if redacted.contains('?') { "&" } else { "?" });
            redacted.push_str(&format!("target_session_attrs={attrs}"));
        }
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(redacted, format!("scheme {:?} is not postgres", parsed.scheme())));
        }
        PgConnectOptions::from_str(&single).map_err(|e| invalid(redacted.clone(), e.to_string()))?;
        let mut hosts = Vec::new();
        for entry in &entries {
            let u = url::Url::parse(&format!("postgres://{entry}/"))
                .map_err(|e| invalid(redacted.clone(), format!("host {entry:?}: {e}")))?;
            let host = u.host_str().unwrap_or("localhost").trim_matches(['[', ']']).to_string();
            hosts.push((host, u.port().unwrap_or(5432)));
        }
        Ok(DatabaseUrl { raw: single, redacted, hosts, target_session_attrs })
    }

    /// The URL with credentials, for the client library and child processes
    /// only; of the first host when several are listed (see [`DatabaseUrl::resolve`]).
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// Every host the address lists, in order.
    pub fn hosts(&self) -> &[(String, u16)] {
        &self.hosts
    }

    /// The same address with only `host`: credentials, database and parameters kept.
    fn only_host(&self, index: usize) -> DatabaseUrl {
        let (host, port) = &self.hosts[index];
        let mut u = url::Url::parse(&self.raw).expect("validated in parse");
        let _ = u.set_host(Some(host));
        let _ = u.set_port(Some(*port));
        let mut one = DatabaseUrl::parse_url(u.as_str()).expect("changing the host keeps a valid URL");
        one.target_session_attrs = None;
        one
    }

    /// With several hosts, connects to each in order and keeps the first whose
    /// session is what `target_session_attrs` asks for (`primary`/`read-write`:
    /// not in recovery; `standby`/`read-only`: in recovery; `prefer-…`: that
    /// kind if any answers, else the first that answers; `any`: the first that
    /// answers). One host: itself, unchanged. Child processes and pools then
    /// get one host, whatever their libpq version.
    pub async fn resolve(&self) -> Result<DatabaseUrl, DbError> {
        if self.hosts.len() < 2 {
            return Ok(self.clone());
        }
        let wants = self.target_session_attrs.as_deref().unwrap_or("any");
        let mut answered: Vec<(usize, bool)> = Vec::new();
        let mut outcomes = Vec::new();
        for i in 0..self.hosts.len() {
            let candidate = self.only_host(i);
            let (host, port) = &self.hosts[i];
            let probe = async {
                let mut conn = candidate.connect_options().connect().await?;
                let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut conn).await?;
                let _ = sqlx::Connection::close(conn).await;
                Ok::<_, sqlx::Error>(in_recovery)
            };
            match tokio::time::timeout(Duration::from_secs(5), probe).await {
                Ok(Ok(in_recovery)) => {
                    let fits = match wants {
                        "primary" | "read-write" => !in_recovery,
                        "standby" | "read-only" => in_recovery,
                        "prefer-primary" => !in_recovery,
                        "prefer-standby" => in_recovery,
                        _ => true,
                    };
                    if fits {
                        return Ok(candidate);
                    }
                    answered.push((i, in_recovery));
                    outcomes.push(format!(
                        "{}: {}",
                        url_host(host, *port),
                        if in_recovery { "a standby" } else { "a primary" }
                    ));
                }
                Ok(Err(e)) => outcomes.push(format!("{}: {e}", url_host(host, *port))),
                Err(_) => outcomes.push(format!("{}: no answer within 5 s", url_host(host, *port))),
            }
        }
        if wants.starts_with("prefer-")
            && let Some((i, _)) = answered.first()
        {
            return Ok(self.only_host(*i));
        }
        Err(DbError::NoSuitableHost {
            url: self.to_string(),
            reason: format!("no host is a session of kind {wants:?} ({})", outcomes.join("; ")),
        })
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
        u.set_path(&format!("/{}", encode(database)));
        let mut other = DatabaseUrl::parse_url(u.as_str()).expect("changing the path keeps a valid URL");
        if self.hosts.len() > 1 {
            let first = url_host(&self.hosts[0].0, self.hosts[0].1);
            let all: Vec<String> = self.hosts.iter().map(|(h, p)| url_host(h, *p)).collect();
            other.redacted = other.redacted.replacen(&first, &all.join(","), 1);
            other.hosts = self.hosts.clone();
        }
        other.target_session_attrs = self.target_session_attrs.clone();
        other
    }

    /// The libpq environment for child processes (pg_dump, pg_restore). The
    /// password travels here, never on a command line where `ps` would show it.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let opts = self.connect_options();
        let u = url::Url::parse(&self.raw).expect("validated in parse");
        let host = match opts.get_socket() {
            Some(dir) => dir.display().to_string(),
            None => opts.get_host().to_string(),
        };
        let mut env = vec![
            ("PGHOST", host),
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
                "options" => "PGOPTIONS",
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

    /// `host:port` of the server (the first host), for messages.
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

/// A small pool; `max_connections` bounds the load this process puts on the server.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })
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
        let err = DatabaseUrl::parse("Host=db;Password=hunter2;Nonsense=1").err().unwrap().to_string();
        assert!(err.contains("\"Nonsense\" is not an Npgsql keyword") && !err.contains("hunter2"), "{err}");
        let err = DatabaseUrl::parse("not a url").err().unwrap().to_string();
        assert!(err.contains("expected postgres://"), "{err}");
    }

    #[test]
    fn an_npgsql_string_is_the_same_address_as_its_url() {
        let url = DatabaseUrl::parse(
            "Host=db.example;Port=6432;Username=kublai;Password='p@ss;w=rd';Database=kublai;SSL Mode=VerifyFull;Search Path=kublai",
        )
        .unwrap();
        assert_eq!(url.database(), "kublai");
        assert_eq!(url.server(), "db.example:6432");
        assert!(!url.to_string().contains("p@ss"), "{url}");
        let env = url.libpq_env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PGPASSWORD").as_deref(), Some("p@ss;w=rd"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("verify-full"));
        assert_eq!(get("PGOPTIONS").as_deref(), Some("-c search_path=kublai"));
        assert_eq!(get("PGUSER").as_deref(), Some("kublai"));
    }

    #[test]
    fn several_hosts_are_kept_for_resolve_and_shown_without_the_password() {
        for raw in [
            "postgres://app:s3cr3t@pg-a:5432,pg-b:5433/af?target_session_attrs=primary",
            "Host=pg-a,pg-b:5433;Username=app;Password=s3cr3t;Database=af;Target Session Attributes=primary",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            assert_eq!(url.hosts(), [("pg-a".to_string(), 5432), ("pg-b".to_string(), 5433)], "{raw}");
            assert_eq!(url.server(), "pg-a:5432", "connections go to the first until resolved");
            let shown = url.to_string();
            assert!(shown.contains("pg-a:5432,pg-b:5433") && shown.contains("target_session_attrs=primary"), "{shown}");
            assert!(!shown.contains("s3cr3t") && !url.expose().contains("target_session_attrs"), "{shown}");
            let other = url.with_database("scratch");
            assert_eq!((other.hosts().len(), other.database()), (2, "scratch".to_string()));
            assert_eq!(url.only_host(1).server(), "pg-b:5433");
        }
    }
}
