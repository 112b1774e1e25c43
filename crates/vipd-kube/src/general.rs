//! The general-purpose API client (events now, Services later), separate
//! from the lease client so it can never starve lease traffic (SPEC R6):
//! its own `kube::Client` (own connection pool, own connections), its own
//! token-bucket rate limit (`--kube-api-qps` / `--kube-api-burst`, like
//! client-go's `rest.Config.QPS`/`Burst`) and its own timeout
//! (`--kube-api-timeout`).

use crate::client::{ApiEndpoints, Credentials};
use crate::connection::{is_connection_error, Dialer};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Rate limits and timeout of the general client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeneralOptions {
    /// Sustained requests per second (`--kube-api-qps`, e.g. 50).
    pub qps: f64,
    /// Requests allowed at once after a quiet period (`--kube-api-burst`,
    /// e.g. 100).
    pub burst: u32,
    /// Bound on each request including the wait for a token
    /// (`--kube-api-timeout`, e.g. 30 s).
    pub timeout: Duration,
}

impl Default for GeneralOptions {
    /// The documented examples: QPS 50, burst 100, 30 s.
    fn default() -> Self {
        GeneralOptions {
            qps: 50.0,
            burst: 100,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A token bucket (sans-IO: the caller passes the time). Starts full.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `qps` per second. A
    /// non-positive `qps` means unlimited; `burst` is at least 1.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token: `Ok(())`, or `Err(wait)` — how long until one is
    /// available (nothing is taken then).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let limited = self.qps.is_finite() && self.qps > 0.0;
        if !limited {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Why a general request failed.
#[derive(Debug, thiserror::Error)]
pub enum GeneralError {
    /// Rate limit wait plus request exceeded the timeout.
    #[error("API request timed out after {0:?}")]
    Timeout(Duration),
    /// The API answered with an error or could not be reached.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The rate-limited general client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct GeneralClient {
    dialer: Dialer,
    opts: GeneralOptions,
    bucket: Mutex<TokenBucket>,
}

impl GeneralClient {
    /// A client over `endpoints` with `credentials`. Does not connect.
    pub fn new(credentials: Credentials, endpoints: &ApiEndpoints, opts: GeneralOptions) -> Self {
        GeneralClient {
            dialer: Dialer::new(credentials, endpoints, opts.timeout, "general"),
            bucket: Mutex::new(TokenBucket::new(opts.qps, opts.burst, Instant::now())),
            opts,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &GeneralOptions {
        &self.opts
    }

    async fn take_token(&self) {
        loop {
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                match b.try_take(Instant::now()) {
                    Ok(()) => return,
                    Err(w) => w,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs `f` with the current client after taking a rate-limit token,
    /// bounded by the timeout (token wait included). A connection error or
    /// timeout drops the client so the next call re-dials (R6).
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, GeneralError>
    where
        F: FnOnce(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut generation = None;
        let res = tokio::time::timeout(self.opts.timeout, async {
            self.take_token().await;
            let lent = self.dialer.client()?;
            generation = Some(lent.generation);
            let r = f(lent.client).await;
            match &r {
                Err(e) if is_connection_error(e) => self.dialer.failed(lent.generation),
                _ => self.dialer.succeeded(lent.generation),
            }
            r.map_err(GeneralError::from)
        })
        .await;
        match res {
            Ok(r) => r,
            Err(_) => {
                if let Some(g) = generation {
                    self.dialer.failed(g);
                }
                Err(GeneralError::Timeout(self.opts.timeout))
            }
        }
    }

    /// Lends the current client to a long-running request (a watch) after
    /// taking a rate-limit token, with NO overall timeout: `f` must bound
    /// itself (a watch by its `timeoutSeconds` plus a grace period). An error
    /// from `f` that is a connection error (`kube::Error::Service`,
    /// `HyperError`, `ReadEvents`) drops the client so the next call
    /// re-dials (R6); `f` reports a stream that went silent past its bound
    /// the same way, by returning `kube::Error::Service`.
    ///
    /// The token is taken like any request's: a burst of writes on this
    /// client delays (re-)establishing a watch by at most the bucket's
    /// refill time, never the events of a watch already open.
    pub async fn streaming<T, F, Fut>(&self, f: F) -> Result<T, GeneralError>
    where
        F: FnOnce(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.take_token().await;
        let lent = self.dialer.client()?;
        let r = f(lent.client).await;
        match &r {
            Err(e) if is_connection_error(e) => self.dialer.failed(lent.generation),
            _ => self.dialer.succeeded(lent.generation),
        }
        r.map_err(GeneralError::from)
    }

    /// Drops the cached client.
    pub fn reset(&self) {
        self.dialer.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_paces_at_qps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50.0, 100, t0);
        for i in 0..100 {
            assert_eq!(b.try_take(t0), Ok(()), "burst token {i}");
        }
        let wait = b.try_take(t0).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_millis(20));
        // One token per 1/qps.
        assert_eq!(b.try_take(t0 + Duration::from_millis(20)), Ok(()));
        assert!(b.try_take(t0 + Duration::from_millis(21)).is_err());
        // A long pause refills to burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..100 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_with_zero_qps_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 1, t0);
        for _ in 0..1000 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn client_waits_for_tokens_in_virtual_time() {
        // 2 qps, burst 2: the 5th token is due 1.5 s after the start.
        let cfg = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let creds = Credentials::from_config(cfg, crate::client::CredentialSource::InCluster);
        let eps = ApiEndpoints::plan(
            &crate::client::EndpointInputs::new(
                None,
                6443,
                false,
                "192.0.2.1".parse().expect("ip"),
            ),
            &"http://127.0.0.1:9".parse().expect("uri"),
            None,
        )
        .expect("plan");
        let c = GeneralClient::new(
            creds,
            &eps,
            GeneralOptions {
                qps: 2.0,
                burst: 2,
                timeout: Duration::from_secs(30),
            },
        );
        let t0 = Instant::now();
        for _ in 0..5 {
            c.take_token().await;
        }
        assert_eq!(Instant::now() - t0, Duration::from_millis(1500));
    }
}
