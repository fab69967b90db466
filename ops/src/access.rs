//! Who may call the incident API: bearer tokens bound to units, stored as SHA-256 hashes.
//!
//! ```toml
//! # access.toml: one [[token]] per caller. `sha256` is the hex SHA-256 of the token
//! # (`printf %s "$TOKEN" | sha256sum`); the token itself is never stored.
//! [[token]]
//! unit = "330100000000"      # the city's operations centre
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! label = "city duty officer" # for logs and people; optional
//! ```
//!
//! A caller sees and acts on its own unit's subtree only (see
//! [`crate::incident::Incident::visible_to`]).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::error::{Error, Result, line_of, parse_toml, read_text};
use crate::jurisdiction::Jurisdictions;
use crate::unit::Code;

/// A caller that presented a known token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The unit the token is bound to.
    pub unit: Code,
    /// The token's label.
    pub label: String,
}

/// The tokens, by hash.
#[derive(Debug, Clone, Default)]
pub struct Access {
    tokens: HashMap<[u8; 32], Caller>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<TokenFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    unit: Spanned<String>,
    sha256: Spanned<String>,
    #[serde(default)]
    label: String,
}

/// SHA-256 of `token`, hex: what the access file stores.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Access {
    /// Reads an access file, checking every unit against the jurisdictions.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] with every problem (unknown unit, a hash that is
    /// not 64 hex digits, the same hash twice), each naming file, line and key.
    pub fn load(path: &Path, jurisdictions: &Jurisdictions) -> Result<Self> {
        let text = read_text(path)?;
        Self::from_toml(path, &text, jurisdictions)
    }

    /// Like [`Access::load`], from text.
    ///
    /// # Errors
    /// As [`Access::load`].
    pub fn from_toml(path: &Path, text: &str, jurisdictions: &Jurisdictions) -> Result<Self> {
        let name = path.display().to_string();
        let file: File = parse_toml(&name, text)?;
        let mut problems = Vec::new();
        let mut tokens = HashMap::new();
        for (i, t) in file.token.iter().enumerate() {
            let at = |s: &Spanned<String>| {
                format!("{name}:{}: token[{i}]", line_of(text, s.span().start))
            };
            let unit = match Code::parse(t.unit.get_ref()) {
                Some(u) if jurisdictions.unit(u).is_some() => Some(u),
                Some(u) => {
                    problems.push(format!(
                        "{}.unit: {u} is not a unit of {}",
                        at(&t.unit),
                        jurisdictions.path().display()
                    ));
                    None
                }
                None => {
                    problems.push(format!(
                        "{}.unit: `{}` is not a 12-digit unit code",
                        at(&t.unit),
                        t.unit.get_ref()
                    ));
                    None
                }
            };
            let hash = parse_hex32(t.sha256.get_ref());
            if hash.is_none() {
                problems.push(format!(
                    "{}.sha256: not 64 hex digits (the SHA-256 of the token, never the token)",
                    at(&t.sha256)
                ));
            }
            if let (Some(unit), Some(hash)) = (unit, hash) {
                let caller = Caller {
                    unit,
                    label: t.label.clone(),
                };
                if tokens.insert(hash, caller).is_some() {
                    problems.push(format!("{}.sha256: the same token twice", at(&t.sha256)));
                }
            }
        }
        if problems.is_empty() {
            Ok(Self { tokens })
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// Binds a token to a unit (tests and tools).
    pub fn insert(&mut self, token: &str, unit: Code, label: &str) {
        let hash = Sha256::digest(token.as_bytes()).into();
        self.tokens.insert(
            hash,
            Caller {
                unit,
                label: label.to_string(),
            },
        );
    }

    /// The caller presenting `token`, if it is known.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens.get(&hash)
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none (the API then answers every request with 401).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// The demo access file shipped with the sample city.
pub fn demo_access_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-access.toml")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jurisdiction::{RoutingOptions, sample_city_path};

    fn city() -> Jurisdictions {
        Jurisdictions::load(&sample_city_path(), RoutingOptions::default()).expect("city")
    }

    #[test]
    fn the_demo_file_binds_one_token_per_level_at_least() {
        let j = city();
        let access = Access::load(&demo_access_path(), &j).expect("demo access");
        let level = |t: &str| access.caller(t).map(|c| c.unit.level());
        use crate::unit::Level::*;
        assert_eq!(level("demo-city"), Some(City));
        assert_eq!(level("demo-district-330102"), Some(District));
        assert_eq!(level("demo-street-330102001"), Some(Street));
        assert_eq!(level("demo-community-330102001001"), Some(Community));
        assert_eq!(access.caller("demo-citY"), None);
    }

    #[test]
    fn problems_are_all_reported() {
        let text = format!(
            "[[token]]\nunit = \"330999000000\"\nsha256 = \"{h}\"\n[[token]]\nunit = \"33\"\nsha256 = \"secret\"\n[[token]]\nunit = \"330100000000\"\nsha256 = \"{h}\"\n[[token]]\nunit = \"330102000000\"\nsha256 = \"{h}\"\n",
            h = token_hash("x")
        );
        let Err(Error::Invalid { problems }) =
            Access::from_toml(Path::new("a.toml"), &text, &city())
        else {
            panic!("accepted");
        };
        let expect = [
            "a.toml:2: token[0].unit: 330999000000 is not a unit",
            "a.toml:5: token[1].unit: `33` is not a 12-digit unit code",
            "a.toml:6: token[1].sha256: not 64 hex digits",
            "a.toml:12: token[3].sha256: the same token twice",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }
}
