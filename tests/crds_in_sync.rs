//! The CRD files shipped in the repository are exactly what the code generates.

use std::path::Path;

use artifortress_operator::crdgen::{CRD_DIRS, crd_files};

#[test]
fn committed_crds_match_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = crd_files();
    assert_eq!(expected.len(), 4, "four kinds");
    for dir in CRD_DIRS {
        let dir = root.join(dir);
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        assert_eq!(on_disk, names, "{}: run `make crds` to regenerate", dir.display());
        for (name, content) in &expected {
            let committed = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(
                committed == *content,
                "{}/{name} differs from the code: run `make crds` and commit the result",
                dir.display()
            );
        }
    }
}

#[test]
fn crd_command_prints_all_four_kinds() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_artifortress-operator")).arg("crd").output().expect("run crd");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["spec"]["names"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Artifortress", "Backup", "BackupSchedule", "RecoveryDrill"]);
    for (doc, short) in docs.iter().zip(["af", "afbk", "afbs", "drill"]) {
        assert_eq!(doc["spec"]["names"]["shortNames"][0].as_str(), Some(short));
        let version = &doc["spec"]["versions"][0];
        assert_eq!(version["name"].as_str(), Some("v1alpha1"));
        assert!(version["subresources"]["status"].is_object(), "status subresource");
    }
}
