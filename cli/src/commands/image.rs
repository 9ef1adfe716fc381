//! `flotilla image load [-i FILE]` and `flotilla image ls`: images for a cluster without a registry. The
//! archive (`docker save` output) goes to the server, which sends each image to the nodes whose pods use
//! it (see `cluster::images`).

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};

use super::Failure;
use crate::cluster::{connect, runtime};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Load a `docker save` archive into the cluster (from stdin without -i), like `docker load`.
    Load {
        /// The archive; `-` or none reads stdin.
        #[arg(short = 'i', long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// List the images the server keeps for its nodes.
    Ls,
}

pub fn run(args: &ImageArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        match &args.command {
            ImageCommand::Load { input } => {
                let (name, archive) = read_archive(input.as_ref())?;
                let images =
                    cluster::project::images::upload(&client, archive).await.map_err(|e| anyhow!("{name}: {e}"))?;
                for image in images {
                    if image.tags.is_empty() {
                        println!("Loaded image ID: {}", image.id);
                    }
                    for tag in image.tags {
                        println!("Loaded image: {tag}");
                    }
                }
            }
            ImageCommand::Ls => {
                println!("{:<50} IMAGE ID", "REPOSITORY:TAG");
                for image in cluster::project::images::list_stored(&client).await? {
                    let short = image.id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
                    for tag in &image.tags {
                        println!("{tag:<50} {short}");
                    }
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// The archive's bytes and a name for errors. Checked here, so a wrong file is refused before the upload.
fn read_archive(input: Option<&PathBuf>) -> anyhow::Result<(String, Vec<u8>)> {
    let mut archive = Vec::new();
    let name = match input.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut archive))
                .with_context(|| format!("reading {}", path.display()))?;
            path.display().to_string()
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(anyhow!(
                    "no archive: give one with -i FILE or on stdin, e.g. `docker save IMAGE | flotilla image load`"
                ));
            }
            std::io::stdin().read_to_end(&mut archive).context("reading stdin")?;
            "stdin".to_string()
        }
    };
    // A tar archive has "ustar" at offset 257 of its first header.
    if archive.len() < 512 || &archive[257..262] != b"ustar" {
        return Err(anyhow!(
            "{name}: not a docker save archive (not a tar file); hint: create it with `docker save -o image.tar IMAGE`"
        ));
    }
    Ok((name, archive))
}
