//! What is on the node now, for `agentctl status`: the agent's certificate,
//! each product's release (the one CARBON_HOME names, and those kept for a
//! rollback), each service's process and since when it runs, and the size
//! of the blob cache. Read from the node at each request, never from what
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
}

/// The node now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// When the agent's certificate expires, Unix ms (0: no certificate).
    pub cert_not_after_ms: i64,
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
    let mut found = Inspection {
        cert_not_after_ms: cert_not_after(&paths.ssl_dir()),
        ..Default::default()
    };
    (found.cache_files, found.cache_bytes) = folder_size(&paths.state_dir().join("cache"));
    let Some(catalog) = catalog else {
        return found;
    };
    let ctx = ApplyContext::new(paths.clone());
    for resource in &catalog.content.resources {
        match &resource.spec {
            ResourceSpec::Tree(tree) => found.products.push(product(tree, paths)),
            ResourceSpec::Service(spec) => {
                let pid = service::running_pid(spec, &ctx).unwrap_or(0);
                found.services.push(ServiceProcess {
                    name: spec.name.clone(),
                    pid,
                    started_at_ms: if pid == 0 { 0 } else { started_at_ms(pid) },
                });
            }
            _ => {}
        }
    }
    found
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
        current: release == name_of(&wanted.release),
        release,
        kept,
    }
}

/// When the certificate in `ssl_dir` stops being valid (0: none readable).
fn cert_not_after(ssl_dir: &Path) -> i64 {
    let Ok(Some(identity)) = crate::identity::load(ssl_dir) else {
        return 0;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(identity.client.cert_pem.as_bytes()) else {
        return 0;
    };
    pem.parse_x509()
        .map(|cert| cert.validity().not_after.timestamp() * 1000)
        .unwrap_or(0)
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
