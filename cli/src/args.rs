//! The command line: one documented clap type per command. Flags mean what they mean in Docker Compose.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about = "Run docker-compose projects on a cluster", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the resolved compose model, as `docker compose config` does.
    Config(ConfigArgs),
    /// Convert the compose project to Kubernetes objects.
    Convert(ConvertArgs),
    /// Explain, service by service, which Kubernetes objects the project becomes and why.
    Explain(ExplainArgs),
}

/// How to find and read the compose project; shared by every command that reads one.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Compose configuration files (repeatable); default: compose.yaml and its override in this folder
    /// or the nearest parent, or COMPOSE_FILE.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name; default: COMPOSE_PROJECT_NAME, the top-level `name:`, or the folder's name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory; default: the folder of the first compose file.
    #[arg(long = "project-directory", value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Enable a profile (repeatable); default: COMPOSE_PROFILES.
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Read variables from this file instead of .env (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BindMounts {
    /// Files and folders become ConfigMaps (their content travels with the manifests).
    #[default]
    Configmap,
    /// Host paths are mounted as they are (the data stays on whichever node runs the pod).
    Hostpath,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Namespace for every object; default: the project name.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write one file per object into this folder instead of printing them.
    #[arg(short = 'o', long = "out", value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,
    /// How bind mounts of the project's own files are converted (a service's `x-flotilla: {bind_mounts}`
    /// overrides it; paths outside the project always stay host paths).
    #[arg(long, value_enum, default_value_t = BindMounts::Configmap)]
    pub bind_mounts: BindMounts,
    /// Image of the init containers that wait for `depends_on` services (needs sh, nc and nslookup);
    /// default: the project's `x-flotilla: {wait_image}`, else busybox:1.36.
    #[arg(long, value_name = "IMAGE")]
    pub wait_image: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    #[default]
    Text,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
}
