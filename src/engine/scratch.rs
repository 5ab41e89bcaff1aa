//! The scratch database a restore goes into, and what it needs on its server.
//!
//! Safety: the engine drops or restores over only databases it created itself.
//! Every database it creates carries its mark (a database comment, kept in the
//! shared catalog, so it survives restarts); an existing database without the
//! mark is refused, whatever the request says. Usability: the roles the backup
//! names are created when missing (`NOLOGIN`, never altering a role that exists),
//! the database gets the source's encoding, locale and settings, and it is
//! analyzed after the restore.

use std::time::Instant;

use chrono::Utc;
use sqlx::{Connection, PgConnection, Row};

use crate::db::{DatabaseUrl, DbError};

use super::manifest::{DatabaseProperties, Manifest, RoleInfo};
use super::progress::Progress;
use super::tuning::{self, SessionSetting};
use super::{EngineError, inspect};

/// Every database the engine creates has a comment starting with this.
pub const MARK: &str = "artifortress-operator scratch database";

/// The system databases, never a target.
const SYSTEM_DATABASES: [&str; 3] = ["postgres", "template0", "template1"];

/// The target database as found on its server.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    Missing,
    /// Created by this engine (it carries the mark).
    Scratch,
    /// Anybody else's: never dropped or restored over.
    Foreign {
        owner: String,
    },
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn query_err(url: &DatabaseUrl, context: String) -> impl FnOnce(sqlx::Error) -> EngineError + use<> {
    let url = url.to_string();
    move |source| EngineError::Db(DbError::Query { context, url, source })
}

/// The one maintenance session a restore or drill holds on its target server
/// (outside the scratch database) for its whole life. The checks before the
/// download, the roles, the recreate, the settings and the final drop all go
/// through it: one TCP and authentication round trip instead of one per step,
/// and one fewer chance to fail halfway. It opens on first use (so an
/// unreachable server fails the step that needed it), and before each step a
/// ping checks it: a session lost while idle (a long download or pg_restore
/// behind a proxy that drops idle connections) is reopened, and that is said.
/// Every error names the step it happened in.
pub struct Maintenance {
    target: DatabaseUrl,
    progress: Progress,
    session: Option<Session>,
}

struct Session {
    conn: PgConnection,
    /// The maintenance database's address (`postgres`, else `template1`).
    url: DatabaseUrl,
}

impl Session {
    async fn open(target: &DatabaseUrl, step: &str) -> Result<Session, EngineError> {
        let mut last = None;
        for db in ["postgres", "template1"] {
            let url = target.with_database(db);
            match PgConnection::connect_with(&url.connect_options()).await {
                Ok(conn) => return Ok(Session { conn, url }),
                Err(e) => last = Some((url, e)),
            }
        }
        let (url, source) = last.expect("tried at least one database");
        Err(DbError::Query {
            context: format!("{step}: opening the maintenance session"),
            url: url.to_string(),
            source,
        }
        .into())
    }

    fn err<D: std::fmt::Display>(&self, step: &str, what: D) -> impl FnOnce(sqlx::Error) -> EngineError + use<D> {
        query_err(&self.url, format!("{step}: {what}"))
    }
}

impl Maintenance {
    pub fn new(target: &DatabaseUrl, progress: &Progress) -> Maintenance {
        Maintenance { target: target.clone(), progress: progress.clone(), session: None }
    }

    /// The live session for `step`: opened on first use, reopened when lost.
    async fn session(&mut self, step: &str) -> Result<&mut Session, EngineError> {
        if let Some(session) = &mut self.session
            && let Err(e) = session.conn.ping().await
        {
            self.progress.step(format!(
                "the maintenance session on {} was lost ({e}); reopening it for {step}",
                self.target.server()
            ));
            self.session = None;
        }
        if self.session.is_none() {
            self.session = Some(Session::open(&self.target, step).await?);
        }
        Ok(self.session.as_mut().expect("opened above"))
    }

    /// The target server's identity and major version.
    pub async fn identity(&mut self) -> Result<inspect::Identity, EngineError> {
        const STEP: &str = "checking the target";
        let s = self.session(STEP).await?;
        let err = s.err(STEP, "reading the target server identity");
        inspect::identity(&mut s.conn).await.map_err(err)
    }

    /// Refuses a target that is a system database or a database the engine did
    /// not create; returns whether it exists (as the engine's scratch database).
    pub async fn check_target(&mut self) -> Result<bool, EngineError> {
        let target = self.target.clone();
        let name = target.database();
        if SYSTEM_DATABASES.contains(&name.as_str()) {
            return Err(EngineError::refused(
                "SystemDatabase",
                format!(
                    "the target database {name:?} is a system database and would be dropped; name a scratch database in the target URL"
                ),
            ));
        }
        match self.existing("checking the target").await? {
            Existing::Missing => Ok(false),
            Existing::Scratch => Ok(true),
            Existing::Foreign { owner } => Err(EngineError::refused(
                "TargetNotScratch",
                format!(
                    "the target database {name:?} on {} exists and was not created by artifortress-operator (owner {owner}, no scratch mark), so it is never dropped or restored over; choose a database name that does not exist yet (it is created and marked), or drop {name:?} yourself if it is a leftover",
                    target.server()
                ),
            )),
        }
    }

    async fn existing(&mut self, step: &str) -> Result<Existing, EngineError> {
        let name = self.target.database();
        let s = self.session(step).await?;
        let row = sqlx::query(
            "SELECT pg_catalog.shobj_description(oid, 'pg_database'), pg_catalog.pg_get_userbyid(datdba)::text \
             FROM pg_catalog.pg_database WHERE datname = $1",
        )
        .bind(&name)
        .fetch_optional(&mut s.conn)
        .await
        .map_err(s.err(step, format_args!("looking up database {name}")))?;
        Ok(match row {
            None => Existing::Missing,
            Some(row) => match row.get::<Option<String>, _>(0) {
                Some(comment) if comment.starts_with(MARK) => Existing::Scratch,
                _ => Existing::Foreign { owner: row.get(1) },
            },
        })
    }

    /// Checks the target server for what the backup needs: every extension,
    /// and every role (created when missing unless `require_roles`). Refuses
    /// with every missing name at once.
    pub async fn check_needs(&mut self, manifest: &Manifest, require_roles: bool) -> Result<Needs, EngineError> {
        const STEP: &str = "checking the target";
        let s = self.session(STEP).await?;
        let wanted: Vec<String> = manifest.extensions.iter().map(|e| e.name.clone()).collect();
        let missing_extensions: Vec<String> = sqlx::query_scalar(
            "SELECT w FROM unnest($1::text[]) AS w WHERE w NOT IN (SELECT name FROM pg_catalog.pg_available_extensions)",
        )
        .bind(&wanted)
        .fetch_all(&mut s.conn)
        .await
        .map_err(s.err(STEP, "listing the available extensions"))?;
        if !missing_extensions.is_empty() {
            return Err(EngineError::refused(
                "MissingExtensions",
                format!(
                    "the target server lacks the extension(s) {} that backup {} uses; install them on the target server (their packages), then drill again",
                    missing_extensions.join(", "),
                    manifest.backup_name
                ),
            ));
        }

        let names: Vec<String> = manifest.roles.iter().map(|r| r.name.clone()).collect();
        let owners: Vec<String> =
            manifest.roles.iter().filter(|r| r.used_as.iter().any(|u| u == "owner")).map(|r| r.name.clone()).collect();
        let present: Vec<String> =
            sqlx::query_scalar("SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)")
                .bind(&names)
                .fetch_all(&mut s.conn)
                .await
                .map_err(s.err(STEP, "listing the roles present"))?;
        let missing_roles: Vec<RoleInfo> =
            manifest.roles.iter().filter(|r| !present.contains(&r.name)).cloned().collect();
        let missing_names = || missing_roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
        // Predefined roles (pg_*) cannot be created: the server must have them.
        let predefined: Vec<&str> =
            missing_roles.iter().map(|r| r.name.as_str()).filter(|n| n.starts_with("pg_")).collect();
        if !predefined.is_empty() {
            return Err(EngineError::refused(
                "MissingRoles",
                format!(
                    "the target server lacks the predefined role(s) {} that backup {} uses (a newer PostgreSQL has them); restore into a server of the source's major or newer",
                    predefined.join(", "),
                    manifest.backup_name
                ),
            ));
        }
        if require_roles && !missing_roles.is_empty() {
            return Err(EngineError::refused(
                "MissingRoles",
                format!(
                    "the target server lacks the role(s) {} that backup {} needs (owners, grantees, policy roles); create them there, or let the restore create them as NOLOGIN roles (drop --no-create-roles / set createMissingRoles)",
                    missing_names(),
                    manifest.backup_name
                ),
            ));
        }
        let row = sqlx::query(
            "SELECT current_user::text, rolsuper, rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut s.conn)
        .await
        .map_err(s.err(STEP, "reading the restoring user's privileges"))?;
        let (user, superuser, createrole): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if !superuser {
            if !missing_roles.is_empty() && !createrole {
                return Err(EngineError::refused(
                    "MissingRoles",
                    format!(
                        "the target server lacks the role(s) {} and the restoring user {user} may not create roles; grant it CREATEROLE, create them, or restore as a superuser",
                        missing_names()
                    ),
                ));
            }
            // Handing an object to a role needs membership in it (roles this
            // restore creates are granted to the restoring user).
            let not_assignable: Vec<String> = sqlx::query_scalar(
                "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1) \
                 AND NOT pg_catalog.pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1",
            )
            .bind(&owners)
            .fetch_all(&mut s.conn)
            .await
            .map_err(s.err(STEP, "checking role memberships"))?;
            if !not_assignable.is_empty() {
                return Err(EngineError::refused(
                    "RolesNotAssignable",
                    format!(
                        "the restoring user {user} is not a member of the role(s) {} that own or are granted objects in backup {}, so ownership and grants cannot be restored; GRANT them to {user} on the target server, or restore as a superuser",
                        not_assignable.join(", "),
                        manifest.backup_name
                    ),
                ));
            }
        }
        Ok(Needs { missing_roles, superuser })
    }

    /// Creates the missing roles as `NOLOGIN` (no passwords travel with a
    /// backup) and their memberships among each other; returns their names.
    pub async fn create_roles(&mut self, needs: &Needs) -> Result<Vec<String>, EngineError> {
        const STEP: &str = "preparing the target";
        let s = self.session(STEP).await?;
        let mut created = Vec::new();
        for role in &needs.missing_roles {
            let inherit = if role.inherit { "INHERIT" } else { "NOINHERIT" };
            let mut statements = vec![(
                format!("CREATE ROLE {} NOLOGIN {inherit}", quote_ident(&role.name)),
                format!("creating role {}", role.name),
            )];
            if !needs.superuser {
                // So that the restoring user may hand objects to it.
                statements.push((
                    format!("GRANT {} TO CURRENT_USER", quote_ident(&role.name)),
                    format!("joining role {}", role.name),
                ));
            }
            for (sql, what) in statements {
                sqlx::query(&sql).execute(&mut s.conn).await.map_err(s.err(STEP, what))?;
            }
            created.push(role.name.clone());
        }
        for role in &needs.missing_roles {
            for group in &role.member_of {
                let sql = format!("GRANT {} TO {}", quote_ident(group), quote_ident(&role.name));
                let what = format!("making {} a member of {group}", role.name);
                sqlx::query(&sql).execute(&mut s.conn).await.map_err(s.err(STEP, what))?;
            }
        }
        Ok(created)
    }

    /// Drops the engine's scratch database (if it is there) and creates it
    /// anew with the source's encoding and locale, carrying the mark. Sessions
    /// on it are closed out first. A database without the mark is refused here
    /// too: the check before the download may be minutes old.
    pub async fn recreate(
        &mut self,
        properties: Option<&DatabaseProperties>,
        backup: &str,
        server_major: u32,
    ) -> Result<(), EngineError> {
        const STEP: &str = "recreating the scratch database";
        let name = self.target.database();
        let ident = quote_ident(&name);
        let mut statements = Vec::new();
        if self.check_target().await? {
            // Refuse new connections first, so nothing reconnects between terminate and drop.
            statements.push((
                format!("ALTER DATABASE {ident} WITH ALLOW_CONNECTIONS false"),
                "closing it to new connections",
            ));
            statements.push((
                format!(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = {} AND pid <> pg_catalog.pg_backend_pid()",
                    quote_literal(&name)
                ),
                "terminating its sessions",
            ));
            statements.push((format!("DROP DATABASE {ident} WITH (FORCE)"), "dropping it"));
        }
        statements.push((
            format!("CREATE DATABASE {ident} TEMPLATE template0{}", create_options(properties, server_major)),
            "creating it",
        ));
        let mark = format!(
            "{MARK}: created {} by a restore of backup {backup}; drills drop and recreate it",
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        statements.push((format!("COMMENT ON DATABASE {ident} IS {}", quote_literal(&mark)), "marking it"));
        let s = self.session(STEP).await?;
        for (sql, what) in statements {
            sqlx::query(&sql).execute(&mut s.conn).await.map_err(s.err(STEP, format_args!("{what}: {name}")))?;
        }
        Ok(())
    }

    /// The session settings of `wanted` that raise the server's own values
    /// (see [`tuning::raising`]).
    pub async fn raising(&mut self, wanted: &[SessionSetting]) -> Result<Vec<SessionSetting>, EngineError> {
        const STEP: &str = "preparing the target";
        let s = self.session(STEP).await?;
        let err = s.err(STEP, "reading session settings");
        tuning::raising(&mut s.conn, wanted).await.map_err(err)
    }

    /// Carries the source's database-level settings (`ALTER DATABASE … SET`).
    /// A setting the target refuses (unknown there, or needing a privilege the
    /// restoring user lacks) is returned as a warning, not a failure.
    pub async fn apply_settings(
        &mut self,
        properties: Option<&DatabaseProperties>,
    ) -> Result<Vec<String>, EngineError> {
        let Some(p) = properties.filter(|p| !p.settings.is_empty()) else { return Ok(Vec::new()) };
        let ident = quote_ident(&self.target.database());
        let s = self.session("carrying the database settings").await?;
        let mut warnings = Vec::new();
        for setting in &p.settings {
            let Some((name, value)) = setting.split_once('=') else { continue };
            // set_config parses the value as the server's configuration does
            // (lists such as search_path included); FROM CURRENT stores exactly that.
            let applied = async {
                sqlx::query("SELECT pg_catalog.set_config($1, $2, false)")
                    .bind(name)
                    .bind(value)
                    .execute(&mut s.conn)
                    .await?;
                sqlx::query(&format!("ALTER DATABASE {ident} SET {} FROM CURRENT", quote_ident(name)))
                    .execute(&mut s.conn)
                    .await
            }
            .await;
            if let Err(e) = applied {
                warnings.push(format!("database setting {setting} was not carried: {e}"));
            }
        }
        Ok(warnings)
    }

    /// Drops the scratch database after a drill — only when it carries the mark.
    pub async fn drop_scratch(&mut self) -> Result<(), EngineError> {
        const STEP: &str = "dropping the scratch database";
        let name = self.target.database();
        match self.existing(STEP).await? {
            Existing::Missing => Ok(()),
            Existing::Foreign { .. } => Err(EngineError::refused(
                "TargetNotScratch",
                format!("database {name:?} has no scratch mark any more; it was left in place"),
            )),
            Existing::Scratch => {
                let s = self.session(STEP).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name)))
                    .execute(&mut s.conn)
                    .await
                    .map_err(s.err(STEP, format_args!("dropping {name}")))?;
                Ok(())
            }
        }
    }
}

/// What the target server lacks for a backup, found before anything is touched.
pub struct Needs {
    /// Roles to create (`NOLOGIN`).
    pub missing_roles: Vec<RoleInfo>,
    /// The restoring user is a superuser (else it must be able to create the
    /// missing roles and to hand ownership to the existing ones).
    pub superuser: bool,
}

/// `CREATE DATABASE` options that give the source's owner, encoding and locale.
fn create_options(properties: Option<&DatabaseProperties>, server_major: u32) -> String {
    let Some(p) = properties else { return String::new() };
    let mut options = format!(
        " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_literal(&p.encoding),
        quote_literal(&p.collate),
        quote_literal(&p.ctype)
    );
    if let Some(owner) = &p.owner {
        options.push_str(&format!(" OWNER {}", quote_ident(owner)));
    }
    // Servers before 15 know only libc locales.
    if server_major >= 15 && p.locale_provider != "libc" {
        options.push_str(&format!(" LOCALE_PROVIDER {}", p.locale_provider));
        if let Some(locale) = &p.locale {
            let option = if p.locale_provider == "builtin" { "BUILTIN_LOCALE" } else { "ICU_LOCALE" };
            options.push_str(&format!(" {option} {}", quote_literal(locale)));
        }
        if let Some(rules) = p.icu_rules.as_ref().filter(|_| server_major >= 16) {
            options.push_str(&format!(" ICU_RULES {}", quote_literal(rules)));
        }
    }
    options
}

/// `ANALYZE` of every table and materialized view of the restored database,
/// over `jobs` connections at once, so the planner has statistics: only then is
/// the database usable the way the source was. Returns the seconds it took.
pub async fn analyze(target: &DatabaseUrl, jobs: u32) -> Result<f64, EngineError> {
    let started = Instant::now();
    let mut conns = super::inspect::connections(target, jobs.clamp(1, 8) as usize).await?;
    let err = |context: &'static str| query_err(target, context.to_string());
    let relations: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY c.relpages",
    )
    .fetch_all(&mut conns[0])
    .await
    .map_err(err("listing relations to analyze"))?;
    // Largest first (the queue is taken from its end): the biggest table then
    // overlaps the many small ones instead of running alone at the end.
    let queue = std::sync::Mutex::new(relations);
    let workers = conns.iter_mut().map(|conn| {
        let queue = &queue;
        async move {
            loop {
                let Some(relation) = queue.lock().unwrap().pop() else { return Ok::<_, sqlx::Error>(()) };
                sqlx::query(&format!("ANALYZE {relation}")).execute(&mut *conn).await?;
            }
        }
    });
    futures::future::try_join_all(workers).await.map_err(err("analyzing the restored database"))?;
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(provider: &str, locale: Option<&str>) -> DatabaseProperties {
        DatabaseProperties {
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            locale_provider: provider.into(),
            locale: locale.map(str::to_string),
            icu_rules: None,
            settings: Vec::new(),
            owner: None,
        }
    }

    #[test]
    fn the_database_is_created_with_the_source_locale() {
        assert_eq!(create_options(None, 15), "");
        assert_eq!(
            create_options(Some(&props("libc", None)), 15),
            " ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        );
        assert_eq!(
            create_options(Some(&props("icu", Some("en-US"))), 16),
            " ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        assert!(
            create_options(Some(&props("builtin", Some("C.UTF-8"))), 17)
                .ends_with("LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'")
        );
        let owned = DatabaseProperties { owner: Some("kublai".into()), ..props("libc", None) };
        assert!(
            create_options(Some(&owned), 15).ends_with(r#" OWNER "kublai""#),
            "the source's owner owns the restore"
        );
    }

    #[test]
    fn names_and_values_are_quoted() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
