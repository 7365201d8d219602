//! `package`: an OS package installed through the system's package manager
//! (apt on Debian/Ubuntu, dnf or yum on RPM systems). Packages are
//! system-wide, whatever the agent's `--root`.

use std::path::PathBuf;
use std::process::Command;

use rigger_common::catalog::PackageSpec;

use super::{ApplyContext, Change, ResourceError};

/// A package manager: how to ask whether a package is installed, and how
/// to install it (paths overridable so tests can use recording fakes).
#[derive(Debug, Clone)]
pub enum PackageManager {
    /// dpkg-query + apt-get.
    Apt {
        /// `dpkg-query`.
        query: PathBuf,
        /// `apt-get`.
        install: PathBuf,
    },
    /// rpm + dnf (or yum).
    Rpm {
        /// `rpm`.
        query: PathBuf,
        /// `dnf` or `yum`.
        install: PathBuf,
    },
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
}

impl PackageManager {
    /// The machine's package manager.
    pub fn detect() -> Result<Self, ResourceError> {
        if let (Some(query), Some(install)) = (on_path("dpkg-query"), on_path("apt-get")) {
            return Ok(Self::Apt { query, install });
        }
        if let (Some(query), Some(install)) =
            (on_path("rpm"), on_path("dnf").or_else(|| on_path("yum")))
        {
            return Ok(Self::Rpm { query, install });
        }
        Err(ResourceError::Other(
            "no supported package manager (apt, dnf or yum) on this machine".into(),
        ))
    }

    /// Whether the package is installed.
    pub fn installed(&self, name: &str) -> Result<bool, ResourceError> {
        let out = match self {
            Self::Apt { query, .. } => Command::new(query)
                .args(["-W", "-f=${Status}", name])
                .output(),
            Self::Rpm { query, .. } => Command::new(query).args(["-q", name]).output(),
        }
        .map_err(|e| ResourceError::Other(format!("cannot query package {name}: {e}")))?;
        Ok(match self {
            Self::Apt { .. } => {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("install ok installed")
            }
            Self::Rpm { .. } => out.status.success(),
        })
    }

    /// Installs the package; apt refreshes its lists once if it does not know it.
    pub fn install(&self, name: &str) -> Result<(), ResourceError> {
        let run = |program: &PathBuf,
                   args: &[&str]|
         -> Result<std::process::Output, ResourceError> {
            Command::new(program)
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .map_err(|e| ResourceError::Other(format!("cannot run {}: {e}", program.display())))
        };
        let failed = |out: &std::process::Output| {
            ResourceError::Other(format!(
                "installing {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        };
        match self {
            Self::Apt { install, .. } => {
                let args = ["install", "-y", "--no-install-recommends", name];
                let out = run(install, &args)?;
                if out.status.success() {
                    return Ok(());
                }
                // A fresh machine's package lists may be missing or stale.
                let update = run(install, &["update"])?;
                if !update.status.success() {
                    return Err(failed(&update));
                }
                let out = run(install, &args)?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(failed(&out))
                }
            }
            Self::Rpm { install, .. } => {
                let out = run(install, &["install", "-y", name])?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(failed(&out))
                }
            }
        }
    }
}

/// The package's name for this package manager.
pub fn name_for<'s>(spec: &'s PackageSpec, manager: &PackageManager) -> &'s str {
    match (manager, spec.rpm_name.as_deref()) {
        (PackageManager::Rpm { .. }, Some(rpm)) if !rpm.is_empty() => rpm,
        _ => &spec.name,
    }
}

/// What would change.
pub fn check(spec: &PackageSpec, _ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    check_with(spec, &PackageManager::detect()?)
}

/// [`check`] with a given package manager.
pub fn check_with(
    spec: &PackageSpec,
    manager: &PackageManager,
) -> Result<Vec<Change>, ResourceError> {
    let name = name_for(spec, manager);
    Ok(if manager.installed(name)? {
        vec![]
    } else {
        vec![Change::new(format!("install package {name}"))]
    })
}

/// Installs the package if it is missing.
pub fn apply(spec: &PackageSpec, _ctx: &ApplyContext) -> Result<(), ResourceError> {
    apply_with(spec, &PackageManager::detect()?)
}

/// [`apply`] with a given package manager.
pub fn apply_with(spec: &PackageSpec, manager: &PackageManager) -> Result<(), ResourceError> {
    let name = name_for(spec, manager);
    if manager.installed(name)? {
        return Ok(());
    }
    manager.install(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn dnf_installs_the_rpm_name_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // Fakes: rpm -q answers from a state file; dnf records its calls.
        let query = script(dir.path(), "rpm", &format!("[ -f {d}/installed-$2 ]"));
        let install = script(
            dir.path(),
            "dnf",
            &format!("echo \"$*\" >> {d}/calls\ntouch {d}/installed-$3"),
        );
        let manager = PackageManager::Rpm { query, install };
        let spec = PackageSpec {
            name: "nfs-common".into(),
            rpm_name: Some("nfs-utils".into()),
        };
        assert_eq!(
            check_with(&spec, &manager).unwrap()[0].summary,
            "install package nfs-utils"
        );
        apply_with(&spec, &manager).unwrap();
        assert!(check_with(&spec, &manager).unwrap().is_empty());
        apply_with(&spec, &manager).unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls, "install -y nfs-utils\n");
    }

    #[test]
    fn apt_installs_once_refreshing_unknown_lists() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // Fakes: dpkg-query answers from a state file; apt-get records its
        // calls and only knows the package after `update`.
        let query = script(
            dir.path(),
            "dpkg-query",
            &format!("[ -f {d}/installed ] && echo 'install ok installed'"),
        );
        let install = script(
            dir.path(),
            "apt-get",
            &format!(
                "echo \"$DEBIAN_FRONTEND $*\" >> {d}/calls\ncase \"$1\" in\n  update) touch {d}/lists ;;\n  install) [ -f {d}/lists ] || {{ echo 'E: Unable to locate package' >&2; exit 100; }}; touch {d}/installed ;;\nesac"
            ),
        );
        let manager = PackageManager::Apt { query, install };
        let spec = PackageSpec {
            name: "nfs-common".into(),
            rpm_name: Some("nfs-utils".into()),
        };
        assert_eq!(check_with(&spec, &manager).unwrap().len(), 1);
        apply_with(&spec, &manager).unwrap();
        assert!(check_with(&spec, &manager).unwrap().is_empty());
        apply_with(&spec, &manager).unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(
            calls,
            "noninteractive install -y --no-install-recommends nfs-common\nnoninteractive update\nnoninteractive install -y --no-install-recommends nfs-common\n"
        );
    }

    #[test]
    fn a_real_small_package_installs_where_apt_is_available() {
        if !super::super::file::tests_support::root_or_skip(
            "a_real_small_package_installs_where_apt_is_available",
        ) {
            return;
        }
        let Ok(manager @ PackageManager::Apt { .. }) = PackageManager::detect() else {
            eprintln!("not an apt system: skipped");
            return;
        };
        let spec = PackageSpec {
            name: "hello".into(),
            rpm_name: None,
        };
        apply_with(&spec, &manager).unwrap();
        assert!(check_with(&spec, &manager).unwrap().is_empty());
        let out = Command::new("hello").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, world!"));
    }
}
