//! `AdminService`: what `masterctl` can do, served only on the master's
//! root-only Unix socket.

use std::time::Duration;

use rigger_common::catalog::Catalog;
use rigger_common::proto::admin_service_server::AdminService;
use rigger_common::proto::{
    ArtifactInfo, FreeLeaseRequest, FreeLeaseResponse, ImportArtifactRequest, Lease,
    ListArtifactsRequest, ListArtifactsResponse, ListLeasesRequest, ListLeasesResponse,
    LookupRequest, LookupResponse, LookupSource, RemoveNodeRequest, RemoveNodeResponse,
    TemplateReview,
};
use rigger_common::proto::{
    CertInfo, CreateTokenRequest, CreateTokenResponse, ImportProductRequest, ImportResponse,
    ImportUpdateRequest, ListCertsRequest, ListCertsResponse, ListNodesRequest, ListNodesResponse,
    ListProductsRequest, ListProductsResponse, NodeInfo, ProductLevel, RollbackCatalogRequest,
    RollbackCatalogResponse, ShowCaRequest, ShowCaResponse, ShowCatalogRequest,
    ShowCatalogResponse, UnpinCatalogRequest, UnpinCatalogResponse,
};
use rigger_common::time::now_ms;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use super::{SharedState, error_chain};
use crate::content::BlobStore;
use crate::content::import::{self, ImportedTree};
use crate::store::{TokenRecord, TreeRecord};
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

    async fn import_product(
        &self,
        request: Request<ImportProductRequest>,
    ) -> Result<Response<ImportResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let _guard = self.state.import_lock.lock().await;
        let blobs = self.state.blobs.clone();
        let path = std::path::PathBuf::from(&req.path);
        let tree = tokio::task::spawn_blocking(move || import::import_pack(&blobs, &path))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::invalid_argument(format!("{}: {}", req.path, error_chain(&e))))?;
        let name = Some(req.name)
            .filter(|n| !n.is_empty())
            .or(tree.name.clone());
        let version = Some(req.version)
            .filter(|v| !v.is_empty())
            .or(tree.version.clone());
        let (Some(name), Some(version)) = (name, version) else {
            return Err(Status::invalid_argument(format!(
                "cannot tell the product name and version of {}: its top folder is not NAME-VERSION (give --name and --version)",
                req.path
            )));
        };
        let level = tree.level.unwrap_or(0);
        let response = self
            .record(&name, &version, level, &tree, vec![], 0)
            .await?;
        Ok(Response::new(response))
    }

    async fn import_update(
        &self,
        request: Request<ImportUpdateRequest>,
    ) -> Result<Response<ImportResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let (name, version) = req.product.split_once('@').ok_or_else(|| {
            Status::invalid_argument(format!(
                "product {:?} must be NAME@VERSION, e.g. wso2is@5.11.0",
                req.product
            ))
        })?;
        let (name, version) = (name.to_string(), version.to_string());
        let _guard = self.state.import_lock.lock().await;
        let base = self
            .state
            .store
            .trees()
            .await?
            .into_iter()
            .filter(|t| t.name == name && t.version == version)
            .max_by_key(|t| t.level)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "{name} {version} is not imported: import its GA pack first with `masterctl product import`"
                ))
            })?;
        let blobs = self.state.blobs.clone();
        let path = std::path::PathBuf::from(&req.path);
        let base_digest = rigger_common::digest::Digest::parse(&base.digest)
            .map_err(|e| Status::internal(e.to_string()))?;
        let (tree, base_manifest) = tokio::task::spawn_blocking(move || {
            let base_manifest = rigger_common::manifest::Manifest::from_json(
                &blobs.read(&base_digest).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let read = import::read_entries(&blobs, &path).map_err(|e| error_chain(&e))?;
            let tree = if import::is_bundle(&read) {
                import::bundle_from(&blobs, &base_manifest, &path, read).map(|(t, _)| t)
            } else {
                import::pack_from(&blobs, read)
            };
            tree.map(|t| (t, base_manifest))
                .map_err(|e| error_chain(&e))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::invalid_argument(format!("{}: {e}", req.path)))?;
        let level = Some(req.level).filter(|l| *l > 0).or(tree.level).ok_or_else(|| {
            Status::invalid_argument(format!(
                "cannot tell the update level of {}: it has no updates/config.json \"update-level\" (give --level)",
                req.path
            ))
        })?;
        let changed = import::changed_paths(&base_manifest, &tree.manifest);
        let reviews = self.reviews(&name, &base_manifest, &tree.manifest, &changed);
        for review in &reviews {
            tracing::warn!(product = %name, level, path = %review.path, template = %review.template, "the update changes a file the module renders: review the template");
        }
        let mut response = self
            .record(&name, &version, level, &tree, changed, base.level)
            .await?;
        response.reviews = reviews;
        Ok(Response::new(response))
    }

    async fn rollback_catalog(
        &self,
        request: Request<RollbackCatalogRequest>,
    ) -> Result<Response<RollbackCatalogResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let store = &self.state.store;
        if store
            .catalog(&req.certname, Some(req.to_version))
            .await?
            .is_none()
        {
            return Err(Status::not_found(format!(
                "node {} has no catalog version {}",
                req.certname, req.to_version
            )));
        }
        store.set_pin(&req.certname, Some(req.to_version)).await?;
        let signed = super::catalog::catalog_for(
            &self.state,
            &req.certname,
            "",
            serde_json::Value::Object(Default::default()),
        )
        .await?;
        let catalog: Catalog = serde_json::from_slice(&signed.catalog_json)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(node = %req.certname, to = req.to_version, version = catalog.version, "catalog pinned to an earlier version's content");
        Ok(Response::new(RollbackCatalogResponse {
            version: catalog.version,
            digest: catalog.digest.to_string(),
        }))
    }

    async fn unpin_catalog(
        &self,
        request: Request<UnpinCatalogRequest>,
    ) -> Result<Response<UnpinCatalogResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let was_pinned = self.state.store.pin(&req.certname).await?.is_some();
        if !self.state.store.set_pin(&req.certname, None).await? {
            return Err(Status::not_found(format!(
                "node {} is not in the inventory",
                req.certname
            )));
        }
        Ok(Response::new(UnpinCatalogResponse { was_pinned }))
    }

    async fn import_artifact(
        &self,
        request: Request<ImportArtifactRequest>,
    ) -> Result<Response<ArtifactInfo>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        if req.name.is_empty()
            || req
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Status::invalid_argument(format!(
                "artifact name {:?} is not valid",
                req.name
            )));
        }
        let blobs = self.state.blobs.clone();
        let path = std::path::PathBuf::from(&req.path);
        let stored = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let stored = blobs.ingest(&mut file)?;
            blobs.sync()?;
            Ok::<_, std::io::Error>(stored)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::invalid_argument(format!("cannot import {}: {e}", req.path)))?;
        let record = crate::store::ArtifactRecord {
            name: req.name,
            digest: stored.digest.to_string(),
            size: stored.size,
            imported_at_ms: now_ms(),
        };
        self.state.store.upsert_artifact(&record).await?;
        tracing::info!(artifact = %record.name, digest = %record.digest, size = record.size, "artifact imported");
        Ok(Response::new(ArtifactInfo {
            name: record.name,
            digest: record.digest,
            size: record.size,
            imported_at_ms: record.imported_at_ms,
        }))
    }

    async fn list_artifacts(
        &self,
        request: Request<ListArtifactsRequest>,
    ) -> Result<Response<ListArtifactsResponse>, Status> {
        local_peer(&request)?;
        let artifacts = self
            .state
            .store
            .artifacts()
            .await?
            .into_iter()
            .map(|a| ArtifactInfo {
                name: a.name,
                digest: a.digest,
                size: a.size,
                imported_at_ms: a.imported_at_ms,
            })
            .collect();
        Ok(Response::new(ListArtifactsResponse { artifacts }))
    }

    async fn lookup(
        &self,
        request: Request<LookupRequest>,
    ) -> Result<Response<LookupResponse>, Status> {
        local_peer(&request)?;
        let req = request.into_inner();
        let node = self.state.store.node(&req.certname).await?.ok_or_else(|| {
            Status::not_found(format!("node {} is not in the inventory", req.certname))
        })?;
        let role = node.role.or(node.bound_role).ok_or_else(|| {
            Status::failed_precondition(format!("node {} has no role yet", req.certname))
        })?;
        let explained = self
            .state
            .compiler
            .explain(&role, &req.certname, &req.key)
            .map_err(|e| Status::failed_precondition(error_chain(&e)))?;
        let show = |v: &toml::Value| toml_text(v);
        Ok(Response::new(LookupResponse {
            role,
            found: explained.value.is_some(),
            value: explained.value.as_ref().map(show).unwrap_or_default(),
            sources: explained
                .sources
                .iter()
                .map(|(file, value)| LookupSource {
                    file: file.display().to_string(),
                    value: show(value),
                })
                .collect(),
        }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        local_peer(&request)?;
        let certname = request.into_inner().certname;
        if !self.state.store.remove_node(&certname).await? {
            return Err(Status::not_found(format!(
                "node {certname} is not in the inventory"
            )));
        }
        tracing::info!(node = %certname, "node removed and its certificate revoked");
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn list_leases(
        &self,
        request: Request<ListLeasesRequest>,
    ) -> Result<Response<ListLeasesResponse>, Status> {
        local_peer(&request)?;
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
        local_peer(&request)?;
        let FreeLeaseRequest { group, certname } = request.into_inner();
        if !self.state.store.release_lease(&group, &certname).await? {
            return Err(Status::not_found(format!(
                "node {certname} holds no restart lease of cluster {group}"
            )));
        }
        tracing::warn!(node = %certname, %group, "restart lease freed by an operator");
        Ok(Response::new(FreeLeaseResponse {}))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        local_peer(&request)?;
        let levels = self
            .state
            .store
            .trees()
            .await?
            .into_iter()
            .map(|t| ProductLevel {
                name: t.name,
                version: t.version,
                level: t.level,
                tree_digest: t.digest,
                files: t.files,
                size: t.size,
                imported_at_ms: t.imported_at_ms,
            })
            .collect();
        Ok(Response::new(ListProductsResponse { levels }))
    }
}

/// A TOML value as it would be written in a data file.
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => toml::to_string(t)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        other => other.to_string(),
    }
}

impl Admin {
    /// The changed files a module also renders, with the pack's own diff.
    fn reviews(
        &self,
        module: &str,
        old: &rigger_common::manifest::Manifest,
        new: &rigger_common::manifest::Manifest,
        changed: &[String],
    ) -> Vec<TemplateReview> {
        let (old, new) = (old.by_path(), new.by_path());
        let text = |entry: Option<&&rigger_common::manifest::Entry>| -> String {
            match entry.map(|e| &e.kind) {
                Some(rigger_common::manifest::EntryKind::File { digest, .. }) => self
                    .state
                    .blobs
                    .read(digest)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
                _ => String::new(),
            }
        };
        self.state
            .compiler
            .templated_files(module)
            .into_iter()
            .filter(|(path, _)| changed.contains(path))
            .map(|(path, template)| {
                let (before, after) = (text(old.get(path.as_str())), text(new.get(path.as_str())));
                let diff = similar::TextDiff::from_lines(&before, &after)
                    .unified_diff()
                    .context_radius(3)
                    .header(&path, &path)
                    .to_string();
                TemplateReview {
                    path,
                    module: module.to_string(),
                    template: format!("templates/{template}"),
                    diff,
                }
            })
            .collect()
    }

    /// Records an imported tree and builds the reply.
    async fn record(
        &self,
        name: &str,
        version: &str,
        level: u32,
        tree: &ImportedTree,
        changed_paths: Vec<String>,
        previous_level: u32,
    ) -> Result<ImportResponse, Status> {
        let files = tree
            .manifest
            .entries
            .iter()
            .filter(|e| matches!(e.kind, rigger_common::manifest::EntryKind::File { .. }))
            .count() as u64;
        let record = TreeRecord {
            name: name.to_string(),
            version: version.to_string(),
            level,
            digest: tree.digest.to_string(),
            files,
            size: tree.manifest.total_size(),
            imported_at_ms: now_ms(),
        };
        let created = self
            .state
            .store
            .insert_tree(&record, now_ms())
            .await?
            .map_err(|existing| {
                Status::already_exists(format!(
                    "level {level} of {name} {version} is already imported with other content (tree {existing})"
                ))
            })?;
        if created {
            tracing::info!(product = name, version, level, tree = %tree.digest, files, new_bytes = tree.new_bytes, "product level imported");
        }
        Ok(ImportResponse {
            name: name.to_string(),
            version: version.to_string(),
            level,
            tree_digest: record.digest,
            files,
            size: record.size,
            new_bytes: tree.new_bytes,
            created,
            changed_paths,
            previous_level,
            reviews: Vec::new(),
        })
    }
}
