//! `sample-pack OUT.zip [FILES] [MEGABYTES] [LEVEL] [PER_MILLE_CHANGED]
//! [--product NAME --version VERSION]`: writes a deterministic WSO2-like
//! sample pack (used by the demo and the benchmarks).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rigger_tests::pack::SamplePack;

/// The products the shipped modules install.
const PRODUCTS: [&str; 4] = ["wso2is", "wso2am", "wso2mi", "wso2ei"];

/// Write a deterministic WSO2-like sample product pack.
#[derive(Parser, Debug)]
#[command(name = "sample-pack")]
struct Cli {
    /// The zip to write.
    out: PathBuf,
    /// Files in the pack.
    #[arg(default_value_t = 200)]
    files: usize,
    /// Total size in MiB.
    #[arg(default_value_t = 4)]
    megabytes: u64,
    /// Update level (0 = GA).
    #[arg(default_value_t = 0)]
    level: u32,
    /// Files changed by the level, per mille.
    #[arg(default_value_t = 20)]
    per_mille_changed: u32,
    /// Product (wso2is, wso2am, wso2mi or wso2ei).
    #[arg(long, default_value = "wso2is", value_parser = clap::builder::PossibleValuesParser::new(PRODUCTS))]
    product: String,
    /// Product version, e.g. 5.11.0, 4.2.0, 6.6.0.
    #[arg(long = "version", id = "product_version", value_name = "VERSION", default_value = "5.11.0", value_parser = version)]
    product_version: String,
}

fn version(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a version like 5.11.0"))
    }
}

fn main() -> ExitCode {
    let cli: Cli = rigger_common::exit::parse_args();
    let mut pack =
        SamplePack::new(cli.files, cli.megabytes << 20).at_level(cli.level, cli.per_mille_changed);
    pack.name = cli.product;
    pack.version = cli.product_version;
    match pack.write_zip(&cli.out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sample-pack: cannot write {}: {e}", cli.out.display());
            ExitCode::FAILURE
        }
    }
}
