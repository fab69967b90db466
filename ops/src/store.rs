//! Where incident events go, and how they come back after a restart.
//!
//! ```text
//!  events ──▶ Outputs ──┬─ Format::Events  ▶ Sink (JSON lines file | Kafka citybrain.incident-events)
//!                       ├─ Format::Table   ▶ Sink (Kafka citybrain.incidents, compacted: key = incident id)
//!                       ├─ Format::Human   ▶ Sink (stdout: one readable line per event)
//!                       └─ CAP 1.2 folder  ▶ one XML file per message
//! ```
//!
//! The event log is the incident state: [`read_log`] reads a JSON-lines log back (the local
//! store when there is no Kafka), and [`crate::incident::Book::restore`] replays it.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use citybrain_connectors::{Sink, SinkRecord};

use crate::cap::CapWriter;
use crate::error::{Error, Result};
use crate::incident::{EventType, Incident, IncidentEvent};
use crate::time::rfc3339;

/// How an output writes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every event as one JSON object (keyed by incident id).
    Events,
    /// The incident's whole state after each event (keyed by incident id: the latest record
    /// per key is the incident, as on a compacted topic).
    Table,
    /// One readable line per event other than `updated` (a terminal).
    Human,
}

/// One output.
enum Output {
    Sink {
        name: String,
        format: Format,
        sink: Box<dyn Sink>,
    },
    Cap(CapWriter),
}

/// Every output of a desk.
#[derive(Default)]
pub struct Outputs {
    outputs: Vec<Output>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("count", &self.outputs.len())
            .finish()
    }
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink writing `format`; `name` names it in errors.
    pub fn add(&mut self, name: &str, format: Format, sink: Box<dyn Sink>) {
        self.outputs.push(Output::Sink {
            name: name.to_string(),
            format,
            sink,
        });
    }

    /// Adds a folder receiving one CAP 1.2 XML file per message.
    pub fn add_cap(&mut self, cap: CapWriter) {
        self.outputs.push(Output::Cap(cap));
    }

    /// Whether an output wants incident snapshots ([`Format::Table`]).
    pub fn wants_table(&self) -> bool {
        self.outputs.iter().any(|o| {
            matches!(
                o,
                Output::Sink {
                    format: Format::Table,
                    ..
                }
            )
        })
    }

    /// Lets stateful outputs (CAP references) learn restored events without writing them.
    pub fn restored(&mut self, events: &[IncidentEvent]) {
        for o in &mut self.outputs {
            if let Output::Cap(cap) = o {
                for e in events {
                    cap.learn(e);
                }
            }
        }
    }

    /// Writes every incident's state to the [`Format::Table`] outputs (after a restore).
    ///
    /// # Errors
    /// [`Error::Write`] naming the output.
    pub async fn rewrite_table(&mut self, incidents: &[&Incident]) -> Result<()> {
        for o in &mut self.outputs {
            if let Output::Sink {
                name,
                format: Format::Table,
                sink,
            } = o
            {
                let records: Vec<SinkRecord> = incidents.iter().map(|i| table_record(i)).collect();
                for chunk in records.chunks(10_000) {
                    sink.write(chunk).await.map_err(|source| Error::Write {
                        what: name.clone(),
                        source: Box::new(source),
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Writes `events`; `incidents` holds the state of each incident they touched (for
    /// [`Format::Table`] and CAP).
    ///
    /// # Errors
    /// [`Error::Write`] naming the output.
    pub async fn write(
        &mut self,
        events: &[Arc<IncidentEvent>],
        incidents: &HashMap<String, Incident>,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        for o in &mut self.outputs {
            match o {
                Output::Sink { name, format, sink } => {
                    let records: Vec<SinkRecord> = match format {
                        Format::Events => events.iter().map(|e| event_record(e)).collect(),
                        Format::Table => {
                            let mut seen = std::collections::HashSet::new();
                            // The last event of each incident carries its final state.
                            let mut out: Vec<SinkRecord> = events
                                .iter()
                                .rev()
                                .filter(|e| seen.insert(e.incident_id.as_str()))
                                .filter_map(|e| incidents.get(&e.incident_id))
                                .map(table_record)
                                .collect();
                            out.reverse();
                            out
                        }
                        Format::Human => events
                            .iter()
                            .filter(|e| e.kind != EventType::Updated)
                            .map(|e| SinkRecord {
                                key: Some(e.incident_id.clone()),
                                payload: human_line(e),
                                headers: Vec::new(),
                            })
                            .collect(),
                    };
                    if !records.is_empty() {
                        sink.write(&records).await.map_err(|source| Error::Write {
                            what: name.clone(),
                            source: Box::new(source),
                        })?;
                    }
                }
                Output::Cap(cap) => {
                    for e in events {
                        if let Some(inc) = incidents.get(&e.incident_id) {
                            cap.write(e, inc)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A future resolving once everything written so far is durable (see
    /// [`citybrain_connectors::Sink::barrier`]); the caller goes on meanwhile.
    ///
    /// # Errors
    /// [`Error::Write`] naming the output whose barrier could not be set.
    pub async fn barrier(&mut self) -> Result<citybrain_connectors::sink::Barrier> {
        let mut waits = Vec::new();
        for o in &mut self.outputs {
            if let Output::Sink { name, sink, .. } = o {
                waits.push(sink.barrier().await.map_err(|source| Error::Write {
                    what: name.clone(),
                    source: Box::new(source),
                })?);
            }
        }
        Ok(Box::pin(async move {
            futures::future::try_join_all(waits).await.map(drop)
        }))
    }

    /// Makes everything written durable.
    ///
    /// # Errors
    /// [`Error::Write`] naming the output.
    pub async fn flush(&mut self) -> Result<()> {
        for o in &mut self.outputs {
            if let Output::Sink { name, sink, .. } = o {
                sink.flush().await.map_err(|source| Error::Write {
                    what: name.clone(),
                    source: Box::new(source),
                })?;
            }
        }
        Ok(())
    }
}

/// An event as a record of the events output (key: incident id).
pub fn event_record(e: &IncidentEvent) -> SinkRecord {
    SinkRecord {
        key: Some(e.incident_id.clone()),
        payload: serde_json::to_string(e).expect("events serialize"),
        headers: vec![("citybrain.type".to_string(), e.kind.as_str().to_string())],
    }
}

/// An incident as a record of the table output (key: incident id).
pub fn table_record(inc: &Incident) -> SinkRecord {
    SinkRecord {
        key: Some(inc.incident_id.clone()),
        payload: serde_json::to_string(inc).expect("incidents serialize"),
        headers: Vec::new(),
    }
}

/// One readable line for a person watching a terminal.
pub fn human_line(e: &IncidentEvent) -> String {
    let short = |ms: i64| {
        let t = rfc3339(ms);
        t.get(11..19).unwrap_or(&t).to_string()
    };
    let what = match e.kind {
        EventType::Overdue => "overdue at".to_string(),
        EventType::Closed | EventType::Voided => "by".to_string(),
        _ => "→".to_string(),
    };
    let mut line = format!(
        "INCIDENT {:<12} {:<8} {}  {}  [{}]  {what} {} {} ({})",
        e.kind.as_str(),
        e.severity.as_str().to_uppercase(),
        e.rule,
        &e.incident_id[..e.incident_id.len().min(8)],
        short(e.at),
        e.unit_name,
        e.unit,
        e.level
    );
    if let (Some(due), Some(duty)) = (e.due_at, e.duty)
        && !matches!(e.kind, EventType::Overdue)
    {
        let verb = match duty {
            crate::incident::Duty::Ack => "ack",
            crate::incident::Duty::Handle => "handle",
            crate::incident::Duty::Verify => "check",
        };
        line.push_str(&format!(", {verb} by {}", short(due)));
    }
    if let Some(actor) = e.actor
        && !matches!(e.kind, EventType::Closed | EventType::Voided)
    {
        line.push_str(&format!(", by {actor}"));
    }
    if let Some(c) = &e.comment {
        line.push_str(&format!(": {c}"));
    }
    line
}

/// Reads a JSON-lines incident event log. A last line cut short (the process died while
/// writing it) is left out with a warning; a bad line elsewhere is an error.
///
/// # Errors
/// [`Error::Read`], or [`Error::Invalid`] naming the line.
pub fn read_log(path: &Path) -> Result<Vec<IncidentEvent>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let mut out = Vec::with_capacity(lines.len());
    let last = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<IncidentEvent>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == last => {
                tracing::warn!(path = %path.display(), line = i + 1, "incident log ends in a torn line; left out");
            }
            Err(e) => {
                return Err(Error::Invalid {
                    problems: vec![format!(
                        "{}:{}: not an incident event: {e}",
                        path.display(),
                        i + 1
                    )],
                });
            }
        }
    }
    Ok(out)
}

/// A local incident store: the JSON-lines event log at `path`, appended to.
#[derive(Debug, Clone)]
pub struct LocalStore {
    /// The log file.
    pub path: PathBuf,
}

impl LocalStore {
    /// The events logged so far (none when the file does not exist yet).
    ///
    /// # Errors
    /// As [`read_log`].
    pub fn load(&self) -> Result<Vec<IncidentEvent>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let events = read_log(&self.path)?;
        self.cut_torn_tail()?;
        Ok(events)
    }

    /// Cuts a last line the process died while writing, so that appending starts on a line
    /// of its own.
    fn cut_torn_tail(&self) -> Result<()> {
        let read = |source| Error::Read {
            path: self.path.clone(),
            source,
        };
        let bytes = std::fs::read(&self.path).map_err(read)?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(());
        }
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(read)?;
        file.set_len(keep as u64).map_err(read)?;
        Ok(())
    }

    /// The sink appending to the log.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn sink(&self) -> Result<citybrain_connectors::JsonlSink> {
        citybrain_connectors::JsonlSink::append(&self.path).map_err(|source| Error::Write {
            what: self.path.display().to_string(),
            source: Box::new(source),
        })
    }
}
