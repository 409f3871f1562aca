//! The everyday flags of issue 12, item 10: `custody version`, `-V` consistent with it,
//! completion scripts, `-q`, `-v` and `--no-progress`.

use crate::support::{self, stderr, stdout};

#[test]
fn version_names_commit_date_and_target_and_agrees_with_dash_v() {
    let json = support::ok_json(&["version", "--output", "json"]);
    let version = json["version"].as_str().unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let commit = json["commit"].as_str().unwrap();
    assert!(!commit.is_empty());
    let date = json["buildDate"].as_str().unwrap();
    assert_eq!(date.len(), 10, "{date}");
    assert_eq!(&date[4..5], "-");
    let target = json["target"].as_str().unwrap();
    assert!(target.contains('-'), "{target}");

    let human = support::ok(&["version"]);
    assert_eq!(
        human,
        format!("custody {version}\ncommit: {commit}\nbuilt: {date}\ntarget: {target}\n")
    );
    let short = support::ok(&["-V"]);
    assert_eq!(
        short,
        format!("custody {version} ({commit} {date} {target})\n")
    );
    assert_eq!(support::ok(&["--version"]), short);
}

#[test]
fn completion_scripts_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_custody()"),
        ("zsh", "#compdef custody"),
        ("fish", "complete -c custody"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = support::ok(&["completion", shell]);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(script.contains("verify"), "{shell} completes subcommands");
    }
    let o = support::run(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn quiet_prints_nothing_but_errors_and_keeps_the_exit_code() {
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a\n").unwrap();
    let o = support::run(&["-q", "digest", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "");

    let missing = dir.path().join("missing.txt");
    let o = support::run(&["digest", "--quiet", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));

    // JSON is asked for explicitly: it still prints.
    let o = support::run(&["-q", "digest", file.to_str().unwrap(), "--output", "json"]);
    assert!(stdout(&o).contains("sha256:"), "{}", stdout(&o));
}

#[test]
fn verbose_shows_each_registry_request_and_no_progress_hides_transfers() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let file = dir.path().join("big.bin");
    // Above the progress threshold (16 MiB), so a transfer would be reported.
    support::write_data(&file, 17 * 1024 * 1024, 7);
    let reference = format!("{}/team/app:v1", registry.base);
    let manifests = format!(
        "/v2/{}/team/app/manifests/",
        &registry.base[registry.host.len() + 1..]
    );

    let o = support::run(&["push", file.to_str().unwrap(), "--to", &reference]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("MiB"),
        "progress shown by default: {}",
        stderr(&o)
    );
    // In a log: the size in human units, and at the end how long it took.
    assert!(
        stderr(&o).contains(": 17.0 MiB\n") && stderr(&o).contains(": done (17.0 MiB in "),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("request: "), "{}", stderr(&o));

    let o = support::run(&[
        "push",
        file.to_str().unwrap(),
        "--to",
        &reference,
        "--no-progress",
        "-v",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("MiB"), "no progress: {err}");
    assert!(
        err.lines().any(|l| l.starts_with("request: PUT http://")
            && l.contains(&manifests)
            && l.ends_with("-> 201")),
        "{err}"
    );
    assert!(err.lines().all(|l| !l.contains("Authorization")), "{err}");

    // Commands that draw no bars (tree, verify, rescan) still log their requests with `-v`.
    let o = support::run(&["-v", "tree", &reference]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with("request: GET http://")
            && l.contains(&manifests)
            && l.ends_with("-> 200")),
        "{err}"
    );
}

/// Issue 12, item 11: a pass prints a summary line per artifact and the verdict; `--tree`
/// shows the whole chain; a refusal always does.
#[test]
fn a_pass_prints_a_summary_unless_tree_and_a_refusal_keeps_the_tree() {
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "artifact\n").unwrap();
    let store = format!("oci:{}:v1", dir.path().join("layout").display());
    support::ok(&["push", file.to_str().unwrap(), "--to", &store]);
    let prefix = dir.path().join("k");
    let prefix = prefix.to_str().unwrap();
    let keygen = support::custody()
        .args(["keygen", "--output-key-prefix", prefix])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let public = format!("{prefix}.pub");

    // Unsigned: refused with the whole tree, failing check and all.
    let refused = support::run(&["verify", &store, "--key", &public]);
    assert_eq!(refused.status.code(), Some(1));
    let text = stdout(&refused);
    assert!(text.contains("✗ trusted signers"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("REFUSED "),
        "{text}"
    );

    let sign = support::custody()
        .args(["sign", &store, "--key", &format!("{prefix}.key")])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(sign.status.success(), "{}", stderr(&sign));

    let summary = support::ok(&["verify", &store, "--key", &public]);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 4, "{summary}");
    assert_eq!(lines[0], store);
    assert!(
        lines[2].starts_with("✓ artifact sha256:")
            && lines[2].contains("checks passed, 1 trusted referrer(s), signed by key"),
        "{summary}"
    );
    assert!(lines[3].starts_with("verified oci:"), "{summary}");
    assert!(!summary.contains("├─"), "{summary}");

    let tree = support::ok(&["verify", &store, "--key", &public, "--tree"]);
    assert!(tree.contains("├─ bundle "), "{tree}");
    assert!(tree.contains("✓ trusted signers"), "{tree}");
    assert!(tree.lines().count() > lines.len(), "{tree}");
    assert_eq!(tree.lines().last(), lines.last().copied());
}

#[test]
fn man_pages_are_generated_from_the_command_definition() {
    let dir = support::tempdir();
    let out = dir.path().join("man");
    let json = support::ok_json(&["__man", out.to_str().unwrap(), "--output", "json"]);
    assert!(json["pages"].as_array().unwrap().len() > 20, "{json}");
    let main = std::fs::read_to_string(out.join("custody.1")).unwrap();
    assert!(
        main.starts_with(".ie \\n(.g .ds Aq") || main.contains(".TH custody"),
        "{main:.300}"
    );
    let verify = std::fs::read_to_string(out.join("custody-verify.1")).unwrap();
    assert!(verify.contains(".TH custody-verify"), "{verify:.300}");
    assert!(verify.contains("\\-\\-tree"), "{verify:.2000}");
    assert!(!out.join("custody-__man.1").exists());
}

/// Every positional argument of every command (and subcommand) says what it is in `--help`.
#[test]
fn every_positional_argument_has_a_description() {
    fn commands(args: &[&str]) -> Vec<String> {
        let mut all = args.to_vec();
        all.push("--help");
        let help = stdout(&support::run(&all));
        help.split("\nCommands:\n")
            .nth(1)
            .map(|rest| {
                rest.lines()
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|c| *c != "help")
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
    let mut undescribed = Vec::new();
    let mut checked = 0;
    for command in commands(&[]) {
        let mut paths = vec![vec![command.clone()]];
        for sub in commands(&[&command]) {
            paths.push(vec![command.clone(), sub]);
        }
        for path in paths {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--help");
            let help = stdout(&support::run(&args));
            let Some(section) = help.split("\nArguments:\n").nth(1) else {
                continue;
            };
            for line in section.lines().take_while(|l| !l.is_empty()) {
                checked += 1;
                if line.split_whitespace().count() < 2 {
                    undescribed.push(format!("{}: {}", path.join(" "), line.trim()));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} positional arguments found");
    assert!(undescribed.is_empty(), "{undescribed:#?}");
}

/// `--insecure-registry` belongs to commands that talk to a registry; elsewhere it is a
/// usage error that says so, not silently ignored.
#[test]
fn insecure_registry_is_refused_where_no_registry_is_talked_to() {
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a\n").unwrap();
    let o = support::run(&[
        "digest",
        file.to_str().unwrap(),
        "--insecure-registry",
        "registry.internal:5000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: --insecure-registry: `custody digest` talks to no registry"),
        "{}",
        stderr(&o)
    );
    // A command that does talk to one takes it.
    let store = format!("oci:{}:v1", dir.path().join("layout").display());
    let o = support::run(&[
        "push",
        file.to_str().unwrap(),
        "--to",
        &store,
        "--insecure-registry",
        "registry.internal:5000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// What custody writes to a file is reported with one phrase, `<what> written to <path>`.
#[test]
fn files_written_are_reported_the_same_way() {
    let dir = support::tempdir();
    let d = dir.path();
    let file = d.join("app.bin");
    std::fs::write(&file, "app\n").unwrap();
    let run_in = |args: &[&str]| {
        let o = support::custody()
            .args(args)
            .current_dir(d)
            .env("COSIGN_PASSWORD", "pw")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let outputs = [
        run_in(&["keygen"]),
        run_in(&["sbom", "app.bin", "-o", "sbom.json", "--source", "."]),
        run_in(&[
            "sign-blob",
            "app.bin",
            "--key",
            "cosign.key",
            "--bundle",
            "b.json",
        ]),
        run_in(&["policy", "init", "policy.yaml"]),
    ];
    for out in &outputs {
        assert!(out.contains(" written to "), "{out}");
        assert!(!out.contains("wrote "), "{out}");
    }
}
