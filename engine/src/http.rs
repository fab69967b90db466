//! The engine's HTTP server: `/metrics` now, the incident API and the console on the same
//! kind of server.
//!
//! ```text
//!  TcpListener ──accept (at most max_connections open)──▶ one task per connection
//!      hyper HTTP/1.1: request head ≤ max_head_bytes (else 431), head within idle_timeout
//!      (a silent or slow client, or an idle keep-alive connection, is closed)
//!        └─▶ tower layers: request timeout (408) ─▶ body ≤ max_body_bytes (413) ─▶ Router
//! ```
//!
//! Limits are layers and connection settings, never code in handlers: a handler sees only
//! requests that fit. Each connection runs on its own task, so a slow client holds one
//! connection slot, not the server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Limits of every HTTP server of the engine (the `[http]` table of the service's TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Most bytes of a request's head (request line and headers); a larger one is refused
    /// with 431 and the connection closed. Default 16,384: browsers send a few hundred bytes,
    /// Prometheus fewer.
    pub max_head_bytes: usize,
    /// Most bytes of a request body; a larger one is refused with 413. Default 1,048,576 (the
    /// incident API's largest request is a few KB).
    pub max_body_bytes: usize,
    /// Longest a handler may take to answer (its response's head), milliseconds; then 408.
    /// A response streamed after its head (server-sent events) is not cut. Default 10,000.
    pub request_timeout_ms: u64,
    /// Longest a connection may wait for a request head to arrive in full, milliseconds: a
    /// client that sends nothing, trickles its head, or keeps an idle connection open is
    /// disconnected then. Default 10,000 (Prometheus scrapes every 15 s on a new request).
    pub idle_timeout_ms: u64,
    /// Most connections open at once; more wait to be accepted. Default 256.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 10_000,
            idle_timeout_ms: 10_000,
            max_connections: 256,
        }
    }
}

/// hyper's smallest read buffer; the head limit is enforced separately.
const MIN_READ_BUFFER: usize = 8192;

impl HttpLimits {
    /// Every problem of these limits, each naming its key under `[http]`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_head_bytes < 1024 {
            out.push("http.max_head_bytes: must be at least 1024".into());
        }
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_connections", self.max_connections),
        ] {
            if value == 0 {
                out.push(format!("http.{key}: must be at least 1"));
            }
        }
        for (key, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ] {
            if value == 0 {
                out.push(format!("http.{key}: must be at least 1"));
            }
        }
        out
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, within `limits`; then stops
/// accepting, lets requests in progress finish (each within the request timeout) and returns.
///
/// # Cancellation
/// Dropping the future stops accepting at once; connections already open finish on their
/// own tasks.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let router = router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.idle_timeout_ms))
        .max_header_size(limits.max_head_bytes)
        .max_buf_size(limits.max_head_bytes.max(MIN_READ_BUFFER));
    let http = Arc::new(http);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stopping = CancellationToken::new();
    let local = listener.local_addr().ok();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(addr = ?local, error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let http = Arc::clone(&http);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Oversized heads, timeouts and clients going away end here: routine.
                tracing::debug!(%peer, error = %e, "http: connection ended");
            }
            drop(slot);
        });
    }
    stopping.cancel();
    // Every slot back: each connection has finished.
    let _all = slots
        .acquire_many(u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_problem_is_named() {
        assert!(HttpLimits::default().problems().is_empty());
        let bad = HttpLimits {
            max_head_bytes: 10,
            max_body_bytes: 0,
            request_timeout_ms: 0,
            idle_timeout_ms: 0,
            max_connections: 0,
        };
        assert_eq!(bad.problems().len(), 5, "{:?}", bad.problems());
    }
}
