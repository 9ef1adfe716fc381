//! `flotilla dev-cluster up --nodes N | down | kill NODE`: several nodes on this machine, each a network
//! namespace with its own dockerd (see `crate::dev_cluster`).

use clap::{Args, Subcommand};

use super::Failure;
use crate::dev_cluster;

#[derive(Debug, Args)]
pub struct DevClusterArgs {
    #[command(subcommand)]
    pub command: DevClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum DevClusterCommand {
    /// Create the nodes, start the server on the first and agents on the others, wait until all are Ready.
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[command(flatten)]
        name: NameArg,
        /// Arguments for `flotilla server` after `--`, e.g. `-- --pod-eviction-timeout 10s`.
        #[arg(last = true, value_name = "SERVER-ARGS")]
        server_args: Vec<String>,
    },
    /// Stop every daemon and container of the dev cluster and remove its namespaces, bridge and files.
    Down {
        #[command(flatten)]
        name: NameArg,
    },
    /// Kill one node as a machine dies (agent, containers, dockerd, network), to watch its pods move.
    Kill {
        /// The node, e.g. dev-3.
        node: String,
        #[command(flatten)]
        name: NameArg,
    },
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// The dev cluster's name (several can coexist); nodes are called <name>-1, <name>-2, ...
    #[arg(long, default_value = "dev")]
    pub name: String,
}

pub fn run(args: &DevClusterArgs) -> Result<(), Failure> {
    if unsafe_euid() != 0 {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "dev-cluster creates network namespaces and runs dockerd: run it as root"
        )));
    }
    let runtime = crate::cluster::runtime()?;
    runtime
        .block_on(async {
            match &args.command {
                DevClusterCommand::Up { nodes, name, server_args } => {
                    let request = dev_cluster::UpRequest {
                        name: name.name.clone(),
                        nodes: *nodes,
                        server_args: server_args.clone(),
                    };
                    eprintln!("Creating dev cluster {:?} with {nodes} node(s)...", name.name);
                    let state = dev_cluster::up(&request).await?;
                    for (i, node) in state.nodes.iter().enumerate() {
                        let role = if i == 0 { "server, agent" } else { "agent" };
                        println!("{:<24} {:<15} {role}", node.name, node.ip.to_string());
                    }
                    println!("export KUBECONFIG={}", state.kubeconfig_path().display());
                    Ok(())
                }
                DevClusterCommand::Down { name } => {
                    let state = dev_cluster::load(&name.name)?;
                    dev_cluster::down(&state).await;
                    eprintln!("Removed dev cluster {:?}", name.name);
                    Ok(())
                }
                DevClusterCommand::Kill { node, name } => {
                    let mut state = dev_cluster::load(&name.name)?;
                    dev_cluster::kill(&mut state, node).await?;
                    eprintln!("Killed {node}; the cluster will notice its silence (see `kubectl get nodes -w`)");
                    Ok(())
                }
            }
        })
        .map_err(Failure::Runtime)
}

fn unsafe_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
