use super::*;

fn failed(why: &str) -> Option<StepState> {
    Some(StepState::Failed(StepFailure { reason: "JobFailed".into(), message: why.into() }))
}

fn concluded(reason: &str, message: &str) -> Next {
    Next::Conclude { failure: Some(StepFailure { reason: reason.into(), message: message.into() }) }
}

#[test]
fn a_fresh_drill_walks_every_phase() {
    let mut s = Steps { fresh: true, ..Default::default() };
    assert_eq!(decide(&s), (DrillPhase::BackingUp, Next::CreateBackup));
    s.backup = Some(StepState::Running);
    assert_eq!(decide(&s), (DrillPhase::BackingUp, Next::Wait));
    s.backup = Some(StepState::Succeeded);
    assert_eq!(decide(&s), (DrillPhase::Restoring, Next::CreateRestoreJob));
    s.restore = Some(StepState::Running);
    assert_eq!(decide(&s), (DrillPhase::Restoring, Next::Wait));
    s.restore = Some(StepState::Succeeded);
    assert_eq!(decide(&s), (DrillPhase::Verifying, Next::CreateVerifyJob));
    s.verify = Some(StepState::Running);
    assert_eq!(decide(&s), (DrillPhase::Verifying, Next::Wait));
    s.verify = Some(StepState::Succeeded);
    assert_eq!(decide(&s), (DrillPhase::Verifying, Next::Conclude { failure: None }));
}

#[test]
fn a_physical_drill_concludes_after_its_one_restore_step() {
    let mut s = Steps { fresh: true, physical: true, ..Default::default() };
    assert_eq!(decide(&s), (DrillPhase::BackingUp, Next::CreateBackup));
    s.backup = Some(StepState::Succeeded);
    assert_eq!(decide(&s), (DrillPhase::Restoring, Next::CreateRestoreJob));
    s.restore = Some(StepState::Succeeded);
    assert_eq!(decide(&s), (DrillPhase::Verifying, Next::Conclude { failure: None }), "no verify Job");
    s.restore = failed("exit 1");
    assert_eq!(decide(&s).1, concluded("JobFailed", "restore: exit 1"));
}

#[test]
fn an_existing_backup_starts_with_the_restore() {
    assert_eq!(decide(&Steps::default()), (DrillPhase::Restoring, Next::CreateRestoreJob));
}

#[test]
fn a_failed_step_concludes_with_its_reason() {
    let backup = Steps { fresh: true, backup: failed("pg_dump failed"), ..Default::default() };
    assert_eq!(decide(&backup).1, concluded("JobFailed", "backup: pg_dump failed"));
    let restore = Steps { restore: failed("Job x failed: OOMKilled"), ..Default::default() };
    assert_eq!(decide(&restore).1, concluded("JobFailed", "restore: Job x failed: OOMKilled"));
    let verify =
        Steps { restore: Some(StepState::Succeeded), verify: failed("Job y failed: exit 1"), ..Default::default() };
    assert_eq!(decide(&verify).1, concluded("JobFailed", "verify: Job y failed: exit 1"));
}

#[test]
fn fresh_backup_names_fit_kubernetes() {
    assert_eq!(fresh_backup_name("nightly"), "drill-nightly");
    assert!(fresh_backup_name(&"d".repeat(200)).len() <= 63);
}

fn installation(wal_archive: bool) -> Artifortress {
    let storage =
        serde_json::json!({"bucket": "b", "endpoint": "http://s3:9000", "credentialsSecretRef": {"name": "s3"}});
    let mut spec = serde_json::json!({"database": {"connectionSecretRef": {"name": "db", "key": "uri"}},
        "objectStorage": storage, "backupStorage": storage});
    if wal_archive {
        spec["walArchive"] = serde_json::json!({});
    }
    serde_json::from_value(serde_json::json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "Artifortress",
        "metadata": {"name": "production"}, "spec": spec}))
    .unwrap()
}

fn recovery_drill(spec: serde_json::Value) -> RecoveryDrill {
    serde_json::from_value(serde_json::json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "RecoveryDrill",
        "metadata": {"name": "d"}, "spec": spec}))
    .unwrap()
}

#[test]
fn a_spec_is_refused_for_what_a_job_could_not_do_and_says_what_to_fix() {
    use super::admission::secrets_needed;
    let target = serde_json::json!({"connectionSecretRef": {"name": "scratch", "key": "uri"}});
    let af = installation(false);
    let reason = |spec| secrets_needed(&recovery_drill(spec), &af).map(drop).unwrap_err().0;
    assert_eq!(reason(serde_json::json!({"artifortressRef": {"name": "production"}})), "InvalidSpec", "no target");
    let named = serde_json::json!({"artifortressRef": {"name": "production"}, "target": target,
        "backup": {"mode": "Named"}});
    assert_eq!(reason(named), "InvalidSpec", "a named backup without a name");
    let physical = serde_json::json!({"artifortressRef": {"name": "production"}, "method": "Physical"});
    assert_eq!(reason(physical.clone()), "WalNotArchived");
    let with_target = serde_json::json!({"artifortressRef": {"name": "production"}, "method": "Physical",
        "target": target});
    assert_eq!(reason(with_target), "InvalidSpec", "a physical drill starts its own instance");
    assert!(secrets_needed(&recovery_drill(physical), &installation(true)).is_ok());

    // A fresh logical drill reads the scratch target, the source and the store's keys.
    let fresh = serde_json::json!({"artifortressRef": {"name": "production"}, "target": target});
    let keys = secrets_needed(&recovery_drill(fresh), &af).unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert!(names.contains(&"scratch") && names.contains(&"db") && names.contains(&"s3"), "{names:?}");
}
