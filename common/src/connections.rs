//! Admission of the master's TLS connections, so that connections held open
//! by an attacker (or by a broken client) can never lock nodes out: a cap on
//! concurrent connections that, once reached, closes idle unauthenticated
//! connections first; a deadline for the first RPC; an optional per-address
//! cap (off by default: behind a load balancer many agents share few
//! addresses).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

/// What the listener admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, handshaking ones included.
    pub max_connections: usize,
    /// Connections open at once from one address (`None`: no such cap).
    pub max_per_address: Option<usize>,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long after its handshake a connection may go without an RPC.
    pub first_rpc_timeout: Duration,
}

impl ConnectionLimits {
    /// File descriptors kept for everything but connections (database,
    /// blobs, logs, imports).
    pub const RESERVED_DESCRIPTORS: u64 = 128;

    /// The defaults for a process that may open `nofile` descriptors: all
    /// but [`Self::RESERVED_DESCRIPTORS`] of them (at least 16), 10 s to
    /// handshake, 10 s to the first RPC.
    pub fn for_descriptors(nofile: u64) -> Self {
        let max = nofile
            .saturating_sub(Self::RESERVED_DESCRIPTORS)
            .max(nofile / 2)
            .max(16);
        Self {
            max_connections: usize::try_from(max).unwrap_or(usize::MAX),
            max_per_address: None,
            handshake_timeout: Duration::from_secs(10),
            first_rpc_timeout: Duration::from_secs(10),
        }
    }
}

/// Raises the soft limit of open files to the hard limit and returns the
/// limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    Ok(hard)
}

/// What a connection has done, shared between the connection and the RPC
/// layer (it travels in [`crate::tls::PeerIdentity`]).
#[derive(Debug)]
pub struct Activity {
    /// The table's clock.
    epoch: Instant,
    rpc_seen: AtomicBool,
    last_rpc_ms: AtomicU64,
}

impl Activity {
    /// Records that an RPC started on this connection.
    pub fn record_rpc(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_rpc_ms.store(now, Ordering::Relaxed);
        self.rpc_seen.store(true, Ordering::Release);
    }

    /// Whether any RPC started on this connection.
    pub fn rpc_seen(&self) -> bool {
        self.rpc_seen.load(Ordering::Acquire)
    }
}

/// Counts of what the table did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connections open now.
    pub open: usize,
    /// Idle unauthenticated connections closed to admit new ones.
    pub evicted: u64,
    /// Connections refused because nothing could be closed for them.
    pub refused: u64,
}

struct Entry {
    remote: IpAddr,
    /// The client certificate chain it presented, verified (shared with
    /// the connection's identity, not copied).
    client_cert: Option<Arc<Vec<CertificateDer<'static>>>>,
    activity: Arc<Activity>,
    close: CancellationToken,
    close_reason: Arc<OnceLock<&'static str>>,
}

impl Entry {
    fn authenticated(&self) -> bool {
        self.client_cert.is_some()
    }

    fn close(&self, reason: &'static str) {
        let _ = self.close_reason.set(reason);
        self.close.cancel();
    }
}

/// Why a connection is closed to admit another.
const CLOSED_FOR_ROOM: &str = "closed to admit another connection";

#[derive(Default)]
struct Table {
    next_id: u64,
    /// By admission order: the first entries are the oldest.
    entries: BTreeMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    evicted: u64,
    refused: u64,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&entry.remote) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&entry.remote);
            }
        }
        Some(entry)
    }

    /// The connection to close for a new one: the oldest unauthenticated
    /// connection that never started an RPC, else the oldest one whose last
    /// RPC started more than `idle_ms` ago.
    fn eviction_candidate(&self, now_ms: u64, idle_ms: u64) -> Option<u64> {
        let unauthenticated = || self.entries.iter().filter(|(_, e)| !e.authenticated());
        unauthenticated()
            .find(|(_, e)| !e.activity.rpc_seen())
            .or_else(|| {
                unauthenticated().find(|(_, e)| {
                    now_ms.saturating_sub(e.activity.last_rpc_ms.load(Ordering::Relaxed)) > idle_ms
                })
            })
            .map(|(id, _)| *id)
    }
}

/// The open connections of one listener.
pub struct ConnectionTable {
    limits: ConnectionLimits,
    clock: Instant,
    table: Mutex<Table>,
}

impl ConnectionTable {
    /// An empty table enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            clock: Instant::now(),
            table: Mutex::new(Table::default()),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `remote`, closing an idle unauthenticated
    /// one if the table is full; `None` when it must be refused.
    pub fn admit(self: &Arc<Self>, remote: SocketAddr) -> Option<Admission> {
        let ip = remote.ip();
        let mut table = self.lock();
        if let Some(cap) = self.limits.max_per_address {
            if table.per_address.get(&ip).copied().unwrap_or(0) >= cap {
                table.refused += 1;
                return None;
            }
        }
        if table.entries.len() >= self.limits.max_connections {
            let idle_ms = u64::try_from(self.limits.first_rpc_timeout.as_millis()).unwrap_or(0);
            match table.eviction_candidate(self.now_ms(), idle_ms) {
                Some(id) => {
                    if let Some(evicted) = table.remove(id) {
                        evicted.close(CLOSED_FOR_ROOM);
                        table.evicted += 1;
                    }
                }
                None => {
                    table.refused += 1;
                    return None;
                }
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let activity = Arc::new(Activity {
            epoch: self.clock,
            rpc_seen: AtomicBool::new(false),
            last_rpc_ms: AtomicU64::new(0),
        });
        let close = CancellationToken::new();
        let close_reason: Arc<OnceLock<&'static str>> = Arc::default();
        table.entries.insert(
            id,
            Entry {
                remote: ip,
                client_cert: None,
                activity: activity.clone(),
                close: close.clone(),
                close_reason: close_reason.clone(),
            },
        );
        *table.per_address.entry(ip).or_default() += 1;
        Some(Admission {
            table: self.clone(),
            id,
            activity,
            close,
            close_reason,
        })
    }

    /// Closes every connection whose client certificate `refused` says
    /// may no longer be used (revoked): its open streams end at once.
    /// Returns how many it closed.
    pub fn close_where(
        &self,
        reason: &'static str,
        refused: impl Fn(&CertificateDer<'static>) -> bool,
    ) -> usize {
        let table = self.lock();
        let mut closed = 0;
        for entry in table.entries.values() {
            let leaf = entry.client_cert.as_ref().and_then(|chain| chain.first());
            if leaf.is_some_and(&refused) && !entry.close.is_cancelled() {
                entry.close(reason);
                closed += 1;
            }
        }
        closed
    }

    /// What the table holds and did so far.
    pub fn counts(&self) -> ConnectionCounts {
        let table = self.lock();
        ConnectionCounts {
            open: table.entries.len(),
            evicted: table.evicted,
            refused: table.refused,
        }
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Admission {
    table: Arc<ConnectionTable>,
    id: u64,
    activity: Arc<Activity>,
    close: CancellationToken,
    close_reason: Arc<OnceLock<&'static str>>,
}

impl Admission {
    /// Marks the connection as carrying the verified client certificate
    /// chain `chain` (leaf first): it is never closed to make room (only
    /// when the certificate is revoked, [`ConnectionTable::close_where`]).
    pub fn authenticated(&self, chain: Arc<Vec<CertificateDer<'static>>>) {
        if let Some(entry) = self.table.lock().entries.get_mut(&self.id) {
            entry.client_cert = Some(chain);
        }
    }

    /// What the connection has done.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Cancelled when the table closes this connection (to admit
    /// another, or its certificate was revoked).
    pub fn closed(&self) -> &CancellationToken {
        &self.close
    }

    /// Why the table closed it.
    pub fn close_reason(&self) -> &'static str {
        self.close_reason.get().copied().unwrap_or(CLOSED_FOR_ROOM)
    }

    /// The limits of the table that admitted it.
    pub fn limits(&self) -> ConnectionLimits {
        self.table.limits
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: Option<usize>) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_per_address: per_address,
            ..ConnectionLimits::for_descriptors(1024)
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 40000))
    }

    fn cert(n: u8) -> Arc<Vec<CertificateDer<'static>>> {
        Arc::new(vec![CertificateDer::from(vec![n])])
    }

    #[test]
    fn the_connections_of_a_revoked_certificate_are_closed_and_say_why() {
        let table = ConnectionTable::new(limits(10, None));
        let revoked = [table.admit(addr(2)).unwrap(), table.admit(addr(2)).unwrap()];
        for connection in &revoked {
            connection.authenticated(cert(7));
        }
        let other = table.admit(addr(3)).unwrap();
        other.authenticated(cert(8));
        let enrolling = table.admit(addr(4)).unwrap();
        let closed = table.close_where("certificate revoked", |c| c.as_ref() == [7]);
        assert_eq!(closed, 2);
        for connection in &revoked {
            assert!(connection.closed().is_cancelled());
            assert_eq!(connection.close_reason(), "certificate revoked");
        }
        assert!(!other.closed().is_cancelled() && !enrolling.closed().is_cancelled());
        // Closed once: asking again closes nothing more.
        assert_eq!(table.close_where("again", |c| c.as_ref() == [7]), 0);
        assert_eq!(revoked[0].close_reason(), "certificate revoked");
    }

    #[test]
    fn a_full_table_closes_the_oldest_idle_unauthenticated_connection() {
        let table = ConnectionTable::new(limits(3, None));
        let node = table.admit(addr(2)).unwrap();
        node.authenticated(cert(1));
        let enrolling = table.admit(addr(3)).unwrap();
        enrolling.activity().record_rpc();
        let idle = table.admit(addr(4)).unwrap();
        let newcomer = table.admit(addr(5)).unwrap();
        assert!(idle.closed().is_cancelled(), "the idle one makes room");
        assert!(!node.closed().is_cancelled() && !enrolling.closed().is_cancelled());
        assert!(!newcomer.closed().is_cancelled());
        assert_eq!(table.counts().open, 3);
        // The newcomer is now the only idle unauthenticated connection.
        let last = table.admit(addr(6)).unwrap();
        assert!(newcomer.closed().is_cancelled());
        assert_eq!(table.counts().evicted, 2);
        drop(last);
        assert_eq!(table.counts().open, 2);
    }

    #[test]
    fn authenticated_connections_are_never_closed_to_make_room() {
        let table = ConnectionTable::new(limits(2, None));
        let a = table.admit(addr(2)).unwrap();
        a.authenticated(cert(1));
        let b = table.admit(addr(3)).unwrap();
        b.authenticated(cert(2));
        assert!(table.admit(addr(4)).is_none());
        assert_eq!(table.counts().refused, 1);
        drop(a);
        assert!(table.admit(addr(4)).is_some());
    }

    #[test]
    fn the_per_address_cap_counts_each_address() {
        let table = ConnectionTable::new(limits(10, Some(2)));
        let _a = table.admit(addr(2)).unwrap();
        let b = table.admit(addr(2)).unwrap();
        assert!(table.admit(addr(2)).is_none());
        assert!(table.admit(addr(3)).is_some());
        drop(b);
        assert!(table.admit(addr(2)).is_some());
    }

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(ConnectionLimits::for_descriptors(1024).max_connections, 896);
        assert_eq!(ConnectionLimits::for_descriptors(100).max_connections, 50);
        assert_eq!(
            ConnectionLimits::for_descriptors(1 << 20).max_connections,
            (1 << 20) - 128
        );
    }
}
