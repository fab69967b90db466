//! librdkafka's logs and errors, without the flood.
//!
//! Without a broker librdkafka reports every failed connection attempt twice (a log line and
//! an error callback), some ten times a second: issue 11 counted ~900 ERROR lines in 50 s.
//! [`ClientLog`] passes each kind of message on once, at its level (a broker that cannot be
//! reached is one clear error naming the bootstrap servers), then at `debug` only, with a
//! `warn` summary of how many were held back at most once a minute while they go on.
//!
//! A *kind* is the message with its numbers taken out ("after 12ms in state CONNECT" and "after
//! 0ms" are one kind), keyed with the facility or error code; a broker that cannot be reached is
//! one kind however librdkafka words it. Kinds are shared by the process's clients (the
//! consumer and the producer fail to connect together), and librdkafka's own `FAIL` log lines
//! go to `debug`: the error callback reports the same failures.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A client context that does nothing but pass librdkafka's logs and errors through a
/// [`ClientLog`]: for helper clients (metadata probes, admin clients, the control topic's
/// marks), so that an unreachable broker is reported by them as by the long-lived ones.
pub struct LoggedContext(pub ClientLog);

impl rdkafka::ClientContext for LoggedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for LoggedContext {}

/// Delivery reports are not looked at (the control topic's marks).
impl rdkafka::producer::ProducerContext for LoggedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// How often a repeated message is summarised.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Kinds remembered; past this many (a client logging endlessly varied text) every message is
/// passed on as it comes.
const MAX_KINDS: usize = 256;

#[derive(Debug)]
struct Seen {
    /// Repeats held back since the last summary.
    held: u64,
    last_summary: Instant,
}

/// Kinds of message seen by any client of this process.
static SEEN: LazyLock<Mutex<HashMap<String, Seen>>> = LazyLock::new(Mutex::default);

/// Rate-limited forwarding of one client's librdkafka logs and errors to `tracing`.
#[derive(Debug)]
pub struct ClientLog {
    brokers: String,
}

impl ClientLog {
    /// For a client of `brokers` (the `bootstrap.servers` value, named in messages).
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
        }
    }

    /// `ClientContext::log`: librdkafka's log lines.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::Level::ERROR,
            RDKafkaLogLevel::Warning => tracing::Level::WARN,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::Level::INFO,
            RDKafkaLogLevel::Debug => tracing::Level::DEBUG,
        };
        // A failed connection: the error callback says so too (see `ClientLog::error`).
        if level == tracing::Level::DEBUG || fac == "FAIL" {
            tracing::debug!(target: "librdkafka", fac, "{message}");
            return;
        }
        let brokers = self.brokers.as_str();
        match admit(&format!("{brokers} {fac} {}", kind(message))) {
            Admit::First => emit(level, brokers, fac, message),
            Admit::Held => tracing::debug!(target: "librdkafka", fac, "{message}"),
            Admit::Summary(n) => tracing::warn!(
                target: "librdkafka",
                brokers,
                fac,
                repeats = n,
                "still: {message} ({n} more like it in the last minute, shown at debug level)"
            ),
        }
    }

    /// `ClientContext::error`: librdkafka's error callback.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let brokers = self.brokers.as_str();
        let unreachable = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::Resolve
            )
        );
        let key = if unreachable {
            // Connection refused, name not resolved, all brokers down: one outage, one line.
            format!("{brokers} unreachable")
        } else {
            format!("{brokers} {error} {}", kind(reason))
        };
        match admit(&key) {
            Admit::First if unreachable => tracing::error!(
                brokers,
                reason,
                "cannot reach the Kafka broker(s) {brokers}; retrying in the background \
                 (repeats at debug level, a summary every minute)"
            ),
            Admit::First => tracing::error!(brokers, error = %error, "kafka: {reason}"),
            Admit::Held => tracing::debug!(brokers, error = %error, "kafka: {reason}"),
            Admit::Summary(n) => tracing::warn!(
                brokers,
                repeats = n,
                "kafka: still {reason} ({n} more like it in the last minute)"
            ),
        }
    }
}

/// Whether a message of kind `key` is shown now.
fn admit(key: &str) -> Admit {
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    if let Some(s) = seen.get_mut(key) {
        if now.duration_since(s.last_summary) < SUMMARY_EVERY {
            s.held += 1;
            return Admit::Held;
        }
        let n = std::mem::take(&mut s.held) + 1;
        s.last_summary = now;
        return Admit::Summary(n);
    }
    if seen.len() < MAX_KINDS {
        seen.insert(
            key.to_string(),
            Seen {
                held: 0,
                last_summary: now,
            },
        );
    }
    Admit::First
}

enum Admit {
    First,
    Held,
    /// The n-th repeat since the last line at a visible level.
    Summary(u64),
}

fn emit(level: tracing::Level, brokers: &str, fac: &str, message: &str) {
    match level {
        tracing::Level::ERROR => tracing::error!(target: "librdkafka", brokers, fac, "{message}"),
        tracing::Level::WARN => tracing::warn!(target: "librdkafka", brokers, fac, "{message}"),
        _ => tracing::info!(target: "librdkafka", brokers, fac, "{message}"),
    }
}

/// `message` with runs of digits replaced by `#`.
fn kind(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_do_not_make_a_new_kind() {
        assert_eq!(
            kind("127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed (after 12ms)"),
            kind("127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed (after 0ms)")
        );
    }

    #[test]
    fn a_repeated_message_passes_once_then_is_held() {
        let (a, b) = ("test-kind-a", "test-kind-b");
        assert!(matches!(admit(a), Admit::First));
        for _ in 0..100 {
            assert!(matches!(admit(a), Admit::Held));
        }
        assert!(matches!(admit(b), Admit::First));
        // A minute later the repeats are summarised.
        SEEN.lock()
            .expect("lock")
            .get_mut(a)
            .expect("seen")
            .last_summary = Instant::now()
            .checked_sub(SUMMARY_EVERY)
            .expect("the clock is past its first minute");
        assert!(matches!(admit(a), Admit::Summary(101)));
        assert!(matches!(admit(a), Admit::Held));
    }
}
