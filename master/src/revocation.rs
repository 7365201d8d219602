//! Revocation at the handshake. The master keeps a certificate revocation
//! list of its revoked, unexpired node certificates: the TLS verifier
//! checks it at every handshake ([`RevocableClientVerifier`]), the
//! connections of a certificate revoked now are closed (their watch
//! streams end), and `crl.pem` in the data directory holds it for
//! operators. It is issued again at each revocation and daily, well
//! before its 7-day next-update time; the verifier does not enforce that
//! time anyway, so a master that could not issue one never locks the
//! fleet out.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rigger_common::connections::ConnectionTable;
use rigger_common::fsutil::{Ownership, write_atomic};
use rigger_common::time::now_ms;
use rigger_common::tls::RevocableClientVerifier;

use crate::error::{Error, Result};
use crate::state::MasterState;

/// How often the list is issued again without a revocation.
const REISSUE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How often a master on a shared store looks for revocations another
/// master made (it then issues its own list and closes their connections).
pub const FOLLOW_EVERY: Duration = Duration::from_secs(3);

/// Why the master closes a revoked certificate's connections.
const CLOSED_REVOKED: &str = "the client certificate was revoked";

/// The list in force: what `masterctl status` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListInForce {
    /// Its number (0: none issued yet).
    pub number: u64,
    /// When it was issued, Unix ms.
    pub issued_at_ms: i64,
    /// Its next-update time, Unix ms (a new one is issued long before).
    pub next_update_ms: i64,
    /// Certificates it names.
    pub revoked: usize,
}

/// The master's revocation state: the verifier the listener uses and the
/// connections it may have to close.
pub struct Revocation {
    verifier: Arc<RevocableClientVerifier>,
    connections: OnceLock<Arc<ConnectionTable>>,
    crl_path: PathBuf,
    in_force: tokio::sync::Mutex<ListInForce>,
    /// The serials the list in force names.
    listed: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Revocation {
    /// Revocation for a master whose CA certificate is `ca_pem`, writing
    /// its list to `crl_path`; nothing is revoked until [`publish`].
    pub fn new(
        ca_pem: &str,
        crl_path: PathBuf,
    ) -> std::result::Result<Self, rigger_common::tls::TlsError> {
        Ok(Self {
            verifier: RevocableClientVerifier::new(ca_pem)?,
            connections: OnceLock::new(),
            crl_path,
            in_force: tokio::sync::Mutex::new(ListInForce::default()),
            listed: Default::default(),
        })
    }

    /// The list the verifier checks now.
    pub async fn in_force(&self) -> ListInForce {
        *self.in_force.lock().await
    }

    /// The client verifier for the node listener.
    pub fn verifier(&self) -> Arc<RevocableClientVerifier> {
        self.verifier.clone()
    }

    /// The listener's connections, which a revocation closes (set once,
    /// when the listener starts).
    pub fn attach(&self, connections: Arc<ConnectionTable>) {
        let _ = self.connections.set(connections);
    }
}

/// Issues the revocation list of every revoked, unexpired certificate,
/// hands it to the verifier, writes `crl.pem`, and closes the open
/// connections of those certificates. Returns how many it closed.
pub async fn publish(state: &MasterState) -> Result<usize> {
    let revocation = &state.revocation;
    let mut in_force = revocation.in_force.lock().await;
    let now = now_ms();
    let revoked = revoked_now(state, now).await?;
    // Numbers grow: by the second, and past the last one issued.
    let number = (u64::try_from(now / 1000).unwrap_or(0)).max(in_force.number + 1);
    let lists = state.ca.revocation_lists(&revoked, number).map_err(|e| {
        Error::Internal(format!(
            "cannot sign the revocation list: {}",
            rigger_common::error_chain(&e)
        ))
    })?;
    let pem: String = lists.iter().map(|l| l.pem.as_str()).collect();
    let ders = lists.into_iter().map(|l| l.der).collect();
    revocation.verifier.set_crls(ders).map_err(|e| {
        Error::Internal(format!(
            "the TLS verifier refused the revocation list: {}",
            rigger_common::error_chain(&e)
        ))
    })?;
    *in_force = ListInForce {
        number,
        issued_at_ms: now,
        next_update_ms: now + crate::ca::CRL_LIFETIME.whole_milliseconds() as i64,
        revoked: revoked.len(),
    };
    if let Err(e) = write_atomic(
        &revocation.crl_path,
        pem.as_bytes(),
        0o644,
        Ownership::default(),
    ) {
        tracing::warn!(error = %rigger_common::error_chain(&e), "cannot write the revocation list file (the listener uses it already)");
    }
    *revocation.listed.lock().expect("listed serials") =
        revoked.iter().map(|(s, _)| s.clone()).collect();
    let serials: std::collections::HashSet<&str> =
        revoked.iter().map(|(s, _)| s.as_str()).collect();
    let closed = revocation.connections.get().map_or(0, |table| {
        table.close_where(CLOSED_REVOKED, |der| {
            crate::ca::serial_of(der).is_some_and(|s| serials.contains(s.as_str()))
        })
    });
    tracing::info!(
        revoked = revoked.len(),
        number,
        closed,
        "revocation list issued"
    );
    Ok(closed)
}

/// The revoked, unexpired certificates in the store: serial and when.
async fn revoked_now(state: &MasterState, now: i64) -> Result<Vec<(String, i64)>> {
    Ok(state
        .store
        .certs()
        .await?
        .into_iter()
        .filter(|c| c.revoked && c.not_after_ms > now)
        .map(|c| (c.serial, c.revoked_at_ms))
        .collect())
}

/// Issues the list again when the store's revoked certificates are not
/// the ones it names (another master revoked one); returns whether it did.
pub async fn follow_store(state: &MasterState) -> Result<bool> {
    let revoked = revoked_now(state, now_ms()).await?;
    let differs = {
        let listed = state.revocation.listed.lock().expect("listed serials");
        revoked.len() != listed.len() || revoked.iter().any(|(s, _)| !listed.contains(s))
    };
    if differs {
        tracing::info!(
            "the store's revocations changed (another master of the fleet): issuing the list again"
        );
        publish(state).await?;
    }
    Ok(differs)
}

/// Issues the list again every day while the master runs; on a store
/// other masters share (`shared`), also whenever one of them revoked a
/// certificate ([`FOLLOW_EVERY`]), so a revoked node is refused by every
/// master within seconds.
pub fn spawn(state: Arc<MasterState>, shared: bool) {
    let tick = if shared { FOLLOW_EVERY } else { REISSUE_EVERY };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = state.stopping.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let issued_at = state.revocation.in_force().await.issued_at_ms;
            let due = !shared || now_ms() - issued_at >= REISSUE_EVERY.as_millis() as i64;
            if due {
                if let Err(e) = publish(&state).await {
                    tracing::error!(error = %rigger_common::error_chain(&e), "cannot issue the revocation list again; the last one stays in force");
                }
            } else if let Err(e) = follow_store(&state).await {
                tracing::warn!(error = %rigger_common::error_chain(&e), "cannot read the store's revocations; the list in force stays");
            }
        }
    });
}

/// Revokes every certificate of the node `name` (a certname, or one
/// certificate's serial): refused from the next handshake on, its open
/// connections closed. Returns the certname, the serials revoked and the
/// connections closed.
pub async fn revoke(state: &MasterState, name: &str) -> Result<(String, Vec<String>, usize)> {
    let now = now_ms();
    let certname = match state.store.cert(&name.to_ascii_lowercase()).await? {
        Some(cert) => cert.certname,
        None => name.to_string(),
    };
    let serials = state.store.revoke_certs(&certname, now).await?;
    if serials.is_empty() {
        let known = state.store.issued_count(&certname).await? > 0;
        return Err(if known {
            Error::FailedPrecondition(format!(
                "every certificate of {certname} is revoked already"
            ))
        } else {
            Error::NotFound(format!(
                "no certificate was issued to {name:?} (a certname or a serial)"
            ))
        });
    }
    let closed = publish(state).await?;
    tracing::warn!(node = %certname, serials = ?serials, closed, "certificate revoked");
    Ok((certname, serials, closed))
}
