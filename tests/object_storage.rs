//! The S3 server of the test environment answers the calls the stores rely on,
//! through aws-sdk-s3 over HTTP.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use support::{s3_client, unique_name};

#[tokio::test]
async fn put_get_list_delete_round_trip() {
    let s3 = s3_client().await;
    let bucket = unique_name("roundtrip");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");

    let body = b"artifortress backup bytes \x00\x01\x02".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key("prod/af/b1/dump")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let got = s3.get_object().bucket(&bucket).key("prod/af/b1/dump").send().await.expect("get");
    assert_eq!(got.content_length(), Some(body.len() as i64));
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), body);

    let listed = s3.list_objects_v2().bucket(&bucket).prefix("prod/af/").send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["prod/af/b1/dump"]);

    s3.delete_object().bucket(&bucket).key("prod/af/b1/dump").send().await.expect("delete");
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.expect("list after delete");
    assert!(listed.contents().is_empty());
    s3.delete_bucket().bucket(&bucket).send().await.expect("delete bucket");
}

#[tokio::test]
async fn multipart_upload_and_abort_leave_nothing_behind() {
    let s3 = s3_client().await;
    let bucket = unique_name("multipart");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");

    // Three parts (S3 requires >= 5 MiB for every part but the last).
    let part = vec![7u8; 5 * 1024 * 1024];
    let up = s3.create_multipart_upload().bucket(&bucket).key("big").send().await.unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for n in 1..=3 {
        let body = if n == 3 { vec![9u8; 1024] } else { part.clone() };
        let p = s3
            .upload_part()
            .bucket(&bucket)
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(aws_sdk_s3::types::CompletedPart::builder().part_number(n).e_tag(p.e_tag().unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket(&bucket)
        .key("big")
        .upload_id(id)
        .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .expect("complete multipart upload");
    let head = s3.head_object().bucket(&bucket).key("big").send().await.unwrap();
    assert_eq!(head.content_length(), Some(2 * 5 * 1024 * 1024 + 1024));

    // An aborted upload is gone from ListMultipartUploads.
    let up = s3.create_multipart_upload().bucket(&bucket).key("aborted").send().await.unwrap();
    let id = up.upload_id().unwrap();
    s3.upload_part()
        .bucket(&bucket)
        .key("aborted")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(part))
        .send()
        .await
        .unwrap();
    let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert_eq!(open.uploads().len(), 1);
    s3.abort_multipart_upload().bucket(&bucket).key("aborted").upload_id(id).send().await.unwrap();
    let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(open.uploads().is_empty(), "no multipart upload left behind");
}

mod store_trait {
    use super::support::{self, env, s3_client, s3_store_url, unique_name};
    use artifortress_operator::store::{self, BackupStore, ByteStream, StoreError};
    use bytes::Bytes;
    use futures::StreamExt;

    /// 40 MiB in 1 MiB chunks (three multipart parts), deterministic content;
    /// with `fail_after`, the stream errors after that many chunks.
    fn body(fail_after: Option<usize>) -> ByteStream {
        Box::pin(futures::stream::iter(0..40usize).map(move |i| {
            if Some(i) == fail_after {
                return Err(std::io::Error::other("pg_dump exited with status 1"));
            }
            Ok(Bytes::from(vec![(i % 251) as u8; 1 << 20]))
        }))
    }

    /// A file store (in the returned directory) and an S3 store with a prefix.
    async fn stores() -> (Vec<(Box<dyn BackupStore>, Option<(aws_sdk_s3::Client, String)>)>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = store::open(&format!("file://{}", dir.path().display())).await.unwrap();
        let s3 = s3_client().await;
        let bucket = unique_name("store");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let s3_store = store::open(&s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "pre/fix")).await.unwrap();
        (vec![(file, None), (s3_store, Some((s3, bucket)))], dir)
    }

    #[tokio::test]
    async fn large_streams_round_trip_and_failed_streams_leave_nothing() {
        let (stores, _dir) = stores().await;
        for (store, s3) in stores {
            let written = store.put_stream("b1/dump", body(None)).await.unwrap();
            assert_eq!(written, 40 << 20, "{}", store.url());
            let mut read = Vec::new();
            let mut stream = store.get_stream("b1/dump").await.unwrap();
            while let Some(chunk) = stream.next().await {
                read.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(read.len(), 40 << 20);
            assert!(read.chunks(1 << 20).enumerate().all(|(i, c)| c.iter().all(|b| *b == (i % 251) as u8)));

            let err = store.put_stream("b2/dump", body(Some(30))).await.unwrap_err();
            assert!(matches!(err, StoreError::Aborted { .. }), "{err}");
            assert!(err.to_string().contains("pg_dump exited with status 1"), "{err}");
            let keys: Vec<String> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
            assert_eq!(keys, ["b1/dump"], "{}: the failed write is not listed", store.url());
            assert_eq!(
                store.clean_incomplete("", std::time::Duration::ZERO).await.unwrap(),
                0,
                "nothing half-written left"
            );
            if let Some((s3, bucket)) = s3 {
                let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
                assert!(open.uploads().is_empty(), "the multipart upload was aborted");
                let keys: Vec<String> = s3
                    .list_objects_v2()
                    .bucket(&bucket)
                    .send()
                    .await
                    .unwrap()
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string))
                    .collect();
                assert_eq!(keys, ["pre/fix/b1/dump"], "keys live under the URL's prefix");
            }

            assert!(matches!(store.get_stream("nope").await.err().unwrap(), StoreError::NotFound { .. }));
            store.delete("b1/dump").await.unwrap();
            store.delete("b1/dump").await.unwrap();
            assert!(store.list("").await.unwrap().is_empty());
        }
    }

    /// Keys XML must escape, non-ASCII ones and ones URLs must encode.
    const ODD_KEYS: [&str; 6] =
        ["b/a & b", "b/<tag>\"q\" 'a'", "b/caf\u{e9} \u{1F600}", "b/100%+1=2", "b/x\ty", "b/z]]>end"];

    #[tokio::test]
    async fn listings_page_past_a_thousand_keys_in_byte_order_and_keep_odd_keys_exact() {
        let (mut stores, _dir) = stores().await;
        // The Ceph gateway writes its listings its own way.
        let rgw = support::rgw_client().await;
        let bucket = unique_name("listing");
        rgw.create_bucket().bucket(&bucket).send().await.unwrap();
        let credentials = store::StaticCredentials {
            access_key_id: env("AF_TEST_RGW_ACCESS_KEY_ID"),
            secret_access_key: env("AF_TEST_RGW_SECRET_ACCESS_KEY"),
        };
        let url = s3_store_url(&env("AF_TEST_RGW_ENDPOINT"), &bucket, "pre/fix");
        stores.push((store::open_with_credentials(&url, Some(credentials)).await.unwrap(), Some((rgw, bucket))));
        for (store, s3) in stores {
            let mut keys: Vec<String> = (0..1203).map(|n| format!("b/k{n:05}")).collect();
            keys.extend(ODD_KEYS.iter().map(|k| k.to_string()));
            futures::stream::iter(&keys)
                .map(|k| store.put_bytes(k, k.as_bytes().to_vec()))
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            store.put_bytes("c/other", b"x".to_vec()).await.unwrap();
            if let Some((s3, bucket)) = &s3 {
                // Beside the store's prefix, never listed as its own.
                s3.put_object().bucket(bucket).key("pre/fixed").send().await.unwrap();
            }
            keys.sort();

            let listed = store.list("b/").await.unwrap();
            assert_eq!(listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), keys, "{}", store.url());
            assert!(listed.iter().all(|o| o.size == o.key.len() as u64 && o.modified.is_some()), "{}", store.url());
            let streamed: Vec<String> =
                store.list_stream("").map(|o| o.unwrap().key).collect::<Vec<_>>().await.into_iter().collect();
            assert_eq!(streamed.len(), keys.len() + 1, "{}", store.url());
            assert!(streamed.windows(2).all(|w| w[0] < w[1]), "byte order, page after page: {}", store.url());
            // A slice across a page boundary, its bounds exclusive and inclusive.
            let slice: Vec<String> =
                store.list_range("b/", Some("b/k00990"), Some("b/k01010")).map(|o| o.unwrap().key).collect().await;
            assert_eq!(slice.first().map(String::as_str), Some("b/k00991"), "{}", store.url());
            assert_eq!(slice.last().map(String::as_str), Some("b/k01010"), "{}", store.url());
            assert_eq!(slice.len(), 20, "{}", store.url());
            let tail: Vec<String> =
                store.list_range("b/", Some("b/k01202"), None).map(|o| o.unwrap().key).collect().await;
            let mut odd: Vec<&str> = ODD_KEYS.to_vec();
            odd.retain(|k| *k > "b/k01202");
            assert_eq!(tail, odd, "{}", store.url());
        }
    }
}

#[tokio::test]
async fn unfinished_uploads_are_swept_past_the_first_listing_page_and_only_old_enough_ones() {
    let s3 = s3_client().await;
    let bucket = unique_name("sweep");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    // More unfinished uploads than one ListMultipartUploads page (1 000).
    let created = futures::stream::iter(0..1010)
        .map(|n| {
            let s3 = s3.clone();
            let bucket = bucket.clone();
            async move {
                s3.create_multipart_upload().bucket(&bucket).key(format!("af/b{n:04}/dump")).send().await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(created.len(), 1010);
    let store =
        artifortress_operator::store::open(&support::s3_store_url(&support::env("AF_TEST_S3_ENDPOINT"), &bucket, "af"))
            .await
            .unwrap();
    // None of them is two days old: a sweep of abandoned uploads leaves them.
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(store.clean_incomplete("", 2 * day).await.unwrap(), 0);
    // A backup's own earlier attempt: only its key.
    assert_eq!(store.clean_incomplete("b0007/", std::time::Duration::ZERO).await.unwrap(), 1);
    assert_eq!(store.clean_incomplete("", std::time::Duration::ZERO).await.unwrap(), 1009, "every page swept");
    let left = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(left.uploads().is_empty(), "{} left", left.uploads().len());
}

/// A TCP proxy to `upstream` that, once, stops forwarding a connection after
/// `stall_after` bytes from the client and holds it open in silence — a part
/// upload whose link died without a reset.
struct StallingProxy {
    addr: String,
    stalls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StallingProxy {
    async fn start(upstream: String, stall_after: usize) -> StallingProxy {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stalls = std::sync::Arc::new(AtomicUsize::new(0));
        let armed = std::sync::Arc::new(AtomicBool::new(true));
        let counter = stalls.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let (armed, counter) = (armed.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::spawn(async move {
                    let mut sent = 0;
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        sent += n;
                        if sent > stall_after && armed.swap(false, Ordering::SeqCst) {
                            counter.fetch_add(1, Ordering::SeqCst);
                            // Hold both halves open (this task never ends), forward nothing more.
                            std::future::pending::<()>().await;
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StallingProxy { addr, stalls }
    }
}

#[tokio::test]
async fn a_part_whose_connection_stalls_is_retried_and_the_upload_completes() {
    use artifortress_operator::store::{BackupStore, ByteStream, S3Store, UploadTuning};
    let s3 = s3_client().await;
    let bucket = unique_name("stall");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let upstream = support::env("AF_TEST_S3_ENDPOINT").trim_start_matches("http://").to_string();
    let proxy = StallingProxy::start(upstream, 3 << 20).await;
    let url = url::Url::parse(&support::s3_store_url(&format!("http://{}", proxy.addr), &bucket, "af")).unwrap();
    // Short attempts so the test is quick: 1 s plus the part at 64 MiB/s.
    let tuning = UploadTuning {
        part_size: Some(8 << 20),
        base_timeout: std::time::Duration::from_secs(1),
        min_bytes_per_second: 64 << 20,
        ..Default::default()
    };
    let store = S3Store::from_url(&url).await.unwrap().with_tuning(tuning);
    let body: ByteStream = Box::pin(futures::stream::iter(0..40u8).map(|i| Ok(bytes::Bytes::from(vec![i; 1 << 20]))));
    let written = store.put_stream("b1/dump", body).await.expect("the stalled part is retried");
    assert_eq!(written, 40 << 20);
    assert_eq!(proxy.stalls.load(std::sync::atomic::Ordering::SeqCst), 1, "one part attempt stalled");
    let mut stored = store.get_stream("b1/dump").await.unwrap();
    let mut content = Vec::new();
    while let Some(bytes) = stored.next().await {
        content.extend_from_slice(&bytes.unwrap());
    }
    let expected: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 1 << 20]).collect();
    assert!(content == expected, "content intact");
    let left = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(left.uploads().is_empty(), "the upload completed");
}
