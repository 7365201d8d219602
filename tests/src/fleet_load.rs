//! Simulated agents against one or more masters: what `rigger-load` and
//! the scale-out benchmark run. Each simulated agent is a node as the
//! master sees it: its own key and certificate (enrolled with a token),
//! its own source address on 127.0.0.0/8 (127.B.x.y, also its private IP
//! in its facts), its own TLS connection holding a `WatchCatalog` stream,
//! and runs made of a catalog request (verified with the master's signing
//! key), the blobs of its catalog on its first run, and a report.
//!
//! Agent `i` talks to master `i % masters`. When its master cannot be
//! reached (a transport error, or no answer), it connects to the next
//! that answers and makes the run again there, as the agent does; those
//! failovers are counted (its watch stream is not opened again). A
//! master that answers busy
//! (`RESOURCE_EXHAUSTED` with `retry-after-ms`) is asked again after its
//! hint, as the agent does; those waits are counted, not failed. Every
//! wait is bounded.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rigger_agent::run::content::{file_sources, trees};
use rigger_common::catalog::Catalog;
use rigger_common::grpc::{MasterAddress, tls_channel_from};
use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::proto::content_service_client::ContentServiceClient;
use rigger_common::proto::enrollment_service_client::EnrollmentServiceClient;
use rigger_common::proto::{
    EnrollRequest, FetchBlobsRequest, GetCatalogRequest, Report, WatchCatalogRequest,
};
use rigger_common::signing::{SignedCatalog, verify_catalog};
use rigger_common::tls::{ClientIdentity, client_config};
use tokio::sync::Semaphore;
use tonic::transport::Channel;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// The masters; agent `i` uses `masters[i % len]`.
    pub masters: Vec<MasterAddress>,
    /// The fleet's CA certificate, PEM.
    pub ca_pem: String,
    /// A bootstrap token with a use for each agent.
    pub token: String,
    /// The roles the agents ask for: agent `i` the `(i mod len)`th (a
    /// token bound to one role, or an unbound one for several).
    pub roles: Vec<String>,
    /// How many agents.
    pub agents: usize,
    /// The second octet of the agents' addresses (127.B.x.y).
    pub network: u8,
    /// Certnames are `<prefix>-<i>`.
    pub prefix: String,
    /// Enrollments and connections made at once.
    pub setup_concurrency: usize,
    /// Runs in flight at once.
    pub concurrency: usize,
    /// How long the agents make runs.
    pub duration: Duration,
    /// Every network call's limit.
    pub timeout: Duration,
    /// Masters on this machine whose memory is read at the end of the
    /// runs, every agent still connected.
    pub master_pids: Vec<u32>,
}

/// The address of agent `i`: 127.B.x.y, with y in 1..=250.
pub fn agent_address(network: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, network, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// The most agents one network (127.B.0.0/16) holds.
pub const MAX_AGENTS: usize = 250 * 256;

/// What one load run measured.
#[derive(Debug, Default)]
pub struct LoadFigures {
    /// Agents enrolled, and how long that took.
    pub enrolled: usize,
    /// Time to enroll them all.
    pub enroll_time: Duration,
    /// Watch streams open during the runs.
    pub streams: usize,
    /// Time to connect every agent and open its stream.
    pub connect_time: Duration,
    /// Runs completed (catalog verified and report accepted).
    pub runs: u64,
    /// Runs that failed, with the first few reasons.
    pub failed: u64,
    /// The first failures' messages.
    pub failures: Vec<String>,
    /// Times a master answered busy and was asked again.
    pub busy: u64,
    /// Times an agent could not reach its master and went to another.
    pub failovers: u64,
    /// Catalog request latencies, µs, sorted.
    pub catalog_micros: Vec<u64>,
    /// Whole run latencies, µs, sorted.
    pub run_micros: Vec<u64>,
    /// How long the runs went on.
    pub elapsed: Duration,
    /// Blobs and bytes fetched.
    pub blobs: u64,
    /// Bytes of blobs fetched.
    pub blob_bytes: u64,
    /// Catalog notices the watch streams received.
    pub notices: u64,
    /// Each master's resident memory (KiB) at the end of the runs.
    pub master_rss_kib: Vec<(u32, Option<u64>)>,
}

impl LoadFigures {
    /// The `p`th percentile (0–100) of sorted `micros`, in ms.
    pub fn percentile_ms(micros: &[u64], p: f64) -> f64 {
        if micros.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * micros.len() as f64).ceil() as usize;
        micros[rank.clamp(1, micros.len()) - 1] as f64 / 1000.0
    }

    /// Catalog requests answered per second.
    pub fn catalogs_per_second(&self) -> f64 {
        self.catalog_micros.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The figures as lines for a person.
    pub fn summary(&self) -> String {
        let ms = |v: &[u64], p| Self::percentile_ms(v, p);
        let mut lines = vec![
            format!(
                "enrolled {} agents in {:.1} s; {} watch streams open in {:.1} s",
                self.enrolled,
                self.enroll_time.as_secs_f64(),
                self.streams,
                self.connect_time.as_secs_f64()
            ),
            format!(
                "{} runs in {:.1} s, {} failed, {} busy answers asked again, {} failovers; {:.0} catalog requests/s",
                self.runs,
                self.elapsed.as_secs_f64(),
                self.failed,
                self.busy,
                self.failovers,
                self.catalogs_per_second()
            ),
            format!(
                "catalog latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; whole run p50 {:.1} ms, p99 {:.1} ms",
                ms(&self.catalog_micros, 50.0),
                ms(&self.catalog_micros, 99.0),
                ms(&self.catalog_micros, 100.0),
                ms(&self.run_micros, 50.0),
                ms(&self.run_micros, 99.0)
            ),
            format!(
                "fetched {} blobs ({} bytes); {} catalog notices on the streams",
                self.blobs, self.blob_bytes, self.notices
            ),
        ];
        for (pid, kib) in &self.master_rss_kib {
            lines.push(match kib {
                Some(kib) => format!(
                    "master {pid} RSS with every agent connected: {:.1} MiB",
                    *kib as f64 / 1024.0
                ),
                None => format!("master {pid}: no such process"),
            });
        }
        lines.extend(self.failures.iter().map(|f| format!("failure: {f}")));
        lines.join("\n")
    }
}

/// One enrolled agent.
struct Agent {
    index: usize,
    certname: String,
    /// What it tells the master of itself with each request.
    facts_json: String,
    role: String,
    address: IpAddr,
    master: MasterAddress,
    identity: ClientIdentity,
    signing_key: Vec<u8>,
}

/// A connected agent: its channel to the master it uses now (the index
/// in `masters`), and what it needs to fail over to the next.
struct Connected {
    agent: Agent,
    channel: std::sync::Mutex<(Channel, usize)>,
    masters: Arc<Vec<MasterAddress>>,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
    /// The last catalog applied: (version, digest).
    applied: std::sync::Mutex<(u64, String)>,
}

impl Connected {
    fn channel(&self) -> Channel {
        self.channel.lock().unwrap().0.clone()
    }

    /// Connects to the next master that answers, as an agent given
    /// several does when its master cannot be reached; false when none
    /// can.
    async fn fail_over(&self) -> bool {
        let now = self.channel.lock().unwrap().1;
        for step in 1..self.masters.len() {
            let next = (now + step) % self.masters.len();
            let connected = tls_channel_from(
                &self.masters[next],
                self.config.clone(),
                self.timeout,
                Some(self.agent.address),
            )
            .await;
            if let Ok(channel) = connected {
                *self.channel.lock().unwrap() = (channel, next);
                return true;
            }
        }
        false
    }
}

/// Why a run failed, and whether its master could not be reached.
#[derive(Debug)]
struct RunFailure {
    message: String,
    unreachable: bool,
}

impl From<String> for RunFailure {
    fn from(message: String) -> Self {
        Self {
            message,
            unreachable: false,
        }
    }
}

impl RunFailure {
    fn context(self, what: &str) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

/// Counters the runs share.
#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
    failovers: AtomicU64,
    blobs: AtomicU64,
    blob_bytes: AtomicU64,
    notices: Arc<AtomicU64>,
    catalog_micros: std::sync::Mutex<Vec<u64>>,
    run_micros: std::sync::Mutex<Vec<u64>>,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    fn fail(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 5 {
            failures.push(message);
        }
    }
}

/// Enrolls the agents, connects them with a watch stream each, and
/// makes runs until `settings.duration` has passed.
pub async fn run(settings: &LoadSettings) -> Result<LoadFigures, String> {
    if settings.masters.is_empty() {
        return Err("no master given".into());
    }
    if settings.roles.is_empty() {
        return Err("no role given".into());
    }
    if settings.agents == 0 || settings.agents > MAX_AGENTS {
        return Err(format!(
            "{} agents: give between 1 and {MAX_AGENTS}",
            settings.agents
        ));
    }
    let mut figures = LoadFigures::default();
    let started = Instant::now();
    let agents = enroll_all(settings).await?;
    figures.enrolled = agents.len();
    figures.enroll_time = started.elapsed();

    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let (connected, streams) = connect_all(settings, agents, &counters).await?;
    figures.streams = streams.len();
    figures.connect_time = started.elapsed();

    let started = Instant::now();
    let deadline = started + settings.duration;
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for agent in connected {
        let (permits, counters, timeout) = (permits.clone(), counters.clone(), settings.timeout);
        tasks.spawn(async move {
            let mut first = true;
            while Instant::now() < deadline {
                let Ok(permit) = permits.acquire().await else {
                    return;
                };
                if Instant::now() >= deadline {
                    return;
                }
                let run_started = Instant::now();
                let mut outcome = one_run(&agent, first, timeout, &counters).await;
                if outcome.as_ref().is_err_and(|f| f.unreachable) && agent.fail_over().await {
                    counters.failovers.fetch_add(1, Ordering::Relaxed);
                    outcome = one_run(&agent, first, timeout, &counters).await;
                }
                drop(permit);
                match outcome {
                    Ok(()) => {
                        counters.runs.fetch_add(1, Ordering::Relaxed);
                        let micros = run_started.elapsed().as_micros() as u64;
                        counters.run_micros.lock().unwrap().push(micros);
                        first = false;
                    }
                    Err(e) => {
                        counters.fail(format!("{}: {}", agent.agent.certname, e.message));
                        // As an agent waits for its next run.
                        tokio::time::sleep(FAILED_RUN_PAUSE).await;
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a simulated agent panicked: {e}"))?;
    }
    figures.elapsed = started.elapsed();
    figures.master_rss_kib = settings
        .master_pids
        .iter()
        .map(|pid| (*pid, rss_kib(*pid)))
        .collect();
    for stream in &streams {
        stream.abort();
    }
    figures.runs = counters.runs.load(Ordering::Relaxed);
    figures.failed = counters.failed.load(Ordering::Relaxed);
    figures.busy = counters.busy.load(Ordering::Relaxed);
    figures.failovers = counters.failovers.load(Ordering::Relaxed);
    figures.blobs = counters.blobs.load(Ordering::Relaxed);
    figures.blob_bytes = counters.blob_bytes.load(Ordering::Relaxed);
    figures.notices = counters.notices.load(Ordering::Relaxed);
    figures.failures = std::mem::take(&mut *counters.failures.lock().unwrap());
    figures.catalog_micros = std::mem::take(&mut *counters.catalog_micros.lock().unwrap());
    figures.catalog_micros.sort_unstable();
    figures.run_micros = std::mem::take(&mut *counters.run_micros.lock().unwrap());
    figures.run_micros.sort_unstable();
    Ok(figures)
}

/// Runs `make` for each of `items`, `at_once` at a time; the results in
/// the items' order.
async fn bounded<I, T, F, Fut>(items: Vec<I>, at_once: usize, make: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let mut done: Vec<Option<T>> = items.iter().map(|_| None).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        while tasks.len() >= at_once.max(1) {
            let (j, made) = tasks
                .join_next()
                .await
                .expect("a task")
                .map_err(|e| e.to_string())?;
            done[j] = Some(made?);
        }
        let future = make(item);
        tasks.spawn(async move { (i, future.await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (j, made) = joined.map_err(|e| e.to_string())?;
        done[j] = Some(made?);
    }
    Ok(done
        .into_iter()
        .map(|d| d.expect("every task ran"))
        .collect())
}

async fn enroll_all(settings: &LoadSettings) -> Result<Vec<Agent>, String> {
    bounded(
        (0..settings.agents).collect(),
        settings.setup_concurrency,
        |i| {
            let settings = settings.clone();
            async move { enroll(&settings, i).await }
        },
    )
    .await
}

/// Enrolls agent `i` from its own address.
async fn enroll(settings: &LoadSettings, i: usize) -> Result<Agent, String> {
    let certname = format!("{}-{i}", settings.prefix);
    let address = IpAddr::V4(agent_address(settings.network, i));
    let master = settings.masters[i % settings.masters.len()].clone();
    let role = settings.roles[i % settings.roles.len()].clone();
    let (key, csr_pem) = crate::node_client::new_key_and_csr(&certname)?;
    let config = client_config(&settings.ca_pem, None).map_err(|e| e.to_string())?;
    let channel = tls_channel_from(&master, Arc::new(config), settings.timeout, Some(address))
        .await
        .map_err(|e| {
            format!(
                "{certname} cannot reach {master}: {}",
                rigger_common::error_chain(&e)
            )
        })?;
    let reply = EnrollmentServiceClient::new(channel)
        .enroll(EnrollRequest {
            csr_pem,
            token: settings.token.clone(),
            role: role.clone(),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("{certname} was not enrolled by {master}: {}", s.message()))?
        .into_inner();
    let facts_json = serde_json::json!({
        "hostname": certname,
        "ip": address.to_string(),
        "ec2": {"private_ip": address.to_string(), "instance_id": format!("i-load{i:08x}")},
    })
    .to_string();
    Ok(Agent {
        index: i,
        facts_json,
        certname,
        role,
        address,
        master,
        identity: ClientIdentity {
            cert_pem: reply.cert_pem,
            key_pem: key.serialize_pem(),
        },
        signing_key: reply.catalog_signing_key,
    })
}

type Streams = Vec<tokio::task::JoinHandle<()>>;

async fn connect_all(
    settings: &LoadSettings,
    agents: Vec<Agent>,
    counters: &Arc<Counters>,
) -> Result<(Vec<Arc<Connected>>, Streams), String> {
    let made = bounded(agents, settings.setup_concurrency, |agent| {
        let (settings, notices) = (settings.clone(), counters.notices.clone());
        async move {
            let config = Arc::new(
                client_config(&settings.ca_pem, Some(&agent.identity))
                    .map_err(|e| e.to_string())?,
            );
            let channel = tls_channel_from(
                &agent.master,
                config.clone(),
                settings.timeout,
                Some(agent.address),
            )
            .await
            .map_err(|e| {
                format!(
                    "{} cannot connect: {}",
                    agent.certname,
                    rigger_common::error_chain(&e)
                )
            })?;
            let mut stream = CatalogServiceClient::new(channel.clone())
                .watch_catalog(WatchCatalogRequest {})
                .await
                .map_err(|s| format!("{} cannot watch: {}", agent.certname, s.message()))?
                .into_inner();
            let held = tokio::spawn(async move {
                while let Ok(Some(_)) = stream.message().await {
                    notices.fetch_add(1, Ordering::Relaxed);
                }
            });
            Ok((
                Arc::new(Connected {
                    channel: std::sync::Mutex::new((channel, agent.index % settings.masters.len())),
                    agent,
                    masters: Arc::new(settings.masters.clone()),
                    config,
                    timeout: settings.timeout,
                    applied: Default::default(),
                }),
                held,
            ))
        }
    })
    .await?;
    Ok(made.into_iter().unzip())
}

/// How long an agent whose run failed waits before its next.
const FAILED_RUN_PAUSE: Duration = Duration::from_secs(1);

/// How many times a busy master is asked again within one call.
const BUSY_TRIES: u32 = 50;

/// One run: the catalog (verified), its blobs on the first run, a report.
async fn one_run(
    connected: &Connected,
    first: bool,
    timeout: Duration,
    counters: &Counters,
) -> Result<(), RunFailure> {
    let agent = &connected.agent;
    let client = CatalogServiceClient::new(connected.channel());
    let (version, digest) = connected.applied.lock().unwrap().clone();
    let asked = Instant::now();
    let signed = ask_again_when_busy(counters, || {
        let mut client = client.clone();
        let request = GetCatalogRequest {
            facts_json: agent.facts_json.clone(),
            role: agent.role.clone(),
            applied_version: version,
            applied_digest: digest.clone(),
            ..Default::default()
        };
        async move { tokio::time::timeout(timeout, client.get_catalog(request)).await }
    })
    .await
    .map_err(|e| e.context("catalog"))?;
    counters
        .catalog_micros
        .lock()
        .unwrap()
        .push(asked.elapsed().as_micros() as u64);
    let catalog = verify_catalog(&agent.signing_key, &SignedCatalog::from(signed))
        .map_err(|e| format!("the catalog does not verify: {e}"))?;
    if first {
        fetch_blobs(connected, &catalog, timeout, counters).await?;
    }
    let report = Report {
        catalog_version: catalog.version,
        catalog_digest: catalog.digest.to_string(),
        started_at_ms: rigger_common::time::now_ms(),
        duration_ms: asked.elapsed().as_millis() as u64,
        changed: u32::from(first),
        trigger: "scheduled".into(),
        ..Default::default()
    };
    ask_again_when_busy(counters, || {
        let (mut client, report) = (client.clone(), report.clone());
        async move { tokio::time::timeout(timeout, client.submit_report(report)).await }
    })
    .await
    .map_err(|e| e.context("report"))?;
    *connected.applied.lock().unwrap() = (catalog.version, catalog.digest.to_string());
    Ok(())
}

/// The manifests and file sources of the catalog, as a first run fetches them.
async fn fetch_blobs(
    connected: &Connected,
    catalog: &Catalog,
    timeout: Duration,
    counters: &Counters,
) -> Result<(), String> {
    let digests: BTreeSet<String> = trees(catalog)
        .map(|t| t.tree.to_string())
        .chain(file_sources(catalog).iter().map(|d| d.to_string()))
        .collect();
    if digests.is_empty() {
        return Ok(());
    }
    let wanted = digests.len() as u64;
    let fetch = async {
        let mut stream = ContentServiceClient::new(connected.channel())
            .fetch_blobs(FetchBlobsRequest {
                digests: digests.into_iter().collect(),
                accept_encodings: vec![],
            })
            .await
            .map_err(|s| format!("blobs: {}", s.message()))?
            .into_inner();
        let (mut blobs, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| format!("blobs: {}", s.message()))?
        {
            bytes += chunk.data.len() as u64;
            blobs += u64::from(chunk.last);
        }
        Ok::<_, String>((blobs, bytes))
    };
    let (blobs, bytes) = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| "blobs: timed out".to_string())??;
    if blobs != wanted {
        return Err(format!("blobs: {blobs} of {wanted} came"));
    }
    counters.blobs.fetch_add(blobs, Ordering::Relaxed);
    counters.blob_bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

/// Calls until the master answers other than busy (at most
/// [`BUSY_TRIES`] times, waiting its `retry-after-ms` hint, at most 5 s).
async fn ask_again_when_busy<T, F, Fut>(counters: &Counters, mut call: F) -> Result<T, RunFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
            Output = Result<Result<tonic::Response<T>, tonic::Status>, tokio::time::error::Elapsed>,
        >,
{
    for _ in 0..BUSY_TRIES {
        match call().await {
            Err(_) => return Err(String::from("timed out").into()),
            Ok(Ok(reply)) => return Ok(reply.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
                counters.busy.fetch_add(1, Ordering::Relaxed);
                let hint = status
                    .metadata()
                    .get("retry-after-ms")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(hint.min(5_000))).await;
            }
            Ok(Err(status)) => {
                return Err(RunFailure {
                    message: format!("{:?}: {}", status.code(), status.message()),
                    // As the agent tells them (`client/grpc.rs`): a
                    // transport error (the status has a source) or no
                    // master answering.
                    unreachable: std::error::Error::source(&status).is_some()
                        || matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                        ),
                });
            }
        }
    }
    Err(format!("the master was busy {BUSY_TRIES} times in a row").into())
}

/// A process's resident memory, KiB (from `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_get_distinct_usable_addresses() {
        let first = agent_address(1, 0);
        assert_eq!(first, Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(agent_address(1, 249), Ipv4Addr::new(127, 1, 0, 250));
        assert_eq!(agent_address(1, 250), Ipv4Addr::new(127, 1, 1, 1));
        let all: BTreeSet<Ipv4Addr> = (0..MAX_AGENTS).map(|i| agent_address(3, i)).collect();
        assert_eq!(all.len(), MAX_AGENTS);
        assert!(
            all.iter()
                .all(|a| a.octets()[3] != 0 && a.octets()[3] != 255)
        );
    }

    #[test]
    fn percentiles_are_ranks_of_the_sorted_figures() {
        let micros: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(LoadFigures::percentile_ms(&micros, 50.0), 50.0);
        assert_eq!(LoadFigures::percentile_ms(&micros, 99.0), 99.0);
        assert_eq!(LoadFigures::percentile_ms(&micros, 100.0), 100.0);
        assert_eq!(LoadFigures::percentile_ms(&[], 99.0), 0.0);
    }
}
