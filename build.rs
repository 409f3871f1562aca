//! Embeds the git commit and the build date in the binary for `custody version`. Both are
//! optional: outside a git checkout the commit is "unknown", and the date honours
//! SOURCE_DATE_EPOCH (reproducible builds) before the clock.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=CUSTODY_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CUSTODY_BUILD_DATE={}", civil_date(epoch));
    println!(
        "cargo:rustc-env=CUSTODY_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Rebuild only when the checked-out commit moves, not on every source edit.
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(git_dir) = git_dir() {
        let head = git_dir.join("HEAD");
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(name) = text.trim().strip_prefix("ref: ")
        {
            let common = common_dir(&git_dir);
            println!("cargo:rerun-if-changed={}", common.join(name).display());
            println!(
                "cargo:rerun-if-changed={}",
                common.join("packed-refs").display()
            );
        }
    }
}

/// The `.git` directory; in a worktree `.git` is a file naming it.
fn git_dir() -> Option<std::path::PathBuf> {
    let dot_git = std::path::Path::new(".git");
    if dot_git.is_dir() {
        return Some(dot_git.to_path_buf());
    }
    let text = std::fs::read_to_string(dot_git).ok()?;
    Some(std::path::PathBuf::from(
        text.trim().strip_prefix("gitdir: ")?,
    ))
}

/// Where a worktree's branch refs live: the main repository's git directory.
fn common_dir(git_dir: &std::path::Path) -> std::path::PathBuf {
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir.to_path_buf(),
    }
}

/// `YYYY-MM-DD` of a Unix time (days-from-civil inverse, proleptic Gregorian).
fn civil_date(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
