//! `AdminService`: what `masterctl` can do, served only on the master's
//! root-only Unix socket.

use std::time::Duration;

use rigger_common::proto::admin_service_server::AdminService;
use rigger_common::proto::{
    ArtifactInfo, CatalogVersionInfo, CheckRolesRequest, CheckRolesResponse, ControlRolloutRequest,
    EditReview, FreeLeaseRequest, FreeLeaseResponse, ImportArtifactRequest, IssueAdminCertRequest,
    IssueAdminCertResponse, Lease, ListArtifactsRequest, ListArtifactsResponse,
    ListCatalogsRequest, ListCatalogsResponse, ListLeasesRequest, ListLeasesResponse,
    ListPendingRequest, ListPendingResponse, ListRolloutsRequest, ListRolloutsResponse,
    ListTokensRequest, ListTokensResponse, LookupRequest, LookupResponse, LookupSource,
    PromoteLevelRequest, PromoteLevelResponse, RemoveNodeRequest, RemoveNodeResponse,
    RevokeCertRequest, RevokeCertResponse, RevokeTokenRequest, RoleCheck, Rollout, RolloutNode,
    RotateCaRequest, RotateCaResponse, ShowNodeRequest, ShowNodeResponse, SignPendingRequest,
    SignPendingResponse, StoredReport, TemplateReview, TokenInfo,
};
use rigger_common::proto::{
    CertInfo, CreateTokenRequest, CreateTokenResponse, ImportProductRequest, ImportResponse,
    ImportUpdateRequest, ListCertsRequest, ListCertsResponse, ListNodesRequest, ListNodesResponse,
    ListProductsRequest, ListProductsResponse, NodeInfo, ProductLevel, RollbackCatalogRequest,
    RollbackCatalogResponse, ShowCaRequest, ShowCaResponse, ShowCatalogRequest,
    ShowCatalogResponse, ShowStatusRequest, ShowStatusResponse, UnpinCatalogRequest,
    UnpinCatalogResponse,
};
use rigger_common::time::now_ms;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use super::{SharedState, error_chain};
use crate::content::import::{self, ImportOutcome};
use crate::store::ArtifactRecord;
use crate::{catalogs, enrollment, inventory, leases};

/// The admin service.
pub struct Admin {
    state: SharedState,
}

impl Admin {
    /// A service over the shared state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// Who makes an admin request, or why they may not: root (or the
/// master's own user) on the admin socket, or, over TLS, the holder of an
/// unrevoked admin certificate (`masterctl admin issue`). Every request is
/// logged with who made it.
async fn admin_caller<T>(
    state: &crate::state::MasterState,
    request: &Request<T>,
) -> Result<String, Status> {
    let method = request
        .extensions()
        .get::<tonic::GrpcMethod>()
        .map_or("?", |m| m.method());
    let who = if let Some(uds) = request.extensions().get::<UdsConnectInfo>() {
        rigger_common::grpc::check_local_peer(Some(uds))?;
        let uid = uds.peer_cred.map_or(0, |c| c.uid());
        format!("uid {uid} on the admin socket")
    } else {
        let cert = super::authenticated_cert(state, request, method).await?;
        match crate::admins::name_of(&cert.certname) {
            Some(name) => format!("admin {name} (certificate {})", cert.serial),
            None => {
                tracing::warn!(node = %cert.certname, method, "refused: a node called the admin API");
                return Err(Status::permission_denied(format!(
                    "{} is a node: the admin API needs the admin socket or an admin certificate (`masterctl admin issue`)",
                    cert.certname
                )));
            }
        }
    };
    tracing::info!(who = %who, method, "admin request");
    Ok(who)
}

/// The fingerprint of a CA introduced and not yet made current ("": none).
fn next_ca_fingerprint(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("ca-next.crt"))
        .ok()
        .and_then(|pem| rigger_common::tls::certs_from_pem(&pem, "ca-next.crt").ok())
        .map(|der| rigger_common::tls::fingerprint(&der[0]).to_string())
        .unwrap_or_default()
}

/// Refuses a request that did not come over the admin socket (what only
/// root on the master may do: issue admin certificates).
fn local_only<T>(request: &Request<T>) -> Result<(), Status> {
    rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let role = Some(req.role).filter(|r| !r.is_empty());
        let ttl = Duration::from_secs(req.ttl_seconds);
        let created =
            enrollment::create_token(&self.state, ttl, req.uses, role, req.unbound).await?;
        Ok(Response::new(CreateTokenResponse {
            token: created.token,
            expires_at_ms: created.expires_at_ms,
            id: created.id,
        }))
    }

    async fn show_ca(
        &self,
        request: Request<ShowCaRequest>,
    ) -> Result<Response<ShowCaResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let fingerprint = self
            .state
            .ca
            .fingerprint()
            .map_err(|e| Status::internal(error_chain(&e)))?;
        Ok(Response::new(ShowCaResponse {
            fingerprint: fingerprint.to_string(),
            ca_cert_pem: self.state.ca.cert_pem().to_string(),
        }))
    }

    async fn list_certs(
        &self,
        request: Request<ListCertsRequest>,
    ) -> Result<Response<ListCertsResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let certs = self
            .state
            .store
            .certs()
            .await?
            .into_iter()
            .map(|c| CertInfo {
                certname: c.certname,
                serial: c.serial,
                not_after_ms: c.not_after_ms,
                revoked: c.revoked,
                issued_at_ms: c.issued_at_ms,
                revoked_at_ms: c.revoked_at_ms,
            })
            .collect();
        Ok(Response::new(ListCertsResponse { certs }))
    }

    async fn list_pending(
        &self,
        request: Request<ListPendingRequest>,
    ) -> Result<Response<ListPendingResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let pending = self
            .state
            .store
            .pending()
            .await?
            .into_iter()
            .map(|p| rigger_common::proto::PendingEnrollment {
                certname: p.certname,
                asked_role: p.asked_role.unwrap_or_default(),
                document: p.document,
                why: p.why,
                remote: p.remote,
                received_at_ms: p.received_at_ms,
            })
            .collect();
        Ok(Response::new(ListPendingResponse { pending }))
    }

    async fn sign_pending(
        &self,
        request: Request<SignPendingRequest>,
    ) -> Result<Response<SignPendingResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let role = Some(req.role.as_str()).filter(|r| !r.is_empty());
        let role = enrollment::sign_pending(&self.state, &req.certname, role).await?;
        Ok(Response::new(SignPendingResponse { role }))
    }

    async fn revoke_cert(
        &self,
        request: Request<RevokeCertRequest>,
    ) -> Result<Response<RevokeCertResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let name = request.into_inner().name;
        let (certname, serials, closed) = crate::revocation::revoke(&self.state, &name).await?;
        Ok(Response::new(RevokeCertResponse {
            certname,
            serials,
            connections_closed: u32::try_from(closed).unwrap_or(u32::MAX),
        }))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let nodes = inventory::nodes(&self.state)
            .await?
            .into_iter()
            .map(node_info)
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn rotate_ca(
        &self,
        request: Request<RotateCaRequest>,
    ) -> Result<Response<RotateCaResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let ca = &self.state.ca;
        let failed = |e: crate::ca::CaError| Status::failed_precondition(error_chain(&e));
        let pem = if request.into_inner().finish {
            ca.finish_rotation().map_err(failed)?;
            tracing::warn!("CA rotation finished: the new CA signs from the next start");
            std::fs::read_to_string(self.state.data_dir.join("ca.crt"))
                .map_err(|e| Status::internal(e.to_string()))?
        } else {
            let pem = ca.introduce_next().map_err(failed)?;
            tracing::warn!("a new CA is introduced: nodes trust it from their next run");
            pem
        };
        let der = rigger_common::tls::certs_from_pem(&pem, "the new CA")
            .map_err(|e| Status::internal(error_chain(&e)))?;
        Ok(Response::new(RotateCaResponse {
            fingerprint: rigger_common::tls::fingerprint(&der[0]).to_string(),
        }))
    }

    async fn issue_admin_cert(
        &self,
        request: Request<IssueAdminCertRequest>,
    ) -> Result<Response<IssueAdminCertResponse>, Status> {
        local_only(&request)?;
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let (cert_pem, ca_cert_pem) =
            crate::admins::issue(&self.state, &req.name, &req.csr_pem).await?;
        Ok(Response::new(IssueAdminCertResponse {
            cert_pem,
            ca_cert_pem,
        }))
    }

    async fn show_status(
        &self,
        request: Request<ShowStatusRequest>,
    ) -> Result<Response<ShowStatusResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let state = &self.state;
        let (ca_subject, ca_not_after_ms) = state.ca.subject_and_expiry().unwrap_or_default();
        let list = state.revocation.in_force().await;
        Ok(Response::new(ShowStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: state.started_at_ms,
            ca_subject,
            ca_not_after_ms,
            ca_fingerprint: state
                .ca
                .fingerprint()
                .map_err(|e| Status::internal(error_chain(&e)))?
                .to_string(),
            crl_number: list.number,
            crl_issued_at_ms: list.issued_at_ms,
            crl_next_update_ms: list.next_update_ms,
            crl_revoked: u32::try_from(list.revoked).unwrap_or(u32::MAX),
            cert_lifetime_secs: state.ca.node_lifetime().as_secs(),
            nodes: u32::try_from(state.store.nodes().await?.len()).unwrap_or(u32::MAX),
            next_ca_fingerprint: next_ca_fingerprint(&state.data_dir),
            metadata_store: state.stores.0.clone(),
            content_store: state.stores.1.clone(),
        }))
    }

    async fn show_catalog(
        &self,
        request: Request<ShowCatalogRequest>,
    ) -> Result<Response<ShowCatalogResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let version = Some(req.version).filter(|v| *v > 0);
        let catalog = catalogs::stored(&self.state, &req.certname, version).await?;
        let catalog_json = serde_json::to_string_pretty(&catalog.redacted())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ShowCatalogResponse { catalog_json }))
    }

    async fn import_product(
        &self,
        request: Request<ImportProductRequest>,
    ) -> Result<Response<ImportResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let name = Some(req.name).filter(|n| !n.is_empty());
        let version = Some(req.version).filter(|v| !v.is_empty());
        let outcome = import::import_product(&self.state, &req.path, name, version).await?;
        Ok(Response::new(import_response(outcome)))
    }

    async fn import_update(
        &self,
        request: Request<ImportUpdateRequest>,
    ) -> Result<Response<ImportResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let level = Some(req.level).filter(|l| *l > 0);
        let outcome = import::import_update(&self.state, &req.product, &req.path, level).await?;
        Ok(Response::new(import_response(outcome)))
    }

    async fn rollback_catalog(
        &self,
        request: Request<RollbackCatalogRequest>,
    ) -> Result<Response<RollbackCatalogResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let catalog = catalogs::roll_back(&self.state, &req.certname, req.to_version).await?;
        Ok(Response::new(RollbackCatalogResponse {
            version: catalog.version,
            digest: catalog.digest.to_string(),
        }))
    }

    async fn unpin_catalog(
        &self,
        request: Request<UnpinCatalogRequest>,
    ) -> Result<Response<UnpinCatalogResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let certname = request.into_inner().certname;
        let was_pinned = catalogs::unpin(&self.state, &certname).await?;
        Ok(Response::new(UnpinCatalogResponse { was_pinned }))
    }

    async fn import_artifact(
        &self,
        request: Request<ImportArtifactRequest>,
    ) -> Result<Response<ArtifactInfo>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let record = import::import_artifact(&self.state, &req.path, &req.name).await?;
        Ok(Response::new(artifact_info(record)))
    }

    async fn list_artifacts(
        &self,
        request: Request<ListArtifactsRequest>,
    ) -> Result<Response<ListArtifactsResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let artifacts = self
            .state
            .store
            .artifacts()
            .await?
            .into_iter()
            .map(artifact_info)
            .collect();
        Ok(Response::new(ListArtifactsResponse { artifacts }))
    }

    async fn promote_level(
        &self,
        request: Request<PromoteLevelRequest>,
    ) -> Result<Response<PromoteLevelResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let done =
            crate::promotions::promote(&self.state, &req.product, req.level, &req.environment)
                .await?;
        Ok(Response::new(PromoteLevelResponse {
            name: done.name,
            version: done.version,
            environment: done.environment,
            level: done.level,
            previous: done.previous,
        }))
    }

    async fn show_node(
        &self,
        request: Request<ShowNodeRequest>,
    ) -> Result<Response<ShowNodeResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let detail = inventory::node(&self.state, &req.certname, req.reports).await?;
        Ok(Response::new(ShowNodeResponse {
            node: Some(node_info(detail.summary)),
            facts_json: detail.facts.to_string(),
            reports: detail
                .reports
                .into_iter()
                .map(|(received_at_ms, report)| StoredReport {
                    received_at_ms,
                    report_json: serde_json::to_string(&report).unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn list_rollouts(
        &self,
        request: Request<ListRolloutsRequest>,
    ) -> Result<Response<ListRolloutsResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let cluster = Some(req.cluster.as_str()).filter(|c| !c.is_empty());
        let rollouts = crate::rollouts::views(&self.state, cluster)
            .await?
            .into_iter()
            .map(rollout_message)
            .collect();
        Ok(Response::new(ListRolloutsResponse { rollouts }))
    }

    async fn control_rollout(
        &self,
        request: Request<ControlRolloutRequest>,
    ) -> Result<Response<Rollout>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let what = match req.action.as_str() {
            "pause" => crate::rollouts::Control::Pause,
            "resume" => crate::rollouts::Control::Resume,
            "abort" => crate::rollouts::Control::Abort,
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown rollout action {other:?}: pause, resume or abort"
                )));
            }
        };
        crate::rollouts::control(&self.state, &req.cluster, what).await?;
        let view = crate::rollouts::views(&self.state, Some(&req.cluster))
            .await?
            .remove(0);
        Ok(Response::new(rollout_message(view)))
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let tokens = crate::tokens::list(&self.state)
            .await?
            .into_iter()
            .map(token_info)
            .collect();
        Ok(Response::new(ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<TokenInfo>, Status> {
        admin_caller(&self.state, &request).await?;
        let id = request.into_inner().id;
        let token = crate::tokens::revoke(&self.state, &id).await?;
        Ok(Response::new(token_info(token)))
    }

    async fn list_catalogs(
        &self,
        request: Request<ListCatalogsRequest>,
    ) -> Result<Response<ListCatalogsResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let store = &self.state.store;
        if store
            .node(&req.certname)
            .await
            .map_err(crate::error::Error::from)?
            .is_none()
        {
            return Err(Status::not_found(format!("no node named {}", req.certname)));
        }
        let limit = if req.limit == 0 { 20 } else { req.limit };
        let versions = store
            .catalog_history(&req.certname, limit)
            .await
            .map_err(crate::error::Error::from)?
            .into_iter()
            .map(|c| CatalogVersionInfo {
                version: c.version,
                digest: c.digest.to_string(),
                created_at_ms: c.created_at_ms,
                site_revision: c.site_revision,
                site_commit: c.site_commit.unwrap_or_default(),
            })
            .collect();
        let applied_version = store
            .last_report(&req.certname)
            .await
            .map_err(crate::error::Error::from)?
            .map_or(0, |r| r.applied_version);
        let pinned_to = store
            .pin(&req.certname)
            .await
            .map_err(crate::error::Error::from)?
            .unwrap_or(0);
        Ok(Response::new(ListCatalogsResponse {
            versions,
            applied_version,
            pinned_to,
        }))
    }

    async fn check_roles(
        &self,
        request: Request<CheckRolesRequest>,
    ) -> Result<Response<CheckRolesResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let checks = crate::catalogs::check_roles(&self.state).await?;
        Ok(Response::new(CheckRolesResponse {
            roles: checks
                .into_iter()
                .map(|c| match c.result {
                    Ok(resources) => RoleCheck {
                        role: c.role,
                        resources: resources as u32,
                        error: String::new(),
                    },
                    Err(error) => RoleCheck {
                        role: c.role,
                        resources: 0,
                        error,
                    },
                })
                .collect(),
        }))
    }

    async fn lookup(
        &self,
        request: Request<LookupRequest>,
    ) -> Result<Response<LookupResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        let found = inventory::lookup(&self.state, &req.certname, &req.key).await?;
        Ok(Response::new(LookupResponse {
            role: found.role,
            found: found.value.is_some(),
            value: found.value.unwrap_or_default(),
            sources: found
                .sources
                .into_iter()
                .map(|(file, value)| LookupSource { file, value })
                .collect(),
        }))
    }

    async fn init_databases(
        &self,
        request: Request<rigger_common::proto::InitDatabasesRequest>,
    ) -> Result<Response<rigger_common::proto::InitDatabasesResponse>, Status> {
        let caller = admin_caller(&self.state, &request).await?;
        let req = request.into_inner();
        tracing::info!(role = %req.role, dry_run = req.dry_run, by = %caller, "db init");
        // On a thread of its own: sqlx's connection futures are not
        // provably Send through the admin service's boxed futures, and db
        // init is rare and long (connections, scripts), not a hot path.
        let state = self.state.clone();
        let handle = tokio::runtime::Handle::current();
        let report = tokio::task::spawn_blocking(move || {
            handle.block_on(crate::dbinit::init(&state, &req.role, req.dry_run))
        })
        .await
        .map_err(|e| Status::internal(format!("db init stopped: {e}")))??;
        Ok(Response::new(rigger_common::proto::InitDatabasesResponse {
            report: report.text,
            failed: report.failed,
        }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let certname = request.into_inner().certname;
        enrollment::remove_node(&self.state, &certname).await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn list_leases(
        &self,
        request: Request<ListLeasesRequest>,
    ) -> Result<Response<ListLeasesResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let leases = self
            .state
            .store
            .leases(now_ms())
            .await?
            .into_iter()
            .map(|l| Lease {
                group: l.group,
                certname: l.certname,
                service: l.service,
                acquired_at_ms: l.acquired_at_ms,
                expires_at_ms: l.expires_at_ms,
            })
            .collect();
        Ok(Response::new(ListLeasesResponse { leases }))
    }

    async fn free_lease(
        &self,
        request: Request<FreeLeaseRequest>,
    ) -> Result<Response<FreeLeaseResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let FreeLeaseRequest { group, certname } = request.into_inner();
        leases::free(&self.state, &group, &certname).await?;
        Ok(Response::new(FreeLeaseResponse {}))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        admin_caller(&self.state, &request).await?;
        let running = crate::promotions::running_levels(&self.state).await?;
        let levels = self
            .state
            .store
            .trees()
            .await?
            .into_iter()
            .map(|t| ProductLevel {
                environments: running
                    .get(&(t.name.clone(), t.version.clone(), t.level))
                    .cloned()
                    .unwrap_or_default(),
                name: t.name,
                version: t.version,
                level: t.level,
                tree_digest: t.digest.to_string(),
                files: t.files,
                size: t.size,
                imported_at_ms: t.imported_at_ms,
            })
            .collect();
        Ok(Response::new(ListProductsResponse { levels }))
    }
}

fn artifact_info(a: ArtifactRecord) -> ArtifactInfo {
    ArtifactInfo {
        name: a.name,
        digest: a.digest.to_string(),
        size: a.size,
        imported_at_ms: a.imported_at_ms,
    }
}

fn import_response(outcome: ImportOutcome) -> ImportResponse {
    ImportResponse {
        name: outcome.name,
        version: outcome.version,
        level: outcome.level,
        tree_digest: outcome.tree.to_string(),
        files: outcome.files,
        size: outcome.size,
        new_bytes: outcome.new_bytes,
        created: outcome.created,
        changed_paths: outcome.changed_paths,
        previous_level: outcome.previous_level,
        reviews: outcome
            .reviews
            .into_iter()
            .map(|r| TemplateReview {
                path: r.path,
                module: r.module,
                template: r.template,
                diff: r.diff,
            })
            .collect(),
        edited: outcome
            .edited
            .into_iter()
            .map(|e| EditReview {
                path: e.path,
                module: e.module,
                edits: e.edits,
                roles: e.roles,
            })
            .collect(),
    }
}

/// A node's line as the admin API sends it.
fn node_info(n: inventory::NodeSummary) -> NodeInfo {
    NodeInfo {
        certname: n.certname,
        role: n.role,
        enrolled_at_ms: n.enrolled_at_ms,
        last_seen_ms: n.last_seen_ms,
        catalog_version: n.catalog_version,
        last_run_status: n.last_run_status,
        last_report_ms: n.last_report_ms,
        ip: n.ip,
        services: n.services,
        applied_version: n.applied_version,
        catalog_error: n.catalog_error,
        last_run_changed: n.last_run_changed,
        last_run_failed: n.last_run_failed,
        site_revision: n.site_revision,
    }
}

/// A token as the admin API sends it.
fn token_info(token: crate::tokens::TokenView) -> TokenInfo {
    TokenInfo {
        id: token.id,
        role: token.record.role.unwrap_or_default(),
        created_at_ms: token.created_at_ms,
        expires_at_ms: token.record.expires_at_ms,
        uses_left: token.record.uses_left,
        revoked_at_ms: token.record.revoked_at_ms.unwrap_or(0),
    }
}

/// A rollout as the admin API sends it.
fn rollout_message(view: crate::rollouts::RolloutView) -> Rollout {
    Rollout {
        cluster: view.rollout.cluster,
        revision: view.rollout.revision,
        state: view.phase,
        created_at_ms: view.rollout.created_at_ms,
        updated_at_ms: view.rollout.updated_at_ms,
        reason: view.rollout.reason,
        nodes: view
            .nodes
            .into_iter()
            .map(|n| RolloutNode {
                certname: n.certname,
                state: n.state,
                version: n.version,
                previous_version: n.previous_version,
                since_ms: n.since_ms,
                error: n.error,
            })
            .collect(),
        members: view.members as u32,
        steps: view.steps.into_iter().map(|s| s as u32).collect(),
        waiting_for: view.waiting_for,
    }
}
