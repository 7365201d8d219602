//! `symlink`: a link pointing at the target, switched atomically.
//! Absolute targets resolve under the agent's root (written relative to the
//! link when the root is not `/`, see `Paths::link_target`).

use std::fs;
use std::path::PathBuf;

use rigger_common::catalog::SymlinkSpec;

use super::{ApplyContext, Change, ResourceError, io_error};

fn target(spec: &SymlinkSpec, ctx: &ApplyContext) -> PathBuf {
    if spec.target.starts_with('/') {
        ctx.paths.link_target(
            &ctx.paths.resolve(&spec.path),
            &ctx.paths.resolve(&spec.target),
        )
    } else {
        PathBuf::from(&spec.target)
    }
}

/// What would change.
pub fn check(spec: &SymlinkSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    let wanted = target(spec, ctx);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![Change::new(format!(
            "create symlink {} → {}",
            spec.path, spec.target
        ))]),
        Err(e) => Err(io_error("cannot stat", &path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let current = fs::read_link(&path).map_err(io_error("cannot read link", &path))?;
            if current == wanted {
                Ok(vec![])
            } else {
                Ok(vec![Change::new(format!(
                    "symlink {} → {} (was {})",
                    spec.path,
                    spec.target,
                    current.display()
                ))])
            }
        }
        Ok(meta) if meta.is_dir() => Err(ResourceError::Other(format!(
            "{} is a real directory; refusing to replace it with a symlink",
            path.display()
        ))),
        Ok(_) => Ok(vec![Change::new(format!(
            "replace file {} with a symlink → {}",
            spec.path, spec.target
        ))]),
    }
}

/// Points the link at its target atomically.
pub fn apply(spec: &SymlinkSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    Ok(ctx.beneath()?.replace_symlink(&path, &target(spec, ctx))?)
}
