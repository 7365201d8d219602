//! `ContentService`: streams blobs to nodes, through the [`BlobStore`]
//! trait, once [`access`] says the node's latest catalog references them.
//!
//! [`BlobStore`]: crate::content::BlobStore

use rigger_common::digest::Digest;
use rigger_common::proto::content_service_server::ContentService;
use rigger_common::proto::{BlobChunk, FetchBlobsRequest};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{MasterState, SharedState, authenticated_node};
use crate::content::access;
use crate::content::blobs::BlobError;

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
        access::check_fetch(&self.state, &certname, &wanted).await?;
        // Held until the stream ends.
        let place = self
            .state
            .work
            .blob_stream()
            .await
            .inspect_err(|busy| self.state.metrics.busy(busy.what))?;
        let (tx, rx) = mpsc::channel(4);
        let state = self.state.clone();
        tokio::spawn(async move {
            let _place = place;
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
    let mut blob = state.blobs.open(&digest).await.map_err(|e| match e {
        BlobError::Missing(_) => {
            Status::not_found(format!("blob {digest} is missing from the store"))
        }
        other => Status::internal(super::error_chain(&other)),
    })?;
    let mut offset = 0u64;
    loop {
        let mut data = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = blob
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
