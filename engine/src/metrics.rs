//! The service's metrics: every name in one place, a Prometheus endpoint, and the
//! ingest-to-acknowledged latency kept in an HDR histogram.
//!
//! `GET /metrics` on `[metrics] listen` (default 127.0.0.1:9464) serves Prometheus text format
//! through the engine's HTTP server ([`crate::http`]: size and time limits, many connections).
//! Metrics are recorded with the `metrics` crate; the recorder is
//! `metrics-exporter-prometheus`'s, rendered on request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use hdrhistogram::Histogram;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Result};
use crate::http::HttpLimits;

/// Metric names (all prefixed `citybrain_`) and their labels.
pub mod names {
    /// Counter, label `feed`: well-formed events read.
    pub const EVENTS_IN: &str = "citybrain_events_in_total";
    /// Counter, label `feed`: malformed records sent to the dead-letter topic.
    pub const MALFORMED: &str = "citybrain_malformed_total";
    /// Counter, labels `feed`, `source` (`topic/partition`): records set aside as dated too
    /// far ahead of the wall clock or of their source (reason `future`).
    pub const FUTURE: &str = "citybrain_future_total";
    /// Counter, label `rule`: late events (their window was already emitted).
    pub const LATE: &str = "citybrain_late_total";
    /// Counter, label `rule`: alerts produced.
    pub const ALERTS: &str = "citybrain_alerts_total";
    /// Counter, label `rule`: times the rule failed while running (an execution error, a
    /// panic, one of its limits exceeded) and was stopped alone (a `rule_failed` dead letter
    /// each time).
    pub const RULE_FAILURES: &str = "citybrain_rule_failures_total";
    /// Gauge: rules stopped after failing, until their file changes.
    pub const RULES_STOPPED: &str = "citybrain_rules_stopped";
    /// Gauge, labels `topic`, `partition`: high watermark minus committed offset.
    pub const CONSUMER_LAG: &str = "citybrain_consumer_lag";
    /// Gauge, label `feed`: wall clock minus the feed's watermark, seconds.
    pub const WATERMARK_DELAY: &str = "citybrain_watermark_delay_seconds";
    /// Gauge, label `rule`: rows (or partial aggregate states) held for windows not yet
    /// emitted, what a rule's memory grows with.
    pub const STATE_ROWS: &str = "citybrain_rule_state_rows";
    /// Summary: records per batch taken from the source.
    pub const BATCH_RECORDS: &str = "citybrain_batch_records";
    /// Gauge: records produced but not yet acknowledged by the broker.
    pub const IN_FLIGHT: &str = "citybrain_outputs_in_flight";
    /// Counter: times consumption paused because too many outputs were in flight.
    pub const BACKPRESSURE_PAUSES: &str = "citybrain_backpressure_pauses_total";
    /// Gauge, label `quantile` (`0.5`, `0.99`): seconds from ingesting the batch that produced
    /// an alert to the broker acknowledging the alert (HDR histogram since start).
    pub const ALERT_LATENCY: &str = "citybrain_alert_latency_seconds";
    /// Counter: alerts whose latency was measured.
    pub const ALERT_LATENCY_COUNT: &str = "citybrain_alert_latency_seconds_count";
    /// Counter, label `type` (`opened`, `escalated`, ...): incident events.
    pub const INCIDENT_EVENTS: &str = "citybrain_incident_events_total";
    /// Gauge, label `level`: incidents not closed or voided, by the level holding them.
    pub const INCIDENTS_OPEN: &str = "citybrain_incidents_open";
    /// Gauge: incidents not closed or voided whose deadline passed.
    pub const INCIDENTS_OVERDUE: &str = "citybrain_incidents_overdue";
}

/// Ingest-to-acknowledged latency of alerts, in microseconds, 1 µs to 1 hour, 3 digits.
#[derive(Debug)]
pub struct Latency {
    hist: Mutex<Histogram<u64>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            hist: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl Latency {
    /// Records one alert's latency.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.hist
            .lock()
            .expect("latency lock")
            .saturating_record(us.max(1));
    }

    /// (p50, p99, count) in seconds.
    pub fn quantiles(&self) -> (f64, f64, u64) {
        let h = self.hist.lock().expect("latency lock");
        let s = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
        (s(0.5), s(0.99), h.len())
    }

    fn publish(&self) {
        let (p50, p99, n) = self.quantiles();
        metrics::gauge!(names::ALERT_LATENCY, "quantile" => "0.5").set(p50);
        metrics::gauge!(names::ALERT_LATENCY, "quantile" => "0.99").set(p99);
        metrics::counter!(names::ALERT_LATENCY_COUNT).absolute(n);
    }
}

/// The installed recorder and the latency histogram.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// Alert latency, observed by the producer's delivery callback.
    pub latency: Arc<Latency>,
}

impl Metrics {
    /// Installs the global recorder (once per process) and, when `listen` is not empty, serves
    /// `/metrics` there on the engine's HTTP server ([`crate::http::serve`], within `limits`)
    /// until the process ends. Returns the address actually bound (port 0 picks a free port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn install(listen: &str, limits: &HttpLimits) -> Result<(Self, Option<SocketAddr>)> {
        let metrics = Self::recorder();
        if listen.is_empty() {
            return Ok((metrics, None));
        }
        let error = |source| Error::Metrics {
            addr: listen.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(error)?;
        let addr = listener.local_addr().map_err(error)?;
        let router = metrics.router();
        let limits = limits.clone();
        tokio::spawn(async move {
            crate::http::serve(listener, router, &limits, std::future::pending()).await;
        });
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        Ok((metrics, Some(addr)))
    }

    /// The global recorder, installed on first use (a detached one when another recorder is
    /// installed already, as in tests).
    pub fn recorder() -> Self {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        Self {
            handle,
            latency: Arc::new(Latency::default()),
        }
    }

    /// `GET /metrics` (Prometheus text format); anything else is 404.
    pub fn router(&self) -> Router {
        let metrics = self.clone();
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let metrics = metrics.clone();
                    async move {
                        (
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            metrics.render(),
                        )
                    }
                }),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
    }

    /// The current metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.latency.publish();
        self.handle.run_upkeep();
        self.handle.render()
    }
}
