//! The incident state machine: alerts, actions and deadlines in, incident events out.
//!
//! ```text
//!                 ack            handled          verify_ok
//!   ──alert──▶ open ──────▶ acknowledged ──────▶ handled ──────▶ closed
//!               │  ▲ ▲          │                 │  verify_fail
//!               │  │ └─return───┤                 ▼
//!    deadline:  │  └─dispatch   │   handled ◀── rework
//!    escalated  │               │
//!    (parent)   └──── void (any state not closed) ──▶ voided
//! ```
//!
//! [`Book`] holds every incident. Its three inputs, [`Book::alert`], [`Book::act`] and
//! [`Book::advance`] (the clock), each decide the events that follow from the state, then
//! apply them with [`Book::apply`], the only code that changes an incident. Restoring after
//! a restart is applying the event log again ([`Book::restore`]): the state, its timers
//! (every incident's `due_at`), the alerts and the actions already seen all come back, so a
//! deadline that passed while the engine was down fires at the next [`Book::advance`], and a
//! replayed alert or action changes nothing.
//!
//! Deadlines are data: an incident's `due_at` is a timer; [`Book::advance`] fires every timer
//! due up to the clock *at its due time*: an escalation event's `at` is the deadline itself,
//! whenever the clock passed it, so a back-test escalates at 0 ms from the deadline.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::correlate::{RuleProfile, incident_id};
use crate::jurisdiction::{Jurisdictions, Location};
use crate::policy::{Policy, Severity, Terms};
use crate::time::{Ms, serde_ms};
use crate::unit::{Code, Level};

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Filed and dispatched to a unit, waiting for it to acknowledge (立案, 派遣).
    Open,
    /// The unit took it (签收).
    Acknowledged,
    /// The unit reports it done (反馈), waiting for the check.
    Handled,
    /// Checked by the level above or the centre (核查结案).
    Closed,
    /// The check failed: back to the unit (返工).
    Rework,
    /// Cancelled (注销).
    Voided,
}

impl State {
    /// Closed or voided: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, State::Closed | State::Voided)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::Handled => "handled",
            State::Closed => "closed",
            State::Rework => "rework",
            State::Voided => "voided",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the current deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// Acknowledging: escalates to the parent unit when missed.
    Ack,
    /// Handling: escalates to the parent unit when missed.
    Handle,
    /// Checking a handled incident (the level above): marked overdue when missed.
    Verify,
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A new incident from an alert.
    Opened,
    /// Another alert (or a revision of one) for an incident.
    Updated,
    /// A deadline passed: the parent unit has it now, with a new deadline.
    Escalated,
    /// `ack`.
    Acknowledged,
    /// `handled`.
    Handled,
    /// `verify_ok`.
    Closed,
    /// `verify_fail`.
    Rework,
    /// `return`: misrouted, back to the centre.
    Returned,
    /// `dispatch`: the centre (or a level above) sends it to a unit.
    Dispatched,
    /// `extend`: a later deadline.
    Extended,
    /// `void`.
    Voided,
    /// A deadline passed where there is no level above (or a check was late).
    Overdue,
    /// `comment`.
    Commented,
}

impl EventType {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Opened => "opened",
            EventType::Updated => "updated",
            EventType::Escalated => "escalated",
            EventType::Acknowledged => "acknowledged",
            EventType::Handled => "handled",
            EventType::Closed => "closed",
            EventType::Rework => "rework",
            EventType::Returned => "returned",
            EventType::Dispatched => "dispatched",
            EventType::Extended => "extended",
            EventType::Voided => "voided",
            EventType::Overdue => "overdue",
            EventType::Commented => "commented",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministic id (32 hex characters), see [`incident_id`].
    pub incident_id: String,
    /// Where it is in its life.
    pub state: State,
    /// The rule that raised it.
    pub rule: String,
    /// The rule's title.
    pub title: String,
    /// The department answering for the rule.
    pub department: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The level of the unit holding it.
    pub level: Level,
    /// The unit holding it.
    pub unit: Code,
    /// Its name.
    pub unit_name: String,
    /// Event time of the alert that opened it.
    #[serde(with = "serde_ms")]
    pub opened_at: Ms,
    /// Event time of its latest alert.
    #[serde(with = "serde_ms")]
    pub last_seen: Ms,
    /// How many distinct alerts it gathered.
    pub count: u64,
    /// The current deadline (none once closed or voided).
    #[serde(with = "serde_ms::option")]
    pub due_at: Option<Ms>,
    /// What the deadline is for.
    pub duty: Option<Duty>,
    /// A deadline passed with no level above to escalate to (or a check was late).
    pub overdue: bool,
    /// The alerts' group key.
    pub key: String,
    /// Where it is.
    pub location: Location,
    /// Its alerts' ids, oldest first.
    pub alert_ids: Vec<String>,
    /// The unit its place belongs to (a community, or a district's or the city's queue).
    pub home: Code,
    /// Its name.
    pub home_name: String,
    /// When the unit holding it received it.
    #[serde(with = "serde_ms")]
    pub since: Ms,
    /// The deadlines it runs under, fixed when it opened.
    pub terms: Terms,
    /// Quiet gap of its rule when it opened, ms.
    pub quiet_gap_ms: Ms,
    /// Times it went up a level.
    pub escalations: u32,
    /// Times a check sent it back.
    pub reworks: u32,
    /// Times its deadline was extended.
    pub extensions: u32,
    /// Whether any deadline of it was missed (escalated or overdue).
    pub missed_deadline: bool,
    /// When it was first acknowledged.
    #[serde(with = "serde_ms::option")]
    pub acked_at: Option<Ms>,
    /// When it was last reported handled.
    #[serde(with = "serde_ms::option")]
    pub handled_at: Option<Ms>,
    /// When it was closed or voided.
    #[serde(with = "serde_ms::option")]
    pub closed_at: Option<Ms>,
}

impl Incident {
    /// The time its timer fires, when one is armed.
    fn timer(&self) -> Option<Ms> {
        if self.state.is_final() || self.overdue {
            None
        } else {
            self.due_at
        }
    }

    /// Whether `unit` may see it: the unit holding it or its place is in `unit`'s subtree.
    pub fn visible_to(&self, unit: Code) -> bool {
        unit.contains(self.unit) || unit.contains(self.home)
    }

    /// Whether `unit` is the level above the one holding it (or the city, for an incident
    /// the city holds): who checks, extends and voids.
    pub fn supervised_by(&self, unit: Code) -> bool {
        unit.is_above(self.unit) || (self.level == Level::City && unit == self.unit)
    }
}

/// What is fixed when an incident opens (carried by its `opened` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opening {
    /// The rule's title.
    pub title: String,
    /// The department answering for the rule.
    pub department: String,
    /// The unit its place belongs to.
    pub home: Code,
    /// Its name.
    pub home_name: String,
    /// The deadlines it runs under.
    pub terms: Terms,
    /// Quiet gap of its rule, ms.
    pub quiet_gap_ms: Ms,
}

/// One change of one incident: what the outputs carry and what restoring replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// Position in the event log, from 1.
    pub seq: u64,
    /// The incident.
    pub incident_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When, in event time (a deadline's own time for escalations and overdue marks).
    #[serde(with = "serde_ms")]
    pub at: Ms,
    /// The incident's state after it.
    pub state: State,
    /// The level holding it after it.
    pub level: Level,
    /// The unit holding it after it.
    pub unit: Code,
    /// Its name.
    pub unit_name: String,
    /// The deadline after it.
    #[serde(with = "serde_ms::option")]
    pub due_at: Option<Ms>,
    /// What the deadline is for.
    pub duty: Option<Duty>,
    /// The rule.
    pub rule: String,
    /// The severity.
    pub severity: Severity,
    /// The alerts' group key.
    pub key: String,
    /// Where.
    pub location: Location,
    /// The alerts this event is about (`opened`, `updated`); empty for the others.
    pub alert_ids: Vec<String>,
    /// Distinct alerts so far.
    pub count: u64,
    /// The acting unit, for actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Code>,
    /// The action's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The action's id (given by its source, or its Kafka position): an action seen again
    /// changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    /// For `updated` by a revised alert: the alert's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// For `opened`: what is fixed for the incident's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<Opening>,
}

/// An alert as the desk sees it (read from the engine's alert JSON by
/// [`AlertIn::from_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertIn {
    /// The alert's deterministic id.
    pub alert_id: String,
    /// The rule.
    pub rule: String,
    /// The rule's title.
    pub title: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The group key values joined by `|`.
    pub key: String,
    /// Its event time: the window's end, or the event's time for per-event rules.
    pub at: Ms,
    /// 1 for first results; higher for revisions by late events.
    pub revision: u32,
    /// Where, from the rule's `-- location:` header.
    pub location: Location,
    /// The unit the engine routed it to, when it did.
    pub unit: Option<Code>,
}

impl AlertIn {
    /// Reads the fields the desk needs from an alert's JSON (`alert_id`, `rule`, `title`,
    /// `severity`, `key`, `event_time` (else `window_end`, else `fallback_at`: the desk's
    /// clock), `revision`, `location`, `unit`).
    ///
    /// # Errors
    /// A message naming the missing or malformed field.
    pub fn from_json(v: &serde_json::Value, fallback_at: Option<Ms>) -> Result<Self, String> {
        let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let need = |k: &str| s(k).map(str::to_string).ok_or(format!("alert: no `{k}`"));
        let at = match s("event_time").or_else(|| s("window_end")) {
            Some(text) => crate::time::parse_rfc3339(text)
                .ok_or(format!("alert: event_time `{text}` is not RFC 3339"))?,
            None => {
                fallback_at.ok_or("alert: no `event_time` (nor `window_end`) and no clock yet")?
            }
        };
        let location = match v.get("location") {
            None | Some(serde_json::Value::Null) => Location::none(),
            Some(l) => {
                serde_json::from_value(l.clone()).map_err(|e| format!("alert: location: {e}"))?
            }
        };
        Ok(Self {
            alert_id: need("alert_id")?,
            rule: need("rule")?,
            title: s("title").unwrap_or_default().to_string(),
            severity: need("severity")?.parse()?,
            key: s("key").unwrap_or_default().to_string(),
            at,
            revision: v
                .get("revision")
                .and_then(serde_json::Value::as_u64)
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or(1),
            location,
            unit: s("unit").and_then(Code::parse),
        })
    }
}

/// What a unit does to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Acknowledge (签收): an open incident.
    Ack,
    /// Report it done (反馈): acknowledged or rework.
    Handled,
    /// The check passed (核查结案): handled; by the level above.
    VerifyOk,
    /// The check failed (返工): handled; by the level above.
    VerifyFail,
    /// Misrouted: back to the centre (the city) for re-dispatch.
    Return,
    /// A later deadline (`due_at`), approved by the level above.
    Extend,
    /// Cancel (注销); by the level above or the city.
    Void,
    /// A note on the timeline; any state.
    Comment,
    /// Send it to a unit (`to`) in the actor's subtree: the centre re-dispatching.
    Dispatch,
}

impl ActionKind {
    /// The name used in requests and files.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Ack => "ack",
            ActionKind::Handled => "handled",
            ActionKind::VerifyOk => "verify_ok",
            ActionKind::VerifyFail => "verify_fail",
            ActionKind::Return => "return",
            ActionKind::Extend => "extend",
            ActionKind::Void => "void",
            ActionKind::Comment => "comment",
            ActionKind::Dispatch => "dispatch",
        }
    }
}

/// One action (a line of an actions file, a record of the actions topic, an API request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The incident.
    pub incident_id: String,
    /// What.
    pub action: ActionKind,
    /// The acting unit's code.
    pub unit: Code,
    /// When (event time).
    #[serde(with = "serde_ms")]
    pub at: Ms,
    /// A note (required for `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The new deadline (`extend`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_ms::option"
    )]
    pub due_at: Option<Ms>,
    /// The unit to send it to (`dispatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Code>,
    /// The action's id: the same id applied twice changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
}

/// Why an action was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such incident.
    #[error("no incident {0}")]
    NotFound(String),
    /// The acting unit is not a unit of the city.
    #[error("unit {0} is not a unit of this city")]
    UnknownUnit(Code),
    /// The acting unit may not do this to this incident.
    #[error("{0}")]
    Forbidden(String),
    /// Not possible in the incident's state, or the request is incomplete.
    #[error("{0}")]
    Invalid(String),
}

/// Everything the decisions read besides the incidents: the city, the policy, the calendar
/// and what is known of the rules.
#[derive(Debug, Clone)]
pub struct Context {
    /// The units and where each community is.
    pub jurisdictions: std::sync::Arc<Jurisdictions>,
    /// Deadlines, correlation and routing settings.
    pub policy: Policy,
    /// Working time, for severities whose deadlines count it.
    pub calendar: Calendar,
    /// By rule id.
    pub rules: HashMap<String, RuleProfile>,
}

impl Context {
    /// `start` plus `duration`, in working time when the terms say so.
    pub fn deadline(&self, terms: &Terms, start: Ms, duration: Ms) -> Ms {
        if terms.working_time {
            self.calendar.add_working(start, duration)
        } else {
            start.saturating_add(duration)
        }
    }

    fn profile(&self, rule: &str) -> RuleProfile {
        self.rules
            .get(rule)
            .cloned()
            .unwrap_or_else(|| RuleProfile::unknown(rule))
    }
}

/// Every incident, the indexes correlation needs, and the timers.
#[derive(Debug, Default)]
pub struct Book {
    incidents: HashMap<String, Incident>,
    /// `rule \x1f key` → the latest incident of that rule and key.
    latest: HashMap<String, String>,
    /// alert id → (incident id, highest revision seen).
    alerts: HashMap<String, (String, u32)>,
    /// (due, incident id) of every armed deadline.
    timers: BTreeSet<(Ms, String)>,
    actions: HashSet<String>,
    seq: u64,
    clock: Option<Ms>,
}

/// The state change an event records (all of it, so [`Book::apply`] needs nothing else).
struct Change {
    state: State,
    level: Level,
    unit: Code,
    due_at: Option<Ms>,
    duty: Option<Duty>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a book from its event log, in log order.
    pub fn restore(events: impl IntoIterator<Item = IncidentEvent>) -> Self {
        let mut book = Self::new();
        for e in events {
            book.apply(&e);
        }
        book
    }

    /// One incident.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Every incident, in no particular order.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// How many incidents it holds.
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// The sequence number of the latest event.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The clock: the latest time [`Book::advance`] reached (or an event carried).
    pub fn clock(&self) -> Option<Ms> {
        self.clock
    }

    /// The earliest armed deadline.
    pub fn next_due(&self) -> Option<Ms> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Whether the action id was applied already.
    pub fn has_action(&self, action_id: &str) -> bool {
        self.actions.contains(action_id)
    }

    /// Applies one event: the only place an incident changes. Events of unknown incidents
    /// (other than `opened`) are ignored.
    pub fn apply(&mut self, e: &IncidentEvent) {
        self.seq = self.seq.max(e.seq);
        if matches!(e.kind, EventType::Escalated | EventType::Overdue) || e.actor.is_some() {
            // Timer and action events stamp the clock they happened at.
            self.clock = Some(self.clock.map_or(e.at, |c| c.max(e.at)));
        }
        if let Some(id) = &e.action_id {
            self.actions.insert(id.clone());
        }
        if e.kind == EventType::Opened
            && let Some(o) = &e.opening
        {
            let inc = Incident {
                incident_id: e.incident_id.clone(),
                state: e.state,
                rule: e.rule.clone(),
                title: o.title.clone(),
                department: o.department.clone(),
                severity: e.severity,
                level: e.level,
                unit: e.unit,
                unit_name: e.unit_name.clone(),
                opened_at: e.at,
                last_seen: e.at,
                count: e.count,
                due_at: e.due_at,
                duty: e.duty,
                overdue: false,
                key: e.key.clone(),
                location: e.location.clone(),
                alert_ids: e.alert_ids.clone(),
                home: o.home,
                home_name: o.home_name.clone(),
                since: e.at,
                terms: o.terms.clone(),
                quiet_gap_ms: o.quiet_gap_ms,
                escalations: 0,
                reworks: 0,
                extensions: 0,
                missed_deadline: false,
                acked_at: None,
                handled_at: None,
                closed_at: None,
            };
            for a in &e.alert_ids {
                self.alerts
                    .insert(a.clone(), (e.incident_id.clone(), e.revision.unwrap_or(1)));
            }
            self.latest
                .insert(correlation_key(&e.rule, &e.key), e.incident_id.clone());
            if let Some(t) = inc.timer() {
                self.timers.insert((t, inc.incident_id.clone()));
            }
            self.incidents.insert(e.incident_id.clone(), inc);
            return;
        }
        let Some(inc) = self.incidents.get_mut(&e.incident_id) else {
            return;
        };
        if let Some(t) = inc.timer() {
            self.timers.remove(&(t, inc.incident_id.clone()));
        }
        let moved = inc.unit != e.unit;
        inc.state = e.state;
        inc.level = e.level;
        inc.unit = e.unit;
        inc.unit_name = e.unit_name.clone();
        inc.due_at = e.due_at;
        inc.duty = e.duty;
        inc.count = e.count;
        if moved {
            inc.since = e.at;
        }
        match e.kind {
            EventType::Updated => {
                inc.last_seen = inc.last_seen.max(e.at);
                for a in &e.alert_ids {
                    let rev = e.revision.unwrap_or(1);
                    match self.alerts.get_mut(a) {
                        Some(seen) => seen.1 = seen.1.max(rev),
                        None => {
                            inc.alert_ids.push(a.clone());
                            self.alerts.insert(a.clone(), (e.incident_id.clone(), rev));
                        }
                    }
                }
            }
            EventType::Escalated => {
                inc.escalations += 1;
                inc.missed_deadline = true;
                inc.since = e.at;
            }
            EventType::Overdue => {
                inc.overdue = true;
                inc.missed_deadline = true;
            }
            EventType::Acknowledged => {
                inc.acked_at.get_or_insert(e.at);
            }
            EventType::Handled => inc.handled_at = Some(e.at),
            EventType::Rework => {
                inc.reworks += 1;
                inc.since = e.at;
            }
            EventType::Extended => {
                inc.extensions += 1;
                inc.overdue = false;
            }
            EventType::Returned | EventType::Dispatched => {
                inc.since = e.at;
                inc.overdue = false;
            }
            EventType::Closed | EventType::Voided => inc.closed_at = Some(e.at),
            EventType::Opened | EventType::Commented => {}
        }
        if let Some(t) = inc.timer() {
            self.timers.insert((t, inc.incident_id.clone()));
        }
    }

    /// The next event of `inc`, recording `change`.
    fn event(
        &mut self,
        ctx: &Context,
        inc: &Incident,
        kind: EventType,
        at: Ms,
        change: Change,
    ) -> IncidentEvent {
        self.seq += 1;
        IncidentEvent {
            seq: self.seq,
            incident_id: inc.incident_id.clone(),
            kind,
            at,
            state: change.state,
            level: change.level,
            unit: change.unit,
            unit_name: ctx.jurisdictions.name(change.unit),
            due_at: change.due_at,
            duty: change.duty,
            rule: inc.rule.clone(),
            severity: inc.severity,
            key: inc.key.clone(),
            location: inc.location.clone(),
            alert_ids: Vec::new(),
            count: inc.count,
            actor: None,
            comment: None,
            action_id: None,
            revision: None,
            opening: None,
        }
    }

    fn unchanged(inc: &Incident) -> Change {
        Change {
            state: inc.state,
            level: inc.level,
            unit: inc.unit,
            due_at: inc.due_at,
            duty: inc.duty,
        }
    }

    /// Takes one alert: opens an incident, updates one, or (an alert seen before) nothing.
    pub fn alert(&mut self, ctx: &Context, a: &AlertIn) -> Vec<IncidentEvent> {
        if let Some((id, rev)) = self.alerts.get(&a.alert_id).cloned() {
            if a.revision <= rev {
                return Vec::new();
            }
            let Some(inc) = self.incidents.get(&id).cloned() else {
                return Vec::new();
            };
            let mut e = self.event(ctx, &inc, EventType::Updated, a.at, Self::unchanged(&inc));
            e.alert_ids = vec![a.alert_id.clone()];
            e.revision = Some(a.revision);
            self.apply(&e);
            return vec![e];
        }
        let ckey = correlation_key(&a.rule, &a.key);
        if let Some(inc) = self.latest.get(&ckey).and_then(|id| self.incidents.get(id))
            && (!inc.state.is_final() || a.at < inc.last_seen + inc.quiet_gap_ms)
        {
            let inc = inc.clone();
            let mut e = self.event(ctx, &inc, EventType::Updated, a.at, Self::unchanged(&inc));
            e.count = inc.count + 1;
            e.alert_ids = vec![a.alert_id.clone()];
            if a.revision > 1 {
                e.revision = Some(a.revision);
            }
            self.apply(&e);
            return vec![e];
        }
        let j = &ctx.jurisdictions;
        let home = a
            .unit
            .filter(|u| j.unit(*u).is_some())
            .unwrap_or_else(|| j.route(&a.location).unit);
        let profile = ctx.profile(&a.rule);
        let terms = ctx.policy.terms(a.severity, profile.overrides);
        let unit = home.at(terms.start);
        let level = unit.level();
        let id = incident_id(&a.rule, &a.key, a.at);
        let due = ctx.deadline(&terms, a.at, terms.ack(level));
        self.seq += 1;
        let e = IncidentEvent {
            seq: self.seq,
            incident_id: id,
            kind: EventType::Opened,
            at: a.at,
            state: State::Open,
            level,
            unit,
            unit_name: j.name(unit),
            due_at: Some(due),
            duty: Some(Duty::Ack),
            rule: a.rule.clone(),
            severity: a.severity,
            key: a.key.clone(),
            location: a.location.clone(),
            alert_ids: vec![a.alert_id.clone()],
            count: 1,
            actor: None,
            comment: None,
            action_id: None,
            revision: (a.revision > 1).then_some(a.revision),
            opening: Some(Opening {
                title: a.title.clone(),
                department: profile.department.clone(),
                home,
                home_name: j.name(home),
                quiet_gap_ms: profile.quiet_gap(ctx.policy.min_quiet_gap_ms),
                terms,
            }),
        };
        self.apply(&e);
        vec![e]
    }

    /// Fires every deadline due at or before `clock`, each at its own due time, in time
    /// order: escalation to the parent unit (with the new level's deadline), or an overdue
    /// mark where there is no level above or for a late check.
    pub fn advance(&mut self, ctx: &Context, clock: Ms) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        while let Some((due, id)) = self.timers.first().cloned() {
            if due > clock {
                break;
            }
            self.timers.pop_first();
            let Some(inc) = self.incidents.get(&id).cloned() else {
                continue;
            };
            let duty = inc.duty.unwrap_or(Duty::Ack);
            let parent = inc.unit.parent();
            let e = match (duty, parent) {
                (Duty::Ack | Duty::Handle, Some(parent)) => {
                    let level = parent.level();
                    let within = match duty {
                        Duty::Ack => inc.terms.ack(level),
                        _ => inc.terms.handle(level),
                    };
                    let change = Change {
                        state: inc.state,
                        level,
                        unit: parent,
                        due_at: Some(ctx.deadline(&inc.terms, due, within)),
                        duty: Some(duty),
                    };
                    self.event(ctx, &inc, EventType::Escalated, due, change)
                }
                _ => self.event(ctx, &inc, EventType::Overdue, due, Self::unchanged(&inc)),
            };
            self.apply(&e);
            out.push(e);
        }
        self.clock = Some(self.clock.map_or(clock, |c| c.max(clock)));
        out
    }

    /// Takes one action. A refused action changes nothing; an action whose id was applied
    /// before changes nothing and is not refused.
    ///
    /// # Errors
    /// [`Refusal`]: no such incident or unit, not the actor's to do, or not possible now.
    pub fn act(&mut self, ctx: &Context, a: &Action) -> Result<Vec<IncidentEvent>, Refusal> {
        if a.action_id
            .as_ref()
            .is_some_and(|id| self.actions.contains(id))
        {
            return Ok(Vec::new());
        }
        let inc = self
            .incidents
            .get(&a.incident_id)
            .cloned()
            .ok_or_else(|| Refusal::NotFound(a.incident_id.clone()))?;
        if ctx.jurisdictions.unit(a.unit).is_none() {
            return Err(Refusal::UnknownUnit(a.unit));
        }
        if !inc.visible_to(a.unit) {
            return Err(Refusal::Forbidden(format!(
                "incident {} is outside unit {}'s jurisdiction",
                inc.incident_id, a.unit
            )));
        }
        let verb = a.action.as_str();
        let invalid = |why: &str| {
            Err(Refusal::Invalid(format!(
                "cannot {verb} incident {} ({}): {why}",
                inc.incident_id, inc.state
            )))
        };
        let supervisor = || {
            Refusal::Forbidden(format!(
                "{verb}: only the level above unit {} (or the city for the city's own) may do this; {} may not",
                inc.unit, a.unit
            ))
        };
        let t = &inc.terms;
        let (kind, change) = match a.action {
            ActionKind::Ack => {
                if inc.state != State::Open {
                    return invalid("only an open incident is acknowledged");
                }
                let due = ctx.deadline(t, inc.since, t.handle(inc.level)).max(a.at);
                (
                    EventType::Acknowledged,
                    Change {
                        state: State::Acknowledged,
                        due_at: Some(due),
                        duty: Some(Duty::Handle),
                        ..Self::unchanged(&inc)
                    },
                )
            }
            ActionKind::Handled => {
                if !matches!(inc.state, State::Acknowledged | State::Rework) {
                    return invalid("acknowledge it first");
                }
                (
                    EventType::Handled,
                    Change {
                        state: State::Handled,
                        due_at: Some(ctx.deadline(t, a.at, t.verify(inc.level))),
                        duty: Some(Duty::Verify),
                        ..Self::unchanged(&inc)
                    },
                )
            }
            ActionKind::VerifyOk | ActionKind::VerifyFail => {
                if inc.state != State::Handled {
                    return invalid("only a handled incident is checked");
                }
                if !inc.supervised_by(a.unit) {
                    return Err(supervisor());
                }
                if a.action == ActionKind::VerifyOk {
                    (
                        EventType::Closed,
                        Change {
                            state: State::Closed,
                            due_at: None,
                            duty: None,
                            ..Self::unchanged(&inc)
                        },
                    )
                } else {
                    (
                        EventType::Rework,
                        Change {
                            state: State::Rework,
                            due_at: Some(ctx.deadline(t, a.at, t.handle(inc.level))),
                            duty: Some(Duty::Handle),
                            ..Self::unchanged(&inc)
                        },
                    )
                }
            }
            ActionKind::Return => {
                if !matches!(inc.state, State::Open | State::Acknowledged | State::Rework) {
                    return invalid("only an incident not yet handled is returned");
                }
                if inc.level == Level::City {
                    return invalid("the centre holds it already");
                }
                let city = ctx.jurisdictions.city();
                (
                    EventType::Returned,
                    Change {
                        state: State::Open,
                        level: Level::City,
                        unit: city,
                        due_at: Some(ctx.deadline(t, a.at, t.ack(Level::City))),
                        duty: Some(Duty::Ack),
                    },
                )
            }
            ActionKind::Dispatch => {
                let Some(to) = a.to else {
                    return invalid("say which unit to send it to (`to`)");
                };
                if ctx.jurisdictions.unit(to).is_none() {
                    return Err(Refusal::UnknownUnit(to));
                }
                if !a.unit.contains(to) {
                    return Err(Refusal::Forbidden(format!(
                        "dispatch: unit {to} is outside unit {}'s jurisdiction",
                        a.unit
                    )));
                }
                if !matches!(inc.state, State::Open | State::Acknowledged | State::Rework) {
                    return invalid("only an incident not yet handled is dispatched");
                }
                if to == inc.unit {
                    return invalid("it is there already");
                }
                (
                    EventType::Dispatched,
                    Change {
                        state: State::Open,
                        level: to.level(),
                        unit: to,
                        due_at: Some(ctx.deadline(t, a.at, t.ack(to.level()))),
                        duty: Some(Duty::Ack),
                    },
                )
            }
            ActionKind::Extend => {
                if inc.state.is_final() {
                    return invalid("it is over");
                }
                if !inc.supervised_by(a.unit) {
                    return Err(supervisor());
                }
                let Some(new_due) = a.due_at else {
                    return invalid("say the new deadline (`due_at`)");
                };
                let current = inc.due_at.unwrap_or(Ms::MIN);
                if new_due <= current || new_due <= a.at {
                    return invalid(
                        "the new deadline must be later than the current one and than now",
                    );
                }
                (
                    EventType::Extended,
                    Change {
                        due_at: Some(new_due),
                        ..Self::unchanged(&inc)
                    },
                )
            }
            ActionKind::Void => {
                if inc.state.is_final() {
                    return invalid("it is over");
                }
                if !inc.supervised_by(a.unit) {
                    return Err(supervisor());
                }
                (
                    EventType::Voided,
                    Change {
                        state: State::Voided,
                        due_at: None,
                        duty: None,
                        ..Self::unchanged(&inc)
                    },
                )
            }
            ActionKind::Comment => {
                if a.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    return invalid("a comment needs text (`comment`)");
                }
                (EventType::Commented, Self::unchanged(&inc))
            }
        };
        let mut e = self.event(ctx, &inc, kind, a.at, change);
        e.actor = Some(a.unit);
        e.comment = a.comment.clone();
        e.action_id = a.action_id.clone();
        self.apply(&e);
        Ok(vec![e])
    }
}

fn correlation_key(rule: &str, key: &str) -> String {
    let mut k = String::with_capacity(rule.len() + key.len() + 1);
    k.push_str(rule);
    k.push('\x1f');
    k.push_str(key);
    k
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::jurisdiction::{RoutingOptions, sample_city_path};
    use crate::time::{MINUTE, parse_rfc3339};

    fn ctx() -> Context {
        let j = Jurisdictions::load(&sample_city_path(), RoutingOptions::default()).expect("city");
        Context {
            jurisdictions: Arc::new(j),
            policy: Policy::default(),
            calendar: Calendar::default(),
            rules: HashMap::new(),
        }
    }

    fn t(s: &str) -> Ms {
        parse_rfc3339(&format!("2026-03-02T{s}Z")).expect("time")
    }

    fn code(s: &str) -> Code {
        s.parse().expect("code")
    }

    /// An alert in community 330102001001 (湖滨一社区): the middle of its grid cell (column 0,
    /// row 3 of the sample layout), far from any border.
    fn alert(id: &str, key: &str, at: Ms, severity: Severity) -> AlertIn {
        AlertIn {
            alert_id: id.into(),
            rule: "traffic/accident_cluster".into(),
            title: "Accident cluster".into(),
            severity,
            key: key.into(),
            at,
            revision: 1,
            location: Location::from_point(30.2400, 120.1088, 9).expect("point"),
            unit: None,
        }
    }

    fn act(id: &str, action: ActionKind, unit: &str, at: Ms) -> Action {
        Action {
            incident_id: id.into(),
            action,
            unit: code(unit),
            at,
            comment: None,
            due_at: None,
            to: None,
            action_id: None,
        }
    }

    fn kinds(events: &[IncidentEvent]) -> Vec<(EventType, String, Ms)> {
        events
            .iter()
            .map(|e| (e.kind, e.unit.to_string(), e.at))
            .collect()
    }

    const COMMUNITY: &str = "330102001001";
    const STREET: &str = "330102001000";
    const DISTRICT: &str = "330102000000";
    const CITY: &str = "330100000000";

    #[test]
    fn an_alert_opens_at_its_community_and_later_windows_join_it() {
        let ctx = ctx();
        let mut book = Book::new();
        let opened = book.alert(&ctx, &alert("a1", "cell-x", t("08:10:00"), Severity::High));
        assert_eq!(opened.len(), 1);
        let e = &opened[0];
        assert_eq!(
            (e.kind, e.unit.to_string(), e.level),
            (EventType::Opened, COMMUNITY.into(), Level::Community)
        );
        assert_eq!(
            e.due_at,
            Some(t("08:25:00")),
            "high: 15 minutes to acknowledge"
        );
        assert_eq!(
            e.incident_id,
            incident_id("traffic/accident_cluster", "cell-x", t("08:10:00"))
        );
        let id = e.incident_id.clone();
        let joined = book.alert(&ctx, &alert("a2", "cell-x", t("08:20:00"), Severity::High));
        assert_eq!(
            kinds(&joined),
            [(EventType::Updated, COMMUNITY.into(), t("08:20:00"))]
        );
        assert_eq!(
            book.get(&id).map(|i| (i.count, i.last_seen)),
            Some((2, t("08:20:00")))
        );
        assert!(
            book.alert(&ctx, &alert("a2", "cell-x", t("08:20:00"), Severity::High))
                .is_empty(),
            "a replayed alert changes nothing"
        );
        let mut revised = alert("a2", "cell-x", t("08:20:00"), Severity::High);
        revised.revision = 2;
        let rev = book.alert(&ctx, &revised);
        assert_eq!(
            (rev[0].kind, rev[0].revision, rev[0].count),
            (EventType::Updated, Some(2), 2),
            "a revision does not count again"
        );
        let other = book.alert(&ctx, &alert("a3", "cell-y", t("08:20:00"), Severity::High));
        assert_eq!(
            other[0].kind,
            EventType::Opened,
            "another key is another incident"
        );
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn an_unacknowledged_incident_climbs_the_chain_exactly_at_each_deadline() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:10:00"), Severity::High))[0]
            .incident_id
            .clone();
        assert!(
            book.advance(&ctx, t("08:24:59.999")).is_empty(),
            "not before the deadline"
        );
        // The clock jumps far past every deadline at once: each fires at its own time.
        let events = book.advance(&ctx, t("12:00:00"));
        assert_eq!(
            kinds(&events),
            [
                (EventType::Escalated, STREET.into(), t("08:25:00")),
                (EventType::Escalated, DISTRICT.into(), t("08:40:00")),
                (EventType::Escalated, CITY.into(), t("08:55:00")),
                (EventType::Overdue, CITY.into(), t("09:10:00")),
            ]
        );
        assert_eq!(events[0].due_at, Some(t("08:40:00")));
        assert!(
            book.advance(&ctx, t("23:00:00")).is_empty(),
            "overdue once, then nothing"
        );
        let inc = book.get(&id).expect("incident");
        assert!(inc.overdue && inc.missed_deadline);
        assert_eq!((inc.level, inc.escalations), (Level::City, 3));
    }

    #[test]
    fn critical_starts_at_the_street_and_a_rule_may_say_otherwise() {
        let mut ctx = ctx();
        let mut book = Book::new();
        let e = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::Critical));
        assert_eq!(
            (e[0].unit.to_string(), e[0].due_at),
            (STREET.into(), Some(t("08:05:00")))
        );
        ctx.rules.insert(
            "traffic/accident_cluster".into(),
            RuleProfile {
                overrides: crate::policy::Overrides {
                    level: Some(Level::District),
                    ack_within_ms: Some(2 * MINUTE),
                },
                ..RuleProfile::default()
            },
        );
        let e = book.alert(&ctx, &alert("a2", "k2", t("08:00:00"), Severity::Low));
        assert_eq!(
            (e[0].unit.to_string(), e[0].due_at),
            (DISTRICT.into(), Some(t("08:02:00")))
        );
    }

    #[test]
    fn an_acknowledged_incident_stops_escalating_for_acknowledgement() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:10:00"), Severity::High))[0]
            .incident_id
            .clone();
        // Acknowledged exactly at the deadline: in time.
        let acked = book
            .act(&ctx, &act(&id, ActionKind::Ack, COMMUNITY, t("08:25:00")))
            .expect("ack");
        assert_eq!(acked[0].kind, EventType::Acknowledged);
        assert_eq!(
            acked[0].due_at,
            Some(t("09:10:00")),
            "handle within 4 x 15 minutes of receiving it"
        );
        assert!(
            book.advance(&ctx, t("09:09:59")).is_empty(),
            "no escalation for acknowledgement"
        );
        // Not handled in time: up to the street, for handling.
        let late = book.advance(&ctx, t("09:10:00"));
        assert_eq!(
            kinds(&late),
            [(EventType::Escalated, STREET.into(), t("09:10:00"))]
        );
        assert_eq!(
            (late[0].state, late[0].duty),
            (State::Acknowledged, Some(Duty::Handle))
        );
    }

    #[test]
    fn handled_checked_reworked_and_closed_by_the_level_above() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::Medium))[0]
            .incident_id
            .clone();
        let step = |book: &mut Book, a: ActionKind, unit: &str, at: &str| {
            book.act(&ctx, &act(&id, a, unit, t(at)))
        };
        assert!(
            matches!(
                step(&mut book, ActionKind::Handled, COMMUNITY, "08:01:00"),
                Err(Refusal::Invalid(_))
            ),
            "handled before ack"
        );
        step(&mut book, ActionKind::Ack, COMMUNITY, "08:02:00").expect("ack");
        let handled = step(&mut book, ActionKind::Handled, COMMUNITY, "08:30:00").expect("handled");
        assert_eq!(
            (handled[0].duty, handled[0].due_at),
            (Some(Duty::Verify), Some(t("09:00:00"))),
            "the street checks within its ack time"
        );
        assert!(
            matches!(
                step(&mut book, ActionKind::VerifyOk, COMMUNITY, "08:31:00"),
                Err(Refusal::Forbidden(_))
            ),
            "nobody checks its own work"
        );
        let rework = step(&mut book, ActionKind::VerifyFail, STREET, "08:40:00").expect("fail");
        assert_eq!(
            (rework[0].state, rework[0].duty),
            (State::Rework, Some(Duty::Handle))
        );
        step(&mut book, ActionKind::Handled, COMMUNITY, "09:00:00").expect("handled again");
        let closed = step(&mut book, ActionKind::VerifyOk, CITY, "09:10:00").expect("ok");
        assert_eq!((closed[0].state, closed[0].due_at), (State::Closed, None));
        assert!(matches!(
            step(&mut book, ActionKind::Ack, COMMUNITY, "09:11:00"),
            Err(Refusal::Invalid(_))
        ));
        let inc = book.get(&id).expect("incident");
        assert_eq!(
            (inc.reworks, inc.closed_at, inc.missed_deadline),
            (1, Some(t("09:10:00")), false)
        );
        assert!(
            book.advance(&ctx, t("23:00:00")).is_empty(),
            "a closed incident has no deadline"
        );
    }

    #[test]
    fn misrouted_incidents_return_to_the_centre_and_are_dispatched() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::High))[0]
            .incident_id
            .clone();
        let back = book
            .act(
                &ctx,
                &act(&id, ActionKind::Return, COMMUNITY, t("08:05:00")),
            )
            .expect("return");
        assert_eq!(
            (back[0].kind, back[0].unit.to_string(), back[0].state),
            (EventType::Returned, CITY.into(), State::Open)
        );
        let mut dispatch = act(&id, ActionKind::Dispatch, CITY, t("08:06:00"));
        dispatch.to = Some(code("330108001002"));
        let sent = book.act(&ctx, &dispatch).expect("dispatch");
        assert_eq!(
            (sent[0].unit.to_string(), sent[0].due_at),
            ("330108001002".into(), Some(t("08:21:00")))
        );
        // Its new community sees it; so does its old one (the place is still there).
        let inc = book.get(&id).expect("incident");
        assert!(inc.visible_to(code("330108001002")) && inc.visible_to(code(COMMUNITY)));
        assert!(!inc.visible_to(code("330106001001")));
    }

    #[test]
    fn only_the_level_above_extends_and_voids() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::High))[0]
            .incident_id
            .clone();
        let mut extend = act(&id, ActionKind::Extend, COMMUNITY, t("08:05:00"));
        extend.due_at = Some(t("09:00:00"));
        assert!(
            matches!(book.act(&ctx, &extend), Err(Refusal::Forbidden(_))),
            "a unit cannot extend its own deadline"
        );
        extend.unit = code(STREET);
        extend.due_at = Some(t("08:10:00"));
        assert!(
            matches!(book.act(&ctx, &extend), Err(Refusal::Invalid(_))),
            "earlier than the current deadline"
        );
        extend.due_at = Some(t("09:00:00"));
        book.act(&ctx, &extend).expect("extend");
        assert!(book.advance(&ctx, t("08:59:59")).is_empty());
        assert_eq!(
            book.advance(&ctx, t("09:00:00"))[0].kind,
            EventType::Escalated
        );
        let sibling = act(&id, ActionKind::Void, "330102002000", t("09:01:00"));
        assert!(
            matches!(book.act(&ctx, &sibling), Err(Refusal::Forbidden(_))),
            "a sibling street sees nothing"
        );
        let void = book
            .act(&ctx, &act(&id, ActionKind::Void, DISTRICT, t("09:01:00")))
            .expect("void");
        assert_eq!(void[0].state, State::Voided);
    }

    #[test]
    fn a_new_incident_needs_the_quiet_gap_after_closing() {
        let ctx = ctx();
        let mut book = Book::new();
        let id = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::High))[0]
            .incident_id
            .clone();
        book.act(&ctx, &act(&id, ActionKind::Void, CITY, t("08:01:00")))
            .expect("void");
        let tail = book.alert(&ctx, &alert("a2", "k", t("08:09:59"), Severity::High));
        assert_eq!(
            (tail[0].kind, tail[0].incident_id.as_str()),
            (EventType::Updated, id.as_str()),
            "within 10 minutes: the same problem"
        );
        let again = book.alert(&ctx, &alert("a3", "k", t("08:20:00"), Severity::High));
        assert_eq!(again[0].kind, EventType::Opened);
        assert_ne!(again[0].incident_id, id);
    }

    #[test]
    fn outside_places_go_to_the_nearest_district_queue_or_the_city() {
        let ctx = ctx();
        let mut book = Book::new();
        let mut near = alert("a1", "near", t("08:00:00"), Severity::High);
        // 1 km south of the sample city's southern edge (lat 30.19), below 滨江区.
        near.location = Location::from_point(30.181, 120.23, 9).expect("point");
        let e = book.alert(&ctx, &near);
        assert_eq!(
            (e[0].unit.to_string(), e[0].level),
            ("330108000000".into(), Level::District)
        );
        let mut far = alert("a2", "far", t("08:00:00"), Severity::High);
        far.location = Location::from_point(31.2, 121.4, 9).expect("point");
        assert_eq!(book.alert(&ctx, &far)[0].unit.to_string(), CITY);
        let mut nowhere = alert("a3", "nowhere", t("08:00:00"), Severity::High);
        nowhere.location = Location::none();
        assert_eq!(book.alert(&ctx, &nowhere)[0].unit.to_string(), CITY);
    }

    #[test]
    fn working_time_deadlines_skip_the_night() {
        let mut ctx = ctx();
        ctx.policy = Policy::from_toml(
            std::path::Path::new("p.toml"),
            "[severity.low]\nworking_time = true\nack_within = \"1h\"\n",
        )
        .expect("policy");
        let mut book = Book::new();
        // 17:00 local (09:00 UTC) on a Monday: 30 minutes today, 30 tomorrow from 09:00.
        let e = book.alert(&ctx, &alert("a1", "k", t("09:00:00"), Severity::Low));
        assert_eq!(e[0].due_at, parse_rfc3339("2026-03-03T09:30:00+08:00"));
    }

    #[test]
    fn the_event_log_rebuilds_the_book_and_its_timers() {
        let ctx = ctx();
        let mut book = Book::new();
        let mut log = Vec::new();
        let id = {
            let e = book.alert(&ctx, &alert("a1", "k", t("08:00:00"), Severity::High));
            let id = e[0].incident_id.clone();
            log.extend(e);
            id
        };
        log.extend(book.alert(&ctx, &alert("a2", "k", t("08:10:00"), Severity::High)));
        let mut a = act(&id, ActionKind::Comment, STREET, t("08:11:00"));
        a.comment = Some("on our way".into());
        a.action_id = Some("x-1".into());
        log.extend(book.act(&ctx, &a).expect("comment"));
        log.extend(book.advance(&ctx, t("08:20:00")));
        let mut restored = Book::restore(log.clone());
        assert_eq!(restored.get(&id), book.get(&id));
        assert_eq!(restored.seq(), book.seq());
        // The log knows the clock up to its last deadline or action, no further: advancing
        // again from there fires nothing twice.
        assert_eq!(restored.clock(), Some(t("08:15:00")));
        assert!(
            restored.act(&ctx, &a).expect("seen").is_empty(),
            "an action applied before is not applied again"
        );
        assert!(
            restored
                .alert(&ctx, &alert("a2", "k", t("08:10:00"), Severity::High))
                .is_empty(),
            "nor an alert"
        );
        // The restart came late: the street's deadline (08:30) passed while down and fires at
        // once, at its own time; the community's (08:15) fired before the restart, not again.
        let fired = restored.advance(&ctx, t("10:00:00"));
        assert_eq!(
            (fired[0].kind, fired[0].at),
            (EventType::Escalated, t("08:30:00"))
        );
        assert_eq!(fired[0].seq, book.seq() + 1);
        assert_eq!(kinds(&fired), kinds(&book.advance(&ctx, t("10:00:00"))));
    }
}
