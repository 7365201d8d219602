//! The content a run needs before it applies: the manifests of the
//! catalog's trees, the files of releases not yet on disk and the blobs file
//! resources take their content from; afterwards, what the cache no longer
//! needs is dropped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rigger_common::catalog::{Catalog, ResourceSpec, TreeSpec};
use rigger_common::digest::Digest;
use rigger_common::manifest::{EntryKind, Manifest};

use crate::client::MasterClient;
use crate::content::{FetchStats, fetch_blobs};
use crate::release::{Release, kept_trees};
use crate::resources::ApplyContext;
use crate::resources::tree;

/// The catalog's product trees.
pub fn trees(catalog: &Catalog) -> impl Iterator<Item = &TreeSpec> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::Tree(t) => Some(t),
            _ => None,
        })
}

/// Blobs that file resources take their content from (artifacts).
pub fn file_sources(catalog: &Catalog) -> Vec<Digest> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::File(f) => f.source,
            _ => None,
        })
        .collect()
}

/// Told the bytes of a release's fetch done so far and in all.
pub type ReleaseProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Fetches what the catalog's trees need and the cache lacks: each tree's
/// manifest, and (unless planning only, or the release is already on disk)
/// its files, telling `progress` of a release's bytes as they come.
/// Without a master, only what is cached can be used.
pub async fn prepare(
    catalog: &Catalog,
    ctx: &ApplyContext,
    master: Option<&Arc<dyn MasterClient>>,
    noop: bool,
    progress: Option<ReleaseProgress>,
) -> Result<FetchStats, String> {
    let mut total = FetchStats::default();
    let mut add = |stats: FetchStats| {
        total.blobs += stats.blobs;
        total.bytes += stats.bytes;
    };
    let sources = file_sources(catalog);
    if let (false, false, Some(master)) = (noop, sources.is_empty(), master) {
        add(fetch_blobs(master, &ctx.cache, &sources, None).await?);
    }
    for tree in trees(catalog) {
        if let Some(master) = master {
            add(fetch_blobs(master, &ctx.cache, &[tree.tree], None).await?);
        }
        if noop || Release::of(tree, &ctx.paths).is_on_disk() {
            continue;
        }
        let Some(manifest) = ctx.cache.manifest(&tree.tree)? else {
            return Err(format!(
                "manifest {} is not available (master unreachable)",
                tree.tree
            ));
        };
        let missing = ctx
            .cache
            .missing_sized(&tree::needed_blobs(tree, &manifest));
        if missing.is_empty() {
            continue;
        }
        let Some(master) = master else {
            return Err(format!(
                "{} blobs of {} are missing and the master is unreachable",
                missing.len(),
                tree.release_id()
            ));
        };
        room_for_fetch(ctx, tree, &manifest, &missing)?;
        tracing::info!(release = %tree.release_id(), blobs = missing.len(), "fetching content");
        let chunks = progress.as_ref().map(|report| {
            let total = missing_bytes(&manifest, &missing);
            let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let report = report.clone();
            Arc::new(move |bytes: u64| {
                let so_far = done.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
                report(so_far, total);
            }) as crate::content::FetchProgress
        });
        add(fetch_blobs(master, &ctx.cache, &missing, chunks).await?);
    }
    Ok(total)
}

/// The bytes of the `missing` blobs the manifest names.
fn missing_bytes(manifest: &Manifest, missing: &[Digest]) -> u64 {
    let sizes: HashMap<&Digest, u64> = manifest
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { digest, size } => Some((digest, *size)),
            _ => None,
        })
        .collect();
    missing.iter().filter_map(|d| sizes.get(d)).sum()
}

/// Refuses a fetch the disk cannot hold before a byte of it is written:
/// the missing blobs go to the cache, and the release built from them
/// (counted on the same figure when the releases live on the same file
/// system) must fit too.
fn room_for_fetch(
    ctx: &ApplyContext,
    tree: &TreeSpec,
    manifest: &Manifest,
    missing: &[Digest],
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let blobs = missing_bytes(manifest, missing);
    let cache = ctx.cache.root();
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let device = |path: &Path| {
        path.ancestors()
            .find_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.dev())
    };
    let releases = ctx.paths.resolve(&tree.releases_dir);
    let release_here = device(cache) == device(&releases);
    let needed = blobs
        + if release_here {
            manifest.total_size()
        } else {
            0
        };
    let what = format!(
        "level {} of {} {} ({} MB to fetch{})",
        tree.level,
        tree.product,
        tree.version,
        blobs >> 20,
        if release_here {
            format!(", {} MB for its release", manifest.total_size() >> 20)
        } else {
            String::new()
        }
    );
    tree::check_disk_space(cache, needed, &what)
        .map_err(|e| format!("{e}; nothing was fetched and the running release stays"))
}

/// The roots the last collection kept by, in the state directory.
pub(super) const GC_ROOTS: &str = "gc-roots.json";

/// Drops cached blobs that neither the catalog (its trees and file
/// sources) nor any kept release needs. Nothing is looked at when every
/// root the last collection kept by is still one (an update level adds a
/// release and drops none until `keep` is reached): nothing it kept can
/// have become unused. Blobs of a fetch whose install failed wait for the
/// next collection.
pub fn collect_garbage(ctx: &ApplyContext, catalog: &Catalog) {
    let sources: BTreeSet<Digest> = file_sources(catalog).into_iter().collect();
    let mut trees_kept: BTreeSet<Digest> = trees(catalog).map(|t| t.tree).collect();
    for tree in trees(catalog) {
        trees_kept.extend(kept_trees(&ctx.paths.resolve(&tree.releases_dir)));
    }
    let roots: BTreeSet<Digest> = sources.union(&trees_kept).copied().collect();
    let record = ctx.paths.state_dir().join(GC_ROOTS);
    let last: Option<BTreeSet<Digest>> = std::fs::read(&record)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if last.is_some_and(|last| last.is_subset(&roots)) {
        tracing::debug!("the cache's roots only grew since its last collection: nothing to drop");
        return;
    }
    let mut keep: HashSet<Digest> = sources.into_iter().collect();
    for root in trees_kept {
        keep.insert(root);
        match ctx.cache.manifest(&root) {
            Ok(Some(m)) => keep.extend(m.file_digests()),
            // Without the manifest we cannot tell what it needs: keep everything.
            _ => return,
        }
    }
    match ctx.cache.retain(&keep) {
        Ok((0, _)) => {}
        Ok((blobs, bytes)) => tracing::info!(blobs, bytes, "removed unused blobs from the cache"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot clean the content cache");
            return;
        }
    }
    let bytes = serde_json::to_vec(&roots).expect("digests serialize");
    // Bookkeeping: without it, the next tree change collects again.
    if let Err(e) = rigger_common::fsutil::write_atomic(
        &record,
        &bytes,
        0o600,
        rigger_common::fsutil::Ownership::default(),
    ) {
        tracing::debug!(error = %e, "cannot record the cache's roots");
    }
}
