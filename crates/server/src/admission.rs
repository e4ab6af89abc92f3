//! Who may start an expensive evaluation now: a fixed number of evaluation slots (the cores),
//! and a share of them per caller, so that one caller sending many costly requests cannot take
//! every slot and keep the others waiting. A caller over its share is told to come back (429);
//! a caller within it waits for a free slot up to a limit (then 503).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{extract::FromRequestParts, http::request::Parts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The evaluation slots and each caller's share of them.
pub struct Admission {
    slots: Arc<Semaphore>,
    total: usize,
    per_caller: usize,
    /// Refusals since the start, for `/metrics`: over a caller's share, and no slot in time.
    refused_over_share: AtomicU64,
    refused_busy: AtomicU64,
    /// Slots held or waited for, per caller key.
    running: Mutex<HashMap<String, usize>>,
}

/// Why a request may not run now.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAdmitted {
    /// The caller already runs its share of evaluations (429).
    OverShare { share: usize },
    /// Every slot stayed taken by others for the whole wait (503).
    Busy,
}

/// A slot held for one evaluation; dropping it frees the slot and the caller's share.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    _share: Share,
}

/// One unit of a caller's share, given back on drop.
struct Share {
    admission: Arc<Admission>,
    key: String,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut running = self.admission.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.key);
            }
        }
    }
}

impl Admission {
    /// `slots` evaluations at once, at most `per_caller` of them for one caller.
    pub fn new(slots: usize, per_caller: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(slots)),
            total: slots,
            per_caller: per_caller.clamp(1, slots),
            refused_over_share: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            running: Mutex::default(),
        })
    }

    /// `slots` evaluations at once (default: as many as the cores, at least 2), at most
    /// `per_caller` of them for one caller (default: half the slots).
    pub fn configured(slots: Option<usize>, per_caller: Option<usize>) -> Arc<Self> {
        let slots = slots.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2));
        Admission::new(slots, per_caller.unwrap_or(slots / 2))
    }

    /// The defaults of [`Admission::configured`].
    pub fn for_this_machine() -> Arc<Self> {
        Admission::configured(None, None)
    }

    /// A slot for `caller`, waiting at most `wait` for one to be free.
    pub async fn admit(self: &Arc<Self>, caller: &CallerKey, wait: Duration) -> Result<Admitted, NotAdmitted> {
        let share = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let n = running.entry(caller.0.clone()).or_default();
            if *n >= self.per_caller {
                self.refused_over_share.fetch_add(1, Ordering::Relaxed);
                return Err(NotAdmitted::OverShare { share: self.per_caller });
            }
            *n += 1;
            Share { admission: self.clone(), key: caller.0.clone() }
        };
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Admitted { _permit: permit, _share: share }),
            _ => {
                self.refused_busy.fetch_add(1, Ordering::Relaxed);
                Err(NotAdmitted::Busy)
            }
        }
    }

    /// The slots, how many are taken now, and the refusals so far (over a share, busy).
    pub fn usage(&self) -> SlotUsage {
        SlotUsage {
            slots: self.total,
            busy: self.total.saturating_sub(self.slots.available_permits()),
            refused_over_share: self.refused_over_share.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
        }
    }
}

/// A reading of [`Admission::usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotUsage {
    pub slots: usize,
    pub busy: usize,
    pub refused_over_share: u64,
    pub refused_busy: u64,
}

/// Whom a request's share is counted for: the token's subject when it has one, else the client's
/// address (an IPv6 client by its /64, which one host usually has whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey(String);

impl CallerKey {
    pub fn subject(subject: &str) -> Self {
        CallerKey(format!("sub:{subject}"))
    }

    /// The key as text (for keyed rate limits).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of a request: the verified token's subject when it has one, else `address`.
    pub fn of(caller: Option<&cireg_auth::Caller>, address: impl FnOnce() -> Option<IpAddr>) -> Self {
        match caller {
            Some(caller) if !caller.subject.is_empty() => CallerKey::subject(&caller.subject),
            _ => CallerKey::address(address()),
        }
    }

    pub fn address(addr: Option<IpAddr>) -> Self {
        match addr {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                CallerKey(format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
            Some(IpAddr::V6(v6)) => CallerKey(format!("ip:{}", v6.to_ipv4_mapped().map_or(v6.into(), IpAddr::V4))),
            Some(ip) => CallerKey(format!("ip:{ip}")),
            None => CallerKey("ip:unknown".to_owned()),
        }
    }
}

/// Whom a request counts for: a verified token's subject, else the client's address (a token
/// that does not verify counts as no token here; the endpoints that care refuse it themselves).
pub(crate) async fn caller_key(
    state: &crate::AppState,
    headers: &axum::http::HeaderMap,
    client: &ClientAddr,
) -> CallerKey {
    let caller = crate::auth::caller(state, headers).await.ok().flatten();
    CallerKey::of(caller.as_ref(), || client_ip(&state.trusted_proxies, headers, client))
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// right-most address of `X-Forwarded-For` that is not a trusted proxy (the left part of that
/// header is whatever the client wrote, so it is never believed).
pub(crate) fn client_ip(trusted: &[IpAddr], headers: &axum::http::HeaderMap, client: &ClientAddr) -> Option<IpAddr> {
    let peer = client.0.map(|a| a.ip())?;
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        ip => ip,
    };
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| canonical(*t) == canonical(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !is_trusted(*ip)).unwrap_or(peer))
}

/// The client's address, when the server was started with connection info (always, but a router
/// driven directly in a test has none).
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_gets_its_share_and_others_the_rest() {
        let admission = Admission::new(2, 1);
        let (a, b) = (CallerKey::address(Some([127, 0, 0, 1].into())), CallerKey::subject("alice"));
        let first = admission.admit(&a, Duration::from_millis(10)).await.unwrap();
        assert_eq!(admission.usage().busy, 1);
        // over its share: refused at once, whatever slots are free
        assert_eq!(
            admission.admit(&a, Duration::from_millis(10)).await.err(),
            Some(NotAdmitted::OverShare { share: 1 })
        );
        // another caller gets the other slot; a third waits and is told the node is busy
        let second = admission.admit(&b, Duration::from_millis(10)).await.unwrap();
        let c = CallerKey::subject("carol");
        assert_eq!(admission.admit(&c, Duration::from_millis(10)).await.err(), Some(NotAdmitted::Busy));
        let usage = admission.usage();
        assert_eq!((usage.slots, usage.busy, usage.refused_over_share, usage.refused_busy), (2, 2, 1, 1));
        // a refused caller holds nothing afterwards
        assert!(admission.running.lock().unwrap().get(&c.0).is_none());
        drop(first);
        let again = admission.admit(&a, Duration::from_millis(10)).await;
        assert!(again.is_ok());
        drop((second, again));
        assert!(admission.running.lock().unwrap().is_empty());
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_forwarded_address() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let from_proxy = ClientAddr(Some("10.0.0.5:40000".parse().unwrap()));
        let direct = ClientAddr(Some("192.0.2.7:40000".parse().unwrap()));
        let mut headers = axum::http::HeaderMap::new();
        // the client wrote the first entry itself; the proxy appended the real address
        headers.insert("x-forwarded-for", "203.0.113.66, 198.51.100.9".parse().unwrap());
        assert_eq!(client_ip(&[proxy], &headers, &from_proxy), "198.51.100.9".parse().ok());
        // a peer that is not a trusted proxy is believed, its header is not
        assert_eq!(client_ip(&[proxy], &headers, &direct), "192.0.2.7".parse().ok());
        // no proxies trusted: the peer, always
        assert_eq!(client_ip(&[], &headers, &from_proxy), Some(proxy));
        // a trusted proxy without the header: the proxy itself
        assert_eq!(client_ip(&[proxy], &axum::http::HeaderMap::new(), &from_proxy), Some(proxy));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(CallerKey::address(Some(one)), CallerKey::address(Some(other)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(CallerKey::address(Some(mapped)), CallerKey::address(Some([10, 0, 0, 1].into())));
    }
}
