//! One module per command; each exposes `run(&Args) -> Result<(), Failure>`.

pub mod agent;
pub mod config;
pub mod convert;
pub mod dev_cluster;
pub mod down;
pub mod exec;
pub mod explain;
pub mod image;
pub mod kubeconfig;
pub mod logs;
pub mod ps;
pub mod restart;
pub mod scale;
pub mod server;
pub mod up;

use translator::diag::Errors;

/// Why a command failed; `main` turns it into output and an exit code.
#[derive(Debug)]
pub enum Failure {
    /// The input was refused; the errors say where and why.
    Refused(Errors),
    /// Writing the output failed.
    Io(std::io::Error),
    /// A runtime command failed (cluster unreachable, Docker refused, a service did not become healthy);
    /// the error's chain says what and the hint what to do.
    Runtime(anyhow::Error),
    /// The command ran and ended with this exit code (`exec` passes the remote command's code through).
    Exit(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<Errors> for Failure {
    fn from(e: Errors) -> Self {
        Failure::Refused(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

/// Kubernetes names of compose services named on the command line (all when `names` is empty and the
/// project loaded; an empty list means "every service" to the callers).
pub fn service_names(target: &crate::cluster::Target, names: &[String]) -> Result<Vec<String>, Failure> {
    let Some(conversion) = &target.conversion else { return Ok(names.to_vec()) };
    names
        .iter()
        .map(|n| {
            conversion.services.iter().find(|s| &s.compose_name == n).map(|s| s.name.clone()).ok_or_else(|| {
                let all: Vec<&str> = conversion.services.iter().map(|s| s.compose_name.as_str()).collect();
                Failure::Runtime(anyhow::anyhow!(
                    "no such service: {n}; hint: the project's services are {}",
                    all.join(", ")
                ))
            })
        })
        .collect()
}
