//! Sign-in throttling per account and per client address (GCRA rate limiters from `governor`).
//! Every attempt counts, successful or not; a throttled attempt is refused before the password is checked.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LoginLimits;

pub struct LoginThrottle {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl LoginThrottle {
    pub fn new(limits: &LoginLimits) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_account: RateLimiter::keyed(quota(limits.per_account_per_minute)),
            per_address: RateLimiter::keyed(quota(limits.per_address_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` to go ahead, or the number of seconds to wait.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let now = self.clock.now();
        if let Some(ip) = address {
            if let Err(until) = self.per_address.check_key(&ip) {
                return Err(until.wait_time_from(now).as_secs().max(1));
            }
        }
        self.per_account
            .check_key(&username.to_lowercase())
            .map_err(|until| until.wait_time_from(now).as_secs().max(1))
    }

    /// Drops state of keys that are back to full capacity (called periodically).
    pub fn prune(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_after_its_burst_without_affecting_others() {
        let throttle = LoginThrottle::new(&LoginLimits {
            per_account_per_minute: 3,
            per_address_per_minute: 100,
        });
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(throttle.check("alice", ip).is_ok());
        }
        let wait = throttle.check("ALICE", ip).unwrap_err();
        assert!((1..=20).contains(&wait), "wait {wait}");
        assert!(throttle.check("bob", ip).is_ok());
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let throttle = LoginThrottle::new(&LoginLimits {
            per_account_per_minute: 100,
            per_address_per_minute: 2,
        });
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        assert!(throttle.check("a1", ip).is_ok());
        assert!(throttle.check("a2", ip).is_ok());
        assert!(throttle.check("a3", ip).is_err());
        assert!(throttle.check("a3", Some(IpAddr::from([10, 0, 0, 10]))).is_ok());
    }
}
