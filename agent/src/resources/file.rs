//! `file`: a regular file with exactly this content, mode and owner,
//! written atomically. Secret content never appears in a diff.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rigger_common::catalog::{FileSpec, REDACTED};
use rigger_common::digest::Digest;
use rigger_common::fsutil::Ownership;

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError, io_error, mode_string};

/// What would change, with a unified diff of the content.
/// What would change for a file; `previous` is the same resource in the
/// catalog applied before (it says what a secret file on disk shows as).
pub fn check(
    spec: &FileSpec,
    previous: Option<&FileSpec>,
    ctx: &ApplyContext,
) -> Result<Vec<Change>, ResourceError> {
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
                diff: diff(spec, "", None),
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
            diff: diff(spec, &String::from_utf8_lossy(&current), previous),
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
    let root = ctx.beneath()?;
    // A file with several names (a release file shared with the content
    // cache) is replaced, never changed in place.
    let shared = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.nlink() > 1);
    let content_matches = !shared && fs::read(&path).is_ok_and(|c| matches(spec, &c));
    if content_matches {
        root.set_mode(&path, spec.effective_mode())?;
        return owner.apply(root, &path);
    }
    if owner.is_managed() && !nix::unistd::geteuid().is_root() {
        return Err(ResourceError::Other(format!(
            "cannot set the owner of {}: the agent is not running as root",
            path.display()
        )));
    }
    let bytes = desired(spec, ctx)?;
    root.write_atomic(
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
        // Changed since its fetch verified it (a crash before the fetch's
        // flush, or a hand on the node): the next run fetches it again.
        let _ = fs::remove_file(&blob);
        return Err(ResourceError::Other(format!(
            "cached blob {source} of {} was damaged on disk: dropped, the next run fetches it again",
            spec.path
        )));
    }
    Ok(bytes.into())
}

/// A unified diff of inline content (none for blobs). A secret file shows
/// its redacted content: each secret value masked, every other changed line
/// visible. What is on disk shows as the previous catalog's redacted
/// content when the file is what that catalog wrote; a file changed by
/// hand is not shown at all.
fn diff(spec: &FileSpec, current: &str, previous: Option<&FileSpec>) -> Option<String> {
    if spec.source.is_some() {
        return None;
    }
    let whole = || {
        Some(format!(
            "--- {0}\n+++ {0}\n{REDACTED} (secret content changed)\n",
            spec.path
        ))
    };
    let (old, new) = if spec.secret {
        let Some(new) = spec.redacted_content.as_deref() else {
            return whole();
        };
        let old = if current.is_empty() {
            ""
        } else {
            match previous.filter(|p| p.path == spec.path && p.content == current) {
                Some(p) if !p.secret => p.content.as_str(),
                Some(p) => match p.redacted_content.as_deref() {
                    Some(shown) => shown,
                    None => return whole(),
                },
                None => {
                    return Some(format!(
                        "--- {0}\n+++ {0}\n{REDACTED} (the file on disk is not what Rigger wrote; its secret content is not shown)\n",
                        spec.path
                    ));
                }
            }
        };
        if old == new {
            return Some(format!(
                "--- {0}\n+++ {0}\n{REDACTED} (only secret values changed)\n",
                spec.path
            ));
        }
        (old, new)
    } else {
        (current, spec.content.as_str())
    };
    Some(
        similar::TextDiff::from_lines(old, new)
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
            redacted_content: None,
        }
    }

    #[test]
    fn check_apply_check_converges() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let s = spec("a = 1\n", false);
        assert_eq!(check(&s, None, &ctx).unwrap().len(), 1);
        apply(&s, &ctx).unwrap();
        assert!(check(&s, None, &ctx).unwrap().is_empty());
        let changed = spec("a = 2\n", false);
        let changes = check(&changed, None, &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(diff.contains("-a = 1") && diff.contains("+a = 2"), "{diff}");
    }

    #[test]
    fn a_damaged_cached_source_is_dropped_for_the_next_fetch_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let source = Digest::of(b"the artifact");
        let blob = ctx.cache.path_of(&source);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"the arti").unwrap();
        let s = FileSpec {
            source: Some(source),
            ..spec("", false)
        };
        let e = apply(&s, &ctx).unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("/etc/app.conf"), "{e}");
        assert!(!blob.exists(), "the damaged blob stayed");
        assert!(!dir.path().join("etc/app.conf").exists());
    }

    #[test]
    fn secret_diffs_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        apply(&spec("password = old\n", true), &ctx).unwrap();
        let changes = check(&spec("password = new\n", true), None, &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(
            diff.contains(REDACTED) && !diff.contains("new") && !diff.contains("old"),
            "{diff}"
        );
    }

    fn masked(content: &str, shown: &str) -> FileSpec {
        FileSpec {
            redacted_content: Some(shown.into()),
            ..spec(content, true)
        }
    }

    #[test]
    fn secret_diffs_show_every_changed_line_with_the_secret_values_masked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let old = masked(
            "url = db-1\npassword = old-s3cret\n",
            "url = db-1\npassword = <redacted>\n",
        );
        apply(&old, &ctx).unwrap();
        let new = masked(
            "url = db-2\npassword = new-s3cret\n",
            "url = db-2\npassword = <redacted>\n",
        );
        let changes = check(&new, Some(&old), &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(diff.contains("-url = db-1\n+url = db-2"), "{diff}");
        assert!(
            !diff.contains("s3cret") && !diff.contains("-password"),
            "{diff}"
        );

        // Edited by hand: what is on disk is not shown.
        std::fs::write(
            dir.path().join("etc/app.conf"),
            "password = typed-by-hand\n",
        )
        .unwrap();
        let changes = check(&new, Some(&old), &ctx).unwrap();
        let diff = changes[0].diff.as_deref().unwrap();
        assert!(
            diff.contains("not what Rigger wrote") && !diff.contains("typed-by-hand"),
            "{diff}"
        );
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/app.conf")).unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        assert!(check(&spec("x", false), None, &ctx).is_err());
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
        assert!(check(&s, None, &ctx).unwrap().is_empty());
        // Ownership drift alone is detected and repaired without rewriting.
        std::os::unix::fs::chown(dir.path().join("etc/app.conf"), Some(0), Some(0)).unwrap();
        let changes = check(&s, None, &ctx).unwrap();
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
