//! Embeds the console: the page's own files (`web/`) and its npm dependencies, pinned by
//! `package-lock.json` and laid out by `scripts/console-build.sh`.
//!
//! Where the dependencies come from, first match wins:
//! 1. `CITYBRAIN_CONSOLE_ASSETS`: a folder the script filled (builds on machines without npm);
//! 2. `$OUT_DIR/vendor`, when its copy of the lock file equals ours (a cache: later builds and
//!    rebuilds after editing `web/` run no npm);
//! 3. the script, run now into `$OUT_DIR/vendor` (about a second with npm's cache, a few more
//!    without).
//!
//! When none works (no npm, no network) the crate still builds: it serves a page saying how to
//! get the assets, and cargo prints a warning.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let lock = manifest.join("package-lock.json");
    let script = manifest.join("../scripts/console-build.sh");
    for watched in [
        &lock,
        &manifest.join("package.json"),
        &manifest.join("web"),
        &script,
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    println!("cargo:rerun-if-env-changed=CITYBRAIN_CONSOLE_ASSETS");

    let vendor = match std::env::var_os("CITYBRAIN_CONSOLE_ASSETS") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if same_lock(&lock, &dir) {
                Some(dir)
            } else {
                println!(
                    "cargo:warning=CITYBRAIN_CONSOLE_ASSETS={} holds no assets for console/package-lock.json (run scripts/console-build.sh into it); the console will say how to get them",
                    dir.display()
                );
                None
            }
        }
        None => {
            let dir = out.join("vendor");
            if same_lock(&lock, &dir) {
                Some(dir)
            } else {
                match Command::new("bash")
                    .arg(&script)
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .status()
                {
                    Ok(s) if s.success() && same_lock(&lock, &dir) => Some(dir),
                    Ok(s) => {
                        println!(
                            "cargo:warning=scripts/console-build.sh failed ({s}): the console is built without Leaflet and h3-js and will say how to get them"
                        );
                        None
                    }
                    Err(e) => {
                        println!(
                            "cargo:warning=cannot run scripts/console-build.sh ({e}): the console is built without Leaflet and h3-js and will say how to get them"
                        );
                        None
                    }
                }
            }
        }
    };

    let mut files = Vec::new();
    collect(&manifest.join("web"), "", &mut files);
    if let Some(dir) = &vendor {
        collect(dir, "vendor/", &mut files);
        files.retain(|(name, _)| name != "vendor/package-lock.json");
    }
    files.sort();
    let mut code = String::new();
    writeln!(code, "/// Whether Leaflet and h3-js were embedded.").unwrap();
    writeln!(
        code,
        "pub(crate) const VENDOR_EMBEDDED: bool = {};",
        vendor.is_some()
    )
    .unwrap();
    writeln!(
        code,
        "/// Every embedded file: path below `/assets/`, strong ETag, contents."
    )
    .unwrap();
    writeln!(code, "pub(crate) static FILES: &[(&str, &str, &[u8])] = &[").unwrap();
    for (name, path) in &files {
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        writeln!(
            code,
            "    ({name:?}, \"\\\"{:016x}\\\"\", include_bytes!({:?})),",
            fnv1a(&bytes),
            path.display().to_string()
        )
        .unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(out.join("assets.rs"), code).expect("writing assets.rs to OUT_DIR");
}

/// Whether `dir` was filled by the script from this lock file (it copies the lock in last).
fn same_lock(lock: &Path, dir: &Path) -> bool {
    match (
        std::fs::read(lock),
        std::fs::read(dir.join("package-lock.json")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Every file below `dir`, named `prefix` + its path with `/` separators.
fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if path.is_dir() {
            collect(&path, &format!("{name}/"), files);
        } else {
            files.push((name, path));
        }
    }
}

/// FNV-1a, 64 bits: an ETag only needs to change when the contents do.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
