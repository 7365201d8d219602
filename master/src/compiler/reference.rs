//! The modules' reference files: for each product version a module
//! supports, the configuration files with the structure the product ships
//! (`modules/<module>/reference/<product>-<version>/<path in the pack>`).
//! `masterctl module check` without a master applies edits to them; the
//! sample pack generator puts them in sample packs.

use std::path::PathBuf;

use super::products::{PackFiles, TreeFile};

/// Reads product files from the reference folders of the modules on the
/// module paths.
#[derive(Debug, Clone)]
pub struct ReferenceFiles {
    module_paths: Vec<PathBuf>,
}

impl ReferenceFiles {
    /// Over the modules in `module_paths`.
    pub fn new(module_paths: Vec<PathBuf>) -> Self {
        Self { module_paths }
    }

    /// The reference folders holding `product` `version`, in module-path order.
    fn folders(&self, product: &str, version: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in &self.module_paths {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut modules: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            modules.sort();
            for module in modules {
                let folder = module
                    .join("reference")
                    .join(format!("{product}-{version}"));
                if folder.is_dir() {
                    found.push(folder);
                }
            }
        }
        found
    }
}

impl PackFiles for ReferenceFiles {
    fn read(&self, file: &TreeFile<'_>) -> Result<Option<Vec<u8>>, String> {
        if file
            .path
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        {
            return Err(format!("{file}: not a path inside the pack"));
        }
        for folder in self.folders(file.product, file.version) {
            match std::fs::read(folder.join(file.path)) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("{}: {e}", folder.join(file.path).display())),
            }
        }
        Ok(None)
    }

    fn describe(&self, file: &TreeFile<'_>) -> String {
        match self.folders(file.product, file.version).first() {
            Some(folder) => format!(
                "the reference files in {} (checked without a pack)",
                folder.display()
            ),
            None => format!(
                "the modules' reference files, which have none for {} {} (reference/{}-{} in a module)",
                file.product, file.version, file.product, file.version
            ),
        }
    }
}
