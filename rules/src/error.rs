//! Errors of the rules crate, sorted by whose fault they are: a rule author's mistake is a
//! [`Problem`] with its file, line and column; everything else names the failing action.

use std::fmt;
use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while loading or running rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules folder could not be listed.
    #[error("cannot read rules folder {path}")]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A rule file could not be read.
    #[error("cannot read rule {path}")]
    ReadRule {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// One or more rules are invalid; every problem found is listed.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// A saved state does not fit the rule it is restored into (a damaged or foreign
    /// checkpoint).
    #[error("rule {rule}: cannot restore its state: {detail}")]
    Restore {
        /// The rule id.
        rule: String,
        /// What does not fit.
        detail: String,
    },
    /// Running a rule's plan failed: an engine fault, or the rule's (an integer division by
    /// zero, a regular expression too large to compile, the memory it may take exhausted).
    #[error("rule {rule}: execution failed")]
    Execute {
        /// The rule id.
        rule: String,
        /// The cause.
        source: DataFusionError,
    },
    /// A rule went over one of its limits ([`crate::Limits`]).
    #[error("rule {rule}: {message}")]
    Limit {
        /// The rule id.
        rule: String,
        /// Which limit, by how much, and the header that raises it.
        message: String,
    },
}

/// A mistake in a rule file, at a position in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong and, where we can tell, how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d > 0 && *d <= c.len().div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["traffic", "police", "emergency", "market"];
        assert_eq!(suggest("trafic", names), Some("traffic"));
        assert_eq!(suggest("emergncy", names), Some("emergency"));
        assert_eq!(suggest("weather", names), None);
        assert_eq!(suggest("police", names), None);
    }
}
