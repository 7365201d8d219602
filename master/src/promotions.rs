//! Update levels are promoted, not pushed everywhere: a development
//! environment (`[environment] development = true`) tracks the highest
//! imported level; any other environment runs the GA level until an
//! operator promotes a level to it (`masterctl update promote
//! wso2is@5.11.0 --level N --to production`). The compiler follows
//! (`compiler::follow_channel`); roles that name a level run that level.

use std::collections::BTreeMap;

use rigger_common::time::now_ms;

use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::PromotionRecord;

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    /// Product name.
    pub name: String,
    /// Product version.
    pub version: String,
    /// The environment.
    pub environment: String,
    /// The level it runs now.
    pub level: u32,
    /// The level it ran before.
    pub previous: u32,
}

/// The site's environments (`environments/<env>.toml`), each with whether
/// it is a development one (its file or `common.toml` says
/// `[environment] development = true`).
pub fn environments(site: &std::path::Path) -> Vec<(String, bool)> {
    let development = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("environment")?.get("development")?.as_bool())
    };
    let common = development(&site.join("common.toml")).unwrap_or(false);
    let Ok(entries) = std::fs::read_dir(site.join("environments")) else {
        return Vec::new();
    };
    let mut found: Vec<(String, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".toml")?.to_string();
            Some((name, development(&e.path()).unwrap_or(common)))
        })
        .collect();
    found.sort();
    found
}

/// Promotes `level` of `product` (`NAME@VERSION`) to `environment`.
pub async fn promote(
    state: &MasterState,
    product: &str,
    level: u32,
    environment: &str,
) -> Result<Promoted> {
    let (name, version) = product.split_once('@').ok_or_else(|| {
        Error::InvalidArgument(format!(
            "product {product:?} must be NAME@VERSION, e.g. wso2is@5.11.0"
        ))
    })?;
    if state.store.tree(name, version, level).await?.is_none() {
        let levels: Vec<String> = state
            .store
            .trees()
            .await?
            .iter()
            .filter(|t| t.name == name && t.version == version)
            .map(|t| t.level.to_string())
            .collect();
        return Err(Error::FailedPrecondition(format!(
            "level {level} of {name} {version} is not imported (imported: {})",
            if levels.is_empty() {
                "none".into()
            } else {
                levels.join(", ")
            }
        )));
    }
    let known = environments(state.compiler.site());
    match known.iter().find(|(env, _)| env == environment) {
        None => {
            let names: Vec<&str> = known.iter().map(|(e, _)| e.as_str()).collect();
            return Err(Error::InvalidArgument(format!(
                "environment {environment:?} is not in the site (environments/: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        }
        Some((_, true)) => {
            return Err(Error::FailedPrecondition(format!(
                "environment {environment} is a development environment: it runs the highest imported level already"
            )));
        }
        Some(_) => {}
    }
    let previous = state
        .store
        .promotions()
        .await?
        .into_iter()
        .find(|p| p.name == name && p.version == version && p.environment == environment)
        .map_or(0, |p| p.level);
    state
        .store
        .promote(&PromotionRecord {
            name: name.to_string(),
            version: version.to_string(),
            environment: environment.to_string(),
            level,
            promoted_at_ms: now_ms(),
        })
        .await?;
    tracing::info!(
        product = name,
        version,
        environment,
        level,
        previous,
        "update level promoted"
    );
    // Its nodes get the level now (as a rollout), not when they next ask.
    state.site_changed.notify_one();
    Ok(Promoted {
        name: name.to_string(),
        version: version.to_string(),
        environment: environment.to_string(),
        level,
        previous,
    })
}

/// Which environments run each imported level: (name, version, level) →
/// environments, for `masterctl product list`.
pub async fn running_levels(
    state: &MasterState,
) -> Result<BTreeMap<(String, String, u32), Vec<String>>> {
    let trees = state.store.trees().await?;
    let promotions = state.store.promotions().await?;
    let mut running: BTreeMap<(String, String, u32), Vec<String>> = BTreeMap::new();
    let mut products: Vec<(String, String)> = trees
        .iter()
        .map(|t| (t.name.clone(), t.version.clone()))
        .collect();
    products.dedup();
    for (name, version) in products {
        let highest = trees
            .iter()
            .filter(|t| t.name == name && t.version == version)
            .map(|t| t.level)
            .max()
            .unwrap_or(0);
        for (environment, development) in environments(state.compiler.site()) {
            let level = if development {
                highest
            } else {
                promotions
                    .iter()
                    .find(|p| {
                        p.name == name && p.version == version && p.environment == environment
                    })
                    .map_or(0, |p| p.level)
            };
            running
                .entry((name.clone(), version.clone(), level))
                .or_default()
                .push(environment);
        }
    }
    Ok(running)
}
