use super::*;

/// A row and what references it.
fn r(key: &str, length: i64, class: RowClass) -> (Result<BlobRow, EngineError>, RowClass) {
    (Ok(BlobRow { key: key.into(), length, digest: format!("d-{key}") }), class)
}

fn o(key: &str, size: u64) -> Result<ObjectInfo, EngineError> {
    Ok(ObjectInfo { key: key.into(), size, modified: None })
}

/// The merge, and the keys offered to the sample; what references a row is
/// told only for the digests the merge asks about (those must be missing).
async fn run(
    rows: Vec<(Result<BlobRow, EngineError>, RowClass)>,
    objects: Vec<Result<ObjectInfo, EngineError>>,
) -> (Merged, Vec<String>) {
    let in_flight: HashSet<String> = ["x-open".to_string()].into();
    let classes: std::collections::HashMap<String, RowClass> =
        rows.iter().map(|(row, class)| (row.as_ref().unwrap().digest.clone(), *class)).collect();
    let present: HashSet<String> = objects.iter().map(|o| format!("d-{}", o.as_ref().unwrap().key)).collect();
    let classify = |digests: Vec<String>| {
        assert!(digests.iter().all(|d| !present.contains(d)), "only missing rows are classified: {digests:?}");
        let found = digests.iter().map(|d| classes[d]).collect();
        async move { Ok(found) }
    };
    let mut offered = Vec::new();
    let rows = futures::stream::iter(rows.into_iter().map(|(row, _)| row));
    let merged = merge(rows, futures::stream::iter(objects), &in_flight, classify, |r| offered.push(r.key.clone()))
        .await
        .unwrap();
    (merged, offered)
}

#[tokio::test]
async fn rows_and_objects_are_classified_and_named() {
    use RowClass::*;
    let (m, offered) = run(
        vec![
            r("a", 1, Referenced),
            r("b", 2, Referenced),
            r("c", 3, CommittedOnly),
            r("e", 5, Unreferenced),
            r("g", 1, Referenced),
        ],
        vec![o("a", 1), o("b", 20), o("d", 4), o("e", 5), o("f", 6), o("x-open", 7)],
    )
    .await;
    let c = &m.check;
    assert_eq!((c.referenced, c.present, c.missing, c.size_mismatches, c.orphans), (5, 3, 2, 1, 3));
    assert_eq!(c.missing_keys, ["c", "g"], "missing objects of rows something references");
    assert_eq!(c.size_mismatch_keys, ["b (database 2 bytes, store 20 bytes)"]);
    assert_eq!(c.missing_classes, Some(BlobClasses { referenced: 1, committed_only: 1, unreferenced: 0 }));
    let w = c.without_row.unwrap();
    assert_eq!((w.in_flight, w.in_flight_bytes, w.leftovers, w.leftover_bytes), (1, 7, 2, 10));
    assert_eq!(m.missing.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["c", "g"]);
    assert_eq!(offered, ["a", "e"], "present rows of the right size are offered to the sample");
}

#[tokio::test]
async fn only_missing_referenced_blobs_fail_a_drill() {
    use RowClass::*;
    let (m, _) = run(vec![r("a", 1, Unreferenced), r("b", 1, CommittedOnly)], vec![]).await;
    let (failures, warnings) = findings(&m.check);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(warnings.len(), 1, "a missing committed-only blob is a warning: {warnings:?}");
    let (m, _) = run(vec![r("a", 1, Referenced)], vec![o("a-leftover", 3)]).await;
    let (failures, _) = findings(&m.check);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "BlobsMissing");
    assert!(failures[0].1.contains("first: a)"), "{}", failures[0].1);
}

#[test]
fn a_reservoir_keeps_k_of_what_it_saw() {
    let mut reservoir = Reservoir { k: 5, seen: 0, kept: Vec::new() };
    for i in 0..1000 {
        reservoir.offer(&BlobRow { key: i.to_string(), length: 1, digest: String::new() });
    }
    assert_eq!((reservoir.kept.len(), reservoir.seen), (5, 1000));
}

#[tokio::test]
async fn missing_rows_are_classified_in_batches_and_named_in_key_order() {
    use RowClass::*;
    let class_of = |i: usize| [Unreferenced, Referenced, CommittedOnly][i % 3];
    let rows: Vec<_> = (0..25_000).map(|i| r(&format!("k{i:05}"), 1, class_of(i))).collect();
    let (m, offered) = run(rows, vec![o("k00000", 1)]).await;
    assert_eq!(offered, ["k00000"]);
    assert_eq!((m.check.present, m.check.missing), (1, 24_999));
    assert_eq!(
        m.check.missing_classes,
        Some(BlobClasses { referenced: 8_333, committed_only: 8_333, unreferenced: 8_333 })
    );
    let named: Vec<String> =
        (1..25_000).filter(|i| class_of(*i) != Unreferenced).take(10).map(|i| format!("k{i:05}")).collect();
    assert_eq!(m.check.missing_keys, named);
    assert_eq!(m.missing.len(), 16_666);
}
