//! The GitHub Actions and GitLab CI/CD components: parsed by an independent YAML parser, every
//! input mapped to a real CLI flag (or a documented positional argument), and the workflows
//! that use them linted by actionlint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, tool};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document in a file, as JSON, parsed by PyYAML (not by custody's own code).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let out = Command::new(support::venv_python())
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{} is not valid YAML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

/// The long flags `custody <command> --help` documents.
fn flags_of(command: &str) -> BTreeSet<String> {
    let help = support::ok(&[command, "--help"]);
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// Inputs that are not flags: positional arguments of the command, and the installer's own.
fn non_flag_inputs(command: &str) -> &'static [&'static str] {
    match command {
        "release" => &["files"],
        "verify" => &["reference"],
        "promote" => &["source", "destination"],
        _ => &[],
    }
}

const INSTALLER_INPUTS: [&str; 3] = ["stage", "custody-version", "custody-repository"];

#[test]
fn github_actions_map_every_input_to_a_real_flag() {
    for command in ["release", "verify", "promote"] {
        let path = root().join("actions").join(command).join("action.yml");
        let doc = yaml_documents(&path).remove(0);
        assert_eq!(doc["runs"]["using"], "composite", "{command}");
        let steps = doc["runs"]["steps"].as_array().expect("steps");
        let scripts: String = steps
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let env_block: String = steps
            .iter()
            .map(|s| s["env"].to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            scripts.contains("install.sh"),
            "{command}: installs custody pinned to the action's version"
        );
        let flags = flags_of(command);
        let inputs = doc["inputs"].as_object().expect("inputs");
        assert!(!inputs.is_empty());
        for (name, spec) in inputs {
            assert!(
                spec["description"].as_str().is_some_and(|d| d.len() > 10),
                "{command}: input {name} is documented"
            );
            let env_name = format!("INPUT_{}", name.to_uppercase().replace('-', "_"));
            assert!(
                env_block.contains(&format!("inputs.{name} }}")) && scripts.contains(&env_name),
                "{command}: input {name} reaches the script through {env_name}"
            );
            if non_flag_inputs(command).contains(&name.as_str()) {
                continue;
            }
            let flag = format!("--{name}");
            assert!(
                flags.contains(&flag),
                "{command}: input {name} has no flag {flag} in `custody {command} --help` (flags: {flags:?})"
            );
            assert!(
                scripts.contains(&flag),
                "{command}: the script passes input {name} as {flag}"
            );
        }
        for (name, spec) in doc["outputs"].as_object().expect("outputs") {
            assert!(
                spec["value"]
                    .as_str()
                    .is_some_and(|v| v.contains("steps.") && v.contains(name)),
                "{command}: output {name} comes from a step"
            );
        }
        let description = doc["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("permissions"),
            "{command}: the description says which permissions the job needs"
        );
    }
}

#[test]
fn gitlab_components_map_every_input_to_a_real_flag() {
    for command in ["release", "verify", "promote"] {
        let path = root().join("templates").join(format!("{command}.yml"));
        let docs = yaml_documents(&path);
        assert_eq!(
            docs.len(),
            2,
            "{command}: `spec:` header, `---`, then the jobs"
        );
        let inputs = docs[0]["spec"]["inputs"].as_object().expect("spec.inputs");
        let jobs = docs[1].as_object().expect("jobs");
        assert_eq!(jobs.len(), 1, "{command}: one job");
        let (_, job) = jobs.iter().next().unwrap();
        let script = job["script"]
            .as_array()
            .expect("script")
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let variables = job["variables"].to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if command != "verify" {
            assert_eq!(
                job["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"], "sigstore",
                "{command}: asks GitLab for a Sigstore identity token"
            );
        }
        let flags = flags_of(command);
        for (name, spec) in inputs {
            assert!(
                spec["description"].as_str().is_some_and(|d| d.len() > 10),
                "{command}: input {name} is documented"
            );
            assert!(
                text.contains(&format!("$[[ inputs.{name} ]]")),
                "{command}: input {name} is used"
            );
            if INSTALLER_INPUTS.contains(&name.as_str())
                || non_flag_inputs(command).contains(&name.as_str())
            {
                continue;
            }
            let flag = format!("--{name}");
            assert!(
                flags.contains(&flag),
                "{command}: input {name} has no flag {flag} in `custody {command} --help`"
            );
            assert!(
                script.contains(&flag) && variables.contains(&format!("inputs.{name} ]]")),
                "{command}: the script passes input {name} as {flag}"
            );
        }
    }
}

/// The GitHub Actions workflow in the README, pointed at this checkout's actions, passes
/// actionlint, which also checks the inputs given against each action's metadata.
#[test]
fn readme_workflow_passes_actionlint() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let workflows = crate::readme::code_blocks(&readme, "yaml")
        .into_iter()
        .filter(|b| b.contains("runs-on:"))
        .collect::<Vec<_>>();
    assert!(
        !workflows.is_empty(),
        "the README shows a GitHub Actions workflow"
    );
    let dir = support::tempdir();
    let project = dir.path();
    // actionlint finds the project by its git repository.
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(project)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all(project.join(".github/workflows")).unwrap();
    for action in ["release", "verify", "promote"] {
        std::fs::create_dir_all(project.join("actions").join(action)).unwrap();
        std::fs::copy(
            root().join("actions").join(action).join("action.yml"),
            project.join("actions").join(action).join("action.yml"),
        )
        .unwrap();
    }
    for (i, workflow) in workflows.iter().enumerate() {
        let local = workflow
            .lines()
            .map(|l| match l.find("uses: ") {
                Some(at) if l.contains("/actions/") => {
                    let action = l.rsplit("/actions/").next().unwrap();
                    let action = action.split('@').next().unwrap();
                    format!("{}uses: ./actions/{action}", &l[..at])
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            project.join(format!(".github/workflows/readme-{i}.yml")),
            local,
        )
        .unwrap();
    }
    let out = Command::new(tool("actionlint"))
        .current_dir(project)
        .env("HOME", project)
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // actionlint must have looked at the workflows: a broken one is caught.
    std::fs::write(
        project.join(".github/workflows/broken.yml"),
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./actions/release\n        with:\n          no-such-input: x\n",
    )
    .unwrap();
    let out = Command::new(tool("actionlint"))
        .current_dir(project)
        .env("HOME", project)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "actionlint checks local action inputs"
    );
}
