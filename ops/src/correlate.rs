//! Correlation: which alerts are one incident, and the incident's deterministic id.
//!
//! Alerts of the same rule with the same group key belong to one incident while it is not
//! closed or voided: a new window's alert joins it (count and last seen), a revision of an
//! alert already seen updates it without counting again, an alert id seen before (a replayed
//! alert) changes nothing. After the incident is closed or voided, an alert within the quiet
//! gap of its last alert still joins it (the tail of the same problem: later windows of a
//! sliding rule); a later one opens a new incident. The quiet gap is twice the rule's window
//! slide, at least [`crate::policy::Policy::min_quiet_gap_ms`] (10 minutes by default).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::policy::Overrides;
use crate::time::Ms;

/// What the desk knows of a rule besides its alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleProfile {
    /// The department answering for it (the rule's `-- owner:`, else its folder).
    pub department: String,
    /// `-- level:` and `-- ack_within:` of its header.
    pub overrides: Overrides,
    /// Its window slide (TUMBLE size, HOP slide, CUMULATE step, SESSION gap), when windowed.
    pub slide_ms: Option<Ms>,
}

impl RuleProfile {
    /// The profile of a rule the desk was told nothing about: its department is the first
    /// part of its id (`traffic/congestion` → `traffic`).
    pub fn unknown(rule: &str) -> Self {
        Self {
            department: rule.split('/').next().unwrap_or(rule).to_string(),
            ..Self::default()
        }
    }

    /// The quiet gap of its incidents: twice the slide, at least `min_gap`.
    pub fn quiet_gap(&self, min_gap: Ms) -> Ms {
        self.slide_ms.map_or(min_gap, |s| (2 * s).max(min_gap))
    }
}

/// The incident id: the first 128 bits (hex) of SHA-256 over the rule, the group key and the
/// event time of the alert that opened it, so the same input always gives the same ids.
pub fn incident_id(rule: &str, key: &str, opened_at: Ms) -> String {
    let mut h = Sha256::new();
    h.update(b"incident");
    h.update([0x1f]);
    h.update(rule.as_bytes());
    h.update([0x1f]);
    h.update(key.as_bytes());
    h.update([0x1f]);
    h.update(opened_at.to_be_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MINUTE;

    #[test]
    fn ids_depend_on_rule_key_and_time_only() {
        let a = incident_id("traffic/congestion", "R001", 1000);
        assert_eq!(a, incident_id("traffic/congestion", "R001", 1000));
        assert_eq!(a.len(), 32);
        assert_ne!(a, incident_id("traffic/congestion", "R002", 1000));
        assert_ne!(a, incident_id("traffic/congestion", "R001", 1001));
        assert_ne!(a, incident_id("police/incident_surge", "R001", 1000));
    }

    #[test]
    fn the_quiet_gap_is_twice_the_slide_at_least_the_minimum() {
        let hop = RuleProfile {
            slide_ms: Some(5 * MINUTE),
            ..RuleProfile::unknown("police/fight_escalation")
        };
        assert_eq!(hop.quiet_gap(10 * MINUTE), 10 * MINUTE);
        let hourly = RuleProfile {
            slide_ms: Some(60 * MINUTE),
            ..RuleProfile::default()
        };
        assert_eq!(hourly.quiet_gap(10 * MINUTE), 120 * MINUTE);
        assert_eq!(
            RuleProfile::unknown("x/y").quiet_gap(10 * MINUTE),
            10 * MINUTE
        );
        assert_eq!(
            RuleProfile::unknown("market/failed_inspection").department,
            "market"
        );
    }
}
