//! SIGHUP: the master reads its configuration again and applies what can
//! change while it runs (peer timeout, import limits, history retention),
//! says which changes wait for a restart (addresses, folders, connection
//! limits), forgets its parsed modules and the site revision it read, and
//! recompiles every live node from the site and modules as they are now.
//!
//! Invariant: a configuration that does not load or validate changes
//! nothing; the master keeps running with the settings it has and says why.

use crate::config::MasterConfig;
use crate::state::{LiveSettings, MasterState};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Applied; the settings that changed but wait for a restart.
    Applied {
        /// The live settings changed.
        live_changed: bool,
        /// Names of settings that take effect at the next restart.
        need_restart: Vec<&'static str>,
    },
    /// The configuration was not valid: nothing changed.
    Refused(String),
}

/// Applies `loaded` (the configuration read again) to a master started
/// with `started`, then has every live node recompiled.
pub fn reload(
    state: &MasterState,
    started: &MasterConfig,
    loaded: anyhow::Result<MasterConfig>,
) -> Reloaded {
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!(error = %why, "SIGHUP: the configuration is not valid; the master keeps the settings it runs with");
            return Reloaded::Refused(why);
        }
    };
    let need_restart = restart_only_changes(started, &config);
    for name in &need_restart {
        tracing::warn!(
            setting = name,
            "SIGHUP: this setting changed and takes effect at the next restart"
        );
    }
    let live = LiveSettings::of(&config);
    let live_changed = {
        let mut current = state.live.write().expect("live settings");
        let changed = *current != live;
        *current = live;
        changed
    };
    state.compiler.forget_modules();
    state.site_quiet.changed();
    state.site_changed.notify_one();
    tracing::info!(
        live_changed,
        "SIGHUP: configuration, site and modules read again; recompiling the live nodes"
    );
    Reloaded::Applied {
        live_changed,
        need_restart,
    }
}

/// The settings that differ and only a restart applies.
fn restart_only_changes(started: &MasterConfig, now: &MasterConfig) -> Vec<&'static str> {
    rigger_common::config::differing(&[
        ("data_dir", started.data_dir != now.data_dir),
        ("store", started.store != now.store),
        ("blobs", started.blobs != now.blobs),
        ("listen", started.listen != now.listen),
        ("modules", started.modules != now.modules),
        ("site", started.site != now.site),
        ("admin_socket", started.admin_socket != now.admin_socket),
        ("san", started.sans != now.sans),
        (
            "max_connections",
            started.max_connections != now.max_connections,
        ),
        (
            "max_connections_per_address",
            started.max_connections_per_address != now.max_connections_per_address,
        ),
        (
            "max_catalog_requests",
            started.max_catalog_requests != now.max_catalog_requests,
        ),
        (
            "max_blob_streams",
            started.max_blob_streams != now.max_blob_streams,
        ),
        (
            "metrics_listen",
            started.metrics_listen != now.metrics_listen,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MasterConfigFile;

    fn config(dir: &std::path::Path, extra: MasterConfigFile) -> MasterConfig {
        let file = MasterConfigFile {
            site: Some(dir.into()),
            modules: Some(vec![dir.into()]),
            ..Default::default()
        };
        MasterConfig::resolve(file, extra).unwrap()
    }

    #[test]
    fn only_addresses_folders_and_connection_limits_wait_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let started = config(dir.path(), MasterConfigFile::default());
        let live_only = config(
            dir.path(),
            MasterConfigFile {
                peer_timeout: Some("5m".into()),
                keep_reports: Some(3),
                ..Default::default()
            },
        );
        assert!(restart_only_changes(&started, &live_only).is_empty());
        let moved = config(
            dir.path(),
            MasterConfigFile {
                listen: Some("127.0.0.1:9".into()),
                max_connections: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(
            restart_only_changes(&started, &moved),
            ["listen", "max_connections"]
        );
    }
}
