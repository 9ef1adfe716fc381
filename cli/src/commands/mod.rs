//! One module per command; each exposes `run(&Args) -> Result<(), Failure>`.

pub mod config;
pub mod convert;
pub mod explain;

use translator::diag::Errors;

/// Why a command failed; `main` turns it into output and an exit code.
#[derive(Debug)]
pub enum Failure {
    /// The input was refused; the errors say where and why.
    Refused(Errors),
    /// Writing the output failed.
    Io(std::io::Error),
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
