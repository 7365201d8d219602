//! Hostile and broken product archives, each a named fixture, imported
//! through the real reader into a real blob store: every one is refused
//! with an error naming the entry, and leaves no blob or partial file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rigger_master::content::archive::ArchiveLimits;
use rigger_master::content::blobs::{BlobStore, BlockingBlobs, LocalBlobStore};
use rigger_master::content::pack::import_pack;
use zip::write::SimpleFileOptions;

/// One zip entry of a fixture.
enum Item<'a> {
    File(&'a str, Vec<u8>),
    Link(&'a str, String),
}

fn zip_fixture(dir: &Path, name: &str, items: Vec<Item<'_>>) -> PathBuf {
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for item in items {
        match item {
            Item::File(entry, bytes) => {
                zip.start_file(entry, deflated).unwrap();
                zip.write_all(&bytes).unwrap();
            }
            Item::Link(entry, target) => zip.add_symlink(entry, target, deflated).unwrap(),
        }
    }
    zip.finish().unwrap();
    path
}

/// Imports `archive` into an empty store under `limits`; returns the error
/// text and checks that the store is as empty as before.
fn refused(archive: &Path, limits: ArchiveLimits) -> String {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    let blobs = BlockingBlobs::new(store.clone(), runtime.handle().clone());
    let archive = archive.to_path_buf();
    let result = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || import_pack(&blobs, &archive, limits)).await
        })
        .unwrap();
    let err = match result {
        Ok(tree) => panic!("imported as tree {}", tree.digest),
        Err(e) => rigger_common::error_chain(&e),
    };
    let left = runtime.block_on(store.list()).unwrap();
    assert!(left.is_empty(), "{err}: {} blob(s) left behind", left.len());
    let tmp = std::fs::read_dir(dir.path().join("blobs/tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "{err}: partial files left behind");
    err
}

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"wso2 carbon "[i % 12]).collect()
}

#[test]
fn chained_links_that_climb_out_of_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pack = zip_fixture(
        dir.path(),
        "link-chain.zip",
        vec![
            Item::File("p-1.0/lib/a.jar", text(100)),
            Item::Link("p-1.0/lib/e1", "..".into()),
            Item::Link("p-1.0/e2", "..".into()),
            Item::Link("p-1.0/bin", "lib/e1/e2/OUTSIDE".into()),
        ],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(
        err.contains("symlink \"bin\" points outside the tree"),
        "{err}"
    );
}

#[test]
fn an_entry_beneath_a_link_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let pack = zip_fixture(
        dir.path(),
        "beneath-link.zip",
        vec![
            Item::Link("p-1.0/conf", "lib".into()),
            Item::File("p-1.0/lib/x", text(10)),
            Item::File("p-1.0/conf/passwd", text(10)),
        ],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(
        err.contains("\"conf/passwd\" lies beneath \"conf\""),
        "{err}"
    );
    let pack = zip_fixture(
        dir.path(),
        "file-with-children.zip",
        vec![
            Item::File("p-1.0/a", text(10)),
            Item::File("p-1.0/a/b", text(11)),
        ],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(err.contains("lies beneath \"a\""), "{err}");
}

#[test]
fn the_same_path_twice() {
    let dir = tempfile::tempdir().unwrap();
    let pack = zip_fixture(
        dir.path(),
        "duplicate-entry.zip",
        vec![
            Item::File("p-1.0/conf/a.xml", text(10)),
            Item::File("p-1.0/conf/b.xml", text(20)),
            // The same path once cleaned (`./`): the second would win.
            Item::File("p-1.0/conf/./a.xml", text(30)),
        ],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(err.contains("more than once"), "{err}");

    let path = dir.path().join("duplicate-entry.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for body in [text(10), text(20)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "p-1.0/conf/a.xml", &body[..])
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let err = refused(&path, ArchiveLimits::default());
    assert!(
        err.contains("p-1.0/conf/a.xml") && err.contains("more than once"),
        "{err}"
    );
}

#[test]
fn a_link_target_longer_than_path_max() {
    let dir = tempfile::tempdir().unwrap();
    let pack = zip_fixture(
        dir.path(),
        "long-link-target.zip",
        vec![
            Item::File("p-1.0/a", text(10)),
            Item::Link("p-1.0/l", "a/".repeat(300_000)),
        ],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(
        err.contains("p-1.0/l") && err.contains("link target is longer than 4096 bytes"),
        "{err}"
    );
}

#[test]
fn an_entry_that_expands_more_than_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let pack = zip_fixture(
        dir.path(),
        "zip-bomb.zip",
        vec![Item::File("p-1.0/zeros", vec![0; 8 << 20])],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(
        err.contains("p-1.0/zeros") && err.contains("expands more than 200:1"),
        "{err}"
    );
}

#[test]
fn more_bytes_or_entries_than_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let items = || {
        (0..5)
            .map(|i| {
                Item::File(
                    ["p-1.0/a", "p-1.0/b", "p-1.0/c", "p-1.0/d", "p-1.0/e"][i],
                    text(400 << 10),
                )
            })
            .collect()
    };
    let pack = zip_fixture(dir.path(), "large.zip", items());
    let small = ArchiveLimits {
        max_bytes: 1 << 20,
        ..ArchiveLimits::default()
    };
    let err = refused(&pack, small);
    assert!(err.contains("expands to more than 1048576 bytes"), "{err}");
    let few = ArchiveLimits {
        max_entries: 3,
        ..ArchiveLimits::default()
    };
    let err = refused(&pack, few);
    assert!(err.contains("more than 3 entries"), "{err}");
}

#[test]
fn a_name_longer_than_name_max() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("p-1.0/{}", "n".repeat(300));
    let pack = zip_fixture(
        dir.path(),
        "long-name.zip",
        vec![Item::File(&long, text(10))],
    );
    let err = refused(&pack, ArchiveLimits::default());
    assert!(err.contains("is longer than 255 bytes"), "{err}");
}

#[test]
fn a_fifo_in_a_tar_gz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let body = text(100);
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "p-1.0/a.txt", &body[..])
        .unwrap();
    let mut fifo = tar::Header::new_gnu();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_size(0);
    fifo.set_mode(0o644);
    fifo.set_cksum();
    tar.append_data(&mut fifo, "p-1.0/pipe", std::io::empty())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let err = refused(&path, ArchiveLimits::default());
    assert!(err.contains("p-1.0/pipe") && err.contains("Fifo"), "{err}");
}
