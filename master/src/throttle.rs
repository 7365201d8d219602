//! Enrollment floods: a per-address budget of `Enroll` attempts (a node
//! enrolls once; a flood of guesses is refused before any token is looked
//! up) and a log that says "N more" instead of one line per refusal.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Enroll attempts one address may make at once.
const BURST_PER_ADDRESS: u32 = 20;
/// Enroll attempts one address may make per minute after its burst (a fleet
/// behind one NAT address enrolls at this pace).
const PER_ADDRESS_PER_MINUTE: u32 = 120;
/// Shortest time between two logged refusals.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Addresses tracked before the idle ones are forgotten.
const TRACKED_ADDRESSES: usize = 10_000;

/// The enrollment throttle of one master.
pub struct EnrollThrottle {
    attempts: DefaultKeyedRateLimiter<IpAddr>,
    log: Mutex<LogGate>,
    suppressed: AtomicU64,
}

struct LogGate {
    last: Option<Instant>,
}

/// An address over its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// How long until the address may try again.
    pub retry_after: Duration,
}

impl Default for EnrollThrottle {
    fn default() -> Self {
        Self::new(BURST_PER_ADDRESS, PER_ADDRESS_PER_MINUTE)
    }
}

impl EnrollThrottle {
    /// A throttle allowing `burst` attempts per address at once and
    /// `per_minute` after that.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            log: Mutex::new(LogGate { last: None }),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Counts an attempt from `remote`; `Err` when the address is over its
    /// budget.
    pub fn attempt(&self, remote: IpAddr) -> Result<(), OverBudget> {
        if self.attempts.len() > TRACKED_ADDRESSES {
            self.attempts.retain_recent();
        }
        self.attempts
            .check_key(&remote)
            .map_err(|not_until| OverBudget {
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                )),
            })
    }

    /// Logs a refused enrollment, or counts it when one was logged within
    /// the last five seconds; the next line logged says how many were not.
    pub fn log_refusal(&self, remote: Option<IpAddr>, reason: &str) {
        let now = Instant::now();
        let mut gate = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if gate
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        gate.last = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        let remote = remote.map(|r| r.to_string()).unwrap_or_default();
        if suppressed > 0 {
            tracing::warn!(%remote, suppressed, "enrollment refused: {reason} ({suppressed} more refusals since the last line)");
        } else {
            tracing::warn!(%remote, "enrollment refused: {reason}");
        }
    }

    /// Refusals counted but not logged since the last line.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_burst_is_refused_and_others_are_not() {
        let throttle = EnrollThrottle::new(3, 1);
        let flood: IpAddr = [127, 0, 0, 9].into();
        for _ in 0..3 {
            throttle.attempt(flood).unwrap();
        }
        let over = throttle.attempt(flood).unwrap_err();
        assert!(over.retry_after > Duration::ZERO && over.retry_after <= Duration::from_secs(60));
        throttle.attempt([127, 0, 0, 2].into()).unwrap();
    }

    #[test]
    fn refusals_in_a_burst_are_counted_not_logged() {
        let throttle = EnrollThrottle::default();
        for _ in 0..100 {
            throttle.log_refusal(None, "unknown token");
        }
        assert_eq!(throttle.suppressed(), 99);
    }
}
