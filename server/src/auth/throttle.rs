//! Password-guessing throttles that no stranger can turn into a lockout (the rule is in the README,
//! "Sign-in throttling"). Three limits, checked before any password work:
//!
//! - per (account, client address): `per_account_per_address_per_minute` attempts (GCRA), then 429 — one
//!   address cannot guess at one account quickly;
//! - per client address: `per_address_per_minute` attempts across accounts (GCRA), then 429 — one address
//!   cannot spray many accounts;
//! - per account, from everywhere: failures past `per_account_per_minute` (a bucket that drains at that
//!   rate) do not refuse anyone; they **slow** every attempt on the account by a growing delay (1 s, 2 s,
//!   4 s, ... at most `max_delay_secs`). Many addresses together guess slowly, and the owner, from an address
//!   of their own, still gets in — later, never locked out (as Keystone's and Xen Orchestra's rules mean).
//!
//! Sign-in and password changes share the limits (a change is a guess at the current password).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LoginLimits;

/// Failures an account may take per minute before attempts on it are slowed.
struct Slowdown {
    allowance: f64,
    per_sec: f64,
    max_delay: Duration,
    /// account → (failures not yet drained, when last drained).
    failures: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Slowdown {
    fn level(&self, account: &str, now: Instant) -> f64 {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(account)
            .map(|(level, at)| {
                (level - now.saturating_duration_since(*at).as_secs_f64() * self.per_sec).max(0.0)
            })
            .unwrap_or(0.0)
    }

    /// How long an attempt on `account` waits before its password is checked.
    fn delay(&self, account: &str, now: Instant) -> Duration {
        // Rounded: the bucket drains continuously, a failure counts whole.
        let over = (self.level(account, now) - self.allowance).round();
        if over < 1.0 {
            return Duration::ZERO;
        }
        // 1 s for the first failure past the allowance, doubling after each further one.
        let exp = (over as i32 - 1).clamp(0, 20);
        Duration::from_secs_f64(2f64.powi(exp)).min(self.max_delay)
    }

    fn fail(&self, account: &str, now: Instant) {
        let level = self.level(account, now) + 1.0;
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(account.to_string(), (level, now));
    }

    fn succeed(&self, account: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(account);
    }

    fn prune(&self, now: Instant) {
        let per_sec = self.per_sec;
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (level, at)| {
            *level - now.saturating_duration_since(*at).as_secs_f64() * per_sec > 0.0
        });
    }
}

/// The verdict on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead after waiting this long (zero unless the account is being guessed at).
    Proceed(Duration),
    /// Refused: come back after this many seconds (`Retry-After`).
    Refuse(u64),
}

pub struct LoginThrottle {
    per_pair: DefaultKeyedRateLimiter<(String, IpAddr)>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    slowdown: Slowdown,
    clock: DefaultClock,
}

/// Addresses are unknown only when the portal is served without connect info (never in `portal`).
const UNKNOWN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl LoginThrottle {
    pub fn new(limits: &LoginLimits) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_pair: RateLimiter::keyed(quota(limits.per_account_per_address_per_minute)),
            per_address: RateLimiter::keyed(quota(limits.per_address_per_minute)),
            slowdown: Slowdown {
                allowance: f64::from(limits.per_account_per_minute),
                per_sec: f64::from(limits.per_account_per_minute) / 60.0,
                max_delay: Duration::from_secs(limits.max_delay_secs),
                failures: Mutex::new(HashMap::new()),
            },
            clock: DefaultClock::default(),
        }
    }

    /// Counts an attempt on `account` from `address` and says whether and when it may proceed.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Verdict {
        let now = self.clock.now();
        let account = account.to_lowercase();
        let ip = address.unwrap_or(UNKNOWN);
        let wait = |until: governor::NotUntil<_>| until.wait_time_from(now).as_secs().max(1);
        if let Err(until) = self.per_address.check_key(&ip) {
            return Verdict::Refuse(wait(until));
        }
        if let Err(until) = self.per_pair.check_key(&(account.clone(), ip)) {
            return Verdict::Refuse(wait(until));
        }
        Verdict::Proceed(self.slowdown.delay(&account, Instant::now()))
    }

    /// A wrong password for `account`.
    pub fn failed(&self, account: &str) {
        self.slowdown.fail(&account.to_lowercase(), Instant::now());
    }

    /// The right password: the account's slowdown ends.
    pub fn succeeded(&self, account: &str) {
        self.slowdown.succeed(&account.to_lowercase());
    }

    /// Drops state of keys that are back to full capacity (called periodically).
    pub fn prune(&self) {
        self.per_pair.retain_recent();
        self.per_address.retain_recent();
        self.slowdown.prune(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pair: u32, address: u32, account: u32) -> LoginLimits {
        LoginLimits {
            per_account_per_address_per_minute: pair,
            per_address_per_minute: address,
            per_account_per_minute: account,
            max_delay_secs: 16,
        }
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn one_address_guessing_at_one_account_is_refused_but_the_owner_elsewhere_is_not() {
        let throttle = LoginThrottle::new(&limits(3, 100, 100));
        for _ in 0..3 {
            assert!(matches!(throttle.check("alice", ip(1)), Verdict::Proceed(_)));
        }
        let Verdict::Refuse(wait) = throttle.check("ALICE", ip(1)) else {
            panic!("not refused")
        };
        assert!((1..=20).contains(&wait), "wait {wait}");
        assert_eq!(throttle.check("alice", ip(2)), Verdict::Proceed(Duration::ZERO));
        assert_eq!(throttle.check("bob", ip(1)), Verdict::Proceed(Duration::ZERO));
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let throttle = LoginThrottle::new(&limits(100, 2, 100));
        assert!(matches!(throttle.check("a1", ip(9)), Verdict::Proceed(_)));
        assert!(matches!(throttle.check("a2", ip(9)), Verdict::Proceed(_)));
        assert!(matches!(throttle.check("a3", ip(9)), Verdict::Refuse(_)));
        assert!(matches!(throttle.check("a3", ip(10)), Verdict::Proceed(_)));
    }

    #[test]
    fn failures_from_everywhere_slow_an_account_with_a_growing_capped_delay_never_a_refusal() {
        let throttle = LoginThrottle::new(&limits(100, 100, 2));
        let mut delays = vec![];
        for i in 0..10u8 {
            match throttle.check("admin", ip(i)) {
                Verdict::Proceed(d) => delays.push(d.as_secs()),
                Verdict::Refuse(_) => panic!("the account was locked"),
            }
            throttle.failed("admin");
        }
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 16, 16]);
        // A fresh address gets in, slowed; the right password ends the slowdown.
        assert_eq!(
            throttle.check("admin", ip(200)),
            Verdict::Proceed(Duration::from_secs(16))
        );
        throttle.succeeded("admin");
        assert_eq!(throttle.check("admin", ip(201)), Verdict::Proceed(Duration::ZERO));
    }

    #[test]
    fn failures_drain_at_the_configured_rate() {
        let slow = Slowdown {
            allowance: 1.0,
            per_sec: 1.0,
            max_delay: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        };
        let t0 = Instant::now();
        for _ in 0..4 {
            slow.fail("a", t0);
        }
        assert_eq!(slow.delay("a", t0), Duration::from_secs(4));
        assert_eq!(
            slow.delay("a", t0 + Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(slow.delay("a", t0 + Duration::from_secs(3)), Duration::ZERO);
        slow.prune(t0 + Duration::from_secs(5));
        assert!(slow.failures.lock().unwrap().is_empty());
    }
}
