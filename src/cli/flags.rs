//! Flag groups more than one command takes (where backups live, what a restore
//! verifies and where it goes, what a drill is judged by, the blob check,
//! HTTPS, how catalogs print), each defined once, and the parsers of the
//! values they hold.

use std::path::PathBuf;

use artifortress_operator::api::common::DurationString;
use artifortress_operator::artifortress::blobs::DigestCheck;
use artifortress_operator::artifortress::drill::ArtifortressCheck;
use artifortress_operator::db::DatabaseUrl;
use artifortress_operator::engine;
use artifortress_operator::engine::drill::{BackupChoice, DrillRequest};
use artifortress_operator::engine::encryption::{IDENTITIES_ENV, PASSPHRASE_ENV};
use artifortress_operator::engine::manifest::VerifyMode;
use artifortress_operator::engine::restore::RestoreRequest;
use artifortress_operator::engine::verdict::RtoBasis;
use artifortress_operator::store::{self, BackupStore};

use super::failure::{Failure, failed, usage};

#[derive(clap::Args)]
pub struct StoreArg {
    /// Where backups live: file:///path or s3://bucket/prefix?endpoint=…&region=…&path_style=true
    /// (S3 credentials from the AWS environment, never from the URL).
    #[arg(long)]
    pub store: String,
}

impl StoreArg {
    pub async fn open(&self) -> Result<Box<dyn BackupStore>, Failure> {
        store::open(&self.store).await.map_err(usage)
    }
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Tables to verify, as schema.table (repeat or comma-separate); default: all user tables.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// counts (exact row counts) or checksums (counts plus content digests).
    #[arg(long, value_enum, default_value = "counts")]
    verify: VerifyFlag,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum VerifyFlag {
    Counts,
    Checksums,
}

impl VerifyArgs {
    pub fn mode(&self) -> VerifyMode {
        match self.verify {
            VerifyFlag::Counts => VerifyMode::Counts,
            VerifyFlag::Checksums => VerifyMode::Checksums,
        }
    }
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Scratch database to restore into (dropped and recreated): postgres://…/scratch_db
    #[arg(long, env = "TARGET_DATABASE_URL", hide_env_values = true)]
    target: String,
    /// Scratch database name, replacing the database named in --target.
    #[arg(long)]
    target_database: Option<String>,
    /// Parallel pg_restore jobs (default: CPU count).
    #[arg(long)]
    jobs: Option<u32>,
    /// Directory to stage the archive in (pg_restore -j needs a file); default: system temp.
    #[arg(long)]
    staging_dir: Option<PathBuf>,
    /// A setting for pg_restore's sessions on the target server, NAME=VALUE (repeat):
    /// maintenance_work_mem, work_mem, max_parallel_maintenance_workers or
    /// synchronous_commit=off; only ever raised above the server's own. None by
    /// default (measured: no gain when the largest table bounds the restore).
    #[arg(long = "session-setting", value_parser = engine::tuning::SessionSetting::parse)]
    session_settings: Vec<engine::tuning::SessionSetting>,
    /// Refuse, before anything is touched, when the target server lacks a role
    /// the backup needs (default: create it as a NOLOGIN role).
    #[arg(long)]
    no_create_roles: bool,
    /// Copy a table with at least this many MiB of data (and a quarter of all
    /// the data) through --jobs sessions at once instead of pg_restore's one;
    /// 0 never does (default: 64).
    #[arg(long, value_name = "MIB")]
    split_tables_above: Option<u64>,
    /// Read the backup's manifest at exactly this S3 version (a `Backup`'s
    /// status.manifestVersionId): a newer version written over it since is
    /// reported as tampering, never used.
    #[arg(long, value_name = "VERSION_ID")]
    manifest_version: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// What opens encrypted backups (age): only restores and drills hold it.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// An age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes
    /// them; repeat for several): opens backups encrypted to its public key.
    /// Identities are also read from $ARTIFORTRESS_AGE_IDENTITIES.
    #[arg(long = "identity", value_name = "FILE")]
    identities: Vec<PathBuf>,
    /// The passphrase (the file's first line) of backups encrypted with one;
    /// default: $ARTIFORTRESS_BACKUP_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn keyring(&self) -> Result<engine::encryption::Keyring, Failure> {
        let files: Vec<&std::path::Path> = self.identities.iter().map(PathBuf::as_path).collect();
        let inline = std::env::var(IDENTITIES_ENV).ok();
        let inline = inline.as_deref().map(|text| (text, IDENTITIES_ENV));
        engine::encryption::Keyring::load(&files, inline, passphrase(self.passphrase_file.as_deref())?).map_err(usage)
    }
}

/// The passphrase from its file, else from $ARTIFORTRESS_BACKUP_PASSPHRASE.
pub fn passphrase(file: Option<&std::path::Path>) -> Result<Option<engine::encryption::SecretString>, Failure> {
    match file {
        Some(file) => engine::encryption::read_passphrase(file).map(Some).map_err(usage),
        None => {
            Ok(std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty()).map(engine::encryption::SecretString::from))
        }
    }
}

/// Whom new backups are encrypted to (age public keys): the backup side needs
/// nothing that decrypts.
#[derive(clap::Args)]
pub struct SealArgs {
    /// Encrypt new backups to this age recipient (age1…); repeat for several,
    /// e.g. a new key beside the old one while rotating.
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    recipients: Vec<String>,
    /// Encrypt new backups to the recipients in this file (one age1… per line).
    #[arg(long = "encrypt-to-file", value_name = "FILE")]
    recipient_files: Vec<PathBuf>,
}

impl SealArgs {
    /// The encryption of new backups: to the recipients, else with the
    /// passphrase of `passphrase_file` or $ARTIFORTRESS_BACKUP_PASSPHRASE.
    pub fn sealing(
        &self,
        passphrase_file: Option<&std::path::Path>,
    ) -> Result<Option<engine::encryption::Sealing>, Failure> {
        let files: Vec<&std::path::Path> = self.recipient_files.iter().map(PathBuf::as_path).collect();
        let passphrase = match (self.is_empty(), passphrase_file) {
            (_, Some(file)) => passphrase(Some(file))?,
            (true, None) => passphrase(None)?,
            (false, None) => None,
        };
        engine::encryption::Sealing::load(&self.recipients, &files, passphrase).map_err(usage)
    }

    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty() && self.recipient_files.is_empty()
    }
}

impl RestoreArgs {
    pub async fn target_url(&self) -> Result<DatabaseUrl, Failure> {
        let url = database(&self.target).await?;
        Ok(match &self.target_database {
            Some(db) => url.with_database(db),
            None => url,
        })
    }

    pub fn request(&self, backup: String, verify: &VerifyArgs) -> Result<RestoreRequest, Failure> {
        Ok(RestoreRequest {
            backup,
            jobs: self.jobs,
            tables: verify.tables.clone(),
            verify: verify.mode(),
            staging_dir: self.staging_dir.clone(),
            require_roles: self.no_create_roles,
            session_settings: self.session_settings.clone(),
            split_min_bytes: self.split_tables_above.map(|mib| mib.saturating_mul(1 << 20)),
            keys: self.keys.keyring()?,
            manifest_version: self.manifest_version.clone(),
        })
    }
}

/// What a drill is judged by, and whether its scratch database stays.
#[derive(clap::Args)]
pub struct DrillArgs {
    /// Recovery point objective, e.g. 15m.
    #[arg(long)]
    rpo: Option<String>,
    /// Recovery time objective, e.g. 30m.
    #[arg(long)]
    rto: Option<String>,
    /// What the RTO objective judges: `usable` (restored and analyzed) or
    /// `verified` (usable and proven equal by parity).
    #[arg(long, value_enum, default_value = "usable")]
    rto_basis: RtoBasisFlag,
    /// Keep the scratch database after the drill.
    #[arg(long)]
    keep_target: bool,
    #[command(flatten)]
    pub blobs: BlobArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RtoBasisFlag {
    Usable,
    Verified,
}

impl DrillArgs {
    pub fn request(
        &self,
        source: Option<DatabaseUrl>,
        target: DatabaseUrl,
        backup: BackupChoice,
        restore: RestoreRequest,
    ) -> Result<DrillRequest, Failure> {
        Ok(DrillRequest {
            source,
            target,
            backup,
            restore,
            rpo: parse_objective("rpo", self.rpo.clone())?,
            rto: parse_objective("rto", self.rto.clone())?,
            rto_basis: match self.rto_basis {
                RtoBasisFlag::Usable => RtoBasis::Usable,
                RtoBasisFlag::Verified => RtoBasis::Verified,
            },
            keep_target: self.keep_target,
        })
    }
}

/// What a drill checks of Artifortress in the restored database (logical or physical).
#[derive(clap::Args)]
pub struct BlobArgs {
    /// The installation's blob bucket (file:///path or s3://bucket?…, keys from
    /// the bucket root): every blob row of the restored database must have its
    /// object there with its size. Credentials: BLOB_AWS_ACCESS_KEY_ID /
    /// BLOB_AWS_SECRET_ACCESS_KEY, else the AWS chain.
    #[arg(long)]
    blob_store: Option<String>,
    /// Blobs to fetch and hash against their digest (random).
    #[arg(long, default_value_t = 100)]
    blob_sample: u64,
    /// Hash every blob instead of a sample.
    #[arg(long)]
    verify_blob_digests: bool,
    /// `fail`: a missing or corrupt blob fails the drill; `warn`: it is a warning.
    #[arg(long, value_enum, default_value = "fail")]
    blob_policy: BlobPolicyFlag,
    /// The live database (default: --source when given), to say which missing
    /// blobs were deleted since the restore point and what restoring would
    /// take back (token revocations, legal holds, GC runs). Only read.
    #[arg(long, env = "LIVE_DATABASE_URL", hide_env_values = true)]
    live: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BlobPolicyFlag {
    Fail,
    Warn,
}

impl BlobArgs {
    /// The blob bucket's URL, when given.
    pub fn store(&self) -> Option<&str> {
        self.blob_store.as_deref()
    }

    /// The Artifortress checks of a drill; `source` is the live database unless `--live` names another.
    pub async fn check(&self, source: Option<&DatabaseUrl>) -> Result<ArtifortressCheck, Failure> {
        let blob_store = match &self.blob_store {
            Some(url) => Some(open_blob_store(url).await?),
            None => None,
        };
        let live = match &self.live {
            Some(raw) => Some(database(raw).await?),
            None => source.cloned(),
        };
        Ok(ArtifortressCheck {
            blob_store,
            digests: DigestCheck { sample: self.blob_sample, all: self.verify_blob_digests },
            blob_warn_only: self.blob_policy == BlobPolicyFlag::Warn,
            live,
        })
    }
}

/// HTTPS for the HTTP server: a PEM certificate chain and key, as a
/// `kubernetes.io/tls` Secret mounts them (`tls.crt`, `tls.key`); new files are
/// served without a restart.
#[derive(clap::Args)]
pub struct TlsArgs {
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    pub fn files(&self) -> Option<artifortress_operator::server::TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(artifortress_operator::server::TlsFiles { cert, key })
    }
}

/// How catalog commands print: aligned columns for people, JSON for scripts.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

pub fn print_as<T: serde::Serialize>(output: Output, value: &T, table: impl FnOnce(&T) -> String) {
    match output {
        Output::Table => print!("{}", table(value)),
        Output::Json => println!("{}", serde_json::to_string_pretty(value).expect("catalog entries serialize")),
    }
}

/// Bytes from `123`, `100MiB`, `150GiB`, `2TiB` (also `MB`/`GB`/`TB`, decimal).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (number, unit) = v.split_at(digits);
    let number: f64 = number.parse().map_err(|_| format!("{value:?} is not a size such as 150GiB"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => return Err(format!("unknown unit {other:?} in {value:?}; use B, MiB, GiB, TiB, MB, GB or TB")),
    };
    Ok((number * scale) as u64)
}

pub fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, v)) if !key.is_empty() => Ok((key.to_string(), v.to_string())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

/// A duration flag such as `--check-timeout 2s`.
pub fn duration_flag(flag: &str, value: &str) -> Result<std::time::Duration, Failure> {
    DurationString(value.to_string()).parse().map_err(|e| usage(format!("--{flag}: {e}")))
}

/// An optional duration flag (an objective, a heartbeat).
pub fn parse_objective(flag: &str, value: Option<String>) -> Result<Option<std::time::Duration>, Failure> {
    value.map(|v| duration_flag(flag, &v)).transpose()
}

/// A database address from a flag (a libpq URL or an Npgsql string), with
/// several hosts resolved to the one its session attributes ask for.
pub async fn database(raw: &str) -> Result<DatabaseUrl, Failure> {
    DatabaseUrl::parse(raw).map_err(usage)?.resolve().await.map_err(failed)
}

/// The blob store, with the blob bucket's own keys from BLOB_AWS_ACCESS_KEY_ID
/// and BLOB_AWS_SECRET_ACCESS_KEY when set (the backup store uses the AWS_* ones).
pub async fn open_blob_store(url: &str) -> Result<Box<dyn BackupStore>, Failure> {
    let credentials = match (std::env::var("BLOB_AWS_ACCESS_KEY_ID"), std::env::var("BLOB_AWS_SECRET_ACCESS_KEY")) {
        (Ok(access_key_id), Ok(secret_access_key)) => {
            Some(store::StaticCredentials { access_key_id, secret_access_key })
        }
        _ => None,
    };
    store::open_with_credentials(url, credentials).await.map_err(usage)
}

/// Writes a file a command was asked to write, saying which on failure.
pub fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> Result<(), Failure> {
    std::fs::write(path, contents).map_err(|e| failed(format!("writing {}: {e}", path.display())))
}
