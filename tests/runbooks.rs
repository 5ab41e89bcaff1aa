//! The docs cannot rot: every shell block marked `<!-- runnable -->` in
//! docs/runbooks/ runs against real PostgreSQL, S3 and the API server with the
//! controllers; every example manifest in the README and the runbooks is created
//! on the API server; every alert links to a runbook section that states its
//! thresholds.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use artifortress_operator::alerts::{self, THRESHOLDS_FILE};
use serde_json::json;
use support::cluster::{Installation, secret};

const RUNBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbooks");

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(RUNBOOKS).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "md"));
    files.sort();
    files
}

/// Fenced blocks of a Markdown file: (info string, first line number, body).
fn fenced_blocks(markdown: &str) -> Vec<(String, usize, String, bool)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    let mut marked = false;
    while let Some((n, line)) = lines.next() {
        if line.trim() == "<!-- runnable -->" {
            marked = true;
            continue;
        }
        if let Some(info) = line.trim_start().strip_prefix("```") {
            let mut body = String::new();
            for (_, line) in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            blocks.push((info.trim().to_string(), n + 1, body, marked));
        } else if !line.trim().is_empty() && marked {
            panic!("line {}: <!-- runnable --> must be followed by a ```sh block", n + 1);
        }
        marked = false;
    }
    blocks
}

/// The runnable blocks of one runbook, joined in order into one script (later
/// blocks use what earlier ones set, as a reader following the page would).
fn runnable_script(file: &Path) -> Option<String> {
    let blocks: Vec<_> = fenced_blocks(&read(file)).into_iter().filter(|b| b.3).collect();
    if blocks.is_empty() {
        return None;
    }
    let mut script = String::new();
    for (info, line, body, _) in blocks {
        assert!(
            info == "sh" || info == "bash",
            "{}:{line}: runnable blocks are sh or bash, not {info}",
            file.display()
        );
        script.push_str(&format!("echo '>>> {}:{line}' >&2\n{body}", file.file_name().unwrap().to_string_lossy()));
    }
    Some(script)
}

/// The runbooks that have runnable blocks, each run by a test below.
const RUN: [&str; 4] = ["slo.md", "backup-restore.md", "recovery-drill.md", "upgrade-rollback.md"];

#[test]
fn every_runbook_with_runnable_blocks_is_run() {
    let with_blocks: Vec<String> = markdown_files()
        .iter()
        .filter(|f| runnable_script(f).is_some())
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut expected: Vec<String> = RUN.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(with_blocks, expected, "add a test for each runbook with runnable blocks");
}

/// Runs a runbook's blocks with the variables of docs/runbooks/README.md set to
/// a real installation: a seeded database, an S3 store, a namespace with the
/// `production` Artifortress and the controllers.
async fn run_runbook(file: &str) {
    let script = runnable_script(&Path::new(RUNBOOKS).join(file)).unwrap();
    let i = Installation::start("rb", None).await;
    let target_server = support::env("AF_TEST_PG_TARGET_URL");
    let drill_target = support::with_database(&target_server, &format!("{}_drill", i.db.name));
    secret(&i.client, &i.ns, "drill-target-db", json!({"uri": drill_target})).await;
    let local_target = support::with_database(&target_server, &format!("{}_local", i.db.name));
    let new_major_server = support::env("AF_TEST_PG18_URL");
    let new_major = support::with_database(&new_major_server, &format!("{}_rehearsal", i.db.name));
    let store = support::s3_store_url(&support::env("AF_TEST_S3_ENDPOINT"), &i.bucket, "runbook");

    let workdir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(support::operator_bin()).parent().unwrap().to_path_buf();
    // A reader has the operator, kubectl and helm, and PostgreSQL's client tools.
    let path = format!(
        "{}:{}:{}:{}",
        bin_dir.display(),
        support::env("AF_TEST_CHART_TOOLS"),
        support::env("AF_TEST_PG_BINDIR"),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(workdir.path())
        .env("PATH", path)
        .env("NAMESPACE", &i.ns)
        .env("SOURCE_DATABASE_URL", i.db.url.expose())
        .env("TARGET_DATABASE_URL", &local_target)
        .env("NEW_MAJOR_DATABASE_URL", &new_major)
        .env("STORE", &store)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .unwrap_or_else(|_| panic!("{file}: the runnable blocks did not finish within 5 minutes"))
        .unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Databases the blocks create besides the test's own.
    let source_server = support::env("AF_TEST_PG_SOURCE_URL");
    for (server, database) in [
        (&target_server, format!("{}_local", i.db.name)),
        (&target_server, format!("{}_drill", i.db.name)),
        (&new_major_server, format!("{}_rehearsal", i.db.name)),
        (&source_server, format!("{}_before_restore", i.db.name)),
        (&source_server, format!("{}_restored", i.db.name)),
    ] {
        let admin = sqlx::PgPool::connect(server).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")).execute(&admin).await.unwrap();
    }
    assert!(out.status.success(), "{file}: a runnable block failed ({}):\n{output}", out.status);
}

#[tokio::test]
async fn runbook_slo() {
    run_runbook("slo.md").await;
}

#[tokio::test]
async fn runbook_backup_restore() {
    run_runbook("backup-restore.md").await;
}

#[tokio::test]
async fn runbook_recovery_drill() {
    run_runbook("recovery-drill.md").await;
}

#[tokio::test]
async fn runbook_upgrade_rollback() {
    run_runbook("upgrade-rollback.md").await;
}

#[tokio::test]
async fn every_example_manifest_is_created_on_the_api_server() {
    let client = support::kube_client().await;
    support::install_crds(&client).await;
    let ns = support::create_namespace(&client).await;
    let mut files = markdown_files();
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let mut created = 0;
    for file in files {
        for (info, line, body, _) in fenced_blocks(&read(&file)) {
            if info != "yaml" || !body.contains("apiVersion:") {
                continue;
            }
            let mut manifest = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
            std::io::Write::write_all(&mut manifest, body.as_bytes()).unwrap();
            let out = std::process::Command::new("kubectl")
                .args(["create", "--namespace", &ns, "-f"])
                .arg(manifest.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}:{line}: {}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            created += 1;
        }
    }
    assert!(created >= 6, "the README's four resources and the runbooks' examples: {created}");
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The text of the `## ` section whose anchor is `wanted`.
fn section(markdown: &str, wanted: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if found.is_some() {
                break;
            }
            if anchor(heading) == wanted {
                found = Some(String::new());
            }
        } else if let Some(text) = found.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    found
}

#[test]
fn every_alert_links_to_a_runbook_section_that_states_its_thresholds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let thresholds = alerts::parse(&read(&root.join(THRESHOLDS_FILE))).unwrap();
    let number = |v: f64| if v.fract() == 0.0 { format!("{v:.0}") } else { v.to_string() };
    for a in &thresholds.alerts {
        let (file, wanted) = a.runbook.split_once('#').unwrap();
        let markdown = read(&Path::new(RUNBOOKS).join(file));
        assert!(markdown.contains(&a.alert), "{file} names {}", a.alert);
        let text = section(&markdown, wanted).unwrap_or_else(|| panic!("{}: no section #{wanted} in {file}", a.alert));
        for value in [Some(a.warning), a.critical].into_iter().flatten() {
            assert!(text.contains(&number(value)), "{}: section #{wanted} of {file} states threshold {value}", a.alert);
        }
    }
}
