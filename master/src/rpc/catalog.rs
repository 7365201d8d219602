//! `CatalogService`: classifies the calling node, compiles and signs its
//! catalog (a new version only when the content changed) and takes reports.

use rigger_common::catalog::{self, Catalog, CatalogContent};
use rigger_common::proto::catalog_service_server::CatalogService;
use rigger_common::proto::{
    GetCatalogRequest, Report, RestartLeaseReply, RestartLeaseRequest, SignedCatalog,
    SubmitReportResponse,
};
use rigger_common::signing::{self, sign_catalog};
use rigger_common::time::now_ms;
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::{MasterState, SharedState, authenticated_node, error_chain};
use crate::compiler::{NodeContext, Peer, Products};
use crate::store::CatalogRecord;

/// The EC2 tag that names a node's role when its token bound none.
pub const ROLE_TAG: &str = "rigger:role";

/// The catalog service.
pub struct Catalogs {
    state: SharedState,
}

impl Catalogs {
    /// A service over the shared state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// Picks the node's role: the one bound by its enrollment token wins; a node
/// asking for another is refused. Otherwise the role it asks for, else its
/// EC2 `rigger:role` tag.
pub fn classify(
    certname: &str,
    bound: Option<&str>,
    asked: Option<&str>,
    facts: &Value,
) -> Result<String, Status> {
    let tagged = facts
        .pointer("/ec2/tags")
        .and_then(|tags| tags.get(ROLE_TAG))
        .and_then(Value::as_str);
    match (bound, asked) {
        (Some(bound), Some(asked)) if bound != asked => Err(Status::permission_denied(format!(
            "node {certname} was enrolled with role {bound:?} and may not ask for role {asked:?}"
        ))),
        (Some(bound), _) => Ok(bound.to_string()),
        (None, Some(asked)) => Ok(asked.to_string()),
        (None, None) => tagged.map(str::to_string).ok_or_else(|| {
            Status::failed_precondition(format!(
                "node {certname} has no role: bind one to its token (`masterctl token create --role`), pass `--role` to the agent, or tag the instance {ROLE_TAG}"
            ))
        }),
    }
}

/// The content of one of the node's stored catalog versions.
async fn pinned_content(
    state: &MasterState,
    certname: &str,
    version: u64,
) -> Result<CatalogContent, Status> {
    let record = state
        .store
        .catalog(certname, Some(version))
        .await?
        .ok_or_else(|| {
            Status::failed_precondition(format!(
                "node {certname} is pinned to catalog version {version}, which does not exist"
            ))
        })?;
    let catalog: Catalog = serde_json::from_slice(&record.catalog_json)
        .map_err(|e| Status::internal(format!("stored catalog does not decode: {e}")))?;
    Ok(catalog.content)
}

async fn compile(
    state: &MasterState,
    certname: &str,
    role: &str,
    facts: Value,
) -> Result<CatalogContent, Status> {
    let compiler = state.compiler.clone();
    let since = now_ms() - state.peer_timeout.as_millis() as i64;
    let inventory = state
        .store
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.last_seen_ms >= since)
        .filter_map(|n| {
            Some(Peer {
                role: n.role?,
                ip: n.ip.unwrap_or_default(),
                certname: n.certname,
            })
        })
        .collect();
    let node = NodeContext {
        certname: certname.to_string(),
        role: role.to_string(),
        facts,
        inventory,
    };
    let secret_files = state.compiler.site().join("secrets/files");
    let products = Products::from_records(&state.store.trees().await?)
        .with_artifacts(&state.store.artifacts().await?)
        .with_secret_files(secret_files.clone());
    tokio::task::spawn_blocking(move || compiler.compile(&node, &products))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| {
            let text = error_chain(&e);
            tracing::error!(node = %certname, role, error = %text, "catalog compilation failed");
            Status::failed_precondition(format!("cannot compile the catalog of {certname}: {text}"))
        })
}

/// Puts the secret files the catalog references (`secrets/files/…` of the
/// site) into the blob store, so that FetchBlobs can serve them to this node.
async fn store_secret_files(state: &MasterState, content: &CatalogContent) -> Result<(), Status> {
    use crate::content::BlobStore;
    let wanted: std::collections::HashSet<rigger_common::digest::Digest> = content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            rigger_common::catalog::ResourceSpec::File(f) if f.secret => f.source,
            _ => None,
        })
        .filter(|d| !state.blobs.has(d))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let dir = state.compiler.site().join("secrets/files");
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let bytes = std::fs::read(entry.path())?;
            if wanted.contains(&rigger_common::digest::Digest::of(&bytes)) {
                blobs.put(&bytes)?;
            }
        }
        blobs.sync()
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::internal(format!("cannot store secret files: {e}")))
}

/// Compiles the node's catalog (or takes its pinned content) and returns
/// the stored signed version: the latest one if the content is unchanged,
/// else a new version.
pub async fn catalog_for(
    state: &MasterState,
    certname: &str,
    role: &str,
    facts: Value,
) -> Result<signing::SignedCatalog, Status> {
    let content = match state.store.pin(certname).await? {
        Some(pinned) => pinned_content(state, certname, pinned).await?,
        None => compile(state, certname, role, facts).await?,
    };
    store_secret_files(state, &content).await?;
    let digest = content.digest();
    let _guard = state.catalog_lock.lock().await;
    let latest = state.store.catalog(certname, None).await?;
    if let Some(latest) = &latest {
        if latest.digest == digest.to_string() {
            return Ok(signing::SignedCatalog {
                catalog_json: latest.catalog_json.clone(),
                signature: latest.signature.clone(),
            });
        }
    }
    let version = latest.map_or(1, |l| l.version + 1);
    let now = now_ms();
    let catalog = Catalog {
        format: catalog::FORMAT,
        node: certname.to_string(),
        version,
        digest,
        compiled_at_ms: now,
        content,
    };
    let signed = sign_catalog(&state.signing_key, &catalog);
    state
        .store
        .insert_catalog(
            certname,
            &CatalogRecord {
                version,
                digest: digest.to_string(),
                catalog_json: signed.catalog_json.clone(),
                signature: signed.signature.clone(),
            },
            now,
        )
        .await?;
    tracing::info!(node = %certname, role, version, %digest, "new catalog version");
    Ok(signed)
}

#[tonic::async_trait]
impl CatalogService for Catalogs {
    #[tracing::instrument(skip_all)]
    async fn get_catalog(
        &self,
        request: Request<GetCatalogRequest>,
    ) -> Result<Response<SignedCatalog>, Status> {
        let state = &self.state;
        let certname = authenticated_node(state, &request, "GetCatalog").await?;
        let req = request.into_inner();
        let facts: Value = if req.facts_json.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&req.facts_json)
                .map_err(|e| Status::invalid_argument(format!("facts are not valid JSON: {e}")))?
        };
        if !facts.is_object() {
            return Err(Status::invalid_argument("facts must be a JSON object"));
        }
        let node = state.store.node(&certname).await?.ok_or_else(|| {
            Status::permission_denied(format!("node {certname} is not in the inventory"))
        })?;
        let asked = Some(req.role.as_str()).filter(|r| !r.is_empty());
        let role = classify(&certname, node.bound_role.as_deref(), asked, &facts)?;
        let ip = facts.get("ip").and_then(Value::as_str).map(str::to_string);
        state
            .store
            .touch_node(
                &certname,
                &role,
                ip.as_deref(),
                &facts.to_string(),
                now_ms(),
            )
            .await?;
        let signed = catalog_for(state, &certname, &role, facts).await?;
        Ok(Response::new(signed.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn submit_report(
        &self,
        request: Request<Report>,
    ) -> Result<Response<SubmitReportResponse>, Status> {
        let state = &self.state;
        let certname = authenticated_node(state, &request, "SubmitReport").await?;
        let report = request.into_inner();
        let status = run_status(report.changed, report.failed);
        let json = serde_json::json!({
            "catalog_version": report.catalog_version,
            "catalog_digest": report.catalog_digest,
            "started_at_ms": report.started_at_ms,
            "duration_ms": report.duration_ms,
            "changed": report.changed,
            "failed": report.failed,
            "skipped": report.skipped,
            "noop": report.noop,
            "used_cached_catalog": report.used_cached_catalog,
            "resources": report.resources.iter().map(|r| serde_json::json!({
                "id": r.id, "status": r.status, "message": r.message,
            })).collect::<Vec<_>>(),
        });
        state
            .store
            .insert_report(
                &certname,
                report.catalog_version,
                status,
                report.changed,
                report.failed,
                report.duration_ms,
                &json.to_string(),
                now_ms(),
            )
            .await?;
        tracing::info!(node = %certname, version = report.catalog_version, status, changed = report.changed, failed = report.failed, "report received");
        Ok(Response::new(SubmitReportResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn acquire_restart_lease(
        &self,
        request: Request<RestartLeaseRequest>,
    ) -> Result<Response<RestartLeaseReply>, Status> {
        let certname = authenticated_node(&self.state, &request, "AcquireRestartLease").await?;
        super::lease::acquire(&self.state, &certname, request.get_ref())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn release_restart_lease(
        &self,
        request: Request<RestartLeaseRequest>,
    ) -> Result<Response<RestartLeaseReply>, Status> {
        let certname = authenticated_node(&self.state, &request, "ReleaseRestartLease").await?;
        super::lease::release(&self.state, &certname, request.get_ref())
            .await
            .map(Response::new)
    }
}

/// A run's overall status from its counts.
pub fn run_status(changed: u32, failed: u32) -> &'static str {
    if failed > 0 {
        "failed"
    } else if changed > 0 {
        "changed"
    } else {
        "unchanged"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_follows_token_then_request_then_tag() {
        let tagged = json!({"ec2": {"tags": {"rigger:role": "apim"}}});
        let none = json!({});
        let check = |bound, asked, facts: &Value| classify("n1", bound, asked, facts);
        assert_eq!(check(Some("is"), None, &tagged).unwrap(), "is");
        assert_eq!(check(Some("is"), Some("is"), &none).unwrap(), "is");
        assert_eq!(
            check(Some("is"), Some("apim"), &none).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(check(None, Some("mi"), &tagged).unwrap(), "mi");
        assert_eq!(check(None, None, &tagged).unwrap(), "apim");
        assert_eq!(
            check(None, None, &none).unwrap_err().code(),
            tonic::Code::FailedPrecondition
        );
    }
}
