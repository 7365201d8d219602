//! The metadata store's interface. Every write that several masters could
//! race on (token uses, catalog versions, leases) is one atomic operation
//! here, so that a backend can implement it with a transaction.

use rigger_common::signing::SignedCatalog;

use super::{
    AppliedCatalog, ArtifactRecord, Budget, CatalogAnnouncements, CatalogRecord, CatalogVersion,
    CertRecord, FleetKeys, LeaseDecision, LeaseRecord, NodeRecord, PendingEnrollment,
    PromotionRecord, ReportRecord, ReportSummary, RolloutNode, RolloutRecord, RolloutsLock,
    ServiceHealthRecord, StoreError, TokenRecord, TreeInsert, TreeRecord,
};

/// Tokens, certificates, inventory, catalog history, reports, trees,
/// artifacts and restart leases.
///
/// Every write is durable when it returns, except the ones marked
/// *refreshed*: what each catalog request records again (last seen,
/// facts, the applied version, why the last request failed), the
/// catalog versions, which a compile makes again, the reports of runs
/// that changed nothing, which the next run makes again, and the time of
/// a service's unchanged health, which the next report or heartbeat
/// says again. A backend may let a
/// power loss take back the last of those, never one durable write made
/// after them, and never leave a half-written one. Catalog version
/// numbers stay safe: the next request records the version the node
/// applied before anything is compiled, and the next version goes above
/// it ([`crate::catalogs::publish`]).
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync {
    /// Stores a new token by hash.
    async fn insert_token(
        &self,
        hash: &str,
        record: &TokenRecord,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every token, newest first: hash, record, creation (Unix ms).
    async fn tokens(&self) -> Result<Vec<(String, TokenRecord, i64)>, StoreError>;
    /// Revokes a token: no use left, expired now; returns whether it was there.
    async fn revoke_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// Looks a token up by hash.
    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Consumes one use of a token if it is unexpired and not used up;
    /// returns whether it did (atomic against concurrent enrollments).
    async fn consume_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Records an issued certificate and enrolls (or re-binds) its node, atomically.
    async fn record_enrollment(
        &self,
        cert: &CertRecord,
        bound_role: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Records a certificate issued to renew the certificate `renewed` of
    /// the same node, atomically with the check that `renewed` is still
    /// unrevoked and its node still enrolled; `false` (nothing recorded)
    /// when not.
    async fn record_renewal(&self, cert: &CertRecord, renewed: &str) -> Result<bool, StoreError>;
    /// Records a certificate that enrolls no node (an admin's).
    async fn record_cert(&self, cert: &CertRecord) -> Result<(), StoreError>;
    /// How many certificates were ever issued to `certname`.
    async fn issued_count(&self, certname: &str) -> Result<u64, StoreError>;
    /// Records (or replaces) an enrollment waiting for an operator.
    async fn put_pending(&self, pending: &PendingEnrollment) -> Result<(), StoreError>;
    /// Enrollments waiting for an operator, oldest first.
    async fn pending(&self) -> Result<Vec<PendingEnrollment>, StoreError>;
    /// Takes `certname`'s waiting enrollment out of the queue.
    async fn take_pending(&self, certname: &str) -> Result<Option<PendingEnrollment>, StoreError>;
    /// Certificates, newest first.
    async fn certs(&self) -> Result<Vec<CertRecord>, StoreError>;
    /// The certificate with this serial.
    async fn cert(&self, serial: &str) -> Result<Option<CertRecord>, StoreError>;
    /// The newest unrevoked, unexpired certificate of `certname`.
    async fn valid_cert(
        &self,
        certname: &str,
        now_ms: i64,
    ) -> Result<Option<CertRecord>, StoreError>;
    /// Whether `certname` holds an unrevoked, unexpired certificate.
    async fn has_valid_cert(&self, certname: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.valid_cert(certname, now_ms).await?.is_some())
    }

    /// The node's inventory record.
    async fn node(&self, certname: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Every node, by name.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// The nodes whose role is one of `roles`, seen at or after
    /// `seen_since_ms`, by name: a cluster's live members, which each
    /// compile reads (not the whole fleet).
    async fn live_nodes_in_roles(
        &self,
        roles: &[String],
        seen_since_ms: i64,
    ) -> Result<Vec<NodeRecord>, StoreError>;
    /// The facts a node sent with its last catalog request.
    async fn node_facts(&self, certname: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// Records why the master could not give a node its catalog ("" when
    /// it could again). Refreshed.
    async fn set_catalog_error(&self, certname: &str, error: &str) -> Result<(), StoreError>;
    /// Records that a node asked for its catalog with these facts.
    /// Refreshed.
    async fn touch_node(
        &self,
        certname: &str,
        role: &str,
        ip: Option<&str>,
        facts: &serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Records the catalog a node says it applied. Refreshed.
    async fn record_applied(
        &self,
        certname: &str,
        applied: &AppliedCatalog,
    ) -> Result<(), StoreError>;
    /// The catalog the node last said it applied (`None`: never said).
    async fn applied(&self, certname: &str) -> Result<Option<AppliedCatalog>, StoreError>;
    /// Replaces the signed form of a stored version whose content is
    /// unchanged (re-signed with a later expiry). Refreshed.
    async fn replace_signed(
        &self,
        certname: &str,
        version: u64,
        signed: &SignedCatalog,
    ) -> Result<(), StoreError>;
    /// Removes a node, revokes its certificates and frees its restart
    /// leases, atomically; returns whether it was there. Its catalog
    /// history is kept.
    async fn remove_node(&self, certname: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// Revokes every unrevoked certificate of `certname` at `now_ms`;
    /// returns their serials (none: nothing was left to revoke).
    async fn revoke_certs(&self, certname: &str, now_ms: i64) -> Result<Vec<String>, StoreError>;
    /// Pins a node to the content of one of its catalog versions (`None`
    /// unpins); returns whether the node exists.
    async fn set_pin(&self, certname: &str, version: Option<u64>) -> Result<bool, StoreError>;
    /// The catalog version a node is pinned to, if any.
    async fn pin(&self, certname: &str) -> Result<Option<u64>, StoreError>;

    /// The node's latest catalog, or the given version.
    async fn catalog(
        &self,
        certname: &str,
        version: Option<u64>,
    ) -> Result<Option<CatalogRecord>, StoreError>;
    /// Appends a catalog version to the node's history; a version that
    /// exists already is [`StoreError::VersionTaken`] (versions are never
    /// rewritten: of masters storing one at once, one does). Refreshed.
    async fn insert_catalog(
        &self,
        certname: &str,
        record: &CatalogRecord,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The node's catalog versions, newest first (at most `limit`).
    async fn catalog_history(
        &self,
        certname: &str,
        limit: u32,
    ) -> Result<Vec<CatalogVersion>, StoreError>;
    /// Deletes the node's catalog versions beyond its newest `keep` or
    /// made before `before_ms`, except its latest and those in `protect`;
    /// returns how many went.
    async fn prune_catalogs(
        &self,
        certname: &str,
        keep: u32,
        before_ms: i64,
        protect: &[u64],
    ) -> Result<u64, StoreError>;
    /// Deletes every node's reports beyond its newest `keep` or received
    /// before `before_ms`, except its newest one and its newest that was
    /// not a noop (what it applied is read from it); returns how many went.
    async fn prune_reports(&self, keep: u32, before_ms: i64) -> Result<u64, StoreError>;

    /// Stores a run report. Refreshed when the report
    /// [only confirms](rigger_common::report::RunReport::only_confirms)
    /// the node stays as it was.
    async fn insert_report(
        &self,
        certname: &str,
        report: &ReportRecord,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The node's last `limit` reports, newest first, with when each came.
    async fn reports(
        &self,
        certname: &str,
        limit: u32,
    ) -> Result<Vec<(i64, ReportRecord)>, StoreError>;
    /// The node's last report.
    async fn last_report(&self, certname: &str) -> Result<Option<ReportSummary>, StoreError>;

    /// Records an imported tree. Re-importing the same content changes
    /// nothing; the same level with other content is refused.
    async fn insert_tree(&self, tree: &TreeRecord, now_ms: i64) -> Result<TreeInsert, StoreError>;
    /// One level of a product version.
    async fn tree(
        &self,
        name: &str,
        version: &str,
        level: u32,
    ) -> Result<Option<TreeRecord>, StoreError>;
    /// Every imported tree, by name, version and level.
    async fn trees(&self) -> Result<Vec<TreeRecord>, StoreError>;

    /// Records a cluster's rollout (replacing the one it had; a new
    /// revision forgets the nodes the old one admitted).
    async fn put_rollout(&self, rollout: &RolloutRecord) -> Result<(), StoreError>;
    /// The cluster's rollout.
    async fn rollout(&self, cluster: &str) -> Result<Option<RolloutRecord>, StoreError>;
    /// Every rollout, by cluster.
    async fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError>;
    /// Records (or updates) a node the cluster's rollout admitted.
    async fn put_rollout_node(&self, node: &RolloutNode) -> Result<(), StoreError>;
    /// The nodes the cluster's rollout admitted, by admission time.
    async fn rollout_nodes(&self, cluster: &str) -> Result<Vec<RolloutNode>, StoreError>;

    /// Promotes a level to an environment (replacing what it ran).
    async fn promote(&self, promotion: &PromotionRecord) -> Result<(), StoreError>;
    /// Every promotion, by product, version and environment.
    async fn promotions(&self) -> Result<Vec<PromotionRecord>, StoreError>;

    /// Records (or replaces) a named artifact.
    async fn upsert_artifact(&self, artifact: &ArtifactRecord) -> Result<(), StoreError>;
    /// Every artifact, by name.
    async fn artifacts(&self) -> Result<Vec<ArtifactRecord>, StoreError>;

    /// Grants `lease` unless `max_down` other nodes of its group hold an
    /// unexpired lease or, with a `budget`, fewer than its `min_ready`
    /// other nodes of the group would stay available; a node asking again
    /// renews its own. Atomic with the readiness it counts. A granted lease
    /// ends the holder's ready streak in the group (it goes down now).
    async fn acquire_lease(
        &self,
        lease: &LeaseRecord,
        max_down: u32,
        budget: Option<&Budget>,
    ) -> Result<LeaseDecision, StoreError>;
    /// Extends the unexpired leases a node holds to at least `until_ms` (a
    /// heartbeat of a node that is restarting).
    async fn renew_leases(&self, certname: &str, until_ms: i64) -> Result<(), StoreError>;
    /// Records what a node says about a service; a ready streak keeps its
    /// start time.
    async fn record_service_health(&self, health: &ServiceHealthRecord) -> Result<(), StoreError>;
    /// Updates what a node says about a service it already reported (its
    /// group kept); returns false when there is no such row yet.
    async fn update_service_health(&self, health: &ServiceHealthRecord)
    -> Result<bool, StoreError>;
    /// Refreshes what a node says about a service when it says what it
    /// said before: the same running and ready states, a ready streak
    /// already started, the same peer-list note and, unless `keep_group`,
    /// the same lease group. Only the report time and the detail change
    /// (refreshed: a power loss takes back a time, never a state). Returns
    /// false when there is no such row: the caller records it durably.
    async fn refresh_service_health(
        &self,
        health: &ServiceHealthRecord,
        keep_group: bool,
    ) -> Result<bool, StoreError>;
    /// What every node last said about its services.
    async fn service_health(&self) -> Result<Vec<ServiceHealthRecord>, StoreError>;
    /// Gives back a node's lease of a group; returns whether it held one.
    async fn release_lease(&self, group: &str, certname: &str) -> Result<bool, StoreError>;
    /// Unexpired leases, by group and acquisition time.
    async fn leases(&self, now_ms: i64) -> Result<Vec<LeaseRecord>, StoreError>;

    /// Records `mine` as the fleet's keys unless some are recorded
    /// (atomic: of masters starting at once, one is first); returns the
    /// recorded ones.
    async fn claim_fleet_keys(&self, mine: &FleetKeys) -> Result<FleetKeys, StoreError>;
    /// Replaces the recorded keys (a master whose CA rotation finished).
    async fn replace_fleet_keys(&self, keys: &FleetKeys) -> Result<(), StoreError>;

    /// Waits until no other master on this store decides about rollouts,
    /// then holds that right until the lock is dropped.
    async fn lock_rollouts(&self) -> Result<RolloutsLock, StoreError> {
        Ok(RolloutsLock::local())
    }

    /// Tells the other masters on this store of a node's new catalog
    /// version (their nodes' watch streams push it). A store only one
    /// master uses has no one to tell.
    async fn announce_catalog(&self, _certname: &str, _version: u64) -> Result<(), StoreError> {
        Ok(())
    }

    /// The new catalog versions other masters on this store announce, as
    /// (certname, version), for as long as the stream is held; `None`: a
    /// store only one master uses.
    async fn catalog_announcements(&self) -> Result<Option<CatalogAnnouncements>, StoreError> {
        Ok(None)
    }
}
