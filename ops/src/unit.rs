//! Grid units and their codes: the four levels of the chain and the 12-digit code shape.
//!
//! A unit code has the shape of the administrative division code (行政区划代码): 12 digits,
//! the first 4 name the city, 6 the district, 9 the street and all 12 the community; a parent
//! is its child's code with the lower digits zeroed (`330102001003` → `330102001000` →
//! `330102000000` → `330100000000`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A level of the chain, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 社区: the grid unit on the street.
    Community,
    /// 街道.
    Street,
    /// 区.
    District,
    /// 市: the city's operations centre.
    City,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [
        Level::Community,
        Level::Street,
        Level::District,
        Level::City,
    ];

    /// The lowercase name (`community`, `street`, `district`, `city`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Community => "community",
            Level::Street => "street",
            Level::District => "district",
            Level::City => "city",
        }
    }

    /// Position in [`Level::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The level above, `None` for the city.
    pub fn up(self) -> Option<Level> {
        Level::ALL.get(self.index() + 1).copied()
    }

    /// How many low digits of a code at this level are zero.
    fn zero_digits(self) -> u32 {
        match self {
            Level::Community => 0,
            Level::Street => 3,
            Level::District => 6,
            Level::City => 8,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("`{s}` is not a level: community, street, district or city"))
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A 12-digit unit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(u64);

impl Code {
    const LIMIT: u64 = 1_000_000_000_000;

    /// Reads exactly 12 ASCII digits whose city part (the first 4) is not all zero.
    pub fn parse(s: &str) -> Option<Code> {
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: u64 = s.parse().ok()?;
        (v >= 100_000_000).then_some(Code(v))
    }

    /// The level the code names: trailing zero groups make it a city, district or street.
    pub fn level(self) -> Level {
        [Level::City, Level::District, Level::Street]
            .into_iter()
            .find(|l| self.0.is_multiple_of(10u64.pow(l.zero_digits())))
            .unwrap_or(Level::Community)
    }

    /// The code of this unit's ancestor at `level` (itself at its own level); `level` below
    /// the unit's own gives the unit itself.
    pub fn at(self, level: Level) -> Code {
        if level <= self.level() {
            return self;
        }
        let m = 10u64.pow(level.zero_digits());
        Code(self.0 - self.0 % m)
    }

    /// The parent unit's code, `None` for the city.
    pub fn parent(self) -> Option<Code> {
        self.level().up().map(|l| self.at(l))
    }

    /// Whether `other` is this unit or below it.
    pub fn contains(self, other: Code) -> bool {
        other.level() <= self.level() && other.at(self.level()) == self
    }

    /// Whether this unit is strictly above `other` in the chain.
    pub fn is_above(self, other: Code) -> bool {
        self != other && self.contains(other)
    }

    /// The code as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Code {
    type Error = String;

    fn try_from(v: u64) -> Result<Self, String> {
        if (100_000_000..Self::LIMIT).contains(&v) {
            Ok(Code(v))
        } else {
            Err(format!("{v} is not a 12-digit unit code"))
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

impl FromStr for Code {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Code::parse(s.trim()).ok_or_else(|| format!("`{s}` is not a 12-digit unit code"))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Code {
        s.parse().expect("code")
    }

    #[test]
    fn levels_and_parents_come_from_the_digits() {
        let community = c("330102001003");
        assert_eq!(community.level(), Level::Community);
        assert_eq!(community.parent(), Some(c("330102001000")));
        assert_eq!(c("330102001000").level(), Level::Street);
        assert_eq!(c("330102001000").parent(), Some(c("330102000000")));
        assert_eq!(c("330102000000").level(), Level::District);
        assert_eq!(c("330102000000").parent(), Some(c("330100000000")));
        assert_eq!(c("330100000000").level(), Level::City);
        assert_eq!(c("330100000000").parent(), None);
        assert_eq!(community.at(Level::District), c("330102000000"));
        assert_eq!(community.to_string(), "330102001003");
    }

    #[test]
    fn subtrees_follow_the_prefixes() {
        let street = c("330102001000");
        assert!(street.contains(c("330102001003")));
        assert!(street.contains(street));
        assert!(
            !street.contains(c("330102002001")),
            "sibling street's community"
        );
        assert!(!street.contains(c("330102000000")), "its own district");
        assert!(c("330100000000").contains(c("330108003004")));
        assert!(
            !c("330100000000").contains(c("330200000000")),
            "another city"
        );
        assert!(street.is_above(c("330102001003")));
        assert!(!street.is_above(street));
    }

    #[test]
    fn only_twelve_digits_are_codes() {
        for bad in [
            "33010200100",
            "3301020010030",
            "33010200100x",
            "000000000000",
            "",
        ] {
            assert!(Code::parse(bad).is_none(), "{bad}");
        }
    }
}
