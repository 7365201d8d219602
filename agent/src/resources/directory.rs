//! `directory`: exists (parents created), with the given mode and owner.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use rigger_common::catalog::DirectorySpec;

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError, io_error, mode_string};

/// What would change.
pub fn check(spec: &DirectorySpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    let (owner, pending) =
        DesiredOwner::resolve_for_check(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref());
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(vec![Change::new(format!("create directory {}", spec.path))])
        }
        Err(e) => Err(io_error("cannot stat", &path)(e)),
        Ok(meta) if !meta.is_dir() => Err(ResourceError::Other(format!(
            "{} exists and is not a directory; refusing to replace it",
            path.display()
        ))),
        Ok(meta) => {
            let mut changes = owner.changes(&meta);
            changes.extend(pending);
            if let Some(mode) = spec.mode {
                let current = meta.permissions().mode() & 0o7777;
                if current != mode {
                    changes.push(Change::new(format!(
                        "mode {} → {}",
                        mode_string(current),
                        mode_string(mode)
                    )));
                }
            }
            Ok(changes)
        }
    }
}

/// Creates the directory and sets mode and owner.
pub fn apply(spec: &DirectorySpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    let root = ctx.beneath()?;
    root.create_dir_all(&path)?;
    if let Some(mode) = spec.mode {
        root.set_mode(&path, mode)?;
    }
    DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?
        .apply(root, &path)
}
