//! The nftables side of the proxy: keeps what the kernel holds and sends only the difference.

use tracing::debug;

use crate::Error;
use crate::apply::Nft;
use crate::model::Model;
use crate::render::{self, RenderConfig, Ruleset};

/// Drives one table. The first sync (and the one after any failure) replaces the whole table; later ones
/// change only the chains and map elements of services that changed.
#[derive(Debug)]
pub struct Proxy {
    cfg: RenderConfig,
    nft: Nft,
    /// What the kernel holds, if known; `None` forces a full sync.
    applied: Option<Ruleset>,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Partial { commands: usize },
    Unchanged,
}

impl Proxy {
    /// Fails if the table's name does not start with `flotilla`: this proxy touches no other table.
    pub fn new(cfg: RenderConfig, nft: Nft) -> Result<Proxy, Error> {
        if !cfg.table.starts_with("flotilla") {
            return Err(Error::BadTable(cfg.table));
        }
        Ok(Proxy { cfg, nft, applied: None })
    }

    pub fn config(&self) -> &RenderConfig {
        &self.cfg
    }

    /// Makes the table match the model.
    pub async fn sync(&mut self, model: &Model) -> Result<SyncKind, Error> {
        let new = render::render(model, &self.cfg);
        let (tx, kind) = match &self.applied {
            None => (render::full_sync(&self.cfg, &new), SyncKind::Full),
            Some(old) => {
                let tx = render::partial_sync(&self.cfg, old, &new);
                let kind =
                    if tx.is_empty() { SyncKind::Unchanged } else { SyncKind::Partial { commands: tx.objects.len() } };
                (tx, kind)
            }
        };
        // Forget the kernel's state until this apply is known to have worked: a failure means the next
        // sync rewrites everything.
        self.applied = None;
        self.nft.apply(&tx).await?;
        debug!(table = %self.cfg.table, ?kind, "nftables synced");
        self.applied = Some(new);
        Ok(kind)
    }

    /// Forgets what the kernel holds, so the next sync rewrites the whole table (used periodically, in
    /// case something outside flotilla changed or flushed it).
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    /// Removes the table.
    pub async fn delete(&mut self) -> Result<(), Error> {
        self.applied = None;
        self.nft.apply(&render::delete_table(&self.cfg.table)).await
    }
}
