//! `backups` and `drills`: an installation's catalog from its resources'
//! status, in the columns of the local `backups list` and `drills list`.

use kube::ResourceExt;
use serde::Serialize;

use artifortress_operator::api::backup::Backup;
use artifortress_operator::api::common::BackupMethod;
use artifortress_operator::api::recovery_drill::{ObjectiveResult, RecoveryDrill};
use artifortress_operator::engine::catalog::{table, time};

use super::super::failure::Failure;
use super::Format;
use super::access::Cluster;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupRow {
    name: String,
    snapshot_time: Option<chrono::DateTime<chrono::Utc>>,
    source: Option<String>,
    major: Option<String>,
    size: Option<String>,
    verify: String,
    state: String,
    last_drill: Option<String>,
    rto: Option<String>,
    rpo: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DrillRow {
    backup: Option<String>,
    drill: String,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    result: String,
    reason: Option<String>,
    rto: Option<String>,
    rpo: Option<String>,
}

fn summary(o: &Option<ObjectiveResult>) -> Option<String> {
    o.as_ref().map(|o| o.summary.clone())
}

fn cell(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The installation's drills, oldest first.
async fn drill_rows(cluster: &Cluster, installation: &str) -> Result<Vec<DrillRow>, Failure> {
    let mut drills: Vec<RecoveryDrill> = cluster.list::<RecoveryDrill>().await?;
    drills.retain(|d| d.spec.artifortress_ref.name == installation);
    let mut rows: Vec<DrillRow> = drills
        .iter()
        .map(|d| {
            let s = d.status.clone().unwrap_or_default();
            DrillRow {
                backup: s.backup.as_ref().map(|b| b.name.clone()),
                drill: d.name_any(),
                started_at: s.started_at,
                result: s.result.map(|r| format!("{r:?}")).or(s.phase.map(|p| format!("{p:?}"))).unwrap_or("-".into()),
                reason: s.reason.clone(),
                rto: summary(&s.rto),
                rpo: summary(&s.rpo),
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.started_at, &a.drill).cmp(&(b.started_at, &b.drill)));
    Ok(rows)
}

pub async fn backups(cluster: &Cluster, installation: &str, output: Format) -> Result<(), Failure> {
    cluster.installation(installation).await?;
    let mut backups: Vec<Backup> = cluster.list::<Backup>().await?;
    backups.retain(|b| b.spec.artifortress_ref.name == installation);
    let drills = drill_rows(cluster, installation).await?;
    let mut rows: Vec<BackupRow> = backups
        .iter()
        .map(|b| {
            let s = b.status.clone().unwrap_or_default();
            let last = drills.iter().rev().find(|d| d.backup.as_deref() == Some(b.name_any().as_str()));
            BackupRow {
                name: b.name_any(),
                snapshot_time: s.snapshot_time,
                source: s.source.as_ref().map(|s| s.database.clone()),
                major: s.source.as_ref().and_then(|s| s.server_version.split('.').next().map(str::to_string)),
                size: s.size.clone(),
                verify: match b.spec.method {
                    BackupMethod::Physical => "physical".into(),
                    BackupMethod::Logical => format!("{:?}", b.spec.verify).to_lowercase(),
                },
                state: s.phase.map_or("-".into(), |p| format!("{p:?}").to_lowercase()),
                last_drill: last.map(|d| d.result.clone()),
                rto: last.and_then(|d| d.rto.clone()),
                rpo: last.and_then(|d| d.rpo.clone()),
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.snapshot_time, &a.name).cmp(&(b.snapshot_time, &b.name)));
    super::print_listing(output, &rows, |rows| {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    time(r.snapshot_time),
                    cell(&r.source),
                    cell(&r.major),
                    cell(&r.size),
                    r.verify.clone(),
                    r.state.clone(),
                    cell(&r.last_drill),
                    cell(&r.rto),
                    cell(&r.rpo),
                ]
            })
            .collect();
        let headers =
            ["NAME", "SNAPSHOT (UTC)", "SOURCE", "MAJOR", "SIZE", "VERIFY", "STATE", "LAST DRILL", "RTO", "RPO"];
        table(&headers, &cells)
    });
    Ok(())
}

pub async fn drills(cluster: &Cluster, installation: &str, output: Format) -> Result<(), Failure> {
    cluster.installation(installation).await?;
    let rows = drill_rows(cluster, installation).await?;
    super::print_listing(output, &rows, |rows| {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    cell(&r.backup),
                    r.drill.clone(),
                    time(r.started_at),
                    r.result.clone(),
                    cell(&r.reason),
                    cell(&r.rto),
                    cell(&r.rpo),
                ]
            })
            .collect();
        table(&["BACKUP", "DRILL", "STARTED (UTC)", "RESULT", "REASON", "RTO", "RPO"], &cells)
    });
    Ok(())
}
