//! Namespace controller: empties a Terminating namespace (every namespaced kind the server serves, found by
//! discovery; pods deleted gracefully so the agent stops them), waits until nothing is left, then PUTs
//! `namespaces/{name}/finalize` with `spec.finalizers` emptied, after which the API server removes it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::gc::{DEPENDENTS, OWNERS};
use super::{Ctx, Error, drain, error_policy, is_not_found};

/// Runs the namespace controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let stream =
        Controller::new(Api::<Namespace>::all(client), watcher::Config::default()).run(reconcile, error_policy, ctx);
    drain("namespace", stream).await;
}

/// Whether the namespace is being deleted.
pub fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// Namespaced kinds to empty: from discovery (list + delete verbs), or our fixed list when discovery fails.
async fn namespaced_kinds(client: &kube::Client) -> Vec<ApiResource> {
    match Discovery::new(client.clone()).run().await {
        Ok(discovery) => {
            let mut out = vec![];
            for group in discovery.groups() {
                for (ar, caps) in group.recommended_resources() {
                    if caps.scope == Scope::Namespaced
                        && caps.supports_operation(verbs::LIST)
                        && caps.supports_operation(verbs::DELETE)
                    {
                        out.push(ar);
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
            fallback_kinds()
        }
        Err(err) => {
            tracing::debug!(%err, "discovery failed; emptying namespaces by the built-in kind list");
            fallback_kinds()
        }
    }
}

fn fallback_kinds() -> Vec<ApiResource> {
    let mut kinds: Vec<ApiResource> = vec![];
    for kind in DEPENDENTS.iter().chain(OWNERS).filter(|k| k.namespaced) {
        let gvk = kube::api::GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
        if !kinds.iter().any(|k| k.plural == ar.plural && k.group == ar.group) {
            kinds.push(ar);
        }
    }
    for (group, version, kind, plural) in [
        ("", "v1", "Event", "events"),
        ("", "v1", "ServiceAccount", "serviceaccounts"),
        ("coordination.k8s.io", "v1", "Lease", "leases"),
        ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    ] {
        kinds.push(ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk(group, version, kind), plural));
    }
    kinds
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !terminating(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let mut remaining = 0usize;
    for ar in namespaced_kinds(&ctx.client).await {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) if is_not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 405) => continue,
            Err(e) => return Err(e.into()),
        };
        for obj in &list.items {
            remaining += 1;
            if obj.metadata.deletion_timestamp.is_none() {
                super::delete_ignore_missing(&api, &obj.name_any(), &DeleteParams::background()).await?;
            }
        }
    }
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "namespace still has objects");
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let mut body = (*ns).clone();
    body.spec.get_or_insert_with(Default::default).finalizers = Some(vec![]);
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.replace_subresource("finalize", &name, &PostParams::default(), &body).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_covers_the_kinds_we_create() {
        let kinds = fallback_kinds();
        for plural in ["pods", "replicasets", "deployments", "services", "endpointslices", "configmaps", "events"] {
            assert!(kinds.iter().any(|k| k.plural == plural), "{plural}");
        }
        assert!(!kinds.iter().any(|k| k.plural == "nodes"));
    }

    #[test]
    fn terminating_by_phase_or_timestamp() {
        let mut ns = Namespace::default();
        assert!(!terminating(&ns));
        ns.status =
            Some(k8s_openapi::api::core::v1::NamespaceStatus { phase: Some("Terminating".into()), conditions: None });
        assert!(terminating(&ns));
    }
}
