//! Overload: the master bounds the catalog requests it compiles at once
//! and the blob streams it serves at once. A request that finds no free
//! place waits for one a little while, then is answered
//! `RESOURCE_EXHAUSTED` with a `retry-after-ms` hint (jittered, so that a
//! fleet that asked together does not come back together); agents honour
//! it. A thousand nodes booting from one autoscaling event slow down, they
//! do not take the master down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a place before it is told to come back.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The metadata key of the hint.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// The places for each kind of work.
#[derive(Debug)]
pub struct WorkLimits {
    compiles: Arc<Semaphore>,
    compile_limit: usize,
    fetches: Arc<Semaphore>,
    fetch_limit: usize,
}

/// No place was free in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// What was asked ("catalog requests", "blob streams").
    pub what: &'static str,
    /// How many the master serves at once.
    pub limit: usize,
    /// When to ask again.
    pub retry_after: Duration,
}

impl From<Busy> for tonic::Status {
    fn from(busy: Busy) -> Self {
        let mut status = tonic::Status::resource_exhausted(format!(
            "the master is busy: it serves {} {} at once; retry in {} ms",
            busy.limit,
            busy.what,
            busy.retry_after.as_millis()
        ));
        if let Ok(value) = busy.retry_after.as_millis().to_string().parse() {
            status.metadata_mut().insert(RETRY_AFTER_MS, value);
        }
        status
    }
}

impl WorkLimits {
    /// `compiles` catalog requests and `fetches` blob streams at once.
    pub fn new(compiles: usize, fetches: usize) -> Self {
        let (compiles, fetches) = (compiles.max(1), fetches.max(1));
        Self {
            compiles: Arc::new(Semaphore::new(compiles)),
            compile_limit: compiles,
            fetches: Arc::new(Semaphore::new(fetches)),
            fetch_limit: fetches,
        }
    }

    /// A place for one catalog request, or [`Busy`] after [`QUEUE_WAIT`].
    pub async fn catalog_request(&self) -> Result<OwnedSemaphorePermit, Busy> {
        place(
            &self.compiles,
            self.compile_limit,
            "catalog requests",
            QUEUE_WAIT,
        )
        .await
    }

    /// A place for one blob stream (held until it ends), or [`Busy`].
    pub async fn blob_stream(&self) -> Result<OwnedSemaphorePermit, Busy> {
        place(&self.fetches, self.fetch_limit, "blob streams", QUEUE_WAIT).await
    }
}

async fn place(
    slots: &Arc<Semaphore>,
    limit: usize,
    what: &'static str,
    wait: Duration,
) -> Result<OwnedSemaphorePermit, Busy> {
    match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            let retry_after =
                Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 1_000..=5_000));
            tracing::warn!(what, limit, "busy: a request was told to come back");
            Err(Busy {
                what,
                limit,
                retry_after,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_without_a_place_is_told_when_to_come_back() {
        let slots = Arc::new(Semaphore::new(1));
        let held = place(&slots, 1, "blob streams", Duration::from_millis(50))
            .await
            .unwrap();
        let busy = place(&slots, 1, "blob streams", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!((busy.what, busy.limit), ("blob streams", 1));
        assert!((1_000..=5_000).contains(&(busy.retry_after.as_millis() as u64)));
        let status = tonic::Status::from(busy.clone());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get(RETRY_AFTER_MS)
                .unwrap()
                .to_str()
                .unwrap(),
            busy.retry_after.as_millis().to_string()
        );
        assert!(
            status
                .message()
                .starts_with("the master is busy: it serves 1 blob streams at once")
        );
        // A place freed within the wait is taken.
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { place(&slots, 1, "blob streams", Duration::from_secs(5)).await }
        });
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
    }
}
