//! Decoding on other cores while the caller runs the rules.
//!
//! ```text
//!  push(raw) ──▶ tokio blocking pool: Decoder::decode ──▶ next() ──▶ (raw, decoded), in push order
//! ```
//!
//! [`DecodeAhead`] keeps up to `depth` batches in flight, each decoded on tokio's blocking pool
//! by a decoder of its feed taken from a small pool (a second decoder of a feed is made when
//! two of its batches are in flight). Batches come back in the order they were pushed, so
//! watermarks and lateness are exactly those of decoding in line.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{Decoded, Decoder};
use crate::privacy::Pseudonymizer;
use crate::record::RawBatch;
use crate::source::Source;

/// A raw batch with what decoding made of it.
pub type DecodedBatch = (RawBatch, Decoded);

/// Decodes raw batches ahead of their use, on tokio's blocking pool; see the module docs.
pub struct DecodeAhead {
    pseudonymizer: Arc<Pseudonymizer>,
    idle: Vec<Decoder>,
    in_flight: VecDeque<JoinHandle<(Decoder, DecodedBatch)>>,
    depth: usize,
    /// [`DecodeAhead::next_from`]'s source has ended (reset when it returns `None`).
    source_ended: bool,
}

impl std::fmt::Debug for DecodeAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeAhead")
            .field("in_flight", &self.in_flight.len())
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl DecodeAhead {
    /// Keeps at most `depth` (at least 1) batches in flight.
    pub fn new(pseudonymizer: Arc<Pseudonymizer>, depth: usize) -> Self {
        Self {
            pseudonymizer,
            idle: Vec::new(),
            in_flight: VecDeque::new(),
            depth: depth.max(1),
            source_ended: false,
        }
    }

    /// Decodes `raw` now, on the caller's thread (for callers that need each batch's result
    /// before reading the next, like the Kafka service).
    pub fn decode_now(&mut self, raw: &RawBatch) -> Decoded {
        let mut decoder = self.decoder(raw);
        let decoded = decoder.decode(raw);
        self.idle.push(decoder);
        decoded
    }

    /// Whether `depth` batches are in flight (call [`DecodeAhead::next`] before pushing more).
    pub fn is_full(&self) -> bool {
        self.in_flight.len() >= self.depth
    }

    /// Whether no batch is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Starts decoding `raw` on the blocking pool. Must be called within a tokio runtime.
    pub fn push(&mut self, raw: RawBatch) {
        let mut decoder = self.decoder(&raw);
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                let decoded = decoder.decode(&raw);
                (decoder, (raw, decoded))
            }));
    }

    /// The oldest batch pushed and not yet returned, once decoded; `None` when none is in flight.
    ///
    /// Cancel-safe: dropped before it completes, the batch stays first in line.
    pub async fn next(&mut self) -> Option<DecodedBatch> {
        if self.in_flight.is_empty() {
            return None;
        }
        let (decoder, batch) = oldest(&mut self.in_flight).await;
        self.idle.push(decoder);
        Some(batch)
    }

    /// The next batch of `source`, decoded: reads ahead while batches are decoding, up to
    /// `depth`, but never waits for the source while a decoded batch is ready (a paced source
    /// does not hold back what it already delivered). `Ok(None)` once the source has ended and
    /// every batch was returned; the next call then starts on a new source.
    ///
    /// # Errors
    /// The source's; batches already in flight stay in line.
    ///
    /// # Cancellation
    /// Cancel-safe, as [`Source::next_batch`] is.
    pub async fn next_from(
        &mut self,
        source: &mut dyn Source,
    ) -> crate::Result<Option<DecodedBatch>> {
        enum Step {
            Read(Option<RawBatch>),
            Decoded((Decoder, DecodedBatch)),
        }
        loop {
            let step = if self.in_flight.is_empty() {
                if self.source_ended {
                    self.source_ended = false;
                    return Ok(None);
                }
                Step::Read(source.next_batch().await?)
            } else if self.source_ended || self.is_full() {
                Step::Decoded(oldest(&mut self.in_flight).await)
            } else {
                // Reading first keeps the decoders busy when the source has more at hand.
                tokio::select! {
                    biased;
                    next = source.next_batch() => Step::Read(next?),
                    done = oldest(&mut self.in_flight) => Step::Decoded(done),
                }
            };
            match step {
                Step::Read(Some(raw)) => self.push(raw),
                Step::Read(None) => self.source_ended = true,
                Step::Decoded((decoder, batch)) => {
                    self.idle.push(decoder);
                    return Ok(Some(batch));
                }
            }
        }
    }

    fn decoder(&mut self, raw: &RawBatch) -> Decoder {
        match self.idle.iter().position(|d| *d.feed() == raw.feed) {
            Some(i) => self.idle.swap_remove(i),
            None => Decoder::new(raw.feed.clone(), Arc::clone(&self.pseudonymizer)),
        }
    }
}

/// Waits for the oldest batch in flight (there must be one) and takes it out of the queue.
async fn oldest(
    in_flight: &mut VecDeque<JoinHandle<(Decoder, DecodedBatch)>>,
) -> (Decoder, DecodedBatch) {
    let handle = in_flight.front_mut().expect("a batch in flight");
    // Decoding never panics (bad records become dead letters); if it did, the panic is the
    // caller's, as if it had decoded in line.
    let done = handle
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    in_flight.pop_front();
    done
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::catalog::Catalog;
    use crate::feed::Feed;
    use crate::record::{Origin, RawRecord};

    fn city(name: &str) -> Feed {
        Catalog::city().table(name).expect("a city feed").clone()
    }

    fn batch(feed: Feed, first_line: u64, lines: &[&str]) -> RawBatch {
        RawBatch {
            feed,
            records: lines
                .iter()
                .zip(first_line..)
                .map(|(l, line)| RawRecord {
                    payload: Bytes::copy_from_slice(l.as_bytes()),
                    origin: Origin::File {
                        path: "t".into(),
                        line,
                    },
                })
                .collect(),
        }
    }

    /// Batches of several feeds pushed faster than they are taken come back in push order,
    /// each decoded as decoding in line decodes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_come_back_in_push_order_decoded_as_in_line() {
        let ok = r#"{"event_id":"p1","ts":"2026-03-02T06:00:00Z","lat":30.2,"lon":120.1,"incident_id":"I1","category":"theft","priority":2,"reporter_phone":"13800000000"}"#;
        let bad = r#"{"event_id":"p2","ts":"yesterday","lat":30.2,"lon":120.1}"#;
        let traffic = r#"{"event_id":"t1","ts":1772431198244,"lat":30.28,"lon":120.12,"sensor_id":"S1","road_id":"R1","speed_kmh":28.7,"vehicle_count":3,"occupancy":0.5,"plate":"沪A1","kind":"flow"}"#;
        let batches: Vec<RawBatch> = (0..12u64)
            .map(|i| match i % 3 {
                0 => batch(city("police"), i * 10, &[ok, bad, ok]),
                1 => batch(city("traffic"), i * 10, &[traffic, traffic]),
                _ => batch(city("police"), i * 10, &[bad]),
            })
            .collect();
        let pseudonymizer = Arc::new(Pseudonymizer::new(b"test key"));
        let mut in_line = DecodeAhead::new(Arc::clone(&pseudonymizer), 1);
        let mut ahead = DecodeAhead::new(pseudonymizer, 4);
        let mut returned = Vec::new();
        for raw in batches.iter().cloned() {
            if ahead.is_full() {
                returned.push(ahead.next().await.expect("a batch in flight"));
            }
            ahead.push(raw);
        }
        while let Some(b) = ahead.next().await {
            returned.push(b);
        }
        assert!(ahead.is_empty());
        assert_eq!(returned.len(), batches.len());
        for (raw, (back, decoded)) in batches.iter().zip(&returned) {
            assert_eq!(back.records[0].origin, raw.records[0].origin);
            let expected = in_line.decode_now(raw);
            assert_eq!(decoded.batch, expected.batch);
            assert_eq!(decoded.rows, expected.rows);
            assert_eq!(decoded.dead.len(), expected.dead.len());
        }
        // Every police batch held a malformed record, and it was reported.
        assert!(returned.iter().step_by(3).all(|(_, d)| d.dead.len() == 1));
    }
}
