//! The keys every master of one fleet holds alike (CA, catalog signing
//! key, restart key, and on a shared store the epoch): a master compares
//! its own with what the first master on its store recorded
//! ([`crate::store::FleetKeys`], names only, never a secret) and refuses
//! to serve with others. A finished CA rotation moves the record on.

use std::path::{Path, PathBuf};

use crate::ca::CertificateAuthority;
use crate::compiler::RestartKey;
use crate::store::{FleetKeys, MetaStore, StoreError};

/// Why a master may not serve its store's fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Its keys are not the fleet's.
    #[error(
        "this master's {differing} differ from the fleet's, recorded in its store by the first master (CA {fleet_ca}): copy ca.crt, ca.key, catalog-signing.key, restart-key and epoch from a master of the fleet into {}, then start it again",
        data_dir.display()
    )]
    NotOfTheFleet {
        /// What differs, with the files that hold it.
        differing: String,
        /// Where the files go.
        data_dir: PathBuf,
        /// The fleet's CA fingerprint.
        fleet_ca: String,
    },
    /// The CA's certificate does not parse.
    #[error("the CA")]
    Ca(#[from] rigger_common::tls::TlsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This master's keys, as the store records them.
pub fn keys_of(
    ca: &CertificateAuthority,
    signing_key: &ed25519_dalek::SigningKey,
    restart_key: &RestartKey,
    epoch: &str,
) -> Result<FleetKeys, FleetError> {
    Ok(FleetKeys {
        ca: ca.fingerprint()?.to_string(),
        signing: hex::encode(signing_key.verifying_key().as_bytes()),
        restart: restart_key.of(b"rigger fleet keys").to_string(),
        epoch: epoch.to_string(),
    })
}

/// Records `mine` as the fleet's keys on a store that has none, or checks
/// them against the recorded ones. The epoch counts only on a `shared`
/// store (a SQLite master restored from a backup starts a new one on
/// purpose); `data_dir` is where the error says the files go.
pub async fn join(
    store: &dyn MetaStore,
    ca: &CertificateAuthority,
    mine: &FleetKeys,
    shared: bool,
    data_dir: &Path,
) -> Result<(), FleetError> {
    let fleet = store.claim_fleet_keys(mine).await?;
    if fleet.ca != mine.ca && ca.previous_fingerprint().as_deref() == Some(fleet.ca.as_str()) {
        // This master finished a CA rotation: the fleet's CA is its new one.
        store
            .replace_fleet_keys(&FleetKeys {
                ca: mine.ca.clone(),
                ..fleet
            })
            .await?;
        tracing::warn!(ca = %mine.ca, "the fleet's CA is this master's new one (rotation finished)");
        return Ok(());
    }
    // A rotation in progress on one master: the fleet's CA is trusted.
    let trusted_ca = ca
        .trusted_fingerprints()
        .iter()
        .any(|t| t.to_string() == fleet.ca);
    let differing: Vec<&str> = [
        ("the CA (ca.crt, ca.key)", !trusted_ca),
        (
            "the catalog signing key (catalog-signing.key)",
            mine.signing != fleet.signing,
        ),
        (
            "the restart key (restart-key)",
            mine.restart != fleet.restart,
        ),
        ("the epoch (epoch)", shared && mine.epoch != fleet.epoch),
    ]
    .into_iter()
    .filter_map(|(what, differs)| differs.then_some(what))
    .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(FleetError::NotOfTheFleet {
        differing: differing.join(", "),
        data_dir: data_dir.to_path_buf(),
        fleet_ca: fleet.ca,
    })
}
