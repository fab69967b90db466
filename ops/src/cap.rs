//! Incidents as OASIS CAP 1.2 (Common Alerting Protocol) messages.
//!
//! One message per change that matters to another system: `Alert` when an incident opens,
//! `Update` on every change of level or state (escalated, acknowledged, handled, closed,
//! rework, returned, dispatched, extended, overdue), `Cancel` when it is voided. Updates and
//! cancels reference every earlier message of the incident (`sender,identifier,sent`). The
//! `area` is the incident's H3 cell as a polygon, with the 12-digit code of the unit its
//! place belongs to as a geocode. `status` is `Exercise` in replays (back-tests) and `Actual`
//! live. Messages validate against the official CAP 1.2 schema (tested with `xmllint`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::incident::{EventType, Incident, IncidentEvent, State};
use crate::policy::Severity;
use crate::time::Ms;
use crate::unit::Code;

/// The geocode `valueName` carrying a unit's 12-digit code.
pub const GEOCODE_NAME: &str = "CN-DIVISION-CODE";

/// The CAP message type of an event, `None` for events that are not sent (`updated` by
/// another alert, `commented`).
pub fn msg_type(kind: EventType) -> Option<&'static str> {
    match kind {
        EventType::Opened => Some("Alert"),
        EventType::Voided => Some("Cancel"),
        EventType::Updated | EventType::Commented => None,
        _ => Some("Update"),
    }
}

/// Who sends: `citybrain@<city code>`.
pub fn sender(city: Code) -> String {
    format!("citybrain@{city}")
}

/// A message's identifier: `citybrain.<city>.<incident id>.<event seq>`.
pub fn identifier(city: Code, e: &IncidentEvent) -> String {
    format!("citybrain.{city}.{}.{}", e.incident_id, e.seq)
}

/// CAP's `sent` form: `2026-03-02T08:10:00+00:00` (seconds, explicit offset).
pub fn cap_time(ms: Ms) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_default()
}

/// The `references` entry of a message already sent.
pub fn reference(city: Code, e: &IncidentEvent) -> String {
    format!(
        "{},{},{}",
        sender(city),
        identifier(city, e),
        cap_time(e.at)
    )
}

fn category(department: &str) -> &'static str {
    match department {
        "traffic" => "Transport",
        "police" => "Security",
        "emergency" => "Rescue",
        "market" => "Health",
        "city" => "Safety",
        _ => "Other",
    }
}

fn urgency(severity: Severity, state: State) -> &'static str {
    if state.is_final() {
        return "Past";
    }
    match severity {
        Severity::Critical | Severity::High => "Immediate",
        Severity::Medium => "Expected",
        Severity::Low | Severity::Info => "Future",
    }
}

fn cap_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Extreme",
        Severity::High => "Severe",
        Severity::Medium => "Moderate",
        Severity::Low => "Minor",
        Severity::Info => "Unknown",
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The CAP 1.2 message of event `e` of incident `inc` (its state after `e`), referencing
/// `references` (earlier messages of the incident); `None` for events not sent.
pub fn message(
    city: Code,
    e: &IncidentEvent,
    inc: &Incident,
    exercise: bool,
    references: &[String],
) -> Option<String> {
    let msg_type = msg_type(e.kind)?;
    let mut x = String::with_capacity(2048);
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(x, r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">"#);
    let el = |x: &mut String, indent: &str, name: &str, value: &str| {
        let _ = writeln!(x, "{indent}<{name}>{}</{name}>", esc(value));
    };
    el(&mut x, "  ", "identifier", &identifier(city, e));
    el(&mut x, "  ", "sender", &sender(city));
    el(&mut x, "  ", "sent", &cap_time(e.at));
    el(
        &mut x,
        "  ",
        "status",
        if exercise { "Exercise" } else { "Actual" },
    );
    el(&mut x, "  ", "msgType", msg_type);
    el(&mut x, "  ", "source", "citybrain");
    el(&mut x, "  ", "scope", "Restricted");
    el(
        &mut x,
        "  ",
        "restriction",
        "city operations: the units of the chain and the centre",
    );
    el(
        &mut x,
        "  ",
        "note",
        &format!("{} ({}) at {}", e.kind, e.state, e.unit_name),
    );
    if !references.is_empty() {
        el(&mut x, "  ", "references", &references.join(" "));
    }
    el(&mut x, "  ", "incidents", &e.incident_id);
    let _ = writeln!(x, "  <info>");
    el(&mut x, "    ", "language", "zh-CN");
    el(&mut x, "    ", "category", category(&inc.department));
    el(&mut x, "    ", "event", &inc.title);
    el(&mut x, "    ", "urgency", urgency(inc.severity, e.state));
    el(&mut x, "    ", "severity", cap_severity(inc.severity));
    el(&mut x, "    ", "certainty", "Likely");
    let _ = writeln!(
        x,
        "    <eventCode>\n      <valueName>citybrain:rule</valueName>\n      <value>{}</value>\n    </eventCode>",
        esc(&inc.rule)
    );
    el(&mut x, "    ", "effective", &cap_time(e.at));
    el(&mut x, "    ", "onset", &cap_time(inc.opened_at));
    if let Some(due) = e.due_at {
        el(&mut x, "    ", "expires", &cap_time(due));
    }
    el(&mut x, "    ", "senderName", &e.unit_name);
    let headline: String = format!("{}: {} ({})", inc.title, e.state, e.unit_name)
        .chars()
        .take(160)
        .collect();
    el(&mut x, "    ", "headline", &headline);
    el(
        &mut x,
        "    ",
        "description",
        &format!(
            "Rule {} raised {} alert(s) for {}; {} at {} ({}), held by {} {} ({}).",
            inc.rule,
            e.count,
            if e.key.is_empty() { "-" } else { &e.key },
            e.kind,
            e.unit_name,
            e.unit,
            e.level,
            e.unit_name,
            e.state
        ),
    );
    for (name, value) in [
        ("citybrain:incident_state", e.state.as_str().to_string()),
        ("citybrain:event", e.kind.as_str().to_string()),
        ("citybrain:level", e.level.as_str().to_string()),
        ("citybrain:unit", e.unit.to_string()),
    ] {
        let _ = writeln!(
            x,
            "    <parameter>\n      <valueName>{name}</valueName>\n      <value>{}</value>\n    </parameter>",
            esc(&value)
        );
    }
    let _ = writeln!(x, "    <area>");
    el(&mut x, "      ", "areaDesc", &inc.home_name);
    if let Some(ring) = inc.location.cell_polygon() {
        let points: Vec<String> = ring
            .iter()
            .map(|(lat, lon)| format!("{lat:.6},{lon:.6}"))
            .collect();
        el(&mut x, "      ", "polygon", &points.join(" "));
    }
    let _ = writeln!(
        x,
        "      <geocode>\n        <valueName>{GEOCODE_NAME}</valueName>\n        <value>{}</value>\n      </geocode>",
        inc.home
    );
    let _ = writeln!(x, "    </area>");
    let _ = writeln!(x, "  </info>");
    let _ = writeln!(x, "</alert>");
    Some(x)
}

/// Every CAP message of one incident, oldest first, from its events (in log order) and its
/// current state.
pub fn messages(
    city: Code,
    events: &[&IncidentEvent],
    inc: &Incident,
    exercise: bool,
) -> Vec<String> {
    let mut refs = Vec::new();
    let mut out = Vec::new();
    for e in events {
        if let Some(m) = message(city, e, inc, exercise, &refs) {
            out.push(m);
            refs.push(reference(city, e));
        }
    }
    out
}

/// Writes one file per CAP message into a folder (`<identifier>.xml`).
#[derive(Debug)]
pub struct CapWriter {
    dir: PathBuf,
    city: Code,
    exercise: bool,
    sent: HashMap<String, Vec<String>>,
}

impl CapWriter {
    /// Creates the folder if missing.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn new(dir: &Path, city: Code, exercise: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            what: dir.display().to_string(),
            source: Box::new(citybrain_connectors::Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            }),
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            city,
            exercise,
            sent: HashMap::new(),
        })
    }

    /// Remembers that `e`'s message was sent (restoring).
    pub fn learn(&mut self, e: &IncidentEvent) {
        if msg_type(e.kind).is_some() {
            self.sent
                .entry(e.incident_id.clone())
                .or_default()
                .push(reference(self.city, e));
        }
    }

    /// Writes `e`'s message, if it has one.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&mut self, e: &IncidentEvent, inc: &Incident) -> Result<()> {
        let refs = self.sent.get(&e.incident_id).map_or(&[][..], Vec::as_slice);
        let Some(xml) = message(self.city, e, inc, self.exercise, refs) else {
            return Ok(());
        };
        let path = self.dir.join(format!("{}.xml", identifier(self.city, e)));
        std::fs::write(&path, xml).map_err(|source| Error::Write {
            what: path.display().to_string(),
            source: Box::new(citybrain_connectors::Error::WriteFile {
                path: path.clone(),
                source,
            }),
        })?;
        self.learn(e);
        Ok(())
    }
}
