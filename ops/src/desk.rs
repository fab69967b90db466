//! The incident desk: the [`Book`] at work, shared by the engine (alerts, the clock, actions
//! from files or Kafka) and the HTTP API (reads, actions, the live stream).
//!
//! ```text
//!  engine: alerts + watermark ─┐                      ┌─▶ Outputs (events, table, CAP, terminal)
//!  actions (file, Kafka) ──────┼─▶ Desk::ingest ─▶ Book ┼─▶ in-memory log (API: events, timeline, at=)
//!  API: POST actions ──────────┘   (one writer         └─▶ broadcast (API: /api/stream)
//!  tick (live clock) ──────────────  at a time)
//! ```
//!
//! One writer at a time (a `tokio` mutex around the outputs) keeps the log, the outputs and
//! the sequence numbers in one order; readers take the book's read lock only.
//!
//! **One clock, two modes.** In [`ClockMode::EventTime`] (replay, the simulator demo) the clock
//! is the watermark the engine reports; in [`ClockMode::Live`] it is the larger of the
//! watermark and wall time minus a bound, so a quiet feed never freezes escalation.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::access::Access;
use crate::correlate::RuleProfile;
use crate::error::Result;
use crate::incident::{Action, AlertIn, Book, Context, Incident, IncidentEvent, Refusal};
use crate::store::Outputs;
use crate::time::{HOUR, Ms, rfc3339};

/// Where the desk's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The watermark only: deterministic back-tests.
    EventTime,
    /// The larger of the watermark and wall time minus `bound_ms`.
    Live {
        /// How far behind wall time the clock may stay, ms.
        bound_ms: Ms,
    },
}

/// Settings of a desk.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// The clock.
    pub clock: ClockMode,
    /// CAP messages are `Exercise` (replays) rather than `Actual`.
    pub exercise: bool,
    /// Events kept in memory for the API (event list, timelines, time travel). Default 1,000,000.
    pub log_capacity: usize,
    /// The heat layer counts alerts per cell over this much event time. Default one hour.
    pub heat_window_ms: Ms,
}

impl Default for DeskConfig {
    fn default() -> Self {
        Self {
            clock: ClockMode::EventTime,
            exercise: false,
            log_capacity: 1_000_000,
            heat_window_ms: HOUR,
        }
    }
}

/// Something the live stream carries.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A new incident event.
    Event(Arc<IncidentEvent>),
    /// The heat layer changed (the `/api/cells` document).
    Cells(Arc<Value>),
}

/// What one [`Desk::ingest`] did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// The events it produced, in order.
    pub events: Vec<Arc<IncidentEvent>>,
    /// Actions refused (nothing changed), with the reason.
    pub refused: Vec<(Action, Refusal)>,
}

#[derive(Debug, Default)]
struct Heat {
    window: VecDeque<(Ms, String)>,
    counts: BTreeMap<String, u64>,
    at: Ms,
}

impl Heat {
    fn add(&mut self, at: Ms, cell: &str) {
        self.window.push_back((at, cell.to_string()));
        *self.counts.entry(cell.to_string()).or_default() += 1;
    }

    fn expire(&mut self, now: Ms, window: Ms) {
        self.at = self.at.max(now);
        while let Some((t, _)) = self.window.front() {
            if *t > now - window {
                break;
            }
            let (_, cell) = self.window.pop_front().expect("front exists");
            if let Some(n) = self.counts.get_mut(&cell) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&cell);
                }
            }
        }
    }

    fn document(&self) -> Value {
        json!({
            "at": rfc3339(self.at),
            "cells": self.counts.iter().map(|(c, n)| json!({"cell": c, "value": n})).collect::<Vec<_>>(),
        })
    }
}

/// The incident desk.
pub struct Desk {
    ctx: RwLock<Arc<Context>>,
    book: RwLock<Book>,
    log: RwLock<VecDeque<Arc<IncidentEvent>>>,
    heat: Mutex<Heat>,
    stream: broadcast::Sender<StreamItem>,
    outputs: tokio::sync::Mutex<Outputs>,
    access: Access,
    config: DeskConfig,
    watermark: AtomicI64,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// A desk over `ctx`, writing to `outputs`, serving callers of `access`.
    pub fn new(ctx: Context, access: Access, config: DeskConfig, outputs: Outputs) -> Arc<Self> {
        let (stream, _) = broadcast::channel(4096);
        Arc::new(Self {
            ctx: RwLock::new(Arc::new(ctx)),
            book: RwLock::new(Book::new()),
            log: RwLock::new(VecDeque::new()),
            heat: Mutex::new(Heat::default()),
            stream,
            outputs: tokio::sync::Mutex::new(outputs),
            access,
            config,
            watermark: AtomicI64::new(Ms::MIN),
        })
    }

    /// Rebuilds the book from `events` (the log of an earlier run), replacing what it held.
    /// Deadlines that passed meanwhile fire at the next clock advance.
    ///
    /// # Errors
    /// When the incident table cannot be written again.
    pub async fn restore(&self, events: Vec<IncidentEvent>) -> Result<()> {
        let mut outputs = self.outputs.lock().await;
        outputs.restored(&events);
        let book = Book::restore(events.iter().cloned());
        // The table's last records may have been lost with the process that wrote them: every
        // incident's state is written again (a compacted topic keeps the latest).
        let incidents: Vec<&Incident> = book.incidents().collect();
        outputs.rewrite_table(&incidents).await?;
        let mut log: VecDeque<Arc<IncidentEvent>> = events.into_iter().map(Arc::new).collect();
        while log.len() > self.config.log_capacity {
            log.pop_front();
        }
        tracing::info!(
            incidents = book.len(),
            events = log.len(),
            seq = book.seq(),
            "incident book restored"
        );
        *self.book.write().expect("book lock") = book;
        *self.log.write().expect("log lock") = log;
        Ok(())
    }

    /// The decision context.
    pub fn context(&self) -> Arc<Context> {
        Arc::clone(&self.ctx.read().expect("context lock"))
    }

    /// Replaces what is known of the rules (after a reload).
    pub fn set_rules(&self, rules: HashMap<String, RuleProfile>) {
        let mut ctx = self.ctx.write().expect("context lock");
        let mut next = (**ctx).clone();
        next.rules = rules;
        *ctx = Arc::new(next);
    }

    /// The access tokens.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The settings.
    pub fn config(&self) -> &DeskConfig {
        &self.config
    }

    /// Reads the book.
    pub fn book(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        self.book.read().expect("book lock")
    }

    /// The clock now: the book's (event time) or, live, at least wall time minus the bound.
    pub fn now(&self) -> Ms {
        let book = self.book().clock().unwrap_or(Ms::MIN);
        let wm = self.watermark.load(Ordering::Relaxed);
        let base = book.max(wm);
        match self.config.clock {
            ClockMode::EventTime => base,
            ClockMode::Live { bound_ms } => {
                base.max(chrono::Utc::now().timestamp_millis() - bound_ms)
            }
        }
    }

    /// Subscribes to new events and heat-layer changes.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamItem> {
        self.stream.subscribe()
    }

    /// Events after `seq`, oldest first, at most `limit`, those `keep` accepts.
    pub fn events_after(
        &self,
        seq: u64,
        limit: usize,
        keep: impl Fn(&IncidentEvent) -> bool,
    ) -> Vec<Arc<IncidentEvent>> {
        let log = self.log.read().expect("log lock");
        let start = log.partition_point(|e| e.seq <= seq);
        log.range(start..)
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every event of one incident still in the in-memory log, oldest first.
    pub fn timeline(&self, incident_id: &str) -> Vec<Arc<IncidentEvent>> {
        self.log
            .read()
            .expect("log lock")
            .iter()
            .filter(|e| e.incident_id == incident_id)
            .cloned()
            .collect()
    }

    /// The in-memory log, for indicators and time travel.
    pub fn log_snapshot(&self) -> Vec<Arc<IncidentEvent>> {
        self.log.read().expect("log lock").iter().cloned().collect()
    }

    /// The incidents as they stood at event time `at`, rebuilt from the in-memory log.
    pub fn book_at(&self, at: Ms) -> Book {
        let log = self.log.read().expect("log lock");
        Book::restore(log.iter().filter(|e| e.at <= at).map(|e| (**e).clone()))
    }

    /// The heat layer (`/api/cells`).
    pub fn cells(&self) -> Value {
        self.heat.lock().expect("heat lock").document()
    }

    /// Takes alerts and actions (merged in event time with the deadlines) and then moves the
    /// clock to `watermark` (when given), firing the deadlines due; writes the events to the
    /// outputs. A refused action changes nothing and is returned with its reason.
    ///
    /// # Errors
    /// When an output cannot be written.
    pub async fn ingest(
        &self,
        alerts: Vec<AlertIn>,
        actions: Vec<Action>,
        watermark: Option<Ms>,
    ) -> Result<Ingested> {
        let mut outputs = self.outputs.lock().await;
        let ctx = self.context();
        if let Some(wm) = watermark {
            self.watermark.fetch_max(wm, Ordering::Relaxed);
        }
        let clock = watermark.map(|_| self.now());
        let mut out = Ingested::default();
        let mut events: Vec<IncidentEvent> = Vec::new();
        let mut cells_changed = false;
        {
            let mut book = self.book.write().expect("book lock");
            enum Item {
                Alert(AlertIn),
                Action(Action),
            }
            let mut items: Vec<(Ms, u8, Item)> = alerts
                .into_iter()
                .map(|a| (a.at, 0, Item::Alert(a)))
                .chain(actions.into_iter().map(|a| (a.at, 1, Item::Action(a))))
                .collect();
            items.sort_by_key(|(at, order, _)| (*at, *order));
            let frontier = clock.or(book.clock());
            for (at, _, item) in items {
                // Deadlines strictly before the item fire first (an action at a deadline is
                // in time), but never past the clock: without one, none fire.
                if let Some(upto) = frontier.map(|c| c.min(at - 1))
                    && book.clock().is_none_or(|c| upto > c)
                {
                    events.extend(book.advance(&ctx, upto));
                }
                match item {
                    Item::Alert(a) => {
                        if let Some(cell) = &a.location.cell {
                            self.heat.lock().expect("heat lock").add(a.at, cell);
                            cells_changed = true;
                        }
                        events.extend(book.alert(&ctx, &a));
                    }
                    Item::Action(a) => match book.act(&ctx, &a) {
                        Ok(e) => events.extend(e),
                        Err(r) => out.refused.push((a, r)),
                    },
                }
            }
            if let Some(c) = clock {
                events.extend(book.advance(&ctx, c));
                let mut heat = self.heat.lock().expect("heat lock");
                let before = heat.counts.len();
                heat.expire(c, self.config.heat_window_ms);
                cells_changed |= heat.counts.len() != before;
            }
        }
        self.publish(&mut outputs, events, &mut out).await?;
        if cells_changed {
            let doc = Arc::new(self.cells());
            let _ = self.stream.send(StreamItem::Cells(doc));
        }
        Ok(out)
    }

    /// Moves the clock to now (live mode: wall time minus the bound), firing due deadlines.
    ///
    /// # Errors
    /// When an output cannot be written.
    pub async fn tick(&self) -> Result<Vec<Arc<IncidentEvent>>> {
        self.ingest(
            Vec::new(),
            Vec::new(),
            Some(self.watermark.load(Ordering::Relaxed)),
        )
        .await
        .map(|i| i.events)
    }

    /// One live action (the API, the actions topic), taken at the clock's time: its events
    /// are written and flushed before it returns.
    ///
    /// # Errors
    /// The outer error: an output failed. The inner one: the action was refused (nothing
    /// changed).
    pub async fn act(&self, mut action: Action) -> Result<std::result::Result<Incident, Refusal>> {
        let mut outputs = self.outputs.lock().await;
        let ctx = self.context();
        let now = self.now();
        action.at = now;
        let mut events = Vec::new();
        let result = {
            let mut book = self.book.write().expect("book lock");
            if book.clock().is_none_or(|c| now - 1 > c) {
                events.extend(book.advance(&ctx, now - 1));
            }
            match book.act(&ctx, &action) {
                Ok(e) => {
                    events.extend(e);
                    Ok(book
                        .get(&action.incident_id)
                        .cloned()
                        .expect("acted on an existing incident"))
                }
                Err(r) => Err(r),
            }
        };
        let mut ingested = Ingested::default();
        self.publish(&mut outputs, events, &mut ingested).await?;
        outputs.flush().await?;
        Ok(result)
    }

    /// A future resolving once every output written so far is durable.
    ///
    /// # Errors
    /// When a barrier cannot be set.
    pub async fn barrier(&self) -> Result<citybrain_connectors::sink::Barrier> {
        self.outputs.lock().await.barrier().await
    }

    /// Makes every output durable.
    ///
    /// # Errors
    /// When an output cannot be flushed.
    pub async fn flush(&self) -> Result<()> {
        self.outputs.lock().await.flush().await
    }

    async fn publish(
        &self,
        outputs: &mut Outputs,
        events: Vec<IncidentEvent>,
        out: &mut Ingested,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events: Vec<Arc<IncidentEvent>> = events.into_iter().map(Arc::new).collect();
        let incidents: HashMap<String, Incident> = {
            let book = self.book();
            events
                .iter()
                .filter_map(|e| book.get(&e.incident_id))
                .map(|i| (i.incident_id.clone(), i.clone()))
                .collect()
        };
        {
            let mut log = self.log.write().expect("log lock");
            log.extend(events.iter().cloned());
            while log.len() > self.config.log_capacity {
                log.pop_front();
            }
        }
        for e in &events {
            let _ = self.stream.send(StreamItem::Event(Arc::clone(e)));
        }
        outputs.write(&events, &incidents).await?;
        out.events.extend(events);
        Ok(())
    }
}
