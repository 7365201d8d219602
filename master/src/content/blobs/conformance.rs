//! The conformance suite every [`BlobStore`] backend runs. A backend's
//! tests call [`blob_store_conformance!`](crate::blob_store_conformance)
//! with a function that opens an empty store (and returns a guard keeping
//! it alive).

use rigger_common::digest::Digest;
use tokio::io::AsyncReadExt;

use super::{BlobError, BlobStore};

/// A test that runs every case of [`CASES`] against a new, empty store
/// from `$open().await` (which returns `(guard, store)`), saying which case
/// runs so that a failure names it.
#[macro_export]
macro_rules! blob_store_conformance {
    ($open:path) => {
        #[tokio::test]
        async fn the_conformance_suite() {
            for (name, case) in $crate::content::blobs::conformance::CASES {
                eprintln!("conformance case {name}");
                let (_guard, store) = $open().await;
                case(&store).await;
            }
        }
    };
}

/// One behaviour every backend has, checked against an empty store.
pub type Case =
    for<'a> fn(&'a dyn BlobStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

conformance_cases!(
    a_blob_is_stored_once_under_its_digest,
    a_stream_comes_back_byte_for_byte,
    a_missing_blob_is_reported_as_missing,
    a_blob_opened_by_its_head_reads_on_after_it,
    list_and_delete_see_every_blob,
);

/// Storing the same bytes twice stores them once, under their sha256.
pub async fn a_blob_is_stored_once_under_its_digest(store: &dyn BlobStore) {
    let first = store.put(b"hello".to_vec()).await.unwrap();
    assert!(first.new);
    assert_eq!((first.digest, first.size), (Digest::of(b"hello"), 5));
    let again = store.put(b"hello".to_vec()).await.unwrap();
    assert!(!again.new, "stored twice");
    assert!(store.has(&first.digest).await.unwrap());
    assert!(!store.has(&Digest::of(b"other")).await.unwrap());
    assert_eq!(store.read(&first.digest).await.unwrap(), b"hello");
    let empty = store.put(Vec::new()).await.unwrap();
    assert_eq!(empty.digest, Digest::of(b""));
    assert_eq!(store.read(&empty.digest).await.unwrap(), b"");
}

/// A large blob streamed in comes out the same, through `open`.
pub async fn a_stream_comes_back_byte_for_byte(store: &dyn BlobStore) {
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let stored = store
        .put_stream(Box::pin(std::io::Cursor::new(bytes.clone())))
        .await
        .unwrap();
    assert_eq!(
        (stored.digest, stored.size),
        (Digest::of(&bytes), bytes.len() as u64)
    );
    store.sync().await.unwrap();
    let mut out = Vec::new();
    store
        .open(&stored.digest)
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    assert!(out == bytes, "the blob came back different");
}

/// `open_head` gives at most the head it was asked for, and the rest of
/// the blob after it; a blob shorter than the head comes whole, with
/// nothing after it.
pub async fn a_blob_opened_by_its_head_reads_on_after_it(store: &dyn BlobStore) {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let digest = store.put(bytes.clone()).await.unwrap().digest;
    for limit in [0, 1, 65_536, 100_000, 1 << 20] {
        let (head, mut rest) = store.open_head(&digest, limit).await.unwrap();
        assert_eq!(head.len(), limit.min(bytes.len()), "head of {limit}");
        let mut tail = Vec::new();
        rest.read_to_end(&mut tail).await.unwrap();
        assert!(
            [head, tail].concat() == bytes,
            "head of {limit} and the rest are not the blob"
        );
    }
}

/// Opening or reading a blob the store lacks says which one.
pub async fn a_missing_blob_is_reported_as_missing(store: &dyn BlobStore) {
    let absent = Digest::of(b"absent");
    assert!(matches!(store.open(&absent).await, Err(BlobError::Missing(d)) if d == absent));
    assert!(matches!(
        store.open_head(&absent, 10).await,
        Err(BlobError::Missing(d)) if d == absent
    ));
    assert!(matches!(
        store.read(&absent).await,
        Err(BlobError::Missing(_))
    ));
    assert!(!store.delete(&absent).await.unwrap());
}

/// `list` names every stored blob; a deleted one is gone.
pub async fn list_and_delete_see_every_blob(store: &dyn BlobStore) {
    let a = store.put(b"a".to_vec()).await.unwrap().digest;
    let b = store.put(b"b".to_vec()).await.unwrap().digest;
    let mut listed = store.list().await.unwrap();
    listed.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(store.delete(&a).await.unwrap());
    assert!(!store.has(&a).await.unwrap());
    assert_eq!(store.list().await.unwrap(), [b]);
}
