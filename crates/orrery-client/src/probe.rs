//! Round-trip time to providers' endpoints, for the router's latency input.
//!
//! A probe is one `GET {endpoint}/health` (the path every provider's serving lane answers):
//! the time from sending it to the first byte of *any* HTTP answer — a 404 from an endpoint
//! that serves no `/health` is still a machine that answered. An endpoint that refuses the
//! connection, does not answer within the timeout, or is not a URL at all is *unreachable*
//! and gets [`RttProbe::unreachable_ms`], the worst value a probe can measure — never an
//! error: the router ranks it last among equals instead of failing the query.
//!
//! Limits: at most `concurrency` probes at once (each a thread with one connection), each
//! bounded by `timeout`, so measuring `n` stale endpoints takes at most
//! `ceil(n / concurrency) × timeout`. Results are cached per endpoint for `max_age`, and the
//! cache holds at most [`MAX_CACHED_ENDPOINTS`] entries (the oldest are dropped first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The path probed on every endpoint.
pub const PROBE_PATH: &str = "/health";
/// Default wait for one answer: a provider farther than half a second is as good as absent
/// for interactive work, and a CLI user should not wait longer than that per batch.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default probes at once: enough to measure a page of providers in one timeout, few enough
/// not to look like a scan to anyone's firewall.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 16;
/// Default age after which a cached measurement is probed again.
pub const DEFAULT_PROBE_MAX_AGE: Duration = Duration::from_secs(60);
/// Most endpoints whose measurement is cached: bounds the cache of a long-running gateway.
pub const MAX_CACHED_ENDPOINTS: usize = 65_536;

/// Measures and caches round-trip times to endpoints.
#[derive(Debug)]
pub struct RttProbe {
    timeout: Duration,
    concurrency: usize,
    max_age: Duration,
    cache: HashMap<String, (Instant, u32)>,
}

impl Default for RttProbe {
    fn default() -> Self {
        RttProbe::new(
            DEFAULT_PROBE_TIMEOUT,
            DEFAULT_PROBE_CONCURRENCY,
            DEFAULT_PROBE_MAX_AGE,
        )
    }
}

impl RttProbe {
    /// A probe that waits `timeout` per endpoint, runs `concurrency` (at least 1) at once and
    /// trusts a measurement for `max_age`.
    pub fn new(timeout: Duration, concurrency: usize, max_age: Duration) -> RttProbe {
        RttProbe {
            timeout,
            concurrency: concurrency.max(1),
            max_age,
            cache: HashMap::new(),
        }
    }

    /// What an unreachable endpoint is given: the timeout in ms, the worst a probe measures.
    pub fn unreachable_ms(&self) -> u32 {
        u32::try_from(self.timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// The round-trip time of every endpoint in ms (unreachable ones get
    /// [`RttProbe::unreachable_ms`]), probing those not measured within `max_age`.
    pub fn measure<'a>(
        &mut self,
        endpoints: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, u32> {
        let now = Instant::now();
        let mut wanted: Vec<&str> = endpoints.into_iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        let stale: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|e| {
                self.cache
                    .get(*e)
                    .is_none_or(|(at, _)| now.duration_since(*at) > self.max_age)
            })
            .collect();
        for (endpoint, ms) in self.probe_all(&stale) {
            self.cache.insert(endpoint, (Instant::now(), ms));
        }
        self.evict();
        wanted
            .iter()
            .filter_map(|e| self.cache.get(*e).map(|(_, ms)| ((*e).to_owned(), *ms)))
            .collect()
    }

    /// Probes `endpoints` with at most `concurrency` threads.
    fn probe_all(&self, endpoints: &[&str]) -> Vec<(String, u32)> {
        let agent = probe_agent(self.timeout);
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::with_capacity(endpoints.len()));
        let workers = self.concurrency.min(endpoints.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(endpoint) = endpoints.get(i) else {
                            break;
                        };
                        let ms = probe_once(&agent, endpoint).unwrap_or(self.unreachable_ms());
                        out.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(((*endpoint).to_owned(), ms.min(self.unreachable_ms())));
                    }
                });
            }
        });
        out.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the oldest measurements beyond [`MAX_CACHED_ENDPOINTS`].
    fn evict(&mut self) {
        if self.cache.len() <= MAX_CACHED_ENDPOINTS {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = self
            .cache
            .iter()
            .map(|(e, (at, _))| (*at, e.clone()))
            .collect();
        by_age.sort_unstable();
        let excess = self.cache.len() - MAX_CACHED_ENDPOINTS;
        for (_, e) in by_age.into_iter().take(excess) {
            self.cache.remove(&e);
        }
    }
}

fn probe_agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A proxy from the environment would measure the proxy, not the provider.
        .proxy(None)
        .max_redirects(0)
        .build();
    ureq::Agent::new_with_config(config)
}

/// One probe: ms until any HTTP answer, `None` when the endpoint cannot be reached.
pub fn probe_once(agent: &ureq::Agent, endpoint: &str) -> Option<u32> {
    let url = format!("{}{PROBE_PATH}", endpoint.trim_end_matches('/'));
    let start = Instant::now();
    // Any status is an answer; the body is not read.
    agent.get(&url).call().ok()?;
    let ms = start.elapsed().as_millis();
    Some(u32::try_from(ms).unwrap_or(u32::MAX).max(1))
}
