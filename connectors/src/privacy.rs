//! Pseudonymisation of personal fields at ingest.
//!
//! A pseudonym is `ps_` followed by the first 16 bytes of HMAC-SHA256(key, value) in lowercase
//! hex (35 characters in all). The same value under the same key always gives the same
//! pseudonym, so rules can still count "the same phone called 5 times"; without the key a
//! pseudonym cannot be linked back to the value. Raw values are never logged.
//!
//! Keys come from a file (`--pseudonym-key-file`, kept out of `ps`), the command line or the
//! `CITYBRAIN_PSEUDONYM_KEY` environment variable; without one a public development key is used
//! with a warning, which the engine refuses where output leaves the machine (Kafka).
//! `docs/privacy.md` says what pseudonyms protect, against whom, and how to handle keys.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Length of a pseudonym in bytes: `ps_` plus 32 hex digits.
pub const PSEUDONYM_LEN: usize = 35;

/// Where the pseudonymisation key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Read from a key file (`--pseudonym-key-file`): the way to keep it out of `ps`.
    File,
    /// Given explicitly (configuration file or command line).
    Config,
    /// Read from the [`Pseudonymizer::ENV_VAR`] environment variable.
    Env,
    /// The public [`Pseudonymizer::DEV_KEY`]: pseudonyms are NOT protected. Development only.
    DevelopmentDefault,
}

/// Keyed HMAC-SHA256 pseudonymiser. The keyed state is built once and cloned per value.
#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: HmacSha256,
}

impl Pseudonymizer {
    /// Environment variable holding the key when none is configured.
    pub const ENV_VAR: &'static str = "CITYBRAIN_PSEUDONYM_KEY";

    /// Key used when none is configured. It is public, so its pseudonyms protect nothing.
    pub const DEV_KEY: &'static [u8] = b"citybrain-development-key-not-for-production";

    /// A pseudonymiser with `key` (any length).
    pub fn new(key: &[u8]) -> Self {
        let keyed = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        Self { keyed }
    }

    /// The key from `key_file` when given (its contents without surrounding whitespace), else
    /// as [`Pseudonymizer::from_config`] finds it.
    ///
    /// # Errors
    /// [`Error::KeyFile`] when the file cannot be read or holds only whitespace.
    pub fn load(key: Option<&str>, key_file: Option<&Path>) -> Result<(Self, KeySource)> {
        let Some(path) = key_file else {
            return Ok(Self::from_config(key));
        };
        let bad = |detail: String| Error::KeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let key = bytes.trim_ascii();
        if key.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        if key.len() < MIN_KEY_BYTES {
            tracing::warn!(
                path = %path.display(),
                bytes = key.len(),
                "the pseudonymisation key is short: use at least 32 random bytes (docs/privacy.md)"
            );
        }
        warn_if_readable_by_others(path);
        Ok((Self::new(key), KeySource::File))
    }

    /// The key from configuration if `key` is `Some` and not blank, else from the
    /// [`Self::ENV_VAR`] environment variable if set and not blank, else [`Self::DEV_KEY`]
    /// (logged as a warning). Returns where the key came from so callers can refuse or warn.
    pub fn from_config(key: Option<&str>) -> (Self, KeySource) {
        if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
            return (Self::new(key.as_bytes()), KeySource::Config);
        }
        if let Ok(key) = std::env::var(Self::ENV_VAR)
            && !key.trim().is_empty()
        {
            return (Self::new(key.as_bytes()), KeySource::Env);
        }
        tracing::warn!(
            env_var = Self::ENV_VAR,
            "no pseudonymisation key configured: using the PUBLIC development key; \
             pseudonyms of personal data are NOT protected"
        );
        (Self::new(Self::DEV_KEY), KeySource::DevelopmentDefault)
    }

    /// Appends the pseudonym of `value` to `out` (35 bytes, see the module docs).
    pub fn pseudonymize_into(&self, value: &str, out: &mut String) {
        out.push_str(self.pseudonym(value).as_str());
    }

    /// The pseudonym of `value` on the stack: the keyed state is cloned (no re-keying) and the
    /// digest hex-encoded with a table.
    pub(crate) fn pseudonym(&self, value: &str) -> Pseudonym {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; PSEUDONYM_LEN];
        out[..3].copy_from_slice(b"ps_");
        for (pair, &b) in out[3..].chunks_exact_mut(2).zip(&digest[..16]) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        Pseudonym(out)
    }

    /// The pseudonym of `value`.
    pub fn pseudonymize(&self, value: &str) -> String {
        let mut out = String::with_capacity(PSEUDONYM_LEN);
        self.pseudonymize_into(value, &mut out);
        out
    }
}

/// Keys shorter than this are used with a warning: a key is a secret of at least 128 bits.
const MIN_KEY_BYTES: usize = 16;

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the pseudonymisation key file is readable by other users: chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// One pseudonym, `ps_` and 32 lowercase hex digits.
#[derive(Clone, Copy)]
pub(crate) struct Pseudonym([u8; PSEUDONYM_LEN]);

impl Pseudonym {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a pseudonym is ASCII")
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_prefix_and_32_hex_digits() {
        let p = Pseudonymizer::new(b"k");
        let s = p.pseudonymize("13800138000");
        assert_eq!(s.len(), PSEUDONYM_LEN, "{s}");
        assert!(s.starts_with("ps_"), "{s}");
        assert!(
            s[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{s}"
        );
    }

    #[test]
    fn matches_reference_hmac() {
        // The widely published example HMAC_SHA256("key", "The quick brown fox jumps over the
        // lazy dog") = f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8.
        let p = Pseudonymizer::new(b"key");
        assert_eq!(
            p.pseudonymize("The quick brown fox jumps over the lazy dog"),
            "ps_f7bc83f430538424b13298e6aa6fb143"
        );
    }

    #[test]
    fn deterministic_per_key() {
        let a = Pseudonymizer::new(b"key-a");
        let b = Pseudonymizer::new(b"key-b");
        assert_eq!(
            a.pseudonymize("浙A12345"),
            a.clone().pseudonymize("浙A12345")
        );
        assert_ne!(a.pseudonymize("浙A12345"), b.pseudonymize("浙A12345"));
        assert_ne!(a.pseudonymize("浙A12345"), a.pseudonymize("浙A12346"));
        let mut out = String::from("x");
        a.pseudonymize_into("v", &mut out);
        assert_eq!(out, format!("x{}", a.pseudonymize("v")));
    }

    #[test]
    fn key_files_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "  0123456789abcdef0123456789abcdef\n").expect("write");
        let (p, source) = Pseudonymizer::load(Some("ignored"), Some(&path)).expect("key file");
        assert_eq!(source, KeySource::File);
        assert_eq!(
            p.pseudonymize("v"),
            Pseudonymizer::new(b"0123456789abcdef0123456789abcdef").pseudonymize("v")
        );
        std::fs::write(&path, "\n \n").expect("write");
        let err = Pseudonymizer::load(None, Some(&path)).expect_err("empty key file");
        assert!(err.to_string().contains("key"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let missing = dir.path().join("missing");
        assert!(Pseudonymizer::load(None, Some(&missing)).is_err());
    }

    #[test]
    fn explicit_key_wins_and_debug_hides_key() {
        let (p, source) = Pseudonymizer::from_config(Some("secret-key-123"));
        assert_eq!(source, KeySource::Config);
        assert_eq!(
            p.pseudonymize("v"),
            Pseudonymizer::new(b"secret-key-123").pseudonymize("v")
        );
        assert!(!format!("{p:?}").contains("secret"));
    }
}
