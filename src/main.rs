//! `artifortress-operator`: one binary for the cluster and the laptop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use artifortress_operator::api::common::DurationString;
use artifortress_operator::api::job_template::JobTemplate;
use artifortress_operator::artifortress::blobs::DigestCheck;
use artifortress_operator::artifortress::drill::ArtifortressCheck;
use artifortress_operator::artifortress::seed::Scale;
use artifortress_operator::db::{self, DatabaseUrl};
use artifortress_operator::engine::backup::BackupRequest;
use artifortress_operator::engine::drill::{BackupChoice, DrillRequest, RestoreRecord};
use artifortress_operator::engine::manifest::VerifyMode;
use artifortress_operator::engine::progress::{Progress, human_bytes, human_duration};
use artifortress_operator::engine::restore::RestoreRequest;
use artifortress_operator::engine::verdict::RtoBasis;
use artifortress_operator::engine::{self, EngineError};
use artifortress_operator::{crdgen, store, telemetry};

#[derive(Parser)]
#[command(name = "artifortress-operator", version, about = "Provable disaster recovery for Artifortress")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "json", env = "ARTIFORTRESS_LOG_FORMAT")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD with --out-dir).
    Crd {
        /// Write `<name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print the chart's PrometheusRule template, generated from the alert thresholds
    /// (`make alerts` writes it into the chart), or with --dashboard its Grafana dashboard.
    Alerts {
        /// The thresholds file.
        #[arg(long, default_value = artifortress_operator::alerts::THRESHOLDS_FILE)]
        thresholds: PathBuf,
        /// Print the Grafana dashboard JSON instead.
        #[arg(long)]
        dashboard: bool,
    },
    /// Apply our model of the Artifortress schema (migrations/, upstream's levels
    /// 0001–0015) to an empty demo or test database, recording each level in
    /// schema_migrations as upstream's db-migrate.sh does. A database that already
    /// has a schema is refused (one that is the complete model is left as it is).
    Migrate {
        /// postgres://user:password@host:port/dbname or an Npgsql string (Host=…;Database=…)
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database: String,
    },
    /// What an Artifortress database is: its schema level, what the operator's
    /// figures, audit and blob check need and it lacks, its tenants.
    Inspect {
        /// postgres://user:password@host:port/dbname or an Npgsql string
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database: String,
    },
    /// Fill a migrated, empty database like a live Artifortress installation.
    Seed {
        /// postgres://user:password@host:port/dbname or an Npgsql string
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database: String,
        /// small (a few MB), medium (~150 MB), large (~1.5 GB) or xlarge (~12 GB).
        #[arg(long, value_enum, default_value = "small")]
        scale: Scale,
        /// Tenants: 1 (`default`, as upstream deploys it) or several.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1000))]
        tenants: i64,
        /// Truncate every Artifortress table first (destroys existing data).
        #[arg(long)]
        reset: bool,
        /// Also write every seeded object into this bucket (each blob row's
        /// object under its storage_key, its SHA-256 the row's digest; what
        /// duplicate, aborted and uncommitted uploads left): file:///path or
        /// s3://bucket?… (credentials from BLOB_AWS_ACCESS_KEY_ID /
        /// BLOB_AWS_SECRET_ACCESS_KEY, else the AWS chain).
        #[arg(long)]
        blob_store: Option<String>,
    },
    /// Take one consistent backup of a database into a store.
    Backup {
        /// Database to back up: postgres://user:password@host:port/dbname
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: String,
        #[command(flatten)]
        store: StoreArg,
        /// Backup name (default: backup-YYYYMMDD-HHMMSS).
        #[arg(long)]
        name: Option<String>,
        /// A label the manifest records, KEY=VALUE (repeatable); catalog resync
        /// gives a recreated Backup these labels.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// About how large the dump will be, e.g. 150GiB (default: the database's
        /// size). S3 uploads choose their one part size from it: twice this must
        /// fit in 10 000 parts.
        #[arg(long, value_parser = parse_size)]
        expected_size: Option<u64>,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Restore a backup into a scratch database and verify it against the manifest.
    Restore {
        #[command(flatten)]
        store: StoreArg,
        /// Name of the backup to restore.
        #[arg(long)]
        backup: String,
        #[command(flatten)]
        target: RestoreArgs,
        #[command(flatten)]
        verify: VerifyArgs,
        /// After a verified restore of an Artifortress database, put back the
        /// security decisions made since its restore point: the token
        /// revocations and legal holds of this live database (only read), and
        /// close the GC runs the restore point caught mid-run. `none` when the
        /// live database is gone: the runs are closed and the restored audit
        /// log's newest security decisions listed for a person to decide.
        #[arg(long, value_name = "LIVE_DATABASE|none")]
        reapply_from: Option<String>,
    },
    /// A physical base backup of the whole cluster over the replication protocol
    /// (pg_basebackup; the role needs REPLICATION), streamed into a store. A
    /// restore needs the WAL from it on: run `wal` against the source first.
    BaseBackup {
        /// postgres://user:password@host:port/dbname (dbname: where the heartbeat is)
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: String,
        #[command(flatten)]
        store: StoreArg,
        /// Backup name (default: base-YYYYMMDD-HHMMSS).
        #[arg(long)]
        name: Option<String>,
        /// Checkpoint at once (an I/O burst on the source) instead of spread
        /// over checkpoint_completion_target (the backup may wait minutes).
        #[arg(long)]
        fast_checkpoint: bool,
    },
    /// The WAL archiver: streams the source's WAL through a replication slot
    /// into the store, segment by segment and the growing one every few
    /// seconds, until SIGTERM or Ctrl-C. Exit code 1 when a bound stopped it.
    Wal {
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: String,
        #[command(flatten)]
        store: StoreArg,
        /// The replication slot (created, and recorded in the store, when absent).
        #[arg(long, default_value = "artifortress_wal")]
        slot: String,
        /// pg_receivewal's directory (default: one per slot under the temp directory).
        #[arg(long)]
        spool: Option<PathBuf>,
        /// How often the growing segment is stored, e.g. 5s.
        #[arg(long, default_value = "5s")]
        partial_every: String,
        /// Write a heartbeat row into the source (artifortress_dr.heartbeat) this
        /// often, e.g. 2s, so drills can measure the RPO they achieve.
        #[arg(long)]
        heartbeat: Option<String>,
        /// The most WAL the slot may hold back on the source; past it the slot
        /// is dropped (the source's disk is safe, WAL continuity is broken).
        #[arg(long, value_parser = parse_size, default_value = "4GiB")]
        max_retained: u64,
        /// Completed segments the spool may hold while the store is unreachable;
        /// then receiving pauses and the slot keeps the WAL on the source.
        #[arg(long, default_value_t = 8)]
        spool_segments: usize,
        /// How often the status (store: _wal/<system>/status.json) and a log line are written.
        #[arg(long, default_value = "10s")]
        status_every: String,
    },
    /// Point-in-time restore of a base backup and its WAL into a scratch
    /// PostgreSQL instance started here, then a physical drill: pg_verifybackup,
    /// amcheck, the RPO achieved (from the heartbeat). Exit code 0 = passed.
    Pitr {
        #[command(flatten)]
        store: StoreArg,
        /// The base backup (default: the newest one before the target).
        #[arg(long)]
        backup: Option<String>,
        /// The scratch instance's directory: new, empty, or one of ours.
        #[arg(long)]
        dir: PathBuf,
        /// The scratch instance's port (its Unix socket only; must be free).
        #[arg(long, default_value_t = 54329)]
        port: u16,
        /// latest, a time (RFC 3339), an LSN, or random:<window> (a time drawn in that window before now, e.g. random:24h).
        #[arg(long, default_value = "latest")]
        target: String,
        /// Recovery point objective: the heartbeat recovered must be this recent.
        #[arg(long)]
        rpo: Option<String>,
        /// Recovery time objective: from the drill's start to the promoted instance.
        #[arg(long)]
        rto: Option<String>,
        /// Keep the instance running after the drill (stop it with pg_ctl, or the next pitr into the same --dir).
        #[arg(long)]
        keep: bool,
        /// How long replay may take.
        #[arg(long, default_value = "30m")]
        timeout: String,
        /// Names the verdict (`<base>/drills/<drill>.json`; default pitr-<time>).
        #[arg(long)]
        drill: Option<String>,
        #[command(flatten)]
        blobs: BlobArgs,
    },
    /// The operator: the controllers (while this replica holds the leader lease)
    /// and the HTTP server (/health/live, /health/ready, /metrics) on every replica.
    Run(Box<RunArgs>),
    /// The HTTP server for one installation, without Kubernetes controllers:
    /// /health/live, /health/ready, /v1/admin/ops/summary, /metrics.
    Serve(ServeArgs),
    /// A full recovery drill: backup (or existing), restore, parity, RPO/RTO, report.
    /// Exit code 0 = passed, 1 = drill failed, 2 = bad usage or configuration.
    Drill {
        /// Database to back up for a fresh drill: postgres://…
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Restore this existing backup instead of taking a fresh one.
        #[arg(long, conflicts_with = "latest")]
        backup: Option<String>,
        /// Restore the newest complete backup in the store.
        #[arg(long)]
        latest: bool,
        #[command(flatten)]
        target: RestoreArgs,
        #[command(flatten)]
        verify: VerifyArgs,
        #[command(flatten)]
        objectives: DrillArgs,
        /// Write the Markdown report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write the JSON verdict (the stored format, mirrored into RecoveryDrill.status) here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// What a store holds: list, show or delete backups (no cluster needed).
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// The drills a store's verdicts record.
    Drills {
        #[command(subcommand)]
        command: DrillsCommand,
    },
    /// Which PostgreSQL majors can be backed up and restored into with the
    /// client tools installed here (ARTIFORTRESS_PG_BINDIR: a `:`-separated list
    /// of bin directories; default: /usr/lib/postgresql/*/bin and PATH).
    Tools,
    /// One step of a drill run by the operator's Jobs. `restore` restores the
    /// backup into the scratch database and stores a record of it; `verify`
    /// compares it with the manifest, measures RPO/RTO, cleans up and stores the
    /// verdict and report next to the backup. Exit code 0 = step passed.
    DrillStep {
        #[arg(value_enum)]
        step: DrillStepKind,
        #[command(flatten)]
        store: StoreArg,
        /// The backup the drill restores.
        #[arg(long)]
        backup: String,
        /// Drill identifier: names the record, verdict and report in the store.
        #[arg(long)]
        drill: String,
        /// When the drill started (RFC 3339); the RPO of an existing backup is measured from it.
        #[arg(long)]
        started_at: chrono::DateTime<chrono::Utc>,
        /// The backup was taken for this drill.
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        target: RestoreArgs,
        #[command(flatten)]
        verify: VerifyArgs,
        #[command(flatten)]
        objectives: DrillArgs,
    },
}

/// What a drill is judged by, and whether its scratch database stays.
#[derive(clap::Args)]
struct DrillArgs {
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
    blobs: BlobArgs,
}

/// What a drill checks of Artifortress in the restored database (logical or physical).
#[derive(clap::Args)]
struct BlobArgs {
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

impl BlobArgs {
    /// The Artifortress checks of a drill; `source` is the live database unless `--live` names another.
    async fn check(&self, source: Option<&DatabaseUrl>) -> Result<ArtifortressCheck, Failure> {
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BlobPolicyFlag {
    Fail,
    Warn,
}

impl DrillArgs {
    fn request(
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum RtoBasisFlag {
    Usable,
    Verified,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DrillStepKind {
    Restore,
    Verify,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Image of the engine Jobs: the operator's own image.
    #[arg(long, env = "OPERATOR_IMAGE")]
    image: String,
    /// Watch one namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the HTTP server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Kubeconfig to use (default: in-cluster configuration or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "artifortress-operator")]
    lease_name: String,
    /// This replica's name in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// A standby takes over when the leader has not renewed for this long.
    #[arg(long, default_value = "15s")]
    lease_duration: String,
    /// How often the leader renews the Lease.
    #[arg(long, default_value = "5s")]
    renew_every: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve plain HTTP (no --tls-cert/--tls-key): only when chosen explicitly.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    plain_http: bool,
    /// Pod settings of every engine Job, under each installation's
    /// `jobTemplate`: a JSON object of the same shape (the chart's `jobDefaults`).
    #[arg(long, env = "JOB_DEFAULTS", default_value = "{}", value_parser = job_template_json)]
    job_defaults: JobTemplate,
}

fn job_template_json(s: &str) -> Result<JobTemplate, String> {
    serde_json::from_str(s)
        .map_err(|e| format!("not a jobTemplate object ({e}); e.g. {{\"priorityClassName\": \"batch\"}}"))
}

/// HTTPS for the HTTP server: a PEM certificate chain and key, as a
/// `kubernetes.io/tls` Secret mounts them (`tls.crt`, `tls.key`); new files are
/// served without a restart.
#[derive(clap::Args)]
struct TlsArgs {
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn files(&self) -> Option<artifortress_operator::server::TlsFiles> {
        let (cert, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(artifortress_operator::server::TlsFiles { cert, key })
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The installation's database: postgres://user:password@host:port/dbname
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database: String,
    /// The installation's object storage, checked by readiness: s3://bucket/prefix?… or file:///path
    #[arg(long)]
    object_store: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Name of the installation (in audit rows, metrics and `?installation=`).
    #[arg(long, default_value = "default")]
    installation: String,
    /// Tokens file for the admin API: lines `sha256:<hex of the token's SHA-256> <admin|viewer> <actor>`.
    #[arg(long, conflicts_with = "kubeconfig")]
    tokens_file: Option<PathBuf>,
    /// Decide admin access with Kubernetes TokenReview and SubjectAccessReview
    /// (get artifortresses/opssummary in --namespace), using this kubeconfig.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace whose RBAC decides who is admin (with --kubeconfig).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// SLO thresholds as YAML (the `slo` block of an Artifortress spec); default thresholds otherwise.
    #[arg(long)]
    slo_thresholds: Option<PathBuf>,
    /// Bound on each readiness check.
    #[arg(long, default_value = "2s")]
    check_timeout: String,
    /// How long a readiness result is reused.
    #[arg(long, default_value = "2s")]
    ready_cache: String,
    /// How often the ops-summary metrics are refreshed.
    #[arg(long, default_value = "30s")]
    refresh_interval: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// How often rejected ops-summary requests (401/403) are written to the
    /// audit log, one counted row per actor and reason.
    #[arg(long, default_value = "5s")]
    audit_flush: String,
    /// Bound on every HTTP request.
    #[arg(long, default_value = "15s")]
    request_timeout: String,
    /// How long one read of the ops signals answers the ops-summary requests that
    /// follow (concurrent requests share it; every request is still audited); 0s
    /// reads for every request.
    #[arg(long, default_value = "1s")]
    summary_max_age: String,
}

#[derive(Subcommand)]
enum BackupsCommand {
    /// Every backup: snapshot time, source, size, verify mode, whether it is
    /// complete, and its last drill's verdict with RTO and RPO.
    List {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// One backup's manifest, tables and drills.
    Show {
        #[command(flatten)]
        store: StoreArg,
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a backup: its manifest first, then its data. The newest complete
    /// backup is refused without --force.
    Delete {
        #[command(flatten)]
        store: StoreArg,
        name: String,
        /// Also delete the newest complete backup.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Subcommand)]
enum DrillsCommand {
    /// Every stored drill verdict, oldest first.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Only the drills of this backup.
        #[arg(long)]
        backup: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// The RTO and RPO of the last 20 drills against their objectives, as SVG.
    Chart {
        #[command(flatten)]
        store: StoreArg,
        /// Only the drills of this backup.
        #[arg(long)]
        backup: Option<String>,
        /// Where to write the SVG.
        #[arg(long)]
        out: PathBuf,
    },
}

/// How catalog commands print: aligned columns for people, JSON for scripts.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

fn print_as<T: serde::Serialize>(output: Output, value: &T, table: impl FnOnce(&T) -> String) {
    match output {
        Output::Table => print!("{}", table(value)),
        Output::Json => println!("{}", serde_json::to_string_pretty(value).expect("catalog entries serialize")),
    }
}

#[derive(clap::Args)]
struct StoreArg {
    /// Where backups live: file:///path or s3://bucket/prefix?endpoint=…&region=…&path_style=true
    /// (S3 credentials from the AWS environment, never from the URL).
    #[arg(long)]
    store: String,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Tables to verify, as schema.table (repeat or comma-separate); default: all user tables.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
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
    fn mode(&self) -> VerifyMode {
        match self.verify {
            VerifyFlag::Counts => VerifyMode::Counts,
            VerifyFlag::Checksums => VerifyMode::Checksums,
        }
    }
}

#[derive(clap::Args)]
struct RestoreArgs {
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
}

impl RestoreArgs {
    async fn target_url(&self) -> Result<DatabaseUrl, Failure> {
        let url = database(&self.target).await?;
        Ok(match &self.target_database {
            Some(db) => url.with_database(db),
            None => url,
        })
    }

    fn request(&self, backup: String, verify: &VerifyArgs) -> RestoreRequest {
        RestoreRequest {
            backup,
            jobs: self.jobs,
            tables: verify.tables.clone(),
            verify: verify.mode(),
            staging_dir: self.staging_dir.clone(),
            require_roles: self.no_create_roles,
            session_settings: self.session_settings.clone(),
        }
    }
}

/// Bytes from `123`, `100MiB`, `150GiB`, `2TiB` (also `MB`/`GB`/`TB`, decimal).
fn parse_size(value: &str) -> Result<u64, String> {
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

fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, v)) if !key.is_empty() => Ok((key.to_string(), v.to_string())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

fn duration_flag(flag: &str, value: &str) -> Result<std::time::Duration, Failure> {
    DurationString(value.to_string()).parse().map_err(|e| usage(format!("--{flag}: {e}")))
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    use artifortress_operator::installations::{self, Installation, Installations};
    use artifortress_operator::server::{self, AppState, ServerConfig, auth};
    use std::sync::Arc;

    let database_url = database(&args.database).await?;
    let object_store = store::open(&args.object_store).await.map_err(usage)?;
    let config = ServerConfig {
        check_timeout: duration_flag("check-timeout", &args.check_timeout)?,
        ready_cache: duration_flag("ready-cache", &args.ready_cache)?,
        audit_flush: duration_flag("audit-flush", &args.audit_flush)?,
        request_timeout: duration_flag("request-timeout", &args.request_timeout)?,
        summary_max_age: duration_flag("summary-max-age", &args.summary_max_age)?,
    };
    let refresh = duration_flag("refresh-interval", &args.refresh_interval)?;
    let slo = match &args.slo_thresholds {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))?;
            serde_saphyr::from_str(&text).map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))?
        }
        None => Default::default(),
    };
    let (authenticator, kube) = match (&args.tokens_file, &args.kubeconfig) {
        (Some(path), None) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| usage(format!("--tokens-file {}: {e}", path.display())))?;
            (auth::Authenticator::TokensFile(auth::parse_tokens_file(path, &text).map_err(usage)?), None)
        }
        (None, Some(path)) => {
            let client = kube_client(Some(path)).await?;
            (auth::Authenticator::kubernetes(client.clone()), Some(client))
        }
        _ => return Err(usage("choose how admins are recognised: --tokens-file FILE or --kubeconfig FILE")),
    };
    let installation = Arc::new(Installation {
        name: args.installation.clone(),
        namespace: args.namespace.clone(),
        pool: installations::lazy_pool(&database_url, config.check_timeout),
        database_url,
        object_store,
        slo,
    });
    let metrics = Arc::new(artifortress_operator::metrics::Metrics::new());
    let installations = Arc::new(Installations::new(vec![installation.clone()]));
    let state = Arc::new(AppState::new(installations, authenticator, metrics.clone(), config, kube));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh);
        loop {
            tick.tick().await;
            match artifortress_operator::artifortress::ops::probe(&installation.database_url).await {
                Ok(probe) => metrics.record_ops(&installation.name, &probe.summary),
                Err(e) => tracing::warn!(error = %e, "refreshing ops-summary metrics failed"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    let tls = args.tls.files();
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("serve: listening on {scheme}://{}", listener.local_addr().map_err(failed)?);
    server::serve(listener, state, tls, shutdown_signal()).await.map_err(failed)
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, Failure> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| usage(format!("--kubeconfig: {e}")))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| usage(format!("--kubeconfig: {e}")))?
        }
        None => kube::Config::infer().await.map_err(|e| usage(format!("no Kubernetes configuration found: {e}")))?,
    };
    kube::Client::try_from(config).map_err(|e| usage(format!("Kubernetes client: {e}")))
}

async fn run_operator(args: RunArgs) -> Result<(), Failure> {
    use artifortress_operator::controller::{self, Context, leader};
    use artifortress_operator::server::{self, AppState, ServerConfig, auth};
    use std::sync::Arc;

    let tls = args.tls.files();
    if tls.is_none() && !args.plain_http {
        return Err(usage("choose HTTPS (--tls-cert FILE --tls-key FILE) or, explicitly, --plain-http"));
    }
    let lease_duration = duration_flag("lease-duration", &args.lease_duration)?;
    let renew_every = duration_flag("renew-every", &args.renew_every)?;
    if renew_every >= lease_duration {
        return Err(usage("--renew-every must be shorter than --lease-duration"));
    }
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let metrics = Arc::new(artifortress_operator::metrics::Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let installations = Arc::new(artifortress_operator::installations::Installations::default());
    let state = Arc::new(AppState::new(
        installations.clone(),
        auth::Authenticator::kubernetes(client.clone()),
        metrics.clone(),
        ServerConfig::default(),
        Some(client.clone()),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    let server = tokio::spawn(server::serve(listener, state, tls, stopped()));

    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "artifortress-operator".into());
    let identity = args.identity.unwrap_or(host);
    let elector = leader::Elector::new(
        client.clone(),
        leader::LeaseConfig {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity: identity.clone(),
            lease_duration,
            renew_every,
        },
    );
    // Every replica answers for every installation; only the leader reconciles.
    let mut ctx = Context::new(client, args.image, metrics);
    ctx.installations = installations;
    ctx.job_defaults = args.job_defaults;
    let ctx = Arc::new(ctx);
    tokio::spawn(controller::registry::keep_current(ctx.clone(), args.namespace.clone()));
    tracing::info!(identity, "waiting for the leader lease");
    let since = tokio::select! {
        since = elector.acquire() => since,
        _ = stopped() => {
            let _ = server.await;
            return Ok(());
        }
    };
    tracing::info!(identity, "leading: controllers start");
    ctx.leading.store(true, std::sync::atomic::Ordering::Relaxed);
    // Losing the lease drops the controllers (and their calls in flight) at once.
    let outcome = tokio::select! {
        _ = controller::run_all(ctx, args.namespace, stopped()) => Ok(()),
        _ = elector.hold(since) => Err(failed("lost the leader lease; exiting so that only the new leader reconciles")),
    };
    if outcome.is_ok() {
        // A lease that could not be renewed is not ours to give up.
        elector.release().await;
        let _ = server.await;
    }
    outcome
}

/// Resolves on SIGTERM (kubelet) or Ctrl-C.
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// The blob store, with the blob bucket's own keys from BLOB_AWS_ACCESS_KEY_ID
/// and BLOB_AWS_SECRET_ACCESS_KEY when set (the backup store uses the AWS_* ones).
async fn open_blob_store(url: &str) -> Result<Box<dyn store::BackupStore>, Failure> {
    let credentials = match (std::env::var("BLOB_AWS_ACCESS_KEY_ID"), std::env::var("BLOB_AWS_SECRET_ACCESS_KEY")) {
        (Ok(access_key_id), Ok(secret_access_key)) => {
            Some(store::StaticCredentials { access_key_id, secret_access_key })
        }
        _ => None,
    };
    store::open_with_credentials(url, credentials).await.map_err(usage)
}

/// A database address from a flag (a libpq URL or an Npgsql string), with
/// several hosts resolved to the one its session attributes ask for.
async fn database(raw: &str) -> Result<DatabaseUrl, Failure> {
    DatabaseUrl::parse(raw).map_err(usage)?.resolve().await.map_err(failed)
}

fn engine_failure(e: EngineError) -> Failure {
    if e.is_usage() { usage(e) } else { failed(e) }
}

fn parse_objective(flag: &str, value: Option<String>) -> Result<Option<std::time::Duration>, Failure> {
    value.map(|v| DurationString(v).parse().map_err(|e| usage(format!("--{flag}: {e}")))).transpose()
}

/// Exit codes shared by every command: 0 success, 1 the operation failed,
/// 2 bad usage or configuration.
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    artifortress_operator::install_crypto_provider();
    telemetry::init(cli.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            write_termination_message(&message);
            ExitCode::from(code)
        }
    }
}

/// In an engine Job's pod, the error also goes to the container's termination
/// message (the kubelet keeps at most 4 KiB of it), where the operator reads
/// why the step failed. The message is the redacted one: a failed tool's whole
/// output stays in the log.
fn write_termination_message(message: &str) {
    let Some(path) = std::env::var_os(artifortress_operator::controller::jobs::TERMINATION_LOG_ENV) else { return };
    let mut cut = message.len().min(4000);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Err(e) = std::fs::write(&path, &message[..cut]) {
        eprintln!("could not write the termination message to {}: {e}", path.to_string_lossy());
    }
}

struct Failure {
    code: u8,
    message: String,
}

fn usage(e: impl ToString) -> Failure {
    Failure { code: EXIT_USAGE, message: e.to_string() }
}

fn failed(e: impl ToString) -> Failure {
    Failure { code: EXIT_FAILED, message: e.to_string() }
}

async fn backups_command(command: BackupsCommand) -> Result<(), Failure> {
    use engine::catalog;
    match command {
        BackupsCommand::List { store, output } => {
            let store = store::open(&store.store).await.map_err(usage)?;
            let backups = catalog::backups(store.as_ref()).await.map_err(engine_failure)?;
            print_as(output, &backups, |b| catalog::backups_table(b));
        }
        BackupsCommand::Show { store, name, output } => {
            let store = store::open(&store.store).await.map_err(usage)?;
            let backup = catalog::backup(store.as_ref(), &name).await.map_err(engine_failure)?;
            print_as(output, &backup, catalog::show_text);
        }
        BackupsCommand::Delete { store, name, force, output } => {
            let store = store::open(&store.store).await.map_err(usage)?;
            let deleted = catalog::delete(store.as_ref(), &name, force).await.map_err(engine_failure)?;
            print_as(output, &deleted, |d| {
                let mut out =
                    format!("deleted {}: {} objects, {}\n", d.name, d.objects, engine::progress::human_bytes(d.bytes));
                if let Some(wal) = &d.wal {
                    let bytes = engine::progress::human_bytes(wal.bytes);
                    out += &format!("WAL no remaining base backup needs: {} segments, {bytes}\n", wal.segments);
                }
                out
            });
        }
    }
    Ok(())
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Crd { out_dir: None } => {
            print!("{}", crdgen::all_crds_yaml());
            Ok(())
        }
        Command::Crd { out_dir: Some(dir) } => {
            for path in
                crdgen::write_crds(&dir).map_err(|e| failed(format!("writing CRDs to {}: {e}", dir.display())))?
            {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Alerts { thresholds, dashboard } => {
            let text = std::fs::read_to_string(&thresholds)
                .map_err(|e| usage(format!("--thresholds {}: {e}", thresholds.display())))?;
            let parsed = artifortress_operator::alerts::parse(&text).map_err(usage)?;
            if dashboard {
                print!("{}", artifortress_operator::dashboard::render(&parsed));
            } else {
                print!("{}", artifortress_operator::alerts::render(&parsed));
            }
            Ok(())
        }
        Command::Migrate { database: raw } => {
            use artifortress_operator::artifortress::schema::{self, MigrateError, Migrated};
            let url = database(&raw).await?;
            match schema::migrate(&url).await {
                Ok(Migrated::Applied { level, versions }) => {
                    eprintln!("migrate: {url} is at level {level} ({versions} versions applied)")
                }
                Ok(Migrated::AlreadyCurrent) => {
                    eprintln!("migrate: {url} is already at level {}: nothing to do", schema::model_level())
                }
                Err(e @ MigrateError::NotEmpty { .. }) => return Err(usage(e)),
                Err(e) => return Err(failed(e)),
            }
            Ok(())
        }
        Command::Inspect { database: raw } => {
            use artifortress_operator::artifortress::{ops, schema};
            let url = database(&raw).await?;
            let ops::Probe { schema: shape, summary, gc } = ops::probe(&url).await.map_err(failed)?;
            println!("database   {url}");
            println!("level      {}", shape.level.as_deref().unwrap_or("none recorded (no schema_migrations)"));
            println!("versions   {} recorded; this operator knows up to {}", shape.versions, schema::model_level());
            for v in &shape.unknown_versions {
                println!("           newer than this operator: {v}");
            }
            println!("supported  {}", if shape.is_supported() { "yes: every figure and the audit" } else { "no" });
            for m in &shape.missing {
                println!("missing    {m}");
            }
            println!(
                "audit      correlation_id {}",
                if shape.audit_correlation { "recorded" } else { "not in this schema" }
            );
            if let Some(gc) = &gc {
                println!(
                    "gc         {} run(s) may have deleted blobs, the newest started {}; {} tombstoned version(s) past retention",
                    gc.deleting_runs.len(),
                    gc.deleting_runs.first().map_or("never".to_string(), |t| t.to_rfc3339()),
                    gc.expired_tombstones
                );
            }
            println!("tenants    {}", summary.tenants.len());
            for t in &summary.tenants {
                let figures: Vec<String> = t
                    .figures
                    .named()
                    .iter()
                    .map(|(n, v)| format!("{n}={}", v.map_or("n/a".into(), |v| v.to_string())))
                    .collect();
                println!("  {:<20} {}", t.name(), figures.join(" "));
            }
            Ok(())
        }
        Command::Seed { database: raw, scale, tenants, reset, blob_store } => {
            use artifortress_operator::artifortress::{blobs, seed};
            let url = database(&raw).await?;
            let blob_store = match &blob_store {
                Some(u) => Some(open_blob_store(u).await?),
                None => None,
            };
            let pool = db::connect(&url, 2).await.map_err(failed)?;
            eprintln!("seed: filling {url} at scale {scale:?}, {tenants} tenant(s)");
            let sizes = scale.sizes(tenants);
            let report = seed::seed(&pool, &url, sizes, reset).await.map_err(failed)?;
            if let Some(store) = &blob_store {
                let progress = Progress::new("seed");
                progress.step(format!("writing blob objects into {}", store.url()));
                let n = blobs::write_seed_objects(&url, &sizes, store.as_ref(), 32, &progress)
                    .await
                    .map_err(engine_failure)?;
                progress.step(format!("{n} blob objects written"));
            }
            for (table, rows) in &report.rows {
                eprintln!("seed: {table:<26} {rows:>9} rows");
            }
            eprintln!(
                "seed: done in {:.1} s, database size {:.1} MiB",
                report.seconds,
                report.database_bytes as f64 / 1_048_576.0
            );
            Ok(())
        }
        Command::Backup { source, store, name, labels, expected_size, verify } => {
            let source = database(&source).await?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let name = match name {
                Some(name) => name,
                None => {
                    engine::backup::default_name(store.as_ref(), chrono::Utc::now()).await.map_err(engine_failure)?
                }
            };
            let labels = labels.into_iter().collect();
            let request = BackupRequest { name, verify: verify.mode(), tables: verify.tables, labels, expected_size };
            let m = engine::backup::run(&source, store.as_ref(), &request, &Progress::new("backup"))
                .await
                .map_err(engine_failure)?;
            println!("backup     {}", m.backup_name);
            println!("location   {}", store.location(&format!("{}/", m.backup_name)));
            println!(
                "source     {} on server {} (PostgreSQL {})",
                m.source.database, m.source.system_identifier, m.source.server_version
            );
            println!("snapshot   {}", m.snapshot_time.to_rfc3339());
            println!(
                "duration   {}",
                human_duration((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0)
            );
            println!(
                "dump       {} (archive {}), sha256 {}",
                human_bytes(m.dump.size_bytes),
                human_bytes(m.dump.archive_bytes),
                m.dump.sha256
            );
            println!("tables     {} ({} rows)", m.tables.len(), m.tables.iter().map(|t| t.rows).sum::<i64>());
            Ok(())
        }
        Command::BaseBackup { source, store, name, fast_checkpoint } => {
            use engine::physical::base;
            let source = database(&source).await?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let name = name.unwrap_or_else(|| chrono::Utc::now().format("base-%Y%m%d-%H%M%S").to_string());
            let checkpoint = if fast_checkpoint { base::Checkpoint::Fast } else { base::Checkpoint::Spread };
            let m = base::run(&source, store.as_ref(), &name, checkpoint, &Progress::new("base-backup"))
                .await
                .map_err(engine_failure)?;
            println!("backup     {} (physical)", m.backup_name);
            println!("location   {}", store.location(&format!("{}/", m.backup_name)));
            println!("source     system {} (PostgreSQL {})", m.source.system_identifier, m.source.server_version);
            println!(
                "duration   {}",
                human_duration((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0)
            );
            println!(
                "base       {} (tar {}), sha256 {}",
                human_bytes(m.base.size_bytes),
                human_bytes(m.base.tar_bytes),
                m.base.sha256
            );
            println!("wal        {} to {} on timeline {}", m.start_lsn, m.end_lsn, m.timeline);
            Ok(())
        }
        Command::Wal {
            source,
            store,
            slot,
            spool,
            partial_every,
            heartbeat,
            max_retained,
            spool_segments,
            status_every,
        } => {
            use engine::physical::wal;
            let source = database(&source).await?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let duration = |flag: &str, v: String| parse_objective(flag, Some(v)).map(Option::unwrap);
            let options = wal::WalOptions {
                spool: spool.unwrap_or_else(|| std::env::temp_dir().join(format!("artifortress-wal-{slot}"))),
                slot,
                partial_every: duration("partial-every", partial_every)?,
                heartbeat: parse_objective("heartbeat", heartbeat)?,
                max_retained,
                max_spooled: spool_segments.max(1),
                status_every: duration("status-every", status_every)?,
            };
            wal::run(&source, store.as_ref(), &options, &Progress::new("wal"), shutdown_signal())
                .await
                .map_err(engine_failure)
        }
        Command::Pitr { store, backup, dir, port, target, rpo, rto, keep, timeout, drill, blobs } => {
            use engine::physical::pitr;
            let store = store::open(&store.store).await.map_err(usage)?;
            let target: pitr::Target = target.parse().map_err(usage)?;
            let request = pitr::PhysicalDrill {
                restore: pitr::PitrRequest {
                    backup,
                    dir,
                    port,
                    target,
                    timeout: parse_objective("timeout", Some(timeout))?.unwrap(),
                },
                rpo: parse_objective("rpo", rpo)?,
                rto: parse_objective("rto", rto)?,
                keep,
                drill: drill.unwrap_or_else(|| chrono::Utc::now().format("pitr-%Y%m%d-%H%M%S-%3f").to_string()),
                check: Some(Box::new(blobs.check(None).await?)),
            };
            let drill = request.drill.clone();
            let outcome = pitr::drill(store.as_ref(), request, &Progress::new("pitr")).await.map_err(engine_failure)?;
            let v = &outcome.verdict;
            let base = v.backup.as_ref().expect("a physical verdict names its base");
            println!(
                "drill      {drill} (physical), verdict in {}",
                store.location(&format!("{}/drills/{drill}.json", base.name))
            );
            if let Some((r, found)) = &outcome.restored {
                println!(
                    "backup     {} (physical), {} WAL segments ({})",
                    base.name,
                    r.segments,
                    human_bytes(r.wal_bytes)
                );
                println!(
                    "timing     download+verify {:.2} s, pg_verifybackup {:.2} s, replay+promote {:.2} s, amcheck {:.2} s ({} indexes)",
                    r.download_seconds,
                    r.verify_seconds,
                    r.replay_seconds,
                    found.amcheck_seconds,
                    found.indexes_checked
                );
                if keep {
                    println!(
                        "instance   running: psql -h {} -p {} -U {} {}",
                        r.instance.dir.display(),
                        r.instance.port,
                        r.instance.superuser,
                        r.manifest.source.database
                    );
                }
            }
            if let Some(rto) = &v.rto {
                println!("rto        {} ({:.3} s to promoted)", rto.summary, rto.measured_seconds);
            }
            match &v.rpo {
                Some(rpo) => println!(
                    "rpo        {:.3} s ({}; newest heartbeat recovered {})",
                    rpo.measured_seconds,
                    rpo.summary,
                    base.snapshot_time.to_rfc3339()
                ),
                None => println!("rpo        not measured"),
            }
            for warning in &v.warnings {
                eprintln!("warning: {warning}");
            }
            println!("verdict    {:?}", v.result);
            match v.failures.first() {
                None => Ok(()),
                Some(first) => {
                    for failure in &v.failures {
                        eprintln!("failure: {failure}");
                    }
                    Err(failed(format!("drill failed ({}): {first}", v.reason.as_deref().unwrap_or("Failed"))))
                }
            }
        }
        Command::Restore { store, backup, target, verify, reapply_from } => {
            let target_url = target.target_url().await?;
            let live = match reapply_from.as_deref() {
                None | Some("none") => None,
                Some(raw) => Some(database(raw).await?),
            };
            let store = store::open(&store.store).await.map_err(usage)?;
            let outcome = engine::restore::run(
                store.as_ref(),
                &target_url,
                &target.request(backup, &verify),
                &Progress::new("restore"),
            )
            .await
            .map_err(engine_failure)?;
            for p in &outcome.parity {
                let restored = p.restored.map_or("missing".to_string(), |r| r.to_string());
                println!(
                    "{:<50} expected {:>10}  restored {:>10}  {}",
                    p.table,
                    p.expected,
                    restored,
                    if p.matches { "ok" } else { "MISMATCH" }
                );
            }
            let restored = &outcome.restored;
            println!(
                "timings    download+verify {:.3} s, recreate+pg_restore {:.3} s, settings+analyze {:.3} s, parity {:.3} s",
                restored.download_seconds, restored.restore_seconds, restored.analyze_seconds, outcome.parity_seconds
            );
            let phases = &restored.phases;
            print!(
                "pg_restore schema {:.3} s, data {:.3} s, indexes and constraints after the data {:.3} s",
                phases.schema_seconds, phases.data_seconds, phases.indexes_seconds
            );
            match &phases.largest_table {
                Some(t) => println!(
                    "; largest table {} ({} in the archive) {:.3} s",
                    t.name,
                    engine::progress::human_bytes(t.archive_bytes),
                    t.seconds
                ),
                None => println!(),
            }
            if !restored.roles_created.is_empty() {
                println!("roles      created as NOLOGIN: {}", restored.roles_created.join(", "));
            }
            for warning in &restored.warnings {
                println!("warning    {warning}");
            }
            if !outcome.failures.is_empty() {
                return Err(failed(outcome.failures.join("\n")));
            }
            println!("restored {} into {target_url}: every table matches", restored.manifest.backup_name);
            if reapply_from.is_some() {
                reapply(&target_url, live.as_ref()).await?;
            }
            Ok(())
        }
        Command::Backups { command } => backups_command(command).await,
        Command::Drills { command: DrillsCommand::List { store, backup, output } } => {
            let store = store::open(&store.store).await.map_err(usage)?;
            let drills = engine::catalog::drills(store.as_ref(), backup.as_deref()).await.map_err(engine_failure)?;
            print_as(output, &drills, |d| engine::catalog::drills_table(d));
            Ok(())
        }
        Command::Drills { command: DrillsCommand::Chart { store, backup, out } } => {
            let store = store::open(&store.store).await.map_err(usage)?;
            let drills = engine::catalog::drills(store.as_ref(), backup.as_deref()).await.map_err(engine_failure)?;
            let svg = engine::history::svg(&drills).ok_or_else(|| {
                failed(format!("no drill in {} measured an RTO or RPO: nothing to chart", store.url()))
            })?;
            std::fs::write(&out, svg).map_err(|e| failed(format!("writing {}: {e}", out.display())))?;
            eprintln!(
                "drills: chart of {} drills written to {}",
                drills.len().min(engine::history::HISTORY_DRILLS),
                out.display()
            );
            Ok(())
        }
        Command::Tools => {
            let tools = engine::pgtools::Toolset::installed().await;
            println!("PostgreSQL client tools found:");
            for t in tools.all() {
                println!("  {:<3} {}  ({})", t.major, t.version, t.bindir.display());
            }
            if tools.all().is_empty() {
                println!("  none: install PostgreSQL client tools or set ARTIFORTRESS_PG_BINDIR");
            }
            println!("\n{}", engine::pgtools::support_table(&tools));
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
        Command::Run(args) => run_operator(*args).await,
        Command::Drill { source, store, backup, latest, target, verify, objectives, report, json } => {
            let source = match &source {
                Some(raw) => Some(database(raw).await?),
                None => None,
            };
            let store = store::open(&store.store).await.map_err(usage)?;
            let choice = match (backup, latest) {
                (Some(name), _) => BackupChoice::Named(name),
                (None, true) => BackupChoice::Latest,
                (None, false) => BackupChoice::Fresh(BackupRequest {
                    name: engine::backup::default_name(store.as_ref(), chrono::Utc::now())
                        .await
                        .map_err(engine_failure)?,
                    tables: verify.tables.clone(),
                    verify: verify.mode(),
                    labels: Default::default(),
                    expected_size: None,
                }),
            };
            let check = objectives.blobs.check(source.as_ref()).await?;
            let request = objectives.request(
                source,
                target.target_url().await?,
                choice,
                target.request(String::new(), &verify),
            )?;
            let outcome = engine::drill::run(store.as_ref(), &request, Some(&check), &Progress::new("drill"))
                .await
                .map_err(engine_failure)?;
            if let Some(path) = &report {
                std::fs::write(path, &outcome.report_markdown)
                    .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
                eprintln!("drill: report written to {}", path.display());
                // The chart the report links, beside it.
                if let Some((file, svg)) = &outcome.history_chart {
                    let chart = path.with_file_name(file);
                    std::fs::write(&chart, svg).map_err(|e| failed(format!("writing {}: {e}", chart.display())))?;
                }
            }
            if let Some(path) = &json {
                std::fs::write(path, outcome.verdict.to_json())
                    .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
            }
            if let Some(stored) = &outcome.verdict.report {
                eprintln!("drill: report stored at {stored}");
            }
            drill_verdict(&outcome)
        }
        Command::DrillStep { step, store, backup, drill, started_at, fresh, target, verify, objectives } => {
            let check = objectives.blobs.check(None).await?;
            let request = objectives.request(
                None,
                target.target_url().await?,
                BackupChoice::Named(backup.clone()),
                target.request(backup.clone(), &verify),
            )?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let progress = Progress::new("drill");
            let record_key = engine::drill::record_key(&backup, &drill);
            let record = match step {
                DrillStepKind::Restore => {
                    let mut record = RestoreRecord::new(&drill, started_at, &backup, fresh);
                    let refused = engine::drill::restore_step(store.as_ref(), &request, &mut record, &progress).await;
                    if let Err(e) = &refused {
                        engine::drill::record_failure(&mut record, "restore", e);
                    }
                    if record.failures.is_empty() {
                        return store.put_bytes(&record_key, record.to_json()).await.map(drop).map_err(failed);
                    }
                    // A failed restore ends the drill here, with its verdict stored.
                    let outcome = engine::drill::conclude(store.as_ref(), &request, record, None, &progress)
                        .await
                        .map_err(engine_failure)?;
                    return match refused {
                        Err(e) => Err(engine_failure(e)),
                        Ok(()) => drill_verdict(&outcome),
                    };
                }
                DrillStepKind::Verify => {
                    let bytes = store.get_bytes(&record_key).await.map_err(|e| {
                        failed(format!("the restore step left no record at {record_key}: {e}; rerun the drill"))
                    })?;
                    RestoreRecord::parse(&bytes).map_err(|e| failed(format!("reading {record_key}: {e}")))?
                }
            };
            let outcome = engine::drill::conclude(store.as_ref(), &request, record, Some(&check), &progress)
                .await
                .map_err(engine_failure)?;
            drill_verdict(&outcome)
        }
    }
}

/// Puts the security decisions made since the restore point back into the
/// restored database, and says what it did (or, without a live database, what
/// a person has to decide).
async fn reapply(restored: &DatabaseUrl, live: Option<&DatabaseUrl>) -> Result<(), Failure> {
    use artifortress_operator::artifortress::takeback;
    let done = takeback::reapply(restored, live).await.map_err(failed)?;
    match live {
        Some(live) => println!(
            "reapplied  from {live}: {} token revocation(s), {} hold(s) ({} on versions this restore point does not have), {} GC run(s) closed",
            done.revocations, done.holds, done.holds_without_version, done.gc_runs_closed
        ),
        None => {
            println!("reapplied  no live database: {} GC run(s) closed; nothing else re-applied", done.gc_runs_closed);
            println!(
                "decide     revocations and holds made after the restore point are unknown here; the restored audit log's newest security decisions:"
            );
            for line in &done.last_recorded {
                println!("           {line}");
            }
        }
    }
    Ok(())
}

fn drill_verdict(outcome: &engine::drill::DrillOutcome) -> Result<(), Failure> {
    if outcome.passed() {
        Ok(())
    } else {
        Err(failed(format!("drill failed:\n  {}", outcome.verdict.failures.join("\n  "))))
    }
}
