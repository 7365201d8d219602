//! `AdminService`: what `masterctl` can do, served only on the master's
//! root-only Unix socket.

use std::time::Duration;

use rigger_common::catalog::Catalog;
use rigger_common::proto::admin_service_server::AdminService;
use rigger_common::proto::{
    CertInfo, CreateTokenRequest, CreateTokenResponse, ListCertsRequest, ListCertsResponse,
    ListNodesRequest, ListNodesResponse, NodeInfo, ShowCaRequest, ShowCaResponse,
    ShowCatalogRequest, ShowCatalogResponse,
};
use rigger_common::time::now_ms;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use super::{SharedState, error_chain};
use crate::store::TokenRecord;
use crate::tokens;

/// Longest a token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

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

fn local_peer<T>(request: &Request<T>) -> Result<(), Status> {
    rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let ttl = Duration::from_secs(req.ttl_seconds);
        if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
            return Err(Status::invalid_argument(
                "token lifetime must be between 1 second and 30 days",
            ));
        }
        if req.uses == 0 {
            return Err(Status::invalid_argument("a token needs at least one use"));
        }
        let role = Some(req.role).filter(|r| !r.is_empty());
        if let Some(role) = &role {
            self.state
                .compiler
                .role(role)
                .map_err(|e| Status::invalid_argument(error_chain(&e)))?;
        }
        let token = tokens::generate();
        let expires_at_ms = now_ms() + ttl.as_millis() as i64;
        self.state
            .store
            .insert_token(
                &tokens::hash(&token),
                &TokenRecord {
                    role: role.clone(),
                    expires_at_ms,
                    uses_left: i64::from(req.uses),
                },
                now_ms(),
            )
            .await?;
        tracing::info!(role = ?role, uses = req.uses, ttl_secs = ttl.as_secs(), "bootstrap token created");
        Ok(Response::new(CreateTokenResponse {
            token,
            expires_at_ms,
        }))
    }

    async fn show_ca(
        &self,
        request: Request<ShowCaRequest>,
    ) -> Result<Response<ShowCaResponse>, Status> {
        local_peer(&request)?;
        let pem = self.state.ca.cert_pem().to_string();
        let der = rigger_common::tls::certs_from_pem(&pem, "the CA certificate")
            .map_err(|e| Status::internal(error_chain(&e)))?;
        Ok(Response::new(ShowCaResponse {
            fingerprint: rigger_common::tls::fingerprint(&der[0]).to_string(),
            ca_cert_pem: pem,
        }))
    }

    async fn list_certs(
        &self,
        request: Request<ListCertsRequest>,
    ) -> Result<Response<ListCertsResponse>, Status> {
        local_peer(&request)?;
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
            })
            .collect();
        Ok(Response::new(ListCertsResponse { certs }))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        local_peer(&request)?;
        let store = &self.state.store;
        let mut nodes = Vec::new();
        for n in store.nodes().await? {
            let version = store
                .catalog(&n.certname, None)
                .await?
                .map_or(0, |c| c.version);
            let report = store.last_report(&n.certname).await?;
            nodes.push(NodeInfo {
                role: n.role.or(n.bound_role).unwrap_or_default(),
                enrolled_at_ms: n.enrolled_at_ms,
                last_seen_ms: n.last_seen_ms,
                catalog_version: version,
                last_run_status: report
                    .as_ref()
                    .map(|r| r.status.clone())
                    .unwrap_or_default(),
                last_report_ms: report.map_or(0, |r| r.received_at_ms),
                ip: n.ip.unwrap_or_default(),
                certname: n.certname,
            });
        }
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn show_catalog(
        &self,
        request: Request<ShowCatalogRequest>,
    ) -> Result<Response<ShowCatalogResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let version = Some(req.version).filter(|v| *v > 0);
        let record = self
            .state
            .store
            .catalog(&req.certname, version)
            .await?
            .ok_or_else(|| match version {
                Some(v) => {
                    Status::not_found(format!("node {} has no catalog version {v}", req.certname))
                }
                None => Status::not_found(format!("node {} has no catalog yet", req.certname)),
            })?;
        let catalog: Catalog = serde_json::from_slice(&record.catalog_json)
            .map_err(|e| Status::internal(format!("stored catalog does not decode: {e}")))?;
        let catalog_json = serde_json::to_string_pretty(&catalog.redacted())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ShowCatalogResponse { catalog_json }))
    }
}
