//! `masterctl backup key | create | restore`: offline, on the master's
//! host ([`crate::backup`]).

use std::path::PathBuf;

/// A backup command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Write a new key.
    Key {
        /// Where.
        file: PathBuf,
    },
    /// Back up a data directory.
    Create {
        /// The backup to write.
        file: PathBuf,
        /// The key.
        key_file: PathBuf,
        /// The data directory.
        data_dir: PathBuf,
        /// With the content store.
        with_blobs: bool,
    },
    /// Restore into an empty data directory.
    Restore {
        /// The backup.
        file: PathBuf,
        /// The key.
        key_file: PathBuf,
        /// The data directory.
        data_dir: PathBuf,
    },
}

/// Runs `command`; the text says what was done.
pub async fn run(command: Command) -> anyhow::Result<String> {
    match command {
        Command::Key { file } => {
            crate::backup::generate_key(&file)?;
            Ok(format!(
                "backup key written to {} (0600): store it apart from the backups\n",
                file.display()
            ))
        }
        Command::Create {
            file,
            key_file,
            data_dir,
            with_blobs,
        } => {
            let summary = crate::backup::create(&data_dir, &file, &key_file, with_blobs).await?;
            Ok(format!(
                "backed up {} ({} files, {} bytes{}) into {}\n",
                data_dir.display(),
                summary.files,
                summary.bytes,
                match (with_blobs, summary.blobs) {
                    (_, true) => "",
                    (false, false) => ", without the content store",
                    (true, false) =>
                        ", without the content store: the data directory has none (a master with [blobs] kind = \"s3\" keeps it in the bucket)",
                },
                file.display()
            ))
        }
        Command::Restore {
            file,
            key_file,
            data_dir,
        } => {
            let summary = crate::backup::restore(&file, &key_file, &data_dir)?;
            Ok(format!(
                "restored {} files ({} bytes) into {}: a new epoch starts; start the master, and its nodes continue above the versions they applied\n",
                summary.files,
                summary.bytes,
                data_dir.display()
            ))
        }
    }
}
