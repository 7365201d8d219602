//! Archive import: the bytes as a product pack (zip or tar.gz) imported
//! into a content store under the default limits, as `masterctl product
//! import` does. Must refuse, never panic, never write outside the store.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rigger_master::content::archive::ArchiveLimits;
use rigger_master::content::blobs::{BlobStore, BlockingBlobs};

struct Fixture {
    _dir: tempfile::TempDir,
    archive: std::path::PathBuf,
    store: BlockingBlobs,
    _runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // The store is driven by its runtime's own threads, as in the
        // master (the import threads block on it).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(
            rigger_master::content::LocalBlobStore::open(&dir.path().join("blobs")).unwrap(),
        );
        let store = BlockingBlobs::new(blobs, runtime.handle().clone());
        Fixture {
            archive: dir.path().join("pack.zip"),
            _dir: dir,
            store,
            _runtime: runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    std::fs::write(&f.archive, data).unwrap();
    let limits = ArchiveLimits {
        max_bytes: 64 << 20,
        ..ArchiveLimits::default()
    };
    if let Ok(tree) = rigger_master::content::pack::import_pack(&f.store, &f.archive, limits) {
        rigger_master::content::pack::discard_tree(&f.store, &tree);
    }
});
