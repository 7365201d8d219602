//! `cargo xtask assets DIR`: writes what the packages ship beside the
//! binaries, from the binaries' own command-line definitions — shell
//! completions (`DIR/completions/{bash,zsh,fish}/`) and man pages
//! (`DIR/man/man8/`, one per command and subcommand, gzipped by the
//! packaging tools).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "assets" => assets(Path::new(dir)),
        _ => bail!("usage: cargo xtask assets DIR"),
    }
}

/// The four binaries' command lines.
fn commands() -> Vec<clap::Command> {
    vec![
        rigger_master::cli::master::Cli::command(),
        rigger_master::cli::masterctl::Cli::command(),
        rigger_agent::cli::agent::Cli::command(),
        rigger_agent::cli::agentctl::Cli::command(),
    ]
}

fn assets(dir: &Path) -> anyhow::Result<()> {
    let man = dir.join("man/man8");
    create(&man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        create(&completions_dir(dir, shell))?;
    }
    for command in commands() {
        let name = command.get_name().to_string();
        // Section 8: system administration commands and daemons.
        let command = command.version(env!("CARGO_PKG_VERSION"));
        man_pages(command.clone(), &man)
            .with_context(|| format!("cannot write the man pages of {name}"))?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut command = command.clone();
            clap_complete::generate_to(shell, &mut command, &name, completions_dir(dir, shell))
                .with_context(|| format!("cannot write {name}'s {shell} completions"))?;
        }
    }
    println!("wrote man pages and completions under {}", dir.display());
    Ok(())
}

/// `NAME.8` for the command and `NAME-SUB[-SUB].8` for each subcommand,
/// in section 8 (system administration commands and daemons).
fn man_pages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    fn write(command: clap::Command, dir: &Path) -> std::io::Result<()> {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir)?;
        }
        clap_mangen::Man::new(command)
            .section("8")
            .generate_to(dir)?;
        Ok(())
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    write(command, dir)
}

fn completions_dir(dir: &Path, shell: Shell) -> PathBuf {
    dir.join("completions").join(shell.to_string())
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
