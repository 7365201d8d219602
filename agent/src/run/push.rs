//! Push: the daemon holds a `WatchCatalog` stream to its master, which
//! sends the node's latest catalog version at once and then each newer
//! one; a version newer than the one applied means "run now".

use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::Agent;
use crate::identity;

/// Why the watch is not held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The node has no identity yet (its first run enrolls it).
    #[error("not enrolled yet")]
    NotEnrolled,
    /// The master could not be reached, refused, or the stream broke.
    #[error("{0}")]
    Failed(String),
}

impl Agent {
    /// Watches the node's catalog version on the master until the stream
    /// ends, sending on `newer` each version newer than the one applied.
    /// `Ok(true)`: the master answered.
    pub async fn watch_catalog(&self, newer: &mpsc::Sender<u64>) -> Result<bool, WatchError> {
        let failed = |e: &dyn std::fmt::Display| WatchError::Failed(e.to_string());
        let identity = match self.loaded_identity() {
            Some(identity) => identity,
            None => Arc::new(
                identity::load(&self.paths.ssl_dir())
                    .map_err(|e| failed(&e))?
                    .ok_or(WatchError::NotEnrolled)?,
            ),
        };
        let master = self
            .connector
            .connect(&identity)
            .await
            .map_err(|e| failed(&e))?;
        let mut versions = master.watch_catalog().await.map_err(|e| failed(&e))?;
        let mut heard = false;
        while let Some(version) = versions.next().await {
            let version = version.map_err(|e| failed(&e))?;
            heard = true;
            let applied = self.state.load().map_or(0, |s| s.applied_version);
            if version > applied {
                tracing::info!(
                    version,
                    applied,
                    "the master has a newer catalog: running now"
                );
                if newer.send(version).await.is_err() {
                    break;
                }
            }
        }
        Ok(heard)
    }
}
