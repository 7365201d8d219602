//! `ContentService`: streams blobs to nodes, but only the blobs (tree
//! manifests and their files) that the node's latest catalog references.

use std::collections::HashSet;

use rigger_common::catalog::{Catalog, ResourceSpec};
use rigger_common::digest::Digest;
use rigger_common::manifest::Manifest;
use rigger_common::proto::content_service_server::ContentService;
use rigger_common::proto::{BlobChunk, FetchBlobsRequest};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{MasterState, SharedState, authenticated_node};
use crate::content::BlobStore;

/// Size of one streamed chunk.
const CHUNK: usize = 1 << 20;

/// The content service.
pub struct Content {
    state: SharedState,
}

impl Content {
    /// A service over the shared state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// The blobs the node's latest catalog references: each tree's manifest
/// and every file in it.
pub async fn allowed_blobs(state: &MasterState, certname: &str) -> Result<HashSet<Digest>, Status> {
    let mut allowed = HashSet::new();
    let Some(record) = state.store.catalog(certname, None).await? else {
        return Ok(allowed);
    };
    let catalog: Catalog = serde_json::from_slice(&record.catalog_json)
        .map_err(|e| Status::internal(format!("stored catalog does not decode: {e}")))?;
    for resource in &catalog.content.resources {
        if let ResourceSpec::File(file) = &resource.spec {
            allowed.extend(file.source);
        }
        if let ResourceSpec::Tree(tree) = &resource.spec {
            let json = state
                .blobs
                .read(&tree.tree)
                .map_err(|e| Status::internal(format!("manifest {} unreadable: {e}", tree.tree)))?;
            let manifest =
                Manifest::from_json(&json).map_err(|e| Status::internal(e.to_string()))?;
            allowed.insert(tree.tree);
            allowed.extend(manifest.file_digests());
        }
    }
    Ok(allowed)
}

#[tonic::async_trait]
impl ContentService for Content {
    type FetchBlobsStream = ReceiverStream<Result<BlobChunk, Status>>;

    #[tracing::instrument(skip_all)]
    async fn fetch_blobs(
        &self,
        request: Request<FetchBlobsRequest>,
    ) -> Result<Response<Self::FetchBlobsStream>, Status> {
        let certname = authenticated_node(&self.state, &request, "FetchBlobs").await?;
        let wanted = request
            .into_inner()
            .digests
            .iter()
            .map(|d| Digest::parse(d).map_err(|e| Status::invalid_argument(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let allowed = allowed_blobs(&self.state, &certname).await?;
        if let Some(refused) = wanted.iter().find(|d| !allowed.contains(d)) {
            tracing::warn!(node = %certname, blob = %refused, "blob request refused");
            return Err(Status::permission_denied(format!(
                "blob {refused} is not referenced by the catalog of node {certname}"
            )));
        }
        let (tx, rx) = mpsc::channel(4);
        let state = self.state.clone();
        tokio::spawn(async move {
            for digest in wanted {
                if let Err(status) = send_blob(&state, digest, &tx).await {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn send_blob(
    state: &MasterState,
    digest: Digest,
    tx: &mpsc::Sender<Result<BlobChunk, Status>>,
) -> Result<(), Status> {
    let path = state.blobs.path_of(&digest);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Status::not_found(format!("blob {digest} is missing from the store: {e}")))?;
    let mut offset = 0u64;
    loop {
        let mut data = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = file
                .read(&mut data[filled..])
                .await
                .map_err(|e| Status::internal(format!("reading blob {digest}: {e}")))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        data.truncate(filled);
        let last = filled < CHUNK;
        let chunk = BlobChunk {
            digest: digest.to_string(),
            offset,
            data,
            last,
        };
        offset += filled as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            return Err(Status::cancelled("client went away"));
        }
        if last {
            return Ok(());
        }
    }
}
