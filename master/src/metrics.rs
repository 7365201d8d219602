//! The master's `/metrics`: node RPCs by method and code with their
//! latency, compile time, requests told to come back (overload), open
//! watch streams, and — read at each scrape — nodes by their last run's
//! result and by whether they were heard from lately.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rigger_common::metrics::{Labels, labels, seconds_histogram};

use crate::state::MasterState;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Everything the master counts.
#[derive(Debug)]
pub struct MasterMetrics {
    registry: Registry,
    rpcs: Family<Labels, Counter>,
    rpc_seconds: HistogramFamily,
    /// Seconds one catalog compile took.
    pub compile_seconds: Histogram,
    /// Catalog requests answered without a compile: nothing the node's
    /// catalog is compiled from had changed.
    pub compiles_saved: Counter,
    /// Requests answered "busy", by what was asked.
    pub busy: Family<Labels, Counter>,
    /// Open `WatchCatalog` streams.
    pub watch_streams: Gauge,
    nodes: Family<Labels, Gauge>,
}

impl Default for MasterMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rigger_master");
        let rpcs = Family::<Labels, Counter>::default();
        registry.register(
            "rpc_requests",
            "Node RPCs answered, by method and gRPC code",
            rpcs.clone(),
        );
        let rpc_seconds = HistogramFamily::new_with_constructor(seconds_histogram);
        registry.register(
            "rpc_duration_seconds",
            "Time to answer a node RPC (to its first response), by method",
            rpc_seconds.clone(),
        );
        let compile_seconds = seconds_histogram();
        registry.register(
            "compile_duration_seconds",
            "Time to compile one node's catalog",
            compile_seconds.clone(),
        );
        let compiles_saved = Counter::default();
        registry.register(
            "compiles_saved",
            "Catalog requests answered without a compile (nothing the catalog is compiled from changed)",
            compiles_saved.clone(),
        );
        let busy = Family::<Labels, Counter>::default();
        registry.register(
            "busy",
            "Requests told to come back because every place was taken, by what",
            busy.clone(),
        );
        let watch_streams = Gauge::default();
        registry.register(
            "watch_streams",
            "Open WatchCatalog streams (nodes listening for pushes)",
            watch_streams.clone(),
        );
        let nodes = Family::<Labels, Gauge>::default();
        registry.register(
            "nodes",
            "Enrolled nodes by their last run's result and whether they were heard from within the peer timeout",
            nodes.clone(),
        );
        Self {
            registry,
            rpcs,
            rpc_seconds,
            compile_seconds,
            compiles_saved,
            busy,
            watch_streams,
            nodes,
        }
    }
}

impl MasterMetrics {
    /// Counts a request told to come back.
    pub fn busy(&self, what: &str) {
        self.busy.get_or_create(&labels(&[("what", what)])).inc();
    }

    /// Counts an answered RPC.
    pub fn rpc(&self, method: &str, code: &str, seconds: f64) {
        self.rpcs
            .get_or_create(&labels(&[("method", method), ("code", code)]))
            .inc();
        self.rpc_seconds
            .get_or_create(&labels(&[("method", method)]))
            .observe(seconds);
    }
}

/// Counts an open stream while it is kept.
#[derive(Debug)]
pub struct OpenStream(Gauge);

impl OpenStream {
    /// One more open on `gauge`, until dropped.
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The metrics text for one scrape; the node counts read now.
pub async fn render(state: &MasterState) -> String {
    let metrics = &state.metrics;
    metrics.nodes.clear();
    match crate::inventory::nodes(state).await {
        Ok(nodes) => {
            let since = state.live_since_ms();
            for node in nodes {
                let result = match node.last_run_status.as_str() {
                    "" => "none",
                    other => other,
                };
                let result = if node.catalog_error.is_empty() {
                    result
                } else {
                    "no catalog"
                };
                let seen = if node.last_seen_ms >= since {
                    "live"
                } else {
                    "stale"
                };
                metrics
                    .nodes
                    .get_or_create(&labels(&[("last_run", result), ("seen", seen)]))
                    .inc();
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the nodes"),
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics.registry) {
        tracing::warn!(error = %e, "metrics: cannot encode");
    }
    text
}

/// A tower layer counting each node RPC: its method (the last part of the
/// path), its gRPC code (from the response headers: an error answers with
/// them at once; a success, or a stream, is counted as OK) and how long it
/// took until its response began.
#[derive(Clone)]
pub struct RpcMetricsLayer(pub Arc<MasterState>);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            state: self.0.clone(),
        }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    state: Arc<MasterState>,
}

impl<S, B, R> tower::Service<tonic::codegen::http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<R>,
        > + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let started = Instant::now();
        let state = self.state.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            if let Ok(response) = &answered {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .map(|v| format!("{:?}", tonic::Code::from_bytes(v.as_bytes())))
                    .unwrap_or_else(|| "Ok".to_string());
                state
                    .metrics
                    .rpc(&method, &code, started.elapsed().as_secs_f64());
            }
            answered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rpcs_and_compiles_are_in_the_text() {
        let metrics = MasterMetrics::default();
        metrics.rpc("GetCatalog", "Ok", 0.004);
        metrics.rpc("GetCatalog", "ResourceExhausted", 2.0);
        metrics.compile_seconds.observe(0.02);
        metrics.watch_streams.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        for line in [
            "rigger_master_rpc_requests_total{method=\"GetCatalog\",code=\"Ok\"} 1",
            "rigger_master_rpc_requests_total{method=\"GetCatalog\",code=\"ResourceExhausted\"} 1",
            "rigger_master_rpc_duration_seconds_count{method=\"GetCatalog\"} 2",
            "rigger_master_compile_duration_seconds_count 1",
            "rigger_master_watch_streams 1",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
    }
}
