//! Injected faults (`/_sim/faults`): extra latency, an error rate (500 / 503), a 429 storm,
//! dropping the connection after the server has acted. (410 on the next delta lives in
//! `graph::delta`.)
//!
//! Error rate and storm are decided per mailbox call by a deterministic generator (a counter
//! mixed with the configured seed), so a test that makes the same calls sees the same faults.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{GraphError, GraphResult};
use crate::state::{MAX_LATENCY_MS, SimState, lock};
use crate::throttle::MAX_RETRY_AFTER_S;

/// Largest `drop_connection.count`: more broken connections than any test needs.
pub const MAX_DROP_COUNT: u32 = 10_000;

/// The fault configuration, as `GET /_sim/faults` shows it and `PUT /_sim/faults` sets it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Added to every Graph and identity response (on top of `settings.latency_ms`); at most
    /// [`MAX_LATENCY_MS`].
    pub latency_ms: u64,
    /// Fraction (0..=1) of mailbox calls answered with `error_status`.
    pub error_rate: f64,
    /// 503 (default) or 500.
    pub error_status: Option<u16>,
    /// Overrides the error code of injected 500/503 answers.
    pub error_code: Option<String>,
    /// `Retry-After` of injected 503s (seconds, may be fractional, at most
    /// [`MAX_RETRY_AFTER_S`]; default "1").
    pub error_retry_after: Option<String>,
    /// Fraction (0..=1) of mailbox calls answered `429 TooManyRequests`.
    pub throttle_rate: f64,
    /// `Retry-After` of the storm's 429s (seconds, may be fractional like "0.5", at most
    /// [`MAX_RETRY_AFTER_S`]; default "1").
    pub throttle_retry_after: Option<String>,
    /// Only calls to this mailbox (address or id) get error-rate and storm faults.
    pub mailbox: Option<String>,
    /// Drop the connection of the next `count` matching requests after they were served.
    pub drop_connection: Option<DropRule>,
    /// Seed of the fault generator (same seed and same calls → same faults).
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropRule {
    /// How many more requests to break (default 1, at most [`MAX_DROP_COUNT`]).
    pub count: u32,
    /// Only requests whose path contains this (case-insensitive).
    pub path_contains: Option<String>,
    /// Only requests with this method (`POST`, `PATCH`, …).
    pub method: Option<String>,
}

impl Default for DropRule {
    fn default() -> Self {
        DropRule {
            count: 1,
            path_contains: None,
            method: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    cfg: std::sync::Mutex<Active>,
    counter: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Active {
    cfg: FaultConfig,
    /// `cfg.mailbox` resolved to a user id.
    mailbox: Option<Uuid>,
}

/// Problems with a fault configuration.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{0} must be between 0 and 1")]
    Rate(&'static str),
    #[error("error_status must be 500 or 503")]
    Status,
    #[error("{field} must be a number of seconds between 0 and {MAX_RETRY_AFTER_S}, not '{value}'")]
    RetryAfter { field: &'static str, value: String },
    #[error("{field} must be at most {max} (got {value})")]
    TooLarge {
        field: &'static str,
        max: u64,
        value: u64,
    },
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic number in [0, 1) for draw `n` under `seed`.
fn draw(seed: u64, n: u64) -> f64 {
    (splitmix(seed ^ splitmix(n)) >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(FaultError::Rate("error_rate"));
        }
        if !(0.0..=1.0).contains(&self.throttle_rate) {
            return Err(FaultError::Rate("throttle_rate"));
        }
        if !matches!(self.error_status, None | Some(500) | Some(503)) {
            return Err(FaultError::Status);
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(FaultError::TooLarge {
                field: "latency_ms",
                max: MAX_LATENCY_MS,
                value: self.latency_ms,
            });
        }
        if let Some(d) = self
            .drop_connection
            .as_ref()
            .filter(|d| d.count > MAX_DROP_COUNT)
        {
            return Err(FaultError::TooLarge {
                field: "drop_connection.count",
                max: u64::from(MAX_DROP_COUNT),
                value: u64::from(d.count),
            });
        }
        for (field, ra) in [
            ("error_retry_after", &self.error_retry_after),
            ("throttle_retry_after", &self.throttle_retry_after),
        ] {
            if let Some(ra) = ra
                && crate::throttle::parse_retry_after(ra).is_none()
            {
                return Err(FaultError::RetryAfter {
                    field,
                    value: ra.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Faults {
    /// Replaces the configuration (`mailbox` already resolved by the caller).
    pub fn set(&self, cfg: FaultConfig, mailbox: Option<Uuid>) {
        *lock(&self.cfg) = Active { cfg, mailbox };
        self.counter.store(0, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.set(FaultConfig::default(), None);
    }

    pub fn config(&self) -> FaultConfig {
        lock(&self.cfg).cfg.clone()
    }

    /// Connections broken so far.
    pub fn dropped_connections(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Called for every mailbox call after authorization and throttling.
    pub async fn before_mailbox_call(
        &self,
        st: &Arc<SimState>,
        app: Uuid,
        mailbox: Uuid,
    ) -> GraphResult<()> {
        let err = {
            let a = lock(&self.cfg);
            let c = &a.cfg;
            if c.error_rate <= 0.0 && c.throttle_rate <= 0.0 {
                return Ok(());
            }
            if a.mailbox.is_some_and(|m| m != mailbox) {
                return Ok(());
            }
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let x = draw(c.seed, n);
            if x < c.throttle_rate {
                let ra = c.throttle_retry_after.clone().unwrap_or_else(|| "1".into());
                Some(crate::throttle::too_many_requests(ra))
            } else if x < c.throttle_rate + c.error_rate {
                Some(injected_error(c))
            } else {
                None
            }
        };
        match err {
            Some(e) => {
                st.throttle.note_fault(st, app, mailbox, &e);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Extra latency to add to every non-control response.
    pub fn extra_latency_ms(&self) -> u64 {
        lock(&self.cfg).cfg.latency_ms
    }

    /// Whether to break the connection of this (already served) request. Sub-requests of a
    /// `$batch` are never broken (the batch's own connection is).
    pub fn take_drop_connection(&self, method: &str, path: &str) -> bool {
        if crate::graph::batch::in_batch() {
            return false;
        }
        let mut a = lock(&self.cfg);
        let Some(rule) = a.cfg.drop_connection.as_mut() else {
            return false;
        };
        if rule.count == 0 {
            return false;
        }
        if rule
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        if rule
            .path_contains
            .as_deref()
            .is_some_and(|p| !path.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
        {
            return false;
        }
        rule.count -= 1;
        if rule.count == 0 {
            a.cfg.drop_connection = None;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn injected_error(c: &FaultConfig) -> GraphError {
    match c.error_status {
        Some(500) => GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            c.error_code.as_deref().unwrap_or("generalException"),
            "An unspecified error has occurred.",
        ),
        _ => GraphError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            c.error_code.as_deref().unwrap_or("serviceNotAvailable"),
            "The service is temporarily unavailable for maintenance or is overloaded. \
             You may repeat the request after a delay, which may be specified in a Retry-After header.",
        )
        .with_retry_after(c.error_retry_after.clone().unwrap_or_else(|| "1".into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_and_spread() {
        let a: Vec<f64> = (0..1000).map(|n| draw(42, n)).collect();
        let b: Vec<f64> = (0..1000).map(|n| draw(42, n)).collect();
        assert_eq!(a, b);
        let below_half = a.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&below_half), "{below_half}");
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn validation() {
        let mut c = FaultConfig {
            error_rate: 1.5,
            ..FaultConfig::default()
        };
        assert!(c.validate().is_err());
        c.error_rate = 0.5;
        c.throttle_retry_after = Some("0.5".into());
        assert!(c.validate().is_ok());
        c.throttle_retry_after = Some("soon".into());
        assert!(c.validate().is_err());
        c.throttle_retry_after = None;
        c.latency_ms = MAX_LATENCY_MS;
        assert!(c.validate().is_ok());
        c.latency_ms = 1 << 63;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("latency_ms") && e.contains("120000"), "{e}");
        c.latency_ms = 0;
        c.drop_connection = Some(DropRule {
            count: MAX_DROP_COUNT + 1,
            ..DropRule::default()
        });
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("drop_connection.count"), "{e}");
    }
}
