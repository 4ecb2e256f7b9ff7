//! Bounds on incoming connections, shared by every listener (the host's HTTP
//! API, the RTSP server): the fd limit, caps on *pending* connections, and
//! accept errors that back off instead of spinning and flooding the log.
//!
//! A connection is pending from accept until it delivers its first complete
//! request that passes auth (OPTIONS and 401s prove nothing): until then it
//! has proven nothing (no credentials, no protocol) and costs the server a
//! file descriptor. Pending connections are capped globally and
//! per client address; over a cap the oldest pending one (of that address
//! first) is closed, so a client that sends its request at once is served
//! even while somebody holds hundreds of idle connections open.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a new connection may take to deliver its first request (go2rtc's
/// HTTP `ReadHeaderTimeout`).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (many distributions
/// start services at 1024, far below what a camera server with hundreds of
/// clients needs). Returns the soft limit in force afterwards.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn raise_fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit to fill / read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l.rlim_cur = l.rlim_max;
            }
        }
    }
    l.rlim_cur as u64
}

/// The soft `RLIMIT_NOFILE` now in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 1024;
    }
    l.rlim_cur as u64
}

/// How long a pending connection is safe from the per-address cap: a
/// legitimate client sends its request within milliseconds, but many of
/// them may connect at once from one address (an NVR starting its cameras,
/// viewers behind one proxy), faster than the server reads their requests.
pub const PER_ADDRESS_GRACE: Duration = Duration::from_secs(1);

/// The pending connections of one listener.
pub struct PendingConns {
    inner: Mutex<Inner>,
    global: usize,
    per_ip: usize,
    grace: Duration,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By admission order: the first entry is the oldest.
    conns: BTreeMap<u64, (Option<IpAddr>, Arc<Notify>, Instant)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (ip, close, _) = self.conns.remove(&id)?;
        if let Some(ip) = ip {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        Some(close)
    }

    fn evict(&mut self, pick: impl Fn(&Option<IpAddr>, Instant) -> bool) -> bool {
        let Some(id) = self
            .conns
            .iter()
            .find(|(_, (ip, _, at))| pick(ip, *at))
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(close) = self.remove(id) {
            close.notify_one();
        }
        true
    }
}

impl PendingConns {
    pub fn new(global: usize, per_ip: usize) -> Arc<PendingConns> {
        Arc::new(PendingConns {
            inner: Mutex::default(),
            global: global.max(1),
            per_ip: per_ip.max(1),
            grace: PER_ADDRESS_GRACE,
        })
    }

    /// The same with another [`PER_ADDRESS_GRACE`] (tests).
    pub fn with_grace(global: usize, per_ip: usize, grace: Duration) -> Arc<PendingConns> {
        Arc::new(PendingConns {
            inner: Mutex::default(),
            global: global.max(1),
            per_ip: per_ip.max(1),
            grace,
        })
    }

    /// Caps sized to the fd limit: a quarter of it for one listener's pending
    /// connections (at most 1024), and 64 per address (fewer for a small
    /// limit), so that two listeners under attack still leave half the
    /// descriptors to cameras, established clients and the process itself.
    pub fn for_fd_limit() -> Arc<PendingConns> {
        let global = (fd_limit() / 4).clamp(16, 1024) as usize;
        PendingConns::new(global, global.min(64))
    }

    /// Registers a new connection, closing the oldest pending one of the same
    /// address when that cap is reached (only one pending for longer than
    /// the grace: a burst of fresh connections from one address is let in),
    /// and the oldest of all when the listener's cap is reached.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Pending {
        let close = Arc::new(Notify::new());
        let now = Instant::now();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = ip {
            if g.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
                let grace = self.grace;
                g.evict(|x, at| *x == Some(ip) && now.saturating_duration_since(at) >= grace);
            }
        }
        if g.conns.len() >= self.global {
            g.evict(|_, _| true);
        }
        let id = g.next;
        g.next += 1;
        g.conns.insert(id, (ip, close.clone(), now));
        if let Some(ip) = ip {
            *g.per_ip.entry(ip).or_default() += 1;
        }
        Pending {
            conns: self.clone(),
            id,
            close,
            released: AtomicBool::new(false),
        }
    }

    /// Closes the oldest pending connection (to free a descriptor when
    /// accept fails for want of one). False when there is none.
    pub fn evict_oldest(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .evict(|_, _| true)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.conns.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One pending connection; dropping it (or [`Pending::release`]) ends its
/// pending state.
pub struct Pending {
    conns: Arc<PendingConns>,
    id: u64,
    close: Arc<Notify>,
    released: AtomicBool,
}

impl Pending {
    /// Resolves when the connection was evicted and must close. Never
    /// resolves after `release`.
    pub async fn evicted(&self) {
        self.close.notified().await
    }

    /// The connection delivered a request: it no longer counts as pending.
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            let mut g = self.conns.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.remove(self.id);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.release();
    }
}

/// An error episode ends when accepting has worked for this long since the
/// last failure. While descriptors run out, accepts fail and succeed by
/// turns (each failure closes an idle connection, which lets one more in):
/// that is one episode, not one per failure.
const QUIET: Duration = Duration::from_secs(10);

/// Accept errors of one listener: a backoff, and one log line per episode.
#[derive(Default)]
pub struct AcceptErrors {
    count: u64,
    delay: Duration,
    last: Option<Instant>,
}

/// What the caller does after a failed accept.
pub enum AcceptFailure {
    /// A connection failed before we got it (aborted, reset): accept again.
    Retry,
    /// Wait this long first; `log` is the first error of an episode, to be
    /// logged (the rest of the episode is counted, not logged).
    Wait {
        delay: Duration,
        log: Option<String>,
    },
}

impl AcceptErrors {
    /// An accept succeeded: returns the line that ends an error episode.
    pub fn ok(&mut self) -> Option<String> {
        self.ok_at(Instant::now())
    }

    fn ok_at(&mut self, now: Instant) -> Option<String> {
        self.delay = Duration::ZERO;
        let last = self.last?;
        if now.duration_since(last) < QUIET {
            return None;
        }
        let line = format!("accept: working again after {} failures", self.count);
        self.count = 0;
        self.last = None;
        Some(line)
    }

    pub fn failed(&mut self, e: &io::Error) -> AcceptFailure {
        self.failed_at(e, Instant::now())
    }

    fn failed_at(&mut self, e: &io::Error, now: Instant) -> AcceptFailure {
        let per_connection = matches!(
            e.raw_os_error(),
            Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EPROTO | libc::EPERM | libc::EINTR)
        );
        if per_connection {
            return AcceptFailure::Retry;
        }
        let first = self.last.is_none();
        self.count += 1;
        self.last = Some(now);
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let log = first
            .then(|| format!("accept: {e}; backing off (logged once until accept works again)"));
        AcceptFailure::Wait {
            delay: self.delay,
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_from_one_address_is_let_in() {
        // 200 readers connecting at once from one NVR: none is closed while
        // they are all younger than the grace; the listener's cap still holds.
        let conns = PendingConns::with_grace(300, 64, Duration::from_secs(3600));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let burst: Vec<Pending> = (0..200).map(|_| conns.admit(Some(a))).collect();
        assert!(burst
            .iter()
            .all(|p| !p.close.notified().now_or_never_ready()));
        assert_eq!(conns.len(), 200);
        let small = PendingConns::with_grace(10, 64, Duration::from_secs(3600));
        let first = small.admit(Some(a));
        let _rest: Vec<Pending> = (0..10).map(|_| small.admit(Some(a))).collect();
        assert!(first.close.notified().now_or_never_ready());
        assert_eq!(small.len(), 10);
    }

    #[test]
    fn caps_evict_the_oldest_pending() {
        let conns = PendingConns::with_grace(4, 2, Duration::ZERO);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = conns.admit(Some(a));
        let a2 = conns.admit(Some(a));
        let a3 = conns.admit(Some(a));
        // Per address: a1 went.
        assert!(a1.close.notified().now_or_never_ready());
        assert!(!a2.close.notified().now_or_never_ready());
        assert_eq!(conns.len(), 2);
        let b1 = conns.admit(Some(b));
        a2.release();
        let b2 = conns.admit(Some(b));
        let _c = conns.admit(None);
        assert_eq!(conns.len(), 4);
        // Globally: the oldest still pending (a3) goes.
        let _d = conns.admit(None);
        assert!(a3.close.notified().now_or_never_ready());
        assert!(!b1.close.notified().now_or_never_ready());
        drop(b2);
        assert_eq!(conns.len(), 3);
        assert!(conns.evict_oldest());
        assert!(b1.close.notified().now_or_never_ready());
    }

    trait Ready {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: std::future::Future> Ready for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }

    #[test]
    fn accept_errors_log_once_per_episode() {
        let mut errs = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let t0 = Instant::now();
        let mut logged = 0;
        // Out of descriptors, failures and successes by turns for 5 s.
        for i in 0..500u64 {
            let now = t0 + Duration::from_millis(10 * i);
            match errs.failed_at(&emfile, now) {
                AcceptFailure::Wait { delay, log } => {
                    assert!(delay <= Duration::from_secs(1));
                    logged += log.is_some() as usize;
                }
                AcceptFailure::Retry => panic!("EMFILE backs off"),
            }
            assert!(errs.ok_at(now + Duration::from_millis(5)).is_none());
        }
        assert_eq!(logged, 1);
        let line = errs.ok_at(t0 + Duration::from_secs(20)).unwrap();
        assert!(line.contains("500 failures"), "{line}");
        assert!(errs.ok_at(t0 + Duration::from_secs(21)).is_none());
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(matches!(errs.failed(&aborted), AcceptFailure::Retry));
    }
}
