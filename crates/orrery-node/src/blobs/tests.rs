use super::*;
use std::convert::Infallible;

fn chunks(data: &[u8], size: usize) -> impl Stream<Item = Result<bytes::Bytes, Infallible>> {
    let parts: Vec<_> = data
        .chunks(size)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(parts)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

#[test]
fn put_checks_the_hash_and_leaves_nothing_on_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1024).expect("open");
    let data = b"a job bundle".repeat(10);
    let hash = Hash::of(&data);
    rt().block_on(async {
        let wrong = Hash::of(b"something else");
        match store.put(wrong, chunks(&data, 7)).await {
            Err(BlobError::HashMismatch { expected, actual }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, hash);
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(store.size(&wrong).await.is_none());
        assert_eq!(std::fs::read_dir(&store.tmp).expect("tmp").count(), 0);

        assert_eq!(
            store.put(hash, chunks(&data, 7)).await.expect("put"),
            (120, true)
        );
        assert_eq!(
            store.put(hash, chunks(&data, 50)).await.expect("again"),
            (120, false)
        );
        assert_eq!(std::fs::read(store.path_of(&hash)).expect("read"), data);
    });
}

#[test]
fn put_cuts_off_oversized_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 100).expect("open");
    let data = vec![7u8; 101];
    let hash = Hash::of(&data);
    rt().block_on(async {
        assert!(matches!(
            store.put(hash, chunks(&data, 10)).await,
            Err(BlobError::TooLarge { limit: 100 })
        ));
        assert!(store.size(&hash).await.is_none());
        let ok = vec![7u8; 100];
        assert!(store.put(Hash::of(&ok), chunks(&ok, 10)).await.is_ok());
    });
}

#[test]
fn reopening_removes_unfinished_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 100).expect("open");
    std::fs::write(store.tmp.join("crashed.part"), b"half").expect("write");
    drop(store);
    let store = BlobStore::open(dir.path(), 100).expect("reopen");
    assert_eq!(std::fs::read_dir(&store.tmp).expect("tmp").count(), 0);
}

#[test]
fn garbage_collection_follows_lease_retention_and_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path(), 1024).expect("open");
    let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10]).collect();
    let hashes: Vec<Hash> = blobs.iter().map(|b| Hash::of(b)).collect();
    rt().block_on(async {
        for (b, h) in blobs.iter().zip(&hashes) {
            store.put(*h, chunks(b, 10)).await.expect("put");
        }
    });
    let refs = vec![
        // 0: active lease.
        BlobRef {
            hash: hashes[0],
            final_at: None,
        },
        // 1: settled at 100, retention 50: kept until height 150.
        BlobRef {
            hash: hashes[1],
            final_at: Some(100),
        },
        // 2: settled at 10: expired at height 120.
        BlobRef {
            hash: hashes[2],
            final_at: Some(10),
        },
        // 3: expired by one lease but live for another: kept.
        BlobRef {
            hash: hashes[3],
            final_at: Some(10),
        },
        BlobRef {
            hash: hashes[3],
            final_at: None,
        },
        // 4: unreferenced.
    ];
    let now = SystemTime::now();
    let grace = Duration::from_secs(3600);
    let r = store
        .collect_garbage(&refs, 120, 50, grace, now)
        .expect("gc");
    assert_eq!(
        r,
        GcReport {
            kept: 4,
            deleted: 1,
            bytes_freed: 10
        }
    );
    assert!(!store.path_of(&hashes[2]).exists());
    assert!(store.path_of(&hashes[4]).exists(), "unreferenced but young");

    // Later: the settled lease's retention ends, the unreferenced upload's grace ends.
    let later = now + Duration::from_secs(7200);
    let r = store
        .collect_garbage(&refs, 150, 50, grace, later)
        .expect("gc");
    assert_eq!(r.deleted, 2);
    assert!(!store.path_of(&hashes[1]).exists());
    assert!(!store.path_of(&hashes[4]).exists());
    assert!(store.path_of(&hashes[0]).exists());
    assert!(store.path_of(&hashes[3]).exists());
}
