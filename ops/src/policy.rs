//! The escalation policy: per severity, the level an incident starts at and, per level, the
//! time to acknowledge and to handle; whether deadlines run in working time; correlation and
//! routing settings. Read from TOML, validated with every problem reported at once.
//!
//! ```toml
//! [severity.high]
//! start = "community"     # level an incident starts at
//! ack_within = "15m"      # time to acknowledge, at every level unless overridden below
//! handle_within = "1h"    # time to handle once received; default 4 x ack_within
//! working_time = false    # deadlines in working time (the calendar file); default false
//!
//! [severity.high.levels.city]
//! ack_within = "30m"
//!
//! [correlation]
//! min_quiet_gap = "10m"   # a new incident needs a quiet gap of 2 x the rule's slide, at least this
//!
//! [routing]
//! resolution = 9          # H3 resolution places are routed at
//! outside_max_m = 3000    # outside every community: nearest district's queue within this, else the city's
//! ```
//!
//! Defaults (no file, or a key left out): `critical` starts at the street, `high`, `medium`,
//! `low` and `info` at the community; acknowledgement within 5, 15, 30, 120 and 120 minutes at
//! every level; handling within 4 times that; round the clock.
//!
//! The [`Terms`] in force are copied onto an incident when it opens: editing the policy later
//! changes no running incident.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;

use crate::error::{Error, Result, line_of, parse_toml, read_text};
use crate::jurisdiction::RoutingOptions;
use crate::time::{MINUTE, Ms, format_duration, parse_duration};
use crate::unit::Level;

/// How urgent an incident is (the severity of the rule that raised it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Low,
    /// Needs attention this shift.
    Medium,
    /// Needs attention now.
    High,
    /// Lives or major damage at stake.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("`{s}` is not a severity: info, low, medium, high or critical"))
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The deadlines an incident runs under, fixed when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The level it starts at.
    pub start: Level,
    /// Time to acknowledge at each level (community, street, district, city), milliseconds.
    pub ack_ms: [Ms; 4],
    /// Time to handle at each level, from when that level received it, milliseconds.
    pub handle_ms: [Ms; 4],
    /// Whether the times count working time only.
    pub working_time: bool,
}

impl Terms {
    /// Time to acknowledge at `level`.
    pub fn ack(&self, level: Level) -> Ms {
        self.ack_ms[level.index()]
    }

    /// Time to handle at `level`.
    pub fn handle(&self, level: Level) -> Ms {
        self.handle_ms[level.index()]
    }

    /// Time for the level above `level` (the city for the city) to check a handled incident:
    /// its acknowledgement time.
    pub fn verify(&self, level: Level) -> Ms {
        self.ack(level.up().unwrap_or(Level::City))
    }
}

/// What a rule's header says about its incidents (`-- level:`, `-- ack_within:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The level its incidents start at, instead of the severity's.
    pub level: Option<Level>,
    /// Time to acknowledge at every level, instead of the severity's (handling: 4 times it).
    pub ack_within_ms: Option<Ms>,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    terms: [Terms; 5],
    /// The least quiet gap (event time) before the same rule and key open a new incident.
    pub min_quiet_gap_ms: Ms,
    /// Routing settings.
    pub routing: RoutingOptions,
}

/// The default policy: see the module docs.
impl Default for Policy {
    fn default() -> Self {
        let terms = |start: Level, ack_min: Ms| {
            let ack = ack_min * MINUTE;
            Terms {
                start,
                ack_ms: [ack; 4],
                handle_ms: [4 * ack; 4],
                working_time: false,
            }
        };
        Self {
            terms: [
                terms(Level::Community, 120),
                terms(Level::Community, 120),
                terms(Level::Community, 30),
                terms(Level::Community, 15),
                terms(Level::Street, 5),
            ],
            min_quiet_gap_ms: DEFAULT_MIN_QUIET_GAP_MS,
            routing: RoutingOptions::default(),
        }
    }
}

/// Ten minutes of event time: shorter gaps are the same problem still going on.
pub const DEFAULT_MIN_QUIET_GAP_MS: Ms = 10 * MINUTE;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    severity: BTreeMap<Spanned<String>, SeverityFile>,
    #[serde(default)]
    correlation: CorrelationFile,
    #[serde(default)]
    routing: RoutingFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SeverityFile {
    start: Option<Spanned<String>>,
    ack_within: Option<Spanned<String>>,
    handle_within: Option<Spanned<String>>,
    working_time: Option<bool>,
    #[serde(default)]
    levels: BTreeMap<Spanned<String>, LevelFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    ack_within: Option<Spanned<String>>,
    handle_within: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CorrelationFile {
    min_quiet_gap: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    resolution: Option<Spanned<i64>>,
    outside_max_m: Option<Spanned<f64>>,
}

impl Policy {
    /// Reads a policy file (TOML, see the module docs).
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] with every problem, each naming file, line and key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        Self::from_toml(path, &text)
    }

    /// Like [`Policy::load`], from text.
    ///
    /// # Errors
    /// As [`Policy::load`].
    pub fn from_toml(path: &Path, text: &str) -> Result<Self> {
        let name = path.display().to_string();
        let file: File = parse_toml(&name, text)?;
        let mut problems: Vec<String> = Vec::new();
        let mut report = |span: std::ops::Range<usize>, key: &str, msg: String| {
            problems.push(format!(
                "{name}:{}: {key}: {msg}",
                line_of(text, span.start)
            ));
        };
        let mut duration = |s: &Spanned<String>, key: &str| -> Option<Ms> {
            match parse_duration(s.get_ref()) {
                Ok(0) => {
                    report(s.span(), key, "must be longer than zero".into());
                    None
                }
                Ok(ms) => Some(ms),
                Err(e) => {
                    report(s.span(), key, e);
                    None
                }
            }
        };
        let mut policy = Policy::default();
        let mut level_problems = Vec::new();
        for (sev_name, sev) in &file.severity {
            let key = format!("severity.{}", sev_name.get_ref());
            let Ok(severity) = sev_name.get_ref().parse::<Severity>() else {
                level_problems.push((
                    sev_name.span(),
                    key.clone(),
                    format!(
                        "`{}` is not a severity: info, low, medium, high or critical",
                        sev_name.get_ref()
                    ),
                ));
                continue;
            };
            let terms = &mut policy.terms[severity as usize];
            if let Some(start) = &sev.start {
                match start.get_ref().parse::<Level>() {
                    Ok(l) => terms.start = l,
                    Err(e) => level_problems.push((start.span(), format!("{key}.start"), e)),
                }
            }
            let ack = sev
                .ack_within
                .as_ref()
                .and_then(|s| duration(s, &format!("{key}.ack_within")));
            let handle = sev
                .handle_within
                .as_ref()
                .and_then(|s| duration(s, &format!("{key}.handle_within")));
            if let Some(ack) = ack {
                terms.ack_ms = [ack; 4];
                terms.handle_ms = [4 * ack; 4];
            }
            if let Some(handle) = handle {
                terms.handle_ms = [handle; 4];
            }
            if let Some(w) = sev.working_time {
                terms.working_time = w;
            }
            for (level_name, lf) in &sev.levels {
                let lkey = format!("{key}.levels.{}", level_name.get_ref());
                let Ok(level) = level_name.get_ref().parse::<Level>() else {
                    level_problems.push((
                        level_name.span(),
                        lkey,
                        format!(
                            "`{}` is not a level: community, street, district or city",
                            level_name.get_ref()
                        ),
                    ));
                    continue;
                };
                let i = level.index();
                if let Some(a) = lf
                    .ack_within
                    .as_ref()
                    .and_then(|s| duration(s, &format!("{lkey}.ack_within")))
                {
                    terms.ack_ms[i] = a;
                    if handle.is_none() && lf.handle_within.is_none() {
                        terms.handle_ms[i] = 4 * a;
                    }
                }
                if let Some(h) = lf
                    .handle_within
                    .as_ref()
                    .and_then(|s| duration(s, &format!("{lkey}.handle_within")))
                {
                    terms.handle_ms[i] = h;
                }
            }
        }
        if let Some(g) = &file.correlation.min_quiet_gap {
            match parse_duration(g.get_ref()) {
                Ok(ms) => policy.min_quiet_gap_ms = ms,
                Err(e) => level_problems.push((g.span(), "correlation.min_quiet_gap".into(), e)),
            }
        }
        if let Some(r) = &file.routing.resolution {
            match u8::try_from(*r.get_ref()) {
                Ok(v) if v <= 15 => policy.routing.resolution = v,
                _ => level_problems.push((
                    r.span(),
                    "routing.resolution".into(),
                    format!("{} is not an H3 resolution (0-15)", r.get_ref()),
                )),
            }
        }
        if let Some(d) = &file.routing.outside_max_m {
            if d.get_ref().is_finite() && *d.get_ref() >= 0.0 {
                policy.routing.outside_max_m = *d.get_ref();
            } else {
                level_problems.push((
                    d.span(),
                    "routing.outside_max_m".into(),
                    "must be a distance in metres, 0 or more".into(),
                ));
            }
        }
        for (span, key, msg) in level_problems {
            problems.push(format!(
                "{name}:{}: {key}: {msg}",
                line_of(text, span.start)
            ));
        }
        problems.sort_by_key(|p| {
            p.split(':')
                .nth(1)
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0)
        });
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The terms of a new incident of `severity` from a rule with `overrides`.
    pub fn terms(&self, severity: Severity, overrides: Overrides) -> Terms {
        let mut t = self.terms[severity as usize].clone();
        if let Some(level) = overrides.level {
            t.start = level;
        }
        if let Some(ack) = overrides.ack_within_ms {
            t.ack_ms = [ack; 4];
            t.handle_ms = [4 * ack; 4];
        }
        t
    }

    /// The policy as TOML with every value spelled out (`citybrain incidents policy`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for s in Severity::ALL {
            let t = &self.terms[s as usize];
            out.push_str(&format!(
                "[severity.{s}]\nstart = \"{}\"\nworking_time = {}\n",
                t.start, t.working_time
            ));
            for l in Level::ALL {
                out.push_str(&format!(
                    "levels.{l} = {{ ack_within = \"{}\", handle_within = \"{}\" }}\n",
                    format_duration(t.ack(l)),
                    format_duration(t.handle(l))
                ));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "[correlation]\nmin_quiet_gap = \"{}\"\n\n[routing]\nresolution = {}\noutside_max_m = {}\n",
            format_duration(self.min_quiet_gap_ms),
            self.routing.resolution,
            self.routing.outside_max_m
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() {
        let p = Policy::default();
        let critical = p.terms(Severity::Critical, Overrides::default());
        assert_eq!(critical.start, Level::Street);
        assert_eq!(critical.ack(Level::District), 5 * MINUTE);
        assert_eq!(critical.handle(Level::Street), 20 * MINUTE);
        let high = p.terms(Severity::High, Overrides::default());
        assert_eq!(
            (high.start, high.ack(Level::Community)),
            (Level::Community, 15 * MINUTE)
        );
        assert_eq!(
            p.terms(Severity::Medium, Overrides::default())
                .ack(Level::City),
            30 * MINUTE
        );
        assert_eq!(
            p.terms(Severity::Low, Overrides::default())
                .ack(Level::Street),
            120 * MINUTE
        );
        assert!(!high.working_time);
    }

    #[test]
    fn a_file_and_a_rule_override_the_defaults() {
        let p = Policy::from_toml(
            Path::new("p.toml"),
            r#"
[severity.high]
ack_within = "10m"
working_time = true
[severity.high.levels.city]
ack_within = "30m"
handle_within = "3h"
[correlation]
min_quiet_gap = "20m"
"#,
        )
        .expect("policy");
        let high = p.terms(Severity::High, Overrides::default());
        assert_eq!(
            high.ack_ms,
            [10 * MINUTE, 10 * MINUTE, 10 * MINUTE, 30 * MINUTE]
        );
        assert_eq!(
            high.handle_ms,
            [40 * MINUTE, 40 * MINUTE, 40 * MINUTE, 180 * MINUTE]
        );
        assert!(high.working_time);
        assert_eq!(p.min_quiet_gap_ms, 20 * MINUTE);
        let over = p.terms(
            Severity::High,
            Overrides {
                level: Some(Level::District),
                ack_within_ms: Some(2 * MINUTE),
            },
        );
        assert_eq!(
            (
                over.start,
                over.ack(Level::City),
                over.handle(Level::Street)
            ),
            (Level::District, 2 * MINUTE, 8 * MINUTE)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
[severity.urgent]
ack_within = "5m"
[severity.high]
start = "province"
ack_within = "soon"
[severity.high.levels.village]
ack_within = "5m"
[severity.low]
handle_within = "0"
[routing]
resolution = 16
"#;
        let Err(Error::Invalid { problems }) = Policy::from_toml(Path::new("p.toml"), text) else {
            panic!("accepted");
        };
        let expect = [
            "p.toml:2: severity.urgent: `urgent` is not a severity",
            "p.toml:5: severity.high.start: `province` is not a level",
            "p.toml:6: severity.high.ack_within: `soon` is not a duration",
            "p.toml:7: severity.high.levels.village: `village` is not a level",
            "p.toml:10: severity.low.handle_within: must be longer than zero",
            "p.toml:12: routing.resolution: 16 is not an H3 resolution",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        let Err(Error::Invalid { problems }) =
            Policy::from_toml(Path::new("p.toml"), "[severity.high]\nack_withn = \"5m\"\n")
        else {
            panic!("unknown key accepted");
        };
        assert!(
            problems[0].starts_with("p.toml:2:") && problems[0].contains("ack_withn"),
            "{problems:?}"
        );
    }
}
