//! Certificate renewal during a run: once the node's certificate is two
//! thirds through its life, the run that reached the master has it sign
//! a new one ([`identity::renew`]); the next connection uses it. A failed
//! renewal keeps the current certificate and is tried again at the next
//! run, long before it expires.

use std::sync::Arc;

use rigger_common::time::{format_ms, now_ms};

use super::Agent;
use crate::client::MasterClient;
use crate::identity::{self, Identity};

impl Agent {
    /// Renews the node's certificate over `master` if it is due.
    pub(super) async fn renew_if_due(&self, master: &dyn MasterClient, current: &Identity) {
        let Some(due_at) = identity::renewal_due_at_ms(&current.client.cert_pem) else {
            return;
        };
        if now_ms() < due_at {
            return;
        }
        let _changing = self.identity_change.lock().await;
        let expires = identity::validity(&current.client.cert_pem).map_or(0, |(_, after)| after);
        match identity::renew(&self.paths.ssl_dir(), current, master).await {
            Ok(renewed) => {
                let until =
                    identity::validity(&renewed.client.cert_pem).map_or(0, |(_, after)| after);
                tracing::info!(expires = %format_ms(until), "certificate renewed");
                self.set_identity(Arc::new(renewed));
            }
            Err(e) => tracing::warn!(
                error = %rigger_common::error_chain(&e),
                expires = %format_ms(expires),
                "cannot renew the certificate; the current one is used until then and renewal is tried again at the next run"
            ),
        }
    }
}
