//! The stored formats, pinned: files written by the operator as it was before
//! the formats had their own crate (tests/golden) must parse, and writing the
//! parsed values must give exactly the committed bytes. A change that fails
//! here changes what is on disk in users' buckets: give it a new format version
//! and a reader for the old one instead.

use artifortress_formats::FormatError;
use artifortress_formats::manifest::{Manifest, VerifyMode};
use artifortress_formats::record::RestoreRecord;
use artifortress_formats::verdict::{DrillResult, FinalPhase, Verdict};

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_field(json: &[u8], key: &str, value: serde_json::Value) -> Vec<u8> {
    let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json).unwrap();
    doc.insert(key.to_string(), value);
    serde_json::to_vec(&doc).unwrap()
}

const MANIFEST_V1: &str = "store-v1/golden-v1/manifest.json";

#[test]
fn manifest_v1_parses_and_writes_back_byte_for_byte() {
    let bytes = golden(MANIFEST_V1);
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.manifest_version, 1);
    assert_eq!(m.backup_name, "golden-v1");
    assert_eq!(m.source.system_identifier, "7714455088091111146");
    assert_eq!(m.verify, VerifyMode::Checksums);
    assert_eq!(m.dump.size_bytes, 1110);
    assert_eq!(m.tables.len(), 3);
    assert_eq!(m.tables[0].table, r#""Odd Schema"."Mixed Case""#);
    assert_eq!(m.tables[2].checksum.as_deref(), Some("2276670092956873284"));
    assert_eq!(String::from_utf8(m.to_json()).unwrap(), String::from_utf8(bytes).unwrap());
}

/// An encrypted backup's manifest: version 2, so readers of version 1 refuse
/// it instead of taking the age file for a zstd stream.
#[test]
fn an_encrypted_manifest_is_version_2_and_writes_back_byte_for_byte() {
    let bytes = golden("manifest-v2-encrypted.json");
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.manifest_version, 2);
    assert_eq!(artifortress_formats::manifest::version_for(m.encryption.as_ref()), 2);
    let encryption = m.encryption.as_ref().unwrap();
    assert_eq!((encryption.format.as_str(), encryption.recipients.len(), encryption.passphrase), ("age", 2, false));
    assert_eq!(m.dump.file, "dump.zst.age");
    assert_eq!(String::from_utf8(m.to_json()).unwrap(), String::from_utf8(bytes).unwrap().trim_end());
    assert_eq!(artifortress_formats::manifest::version_for(None), 1);
}

#[test]
fn a_manifest_with_fields_this_reader_does_not_know_still_parses() {
    let bytes = golden(MANIFEST_V1);
    let extended = with_field(&bytes, "addedLater", serde_json::json!({"roles": ["app"]}));
    assert_eq!(Manifest::parse(&extended).unwrap(), Manifest::parse(&bytes).unwrap());
}

#[test]
fn a_newer_manifest_is_refused_naming_the_tool_to_use() {
    let newer = with_field(&golden(MANIFEST_V1), "manifestVersion", 3.into());
    let newer = with_field(&newer, "toolVersion", "artifortress-operator 2.3.0".into());
    let err = Manifest::parse(&newer).unwrap_err();
    assert!(matches!(err, FormatError::Newer { found: 3, supported: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("use artifortress-operator 2.3.0 or newer"), "{err}");
}

#[test]
fn the_unversioned_verdict_is_version_1_and_writes_the_v1_layout() {
    let v = Verdict::parse(&golden("verdict-unversioned.json")).unwrap();
    assert_eq!(v.verdict_version, 1);
    assert_eq!((v.phase, v.result), (FinalPhase::Failed, DrillResult::Failed));
    assert_eq!(v.failures.len(), 1);
    assert_eq!(v.rto.as_ref().and_then(|o| o.met), Some(false));
    assert_eq!(v.rpo.as_ref().map(|o| o.summary.as_str()), Some("209ms / 87600h"));
    assert_eq!(v.parity.len(), 3);
    assert!(v.parity.iter().all(|p| p.matches));
    assert_eq!(v.backup.as_ref().map(|b| b.name.as_str()), Some("golden-v1"));
    // v1 is the unversioned layout with its version written first.
    let v1 = golden("verdict-v1.json");
    assert_eq!(String::from_utf8(v.to_json()).unwrap(), String::from_utf8(v1.clone()).unwrap());
    assert_eq!(Verdict::parse(&v1).unwrap(), v);
}

#[test]
fn a_newer_verdict_is_refused() {
    let newer = with_field(&golden("verdict-v1.json"), "verdictVersion", 7.into());
    assert!(matches!(Verdict::parse(&newer), Err(FormatError::Newer { found: 7, .. })));
}

#[test]
fn the_unversioned_restore_record_is_version_1() {
    let r = RestoreRecord::parse(&golden("restore-record-unversioned.json")).unwrap();
    assert_eq!((r.record_version, r.drill.as_str(), r.backup.as_str()), (1, "golden-drill-0a1b2c3d", "golden-v1"));
    assert!(r.scratch_created && r.failures.is_empty());
    let v1 = golden("restore-record-v1.json");
    assert_eq!(String::from_utf8(r.to_json()).unwrap(), String::from_utf8(v1).unwrap());
}

#[test]
fn base_manifest_v1_parses_and_writes_back_byte_for_byte() {
    use artifortress_formats::physical::{BaseManifest, Lsn};
    let bytes = golden("base-manifest-v1.json");
    let m = BaseManifest::parse(&bytes).unwrap();
    assert_eq!((m.base_manifest_version, m.timeline, m.source.major), (1, 1, 15));
    assert_eq!((m.start_lsn, m.end_lsn), (Lsn(0x400_0028), Lsn(0x400_0100)));
    assert_eq!(m.segment_of(m.start_lsn).name(), "000000010000000000000004");
    assert_eq!(m.source.recovery_settings["max_connections"], "300");
    assert_eq!(String::from_utf8(m.to_json()).unwrap(), String::from_utf8(bytes.clone()).unwrap());
    // Version 2 adds `encryption` (written only for an encrypted base).
    let encrypted = with_field(&bytes, "baseManifestVersion", serde_json::json!(2));
    let encrypted = with_field(&encrypted, "encryption", serde_json::json!({"format": "age", "recipients": ["age1x"]}));
    assert_eq!(BaseManifest::parse(&encrypted).unwrap().encryption.unwrap().recipients, ["age1x"]);
    let newer = with_field(&bytes, "baseManifestVersion", serde_json::json!(3));
    assert!(matches!(BaseManifest::parse(&newer), Err(FormatError::Newer { found: 3, .. })));
}
