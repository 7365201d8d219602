//! `file`: a regular file with exactly this content, mode and owner,
//! written atomically. Secret content never appears in a diff.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use rigger_common::catalog::{FileSpec, REDACTED};
use rigger_common::digest::Digest;
use rigger_common::fsutil::{Ownership, write_atomic};

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError, io_error, mode_string};

/// What would change, with a unified diff of the content.
pub fn check(spec: &FileSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    let (owner, pending) =
        DesiredOwner::resolve_for_check(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref());
    let meta = match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![Change {
                summary: format!(
                    "create file {} ({})",
                    spec.path,
                    mode_string(spec.effective_mode())
                ),
                diff: diff(spec, ""),
            }]);
        }
        Err(e) => return Err(io_error("cannot stat", &path)(e)),
        Ok(meta) => meta,
    };
    if !meta.is_file() {
        return Err(ResourceError::Other(format!(
            "{} exists and is not a regular file; refusing to replace it",
            path.display()
        )));
    }
    let mut changes = Vec::new();
    let current = fs::read(&path).map_err(io_error("cannot read", &path))?;
    if !matches(spec, &current) {
        let summary = match &spec.source {
            Some(source) => format!(
                "content of {} ({} → {source})",
                spec.path,
                Digest::of(&current)
            ),
            None => format!("content of {}", spec.path),
        };
        changes.push(Change {
            summary,
            diff: diff(spec, &String::from_utf8_lossy(&current)),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != spec.effective_mode() {
        changes.push(Change::new(format!(
            "mode {} → {}",
            mode_string(mode),
            mode_string(spec.effective_mode())
        )));
    }
    changes.extend(owner.changes(&meta));
    changes.extend(pending);
    Ok(changes)
}

/// Writes the file atomically (content, mode and owner in one rename).
pub fn apply(spec: &FileSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let path = ctx.paths.resolve(&spec.path);
    let owner = DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?;
    let content_matches = fs::read(&path).is_ok_and(|c| matches(spec, &c));
    if content_matches {
        fs::set_permissions(&path, fs::Permissions::from_mode(spec.effective_mode()))
            .map_err(io_error("cannot set the mode of", &path))?;
        return owner.apply(&path);
    }
    if owner.is_managed() && !nix::unistd::geteuid().is_root() {
        return Err(ResourceError::Other(format!(
            "cannot set the owner of {}: the agent is not running as root",
            path.display()
        )));
    }
    let bytes = desired(spec, ctx)?;
    write_atomic(
        &path,
        &bytes,
        spec.effective_mode(),
        Ownership {
            uid: owner.uid,
            gid: owner.gid,
        },
    )?;
    Ok(())
}

/// Whether `current` is the desired content.
fn matches(spec: &FileSpec, current: &[u8]) -> bool {
    match &spec.source {
        Some(source) => Digest::of(current) == *source,
        None => current == spec.content.as_bytes(),
    }
}

/// The desired content: inline, or the blob from the content cache.
fn desired<'a>(
    spec: &'a FileSpec,
    ctx: &ApplyContext,
) -> Result<std::borrow::Cow<'a, [u8]>, ResourceError> {
    let Some(source) = &spec.source else {
        return Ok(spec.content.as_bytes().into());
    };
    let blob = ctx.cache.path_of(source);
    let bytes = fs::read(&blob).map_err(|e| {
        ResourceError::Other(format!(
            "content {source} of {} is not in the cache (master unreachable?): {e}",
            spec.path
        ))
    })?;
    if Digest::of(&bytes) != *source {
        return Err(ResourceError::Other(format!(
            "cached blob {source} is corrupt"
        )));
    }
    Ok(bytes.into())
}

/// A unified diff of inline content (none for blobs); secrets redacted.
fn diff(spec: &FileSpec, current: &str) -> Option<String> {
    if spec.source.is_some() {
        return None;
    }
    if spec.secret {
        return Some(format!(
            "--- {0}\n+++ {0}\n{REDACTED} (secret content changed)\n",
            spec.path
        ));
    }
    Some(
        similar::TextDiff::from_lines(current, spec.content.as_str())
            .unified_diff()
            .context_radius(3)
            .header(&spec.path, &spec.path)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    fn spec(content: &str, secret: bool) -> FileSpec {
        FileSpec {
            path: "/etc/app.conf".into(),
            content: content.into(),
            source: None,
            mode: Some(0o640),
            owner: None,
            group: None,
            secret,
            restart_key: None,
        }
    }

    #[test]
    fn check_apply_check_converges() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let s = spec("a = 1\n", false);
        assert_eq!(check(&s, &ctx).unwrap().len(), 1);
        apply(&s, &ctx).unwrap();
        assert!(check(&s, &ctx).unwrap().is_empty());
        let changed = spec("a = 2\n", false);
        let changes = check(&changed, &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(diff.contains("-a = 1") && diff.contains("+a = 2"), "{diff}");
    }

    #[test]
    fn secret_diffs_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        apply(&spec("password = old\n", true), &ctx).unwrap();
        let changes = check(&spec("password = new\n", true), &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(
            diff.contains(REDACTED) && !diff.contains("new") && !diff.contains("old"),
            "{diff}"
        );
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/app.conf")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        assert!(check(&spec("x", false), &ctx).is_err());
    }

    #[test]
    fn owner_and_group_are_set_and_then_converged() {
        if !tests_support::root_or_skip("owner_and_group_are_set_and_then_converged") {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let mut s = spec("a\n", false);
        s.owner = Some("65534".into());
        s.group = Some("65534".into());
        apply(&s, &ctx).unwrap();
        let meta = std::fs::metadata(dir.path().join("etc/app.conf")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert!(check(&s, &ctx).unwrap().is_empty());
        // Ownership drift alone is detected and repaired without rewriting.
        std::os::unix::fs::chown(dir.path().join("etc/app.conf"), Some(0), Some(0)).unwrap();
        let changes = check(&s, &ctx).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        apply(&s, &ctx).unwrap();
        let meta = std::fs::metadata(dir.path().join("etc/app.conf")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
}

/// Helpers for tests that need root.
#[cfg(test)]
pub(crate) mod tests_support {
    /// Whether a root-only test may run: true as root; as another user it
    /// is skipped, unless `RIGGER_REQUIRE_ROOT_TESTS=1` makes that a failure.
    pub(crate) fn root_or_skip(test: &str) -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("RIGGER_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
            "{test} needs root and RIGGER_REQUIRE_ROOT_TESTS=1"
        );
        eprintln!("skipping {test}: needs root");
        false
    }
}
