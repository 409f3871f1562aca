//! The source record: which repository, commit, tree and ref an artifact was built from, read
//! with gix (no `git` binary), plus the tags at `HEAD`, whether the commit is signed and whether
//! the work tree was dirty.
//!
//! A dirty tree is refused unless [`DirtyPolicy::Allow`] is given; then the record says so.

use std::fmt;
use std::path::{Path, PathBuf};

use gix::bstr::ByteSlice;
use serde::{Deserialize, Serialize};

/// How many dirty paths a record or an error carries.
pub const MAX_DIRTY_PATHS: usize = 20;

/// What to do with a work tree that has modified or untracked files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DirtyPolicy {
    /// Fail with [`SourceError::Dirty`].
    #[default]
    Refuse,
    /// Record `dirty: true` and the first paths.
    Allow,
}

/// Facts the CI knows better than the checkout (a CI checkout is often detached and may have no
/// remote). The CLI fills these from [`crate::evidence::ci::CiContext::source_hints`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHints {
    /// Repository URL to use when it differs from, or replaces, remote `origin`.
    pub repository_url: Option<String>,
    /// Full ref (`refs/heads/main`, `refs/tags/v1`) to record when `HEAD` is detached.
    pub git_ref: Option<String>,
    /// Commit the CI says it checked out; a different `HEAD` is an error.
    pub commit: Option<String>,
}

/// Options for [`record`].
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub dirty: DirtyPolicy,
    pub hints: SourceHints,
    /// Paths that never make the tree dirty: the files being released, which a build writes
    /// into the work tree. A folder excludes everything under it.
    pub exclude: Vec<PathBuf>,
}

/// A git object id as lowercase hex (40 for SHA-1 repositories, 64 for SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectId(String);

impl ObjectId {
    pub fn parse(input: &str) -> Result<ObjectId, UrlError> {
        let ok = matches!(input.len(), 40 | 64)
            && input
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ObjectId(input.to_owned()))
        } else {
            Err(UrlError::BadObjectId {
                input: input.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectId {
    type Error = UrlError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ObjectId::parse(&value)
    }
}

impl From<ObjectId> for String {
    fn from(value: ObjectId) -> String {
        value.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository URI as provenance records it: `git+https://host/owner/repo`, lowercase host,
/// never any user name, password or token, no trailing `.git`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoUri(String);

/// Why a string is not a usable repository URL or object id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("repository url {input:?} has no host")]
    NoHost { input: String },
    #[error("repository url {input:?} has no path")]
    NoPath { input: String },
    #[error("repository url {input:?} uses unsupported scheme {scheme:?}")]
    UnsupportedScheme { input: String, scheme: String },
    #[error("{input:?} is not a git object id (40 or 64 lowercase hex digits)")]
    BadObjectId { input: String },
}

impl RepoUri {
    /// Normalises any git remote spelling: `https://user:token@host/o/r.git`,
    /// `ssh://git@host:22/o/r`, `git@host:o/r.git`, `git://host/o/r`, `file:///srv/r.git`,
    /// or an already normalised `git+https://...`. Error messages never contain credentials.
    pub fn parse(input: &str) -> Result<RepoUri, UrlError> {
        let redacted = redact(input);
        let trimmed = input.trim();
        let trimmed = trimmed.strip_prefix("git+").unwrap_or(trimmed);
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => return Self::parse_scp_or_path(trimmed, &redacted),
        };
        // Query and fragment never identify a repository and may carry tokens.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        if scheme == "file" {
            let path = rest.trim_end_matches('/');
            if path.is_empty() {
                return Err(UrlError::NoPath { input: redacted });
            }
            return Ok(RepoUri(format!("git+file://{}", strip_git_suffix(path))));
        }
        let target_scheme = match scheme.as_str() {
            "https" | "ssh" | "git" | "git+ssh" | "ssh+git" => "https",
            "http" => "http",
            _ => {
                return Err(UrlError::UnsupportedScheme {
                    input: redacted,
                    scheme,
                });
            }
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // A port is kept for http(s) (it is part of where the repository lives) but not for
        // ssh/git, whose port says nothing about the web address.
        let host_port = if target_scheme == "https" && scheme != "https" {
            strip_port(host_port)
        } else {
            host_port
        };
        Self::assemble(target_scheme, host_port, path, &redacted)
    }

    fn parse_scp_or_path(input: &str, redacted: &str) -> Result<RepoUri, UrlError> {
        // scp-like syntax: `[user@]host:path`, with no slash before the colon.
        match input.split_once(':') {
            Some((authority, path)) if !authority.contains('/') && !authority.is_empty() => {
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                Self::assemble("https", host, path, redacted)
            }
            _ if input.starts_with('/') => Ok(RepoUri(format!(
                "git+file://{}",
                strip_git_suffix(input.trim_end_matches('/'))
            ))),
            _ => Err(UrlError::NoHost {
                input: redacted.to_owned(),
            }),
        }
    }

    fn assemble(scheme: &str, host: &str, path: &str, redacted: &str) -> Result<RepoUri, UrlError> {
        if host.is_empty() {
            return Err(UrlError::NoHost {
                input: redacted.to_owned(),
            });
        }
        let path = strip_git_suffix(path.trim_matches('/'));
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(UrlError::NoPath {
                input: redacted.to_owned(),
            });
        }
        Ok(RepoUri(format!(
            "git+{scheme}://{}/{path}",
            host.to_ascii_lowercase()
        )))
    }

    /// `git+https://host/owner/repo`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The web form without the `git+` prefix: `https://host/owner/repo`.
    pub fn web_url(&self) -> &str {
        self.0.strip_prefix("git+").unwrap_or(&self.0)
    }
}

impl TryFrom<String> for RepoUri {
    type Error = UrlError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RepoUri::parse(&value)
    }
}

impl From<RepoUri> for String {
    fn from(value: RepoUri) -> String {
        value.0
    }
}

impl fmt::Display for RepoUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn strip_git_suffix(path: &str) -> &str {
    path.strip_suffix(".git").unwrap_or(path)
}

fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        // IPv6 literal: keep everything up to the closing bracket.
        return host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end]);
    }
    host_port
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host_port, |(host, _)| host)
}

/// The URL with any `user[:password]@` removed, for error messages.
fn redact(input: &str) -> String {
    let (prefix, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => return input.to_owned(),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, String::new()),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default().to_owned();
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{prefix}***@{host}{path}"),
        None => format!("{prefix}{authority}{path}"),
    }
}

/// What the source tree was at build time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    /// Normalised repository URI, when a remote or the CI names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepoUri>,
    pub commit: ObjectId,
    pub tree: ObjectId,
    /// Full ref name: the checked-out branch, or the CI's ref when `HEAD` is detached.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Short names of the tags (annotated or lightweight) that point at the commit, sorted.
    pub tags: Vec<String>,
    /// The commit object carries a `gpgsig` header (PGP, SSH or X.509); not verified here.
    pub signed: bool,
    pub detached: bool,
    pub shallow: bool,
    pub dirty: bool,
    /// The first [`MAX_DIRTY_PATHS`] modified or untracked paths, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dirty_paths: Vec<String>,
}

impl SourceRecord {
    /// `git+https://host/owner/repo@refs/heads/main` for `resolvedDependencies`, when the
    /// repository is known.
    pub fn dependency_uri(&self) -> Option<String> {
        let repo = self.repository.as_ref()?;
        Some(match &self.git_ref {
            Some(r) => format!("{repo}@{r}"),
            None => repo.to_string(),
        })
    }
}

/// Why a source record could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path} is not inside a git work tree")]
    NotARepository {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },
    #[error("repository at {path} is bare; a work tree is needed to check for changes")]
    Bare { path: PathBuf },
    #[error("repository at {path} has no commit yet")]
    Unborn { path: PathBuf },
    #[error("could not read {what} in repository at {path}")]
    Git {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: gix::Error,
    },
    #[error("repository url of remote {remote:?} is not usable")]
    RemoteUrl {
        remote: String,
        #[source]
        source: UrlError,
    },
    #[error("repository url given by the ci is not usable")]
    HintUrl {
        #[source]
        source: UrlError,
    },
    #[error("HEAD is {head} but the ci says it built {expected}")]
    CommitMismatch { head: String, expected: String },
    #[error("work tree at {path} has {count} uncommitted or untracked paths: {}{}", .paths.join(", "), if *.count > .paths.len() { ", ..." } else { "" })]
    Dirty {
        path: PathBuf,
        count: usize,
        paths: Vec<String>,
    },
}

/// Reads the source record of the work tree that contains `dir`.
pub fn record(dir: &Path, options: &SourceOptions) -> Result<SourceRecord, SourceError> {
    // An absolute path gives absolute work-tree paths in errors.
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let repo = gix::discover(dir).map_err(|source| SourceError::NotARepository {
        path: dir.to_owned(),
        source,
    })?;
    let root = repo
        .workdir()
        .map(Path::to_owned)
        .ok_or_else(|| SourceError::Bare {
            path: repo.git_dir().to_owned(),
        })?;
    let git = |what: &'static str| {
        let root = root.clone();
        move |source| SourceError::Git {
            path: root,
            what,
            source,
        }
    };

    let head = repo.head().map_err(git("HEAD"))?;
    if head.is_unborn() {
        return Err(SourceError::Unborn { path: root });
    }
    let detached = head.is_detached();
    let branch = head.referent_name().map(|name| name.as_bstr().to_string());
    let commit = repo.head_commit().map_err(git("HEAD commit"))?;
    let commit_id = commit.id().detach();
    let tree_id = commit.tree_id().map_err(git("HEAD tree"))?.detach();
    let signed = commit
        .signature()
        .map_err(git("commit signature"))?
        .is_some();

    let commit_hex = commit_id.to_string();
    if let Some(expected) = &options.hints.commit
        && !expected.eq_ignore_ascii_case(&commit_hex)
    {
        return Err(SourceError::CommitMismatch {
            head: commit_hex,
            expected: expected.clone(),
        });
    }

    let repository = match &options.hints.repository_url {
        Some(url) => Some(RepoUri::parse(url).map_err(|source| SourceError::HintUrl { source })?),
        None => origin_url(&repo)?,
    };

    let mut tags = Vec::new();
    let refs = repo.references().map_err(git("references"))?;
    for reference in refs.tags().map_err(git("tags"))? {
        let mut reference = reference.map_err(|e| SourceError::Git {
            path: root.clone(),
            what: "tag",
            source: gix::Error::from_error(e),
        })?;
        // A tag that cannot be peeled (e.g. points at a blob) is not at HEAD.
        if let Ok(id) = reference.peel_to_id()
            && id.detach() == commit_id
        {
            tags.push(reference.name().shorten().to_string());
        }
    }
    tags.sort();

    let git_ref = match (branch, &options.hints.git_ref) {
        (Some(branch), _) => Some(branch),
        (None, Some(hint)) => Some(hint.clone()),
        (None, None) => None,
    };
    let shallow = repo.is_shallow().map_err(git("shallow state"))?;

    let exclude = excluded_paths(&root, &options.exclude);
    let (count, dirty_paths) = changed_paths(&repo, &exclude).map_err(git("status"))?;
    if count > 0 && options.dirty == DirtyPolicy::Refuse {
        return Err(SourceError::Dirty {
            path: root,
            count,
            paths: dirty_paths,
        });
    }

    Ok(SourceRecord {
        repository,
        commit: ObjectId(commit_hex),
        tree: ObjectId(tree_id.to_string()),
        git_ref,
        tags,
        signed,
        detached,
        shallow,
        dirty: count > 0,
        dirty_paths,
    })
}

/// The committer time (Unix seconds) of `HEAD` in the work tree containing `dir`: the
/// reproducible "created" of what is built from it.
pub fn commit_time(dir: &Path) -> Option<u64> {
    let repo = gix::discover(dir).ok()?;
    let commit = repo.head_commit().ok()?;
    let time = commit.time().ok()?;
    u64::try_from(time.seconds).ok()
}

fn origin_url(repo: &gix::Repository) -> Result<Option<RepoUri>, SourceError> {
    let Some(remote) = repo.try_find_remote("origin") else {
        return Ok(None);
    };
    let Ok(remote) = remote else {
        // A broken remote section is not the artifact's concern; the CI hint can still name it.
        return Ok(None);
    };
    let Some(url) = remote.url(gix::remote::Direction::Fetch) else {
        return Ok(None);
    };
    let mut url = url.clone();
    url.set_user(None);
    url.set_password(None);
    let text = url.to_bstring().to_string();
    RepoUri::parse(&text)
        .map(Some)
        .map_err(|source| SourceError::RemoteUrl {
            remote: "origin".to_owned(),
            source,
        })
}

/// Counts changed paths (staged, modified, deleted, untracked-not-ignored) and returns the first
/// [`MAX_DIRTY_PATHS`], sorted.
/// The work-tree-relative spellings (`dist/app.tar`) of `paths` that lie inside `root`, plus
/// custody's embedded store, which ignores itself but may predate its `.gitignore`.
fn excluded_paths(root: &Path, paths: &[PathBuf]) -> Vec<String> {
    let mut out = vec![".custody".to_owned()];
    for path in paths {
        let Ok(absolute) = std::fs::canonicalize(path) else {
            continue;
        };
        if let Ok(relative) = absolute.strip_prefix(root) {
            let text = relative.to_string_lossy().replace('\\', "/");
            if !text.is_empty() {
                out.push(text);
            }
        }
    }
    out
}

/// Whether `path` (work-tree relative, `/`-separated) is one of `exclude` or lies under one.
fn is_excluded(path: &str, exclude: &[String]) -> bool {
    exclude.iter().any(|e| {
        path == e
            || path
                .strip_prefix(e.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn changed_paths(
    repo: &gix::Repository,
    exclude: &[String],
) -> Result<(usize, Vec<String>), gix::Error> {
    use gix::status::index_worktree::Item as Iw;
    use gix::status::plumbing::index_as_worktree::EntryStatus;

    let iter = repo
        .status(gix::progress::Discard)?
        .untracked_files(gix::status::UntrackedFiles::Files)
        .index_worktree_rewrites(None)
        .into_iter(Vec::<gix::bstr::BString>::new())?;
    let mut paths = Vec::new();
    for item in iter {
        let item = item?;
        let counts = match &item {
            gix::status::Item::TreeIndex(_) => true,
            gix::status::Item::IndexWorktree(Iw::Modification { status, .. }) => {
                !matches!(status, EntryStatus::NeedsUpdate(_))
            }
            gix::status::Item::IndexWorktree(Iw::DirectoryContents { entry, .. }) => {
                entry.status == gix::dir::entry::Status::Untracked
            }
            gix::status::Item::IndexWorktree(Iw::Rewrite { .. }) => true,
        };
        let location = item.location().to_str_lossy();
        if counts && !is_excluded(&location, exclude) {
            paths.push(location.into_owned());
        }
    }
    paths.sort();
    paths.dedup();
    let count = paths.len();
    paths.truncate(MAX_DIRTY_PATHS);
    Ok((count, paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_paths_cover_files_and_folders() {
        let exclude = vec![".custody".to_owned(), "dist/app.tar".to_owned()];
        assert!(is_excluded("dist/app.tar", &exclude));
        assert!(is_excluded(".custody/store/index.json", &exclude));
        assert!(!is_excluded("dist/app.tar.bak", &exclude));
        assert!(!is_excluded(".custodyx", &exclude));
        assert!(!is_excluded("src/main.rs", &exclude));
    }

    #[test]
    fn normalises_remote_spellings() {
        let table = [
            ("https://github.com/o/r.git", "git+https://github.com/o/r"),
            ("https://github.com/o/r", "git+https://github.com/o/r"),
            ("https://GitHub.com/o/r/", "git+https://github.com/o/r"),
            (
                "https://x-access-token:ghs_secret@github.com/o/r.git",
                "git+https://github.com/o/r",
            ),
            (
                "https://gitlab-ci-token:glcbt-abc@gitlab.example.com:8443/g/sub/p.git",
                "git+https://gitlab.example.com:8443/g/sub/p",
            ),
            ("git@github.com:o/r.git", "git+https://github.com/o/r"),
            ("github.com:o/r", "git+https://github.com/o/r"),
            (
                "ssh://git@gitlab.com:22/g/p.git",
                "git+https://gitlab.com/g/p",
            ),
            ("ssh://gitlab.com/g/p", "git+https://gitlab.com/g/p"),
            ("git://example.org/r.git", "git+https://example.org/r"),
            ("http://user:pw@intranet/r.git", "git+http://intranet/r"),
            ("git+https://github.com/o/r", "git+https://github.com/o/r"),
            (
                "https://github.com/o/r.git?token=abc#frag",
                "git+https://github.com/o/r",
            ),
            ("file:///srv/git/r.git", "git+file:///srv/git/r"),
            ("/srv/git/r.git", "git+file:///srv/git/r"),
        ];
        for (input, want) in table {
            assert_eq!(RepoUri::parse(input).unwrap().as_str(), want, "{input}");
        }
    }

    #[test]
    fn rejects_unusable_urls_without_leaking_credentials() {
        let err = RepoUri::parse("ftp://user:secret@host/r").unwrap_err();
        assert!(matches!(&err, UrlError::UnsupportedScheme { scheme, .. } if scheme == "ftp"));
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(matches!(
            RepoUri::parse("https://tok@github.com/"),
            Err(UrlError::NoPath { input }) if !input.contains("tok@")
        ));
        assert!(matches!(
            RepoUri::parse("relative/path"),
            Err(UrlError::NoHost { .. })
        ));
        assert!(matches!(
            RepoUri::parse("https:///o/r"),
            Err(UrlError::NoHost { .. })
        ));
    }

    #[test]
    fn web_url_drops_git_prefix() {
        let uri = RepoUri::parse("git@github.com:o/r.git").unwrap();
        assert_eq!(uri.web_url(), "https://github.com/o/r");
    }

    #[test]
    fn object_ids_are_checked() {
        assert!(ObjectId::parse(&"a".repeat(40)).is_ok());
        assert!(ObjectId::parse(&"0".repeat(64)).is_ok());
        assert!(matches!(
            ObjectId::parse(&"A".repeat(40)),
            Err(UrlError::BadObjectId { .. })
        ));
        assert!(matches!(
            ObjectId::parse("abc"),
            Err(UrlError::BadObjectId { .. })
        ));
    }

    #[test]
    fn not_a_repository_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = record(dir.path(), &SourceOptions::default()).unwrap_err();
        assert!(matches!(err, SourceError::NotARepository { .. }), "{err}");
        assert!(err.to_string().contains("not inside a git work tree"));
    }
}
