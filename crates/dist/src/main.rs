//! `bionicbb-dist [--check]`: writes the man pages and shell completions
//! of both daemons under `contrib/` (see the library), or with `--check`
//! lists those that differ from what the command lines give and exits 1.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("bionicbb-dist: unknown argument {other:?}; usage: bionicbb-dist [--check]");
            return ExitCode::from(2);
        }
    };
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
    let files = match bionicbb_dist::all() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("bionicbb-dist: cannot render: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for file in files {
        let path = contrib.join(&file.path);
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(file.contents.as_slice()) {
            continue;
        }
        if check {
            eprintln!("stale: contrib/{}", file.path.display());
            stale += 1;
            continue;
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &file.contents));
        match written {
            Ok(()) => println!("wrote contrib/{}", file.path.display()),
            Err(e) => {
                eprintln!("bionicbb-dist: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if stale > 0 {
        eprintln!("{stale} files are stale: run `cargo run -p bionicbb-dist` and commit them");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
