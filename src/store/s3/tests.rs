use super::tuning::{MAX_PART_SIZE, PROCESS_HEADROOM};
use super::*;

#[test]
fn one_part_size_leaves_room_for_twice_the_expected_size_in_ten_thousand_parts() {
    assert_eq!(part_size_for(0), 8 << 20);
    assert_eq!(part_size_for(1 << 30), 8 << 20, "small backups keep 8 MiB parts");
    for expected in [100u64 << 30, 1 << 40, 3 << 40] {
        let part = part_size_for(expected) as u64;
        assert_eq!(part % (1 << 20), 0, "whole MiB");
        assert!(part * MAX_PARTS >= 2 * expected, "{expected}: {part}");
        assert!(part < 2 * (2 * expected / MAX_PARTS) + (1 << 20), "not much larger than needed: {part}");
    }
    assert_eq!(part_size_for(100 << 30), 21 << 20, "100 GiB: 21 MiB parts, about 63 MiB in flight");
    assert_eq!(part_size_for(u64::MAX), MAX_PART_SIZE);
}

#[test]
fn parts_in_flight_fit_the_memory_limit_or_the_upload_is_refused_with_the_limit_it_needs() {
    const MIB: u64 = 1 << 20;
    let budget = |limit_mib: u64| Some(limit_mib * MIB - PROCESS_HEADROOM);
    // The built-in 512 MiB Job limit: 100 GiB (21 MiB parts) keeps 2 in flight, 63 MiB.
    assert_eq!(in_flight_parts(21 << 20, budget(512)), Ok(2));
    assert_eq!(in_flight_parts(21 << 20, None), Ok(2), "no limit known");
    // 1 TiB wants 210 MiB parts: refused before anything is uploaded at
    // 512 MiB, naming the limit that works; 1 GiB runs 2 parts at once.
    let refused = in_flight_parts(part_size_for(1 << 40), budget(512)).unwrap_err();
    assert!(refused.contains("at least 726 MiB") && refused.contains("limits.memory"), "{refused}");
    assert_eq!(in_flight_parts(part_size_for(1 << 40), budget(800)), Ok(1));
    assert_eq!(in_flight_parts(part_size_for(1 << 40), budget(1024)), Ok(2));
}

#[test]
fn a_part_attempt_has_time_for_its_size_at_one_mib_per_second() {
    let t = UploadTuning { memory_budget: None, ..Default::default() };
    assert_eq!(t.attempt_timeout(21 << 20), Duration::from_secs(51));
    assert_eq!(t.attempt_timeout(256 << 20), Duration::from_secs(286), "a 256 MiB part is not cut at 30 s");
}
