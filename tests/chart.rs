//! The Helm chart, checked with the real tools and the real API server: helm lint
//! (and its values schema), Kubernetes schema validation of the rendered
//! manifests, server-side dry-run, checkov findings each with a written reason,
//! and the rendered RBAC being enough for the operator to complete a drill.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use artifortress_operator::api::recovery_drill::{DrillPhase, DrillResult, RecoveryDrill};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::cluster::{Installation, wait_until};
use support::operator::Operator;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/artifortress-operator");
const ALL_OPTIONS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/charts/artifortress-operator/ci/all-options-values.yaml");

/// A chart tool installed by the harness (hack/install-chart-tools.sh); helm is
/// on PATH too, because checkov calls it.
fn tool(name: &str) -> Command {
    let dir = PathBuf::from(support::env("AF_TEST_CHART_TOOLS"));
    let mut command = Command::new(dir.join(name));
    let path = std::env::var("PATH").unwrap_or_default();
    command.env("PATH", format!("{}:{path}", dir.display()));
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `helm template` into `namespace`; panics with helm's message on failure.
fn render(release: &str, namespace: &str, args: &[&str]) -> String {
    let out = run(tool("helm").args(["template", release, CHART, "--namespace", namespace]).args(args));
    assert!(out.status.success(), "helm template {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The value sets every check covers: the defaults, and every option on.
const VALUE_SETS: [&[&str]; 2] = [&[], &["--values", ALL_OPTIONS]];

fn write_temp(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, contents.as_bytes()).unwrap();
    file
}

fn documents(manifests: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifests).unwrap();
    docs.into_iter().filter(|doc| !doc.is_null()).collect()
}

#[test]
fn the_chart_lints_clean_and_its_schema_rejects_bad_values() {
    for values in VALUE_SETS {
        let out = run(tool("helm").args(["lint", "--strict", CHART]).args(values));
        assert!(out.status.success(), "helm lint {values:?}: {}", text(&out));
    }
    for (bad, expected) in [
        ("watch.scope=Everywhere", "/watch/scope"),
        ("replicaCount=0", "/replicaCount"),
        ("leaderElection.leaseDuration=fifteen", "/leaderElection/leaseDuration"),
        ("image.digest=latest", "/image/digest"),
        ("rbac.secretName=db", "secretName"),
    ] {
        let out = run(tool("helm").args(["lint", CHART, "--set", bad]));
        assert!(!out.status.success(), "helm lint accepted {bad}");
        assert!(text(&out).contains(expected), "the error for {bad} names {expected}: {}", text(&out));
    }
}

#[test]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    for values in VALUE_SETS {
        let manifests = write_temp(&render("af", "artifortress", values));
        let out = run(tool("kubernetes-validate").args(["--strict", "--quiet"]).arg(manifests.path()));
        let report = text(&out);
        assert!(out.status.success() && !report.contains("ERROR"), "{values:?}: {report}");
        // kubernetes-validate knows the built-in kinds only; the Prometheus
        // Operator's kinds are judged by the API server dry-run below.
        for line in report.lines().filter(|l| l.contains("WARN")) {
            assert!(
                line.contains("kind PrometheusRule") || line.contains("kind ServiceMonitor"),
                "{values:?}: unexpected warning {line}"
            );
        }
    }
    let crds: Vec<PathBuf> =
        std::fs::read_dir(Path::new(CHART).join("crds")).unwrap().map(|e| e.unwrap().path()).collect();
    let out = run(tool("kubernetes-validate").args(["--strict", "--quiet"]).args(&crds));
    assert!(out.status.success() && !text(&out).contains("ERROR"), "CRDs: {}", text(&out));
}

#[tokio::test]
async fn the_api_server_accepts_the_rendered_manifests() {
    let client = support::kube_client().await;
    support::install_crds(&client).await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/monitoring-crds.yaml");
    let out = run(Command::new("kubectl").args(["apply", "--server-side", "-f", fixtures]));
    assert!(out.status.success(), "{}", text(&out));
    let ns = support::create_namespace(&client).await;
    for values in VALUE_SETS {
        let rendered = render(&support::unique_name("dry"), &ns, values);
        let kinds: Vec<String> =
            documents(&rendered).iter().map(|d| d["kind"].as_str().unwrap().to_lowercase()).collect();
        let manifests = write_temp(&rendered);
        // The CRDs above may take a moment to be served.
        let mut attempt = 0;
        let report = loop {
            let out = run(Command::new("kubectl")
                .args(["apply", "--server-side", "--dry-run=server", "--namespace", &ns, "-f"])
                .arg(manifests.path()));
            attempt += 1;
            if out.status.success() || attempt == 10 {
                assert!(out.status.success(), "{values:?}: {}", text(&out));
                break text(&out);
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        for kind in &kinds {
            let applied = |l: &str| l.starts_with(&format!("{kind}.")) || l.starts_with(&format!("{kind}/"));
            assert!(report.lines().any(applied), "{values:?}: {kind} applied: {report}");
        }
        assert_eq!(report.matches("(server dry run)").count(), kinds.len(), "{values:?}: {report}");
    }
}

/// `make e2e-kind` cannot run here (no Docker); its manifests and script are
/// kept valid instead.
#[tokio::test]
async fn the_kind_e2e_manifests_are_valid() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/e2e");
    let services = e2e.join("services.yaml");
    let out = run(tool("kubernetes-validate").args(["--strict", "--quiet"]).arg(&services));
    assert!(out.status.success() && text(&out).is_empty(), "{}", text(&out));
    let client = support::kube_client().await;
    support::install_crds(&client).await;
    let ns = support::create_namespace(&client).await;
    for file in [services, e2e.join("drill.yaml")] {
        let out = run(Command::new("kubectl")
            .args(["apply", "--server-side", "--dry-run=server", "--namespace", &ns, "-f"])
            .arg(&file));
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/e2e-kind.sh");
    let out = run(Command::new("bash").args(["-n", script]));
    assert!(out.status.success(), "{}", text(&out));
}

/// Failed checkov checks (id, resource) on the chart with default values and
/// on the all-options rendering.
fn checkov_failures() -> Vec<(String, String)> {
    let all_options = write_temp(&render("af", "artifortress", &["--values", ALL_OPTIONS]));
    let scans = [
        run(tool("checkov").args(["-d", CHART, "--framework", "helm"]).args(CHECKOV_OPTIONS)),
        run(tool("checkov")
            .arg("-f")
            .arg(all_options.path())
            .args(["--framework", "kubernetes"])
            .args(CHECKOV_OPTIONS)),
    ];
    let mut failures = Vec::new();
    for out in scans {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("checkov JSON: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let reports = if report.is_array() { report.as_array().unwrap().clone() } else { vec![report] };
        assert!(reports.iter().any(|r| r["summary"]["passed"].as_u64() > Some(50)), "checkov scanned: {reports:?}");
        for r in reports {
            for check in r["results"]["failed_checks"].as_array().into_iter().flatten() {
                failures.push((check["check_id"].as_str().unwrap().into(), check["resource"].as_str().unwrap().into()));
            }
        }
    }
    failures
}

/// Offline: no download of check metadata, no upload of results.
const CHECKOV_OPTIONS: [&str; 4] = ["--skip-download", "--compact", "--quiet", "--output=json"];

#[test]
fn every_failed_checkov_check_has_a_written_reason() {
    let readme = std::fs::read_to_string(Path::new(CHART).join("README.md")).unwrap();
    // Rows of the table: | CKV_... | resource | reason |
    let documented: Vec<(String, String)> = readme
        .lines()
        .filter(|l| l.starts_with("| CKV"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[3].to_string())
        })
        .collect();
    let failures = checkov_failures();
    for (id, resource) in &failures {
        let reason = documented.iter().find(|(d, _)| d == id).map(|(_, r)| r.as_str());
        assert!(
            reason.is_some_and(|r| r.len() > 20),
            "checkov {id} fails for {resource} with no reason in the chart README"
        );
    }
    for (id, _) in &documented {
        assert!(
            failures.iter().any(|(f, _)| f == id),
            "{id} is explained in the README but no longer fails: remove it"
        );
    }
}

/// Applies the rendered ServiceAccount and RBAC for real and returns a kubeconfig
/// file for that ServiceAccount's token.
async fn service_account_kubeconfig(client: &kube::Client, ns: &str, rendered: &str) -> tempfile::NamedTempFile {
    let rbac: Vec<serde_json::Value> = documents(rendered)
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str().unwrap(),
                "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
            )
        })
        .collect();
    assert!(rbac.len() >= 7, "ServiceAccount, 2 Roles, 2 RoleBindings, delegated-auth ClusterRole and binding");
    let manifests =
        write_temp(&rbac.iter().map(|d| serde_saphyr::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n"));
    let out = run(Command::new("kubectl").args(["apply", "--namespace", ns, "-f"]).arg(manifests.path()));
    assert!(out.status.success(), "{}", text(&out));

    let account = rbac.iter().find(|d| d["kind"] == "ServiceAccount").unwrap()["metadata"]["name"].as_str().unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    write_temp(
        &serde_saphyr::to_string(&json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "test", "cluster": {"server": support::env("AF_TEST_KUBE_SERVER"), "insecure-skip-tls-verify": true}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator"}}],
        }))
        .unwrap(),
    )
}

/// The operator exactly as the rendered Deployment starts it (arguments and
/// environment), but on a free local port, with the given kubeconfig and the
/// TLS Secret's mount replaced by `tls_dir`.
fn operator_from_deployment(rendered: &str, ns: &str, kubeconfig: &Path, tls_dir: &Path) -> Operator {
    let deployment = documents(rendered).into_iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "tls").unwrap();
    let mount = mount["mountPath"].as_str().unwrap();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace(mount, tls_dir.to_str().unwrap()))
        .filter(|a| a != "run" && !a.starts_with("--listen"))
        .chain(["--listen".to_string(), "127.0.0.1:0".to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => "operator-0".to_string(),
                Some("metadata.namespace") => ns.to_string(),
                Some(other) => panic!("unexpected fieldRef {other}"),
                None => e["value"].as_str().unwrap().to_string(),
            };
            (name, value)
        })
        .collect();
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Operator::run_with_env(&args, &env)
}

#[tokio::test]
async fn the_operator_completes_a_drill_with_only_the_rendered_rbac() {
    let i = Installation::without_controllers("chartrbac").await;
    let release = support::unique_name("rbac");
    // Job defaults from the chart's values reach the operator's Jobs.
    let values = [
        "rbac.secretNames={db,s3,target}",
        "imagePullSecrets[0].name=registry",
        "jobDefaults.podLabels.team=storage",
        "jobDefaults.activeDeadlineSeconds=7200",
        "jobDefaults.resources.requests.cpu=3",
    ];
    let args: Vec<&str> = values.iter().flat_map(|v| ["--set", *v]).collect();
    let rendered = render(&release, &i.ns, &args);
    let kubeconfig = service_account_kubeconfig(&i.client, &i.ns, &rendered).await;

    // Least privilege is real: the token reads named Secrets, but cannot list them.
    let config = kube::config::Kubeconfig::read_from(kubeconfig.path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap();
    let as_operator = kube::Client::try_from(config).unwrap();
    let secrets = Api::<Secret>::namespaced(as_operator.clone(), &i.ns);
    assert!(secrets.get("db").await.is_ok());
    let denied = secrets.list(&ListParams::default()).await.unwrap_err();
    assert!(denied.to_string().contains("forbidden"), "{denied}");

    // The chart serves HTTPS by default, from a kubernetes.io/tls Secret's files.
    let tls = tempfile::tempdir().unwrap();
    support::write_self_signed(tls.path(), "artifortress-operator");
    let operator = operator_from_deployment(&rendered, &i.ns, kubeconfig.path(), tls.path());
    i.create(
        "RecoveryDrill",
        json!({"metadata": {"name": "with-chart-rbac"},
               "spec": {"artifortressRef": {"name": "production"}, "backup": {"mode": "Fresh"},
                        "target": {"connectionSecretRef": {"name": "target", "key": "uri"}},
                        "rpo": "1h", "rto": "30m"}}),
    )
    .await;
    let drill = wait_until(&i.api::<RecoveryDrill>(), "with-chart-rbac", Duration::from_secs(180), |d| {
        matches!(d.status.as_ref().and_then(|s| s.phase), Some(DrillPhase::Succeeded | DrillPhase::Failed))
    })
    .await;
    let status = drill.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{status:?}\n{}", operator.logs());
    assert!(operator.leads());
    let restore = i.api::<Job>().get("restore-with-chart-rbac").await.unwrap().spec.unwrap();
    assert_eq!(restore.active_deadline_seconds, Some(7200));
    let pod = restore.template;
    assert_eq!(pod.metadata.unwrap().labels.unwrap()["team"], "storage");
    let pod = pod.spec.unwrap();
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "registry", "the chart's pull secret by default");
    assert!(pod.containers[0].args.as_ref().unwrap().join(" ").contains("--jobs 3"), "pg_restore -j from the request");

    // The delegated-auth ClusterRole lets the HTTP API authenticate callers.
    let summary = "/v1/admin/ops/summary?installation=production";
    let (code, body, _) =
        support::https_get(&operator.addr(), summary, Some(&support::env("AF_TEST_KUBE_TOKEN_ADMIN"))).await;
    assert_eq!(code, 200, "{body}");
    let logs = operator.logs();
    assert!(!logs.to_lowercase().contains("forbidden"), "every call the operator made was allowed:\n{logs}");

    for kind in ["clusterrole", "clusterrolebinding"] {
        let name = format!("{release}-artifortress-operator-delegated-auth");
        let _ = Command::new("kubectl").args(["delete", kind, &name]).output();
    }
}
