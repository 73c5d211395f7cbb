//! Request rate limits: a token bucket per key (an IP address or a user),
//! refilled evenly over a minute, whose capacity is the per-minute limit,
//! so a client may burst up to the limit and then proceeds at its pace.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets idle this long are full again and can be forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(120);
/// Sweep forgotten buckets after this many checks, to bound memory.
const SWEEP_EVERY: u64 = 10_000;

pub struct RateLimiter {
    per_minute: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    checks: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` of 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new(State::default()),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Take one request from `key`'s bucket, or say how long until one is
    /// available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.checks += 1;
        if state.checks.is_multiple_of(SWEEP_EVERY) {
            state
                .buckets
                .retain(|_, b| now.saturating_duration_since(b.at) < FORGET_AFTER);
        }
        let bucket = state.buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

/// Whole seconds for `Retry-After`, never 0.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_to_the_limit_then_refills_evenly() {
        let limiter = RateLimiter::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        let wait = limiter.check_at("a", t0).err();
        assert_eq!(wait.map(retry_after_secs), Some(1));
        // Another key has its own bucket.
        assert!(limiter.check_at("b", t0).is_ok());
        // One second later one request fits, the next does not.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.check_at("a", t1).is_ok());
        assert!(limiter.check_at("a", t1).is_err());
        // A minute refills the whole bucket, not more.
        let t2 = t1 + Duration::from_secs(600);
        for _ in 0..60 {
            assert!(limiter.check_at("a", t2).is_ok());
        }
        assert!(limiter.check_at("a", t2).is_err());
    }

    #[test]
    fn zero_is_off() {
        let limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
    }
}
