//! EndpointSlice controller (and the legacy core/v1 Endpoints object): for each Service with a selector,
//! the pods it selects, with their readiness. A terminating pod's endpoint turns not-ready at once
//! (`ready: false, terminating: true`, `serving` still following the pod), which is what lets the service
//! proxy stop sending it new connections before the agent sends SIGTERM.
//!
//! Pods whose ports resolve differently (a named targetPort) land in different slices, one per port set,
//! named `<svc>-<hash of the port set>`; an empty Service keeps one placeholder slice without endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::{
    Ctx, Error, controller_ref, drain, error_policy, fnv32a, is_conflict, is_not_found, map_selector_matches,
    pod_phase, pod_ready, safe_encode,
};

/// Label tying a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the slice's manager (other managers' slices are left alone).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value for [`MANAGED_BY_LABEL`], the same as kube-controller-manager's.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Endpoints per slice, kube-controller-manager's default (`--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Runs the EndpointSlice controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let stream = controller
        .owns(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default())
        // Any pod change may concern any Service of its namespace (labels can change, too).
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod: Pod| {
            let ns = pod.namespace();
            store.state().iter().filter(|s| s.namespace() == ns).map(|s| ObjectRef::from_obj(&**s)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx);
    drain("endpointslice", stream).await;
}

/// The port the Service's `port` maps to on `pod`, resolving a named targetPort against the pod's container
/// ports (None when the pod has no such port).
pub fn resolve_target(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => {
            let proto = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|cp| {
                (cp.name.as_deref() == Some(name) && cp.protocol.as_deref().unwrap_or("TCP") == proto)
                    .then_some(cp.container_port)
            })
        }
    }
}

/// Pods that belong in the Service's endpoints: selected, same namespace, with an IP, not finished.
pub fn selected_pods<'a>(svc: &Service, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let selector = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.namespace() == svc.namespace())
        .filter(|p| map_selector_matches(&selector, &p.metadata.labels.clone().unwrap_or_default()))
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).is_some_and(|ip| !ip.is_empty()))
        .filter(|p| !matches!(pod_phase(p), "Succeeded" | "Failed"))
        .collect();
    out.sort_by_key(|p| p.name_any());
    out
}

fn endpoint_for(svc: &Service, pod: &Pod) -> Endpoint {
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = pod_ready(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = match (&spec.hostname, &spec.subdomain) {
        (Some(h), Some(sub)) if !h.is_empty() && Some(sub) == svc.metadata.name.as_ref() => Some(h.clone()),
        _ => None,
    };
    Endpoint {
        addresses: vec![pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (ready && !terminating)),
            serving: Some(publish || ready),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The slices the Service should have, by name.
pub fn desired_slices(svc: &Service, pods: &[Pod]) -> Vec<EndpointSlice> {
    let svc_name = svc.name_any();
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in selected_pods(svc, pods) {
        let eports: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(resolve_target(p, pod)?),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        let key = serde_json::to_string(&eports).unwrap_or_default();
        groups.entry(key).or_insert_with(|| (eports, vec![])).1.push(endpoint_for(svc, pod));
    }
    let slice = |key: &str, ports: Option<Vec<EndpointPort>>, endpoints: Vec<Endpoint>| {
        let suffix: String =
            safe_encode(&fnv32a(format!("{svc_name}/{key}").as_bytes()).to_string()).chars().take(5).collect();
        let mut labels = svc.metadata.labels.clone().unwrap_or_default();
        labels.insert(SERVICE_NAME_LABEL.into(), svc_name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{svc_name}-{suffix}")),
                namespace: svc.namespace(),
                labels: Some(labels),
                owner_references: Some(vec![controller_ref(svc)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints,
            ports,
        }
    };
    if groups.is_empty() {
        return vec![slice("", None, vec![])];
    }
    let mut out = vec![];
    for (key, (ports, eps)) in groups {
        for (i, chunk) in eps.chunks(MAX_ENDPOINTS_PER_SLICE).enumerate() {
            let key = if i == 0 { key.clone() } else { format!("{key}#{i}") };
            out.push(slice(&key, Some(ports.clone()), chunk.to_vec()));
        }
    }
    out
}

/// The legacy Endpoints object: ready addresses and not-ready ones; terminating pods are left out unless
/// the Service publishes not-ready addresses, as upstream.
pub fn desired_endpoints(svc: &Service, slices: &[EndpointSlice]) -> Endpoints {
    let mut subsets = vec![];
    for slice in slices.iter().filter(|s| !s.endpoints.is_empty()) {
        let mut ready = vec![];
        let mut not_ready = vec![];
        for ep in &slice.endpoints {
            let cond = ep.conditions.clone().unwrap_or_default();
            let addr = EndpointAddress {
                ip: ep.addresses[0].clone(),
                hostname: ep.hostname.clone(),
                node_name: ep.node_name.clone(),
                target_ref: ep.target_ref.clone(),
            };
            if cond.ready == Some(true) {
                ready.push(addr);
            } else if cond.terminating != Some(true) {
                not_ready.push(addr);
            }
        }
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        subsets.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: slice.ports.as_ref().map(|ps| {
                ps.iter()
                    .map(|p| CorePort {
                        name: p.name.clone().filter(|n| !n.is_empty()),
                        port: p.port.unwrap_or_default(),
                        protocol: p.protocol.clone(),
                        app_protocol: p.app_protocol.clone(),
                    })
                    .collect()
            }),
        });
    }
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.namespace(),
            labels: svc.metadata.labels.clone(),
            owner_references: Some(vec![controller_ref(svc)]),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let has_selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|s| !s.is_empty());
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    if svc.metadata.deletion_timestamp.is_some() || !has_selector || external {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    // Only the selected pods, by label selector: a namespace may hold thousands of pods, and every pod
    // change there reconciles its Services.
    let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).into_iter().flatten();
    let selector = selector.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let pods =
        Api::<Pod>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default().labels(&selector)).await?.items;
    let desired = desired_slices(&svc, &pods);
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = slices
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await?
        .items;
    for want in &desired {
        let wname = want.name_any();
        match existing.iter().find(|e| e.name_any() == wname) {
            None => match slices.create(&PostParams::default(), want).await {
                Ok(_) => {}
                Err(e) if is_conflict(&e) => {
                    // A slice of that name without our labels (edited by hand): take it over.
                    if let Some(have) = slices.get_opt(&wname).await? {
                        let mut next = want.clone();
                        next.metadata.resource_version = have.metadata.resource_version.clone();
                        slices.replace(&wname, &PostParams::default(), &next).await?;
                    }
                }
                Err(e) => return Err(e.into()),
            },
            Some(have) => {
                if have.endpoints != want.endpoints
                    || have.ports != want.ports
                    || have.metadata.labels != want.metadata.labels
                {
                    let mut next = want.clone();
                    next.metadata.resource_version = have.metadata.resource_version.clone();
                    match slices.replace(&wname, &PostParams::default(), &next).await {
                        Ok(_) => {}
                        Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    for have in existing.iter().filter(|e| !desired.iter().any(|d| d.name_any() == e.name_any())) {
        super::delete_ignore_missing(&slices, &have.name_any(), &DeleteParams::default()).await?;
    }

    // Legacy Endpoints, for clients that still read them; a server without them is not an error.
    let eps_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let want = desired_endpoints(&svc, &desired);
    match eps_api.get_opt(&name).await {
        Ok(None) => match eps_api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) || is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        },
        Ok(Some(have)) => {
            if have.subsets != want.subsets {
                let mut next = want;
                next.metadata.resource_version = have.metadata.resource_version.clone();
                match eps_api.replace(&name, &PostParams::default(), &next).await {
                    Ok(_) => {}
                    Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "p", "uid": "s1"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9000, "targetPort": 9100}
            ]}
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, terminating: bool, named_port: bool) -> Pod {
        let mut ports = vec![];
        if named_port {
            ports.push(json!({"name": "http", "containerPort": 8080}));
        }
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "p", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "hostname": name, "subdomain": "web", "containers": [{"name": "c", "image": "i", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap();
        if terminating {
            p.metadata.deletion_timestamp = Some(crate::controllers::now());
        }
        p
    }

    #[test]
    fn slices_follow_readiness_and_termination() {
        let pods = vec![
            pod("a", "10.42.0.2", true, false, true),
            pod("b", "10.42.0.3", true, true, true),
            pod("c", "10.42.0.4", false, false, true),
        ];
        let slices = desired_slices(&svc(), &pods);
        assert_eq!(slices.len(), 1);
        let s = &slices[0];
        assert!(s.metadata.name.as_deref().unwrap().starts_with("web-"));
        assert_eq!(s.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL], "web");
        let ports = s.ports.as_ref().unwrap();
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[1].port, Some(9100));
        let conds: Vec<_> = s.endpoints.iter().map(|e| e.conditions.clone().unwrap()).collect();
        assert_eq!((conds[0].ready, conds[0].serving, conds[0].terminating), (Some(true), Some(true), Some(false)));
        assert_eq!((conds[1].ready, conds[1].serving, conds[1].terminating), (Some(false), Some(true), Some(true)));
        assert_eq!(conds[2].ready, Some(false));
        assert_eq!(s.endpoints[0].hostname.as_deref(), Some("a"));
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(s.endpoints[0].target_ref.as_ref().unwrap().uid.as_deref(), Some("u-a"));

        let eps = desired_endpoints(&svc(), &slices);
        let sub = &eps.subsets.unwrap()[0];
        assert_eq!(sub.addresses.as_ref().unwrap().len(), 1);
        assert_eq!(sub.not_ready_addresses.as_ref().unwrap().len(), 1, "terminating pod left out");
    }

    #[test]
    fn unresolvable_named_port_splits_slices_and_empty_service_has_placeholder() {
        let pods = vec![pod("a", "10.42.0.2", true, false, true), pod("b", "10.42.0.3", true, false, false)];
        let slices = desired_slices(&svc(), &pods);
        assert_eq!(slices.len(), 2);
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
        let empty = desired_slices(&svc(), &[]);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].endpoints.is_empty());
        assert!(empty[0].ports.is_none());
    }

    #[test]
    fn large_services_are_split_into_slices_of_100() {
        let pods: Vec<Pod> = (0..250)
            .map(|i| pod(&format!("p{i:03}"), &format!("10.42.{}.{}", i / 200, i % 200 + 2), true, false, true))
            .collect();
        let slices = desired_slices(&svc(), &pods);
        assert_eq!(slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), vec![100, 100, 50]);
        let names: std::collections::BTreeSet<_> = slices.iter().map(|s| s.name_any()).collect();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn unready_pods_without_ip_are_skipped() {
        let mut p = pod("a", "", false, false, true);
        p.status.as_mut().unwrap().pod_ip = None;
        assert!(selected_pods(&svc(), &[p]).is_empty());
    }
}
