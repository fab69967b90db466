//! Outputs never clobber inputs: `--out` and `--dlq` are refused when they name an input file
//! (a feed file, a rule file) or each other, comparing what the paths resolve to (symbolic links,
//! `..`, hard links), not their spelling.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// What a path names: the file it resolves to, and its device and inode when it exists.
#[derive(Debug)]
struct Target {
    resolved: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Target {
    fn of(path: &Path) -> Self {
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| {
            // Not there yet: its folder resolved, and its name.
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.map_or_else(
                || std::env::current_dir().unwrap_or_default(),
                |p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()),
            );
            parent.join(path.file_name().unwrap_or_default())
        });
        Self {
            inode: inode(&resolved),
            resolved,
        }
    }

    fn same(&self, other: &Target) -> bool {
        self.resolved == other.resolved || (self.inode.is_some() && self.inode == other.inode)
    }
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_: &Path) -> Option<(u64, u64)> {
    None
}

/// Refuses `outputs` (flag, path) that name one of `inputs` or one another.
///
/// # Errors
/// Naming the flag and both paths.
pub fn check(outputs: &[(&str, &Path)], inputs: &[PathBuf]) -> anyhow::Result<()> {
    let inputs: Vec<(&PathBuf, Target)> = inputs.iter().map(|p| (p, Target::of(p))).collect();
    let outputs: Vec<(&str, &Path, Target)> = outputs
        .iter()
        .map(|(flag, path)| (*flag, *path, Target::of(path)))
        .collect();
    for (i, (flag, path, target)) in outputs.iter().enumerate() {
        if let Some((input, _)) = inputs.iter().find(|(_, t)| t.same(target)) {
            bail!(
                "{flag} {} is an input ({}): writing it would destroy what is being read; \
                 choose another file",
                path.display(),
                input.display()
            );
        }
        if let Some((other, other_path, _)) = outputs[..i].iter().find(|(_, _, t)| t.same(target)) {
            bail!(
                "{flag} {} is the same file as {other} {}: alerts and dead letters would \
                 overwrite each other; choose two files",
                path.display(),
                other_path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_links_and_new_files_are_compared_by_what_they_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in/traffic.jsonl");
        std::fs::create_dir_all(input.parent().expect("parent")).expect("mkdir");
        std::fs::write(&input, "{}\n").expect("write");
        let inputs = [input.clone()];
        let spelled = dir.path().join("in/../in/./traffic.jsonl");
        let err = check(&[("--out", &spelled)], &inputs).expect_err("same file");
        assert!(err.to_string().contains("--out"), "{err}");
        let link = dir.path().join("link.jsonl");
        std::fs::hard_link(&input, &link).expect("hard link");
        assert!(check(&[("--dlq", &link)], &inputs).is_err(), "hard link");
        #[cfg(unix)]
        {
            let sym = dir.path().join("sym.jsonl");
            std::os::unix::fs::symlink(&input, &sym).expect("symlink");
            assert!(check(&[("--dlq", &sym)], &inputs).is_err(), "symlink");
        }
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("./a.jsonl"));
        let err = check(&[("--out", &a), ("--dlq", &b)], &inputs).expect_err("same output");
        assert!(err.to_string().contains("--dlq"), "{err}");
        let c = dir.path().join("c.jsonl");
        check(&[("--out", &a), ("--dlq", &c)], &inputs).expect("distinct new files");
    }
}
