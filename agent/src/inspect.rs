//! What is on the node now, for `agentctl status`: the agent's certificate,
//! each product's release (the one CARBON_HOME names, and those kept for a
//! rollback), each service's process and since when it runs, each mount
//! and each shared folder's link, and the size of the blob cache. Read from the node at each request, never from what
//! a run remembered.

use std::path::Path;

use rigger_common::catalog::{Catalog, ResourceSpec};
use rigger_common::time::now_ms;

use crate::paths::Paths;
use crate::release::Release;
use crate::resources::ApplyContext;
use crate::resources::service;

/// A product as it is on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductState {
    /// Product name (`wso2is`).
    pub product: String,
    /// Version.
    pub version: String,
    /// The update level the catalog wants.
    pub level: u32,
    /// Where that level came from: "pinned", "promoted" or "latest" (""
    /// when the catalog does not say).
    pub level_source: String,
    /// The release CARBON_HOME names now ("" when it names none).
    pub release: String,
    /// Whether that is the release the catalog wants.
    pub current: bool,
    /// The other releases of this version kept on disk (for a rollback).
    pub kept: Vec<String>,
}

/// A service's process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceProcess {
    /// The service resource's name.
    pub name: String,
    /// Its pid (0: not running).
    pub pid: u32,
    /// When the process started, Unix ms (0: unknown).
    pub started_at_ms: i64,
    /// The catalog version the agent started it with (0: the running
    /// process is not one the agent recorded starting).
    pub started_with_version: u64,
    /// Who started it: "run", or "supervisor" after it exited.
    pub started_by: String,
    /// Times the supervisor started it again after it exited.
    pub restarts_after_exit: u64,
}

/// A mount the catalog wants, as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountState {
    /// The mount point.
    pub path: String,
    /// What the catalog wants: file system type and source.
    pub wanted: String,
    /// What is mounted there ("" when nothing is).
    pub mounted: String,
    /// Whether that is what the catalog wants.
    pub matches: bool,
}

/// A shared folder's link in the release, as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    /// The link (in the release CARBON_HOME names).
    pub path: String,
    /// Where it must point (on the share).
    pub expected: String,
    /// Where it points ("" when it is missing or not a link).
    pub target: String,
}

/// The node now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The applied catalog's mounts.
    pub mounts: Vec<MountState>,
    /// The applied catalog's shared folders' links.
    pub links: Vec<LinkState>,
    /// When the agent's certificate expires, Unix ms (0: no certificate).
    pub cert_not_after_ms: i64,
    /// When the agent renews it, Unix ms (0: no certificate).
    pub cert_renews_at_ms: i64,
    /// The applied catalog's products.
    pub products: Vec<ProductState>,
    /// The applied catalog's services.
    pub services: Vec<ServiceProcess>,
    /// Bytes in the blob cache.
    pub cache_bytes: u64,
    /// Files in the blob cache.
    pub cache_files: u64,
}

/// Looks at the node for `catalog` (the applied one, if any).
pub fn inspect(paths: &Paths, catalog: Option<&Catalog>) -> Inspection {
    let cert = crate::identity::load(&paths.ssl_dir())
        .ok()
        .flatten()
        .map(|identity| identity.client.cert_pem);
    let mut found = Inspection {
        cert_not_after_ms: cert
            .as_deref()
            .and_then(crate::identity::validity)
            .map_or(0, |(_, after)| after),
        cert_renews_at_ms: cert
            .as_deref()
            .and_then(crate::identity::renewal_due_at_ms)
            .unwrap_or(0),
        ..Default::default()
    };
    (found.cache_files, found.cache_bytes) = folder_size(&paths.state_dir().join("cache"));
    let Some(catalog) = catalog else {
        return found;
    };
    let ctx = ApplyContext::new(paths.clone());
    for resource in &catalog.content.resources {
        match &resource.spec {
            ResourceSpec::Tree(tree) => {
                let mut state = product(tree, paths);
                state.level_source = catalog
                    .level_sources
                    .get(&format!("{} {}", tree.product, tree.version))
                    .cloned()
                    .unwrap_or_default();
                found.products.push(state);
            }
            ResourceSpec::Service(spec) => {
                let pid = service::running_pid(spec, &ctx).unwrap_or(0);
                let start = service::starts::last(spec, &ctx).unwrap_or_default();
                // Only the record of the process that runs says what it runs.
                let ours = pid != 0 && start.pid == pid;
                found.services.push(ServiceProcess {
                    name: spec.name.clone(),
                    pid,
                    started_at_ms: if pid == 0 { 0 } else { started_at_ms(pid) },
                    started_with_version: if ours { start.catalog_version } else { 0 },
                    started_by: if ours { start.by } else { String::new() },
                    restarts_after_exit: start.restarts_after_exit,
                });
            }
            ResourceSpec::Mount(spec) => {
                let point = paths.resolve(&spec.path);
                let mounted = crate::resources::mount::mounted_at(&point);
                found.mounts.push(MountState {
                    path: spec.path.clone(),
                    wanted: format!("{} from {}", spec.fstype.as_str(), spec.source),
                    matches: mounted
                        .as_ref()
                        .is_some_and(|m| crate::resources::mount::matches(spec, &ctx, m)),
                    mounted: mounted
                        .map(|m| format!("{} from {}", m.fstype, m.source))
                        .unwrap_or_default(),
                });
            }
            ResourceSpec::SharedDirs(spec) => found.links.extend(shared_links(spec, paths)),
            _ => {}
        }
    }
    found
}

/// Each shared folder's link in the release the spec's link names now.
fn shared_links(spec: &rigger_common::catalog::SharedDirsSpec, paths: &Paths) -> Vec<LinkState> {
    let release = paths.read_link(&paths.resolve(&spec.link));
    spec.dirs
        .iter()
        .map(|(relative, name)| {
            let expected = paths.resolve(&spec.share).join(name);
            let (path, target) = match &release {
                Some(release) => {
                    let link = release.join(relative);
                    let target = paths
                        .read_link(&link)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    (link.display().to_string(), target)
                }
                None => (format!("{}/{relative}", spec.link), String::new()),
            };
            LinkState {
                path,
                expected: expected.display().to_string(),
                target,
            }
        })
        .collect()
}

fn product(tree: &rigger_common::catalog::TreeSpec, paths: &Paths) -> ProductState {
    let wanted = Release::of(tree, paths);
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let release = paths
        .read_link(&paths.resolve(&tree.link))
        .map(|target| name_of(&target))
        .unwrap_or_default();
    let prefix = format!("{}-{}-L", tree.product, tree.version);
    let mut kept: Vec<String> = std::fs::read_dir(&wanted.releases)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && *n != release)
                .collect()
        })
        .unwrap_or_default();
    kept.sort();
    ProductState {
        product: tree.product.clone(),
        version: tree.version.clone(),
        level: tree.level,
        level_source: String::new(),
        current: release == name_of(&wanted.release),
        release,
        kept,
    }
}

/// When process `pid` started, Unix ms, from its start in clock ticks
/// since boot and the boot time (0 when unknown).
fn started_at_ms(pid: u32) -> i64 {
    let Some(ticks) = service::process::start_time(pid) else {
        return 0;
    };
    let boot_secs = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
    });
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0);
    match (boot_secs, hz) {
        (Some(boot), Some(hz)) => (boot * 1000 + ticks as i64 * 1000 / hz).min(now_ms()),
        _ => 0,
    }
}

/// Files and bytes beneath `dir` (links not followed).
fn folder_size(dir: &Path) -> (u64, u64) {
    walkdir::WalkDir::new(dir)
        .max_depth(8)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .fold((0, 0), |(files, bytes), m| (files + 1, bytes + m.len()))
}
