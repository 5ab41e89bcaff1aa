//! Every input a fuzzer found failing (tests/fuzz-regressions/<target>/), kept
//! as a test once fixed. hack/fuzz.sh says where to put a new one.

use std::path::Path;

use artifortress_formats::invariants;

fn each_input(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|f| f != ".gitkeep") {
            check(&std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn archive() {
    each_input("archive", invariants::archive);
}

#[test]
fn manifest() {
    each_input("manifest", invariants::manifest);
}

#[test]
fn verdict() {
    each_input("verdict", invariants::verdict);
}

#[test]
fn tokens() {
    each_input("tokens", invariants::tokens);
}

#[test]
fn physical() {
    each_input("physical", invariants::physical);
}
