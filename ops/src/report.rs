//! Indicators (考核) per unit and day, from the incident event log.
//!
//! Incidents count for the unit their place belongs to and every unit above it (a street's
//! row covers its communities). Days are local days of the calendar's UTC offset.
//!
//! | column | meaning |
//! |---|---|
//! | `opened` | incidents opened that day |
//! | `closed` | incidents closed (checked) that day |
//! | `closed_on_time` | of those, closed without any deadline missed (never escalated or overdue) |
//! | `on_time_rate` | `closed_on_time / closed` (null without closures) |
//! | `rework` | checks that failed that day (返工) |
//! | `rework_rate` | `rework / handled` reports that day (null without reports) |
//! | `extended` | deadlines extended that day |
//! | `escalated` | escalations that day |
//! | `open_overdue` | at the day's end: incidents not closed or voided that missed a deadline or are past it |
//! | `mean_ack_s` | mean seconds from opening to the first acknowledgement, of those acknowledged that day |
//! | `mean_close_s` | mean seconds from opening to closing, of those closed that day |

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Serialize;

use crate::calendar::Calendar;
use crate::incident::{EventType, IncidentEvent};
use crate::jurisdiction::Jurisdictions;
use crate::time::Ms;
use crate::unit::{Code, Level};

/// One unit's indicators for one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The unit's code.
    pub unit: Code,
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Option<Level>,
    /// The local day (`YYYY-MM-DD`).
    pub day: String,
    /// Incidents opened.
    pub opened: u64,
    /// Incidents closed.
    pub closed: u64,
    /// Closed with no deadline missed.
    pub closed_on_time: u64,
    /// `closed_on_time / closed`.
    pub on_time_rate: Option<f64>,
    /// Failed checks.
    pub rework: u64,
    /// `rework / handled`.
    pub rework_rate: Option<f64>,
    /// Deadlines extended.
    pub extended: u64,
    /// Escalations.
    pub escalated: u64,
    /// Open incidents past or having missed a deadline at the day's end.
    pub open_overdue: u64,
    /// Mean seconds to the first acknowledgement.
    pub mean_ack_s: Option<f64>,
    /// Mean seconds to closing.
    pub mean_close_s: Option<f64>,
    #[serde(skip)]
    handled: u64,
    #[serde(skip)]
    ack_sum_s: f64,
    #[serde(skip)]
    acks: u64,
    #[serde(skip)]
    close_sum_s: f64,
}

impl Row {
    fn blank(unit: Code, day: NaiveDate) -> Self {
        Self {
            unit,
            name: String::new(),
            level: Some(unit.level()),
            day: day.to_string(),
            opened: 0,
            closed: 0,
            closed_on_time: 0,
            on_time_rate: None,
            rework: 0,
            rework_rate: None,
            extended: 0,
            escalated: 0,
            open_overdue: 0,
            mean_ack_s: None,
            mean_close_s: None,
            handled: 0,
            ack_sum_s: 0.0,
            acks: 0,
            close_sum_s: 0.0,
        }
    }
}

#[derive(Default)]
struct Track {
    home: Option<Code>,
    opened_at: Ms,
    missed: bool,
    acked: bool,
    finished: bool,
    due_at: Option<Ms>,
}

/// Indicators of every unit with activity, per day (all days, or only `day`), from `events`.
/// Units in `jurisdictions` get their names and levels; with `day`, every unit of the city
/// has a row (zeros included).
pub fn indicators(
    events: &[&IncidentEvent],
    jurisdictions: &Jurisdictions,
    calendar: &Calendar,
    day: Option<NaiveDate>,
) -> Vec<Row> {
    let mut sorted: Vec<&IncidentEvent> = events.to_vec();
    sorted.sort_by_key(|e| (e.at, e.seq));
    let mut rows: BTreeMap<(NaiveDate, Code), Row> = BTreeMap::new();
    let mut tracks: HashMap<&str, Track> = HashMap::new();
    let days: Vec<NaiveDate> = match day {
        Some(d) => vec![d],
        None => {
            let mut d: Vec<NaiveDate> = sorted.iter().map(|e| calendar.local_date(e.at)).collect();
            d.dedup();
            d
        }
    };
    if let Some(d) = day {
        for u in jurisdictions.units() {
            rows.insert((d, u.code), Row::blank(u.code, d));
        }
    }
    let mut next_day = 0;
    let snapshot = |rows: &mut BTreeMap<(NaiveDate, Code), Row>,
                    tracks: &HashMap<&str, Track>,
                    d: NaiveDate| {
        let end = calendar.midnight(d.succ_opt().unwrap_or(d));
        for t in tracks.values() {
            let late = t.missed || t.due_at.is_some_and(|due| due < end);
            if let (false, true, Some(home)) = (t.finished, late, t.home) {
                for u in chain(home) {
                    rows.entry((d, u))
                        .or_insert_with(|| Row::blank(u, d))
                        .open_overdue += 1;
                }
            }
        }
    };
    for e in &sorted {
        let d = calendar.local_date(e.at);
        while next_day < days.len() && days[next_day] < d {
            snapshot(&mut rows, &tracks, days[next_day]);
            next_day += 1;
        }
        let t = tracks.entry(e.incident_id.as_str()).or_default();
        if let Some(o) = &e.opening {
            t.home = Some(o.home);
            t.opened_at = e.at;
        }
        t.due_at = if e.state.is_final() { None } else { e.due_at };
        let Some(home) = t.home else { continue };
        let counted = day.is_none_or(|want| want == d);
        let mut bump = |f: &dyn Fn(&mut Row)| {
            if counted {
                for u in chain(home) {
                    f(rows.entry((d, u)).or_insert_with(|| Row::blank(u, d)));
                }
            }
        };
        match e.kind {
            EventType::Opened => bump(&|r| r.opened += 1),
            EventType::Escalated => {
                t.missed = true;
                bump(&|r| r.escalated += 1);
            }
            EventType::Overdue => t.missed = true,
            EventType::Extended => bump(&|r| r.extended += 1),
            EventType::Rework => bump(&|r| r.rework += 1),
            EventType::Handled => bump(&|r| r.handled += 1),
            EventType::Acknowledged if !t.acked => {
                t.acked = true;
                let s = (e.at - t.opened_at) as f64 / 1000.0;
                bump(&|r| {
                    r.acks += 1;
                    r.ack_sum_s += s;
                });
            }
            EventType::Closed => {
                t.finished = true;
                let s = (e.at - t.opened_at) as f64 / 1000.0;
                let on_time = !t.missed;
                bump(&|r| {
                    r.closed += 1;
                    r.close_sum_s += s;
                    if on_time {
                        r.closed_on_time += 1;
                    }
                });
            }
            EventType::Voided => t.finished = true,
            _ => {}
        }
    }
    while next_day < days.len() {
        snapshot(&mut rows, &tracks, days[next_day]);
        next_day += 1;
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| (a as f64 / b as f64 * 1000.0).round() / 1000.0);
    rows.into_iter()
        .filter(|((d, _), _)| day.is_none_or(|want| want == *d))
        .map(|((_, unit), mut r)| {
            r.name = jurisdictions.name(unit);
            r.on_time_rate = ratio(r.closed_on_time, r.closed);
            r.rework_rate = ratio(r.rework, r.handled);
            r.mean_ack_s = (r.acks > 0).then(|| (r.ack_sum_s / r.acks as f64).round());
            r.mean_close_s = (r.closed > 0).then(|| (r.close_sum_s / r.closed as f64).round());
            r
        })
        .collect()
}

/// The unit and every unit above it.
fn chain(unit: Code) -> impl Iterator<Item = Code> {
    std::iter::successors(Some(unit), |u| u.parent())
}

/// The rows as a table for a terminal, one block per day.
pub fn render(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut day: Option<&str> = None;
    let opt = |v: Option<f64>, pct: bool| match v {
        None => "-".to_string(),
        Some(v) if pct => format!("{:.0}%", v * 100.0),
        Some(v) => format!("{v:.0}"),
    };
    for r in rows {
        if day != Some(r.day.as_str()) {
            day = Some(r.day.as_str());
            let _ = writeln!(
                out,
                "\n{}\n{:<12} {:<10} {:<16} {:>6} {:>6} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>7} {:>8} {:>9}",
                r.day,
                "unit",
                "level",
                "name",
                "opened",
                "closed",
                "on-time",
                "rate",
                "rework",
                "rate",
                "extend",
                "escal",
                "overdue",
                "ack s",
                "close s"
            );
        }
        let name: String = r.name.chars().take(8).collect();
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<16} {:>6} {:>6} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>7} {:>8} {:>9}",
            r.unit.to_string(),
            r.level.map(|l| l.as_str()).unwrap_or_default(),
            name,
            r.opened,
            r.closed,
            r.closed_on_time,
            opt(r.on_time_rate, true),
            r.rework,
            opt(r.rework_rate, true),
            r.extended,
            r.escalated,
            r.open_overdue,
            opt(r.mean_ack_s, false),
            opt(r.mean_close_s, false)
        );
    }
    out
}
