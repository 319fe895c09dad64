//! Request limits that keep the node up under abuse: a per-IP token bucket, a cap on requests
//! in flight, and a per-request timeout. Each refusal is a JSON error with `Retry-After`.
//!
//! - **Rate limit**: each IP address has a bucket of `burst_per_ip` tokens refilled at
//!   `rate_per_ip_per_sec`; a request takes one token or is answered 429 `rate_limited` with
//!   the seconds until a token is back. The table of buckets is bounded by `max_tracked_ips`:
//!   when full, buckets that have refilled completely (idle clients) are dropped; if every
//!   tracked address is active, the table is cleared (fail open) rather than grow.
//! - **Concurrency**: at most `max_concurrent_requests` are handled at once; more are answered
//!   503 `overloaded` immediately (no queue to grow).
//! - **Timeout**: a request not answered within `request_timeout_secs` is answered 503
//!   `timeout` and its handler dropped.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A per-IP token-bucket rate limiter.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_tracked: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rate` tokens per second, `burst` tokens at most, `max_tracked` addresses.
    pub fn new(rate: f64, burst: u32, max_tracked: usize) -> RateLimiter {
        RateLimiter {
            rate,
            burst: f64::from(burst),
            max_tracked,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a token for `ip` at `now`; `Err(seconds to wait)` if none is left.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_tracked {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
            if buckets.len() >= self.max_tracked {
                buckets.clear();
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// The 429 answer.
pub fn rate_limited(retry_after: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this address; retry in {retry_after} s"),
    )
    .retry_after(retry_after)
}

#[cfg(test)]
mod tests;
