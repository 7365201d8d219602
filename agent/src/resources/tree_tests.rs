//! Unit tests of releases: install, switch, exclusions, repair.

use super::*;
use crate::paths::Paths;
use crate::release::read_marker;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApplyContext,
    spec: TreeSpec,
    content: CatalogContent,
}

/// A master that writes the blobs it holds into `cache` (verified objects).
#[derive(Debug)]
struct CacheFiller {
    cache: crate::content::ContentCache,
    blobs: std::collections::HashMap<Digest, Vec<u8>>,
    fetched: std::sync::Mutex<Vec<Digest>>,
}

impl crate::resources::Refetch for CacheFiller {
    fn refetch(&self, digests: &[Digest]) -> Result<(), String> {
        for d in digests {
            let bytes = self.blobs.get(d).ok_or("unknown blob")?;
            write_object(&self.cache, bytes);
            self.fetched.lock().unwrap().push(*d);
        }
        Ok(())
    }
}

/// Writes `bytes` into the cache as the fetch does (sealed object).
fn write_object(cache: &crate::content::ContentCache, bytes: &[u8]) {
    let blob = cache.path_of(&Digest::of(bytes));
    fs::create_dir_all(blob.parent().unwrap()).unwrap();
    let tmp = blob.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    crate::content::cache::seal(&fs::File::open(&tmp).unwrap(), 0o444).unwrap();
    fs::rename(&tmp, &blob).unwrap();
}

/// A tree of `files` at `level`, its blobs and manifest in the cache
/// (written as a fetch of an earlier agent would: plain files).
fn tree_of(ctx: &ApplyContext, files: &[(&str, &[u8], u32)], level: u32) -> TreeSpec {
    let mut entries = BTreeMap::new();
    for (path, bytes, mode) in files {
        let digest = Digest::of(bytes);
        let blob = ctx.cache.path_of(&digest);
        if !blob.exists() {
            fs::create_dir_all(blob.parent().unwrap()).unwrap();
            fs::write(&blob, bytes).unwrap();
        }
        entries.insert(
            path.to_string(),
            Entry {
                path: path.to_string(),
                mode: *mode,
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
    TreeSpec {
        product: "p".into(),
        version: "1.0".into(),
        level,
        tree: manifest.digest(),
        files: files.len() as u64,
        size: manifest.total_size(),
        link: "/opt/p-1.0".into(),
        releases_dir: "/opt/releases".into(),
        runtime_paths: vec![],
        keep: 1,
        exclude: vec!["samples".into()],
        owner: None,
        group: None,
    }
}

const FILES: [(&str, &[u8], u32); 3] = [
    ("bin/run.sh", b"#!/bin/sh\n", 0o755),
    ("lib/a.jar", b"jar a", 0o644),
    ("samples/demo.txt", b"sample", 0o644),
];

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(dir.path()));
    let spec = tree_of(&ctx, &FILES, 0);
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

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().ino()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Changes a read-only linked file in place, as root would (or its owner,
/// after a chmod): the shared inode's bytes change.
fn write_in_place(path: &Path, bytes: &[u8]) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(path, bytes).unwrap();
}

/// The cached object of `bytes` as a power loss between its fetch and
/// the flush leaves it: named and sealed, only its first `kept` bytes.
fn cut_short(
    cache: &crate::content::ContentCache,
    bytes: &[u8],
    kept: usize,
) -> std::path::PathBuf {
    let object = cache.path_of(&Digest::of(bytes));
    write_in_place(&object, &bytes[..kept]);
    crate::content::cache::seal(&fs::File::open(&object).unwrap(), 0o444).unwrap();
    object
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
    // Shared with the cache: read-only, the execute bits kept.
    assert_eq!(mode(&link.join("bin/run.sh")), 0o555);
    assert_eq!(mode(&link.join("lib/a.jar")), 0o444);
    assert!(!link.join("samples").exists(), "excluded path installed");
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());

    // Replaced by a new file (a new inode): the cache is untouched.
    fs::remove_file(link.join("lib/a.jar")).unwrap();
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
fn a_release_built_by_prepare_is_switched_to_as_built_once_then_inspected_again() {
    let f = fixture();
    prepare(&f.spec, &f.ctx, &f.content).unwrap();
    let link = f.ctx.paths.resolve("/opt/p-1.0");
    assert!(!link.exists(), "prepare switched the link");
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    assert_eq!(fs::read(link.join("lib/a.jar")).unwrap(), b"jar a");
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());

    // The hand-off from prepare is used up: the next apply in the same
    // run inspects the release and repairs it.
    fs::remove_file(link.join("lib/a.jar")).unwrap();
    fs::write(link.join("lib/a.jar"), b"tampered!").unwrap();
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
        let restored = fs::File::open(&path).unwrap();
        restored.set_modified(std::time::UNIX_EPOCH).unwrap();
        restored.set_permissions(mode).unwrap();
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
    write_in_place(&l.release.join("lib/a.jar"), b"jar b");
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

#[test]
fn a_release_is_checked_from_its_check_index_and_without_one_from_its_manifest() {
    let f = fixture();
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let l = Release::of(&f.spec, &f.ctx.paths);
    let index = l.release.join(crate::release_index::INDEX);
    let written = read_marker(&l.release).unwrap();
    assert!(
        !written.index.is_empty(),
        "the stat keys are in the check index"
    );

    // A release of an earlier agent: its stat index in the marker, no
    // check index. It is checked from the manifest and gets one.
    fs::remove_file(&index).unwrap();
    fs::write(
        l.release.join(".rigger-release.json"),
        serde_json::to_vec(&written).unwrap(),
    )
    .unwrap();
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
    let made = ReleaseIndex::read(&l.release, &f.spec.tree).expect("written by the check");
    assert_eq!(made.stat_index(), written.index);

    // The index alone tells a changed mode, and a changed size.
    let run = l.release.join("bin/run.sh");
    fs::set_permissions(&run, fs::Permissions::from_mode(0o777)).unwrap();
    let changes = check(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(
        changes[0].summary.contains("repair 1 modified file")
            && changes[0].summary.contains("bin/run.sh"),
        "{changes:?}"
    );
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());

    // An index that does not decode is not trusted: the manifest tells
    // the change, and the repair writes a good index again.
    fs::write(&index, b"not an index").unwrap();
    let jar = l.release.join("lib/a.jar");
    fs::remove_file(&jar).unwrap();
    fs::write(&jar, b"jar b").unwrap();
    let changes = check(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(
        changes[0].summary.contains("repair 1 modified file")
            && changes[0].summary.contains("lib/a.jar"),
        "{changes:?}"
    );
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(ReleaseIndex::read(&l.release, &f.spec.tree).is_some());
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
}

/// Two releases of the product: level 0 (current before) and level 1,
/// which changed `bin/run.sh` and shares `lib/a.jar` with level 0.
fn two_levels(f: &mut Fixture) -> (TreeSpec, Release, Release) {
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let old = Release::of(&f.spec, &f.ctx.paths);
    let level1 = tree_of(
        &f.ctx,
        &[
            ("bin/run.sh", b"#!/bin/sh\nexec level1\n", 0o755),
            ("lib/a.jar", b"jar a", 0o644),
        ],
        1,
    );
    apply(&level1, &f.ctx, &f.content).unwrap();
    let new = Release::of(&level1, &f.ctx.paths);
    (level1, old, new)
}

#[test]
fn releases_share_unchanged_files_with_the_cache_and_each_other() {
    let mut f = fixture();
    let (_, old, new) = two_levels(&mut f);
    let jar = Digest::of(b"jar a");
    let object = f.ctx.cache.path_of(&jar);
    assert_eq!(inode(&old.release.join("lib/a.jar")), inode(&object));
    assert_eq!(inode(&new.release.join("lib/a.jar")), inode(&object));
    assert_ne!(
        inode(&old.release.join("bin/run.sh")),
        inode(&new.release.join("bin/run.sh"))
    );
    assert!(read_marker(&new.release).unwrap().shared);
    // Its index holds each file's own stat key (a linked file's is taken
    // from its object, an executable's from its mode's object).
    let marker = read_marker(&new.release).unwrap();
    assert_eq!(marker.index.len(), 2, "{:?}", marker.index);
    for (path, key) in &marker.index {
        let meta = fs::symlink_metadata(new.release.join(path)).unwrap();
        assert_eq!(*key, crate::release::stat_key(&meta), "{path}");
    }
}

#[test]
fn a_change_through_a_shared_inode_is_repaired_everywhere_from_fetched_content() {
    let mut f = fixture();
    let (level1, old, new) = two_levels(&mut f);
    let jar = Digest::of(b"jar a");
    let filler = Arc::new(CacheFiller {
        cache: f.ctx.cache.clone(),
        blobs: [(jar, b"jar a".to_vec())].into(),
        fetched: Default::default(),
    });
    f.ctx.refetch = Some(filler.clone());

    // Root edits the current release's jar in place: the cache's object
    // and the kept release share those bytes.
    let changed = inode(&new.release.join("lib/a.jar"));
    write_in_place(&new.release.join("lib/a.jar"), b"jar X");
    let changes = check(&level1, &f.ctx, &f.content).unwrap();
    assert!(
        changes[0].summary.contains("repair 1 modified file"),
        "{changes:?}"
    );
    apply(&level1, &f.ctx, &f.content).unwrap();

    // The cache did not serve the changed bytes: it dropped the object and
    // fetched the blob again.
    assert_eq!(*filler.fetched.lock().unwrap(), [jar]);
    let object = f.ctx.cache.path_of(&jar);
    assert_eq!(fs::read(&object).unwrap(), b"jar a");
    assert_ne!(inode(&object), changed);
    // Both releases hold the fresh object.
    for release in [&new, &old] {
        let path = release.release.join("lib/a.jar");
        assert_eq!(fs::read(&path).unwrap(), b"jar a", "{}", path.display());
        assert_eq!(inode(&path), inode(&object), "{}", path.display());
    }
    assert!(check(&level1, &f.ctx, &f.content).unwrap().is_empty());
    // The kept release is intact too: switching back finds nothing to repair.
    assert!(
        check(&f.spec, &f.ctx, &f.content).unwrap()[0]
            .summary
            .contains("switch")
    );
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
}

#[test]
fn a_mode_repair_never_changes_a_shared_inode() {
    let mut f = fixture();
    let (level1, old, new) = two_levels(&mut f);
    let path = new.release.join("lib/a.jar");
    // A name the test keeps for the inode both releases and the cache share.
    let witness = f._dir.path().join("witness");
    fs::hard_link(&path, &witness).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!check(&level1, &f.ctx, &f.content).unwrap().is_empty());
    apply(&level1, &f.ctx, &f.content).unwrap();
    // The repair linked a fresh object; the changed inode was left as it
    // was, and no release holds it any more. Its bytes were verified equal:
    // nothing was fetched.
    assert_eq!(mode(&witness), 0o666);
    for release in [&new, &old] {
        let file = release.release.join("lib/a.jar");
        assert_eq!(mode(&file), 0o444, "{}", file.display());
        assert_ne!(inode(&file), inode(&witness), "{}", file.display());
    }
    assert!(check(&level1, &f.ctx, &f.content).unwrap().is_empty());
}

#[test]
fn runtime_paths_and_the_catalogs_own_files_are_copies() {
    let mut f = fixture();
    f.spec.runtime_paths = vec!["bin".into()];
    f.content.resources.push(Resource {
        id: "conf".into(),
        spec: ResourceSpec::File(rigger_common::catalog::FileSpec {
            path: "/opt/p-1.0/lib/a.jar".into(),
            content: "jar a".into(),
            source: None,
            mode: Some(0o644),
            owner: None,
            group: None,
            secret: false,
            redacted_content: None,
            restart_key: None,
        }),
        requires: vec![],
        notifies: vec![],
    });
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let l = Release::of(&f.spec, &f.ctx.paths);
    for file in ["bin/run.sh", "lib/a.jar"] {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(l.release.join(file)).unwrap();
        assert_eq!(meta.nlink(), 1, "{file} is shared");
    }
    // The server may write its runtime files: the pack's mode, not read-only.
    assert_eq!(mode(&l.release.join("bin/run.sh")), 0o755);
    assert!(check(&f.spec, &f.ctx, &f.content).unwrap().is_empty());
}

#[test]
fn a_large_release_is_checked_whole_on_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(dir.path()));
    let names: Vec<String> = (0..2 * super::PARALLEL_FROM)
        .map(|i| format!("lib/l{i:04}.jar"))
        .collect();
    let contents: Vec<Vec<u8>> = (0..names.len())
        .map(|i| format!("jar {i}").into_bytes())
        .collect();
    let files: Vec<(&str, &[u8], u32)> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| (n.as_str(), c.as_slice(), 0o644))
        .collect();
    let spec = tree_of(&ctx, &files, 0);
    let content = CatalogContent {
        role: "r".into(),
        profile: "p/p".into(),
        resources: vec![],
    };
    apply(&spec, &ctx, &content).unwrap();
    assert!(check(&spec, &ctx, &content).unwrap().is_empty());
    // One file in each half replaced: both are found, in manifest order.
    let link = ctx.paths.resolve("/opt/p-1.0");
    for name in [&names[3], &names[names.len() - 2]] {
        fs::remove_file(link.join(name)).unwrap();
        fs::write(link.join(name), b"tampered").unwrap();
    }
    let changes = check(&spec, &ctx, &content).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].summary.contains(&format!(
            "repair 2 modified file(s) in release {}: {}, {}",
            spec.release_id(),
            names[3],
            names[names.len() - 2]
        )),
        "{changes:?}"
    );
    apply(&spec, &ctx, &content).unwrap();
    assert!(check(&spec, &ctx, &content).unwrap().is_empty());
}

#[test]
fn a_folder_kept_on_the_share_is_left_out_and_comes_back_when_the_catalog_stops_sharing_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(dir.path()));
    let files: [(&str, &[u8], u32); 3] = [
        ("bin/run.sh", b"#!/bin/sh\n", 0o755),
        ("repository/deployment/server/app.war", b"webapp", 0o644),
        ("repository/deployment/README.txt", b"readme", 0o640),
    ];
    let mut spec = tree_of(&ctx, &files, 0);
    spec.runtime_paths = vec!["repository/deployment".into()];
    let resource = |id: &str, spec: serde_json::Value| Resource {
        id: id.into(),
        requires: vec![],
        notifies: vec![],
        spec: serde_json::from_value(spec).unwrap(),
    };
    let overlay = resource(
        "publisher",
        serde_json::json!({"kind": "file", "content": "x",
            "path": "/opt/p-1.0/repository/deployment/server/publisher.xml"}),
    );
    let shared = resource(
        "shared_dirs",
        serde_json::json!({"kind": "shared_dirs", "share": "/mnt/efs", "link": "/opt/p-1.0",
            "dirs": {"repository/deployment": "Deployment"}}),
    );
    let content = |resources: Vec<Resource>| CatalogContent {
        role: "r".into(),
        profile: "p/p".into(),
        resources,
    };
    let sharing = content(vec![overlay.clone(), shared]);
    apply(&spec, &ctx, &sharing).unwrap();
    let l = Release::of(&spec, &ctx.paths);
    // Neither the pack's files nor the catalog's own file there: the share
    // gets them (`shared_dirs` from the manifest, the file from its resource).
    assert!(!l.release.join("repository/deployment").exists());
    assert_eq!(
        read_marker(&l.release).unwrap().left_out,
        ["repository/deployment"]
    );
    assert!(check(&spec, &ctx, &sharing).unwrap().is_empty());

    // Linked to the share, then no longer shared: the link stays (the
    // server's artifacts are there).
    let link = l.release.join("repository/deployment");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let alone = content(vec![overlay]);
    assert!(check(&spec, &ctx, &alone).unwrap().is_empty());

    // Never linked (the share never came up) and no longer shared: the
    // folder comes back as the pack ships it, with the catalog's file.
    fs::remove_file(&link).unwrap();
    let changes = check(&spec, &ctx, &alone).unwrap();
    assert!(
        changes[0].summary.contains("restore repository/deployment"),
        "{changes:?}"
    );
    apply(&spec, &ctx, &alone).unwrap();
    assert_eq!(
        fs::read(link.join("server/app.war")).unwrap(),
        b"webapp",
        "not restored"
    );
    assert_eq!(mode(&link.join("README.txt")), 0o640);
    assert_eq!(fs::read(link.join("server/publisher.xml")).unwrap(), b"x");
    assert!(read_marker(&l.release).unwrap().left_out.is_empty());
    assert!(check(&spec, &ctx, &alone).unwrap().is_empty());
}

#[test]
fn an_object_cut_short_by_a_crash_is_never_linked_and_is_fetched_again() {
    let f = fixture();
    // The name, mode and time journaled, not all the bytes (a power loss
    // between the fetch and its flush).
    let object = cut_short(&f.ctx.cache, b"jar a", 3);
    let e = apply(&f.spec, &f.ctx, &f.content).unwrap_err().to_string();
    assert!(
        e.contains("lib/a.jar of the release: its blob is not in the cache"),
        "{e}"
    );
    assert!(!object.exists(), "the damaged object stayed in the cache");
    // Fetched again: the install goes through.
    write_object(&f.ctx.cache, b"jar a");
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let link = f.ctx.paths.resolve("/opt/p-1.0");
    assert_eq!(fs::read(link.join("lib/a.jar")).unwrap(), b"jar a");

    // Nor copied (a runtime path is a copy, not a link).
    let mut f = fixture();
    f.spec.runtime_paths = vec!["lib".into()];
    let object = cut_short(&f.ctx.cache, b"jar a", 3);
    let e = apply(&f.spec, &f.ctx, &f.content).unwrap_err().to_string();
    assert!(
        e.contains("lib/a.jar of the release: its blob is not in the cache"),
        "{e}"
    );
    assert!(!object.exists(), "the damaged object stayed in the cache");
}

#[test]
fn a_blob_gone_from_the_cache_fails_the_install_by_name_and_leaves_the_running_release() {
    let f = fixture();
    apply(&f.spec, &f.ctx, &f.content).unwrap();
    let link = f.ctx.paths.resolve("/opt/p-1.0");
    let running = fs::read_link(&link).unwrap();
    let level1 = tree_of(
        &f.ctx,
        &[
            ("bin/run.sh", b"#!/bin/sh\nexec level1\n", 0o755),
            ("lib/b.jar", b"jar b", 0o644),
        ],
        1,
    );
    // Gone between the run's fetch and the install.
    fs::remove_file(f.ctx.cache.path_of(&Digest::of(b"jar b"))).unwrap();
    let e = apply(&level1, &f.ctx, &f.content).unwrap_err().to_string();
    assert!(
        e.contains("lib/b.jar of the release: its blob is not in the cache"),
        "{e}"
    );
    assert_eq!(fs::read_link(&link).unwrap(), running);
    let releases: Vec<_> = fs::read_dir(f.ctx.paths.resolve("/opt/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(releases, [f.spec.release_id()], "a partial release stayed");
}
