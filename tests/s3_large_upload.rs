//! A 3 GiB stream into Garage with the part size a 100 GB backup gets: equal
//! parts, memory within the documented formula, no timeout. Alone in its test
//! binary, so the process's peak RSS is this upload's.

mod support;

use std::time::Instant;

use artifortress_operator::store::{BackupStore, ByteStream, S3Store, UploadTuning, in_flight_parts, part_size_for};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::{env, s3_client, s3_store_url, unique_name};

const TOTAL: u64 = 3 << 30;
const CHUNK: usize = 1 << 20;

/// Deterministic incompressible bytes, generated chunk by chunk (never held whole).
fn chunk(i: u64) -> Bytes {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(CHUNK);
    for _ in 0..CHUNK / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_three_gib_stream_goes_up_in_equal_parts_within_the_memory_formula() {
    let bucket = unique_name("large");
    let s3 = s3_client().await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let url = url::Url::parse(&s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "af")).unwrap();
    let part = part_size_for(100_000_000_000);
    assert_eq!(part, 20 << 20, "the 100 GB rule");
    let tuning = UploadTuning { part_size: Some(part), ..Default::default() };
    let in_flight = in_flight_parts(part, tuning.memory_budget).unwrap();
    let store = S3Store::from_url(&url).await.unwrap().with_tuning(tuning);

    let mut hasher = Sha256::new();
    let expected: Vec<u8> = {
        for i in 0..TOTAL / CHUNK as u64 {
            hasher.update(chunk(i));
        }
        hasher.finalize_reset().to_vec()
    };
    let body: ByteStream = Box::pin(futures::stream::iter(0..TOTAL / CHUNK as u64).map(|i| Ok(chunk(i))));

    // Peak RSS from here on (writing 5 to clear_refs resets VmHWM).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:") << 10;
    let started = Instant::now();
    let written = store.put_stream_expecting("big/dump", body, TOTAL).await.unwrap();
    let took = started.elapsed();
    let peak = status_kib("VmHWM:") << 10;
    assert_eq!(written, TOTAL);

    // Equal parts: every part but the last has the chosen size.
    let key = "af/big/dump";
    let parts = TOTAL.div_ceil(part as u64);
    let head = s3.head_object().bucket(&bucket).key(key).send().await.unwrap();
    assert_eq!(head.content_length(), Some(TOTAL as i64));
    assert!(head.e_tag().unwrap().ends_with(&format!("-{parts}\"")), "{:?}", head.e_tag());
    for n in [1, parts / 2, parts - 1] {
        let p = s3.head_object().bucket(&bucket).key(key).part_number(n as i32).send().await.unwrap();
        assert_eq!(p.content_length(), Some(part as i64), "part {n}");
    }
    let last = s3.head_object().bucket(&bucket).key(key).part_number(parts as i32).send().await.unwrap();
    assert_eq!(last.content_length(), Some((TOTAL - (parts - 1) * part as u64) as i64));

    // Memory: the documented formula (the parts uploading, the one being read,
    // one freed part the allocator keeps), not the stream's size.
    let formula = (in_flight as u64 + 2) * part as u64;
    let grew = peak.saturating_sub(before);
    eprintln!(
        "3 GiB in {parts} parts of {} MiB in {:.1} s; RSS grew {:.1} MiB (formula {} MiB, {in_flight} in flight)",
        part >> 20,
        took.as_secs_f64(),
        grew as f64 / (1 << 20) as f64,
        formula >> 20
    );
    assert!(grew <= formula + (8 << 20), "RSS grew {grew} bytes; formula {formula}");

    // The content is the stream's, byte for byte.
    let mut stored = store.get_stream("big/dump").await.unwrap();
    while let Some(bytes) = stored.next().await {
        hasher.update(bytes.unwrap());
    }
    assert_eq!(hasher.finalize().to_vec(), expected);
    store.delete("big/dump").await.unwrap();
}
