//! About custody itself: `custody version` and `custody completion SHELL`.

use clap::{Args, CommandFactory, ValueEnum};

use super::{Cli, Report};

/// The git commit custody was built from ("unknown" outside a checkout).
pub const COMMIT: &str = env!("CUSTODY_GIT_COMMIT");
/// The build date, `YYYY-MM-DD` (SOURCE_DATE_EPOCH when set).
pub const BUILD_DATE: &str = env!("CUSTODY_BUILD_DATE");
/// The target triple custody was built for.
pub const TARGET: &str = env!("CUSTODY_TARGET");

/// What `-V/--version` prints after the name: the same facts as `custody version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CUSTODY_GIT_COMMIT"),
    " ",
    env!("CUSTODY_BUILD_DATE"),
    " ",
    env!("CUSTODY_TARGET"),
    ")"
);

#[derive(Args, Debug)]
pub struct VersionArgs {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn version() -> Report {
    Report {
        human: format!(
            "custody {}\ncommit: {COMMIT}\nbuilt: {BUILD_DATE}\ntarget: {TARGET}\n",
            env!("CARGO_PKG_VERSION")
        ),
        json: serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": COMMIT,
            "buildDate": BUILD_DATE,
            "target": TARGET,
        }),
    }
}

/// The completion script for `shell`, generated from the command definition.
pub fn completion(args: &CompletionArgs) -> String {
    use clap_complete::Shell as S;
    let shell = match args.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
    };
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "custody", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The folder to write `custody.1` and one `custody-COMMAND.1` per command into.
    pub dir: std::path::PathBuf,
}

/// Writes man pages generated from the command definition into `args.dir`.
pub fn man(args: &ManArgs) -> anyhow::Result<Report> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut command = Cli::command();
    command.build();
    let mut pages = vec![("custody".to_owned(), command.clone())];
    pages.extend(
        command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (format!("custody-{}", s.get_name()), s.clone())),
    );
    let mut written = Vec::new();
    for (title, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(title.clone())
            .render(&mut out)
            .with_context(|| format!("cannot render the man page of {title}"))?;
        let path = args.dir.join(format!("{title}.1"));
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(Report {
        human: format!(
            "{} man page(s) written to {}\n",
            written.len(),
            args.dir.display()
        ),
        json: serde_json::json!({ "pages": written }),
    })
}
