//! Unit tests of releases: install, switch, exclusions, repair.

use super::*;
use crate::paths::Paths;
use std::collections::BTreeMap;

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApplyContext,
    spec: TreeSpec,
    content: CatalogContent,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(dir.path()));
    let files: [(&str, &[u8], u32); 3] = [
        ("bin/run.sh", b"#!/bin/sh\n", 0o755),
        ("lib/a.jar", b"jar a", 0o644),
        ("samples/demo.txt", b"sample", 0o644),
    ];
    let mut entries = BTreeMap::new();
    for (path, bytes, mode) in files {
        let digest = Digest::of(bytes);
        let blob = ctx.cache.path_of(&digest);
        fs::create_dir_all(blob.parent().unwrap()).unwrap();
        fs::write(&blob, bytes).unwrap();
        entries.insert(
            path.to_string(),
            Entry {
                path: path.to_string(),
                mode,
                kind: EntryKind::File {
                    size: bytes.len() as u64,
                    digest,
                },
            },
        );
    }
    let manifest = Manifest::from_entries(entries).unwrap();
    let json = manifest.to_json();
    let blob = ctx.cache.path_of(&manifest.digest());
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    fs::write(&blob, &json).unwrap();
    let spec = TreeSpec {
        product: "p".into(),
        version: "1.0".into(),
        level: 0,
        tree: manifest.digest(),
        files: 3,
        size: manifest.total_size(),
        link: "/opt/p-1.0".into(),
        releases_dir: "/opt/releases".into(),
        runtime_paths: vec![],
        keep: 1,
        exclude: vec!["samples".into()],
        owner: None,
        group: None,
    };
    let content = CatalogContent {
        role: "r".into(),
        profile: "p/p".into(),
        resources: vec![],
    };
    Fixture {
        _dir: dir,
        ctx,
        spec,
        content,
    }
}

#[test]
fn installs_switches_leaves_out_excluded_paths_and_repairs() {
    let f = fixture();
    assert_eq!(check(&f.spec, &f.ctx, &f.content).unwrap().len(), 1);
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let link = f.ctx.paths.resolve("/opt/p-1.0");
    let release = fs::read_link(&link).unwrap();
    assert!(release.ends_with(f.spec.release_id()));
    assert_eq!(fs::read(link.join("lib/a.jar")).unwrap(), b"jar a");
    assert_eq!(
        fs::metadata(link.join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert!(!link.join("samples").exists(), "excluded path installed");
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());

    fs::write(link.join("lib/a.jar"), b"tampered!").unwrap();
    let changes = check(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(
        changes[0].summary.contains("repair 1 modified file"),
        "{changes:?}"
    );
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    assert_eq!(fs::read(link.join("lib/a.jar")).unwrap(), b"jar a");
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
}

#[test]
fn a_real_directory_at_the_link_is_never_replaced() {
    let f = fixture();
    fs::create_dir_all(f.ctx.paths.resolve("/opt/p-1.0/unmanaged")).unwrap();
    let err = check(&f.spec, &f.ctx, &f.content).unwrap_err();
    assert!(err.to_string().contains("refusing to replace"), "{err}");
    assert!(f.ctx.paths.resolve("/opt/p-1.0/unmanaged").is_dir());
}

#[test]
fn a_restored_release_is_hashed_once_then_known_by_its_new_stat_keys() {
    let f = fixture();
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let l = Release::of(&f.spec, &f.ctx.paths);
    // A restore from a snapshot: the same bytes, new inodes and times.
    for file in ["bin/run.sh", "lib/a.jar"] {
        let path = l.release.join(file);
        let bytes = fs::read(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions();
        fs::remove_file(&path).unwrap();
        fs::write(&path, &bytes).unwrap();
        fs::set_permissions(&path, mode).unwrap();
    }
    let stale = read_marker(&l.release).unwrap();
    let now = |file: &str| stat_key(&fs::metadata(l.release.join(file)).unwrap());
    assert_ne!(stale.index.get("lib/a.jar"), Some(&now("lib/a.jar")));

    // Verified equal: nothing to change, and the index learns the new keys.
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
    let refreshed = read_marker(&l.release).unwrap();
    for file in ["bin/run.sh", "lib/a.jar"] {
        assert_eq!(refreshed.index.get(file), Some(&now(file)), "{file}");
    }

    // A change after the refresh is still seen (the index is no blind spot).
    fs::write(l.release.join("lib/a.jar"), b"jar b").unwrap();
    let changes = check(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(
        changes[0].summary.contains("repair 1 modified file"),
        "{changes:?}"
    );
    // Content that differs is never recorded as known.
    assert_ne!(
        read_marker(&l.release).unwrap().index.get("lib/a.jar"),
        Some(&now("lib/a.jar"))
    );
}
