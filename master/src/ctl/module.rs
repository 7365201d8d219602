//! `masterctl module check`: every profile of every module, then every
//! role of the site when given; all errors at once. Needs no master.

use std::fmt::Write;
use std::path::PathBuf;

use rigger_common::error_chain;

use crate::compiler::Compiler;

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// One line per profile or role checked ("ok …" or "FAIL …").
    pub report: String,
    /// Every problem, with file and line where the compiler knows them.
    pub problems: Vec<String>,
}

impl Checked {
    /// The problems as one error (none: `Ok`).
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} problem(s):\n{}",
            self.problems.len(),
            self.problems.join("\n")
        )
    }
}

/// Checks every profile (and role); an error only when nothing was found to check.
pub fn check(modules: Vec<PathBuf>, site: Option<PathBuf>) -> anyhow::Result<Checked> {
    let site_dir = site
        .clone()
        .unwrap_or_else(|| PathBuf::from("/nonexistent-site"));
    let mut errors = Vec::new();
    if let Some(site) = &site {
        // A site that is missing or does not parse is a problem, not "ok".
        errors.extend(crate::compiler::SiteData::new(site).file_problems());
    }
    let compiler = Compiler::new(modules, site_dir);
    let mut out = String::new();
    let mut checked = 0;
    for module in compiler.modules() {
        let module = match module {
            Ok(m) => m,
            Err(e) => {
                errors.push(error_chain(&e));
                continue;
            }
        };
        for profile in module.concrete_profiles() {
            // Each version the module has the product's reference files for
            // (edits are checked against them); the default version when it
            // has none.
            let references = compiler.reference_versions(&module, profile);
            let versions: Vec<Option<String>> = if references.is_empty() {
                vec![None]
            } else {
                references.into_iter().map(Some).collect()
            };
            for version in versions {
                checked += 1;
                let name = match &version {
                    None => format!("{}/{profile}", module.name),
                    Some(v) => format!(
                        "{}/{profile} @ {v} (edits against the reference files, no pack)",
                        module.name
                    ),
                };
                match compiler.check_profile_at(&module, profile, version.as_deref()) {
                    Ok(content) => {
                        let _ =
                            writeln!(out, "ok    {name}: {} resources", content.resources.len());
                    }
                    Err(e) => {
                        let _ = writeln!(out, "FAIL  {name}");
                        errors.push(format!("{name}: {}", error_chain(&e)));
                    }
                }
            }
        }
    }
    if site.is_some() {
        for role in compiler.site_roles() {
            checked += 1;
            match compiler.check_role(&role) {
                Ok(content) => {
                    let _ = writeln!(
                        out,
                        "ok    role {role}: {} resources",
                        content.resources.len()
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "FAIL  role {role}");
                    errors.push(format!("role {role}: {}", error_chain(&e)));
                }
            }
        }
    }
    if checked == 0 {
        anyhow::bail!("no module found on the module paths");
    }
    Ok(Checked {
        report: out,
        problems: errors,
    })
}

/// `masterctl module check --master`: every site role of the running
/// master compiled against its imported packs (edits applied to the
/// product's own files at each role's level).
pub async fn check_on_master(ctl: &super::Ctl) -> anyhow::Result<Checked> {
    let reply = ctl
        .client()
        .check_roles(rigger_common::proto::CheckRolesRequest {})
        .await
        .map_err(super::status)?
        .into_inner();
    let mut checked = Checked::default();
    for role in reply.roles {
        if role.error.is_empty() {
            let _ = writeln!(
                checked.report,
                "ok    role {}: {} resources (against the imported packs)",
                role.role, role.resources
            );
        } else {
            let _ = writeln!(checked.report, "FAIL  role {}", role.role);
            checked
                .problems
                .push(format!("role {}: {}", role.role, role.error));
        }
    }
    Ok(checked)
}
