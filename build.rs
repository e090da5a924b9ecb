// Records the git commit for `rruntime --version` (like runc's "commit:" line).
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = std::env::var("RRUNTIME_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=RRUNTIME_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=RRUNTIME_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // Watch HEAD and the current branch's ref where they really are: in a worktree `.git` is a
    // file and `.git/HEAD` does not exist, and a missing watched path reruns this script (and so
    // rebuilds the crate) on every build; other branches moving must not rebuild this one.
    let dirs = git(&["rev-parse", "--git-dir", "--git-common-dir"]).unwrap_or_default();
    let mut dirs = dirs.lines().map(PathBuf::from);
    let (git_dir, common_dir) = (dirs.next(), dirs.next());
    let head = git_dir.map(|d| d.join("HEAD"));
    let branch = head
        .as_ref()
        .and_then(|h| std::fs::read_to_string(h).ok())
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()));
    let branch_ref = common_dir.zip(branch).map(|(d, r)| d.join(r));
    for p in [head, branch_ref].into_iter().flatten() {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
