//! The review of a product level before it is recorded: every site role
//! that runs the product version is compiled against the new tree, so an
//! edit whose target the level removed or renamed is found at `masterctl
//! update import` (file, edit and level named), never on the nodes.

use super::check::check_node;
use super::{Compiler, Products, SiteData};
use rigger_common::error_chain;

/// What a level's review found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LevelReview {
    /// The site roles that run the product version (compiled at the level).
    pub roles: Vec<String>,
    /// Why the module's edits do not apply to the level's files (when they
    /// apply at the current level, or for a first import): each names the
    /// role, the edits file, the edit and the level.
    pub problems: Vec<String>,
}

impl Compiler {
    /// Reviews a level of `product` `version`: `new` resolves the product to
    /// the level under review, `current` (None for a first import) to the
    /// levels recorded so far. A role that fails at the current level too is
    /// not the level's doing and is left out of the problems.
    pub fn review_level(
        &self,
        product: &str,
        version: &str,
        current: Option<&Products>,
        new: &Products,
    ) -> LevelReview {
        let site = SiteData::new(&self.site);
        let mut review = LevelReview::default();
        for role_name in site.role_names() {
            if !self.role_runs(&site, &role_name, product, version) {
                continue;
            }
            review.roles.push(role_name.clone());
            let mut node = check_node(&role_name);
            node.role = role_name.clone();
            // Only what the level's own files cause is the level's problem
            // (a role that lacks a secret fails before and after).
            let Err(e) = self.compile(&node, new) else {
                continue;
            };
            if !e.is_about_product_files() {
                continue;
            }
            match current.map(|now| self.compile(&node, now)) {
                Some(Err(before)) if before.is_about_product_files() => tracing::warn!(
                    role = %role_name,
                    error = %error_chain(&before),
                    "the module's edits do not apply at the current level either"
                ),
                _ => review
                    .problems
                    .push(format!("role {role_name}: {}", error_chain(&e))),
            }
        }
        review
    }

    /// Whether the role's module installs `product` at `version`.
    fn role_runs(&self, site: &SiteData, role_name: &str, product: &str, version: &str) -> bool {
        let Ok(role) = site.role(role_name) else {
            return false;
        };
        if role.version.as_deref() != Some(version) {
            return false;
        }
        let Ok(module) = self.module(&role.module, role_name) else {
            return false;
        };
        site.merged_data(&module, role_name, &role, &check_node(role_name).certname)
            .ok()
            .and_then(|data| {
                data.get("product")
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|p| p == product)
    }
}
