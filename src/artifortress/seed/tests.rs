use super::*;

#[test]
fn blob_content_is_deterministic_and_varied() {
    assert_eq!(blob_content(1), blob_content(1));
    assert_ne!(blob_content(1).len(), blob_content(2).len());
    assert!(blob_content(1).starts_with(b"artifortress seed blob 1\n"));
}

#[test]
fn the_blob_layout_covers_every_class() {
    let b = BlobLayout::of(&Scale::Small.sizes(1));
    assert_eq!((b.entry_blobs, b.manifest_blobs, b.committed_only, b.unreferenced), (2_000, 500, 20, 40));
    assert_eq!(b.total(), 2_560);
    assert_eq!(b.committed(), 2_520);
    assert_eq!(Scale::Small.sizes(3).tenants, 3);
}
