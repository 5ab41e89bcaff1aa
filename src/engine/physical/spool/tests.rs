use super::*;

const MIB16: u64 = 16 << 20;
const SYSTEM: &str = "7400000000000000001";

/// A segment file as pg_receivewal leaves it: its page header (of `system`),
/// then zeros (only the header is ever read).
fn segment(spool: &Path, file: &str, system: &str) {
    let name = file.strip_suffix(".partial").unwrap_or(file);
    let s = Segment::parse(name, MIB16).unwrap();
    let header = SegmentHeader {
        timeline: s.timeline,
        page_address: Lsn(s.number * MIB16),
        system_identifier: system.parse().unwrap(),
        segment_bytes: MIB16 as u32,
    };
    let mut bytes = header.to_le_bytes().to_vec();
    bytes.resize(8192, 0);
    std::fs::write(spool.join(file), bytes).unwrap();
}

fn served(from: &str, to: &str) -> Served {
    Served { from: from.parse().unwrap(), to: to.parse().unwrap() }
}

fn claim_of(spool: &Path, system: &str, slot: &str, served: &Served) -> (Claimed, Vec<String>) {
    let mut rejections = Vec::new();
    let claimed = claim(spool, system, slot, MIB16, served, &mut rejections).unwrap();
    (claimed, rejections)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_spool_of_this_system_and_slot_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let here = served("0/3000000", "0/5000100");
    assert_eq!(claim_of(&spool, SYSTEM, "s", &here).0, Claimed::New);
    segment(&spool, "000000010000000000000004", SYSTEM);
    segment(&spool, "000000010000000000000005.partial", SYSTEM);
    assert_eq!(claim_of(&spool, SYSTEM, "s", &here), (Claimed::Resumed, vec![]));
    assert!(files(&spool).contains(&"000000010000000000000005.partial".to_string()));
}

#[test]
fn a_spool_of_another_system_or_slot_is_moved_aside_whole() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let here = served("0/3000000", "0/9000000");
    claim_of(&spool, "7300000000000000009", "s", &here);
    segment(&spool, "000000010000000000000003", "7300000000000000009");
    let (claimed, _) = claim_of(&spool, SYSTEM, "s", &here);
    let Claimed::MovedAside { moved_to, reason } = claimed else { panic!("{claimed:?}") };
    assert_eq!(reason, "it holds WAL of database system 7300000000000000009");
    assert!(files(&moved_to).contains(&"000000010000000000000003".to_string()), "kept there, not deleted");
    assert_eq!(files(&spool), ["artifortress-wal-spool"], "a new spool in its place");

    let (claimed, _) = claim_of(&spool, SYSTEM, "other", &here);
    assert!(matches!(claimed, Claimed::MovedAside { reason, .. } if reason == "it belongs to slot s"));

    // The marker of an older archiver records neither.
    std::fs::write(spool.join(MARKER), "the spool of an artifortress-operator WAL archiver\n").unwrap();
    let (claimed, _) = claim_of(&spool, SYSTEM, "other", &here);
    assert!(matches!(claimed, Claimed::MovedAside { reason, .. } if reason.contains("records no system")));
}

#[test]
fn a_segment_whose_header_is_another_systems_is_rejected_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let here = served("0/3000000", "0/9000000");
    claim_of(&spool, SYSTEM, "s", &here);
    segment(&spool, "000000010000000000000004", SYSTEM);
    segment(&spool, "000000010000000000000005", "7300000000000000009");
    let (claimed, rejections) = claim_of(&spool, SYSTEM, "s", &here);
    assert_eq!(claimed, Claimed::Resumed);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(
        rejections[0].starts_with(
            "WAL segment 000000010000000000000005 is from database system 7300000000000000009, not 7400000000000000001: moved to"
        ),
        "{rejections:?}"
    );
    assert_eq!(files(&spool.join(REJECTED)), ["000000010000000000000005"]);
    assert!(!files(&spool).contains(&"000000010000000000000005".to_string()));
}

#[test]
fn a_spool_ahead_of_the_server_is_moved_aside_and_one_behind_the_slot_is_drained() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    claim_of(&spool, SYSTEM, "s", &served("0/1000000", "0/9000000"));
    segment(&spool, "000000010000000000000003", SYSTEM);
    // The server was restored to an earlier point: the spool's WAL is another history.
    let (claimed, _) = claim_of(&spool, SYSTEM, "s", &served("0/1000000", "0/2000100"));
    assert!(
        matches!(&claimed, Claimed::MovedAside { reason, .. } if reason.starts_with("it resumes at WAL address 0/4000000, ahead of the server's position 0/2000100")),
        "{claimed:?}"
    );
    // The slot was recreated past the spool's WAL.
    segment(&spool, "000000010000000000000003", SYSTEM);
    let (claimed, _) = claim_of(&spool, SYSTEM, "s", &served("0/7000028", "0/7000100"));
    assert!(matches!(&claimed, Claimed::Behind { reason } if reason.contains("the slot was recreated")), "{claimed:?}");
    assert!(matches!(restart(&spool, SYSTEM, "s", "behind".into()).unwrap(), Claimed::MovedAside { .. }));
    assert_eq!(files(&spool), ["artifortress-wal-spool"]);
}

#[test]
fn a_directory_that_is_no_spool_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    segment(dir.path(), "000000010000000000000003", SYSTEM);
    let mut rejections = Vec::new();
    let e = claim(dir.path(), SYSTEM, "s", MIB16, &served("0/0", "0/9000000"), &mut rejections).unwrap_err();
    assert_eq!(e.reason(), Some("NotOurs"));
    assert_eq!(files(dir.path()), ["000000010000000000000003"]);
}

#[test]
fn each_source_system_gets_its_own_default_spool() {
    assert_ne!(default_dir("7300000000000000009", "s"), default_dir(SYSTEM, "s"));
    assert_ne!(default_dir(SYSTEM, "a"), default_dir(SYSTEM, "b"));
}

#[test]
fn a_growing_segment_left_short_is_set_aside_and_a_full_or_empty_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path();
    segment(spool, "000000010000000000000004", SYSTEM);
    let growing = spool.join("000000010000000000000005.partial");
    std::fs::File::create(&growing).unwrap().set_len(MIB16).unwrap();
    assert_eq!(set_aside_unfinished(spool, MIB16).unwrap(), None);
    std::fs::File::create(&growing).unwrap().set_len(0).unwrap();
    assert_eq!(set_aside_unfinished(spool, MIB16).unwrap(), None);
    // Stopped while pg_receivewal was filling it: the size it refuses.
    std::fs::File::create(&growing).unwrap().set_len(5_955_584).unwrap();
    let said = set_aside_unfinished(spool, MIB16).unwrap().expect("set aside");
    assert!(
        said.starts_with("WAL segment 000000010000000000000005.partial is a growing segment of 5955584 bytes"),
        "{said}"
    );
    assert!(!growing.exists());
    assert!(spool.join("rejected/000000010000000000000005.partial").exists());
    assert!(spool.join("000000010000000000000004").exists(), "complete segments stay");
    // Left short again: what was set aside before is kept beside it.
    std::fs::File::create(&growing).unwrap().set_len(8192).unwrap();
    let said = set_aside_unfinished(spool, MIB16).unwrap().expect("set aside");
    assert!(said.ends_with("rejected/000000010000000000000005.partial-2 and never uploaded"), "{said}");
    assert_eq!(std::fs::metadata(spool.join("rejected/000000010000000000000005.partial")).unwrap().len(), 5_955_584);
}
