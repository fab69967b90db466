//! Working time: office hours, weekdays, public holidays and swapped working days (调休).
//!
//! A deadline in working time counts only the minutes inside working hours of working days:
//! 2 hours given at 17:00 on a Friday with hours 09:00-12:00 and 13:30-17:30 fall due at
//! 10:30 on Monday (or later, if Monday is a holiday). A swapped working day is a weekend
//! date worked to make up for a holiday bridge; a holiday is a weekday off.
//!
//! ```toml
//! utc_offset = "+08:00"                       # local time of the dates and hours below
//! hours = ["09:00-12:00", "13:30-17:30"]      # working hours of a working day
//! weekdays = ["mon", "tue", "wed", "thu", "fri"]
//! holidays = ["2026-01-01", "2026-02-15..2026-02-23", "2026-10-01..2026-10-07"]
//! workdays = ["2026-02-14", "2026-02-28"]     # 调休: weekend dates that are working days
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result, line_of, parse_toml, read_text};
use crate::time::{HOUR, MINUTE, Ms};

const DAY: Ms = 24 * HOUR;
/// A deadline further than this many days of working time is given up on (treated as
/// round-the-clock time): only a calendar with almost no working days gets there.
const MAX_DAYS: u64 = 3660;

/// Working time, or round the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    offset_ms: Ms,
    /// Working intervals of a working day, minutes after local midnight.
    hours: Vec<(Ms, Ms)>,
    weekdays: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
}

impl Default for Calendar {
    /// Monday to Friday, 09:00-12:00 and 13:30-17:30 at UTC+8, no holidays (the usual hours
    /// of a Chinese government office); used for severities that ask for working time when no
    /// calendar file is given.
    fn default() -> Self {
        Self {
            offset_ms: 8 * HOUR,
            hours: vec![
                (9 * HOUR, 12 * HOUR),
                (13 * HOUR + 30 * MINUTE, 17 * HOUR + 30 * MINUTE),
            ],
            weekdays: [true, true, true, true, true, false, false],
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    utc_offset: Option<Spanned<String>>,
    hours: Option<Vec<Spanned<String>>>,
    weekdays: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    #[serde(default)]
    workdays: Vec<Spanned<String>>,
}

impl Calendar {
    /// Reads a calendar file (TOML, see the module docs).
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] with every problem, each naming file, line and key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        Self::from_toml(path, &text)
    }

    /// Like [`Calendar::load`], from text.
    ///
    /// # Errors
    /// As [`Calendar::load`].
    pub fn from_toml(path: &Path, text: &str) -> Result<Self> {
        let file_name = path.display().to_string();
        let file: File = parse_toml(&file_name, text)?;
        let mut problems = Vec::new();
        let mut spanned = Vec::new();
        let mut at = |s: &Spanned<String>, key: &str, msg: String| {
            spanned.push(format!(
                "{file_name}:{}: {key}: {msg}",
                line_of(text, s.span().start)
            ));
        };
        let mut cal = Calendar::default();
        if let Some(o) = &file.utc_offset {
            match parse_offset(o.get_ref()) {
                Some(ms) => cal.offset_ms = ms,
                None => at(
                    o,
                    "utc_offset",
                    format!("`{}` is not like +08:00", o.get_ref()),
                ),
            }
        }
        if let Some(hours) = &file.hours {
            cal.hours.clear();
            for h in hours {
                match parse_interval(h.get_ref()) {
                    Some(iv) => cal.hours.push(iv),
                    None => at(
                        h,
                        "hours",
                        format!("`{}` is not an interval like 09:00-12:00", h.get_ref()),
                    ),
                }
            }
            cal.hours.sort_unstable();
            if let Some(w) = cal.hours.windows(2).find(|w| w[1].0 < w[0].1) {
                let (a, b) = (w[0], w[1]);
                problems.push(format!(
                    "{file_name}: hours: {} and {} overlap",
                    hhmm_range(a),
                    hhmm_range(b)
                ));
            }
        }
        if let Some(days) = &file.weekdays {
            cal.weekdays = [false; 7];
            for d in days {
                match d.get_ref().trim().parse::<Weekday>() {
                    Ok(w) => cal.weekdays[w.num_days_from_monday() as usize] = true,
                    Err(_) => at(
                        d,
                        "weekdays",
                        format!("`{}` is not a weekday (mon..sun)", d.get_ref()),
                    ),
                }
            }
        }
        for (key, list, out) in [
            ("holidays", &file.holidays, &mut cal.holidays),
            ("workdays", &file.workdays, &mut cal.workdays),
        ] {
            for d in list {
                match parse_dates(d.get_ref()) {
                    Some(dates) => out.extend(dates),
                    None => at(
                        d,
                        key,
                        format!(
                            "`{}` is not a date (2026-10-01) or range (2026-10-01..2026-10-07)",
                            d.get_ref()
                        ),
                    ),
                }
            }
        }
        if let Some(d) = cal.holidays.intersection(&cal.workdays).next() {
            problems.push(format!(
                "{file_name}: {d} is both a holiday and a working day"
            ));
        }
        problems.splice(0..0, spanned);
        if cal.hours.is_empty() {
            problems.push(format!("{file_name}: hours: no working hours"));
        }
        if !cal.weekdays.iter().any(|w| *w) && cal.workdays.is_empty() {
            problems.push(format!("{file_name}: weekdays: no working days"));
        }
        if problems.is_empty() {
            Ok(cal)
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The local date of `ms` (the calendar's UTC offset): the day indicators count by.
    pub fn local_date(&self, ms: Ms) -> NaiveDate {
        let days = (ms + self.offset_ms).div_euclid(DAY);
        NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|e| e.checked_add_days(Days::new(u64::try_from(days).unwrap_or(0))))
            .unwrap_or(NaiveDate::MIN)
    }

    /// Epoch milliseconds of local midnight starting `date`.
    pub fn midnight(&self, date: NaiveDate) -> Ms {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        (date - epoch).num_days() * DAY - self.offset_ms
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        !self.holidays.contains(&date)
            && self.weekdays[date.weekday().num_days_from_monday() as usize]
    }

    /// `start` plus `duration` of working time.
    pub fn add_working(&self, start: Ms, duration: Ms) -> Ms {
        if duration <= 0 {
            return start;
        }
        let mut remaining = duration;
        let mut date = self.local_date(start);
        for _ in 0..MAX_DAYS {
            if self.is_working_day(date) {
                let midnight = self.midnight(date);
                for (a, b) in &self.hours {
                    let from = (midnight + a).max(start);
                    let to = midnight + b;
                    if from < to {
                        if remaining <= to - from {
                            return from + remaining;
                        }
                        remaining -= to - from;
                    }
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        start + duration
    }
}

fn parse_offset(s: &str) -> Option<Ms> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * HOUR + m * MINUTE))
}

fn parse_hhmm(s: &str) -> Option<Ms> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 24 * 60)
        .then_some(h * HOUR + m * MINUTE)
}

fn parse_interval(s: &str) -> Option<(Ms, Ms)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (parse_hhmm(a)?, parse_hhmm(b)?);
    (a < b).then_some((a, b))
}

fn hhmm_range((a, b): (Ms, Ms)) -> String {
    let f = |v: Ms| format!("{:02}:{:02}", v / HOUR, v % HOUR / MINUTE);
    format!("{}-{}", f(a), f(b))
}

fn parse_dates(s: &str) -> Option<Vec<NaiveDate>> {
    let date = |t: &str| NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok();
    match s.split_once("..") {
        None => Some(vec![date(s)?]),
        Some((a, b)) => {
            let (a, b) = (date(a)?, date(b)?);
            if b < a || (b - a).num_days() > 366 {
                return None;
            }
            Some(a.iter_days().take_while(|d| *d <= b).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, rfc3339};

    fn t(s: &str) -> Ms {
        parse_rfc3339(s).expect("time")
    }

    fn spring_festival() -> Calendar {
        Calendar::from_toml(
            Path::new("cal.toml"),
            r#"
utc_offset = "+08:00"
hours = ["09:00-12:00", "13:30-17:30"]
holidays = ["2026-02-16..2026-02-20"]
workdays = ["2026-02-14"]
"#,
        )
        .expect("calendar")
    }

    #[test]
    fn working_time_skips_nights_lunch_weekends_and_holidays() {
        let c = Calendar::default();
        // Friday 17:00 local + 2 h: 30 min on Friday, 1 h 30 min on Monday from 09:00.
        let due = c.add_working(t("2026-03-06T17:00:00+08:00"), 2 * HOUR);
        assert_eq!(rfc3339(due), rfc3339(t("2026-03-09T10:30:00+08:00")));
        // Over lunch: 11:30 + 1 h = 30 min before lunch, 30 min after.
        let due = c.add_working(t("2026-03-09T11:30:00+08:00"), HOUR);
        assert_eq!(due, t("2026-03-09T14:00:00+08:00"));
        // Given at night: counts from 09:00.
        let due = c.add_working(t("2026-03-09T02:00:00+08:00"), 15 * MINUTE);
        assert_eq!(due, t("2026-03-09T09:15:00+08:00"));
        // Exactly filling the morning ends at 12:00, not 13:30.
        let due = c.add_working(t("2026-03-09T09:00:00+08:00"), 3 * HOUR);
        assert_eq!(due, t("2026-03-09T12:00:00+08:00"));
    }

    #[test]
    fn a_swapped_saturday_is_worked_and_the_holiday_week_is_not() {
        let c = spring_festival();
        // Friday 13 Feb 17:00 + 1 h: 30 min on Friday, 30 min on Saturday 14 Feb (调休).
        let due = c.add_working(t("2026-02-13T17:00:00+08:00"), HOUR);
        assert_eq!(due, t("2026-02-14T09:30:00+08:00"));
        // Saturday 14 Feb 17:00 + 1 h: 30 min Saturday, then the holiday week and the weekend
        // are skipped: Monday 23 Feb 09:30.
        let due = c.add_working(t("2026-02-14T17:00:00+08:00"), HOUR);
        assert_eq!(due, t("2026-02-23T09:30:00+08:00"));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "utc_offset = \"8h\"\nhours = [\"09:00-12:00\", \"11:00-13:00\", \"25:00-26:00\"]\nweekdays = [\"mon\", \"funday\"]\nholidays = [\"2026-13-01\"]\n";
        let Err(Error::Invalid { problems }) = Calendar::from_toml(Path::new("c.toml"), text)
        else {
            panic!("accepted");
        };
        let expect = [
            "c.toml:1: utc_offset: `8h`",
            "c.toml:2: hours: `25:00-26:00`",
            "c.toml: hours: 09:00-12:00 and 11:00-13:00 overlap",
            "c.toml:3: weekdays: `funday`",
            "c.toml:4: holidays: `2026-13-01`",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        let Err(Error::Invalid { problems }) =
            Calendar::from_toml(Path::new("c.toml"), "hour = []\n")
        else {
            panic!("unknown key accepted");
        };
        assert!(
            problems[0].starts_with("c.toml:1:") && problems[0].contains("hour"),
            "{problems:?}"
        );
    }
}
