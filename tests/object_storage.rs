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
    use super::support::{env, s3_client, s3_store_url, unique_name};
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
