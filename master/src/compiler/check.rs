//! Checks without a master (`masterctl module check`): every profile
//! rendered against its module's defaults with the node runtime switched
//! on, every site role compiled for a placeholder node, and `lookup`'s
//! explanation of where a data key's value comes from.

use rigger_common::catalog::CatalogContent;
use serde_json::Value;

use super::{
    CompileError, Compiler, Explained, Module, NodeContext, Peer, Products, ReferenceFiles,
    RoleSpec, SiteData, data, render,
};

pub(super) fn check_node(name: &str) -> NodeContext {
    NodeContext {
        certname: format!("module-check-{name}"),
        role: name.to_string(),
        facts: serde_json::json!({"hostname": "module-check", "ip": "192.0.2.10"}),
        inventory: vec![Peer {
            certname: format!("module-check-{name}"),
            role: name.to_string(),
            ip: "192.0.2.10".into(),
        }],
    }
}

impl Compiler {
    /// Renders one profile of a module against the module's default data
    /// alone (no site), with a placeholder node, for `masterctl module check`.
    pub fn check_profile(
        &self,
        module: &Module,
        profile_name: &str,
    ) -> Result<CatalogContent, CompileError> {
        self.check_profile_at(module, profile_name, None)
    }

    /// The product versions a profile has reference files for (under the
    /// module's `reference/<product>-<version>/`), sorted: `module check`
    /// checks the profile's edits at each.
    pub fn reference_versions(&self, module: &Module, profile_name: &str) -> Vec<String> {
        let product = module.defaults(profile_name).ok().and_then(|d| {
            d.get("product")
                .and_then(toml::Value::as_str)
                .map(str::to_string)
        });
        let (Some(product), Ok(entries)) =
            (product, std::fs::read_dir(module.dir.join("reference")))
        else {
            return Vec::new();
        };
        let prefix = format!("{product}-");
        let mut versions: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix(&prefix)
                    .map(str::to_string)
            })
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        versions.sort();
        versions
    }

    /// [`Compiler::check_profile`] for product `version` (the module's
    /// default version when `None`).
    pub fn check_profile_at(
        &self,
        module: &Module,
        profile_name: &str,
        version: Option<&str>,
    ) -> Result<CatalogContent, CompileError> {
        let profile = module.profile(profile_name)?;
        let mut data = module.defaults(profile_name)?;
        if let Some(version) = version {
            data.insert("version".into(), toml::Value::String(version.into()));
        }
        // What a site may switch on is checked too: the node runtime.
        let runtime_on: toml::Table = toml::from_str(
            "[service]\nenabled = true\n[shared_fs]\nenabled = true\nsource = \"fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/\"\n",
        )
        .expect("valid TOML");
        data::merge(&mut data, runtime_on);
        let version = data
            .get("version")
            .and_then(toml::Value::as_str)
            .unwrap_or("0.0.0")
            .to_string();
        let role = RoleSpec {
            module: module.name.clone(),
            profile: profile_name.to_string(),
            version: Some(version),
            pattern: None,
            environment: None,
            cluster: Some("check".into()),
            update_level: None,
        };
        let node = check_node(profile_name);
        let mut peers = serde_json::Map::new();
        peers.insert(
            profile_name.to_string(),
            serde_json::json!([{"certname": node.certname, "ip": "192.0.2.10"}]),
        );
        let mut context = render::context(data, &role, &node, Value::Object(peers));
        render::add_runtime(
            &mut context,
            profile.service.as_ref(),
            &module.manifest_path(),
            &self.templates,
        )?;
        let resources = render::resources(
            module,
            profile,
            &context,
            (&self.reference_products(), &toml::Table::new()),
            (&self.restart_key, &self.templates),
        )?;
        let content = CatalogContent {
            role: profile_name.to_string(),
            profile: format!("{}/{profile_name}", module.name),
            resources,
        };
        content
            .apply_order()
            .map_err(|source| CompileError::Catalog {
                file: module.manifest_path(),
                module: module.name.clone(),
                profile: profile_name.to_string(),
                source: Box::new(source),
            })?;
        Ok(content)
    }

    /// Compiles a site role for a placeholder node, with any imported
    /// product accepted, for `masterctl module check --site`.
    pub fn check_role(&self, role: &str) -> Result<CatalogContent, CompileError> {
        self.check_role_with(role, &self.reference_products())
    }

    /// Compiles a site role for a placeholder node against `products` (the
    /// master's imported packs, for `masterctl module check --master`).
    pub fn check_role_with(
        &self,
        role: &str,
        products: &Products,
    ) -> Result<CatalogContent, CompileError> {
        let mut node = check_node(role);
        node.role = role.to_string();
        self.compile(&node, products)
    }

    /// Any product accepted, with edits applied to the modules' reference
    /// files (there is no pack without a master).
    fn reference_products(&self) -> Products {
        Products::permissive().with_pack_files(std::sync::Arc::new(ReferenceFiles::new(
            self.module_paths.clone(),
        )))
    }

    /// Names of the site's roles.
    pub fn site_roles(&self) -> Vec<String> {
        SiteData::new(&self.site).role_names()
    }

    /// A role's data as any of its nodes sees it (no node file), secrets
    /// merged, its update level following the environment's channel (for
    /// `masterctl db init`, which works for a role, not a node).
    pub fn role_data(
        &self,
        role_name: &str,
        products: &Products,
    ) -> Result<(RoleSpec, toml::Table), CompileError> {
        let site = SiteData::new(&self.site);
        let role = site.role(role_name)?;
        let module = self.module(&role.module, role_name)?;
        let mut data = site.merged_data(&module, role_name, &role, "")?;
        let development = data::lookup(&data, "environment.development")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        super::follow_channel(&mut data, &role, development, products);
        Ok((role, data))
    }

    /// Explains a data key for a node of `role_name`: the merged value and
    /// the files that set it, most specific first.
    pub fn explain(
        &self,
        role_name: &str,
        certname: &str,
        key: &str,
    ) -> Result<Explained, CompileError> {
        let site = SiteData::new(&self.site);
        let role = site.role(role_name)?;
        let module = self.module(&role.module, role_name)?;
        let merged = site.merged_data(&module, role_name, &role, certname)?;
        let secrets = site.secrets(role_name, &role, certname)?;
        let mut value = data::lookup(&merged, key).cloned();
        if let (Some(value), Some(secret)) = (&mut value, data::lookup(&secrets, key)) {
            mask(value, secret);
        }
        // Secrets lie over the data: they come first, shown by source only.
        let mut sources: Vec<(std::path::PathBuf, toml::Value)> = site
            .explain_secrets(role_name, &role, certname, key)?
            .into_iter()
            .map(|(file, mut secret)| {
                let shape = secret.clone();
                mask(&mut secret, &shape);
                (file, secret)
            })
            .collect();
        sources.extend(site.explain(&module, role_name, &role, certname, key)?);
        Ok(Explained { value, sources })
    }
}

/// Replaces every value of `value` that `secret` sets (leaf by leaf, for
/// tables) with [`REDACTED`](rigger_common::catalog::REDACTED).
fn mask(value: &mut toml::Value, secret: &toml::Value) {
    match (value, secret) {
        (toml::Value::Table(value), toml::Value::Table(secret)) => {
            for (key, secret) in secret {
                if let Some(value) = value.get_mut(key) {
                    mask(value, secret);
                }
            }
        }
        (value, _) => {
            *value = toml::Value::String(rigger_common::catalog::REDACTED.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_leaf_by_leaf() {
        let mut value: toml::Value = toml::from_str::<toml::Table>(
            "url = \"jdbc:mysql://db/IDENTITY\"\nusername = \"wso2\"\npassword = \"s3cret\"\n",
        )
        .unwrap()
        .into();
        let secret: toml::Value = toml::from_str::<toml::Table>("password = \"s3cret\"\n")
            .unwrap()
            .into();
        mask(&mut value, &secret);
        let text = value.to_string();
        assert!(
            !text.contains("s3cret") && text.contains("<redacted>"),
            "{text}"
        );
        assert!(text.contains("jdbc:mysql://db/IDENTITY"), "{text}");
        let mut leaf = toml::Value::String("s3cret".into());
        mask(&mut leaf, &toml::Value::String("s3cret".into()));
        assert_eq!(leaf.as_str(), Some("<redacted>"));
    }
}
