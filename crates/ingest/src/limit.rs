//! The per-caller ingest rate limit: each caller (a token's subject over HTTP, a provider over
//! NATS requests) gets its own bucket, so one busy or broken client cannot starve the others.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};

/// Buckets beyond which idle callers are forgotten.
const TRACKED_CALLERS: usize = 10_000;

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `per_second` events per caller on average, `burst` at once.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        RateLimit {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// `per_minute` requests per caller on average, `burst` at once: for costly requests.
    pub fn per_minute(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        RateLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one event from `caller`'s bucket; `Err` says how long until it may send again.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        if self.limiter.len() > TRACKED_CALLERS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&caller.to_owned()).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_caller_has_its_own_bucket() {
        let limit = RateLimit::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(3).unwrap());
        for _ in 0..3 {
            assert!(limit.check("a").is_ok());
        }
        let wait = limit.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limit.check("b").is_ok(), "another caller is not held back by a");
    }
}
