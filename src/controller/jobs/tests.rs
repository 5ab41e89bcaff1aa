use super::*;
use crate::api::artifortress::{DatabaseSpec, S3CredentialsRef};

fn storage(bucket: &str, prefix: Option<&str>) -> ObjectStorageSpec {
    ObjectStorageSpec {
        bucket: bucket.into(),
        prefix: prefix.map(str::to_string),
        endpoint: Some("http://minio.storage.svc:9000".into()),
        region: "us-east-1".into(),
        force_path_style: true,
        credentials_secret_ref: Some(S3CredentialsRef {
            name: "s3".into(),
            access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
            secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
        }),
        object_lock: None,
    }
}

fn spec(backup_storage: Option<ObjectStorageSpec>) -> ArtifortressSpec {
    ArtifortressSpec {
        kublai: None,
        database: Some(DatabaseSpec { connection_secret_ref: SecretKeyRef { name: "db".into(), key: "uri".into() } }),
        object_storage: Some(storage("blobs", None)),
        backup_storage,
        slo: Default::default(),
        probe_interval: "30s".into(),
        job_template: None,
        wal_archive: None,
        encryption: None,
    }
}

fn job() -> Job {
    job_with(&JobTemplate::default(), None)
}

fn job_with(template: &JobTemplate, staging_bytes: Option<u64>) -> Job {
    let spec = spec(None);
    engine_job(EngineJob {
        step: "backup",
        owner_name: "nightly-1",
        owner: OwnerReference {
            kind: "Backup".into(),
            name: "nightly-1".into(),
            uid: "u1".into(),
            ..Default::default()
        },
        namespace: "af",
        installation: "production",
        image: "artifortress-operator:0.1.0",
        args: backup_args(
            &backup_store_url(&spec, "production"),
            "nightly-1",
            VerifyMode::Counts,
            &[],
            &BTreeMap::new(),
        ),
        secret_env: backup_secret_env(&spec),
        staging_bytes,
        template,
    })
}

fn pod(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

#[test]
fn every_template_field_reaches_the_pod() {
    let template: JobTemplate = serde_json::from_value(serde_json::json!({
        "resources": {"requests": {"cpu": "2500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "imagePullSecrets": [{"name": "registry"}],
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}},
        "priorityClassName": "batch-low",
        "podLabels": {"team": "storage", LABEL_OWNER: "not-allowed"},
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        "activeDeadlineSeconds": 7200,
    }))
    .unwrap();
    let job = job_with(&template, Some(10 << 30));
    assert_eq!(job.spec.as_ref().unwrap().active_deadline_seconds, Some(7200));
    let p = pod(&job);
    assert_eq!(p.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
    assert_eq!(p.node_selector.as_ref().unwrap()["disk"], "ssd");
    assert_eq!(p.tolerations.as_ref().unwrap()[0].value.as_deref(), Some("backup"));
    assert!(p.affinity.as_ref().unwrap().node_affinity.is_some());
    assert_eq!(p.priority_class_name.as_deref(), Some("batch-low"));
    let meta = job.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "storage");
    assert_eq!(labels[LABEL_OWNER], "nightly-1", "the operator's labels win");
    assert_eq!(meta.annotations.as_ref().unwrap()["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
    let resources = p.containers[0].resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    assert_eq!(requests["memory"].0, "1Gi");
    // Staging on node disk is requested, so the scheduler finds the room.
    let staging = (10u64 << 30) + (10u64 << 30) / 5 + (1 << 30);
    assert_eq!(requests["ephemeral-storage"].0, staging.to_string());
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "2Gi");
    let volume = &p.volumes.as_ref().unwrap()[0];
    assert_eq!(volume.empty_dir.as_ref().unwrap().size_limit.as_ref().unwrap().0, staging.to_string());
    assert_eq!(restore_jobs(None, &template), 2, "whole CPUs requested");
    assert_eq!(restore_jobs(Some(6), &template), 6, "the drill's restoreJobs wins");
}

#[test]
fn defaults_bound_the_job_and_ephemeral_staging_is_a_claim_of_the_archive_size() {
    let plain = job();
    assert_eq!(plain.spec.as_ref().unwrap().active_deadline_seconds, Some(DEFAULT_ACTIVE_DEADLINE_SECONDS));
    let resources = pod(&plain).containers[0].resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()["memory"].0, "512Mi");
    assert!(!resources.requests.unwrap().contains_key("ephemeral-storage"), "a backup stages nothing");
    assert_eq!(restore_jobs(None, &JobTemplate::default()), 1, "500m requested: one job, not the node's CPUs");
    let limits_only: JobTemplate =
        serde_json::from_value(serde_json::json!({"resources": {"limits": {"cpu": "4"}}})).unwrap();
    assert_eq!(restore_jobs(None, &limits_only), 4);

    let template: JobTemplate =
        serde_json::from_value(serde_json::json!({"staging": {"volume": "Ephemeral", "storageClassName": "fast-ssd"}}))
            .unwrap();
    let job = job_with(&template, Some(1 << 30));
    let p = pod(&job);
    let claim = p.volumes.as_ref().unwrap()[0].ephemeral.as_ref().unwrap().volume_claim_template.as_ref().unwrap();
    assert_eq!(claim.spec.storage_class_name.as_deref(), Some("fast-ssd"));
    let size = claim.spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0.clone();
    assert_eq!(size, ((1u64 << 30) + (1u64 << 30) / 5 + (1 << 30)).to_string());
    let requests = p.containers[0].resources.as_ref().unwrap().requests.clone().unwrap();
    assert!(!requests.contains_key("ephemeral-storage"), "the claim holds the archive, not the node");
}

#[test]
fn store_urls_follow_the_layout() {
    assert_eq!(
        backup_store_url(&spec(None), "production"),
        "s3://blobs/artifortress-backups/production?endpoint=http%3A%2F%2Fminio.storage.svc%3A9000&region=us-east-1&path_style=true"
    );
    assert!(
        backup_store_url(&spec(Some(storage("backups", Some("/prod/")))), "production")
            .starts_with("s3://backups/prod/production?")
    );
    assert!(backup_store_url(&spec(Some(storage("backups", None))), "p").starts_with("s3://backups/p?"));
}

#[test]
fn the_job_is_deterministic_locked_down_and_secret_free() {
    let (a, b) = (job(), job());
    assert_eq!(a, b, "same inputs, same Job");
    assert_eq!(a.metadata.name.as_deref(), Some("backup-nightly-1"));
    let spec = a.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!((sc.allow_privilege_escalation, sc.read_only_root_filesystem), (Some(false), Some(true)));
    assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    // Credentials arrive only as secretKeyRef; no literal value carries one.
    let env = c.env.as_ref().unwrap();
    for var in ["SOURCE_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let e = env.iter().find(|e| e.name == var).unwrap();
        assert!(e.value.is_none() && e.value_from.as_ref().unwrap().secret_key_ref.is_some(), "{var}");
    }
    assert_eq!(c.args.as_ref().unwrap()[..2], ["backup".to_string(), "--store".to_string()]);
    assert_eq!(a.metadata.labels.as_ref().unwrap()[LABEL_OWNER], "nightly-1");
    assert_eq!(a.metadata.owner_references.as_ref().unwrap()[0].kind, "Backup");
}

#[test]
fn long_names_are_cut_with_a_hash_and_stay_distinct() {
    let a = job_name("restore", &"x".repeat(80));
    let b = job_name("restore", &format!("{}y", "x".repeat(79)));
    assert!(a.len() <= 63 && b.len() <= 63);
    assert_ne!(a, b);
    assert_eq!(job_name("backup", "short"), "backup-short");
    // A cut that would end in a dot or dash still ends alphanumeric.
    let dotted = label_value(&format!("{}.{}", "a".repeat(53), "b".repeat(200)));
    assert!(dotted.len() <= 63 && dotted.starts_with(&"a".repeat(53)) && !dotted.contains(".-"), "{dotted}");
    assert_eq!(label_value("nightly"), "nightly");
}

#[test]
fn drill_step_arguments_carry_the_template() {
    let template = |extra: serde_json::Value| -> DrillTemplate {
        let mut t = serde_json::json!({"target": {"connectionSecretRef": {"name": "t", "key": "uri"}, "database": "scratch"},
                                       "rpo": "15m", "verify": "Checksums"});
        t.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(t).unwrap()
    };
    let args = |t: &DrillTemplate| {
        drill_step_args(DrillStepArgs {
            step: "restore",
            store_url: "s3://b/p",
            backup: "nightly-1",
            drill: "d-1",
            started_at: "2026-12-01T00:00:00Z".parse().unwrap(),
            fresh: false,
            template: t,
            blob_store_url: "s3://blobs/a",
            restore_jobs: 3,
        })
        .join(" ")
    };
    let plain = args(&template(serde_json::json!({})));
    assert!(plain.starts_with("drill-step restore --store s3://b/p --backup nightly-1 --drill d-1"), "{plain}");
    assert!(plain.contains("--jobs 3"), "{plain}");
    assert!(
        plain.contains("--verify checksums")
            && plain.contains("--rpo 15m")
            && plain.contains("--target-database scratch")
    );
    assert!(!plain.contains("--rto-basis") && !plain.contains("--no-create-roles"), "defaults: usable, create roles");
    let strict = args(&template(serde_json::json!({"rtoBasis": "Verified", "createMissingRoles": false})));
    assert!(strict.contains("--rto-basis verified") && strict.contains("--no-create-roles"), "{strict}");
    assert!(!strict.contains("--blob-store"), "only the verify step checks blobs");
}

#[test]
fn physical_steps_carry_their_target_objectives_and_blob_check() {
    assert_eq!(
        base_backup_args("s3://b/p", "base-1", CheckpointMode::Fast).join(" "),
        "base-backup --store s3://b/p --name base-1 --fast-checkpoint"
    );
    assert!(!base_backup_args("s3://b/p", "base-1", CheckpointMode::Spread).contains(&"--fast-checkpoint".into()));
    let t: DrillTemplate = serde_json::from_value(serde_json::json!({
        "method": "Physical", "recoveryTarget": "2026-12-01T10:00:00Z", "rpo": "30s",
        "blobs": {"sample": 5, "policy": "Warn"}}))
    .unwrap();
    let args = pitr_args("s3://b/p", "base-1", "d-1", &t, "s3://blobs/a").join(" ");
    assert_eq!(
        args,
        "pitr --store s3://b/p --backup base-1 --drill d-1 --dir /staging/instance \
         --target 2026-12-01T10:00:00Z --rpo 30s --blob-store s3://blobs/a --blob-sample 5 --blob-policy warn"
    );
    assert!(SCRATCH_INSTANCE_DIR.starts_with(STAGING_DIR), "the instance lives in the Job's own volume");
    let latest: DrillTemplate = serde_json::from_value(serde_json::json!({"method": "Physical"})).unwrap();
    assert!(pitr_args("s", "b", "d", &latest, "u").join(" ").contains("--target latest"));
}

#[test]
fn the_wal_archiver_is_one_locked_down_pod_replaced_only_when_its_spec_changes() {
    let spec = spec(None);
    let wal: WalArchiveSpec = serde_json::from_value(serde_json::json!({"heartbeat": "2s"})).unwrap();
    assert_eq!(wal_slot("prod-eu.1", &wal), "artifortress_prod_eu_1");
    let named: WalArchiveSpec = serde_json::from_value(serde_json::json!({"slot": "mine"})).unwrap();
    assert_eq!(wal_slot("prod", &named), "mine");
    assert_eq!(wal_slot(&"x".repeat(80), &wal).len(), 63, "a slot name has at most 63 characters");
    let deployment = |wal: &WalArchiveSpec| {
        wal_deployment(EngineJob {
            step: "wal",
            owner_name: "production",
            owner: OwnerReference { kind: "Artifortress".into(), name: "production".into(), ..Default::default() },
            namespace: "af",
            installation: "production",
            image: "artifortress-operator:0.1.0",
            args: wal_args(&backup_store_url(&spec, "production"), "production", wal),
            secret_env: backup_secret_env(&spec),
            staging_bytes: Some(wal_spool_bytes(wal)),
            template: &JobTemplate::default(),
        })
    };
    let a = deployment(&wal);
    assert_eq!(a, deployment(&wal), "same inputs, same Deployment");
    let digest = |d: &Deployment| d.metadata.annotations.as_ref().unwrap()[SPEC_DIGEST].clone();
    let faster: WalArchiveSpec = serde_json::from_value(serde_json::json!({"heartbeat": "1s"})).unwrap();
    assert_ne!(digest(&a), digest(&deployment(&faster)), "a changed spec has another digest");
    assert_eq!(a.metadata.name.as_deref(), Some("wal-production"));
    assert_eq!(a.spec.replicas, Some(1));
    assert_eq!(a.spec.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"), "never two archivers");
    let pod = a.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    let args = c.args.as_ref().unwrap().join(" ");
    assert!(args.starts_with("wal --store s3://blobs/artifortress-backups/production?"), "{args}");
    assert!(args.contains("--slot artifortress_production --spool /staging/spool --partial-every 5s"), "{args}");
    assert!(args.contains("--max-retained 4GiB --spool-segments 8 --heartbeat 2s"), "{args}");
    let spool = pod.volumes.as_ref().unwrap()[0].empty_dir.as_ref().unwrap().size_limit.clone().unwrap();
    assert!(spool.0.parse::<u64>().unwrap() >= 10 * (16 << 20), "room for the spooled segments: {spool:?}");
    let env = c.env.as_ref().unwrap();
    assert!(env.iter().filter(|e| e.name.ends_with("_URL") || e.name.starts_with("AWS_")).all(|e| e.value.is_none()));
}

/// Backup Jobs and the WAL archiver get the recipients (public keys) and never
/// the identities; restore Jobs get the identities from their Secret.
#[test]
fn only_restores_get_the_identities_and_backups_only_the_recipients() {
    let mut spec = spec(None);
    spec.encryption = Some(crate::api::artifortress::EncryptionSpec {
        recipients: vec!["age1new".into(), "age1old".into()],
        identities_secret_ref: Some(SecretKeyRef { name: "age-identities".into(), key: "keys.txt".into() }),
        passphrase_secret_ref: None,
    });
    assert_eq!(encryption_args(&spec).join(" "), "--encrypt-to age1new --encrypt-to age1old");
    let backup_env: Vec<&str> = backup_secret_env(&spec).iter().map(|(var, _)| *var).collect();
    assert!(!backup_env.iter().any(|v| v.contains("AGE") || v.contains("PASSPHRASE")), "{backup_env:?}");
    let keys = key_env(&spec);
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].0, keys[0].1.name.as_str()), ("ARTIFORTRESS_AGE_IDENTITIES", "age-identities"));

    // Passphrase mode: every side holds the passphrase, and nothing else.
    spec.encryption = Some(crate::api::artifortress::EncryptionSpec {
        recipients: Vec::new(),
        identities_secret_ref: None,
        passphrase_secret_ref: Some(SecretKeyRef { name: "backup-passphrase".into(), key: "passphrase".into() }),
    });
    assert!(encryption_args(&spec).is_empty());
    assert!(backup_secret_env(&spec).iter().any(|(var, _)| *var == "ARTIFORTRESS_BACKUP_PASSPHRASE"));
    assert_eq!(key_env(&spec).iter().map(|(var, _)| *var).collect::<Vec<_>>(), ["ARTIFORTRESS_BACKUP_PASSPHRASE"]);
}

#[test]
fn a_locked_backup_storage_puts_its_lock_into_the_store_url() {
    use crate::api::artifortress::{ObjectLockModeSpec, ObjectLockSpec};
    let mut locked = storage("backups", None);
    locked.object_lock = Some(ObjectLockSpec { mode: ObjectLockModeSpec::Compliance, retain: "30d".into() });
    let url = store_url(&locked, "production");
    assert!(url.ends_with("&object_lock=compliance&retain=30d"), "{url}");
    assert!(!store_url(&storage("backups", None), "production").contains("object_lock"));
}

#[test]
fn a_backups_own_lock_and_the_installations_combine_to_the_stricter() {
    use crate::api::artifortress::{ObjectLockModeSpec, ObjectLockSpec};
    let lock = |mode, retain: &str| ObjectLockSpec { mode, retain: retain.into() };
    let own = lock(ObjectLockModeSpec::Governance, "14d");
    let unlocked = spec(Some(storage("backups", None)));
    assert_eq!(backup_job_store_url(&unlocked, "p", None), backup_store_url(&unlocked, "p"));
    let url = backup_job_store_url(&unlocked, "p", Some(&own));
    assert!(url.starts_with("s3://backups/p?") && url.ends_with("&object_lock=governance&retain=14d"), "{url}");
    // The installation's compliance mode stays; the backup's longer period wins.
    let mut locked = storage("backups", None);
    locked.object_lock = Some(lock(ObjectLockModeSpec::Compliance, "7d"));
    let url = backup_job_store_url(&spec(Some(locked.clone())), "p", Some(&own));
    assert!(url.ends_with("&object_lock=compliance&retain=14d"), "{url}");
    // A shorter period of the backup never shortens the installation's.
    locked.object_lock = Some(lock(ObjectLockModeSpec::Compliance, "30d"));
    let url = backup_job_store_url(&spec(Some(locked)), "p", Some(&own));
    assert!(url.ends_with("&object_lock=compliance&retain=30d"), "{url}");
}
