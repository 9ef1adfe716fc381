//! `networks`, `network_mode`, aliases and links; one NetworkPolicy per compose network.
//!
//! Every pod carries a label per compose network it joins (`network.compose.flotilla.dev/<net>:
//! "true"`); the network's NetworkPolicy selects those pods and lets in traffic from pods with the same
//! label — members reach members, as on a compose network. NetworkPolicies add up, so a pod on two
//! networks is reachable from both. A service that publishes ports gets one more policy,
//! `<name>-published`, letting anyone reach those container ports, so published ports stay reachable
//! from outside. Pods on the host network are on no compose network and are selected by none.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{self, NETWORK_PREFIX};
use super::unit::Unit;
use super::{Ctx, Object, names};
use crate::model::Service;

pub fn network_label(key: &str) -> String {
    format!("{NETWORK_PREFIX}{}", names::k8s_name(key))
}

pub fn apply(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    match svc.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => {}
        Some("host") => {
            u.pod.host_network = Some(true);
            // Keeps service names resolving from a pod on the host network.
            u.pod.dns_policy = Some("ClusterFirstWithHostNet".into());
        }
        Some("none") => ctx.warn(
            &["services", &compose, "network_mode"],
            "kubernetes always gives a pod a network; the service gets one",
            "add a NetworkPolicy denying all traffic to its pods if it must be cut off",
        ),
        Some(mode) => match mode.strip_prefix("service:") {
            Some(owner) if ctx.project.services.contains_key(owner) => u.pod_owner = Some(owner.to_string()),
            Some(owner) => {
                ctx.error(&["services", &compose, "network_mode"], format!("service {owner:?} does not exist"), "")
            }
            None => ctx.warn(
                &["services", &compose, "network_mode"],
                format!("{mode:?}: kubernetes pods cannot join another container's network"),
                "use network_mode: service:<name> to share a pod with a service of this project",
            ),
        },
    }
    let host = u.pod.host_network == Some(true);
    for (net, attach) in svc.networks.iter().flatten() {
        if !host && u.pod_owner.is_none() {
            u.pod_labels.insert(network_label(net), "true".into());
        }
        let Some(attach) = attach else { continue };
        for alias in attach.aliases.iter().flatten() {
            if !u.aliases.contains(alias) && alias != &compose {
                u.aliases.push(alias.clone());
            }
        }
        let set: [(&str, bool); 8] = [
            ("ipv4_address", attach.ipv4_address.is_some()),
            ("ipv6_address", attach.ipv6_address.is_some()),
            ("link_local_ips", attach.link_local_ips.is_some()),
            ("mac_address", attach.mac_address.is_some()),
            ("driver_opts", attach.driver_opts.is_some()),
            ("priority", attach.priority.is_some()),
            ("gw_priority", attach.gw_priority.is_some()),
            ("interface_name", attach.interface_name.is_some()),
        ];
        for (key, present) in set {
            if present {
                ctx.warn(
                    &["services", &compose, "networks", net, key],
                    "pod addresses and interfaces are chosen by the cluster; ignored",
                    "reach the service by its name instead of a fixed address",
                );
            }
        }
    }
    for link in svc.links.iter().flatten() {
        // `db:database` makes `database` another name of `db`: an alias of the linked service.
        if let Some((target, alias)) = link.split_once(':') {
            ctx.link_aliases.push((target.to_string(), alias.to_string()));
        }
    }
    if let Some(name) = &svc.container_name
        && name != &compose
    {
        u.aliases.push(name.clone());
    }
}

/// Makes the NetworkPolicies, and adds the link aliases to the linked services.
pub fn policies(ctx: &mut Ctx, units: &mut [Unit]) {
    for (target, alias) in std::mem::take(&mut ctx.link_aliases) {
        if let Some(u) = units.iter_mut().find(|u| u.compose == target || u.members.contains(&target))
            && !u.aliases.contains(&alias)
            && alias != target
        {
            u.aliases.push(alias);
        }
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in units.iter() {
        for label in u.pod_labels.keys().filter(|l| l.starts_with(NETWORK_PREFIX)) {
            members.entry(label.clone()).or_default().push(u.compose.clone());
        }
    }
    let project = ctx.project;
    for (key, net) in project.networks.iter().flatten() {
        let label = network_label(key);
        let Some(services) = members.get(&label) else { continue };
        let path = ["networks", key.as_str()];
        if net.external.as_ref().is_some_and(|e| e.is_external()) {
            ctx.warn(&path, "an external network joins containers outside the project; here it is a network of this project's services only", "");
        }
        if net.internal == Some(true) {
            ctx.warn(
                &[&path[..], &["internal"]].concat(),
                "outbound traffic is not restricted",
                "add an egress NetworkPolicy if the network must not reach the outside",
            );
        }
        let unsupported: [(&str, bool); 6] = [
            ("driver", net.driver.as_deref().is_some_and(|d| d != "bridge" && d != "overlay")),
            ("driver_opts", net.driver_opts.is_some()),
            (
                "ipam",
                net.ipam.as_ref().is_some_and(|i| i.driver.is_some() || i.config.is_some() || i.options.is_some()),
            ),
            ("attachable", net.attachable == Some(true)),
            ("enable_ipv6", net.enable_ipv6 == Some(true)),
            ("labels", net.labels.is_some()),
        ];
        for (k, present) in unsupported {
            if present {
                ctx.warn(&[&path[..], &[k]].concat(), "the cluster's pod network decides this; ignored", "");
            }
        }
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([(label.clone(), "true".into())])),
            ..Default::default()
        };
        let name = names::join("network", &names::k8s_name(key));
        let mut meta = ctx.meta(&name);
        meta.annotations = Some(BTreeMap::from([(format!("{}network", labels::PREFIX), key.clone())]));
        let policy = NetworkPolicy {
            metadata: meta,
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector.clone()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer { pod_selector: Some(selector), ..Default::default() }]),
                    ports: None,
                }]),
                ..Default::default()
            }),
        };
        ctx.objects.push(Object::NetworkPolicy(policy));
        for u in units.iter_mut().filter(|u| services.contains(&u.compose)) {
            let others: Vec<&str> = services.iter().filter(|s| *s != &u.compose).map(String::as_str).collect();
            let why = if others.is_empty() {
                format!("compose network {key:?}: only its members may connect to this pod")
            } else {
                format!("compose network {key:?}: lets {} connect to this pod, and this pod to them", others.join(", "))
            };
            u.note("NetworkPolicy", &name, why);
        }
    }
    for u in units.iter_mut() {
        if u.published.is_empty() || !u.pod_labels.keys().any(|l| l.starts_with(NETWORK_PREFIX)) {
            continue;
        }
        let name = names::join(&u.name, "published");
        let ports: Vec<NetworkPolicyPort> = u
            .published
            .iter()
            .map(|p| NetworkPolicyPort {
                port: Some(IntOrString::Int(p.target)),
                protocol: Some(p.protocol.clone()),
                end_port: None,
            })
            .collect();
        let policy = NetworkPolicy {
            metadata: ctx.meta(&name),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(labels::selector(&u.name)),
                    ..Default::default()
                }),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule { from: None, ports: Some(ports) }]),
                ..Default::default()
            }),
        };
        ctx.objects.push(Object::NetworkPolicy(policy));
        u.note(
            "NetworkPolicy",
            &name,
            "lets anyone reach the published ports, which the network policies would otherwise close to non-members",
        );
    }
}
