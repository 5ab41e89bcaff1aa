//! `kubectl artifortress` against the real API server, with the controllers
//! running in this process and the test playing the job controller: the
//! binary run through a link named `kubectl-artifortress`, with the cluster
//! admin's kubeconfig (tests/node.rs runs it through kubectl on the node, and
//! as a user with only the viewer role).

mod support;

use std::process::Output;

use artifortress_operator::api::backup::Backup;
use serde_json::Value;
use support::cluster::{Installation, wait_until};
use support::env;

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// The plugin as kubectl would run it: the binary under the link's name.
struct Plugin {
    links: tempfile::TempDir,
    ns: String,
}

impl Plugin {
    fn new(ns: &str) -> Plugin {
        let links = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(support::operator_bin(), links.path().join("kubectl-artifortress")).unwrap();
        Plugin { links, ns: ns.to_string() }
    }

    /// Awaited, not blocked on: the controllers run on this test's runtime.
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(self.links.path().join("kubectl-artifortress"))
            .env("KUBECONFIG", env("KUBECONFIG"))
            .args(["-n", &self.ns])
            .args(args)
            .output()
            .await
            .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(out.status.success(), "{args:?}: {}", support::stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_backup_and_a_drill_made_with_the_plugin_show_in_its_status_and_catalog() {
    let i = Installation::start("plugin", None).await;
    let plugin = Plugin::new(&i.ns);

    // A name that does not exist: the ones that do, exit code 2.
    let out = plugin.run(&["status", "staging"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(support::stderr(&out).contains("there are: production"), "{}", support::stderr(&out));

    // Before any backup: failing, and why.
    let status = plugin.json(&["status", "production", "-o", "json"]).await;
    assert_eq!(status["health"], "Failing", "{status:#}");
    assert!(status["problems"].to_string().contains("no completed backup"), "{status:#}");

    let out = plugin.run(&["backup", "production", "--wait", "--timeout", "3m"]).await;
    assert!(out.status.success(), "{}", support::stderr(&out));
    let created = stdout(&out);
    let backup = created.split_whitespace().next().and_then(|b| b.strip_prefix("backup.artifortress.io/")).unwrap();
    assert!(created.contains("completed in"), "{created}");
    let resource = wait_until(&i.api::<Backup>(), backup, MINUTE, |_| true).await;
    assert_eq!(resource.spec.artifortress_ref.name, "production");

    let out = plugin
        .run(&["drill", "production", "--latest", "--target-secret", "target", "--wait", "--timeout", "3m"])
        .await;
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(stdout(&out).contains("passed: RPO"), "{}", stdout(&out));
    let drill = stdout(&out)
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("recoverydrill.artifortress.io/")
        .to_string();

    let status = plugin.json(&["status", "production", "-o", "json"]).await;
    assert_eq!(status["newestBackup"]["name"], backup, "{status:#}");
    assert_eq!(
        (status["lastDrill"]["name"].as_str(), status["lastDrill"]["result"].as_str()),
        (Some(drill.as_str()), Some("Passed"))
    );
    assert_eq!(status["lastDrill"]["backup"], backup);
    // Every installation of the namespace, as YAML.
    let out = plugin.run(&["status", "-o", "yaml"]).await;
    assert!(out.status.success() && stdout(&out).contains("installations:"), "{}", stdout(&out));

    // The catalog, in the local commands' columns.
    let out = plugin.run(&["backups", "production"]).await;
    let table = stdout(&out);
    assert!(table.starts_with("NAME  ") && table.contains("LAST DRILL"), "{table}");
    let row = table.lines().find(|l| l.starts_with(backup)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("completed") && row.contains("Passed"), "{row}");
    let drills = plugin.json(&["drills", "production", "-o", "json"]).await;
    let listed = drills.as_array().unwrap();
    assert!(listed.iter().any(|d| d["drill"] == drill.as_str() && d["result"] == "Passed"), "{drills:#}");

    let out = plugin.run(&["report", &drill]).await;
    let report = stdout(&out);
    assert!(report.starts_with(&format!("# Recovery drill {drill}: Passed")), "{report}");
    assert!(report.contains("## Tables") && report.contains("| yes |") && !report.contains("| NO |"), "{report}");
    assert!(report.contains("The operator's report: s3://") && report.contains(".history.svg"), "{report}");

    // No pods here (the test plays the job controller): said plainly.
    let out = plugin.run(&["logs", backup]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(support::stderr(&out).contains("has no pod left"), "{}", support::stderr(&out));

    // A second drill without --target-secret takes the last one's target.
    let out = plugin.run(&["drill", "production", "--backup", backup]).await;
    assert!(out.status.success(), "{}", support::stderr(&out));

    let out = plugin.run(&["completion", "bash"]).await;
    assert!(out.status.success() && stdout(&out).contains("kubectl-artifortress"), "{}", support::stderr(&out));
}
