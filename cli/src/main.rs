//! The `flotilla` binary: parses the command line, dispatches to one small function per command, and
//! decides the exit code. Business logic lives in the library crates.
//!
//! Exit codes: 0 success (warnings may have been printed), 1 the input was refused (errors printed as
//! `error: FILE:LINE:COL: key: message`), 2 the command line was wrong (clap's own code).

mod args;
mod cluster;
mod commands;
mod dev_cluster;
mod logs;
mod progress;
mod project;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let kubeconfig = cli.kubeconfig.clone();
    let result = match cli.command {
        args::Command::Config(a) => commands::config::run(&a),
        args::Command::Convert(a) => commands::convert::run(&a),
        args::Command::Explain(a) => commands::explain::run(&a),
        args::Command::Up(a) => commands::up::run(&a, kubeconfig),
        args::Command::Down(a) => commands::down::run(&a, kubeconfig),
        args::Command::Ps(a) => commands::ps::run(&a, kubeconfig),
        args::Command::Logs(a) => commands::logs::run(&a, kubeconfig),
        args::Command::Exec(a) => commands::exec::run(&a, kubeconfig),
        args::Command::Restart(a) => commands::restart::run(&a, kubeconfig),
        args::Command::Scale(a) => commands::scale::run(&a, kubeconfig),
        args::Command::Kubeconfig(a) => commands::kubeconfig::run(&a),
        args::Command::Server(a) => commands::server::run(&a),
        args::Command::Agent(a) => commands::agent::run(&a),
        args::Command::DevCluster(a) => commands::dev_cluster::run(&a),
        args::Command::Image(a) => commands::image::run(&a, kubeconfig),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Refused(errors)) => {
            let mut stderr = std::io::stderr().lock();
            for e in errors.0 {
                let _ = writeln!(stderr, "{e}");
            }
            ExitCode::from(1)
        }
        // A closed pipe (`flotilla convert | head`) is not a failure.
        Err(commands::Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(commands::Failure::Io(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(commands::Failure::Exit(code)) => ExitCode::from(code),
        Err(commands::Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
