//! `ContentService`: streams blobs to nodes, through the [`BlobStore`]
//! trait, once [`access`] says the node's latest catalog references them.
//! A text blob goes gzip-encoded to a node that accepts it
//! ([`rigger_common::blob_encoding`]).
//!
//! [`BlobStore`]: crate::content::BlobStore

use rigger_common::blob_encoding;
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
        let request = request.into_inner();
        let gzip = request
            .accept_encodings
            .iter()
            .any(|e| e == blob_encoding::GZIP);
        let wanted = request
            .digests
            .iter()
            .map(|d| Digest::parse(d).map_err(|e| Status::invalid_argument(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let manifests = access::check_fetch(&self.state, &certname, &wanted).await?;
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
                let sent = match gzip && manifests.contains(&digest) {
                    true => send_manifest(&state, digest, &tx).await,
                    false => send_blob(&state, digest, gzip, false, &tx).await,
                };
                if let Err(status) = sent {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends one blob: encoded when the node accepts gzip and the blob is
/// small text that shrinks, else as it is, chunk by chunk. A `manifest`
/// sent to a node that accepts gzip leaves what it was sent as in
/// [`MasterState::encoded_manifests`].
async fn send_blob(
    state: &MasterState,
    digest: Digest,
    gzip: bool,
    manifest: bool,
    tx: &mpsc::Sender<Result<BlobChunk, Status>>,
) -> Result<(), Status> {
    let keep = |encoded: Option<&[u8]>| {
        if gzip && manifest {
            state
                .encoded_manifests
                .keep(digest, encoded.map(std::sync::Arc::from));
        }
    };
    let (mut first, mut blob) = state
        .blobs
        .open_head(&digest, CHUNK)
        .await
        .map_err(|e| unreadable(&digest, e))?;
    let mut sender = Sender {
        digest,
        offset: 0,
        tx,
    };
    // Text that may be encoded: read on up to the limit (one past it tells
    // the blob is larger).
    if gzip && blob_encoding::is_text(&first) {
        if first.len() == CHUNK {
            let more = blob_encoding::MAX_ENCODED_BLOB + 1 - CHUNK;
            first.extend(read_up_to(&mut blob, more, &digest).await?);
        }
        if first.len() <= blob_encoding::MAX_ENCODED_BLOB {
            let (first_back, encoded) = tokio::task::spawn_blocking(move || {
                let encoded = blob_encoding::encode(&first);
                (first, encoded)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
            keep(encoded.as_deref());
            return match encoded {
                Some(encoded) => sender.send_pieces(encoded, true, blob_encoding::GZIP).await,
                None => sender.send_pieces(first_back, true, "").await,
            };
        }
    }
    keep(None);
    // As it is: what was read, then the rest chunk by chunk (a short read
    // is the blob's end).
    loop {
        let whole = first.len() < CHUNK;
        sender.send_pieces(first, whole, "").await?;
        if whole {
            return Ok(());
        }
        first = read_up_to(&mut blob, CHUNK, &digest).await?;
    }
}

/// Sends a tree manifest to a node that accepts gzip: the encoding kept
/// from an earlier fetch, else as [`send_blob`] does (which keeps it).
async fn send_manifest(
    state: &MasterState,
    digest: Digest,
    tx: &mpsc::Sender<Result<BlobChunk, Status>>,
) -> Result<(), Status> {
    match state.encoded_manifests.get(&digest) {
        Some(Some(encoded)) => {
            let mut sender = Sender {
                digest,
                offset: 0,
                tx,
            };
            sender
                .send_pieces(encoded.to_vec(), true, blob_encoding::GZIP)
                .await
        }
        // Known not to shrink (or too large): as it is.
        Some(None) => send_blob(state, digest, false, false, tx).await,
        None => send_blob(state, digest, true, true, tx).await,
    }
}

/// Why blob `digest` could not be read, for the node.
fn unreadable(digest: &Digest, e: BlobError) -> Status {
    match e {
        BlobError::Missing(_) => {
            Status::not_found(format!("blob {digest} is missing from the store"))
        }
        other => Status::internal(super::error_chain(&other)),
    }
}

/// Up to `limit` bytes of the blob (fewer only at its end).
async fn read_up_to(
    blob: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: usize,
    digest: &Digest,
) -> Result<Vec<u8>, Status> {
    let mut data = Vec::with_capacity(limit.min(CHUNK));
    blob.take(limit as u64)
        .read_to_end(&mut data)
        .await
        .map_err(|e| Status::internal(format!("reading blob {digest}: {e}")))?;
    Ok(data)
}

/// The chunks of one blob, in order.
struct Sender<'a> {
    digest: Digest,
    /// Bytes sent so far (encoded bytes for an encoded blob).
    offset: u64,
    tx: &'a mpsc::Sender<Result<BlobChunk, Status>>,
}

impl Sender<'_> {
    async fn send(&mut self, data: Vec<u8>, last: bool, encoding: &str) -> Result<(), Status> {
        let len = data.len() as u64;
        let chunk = BlobChunk {
            digest: self.digest.to_string(),
            offset: self.offset,
            data,
            last,
            encoding: encoding.to_string(),
        };
        self.offset += len;
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| Status::cancelled("client went away"))
    }

    /// Sends `bytes` in chunks of at most [`CHUNK`]; the last one ends the
    /// blob when the bytes are the rest of it (`ends`).
    async fn send_pieces(
        &mut self,
        bytes: Vec<u8>,
        ends: bool,
        encoding: &str,
    ) -> Result<(), Status> {
        if bytes.len() <= CHUNK {
            return self.send(bytes, ends, encoding).await;
        }
        let count = bytes.len().div_ceil(CHUNK);
        for (i, piece) in bytes.chunks(CHUNK).enumerate() {
            self.send(piece.to_vec(), ends && i + 1 == count, encoding)
                .await?;
        }
        Ok(())
    }
}
