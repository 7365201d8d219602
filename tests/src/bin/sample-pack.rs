//! `sample-pack OUT.zip [FILES] [MEGABYTES] [LEVEL] [PER_MILLE_CHANGED]`:
//! writes a deterministic WSO2-like sample pack (used by the demo and the
//! benchmarks).

use std::process::ExitCode;

use rigger_tests::pack::SamplePack;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: sample-pack OUT.zip [FILES=200] [MEGABYTES=4] [LEVEL=0] [PER_MILLE_CHANGED=20]";
    let Some(out) = args.first() else {
        eprintln!("{usage}");
        return ExitCode::from(64);
    };
    let number = |i: usize, default: u64| -> Option<u64> {
        args.get(i).map_or(Some(default), |a| a.parse().ok())
    };
    let (Some(files), Some(mb), Some(level), Some(per_mille)) =
        (number(1, 200), number(2, 4), number(3, 0), number(4, 20))
    else {
        eprintln!("{usage}");
        return ExitCode::from(64);
    };
    let pack = SamplePack::new(files as usize, mb << 20).at_level(level as u32, per_mille as u32);
    match pack.write_zip(std::path::Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sample-pack: cannot write {out}: {e}");
            ExitCode::FAILURE
        }
    }
}
