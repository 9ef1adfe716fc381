//! The command line: one documented clap type per command. Flags mean what they mean in Docker Compose.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about = "Run docker-compose projects on a cluster", propagate_version = true)]
pub struct Cli {
    /// Kubeconfig of the cluster to use; default: KUBECONFIG, else the embedded cluster in the data dir
    /// (which `up` starts when no server answers).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
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
    /// Create and start the project's services on the cluster.
    Up(UpArgs),
    /// Stop and remove the project's services (named volumes stay unless -v).
    Down(DownArgs),
    /// List the project's pods.
    Ps(PsArgs),
    /// Show the logs of the project's services.
    Logs(LogsArgs),
    /// Run a command in a running service's container.
    Exec(ExecArgs),
    /// Restart services (a rolling restart of their pods).
    Restart(RestartArgs),
    /// Set the number of pods of services: `scale web=3`.
    Scale(ScaleArgs),
    /// Print the admin kubeconfig of the embedded cluster (for kubectl).
    Kubeconfig(KubeconfigArgs),
    /// Run the cluster server (API, store, controllers, scheduler and, unless --no-agent, a node agent).
    Server(crate::commands::server::ServerArgs),
    /// Join a cluster as a node: run a node agent against `--server`, trusting it through `--token`.
    Agent(crate::commands::agent::AgentArgs),
    /// Several nodes on this machine (network namespaces, each with its own dockerd): `dev-cluster up --nodes 3`.
    DevCluster(crate::commands::dev_cluster::DevClusterArgs),
    /// Images for a cluster without a registry: `image load -i FILE` (a `docker save` archive), `image ls`.
    Image(crate::commands::image::ImageArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Detached: return once the services are started instead of following their logs.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images before starting, even when they exist.
    #[arg(long)]
    pub build: bool,
    /// Wait for services to be running and healthy; implies -d.
    #[arg(long)]
    pub wait: bool,
    /// Limit for --wait, in seconds.
    #[arg(long, value_name = "SECS")]
    pub wait_timeout: Option<u64>,
    /// Shutdown grace period in seconds when stopping (Ctrl-C without -d).
    #[arg(short = 't', long, value_name = "SECS")]
    pub timeout: Option<u32>,
    /// Remove objects of services no longer in the compose file.
    #[arg(long)]
    pub remove_orphans: bool,
    /// Start only these services (and what they depend on).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Also remove named volumes (PersistentVolumeClaims and their data) and the namespace.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Shutdown grace period in seconds.
    #[arg(short = 't', long, value_name = "SECS")]
    pub timeout: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Show all pods, stopped ones too.
    #[arg(short = 'a', long)]
    pub all: bool,
}

/// `logs` spells `-f` as compose's `logs -f` (follow), so its project flags are its own copy of
/// [`ProjectArgs`] with `--file` long only.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Compose configuration files (repeatable).
    #[arg(long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Alternate working directory.
    #[arg(long = "project-directory", value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Enable a profile (repeatable).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Read variables from this file instead of .env (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Follow the output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines from the end of each pod's log.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<i64>,
    /// Only these services.
    pub services: Vec<String>,
}

impl LogsArgs {
    pub fn project(&self) -> ProjectArgs {
        ProjectArgs {
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            profiles: self.profiles.clone(),
            env_files: self.env_files.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Do not allocate a terminal.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// The service.
    pub service: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Only these services.
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// `SERVICE=REPLICAS`, one or more.
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub scales: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The data dir of the embedded cluster.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
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

#[cfg(test)]
mod tests {
    /// clap checks its definitions only when a command is parsed; this checks every command at once
    /// (a short flag used twice, a bad default).
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
