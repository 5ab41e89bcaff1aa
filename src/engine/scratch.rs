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

use super::EngineError;
use super::manifest::{DatabaseProperties, Manifest, RoleInfo};

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

fn query_err(url: &DatabaseUrl, context: String) -> impl FnOnce(sqlx::Error) -> EngineError {
    let url = url.to_string();
    move |source| EngineError::Db(DbError::Query { context, url, source })
}

/// A connection to the target server outside the scratch database.
pub async fn connect_maintenance(target: &DatabaseUrl) -> Result<(PgConnection, DatabaseUrl), EngineError> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let url = target.with_database(db);
        match PgConnection::connect_with(&url.connect_options()).await {
            Ok(conn) => return Ok((conn, url)),
            Err(e) => last = Some((url, e)),
        }
    }
    let (url, source) = last.expect("tried at least one database");
    Err(DbError::Connect { url: url.to_string(), source }.into())
}

pub async fn existing(admin: &mut PgConnection, admin_url: &DatabaseUrl, name: &str) -> Result<Existing, EngineError> {
    let row = sqlx::query(
        "SELECT pg_catalog.shobj_description(oid, 'pg_database'), pg_catalog.pg_get_userbyid(datdba)::text \
         FROM pg_catalog.pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut *admin)
    .await
    .map_err(query_err(admin_url, format!("looking up database {name}")))?;
    Ok(match row {
        None => Existing::Missing,
        Some(row) => match row.get::<Option<String>, _>(0) {
            Some(comment) if comment.starts_with(MARK) => Existing::Scratch,
            _ => Existing::Foreign { owner: row.get(1) },
        },
    })
}

/// Refuses a target that is a system database or a database the engine did not
/// create; returns whether it exists (as the engine's scratch database).
pub async fn check_target(
    admin: &mut PgConnection,
    admin_url: &DatabaseUrl,
    target: &DatabaseUrl,
) -> Result<bool, EngineError> {
    let name = target.database();
    if SYSTEM_DATABASES.contains(&name.as_str()) {
        return Err(EngineError::refused(
            "SystemDatabase",
            format!(
                "the target database {name:?} is a system database and would be dropped; name a scratch database in the target URL"
            ),
        ));
    }
    match existing(admin, admin_url, &name).await? {
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

/// What the target server lacks for a backup, found before anything is touched.
pub struct Needs {
    /// Roles to create (`NOLOGIN`).
    pub missing_roles: Vec<RoleInfo>,
    /// The restoring user is a superuser (else it must be able to create the
    /// missing roles and to hand ownership to the existing ones).
    pub superuser: bool,
}

/// Checks the target server for what the backup needs: every extension, and
/// every role (created when missing unless `require_roles`). Refuses with every
/// missing name at once.
pub async fn check_needs(
    admin: &mut PgConnection,
    admin_url: &DatabaseUrl,
    manifest: &Manifest,
    require_roles: bool,
) -> Result<Needs, EngineError> {
    let err = |what: &str| query_err(admin_url, format!("checking the target server for {what}"));
    let wanted: Vec<String> = manifest.extensions.iter().map(|e| e.name.clone()).collect();
    let missing_extensions: Vec<String> = sqlx::query_scalar(
        "SELECT w FROM unnest($1::text[]) AS w WHERE w NOT IN (SELECT name FROM pg_catalog.pg_available_extensions)",
    )
    .bind(&wanted)
    .fetch_all(&mut *admin)
    .await
    .map_err(err("extensions"))?;
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
            .fetch_all(&mut *admin)
            .await
            .map_err(err("roles"))?;
    let missing_roles: Vec<RoleInfo> = manifest.roles.iter().filter(|r| !present.contains(&r.name)).cloned().collect();
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
    .fetch_one(&mut *admin)
    .await
    .map_err(err("the restoring user"))?;
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
        // Handing an object to a role needs membership in it (roles this restore
        // creates are granted to the restoring user).
        let not_assignable: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1) \
             AND NOT pg_catalog.pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1",
        )
        .bind(&owners)
        .fetch_all(&mut *admin)
        .await
        .map_err(err("role memberships"))?;
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

/// Creates the missing roles as `NOLOGIN` (no passwords travel with a backup)
/// and their memberships among each other; returns their names.
pub async fn create_roles(
    admin: &mut PgConnection,
    admin_url: &DatabaseUrl,
    needs: &Needs,
) -> Result<Vec<String>, EngineError> {
    let mut created = Vec::new();
    for role in &needs.missing_roles {
        let inherit = if role.inherit { "INHERIT" } else { "NOINHERIT" };
        let sql = format!("CREATE ROLE {} NOLOGIN {inherit}", quote_ident(&role.name));
        sqlx::query(&sql)
            .execute(&mut *admin)
            .await
            .map_err(query_err(admin_url, format!("creating role {}", role.name)))?;
        if !needs.superuser {
            // So that the restoring user may hand objects to it.
            let sql = format!("GRANT {} TO CURRENT_USER", quote_ident(&role.name));
            sqlx::query(&sql)
                .execute(&mut *admin)
                .await
                .map_err(query_err(admin_url, format!("joining role {}", role.name)))?;
        }
        created.push(role.name.clone());
    }
    for role in &needs.missing_roles {
        for group in &role.member_of {
            let sql = format!("GRANT {} TO {}", quote_ident(group), quote_ident(&role.name));
            sqlx::query(&sql)
                .execute(&mut *admin)
                .await
                .map_err(query_err(admin_url, format!("making {} a member of {group}", role.name)))?;
        }
    }
    Ok(created)
}

/// Drops the engine's scratch database (if it is there) and creates it anew
/// with the source's encoding and locale, carrying the mark. Sessions on it are
/// closed out first. A database without the mark is refused here too: the
/// check before the download may be minutes old.
pub async fn recreate(
    admin: &mut PgConnection,
    admin_url: &DatabaseUrl,
    target: &DatabaseUrl,
    properties: Option<&DatabaseProperties>,
    backup: &str,
    server_major: u32,
) -> Result<(), EngineError> {
    let name = target.database();
    let ident = quote_ident(&name);
    if check_target(admin, admin_url, target).await? {
        // Refuse new connections first, so nothing reconnects between terminate and drop.
        for (sql, what) in [
            (format!("ALTER DATABASE {ident} WITH ALLOW_CONNECTIONS false"), "closing it to new connections"),
            (
                format!(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = {} AND pid <> pg_catalog.pg_backend_pid()",
                    quote_literal(&name)
                ),
                "terminating its sessions",
            ),
            (format!("DROP DATABASE {ident} WITH (FORCE)"), "dropping it"),
        ] {
            sqlx::query(&sql).execute(&mut *admin).await.map_err(query_err(admin_url, format!("{what}: {name}")))?;
        }
    }
    let create = format!("CREATE DATABASE {ident} TEMPLATE template0{}", create_options(properties, server_major));
    sqlx::query(&create)
        .execute(&mut *admin)
        .await
        .map_err(query_err(admin_url, format!("creating database {name}")))?;
    let mark = format!(
        "{MARK}: created {} by a restore of backup {backup}; drills drop and recreate it",
        Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let comment = format!("COMMENT ON DATABASE {ident} IS {}", quote_literal(&mark));
    sqlx::query(&comment)
        .execute(&mut *admin)
        .await
        .map_err(query_err(admin_url, format!("marking database {name}")))?;
    Ok(())
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

/// Carries the source's database-level settings (`ALTER DATABASE … SET`). A
/// setting the target refuses (unknown there, or needing a privilege the
/// restoring user lacks) is returned as a warning, not a failure.
pub async fn apply_settings(
    target: &DatabaseUrl,
    properties: Option<&DatabaseProperties>,
) -> Result<Vec<String>, EngineError> {
    let Some(p) = properties.filter(|p| !p.settings.is_empty()) else { return Ok(Vec::new()) };
    let (mut admin, _) = connect_maintenance(target).await?;
    let ident = quote_ident(&target.database());
    let mut warnings = Vec::new();
    for setting in &p.settings {
        let Some((name, value)) = setting.split_once('=') else { continue };
        // set_config parses the value as the server's configuration does (lists
        // such as search_path included); FROM CURRENT stores exactly that.
        let applied = async {
            sqlx::query("SELECT pg_catalog.set_config($1, $2, false)")
                .bind(name)
                .bind(value)
                .execute(&mut admin)
                .await?;
            sqlx::query(&format!("ALTER DATABASE {ident} SET {} FROM CURRENT", quote_ident(name)))
                .execute(&mut admin)
                .await
        }
        .await;
        if let Err(e) = applied {
            warnings.push(format!("database setting {setting} was not carried: {e}"));
        }
    }
    Ok(warnings)
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
           AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY c.relpages DESC",
    )
    .fetch_all(&mut conns[0])
    .await
    .map_err(err("listing relations to analyze"))?;
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

/// Drops the scratch database after a drill — only when it carries the mark.
pub async fn drop_scratch(target: &DatabaseUrl) -> Result<(), EngineError> {
    let (mut admin, admin_url) = connect_maintenance(target).await?;
    let name = target.database();
    match existing(&mut admin, &admin_url, &name).await? {
        Existing::Missing => Ok(()),
        Existing::Foreign { .. } => Err(EngineError::refused(
            "TargetNotScratch",
            format!("database {name:?} has no scratch mark any more; it was left in place"),
        )),
        Existing::Scratch => {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name)))
                .execute(&mut admin)
                .await
                .map_err(query_err(&admin_url, format!("dropping scratch database {name}")))?;
            Ok(())
        }
    }
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
