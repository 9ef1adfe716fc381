//! Applying transactions with the `nft` binary (`nft -j -f -`, through the `nftables` crate's helper),
//! and reading a table back. The only module here that runs a process.

use crate::Error;
use crate::render::Transaction;

/// How to run `nft`: the program and the arguments put before `-j -f -`. Tests use
/// `ip netns exec <ns> nft` to work inside a network namespace of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    pub program: String,
    pub args: Vec<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft { program: "nft".into(), args: Vec::new() }
    }
}

impl Nft {
    /// `ip netns exec <netns> nft`.
    pub fn in_netns(netns: &str) -> Nft {
        Nft { program: "ip".into(), args: vec!["netns".into(), "exec".into(), netns.into(), "nft".into()] }
    }

    /// Applies the transaction atomically (one `nft` run). An empty transaction runs nothing.
    pub async fn apply(&self, tx: &Transaction) -> Result<(), Error> {
        if tx.is_empty() {
            return Ok(());
        }
        let payload = tx.to_json_string();
        nftables::helper::apply_ruleset_raw_async(&payload, Some(&self.program), self.args.iter())
            .await
            .map(|_| ())
            .map_err(|e| match e {
                nftables::helper::NftablesError::NftFailed { stderr, .. } => Error::Nft(stderr.trim().to_string()),
                other => Error::Nft(other.to_string()),
            })
    }

    /// `nft -j list table ip <table>` as JSON (the `nftables` crate cannot parse verdict maps, so this is
    /// left as a `serde_json::Value`).
    pub async fn list_table(&self, table: &str) -> Result<serde_json::Value, Error> {
        let program = self.program.as_str();
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.args).arg("-j").args(["list", "table", "ip", table]);
        let out = cmd.output().await.map_err(|e| Error::Nft(format!("cannot run {program}: {e}")))?;
        if !out.status.success() {
            return Err(Error::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Nft(format!("nft printed invalid json: {e}")))
    }
}
