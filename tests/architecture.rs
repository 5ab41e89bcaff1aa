//! The layering the architecture rests on (docs/architecture.md), checked on
//! the source: the engine, the stores and the database code know nothing of
//! Kubernetes, the CRDs, the controllers or the HTTP server; the stores do not
//! need the database code; controllers and server meet only in the registry of
//! installations; the formats crate depends on no Kubernetes crate; the
//! engine, the stores and the database code know nothing of Artifortress
//! (`src/artifortress/` is where that knowledge lives: the command line, the
//! server and the controllers bring the two together).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every line of code (comments aside) of `dir`'s sources naming one of
/// `forbidden`, as `file:line: text`.
fn uses(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in rust_files(&root.join(dir)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", file.strip_prefix(root).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    found
}

const KUBERNETES: [&str; 8] = [
    "crate::api",
    "crate::controller",
    "crate::server",
    "crate::installations",
    "kube::",
    "kube_runtime",
    "k8s_openapi",
    "schemars",
];

#[test]
fn engine_stores_and_database_code_know_no_kubernetes() {
    for dir in ["src/engine", "src/store", "src/db"] {
        assert_eq!(uses(dir, &KUBERNETES), Vec::<String>::new(), "{dir} must not depend on these");
    }
}

#[test]
fn engine_stores_and_database_code_know_nothing_of_artifortress() {
    for dir in ["src/engine", "src/store", "src/db"] {
        assert_eq!(uses(dir, &["crate::artifortress"]), Vec::<String>::new(), "{dir} stays generic");
    }
    // Artifortress's tables are named in its own module only.
    let tables = ["audit_log", "outbox_events", "search_index_jobs", "gc_runs", "upload_sessions", "artifact_entries"];
    for dir in ["src/engine", "src/store", "src/db", "src/server", "src/controller"] {
        assert_eq!(uses(dir, &tables), Vec::<String>::new(), "{dir} names Artifortress's tables");
    }
}

#[test]
fn stores_do_not_depend_on_the_database_code() {
    assert_eq!(uses("src/store", &["crate::db"]), Vec::<String>::new());
}

#[test]
fn controllers_and_server_meet_only_in_the_registry() {
    assert_eq!(uses("src/controller", &["crate::server"]), Vec::<String>::new());
    assert_eq!(uses("src/server", &["crate::controller"]), Vec::<String>::new());
}

#[test]
fn the_formats_crate_depends_on_no_kubernetes_crate() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/Cargo.toml")).unwrap();
    for krate in ["kube", "k8s-openapi", "schemars"] {
        assert!(!manifest.lines().any(|l| l.trim_start().starts_with(krate)), "formats depends on {krate}");
    }
    assert_eq!(uses("formats/src", &KUBERNETES), Vec::<String>::new());
}

#[test]
fn the_check_sees_a_forbidden_use() {
    // A guard against a scan that silently finds no files.
    assert!(!uses("src/controller", &["crate::api"]).is_empty());
}
