//! Which CI runs us (GitHub Actions, GitLab CI, or a local machine), read from an environment
//! that is handed in, never from the process environment directly.
//!
//! The result names the builder, build type, parameters and invocation the way each platform's
//! own provenance does, so verifiers that know those shapes accept custody's.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::evidence::source::SourceHints;

/// Builder id of a run outside any hosted CI. It can never match a hosted builder id.
pub const LOCAL_BUILDER_ID: &str = "https://custody.dev/builders/local@v1";
/// Build type of a local run: `externalParameters` has `repository` and `ref` when known.
pub const LOCAL_BUILD_TYPE: &str = "https://custody.dev/buildtypes/local/v1";
/// The build type `actions/attest-build-provenance` writes.
pub const GITHUB_BUILD_TYPE: &str = "https://actions.github.io/buildtypes/workflow/v1";
/// GitLab publishes no stable build type for pipeline provenance; this is custody's: external
/// parameters `source`, `configPath`, `ref`, `entryPoint`.
pub const GITLAB_BUILD_TYPE: &str = "https://custody.dev/buildtypes/gitlab-ci/v1";

/// An optional variable a GitHub workflow can set from `${{ job.workflow_ref }}` so the builder
/// id names the reusable workflow that runs the job (no default variable holds it).
pub const GITHUB_JOB_WORKFLOW_REF_VAR: &str = "CUSTODY_JOB_WORKFLOW_REF";

/// Read access to environment variables. Implemented for maps so tests inject their own.
pub trait Environment {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Environment for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl Environment for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Environment for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// The CI platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    GithubActions,
    GitlabCi,
    Local,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::GithubActions => "github-actions",
            Platform::GitlabCi => "gitlab-ci",
            Platform::Local => "local",
        })
    }
}

/// Who operates the machine the job runs on, as far as the platform tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerEnvironment {
    /// The platform's own runners (`RUNNER_ENVIRONMENT=github-hosted`).
    Hosted,
    /// A runner the user operates (`RUNNER_ENVIRONMENT=self-hosted`).
    SelfHosted,
    /// The platform's variables do not tell (GitLab CI exposes it only in its ID token's
    /// `runner_environment` claim).
    Unknown,
    /// Not a CI run.
    Local,
}

/// What custody knows about the run that is producing the artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct CiContext {
    pub platform: Platform,
    pub runner: RunnerEnvironment,
    pub builder_id: String,
    pub build_type: String,
    pub external_parameters: Map<String, Value>,
    pub internal_parameters: Map<String, Value>,
    pub invocation_id: Option<String>,
    /// Repository, ref and commit as the CI states them, to cross-check the checkout.
    pub source_hints: SourceHints,
}

/// Why the environment could not be read as the CI it claims to be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CiError {
    #[error("{platform} is detected but variable {name} is missing or empty")]
    MissingVariable {
        platform: Platform,
        name: &'static str,
    },
    #[error("both GITHUB_ACTIONS and GITLAB_CI are set; cannot tell which ci runs this")]
    Ambiguous,
    #[error("variable {name} has value {value:?}, which is not {expected}")]
    BadValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Detects the CI from `env` and describes the run.
pub fn detect(env: &(impl Environment + ?Sized)) -> Result<CiContext, CiError> {
    let github = env.get("GITHUB_ACTIONS") == Some("true");
    let gitlab = env.get("GITLAB_CI") == Some("true");
    match (github, gitlab) {
        (true, true) => Err(CiError::Ambiguous),
        (true, false) => github_actions(env),
        (false, true) => gitlab_ci(env),
        (false, false) => Ok(local()),
    }
}

/// The context of a run on a developer's machine.
pub fn local() -> CiContext {
    CiContext {
        platform: Platform::Local,
        runner: RunnerEnvironment::Local,
        builder_id: LOCAL_BUILDER_ID.to_owned(),
        build_type: LOCAL_BUILD_TYPE.to_owned(),
        external_parameters: Map::new(),
        internal_parameters: Map::new(),
        invocation_id: None,
        source_hints: SourceHints::default(),
    }
}

fn required<'e>(
    env: &'e (impl Environment + ?Sized),
    platform: Platform,
    name: &'static str,
) -> Result<&'e str, CiError> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .ok_or(CiError::MissingVariable { platform, name })
}

fn optional<'e>(env: &'e (impl Environment + ?Sized), name: &str) -> Option<&'e str> {
    env.get(name).filter(|v| !v.is_empty())
}

fn github_actions(env: &(impl Environment + ?Sized)) -> Result<CiContext, CiError> {
    let p = Platform::GithubActions;
    let server = required(env, p, "GITHUB_SERVER_URL")?.trim_end_matches('/');
    let repository = required(env, p, "GITHUB_REPOSITORY")?;
    let git_ref = required(env, p, "GITHUB_REF")?;
    let sha = required(env, p, "GITHUB_SHA")?;
    let workflow_ref = required(env, p, "GITHUB_WORKFLOW_REF")?;
    let run_id = required(env, p, "GITHUB_RUN_ID")?;
    let run_attempt = required(env, p, "GITHUB_RUN_ATTEMPT")?;
    let event_name = required(env, p, "GITHUB_EVENT_NAME")?;
    let runner_env = required(env, p, "RUNNER_ENVIRONMENT")?;
    let runner = match runner_env {
        "github-hosted" => RunnerEnvironment::Hosted,
        "self-hosted" => RunnerEnvironment::SelfHosted,
        other => {
            return Err(CiError::BadValue {
                name: "RUNNER_ENVIRONMENT",
                value: other.to_owned(),
                expected: "github-hosted or self-hosted",
            });
        }
    };

    // `owner/repo/.github/workflows/x.yml@refs/heads/main` → `.github/workflows/x.yml`.
    let path = workflow_ref
        .rsplit_once('@')
        .map_or(workflow_ref, |(p, _)| p)
        .strip_prefix(repository)
        .and_then(|p| p.strip_prefix('/'))
        .ok_or_else(|| CiError::BadValue {
            name: "GITHUB_WORKFLOW_REF",
            value: workflow_ref.to_owned(),
            expected: "<GITHUB_REPOSITORY>/<path>@<ref>",
        })?;
    let repo_url = format!("{server}/{repository}");
    let job_workflow_ref = optional(env, GITHUB_JOB_WORKFLOW_REF_VAR).unwrap_or(workflow_ref);

    let mut github = Map::new();
    github.insert("event_name".into(), json!(event_name));
    for (key, var) in [
        ("repository_id", "GITHUB_REPOSITORY_ID"),
        ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
    ] {
        if let Some(value) = optional(env, var) {
            github.insert(key.into(), json!(value));
        }
    }
    github.insert("runner_environment".into(), json!(runner_env));

    Ok(CiContext {
        platform: p,
        runner,
        builder_id: format!("{server}/{job_workflow_ref}"),
        build_type: GITHUB_BUILD_TYPE.to_owned(),
        external_parameters: object(json!({
            "workflow": { "ref": git_ref, "repository": repo_url, "path": path }
        })),
        internal_parameters: object(json!({ "github": github })),
        invocation_id: Some(format!(
            "{repo_url}/actions/runs/{run_id}/attempts/{run_attempt}"
        )),
        source_hints: SourceHints {
            repository_url: Some(repo_url),
            git_ref: Some(git_ref.to_owned()),
            commit: Some(sha.to_owned()),
        },
    })
}

fn gitlab_ci(env: &(impl Environment + ?Sized)) -> Result<CiContext, CiError> {
    let p = Platform::GitlabCi;
    let project_url = required(env, p, "CI_PROJECT_URL")?.trim_end_matches('/');
    let sha = required(env, p, "CI_COMMIT_SHA")?;
    let job_url = required(env, p, "CI_JOB_URL")?;
    let job_name = required(env, p, "CI_JOB_NAME")?;
    let config_path = optional(env, "CI_CONFIG_PATH").unwrap_or(".gitlab-ci.yml");
    let runner_id = required(env, p, "CI_RUNNER_ID")?;
    let git_ref = if let Some(tag) = optional(env, "CI_COMMIT_TAG") {
        format!("refs/tags/{tag}")
    } else if let Some(path) = optional(env, "CI_MERGE_REQUEST_REF_PATH") {
        path.to_owned()
    } else if let Some(branch) = optional(env, "CI_COMMIT_BRANCH") {
        format!("refs/heads/{branch}")
    } else {
        format!("refs/heads/{}", required(env, p, "CI_COMMIT_REF_NAME")?)
    };

    let mut gitlab = Map::new();
    for (key, var) in [
        ("serverUrl", "CI_SERVER_URL"),
        ("projectId", "CI_PROJECT_ID"),
        ("pipelineId", "CI_PIPELINE_ID"),
        ("pipelineUrl", "CI_PIPELINE_URL"),
        ("pipelineSource", "CI_PIPELINE_SOURCE"),
        ("jobId", "CI_JOB_ID"),
        ("jobUrl", "CI_JOB_URL"),
        ("runnerId", "CI_RUNNER_ID"),
        ("runnerDescription", "CI_RUNNER_DESCRIPTION"),
        ("runnerTags", "CI_RUNNER_TAGS"),
        ("runnerVersion", "CI_RUNNER_VERSION"),
        ("runnerArchitecture", "CI_RUNNER_EXECUTABLE_ARCH"),
    ] {
        if let Some(value) = optional(env, var) {
            gitlab.insert(key.into(), json!(value));
        }
    }

    Ok(CiContext {
        platform: p,
        runner: RunnerEnvironment::Unknown,
        // The same form GitLab's own provenance uses: one builder id per runner.
        builder_id: format!("{project_url}/-/runners/{runner_id}"),
        build_type: GITLAB_BUILD_TYPE.to_owned(),
        external_parameters: object(json!({
            "source": project_url,
            "configPath": config_path,
            "ref": git_ref,
            "entryPoint": job_name,
        })),
        internal_parameters: object(json!({ "gitlab": gitlab })),
        invocation_id: Some(job_url.to_owned()),
        source_hints: SourceHints {
            repository_url: Some(project_url.to_owned()),
            git_ref: Some(git_ref),
            commit: Some(sha.to_owned()),
        },
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "octo/hello"),
            ("GITHUB_REPOSITORY_ID", "123"),
            ("GITHUB_REPOSITORY_OWNER_ID", "45"),
            ("GITHUB_REF", "refs/tags/v1.2.0"),
            ("GITHUB_SHA", "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"),
            (
                "GITHUB_WORKFLOW_REF",
                "octo/hello/.github/workflows/release.yml@refs/tags/v1.2.0",
            ),
            ("GITHUB_RUN_ID", "999"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_EVENT_NAME", "push"),
            ("RUNNER_ENVIRONMENT", "github-hosted"),
        ]
    }

    fn gitlab_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CI", "true"),
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", "https://gitlab.example.com"),
            ("CI_PROJECT_URL", "https://gitlab.example.com/group/proj"),
            ("CI_PROJECT_ID", "77"),
            ("CI_COMMIT_SHA", "bdd2ecda9ef57b129c88617a0215afc9fb223521"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_CONFIG_PATH", "ci/pipeline.yml"),
            ("CI_JOB_NAME", "build"),
            ("CI_JOB_ID", "1034"),
            (
                "CI_JOB_URL",
                "https://gitlab.example.com/group/proj/-/jobs/1034",
            ),
            ("CI_PIPELINE_ID", "500"),
            ("CI_RUNNER_ID", "12"),
            ("CI_RUNNER_TAGS", "[\"docker\", \"linux\"]"),
            (
                "CI_REPOSITORY_URL",
                "https://gitlab-ci-token:secret@gitlab.example.com/group/proj.git",
            ),
        ]
    }

    fn with(
        base: Vec<(&'static str, &'static str)>,
        changes: &[(&'static str, Option<&'static str>)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut env: Vec<_> = base
            .into_iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .collect();
        env.extend(changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
        env
    }

    #[test]
    fn github_actions_matches_attest_build_provenance_shape() {
        let ctx = detect(github_env().as_slice()).unwrap();
        assert_eq!(ctx.platform, Platform::GithubActions);
        assert_eq!(ctx.runner, RunnerEnvironment::Hosted);
        assert_eq!(
            ctx.builder_id,
            "https://github.com/octo/hello/.github/workflows/release.yml@refs/tags/v1.2.0"
        );
        assert_eq!(ctx.build_type, GITHUB_BUILD_TYPE);
        assert_eq!(
            Value::Object(ctx.external_parameters),
            json!({"workflow": {"ref": "refs/tags/v1.2.0",
                "repository": "https://github.com/octo/hello",
                "path": ".github/workflows/release.yml"}})
        );
        assert_eq!(
            Value::Object(ctx.internal_parameters),
            json!({"github": {"event_name": "push", "repository_id": "123",
                "repository_owner_id": "45", "runner_environment": "github-hosted"}})
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://github.com/octo/hello/actions/runs/999/attempts/2")
        );
        assert_eq!(
            ctx.source_hints.git_ref.as_deref(),
            Some("refs/tags/v1.2.0")
        );
    }

    #[test]
    fn github_reusable_workflow_and_self_hosted() {
        let env = with(
            github_env(),
            &[
                (
                    GITHUB_JOB_WORKFLOW_REF_VAR,
                    Some("org/builders/.github/workflows/build.yml@refs/tags/v3"),
                ),
                ("RUNNER_ENVIRONMENT", Some("self-hosted")),
            ],
        );
        let ctx = detect(env.as_slice()).unwrap();
        assert_eq!(
            ctx.builder_id,
            "https://github.com/org/builders/.github/workflows/build.yml@refs/tags/v3"
        );
        assert_eq!(ctx.runner, RunnerEnvironment::SelfHosted);
        assert_eq!(
            ctx.internal_parameters["github"]["runner_environment"],
            "self-hosted"
        );
    }

    #[test]
    fn github_errors_name_the_variable() {
        type Changes = &'static [(&'static str, Option<&'static str>)];
        let table: [(Changes, CiError); 3] = [
            (
                &[("GITHUB_SHA", None)],
                CiError::MissingVariable {
                    platform: Platform::GithubActions,
                    name: "GITHUB_SHA",
                },
            ),
            (
                &[("RUNNER_ENVIRONMENT", Some("cloud"))],
                CiError::BadValue {
                    name: "RUNNER_ENVIRONMENT",
                    value: "cloud".into(),
                    expected: "github-hosted or self-hosted",
                },
            ),
            (&[("GITLAB_CI", Some("true"))], CiError::Ambiguous),
        ];
        for (changes, want) in table {
            let env = with(github_env(), changes);
            assert_eq!(detect(env.as_slice()).unwrap_err(), want);
        }
    }

    #[test]
    fn gitlab_ci_describes_project_config_ref_and_job() {
        let ctx = detect(gitlab_env().as_slice()).unwrap();
        assert_eq!(ctx.platform, Platform::GitlabCi);
        assert_eq!(ctx.runner, RunnerEnvironment::Unknown);
        assert_eq!(
            ctx.builder_id,
            "https://gitlab.example.com/group/proj/-/runners/12"
        );
        assert_eq!(ctx.build_type, GITLAB_BUILD_TYPE);
        assert_eq!(
            Value::Object(ctx.external_parameters.clone()),
            json!({"source": "https://gitlab.example.com/group/proj",
                "configPath": "ci/pipeline.yml", "ref": "refs/heads/main", "entryPoint": "build"})
        );
        assert_eq!(
            ctx.invocation_id.as_deref(),
            Some("https://gitlab.example.com/group/proj/-/jobs/1034")
        );
        assert_eq!(ctx.internal_parameters["gitlab"]["runnerId"], "12");
        let all = serde_json::to_string(&ctx.internal_parameters).unwrap();
        assert!(!all.contains("secret"), "CI_REPOSITORY_URL leaked: {all}");
    }

    #[test]
    fn gitlab_tag_pipeline_records_tag_ref() {
        let env = with(
            gitlab_env(),
            &[
                ("CI_COMMIT_TAG", Some("v2.0.0")),
                ("CI_COMMIT_BRANCH", None),
                ("CI_CONFIG_PATH", None),
            ],
        );
        let ctx = detect(env.as_slice()).unwrap();
        assert_eq!(ctx.external_parameters["ref"], "refs/tags/v2.0.0");
        assert_eq!(ctx.external_parameters["configPath"], ".gitlab-ci.yml");
        assert_eq!(
            ctx.source_hints.git_ref.as_deref(),
            Some("refs/tags/v2.0.0")
        );
    }

    #[test]
    fn gitlab_missing_runner_is_an_error() {
        let env = with(gitlab_env(), &[("CI_RUNNER_ID", None)]);
        assert_eq!(
            detect(env.as_slice()).unwrap_err(),
            CiError::MissingVariable {
                platform: Platform::GitlabCi,
                name: "CI_RUNNER_ID"
            }
        );
    }

    #[test]
    fn local_run_is_never_hosted() {
        let env: BTreeMap<String, String> = [("CI".to_owned(), "true".to_owned())].into();
        let ctx = detect(&env).unwrap();
        assert_eq!(ctx.platform, Platform::Local);
        assert_eq!(ctx.builder_id, LOCAL_BUILDER_ID);
        assert_eq!(ctx.runner, RunnerEnvironment::Local);
        // A spoofed GITHUB_ACTIONS without the rest is refused, not taken as local or hosted.
        let spoof: BTreeMap<String, String> =
            [("GITHUB_ACTIONS".to_owned(), "true".to_owned())].into();
        assert!(matches!(
            detect(&spoof),
            Err(CiError::MissingVariable {
                platform: Platform::GithubActions,
                ..
            })
        ));
    }
}
