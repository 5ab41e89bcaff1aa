//! Writes the generated CRDs to the directories that ship them.
//!
//! The CRDs are never edited by hand: `artifortress-operator crd --out-dir` regenerates
//! them and `tests/crds_in_sync.rs` fails when a committed copy drifts from the code.

use std::path::{Path, PathBuf};

use crate::api;

/// Directories (relative to the repository root) that hold a copy of the CRDs.
pub const CRD_DIRS: &[&str] = &["crds", "charts/artifortress-operator/crds"];

/// All CRDs as one multi-document YAML stream.
pub fn all_crds_yaml() -> String {
    api::crds().iter().map(api::crd_yaml).map(|doc| format!("---\n{doc}")).collect()
}

/// The files `crd --out-dir DIR` writes: (file name, content).
pub fn crd_files() -> Vec<(String, String)> {
    api::crds().iter().map(|crd| (api::crd_file_name(crd), api::crd_yaml(crd))).collect()
}

/// Writes one file per CRD into `dir`, removing stale `*.artifortress.io.yaml` files.
pub fn write_crds(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = crd_files();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".artifortress.io.yaml") && !files.iter().any(|(f, _)| *f == name) {
            std::fs::remove_file(&path)?;
        }
    }
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}
