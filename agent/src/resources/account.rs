//! `group` and `user`: system accounts with fixed ids. On a real node they
//! are made with groupadd/useradd (so NSS, shadow and nscd stay right);
//! under `--root DIR` they go into DIR's own `etc/group` and `etc/passwd`
//! (as `useradd --prefix` does) and services run with the numeric ids.

use std::path::PathBuf;
use std::process::Command;

use nix::unistd::{Group, User};
use rigger_common::catalog::{GroupSpec, UserSpec};
use rigger_common::fsutil::Ownership;

use super::{ApplyContext, Change, ResourceError};
use crate::paths::Paths;

/// An account as a passwd/group file or NSS knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// uid or gid.
    pub id: u32,
    /// Primary gid (users only).
    pub gid: u32,
    /// Home (users only).
    pub home: String,
    /// Shell (users only).
    pub shell: String,
}

fn managed_root(paths: &Paths) -> Option<PathBuf> {
    (paths.root() != std::path::Path::new("/")).then(|| paths.root().to_path_buf())
}

fn file_entries(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Looks a user up: NSS on a real node, `<root>/etc/passwd` under `--root`.
pub fn user(paths: &Paths, name: &str) -> Option<Account> {
    match managed_root(paths) {
        None => User::from_name(name).ok().flatten().map(|u| Account {
            id: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir.display().to_string(),
            shell: u.shell.display().to_string(),
        }),
        Some(root) => file_entries(&root.join("etc/passwd"))
            .into_iter()
            .find(|f| f.first().map(String::as_str) == Some(name) && f.len() >= 7)
            .and_then(|f| {
                Some(Account {
                    id: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].clone(),
                    shell: f[6].clone(),
                })
            }),
    }
}

/// Looks a group up: NSS on a real node, `<root>/etc/group` under `--root`.
pub fn group(paths: &Paths, name: &str) -> Option<Account> {
    match managed_root(paths) {
        None => Group::from_name(name).ok().flatten().map(|g| Account {
            id: g.gid.as_raw(),
            gid: g.gid.as_raw(),
            home: String::new(),
            shell: String::new(),
        }),
        Some(root) => file_entries(&root.join("etc/group"))
            .into_iter()
            .find(|f| f.first().map(String::as_str) == Some(name) && f.len() >= 3)
            .and_then(|f| {
                let gid = f[2].parse().ok()?;
                Some(Account {
                    id: gid,
                    gid,
                    home: String::new(),
                    shell: String::new(),
                })
            }),
    }
}

/// What would change for a group.
pub fn check_group(spec: &GroupSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    Ok(match group(&ctx.paths, &spec.name) {
        None => vec![Change::new(format!(
            "create group {} (gid {})",
            spec.name, spec.gid
        ))],
        Some(g) if g.id != spec.gid => vec![Change::new(format!(
            "group {} gid {} → {}",
            spec.name, g.id, spec.gid
        ))],
        Some(_) => vec![],
    })
}

/// What would change for a user.
pub fn check_user(spec: &UserSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let gid = group(&ctx.paths, &spec.group).map(|g| g.id);
    Ok(match user(&ctx.paths, &spec.name) {
        None => vec![Change::new(format!(
            "create user {} (uid {})",
            spec.name, spec.uid
        ))],
        Some(u) => {
            let mut changes = Vec::new();
            if u.id != spec.uid {
                changes.push(Change::new(format!(
                    "user {} uid {} → {}",
                    spec.name, u.id, spec.uid
                )));
            }
            if Some(u.gid) != gid {
                changes.push(Change::new(format!(
                    "user {} primary group → {}",
                    spec.name, spec.group
                )));
            }
            if u.home != spec.home || u.shell != spec.shell {
                changes.push(Change::new(format!(
                    "user {} home/shell → {} {}",
                    spec.name, spec.home, spec.shell
                )));
            }
            changes
        }
    })
}

fn run(program: &str, args: &[String]) -> Result<(), ResourceError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ResourceError::Other(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ResourceError::Other(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Replaces (or appends) the line for `name` in an account file under the root.
fn put_line(
    ctx: &ApplyContext,
    path: &std::path::Path,
    name: &str,
    line: &str,
) -> Result<(), ResourceError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.split(':').next() != Some(name))
        .map(str::to_string)
        .collect();
    lines.push(line.to_string());
    let root = ctx.beneath()?;
    if let Some(parent) = path.parent() {
        root.create_dir_all(parent)?;
    }
    root.write_atomic(
        path,
        format!("{}\n", lines.join("\n")).as_bytes(),
        0o644,
        Ownership::default(),
    )?;
    Ok(())
}

/// Creates or corrects the group.
pub fn apply_group(spec: &GroupSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    match managed_root(&ctx.paths) {
        Some(root) => put_line(
            ctx,
            &root.join("etc/group"),
            &spec.name,
            &format!("{}:x:{}:", spec.name, spec.gid),
        ),
        None => {
            let verb = if group(&ctx.paths, &spec.name).is_some() {
                "groupmod"
            } else {
                "groupadd"
            };
            let mut args = vec!["--gid".to_string(), spec.gid.to_string()];
            if verb == "groupadd" {
                args.insert(0, "--system".into());
            }
            args.push(spec.name.clone());
            run(verb, &args)
        }
    }
}

/// Creates or corrects the user (never its home directory).
pub fn apply_user(spec: &UserSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let gid = group(&ctx.paths, &spec.group)
        .ok_or_else(|| {
            ResourceError::Other(format!(
                "group {} of user {} does not exist",
                spec.group, spec.name
            ))
        })?
        .id;
    match managed_root(&ctx.paths) {
        Some(root) => put_line(
            ctx,
            &root.join("etc/passwd"),
            &spec.name,
            &format!(
                "{}:x:{}:{gid}:{}:{}:{}",
                spec.name, spec.uid, spec.name, spec.home, spec.shell
            ),
        ),
        None => {
            let exists = user(&ctx.paths, &spec.name).is_some();
            let mut args = vec![
                "--uid".to_string(),
                spec.uid.to_string(),
                "--gid".into(),
                spec.group.clone(),
                "--home".into(),
                spec.home.clone(),
                "--shell".into(),
                spec.shell.clone(),
            ];
            if !exists {
                args.insert(0, "--system".into());
                args.push("--no-create-home".into());
            }
            args.push(spec.name.clone());
            run(if exists { "usermod" } else { "useradd" }, &args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_under_a_root_go_into_its_own_files_and_converge() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\n",
        )
        .unwrap();
        let g = GroupSpec {
            name: "wso2".into(),
            gid: 802,
        };
        let u = UserSpec {
            name: "wso2carbon".into(),
            uid: 802,
            group: "wso2".into(),
            home: "/home/wso2carbon".into(),
            shell: "/usr/sbin/nologin".into(),
        };
        assert_eq!(check_group(&g, &ctx).unwrap().len(), 1);
        apply_group(&g, &ctx).unwrap();
        assert!(check_group(&g, &ctx).unwrap().is_empty());
        assert_eq!(check_user(&u, &ctx).unwrap().len(), 1);
        apply_user(&u, &ctx).unwrap();
        assert!(check_user(&u, &ctx).unwrap().is_empty());
        let passwd = std::fs::read_to_string(dir.path().join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0"), "{passwd}");
        assert!(
            passwd.contains("wso2carbon:x:802:802:wso2carbon:/home/wso2carbon:/usr/sbin/nologin"),
            "{passwd}"
        );
        // A drifted uid is corrected in place, once.
        let drifted = UserSpec {
            uid: 803,
            ..u.clone()
        };
        assert_eq!(check_user(&drifted, &ctx).unwrap().len(), 1);
        apply_user(&drifted, &ctx).unwrap();
        let passwd = std::fs::read_to_string(dir.path().join("etc/passwd")).unwrap();
        let lines = passwd
            .lines()
            .filter(|l| l.starts_with("wso2carbon:"))
            .count();
        assert_eq!(lines, 1, "{passwd}");
        assert!(passwd.contains(":803:"));
    }
}
