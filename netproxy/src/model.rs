//! The proxy's own view of the cluster: one [`ServicePort`] per (Service, port), with the ClusterIPs, the
//! published ports and the ready endpoints, built from Services and EndpointSlices.
//!
//! Rendering ([`crate::render`]) and the userspace listeners ([`crate::userspace`]) take only this model, so
//! they know nothing of the Kubernetes wire types and are tested from plain data.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Where the translator records a compose `HOST_IP:PUBLISHED:TARGET` host address:
/// `8080/tcp=127.0.0.1,53/udp=192.168.1.5`.
pub const HOST_IPS_ANNOTATION: &str = "compose.flotilla.dev/host-ips";

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes spelling (`TCP`, `UDP`, `SCTP`); anything else (or nothing) is TCP, the API default.
    pub fn from_k8s(p: Option<&str>) -> Protocol {
        match p.map(str::to_ascii_uppercase).as_deref() {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    /// nftables spelling (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One port of one Service, with everything needed to forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name, or its number when unnamed (names are unique within a Service).
    pub port_name: String,
    pub protocol: Protocol,
    /// `spec.ports[].port`: the port on the ClusterIPs.
    pub port: u16,
    /// IPv4 ClusterIPs (empty for headless services, which are DNS-only).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `nodePort`, answered on the node's addresses.
    pub node_port: Option<u16>,
    /// For LoadBalancer services, `port` is also answered on the node's addresses: that is how a compose
    /// published port (`-published` Service) is reached, like Docker publishing on the host.
    pub load_balancer_port: Option<u16>,
    /// The compose host address of the published port, if one was given (`127.0.0.1:8080:80`): the port
    /// is then answered on that address only, not on every node address.
    pub host_ip: Option<IpAddr>,
    /// Ready, not terminating endpoints (address and target port), sorted, without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
}

impl ServicePort {
    /// `ns/svc/tcp/port`: the identity kube-proxy names its chains after.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/{}", self.namespace, self.service, self.protocol, self.port_name)
    }

    /// Ports answered on every node address: the nodePort, and the LoadBalancer `port` unless the
    /// compose file pinned it to one host address.
    pub fn external_ports(&self) -> Vec<u16> {
        let lb = self.load_balancer_port.filter(|_| self.host_ip.is_none());
        let mut out: Vec<u16> = lb.into_iter().chain(self.node_port).collect();
        out.dedup();
        out
    }

    /// The published port pinned to one non-loopback IPv4 host address (`192.168.1.5:8080:80`).
    pub fn pinned_port(&self) -> Option<(Ipv4Addr, u16)> {
        match (self.host_ip, self.load_balancer_port) {
            (Some(IpAddr::V4(ip)), Some(port)) if !ip.is_loopback() => Some((ip, port)),
            _ => None,
        }
    }

    /// The port a userspace listener serves on 127.0.0.1: the compose published port (LoadBalancer
    /// `port`, or the nodePort of a NodePort service), unless it was pinned to another host address.
    pub fn loopback_port(&self) -> Option<u16> {
        match self.host_ip {
            Some(ip) if !ip.is_loopback() => None,
            _ => self.load_balancer_port.or(self.node_port),
        }
    }
}

/// Everything the proxy forwards: service ports keyed by [`ServicePort::id`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub ports: BTreeMap<String, ServicePort>,
}

/// Parses the host-ips annotation into (port, protocol) → address; malformed entries are skipped.
fn host_ips(annotation: Option<&String>) -> BTreeMap<(u16, Protocol), IpAddr> {
    let mut out = BTreeMap::new();
    for entry in annotation.map(|a| a.split(',')).into_iter().flatten() {
        let Some((port_proto, ip)) = entry.trim().split_once('=') else { continue };
        let (port, proto) = port_proto.split_once('/').unwrap_or((port_proto, "tcp"));
        let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
        if let (Ok(port), Ok(ip)) = (port.parse::<u16>(), ip.parse::<IpAddr>()) {
            out.insert((port, Protocol::from_k8s(Some(proto))), ip);
        }
    }
    out
}

/// Whether an endpoint may receive new connections: ready (unset counts as ready, as in kube-proxy) and
/// not terminating.
fn endpoint_ready(ep: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    let Some(c) = &ep.conditions else { return true };
    c.ready.unwrap_or(true) && !c.terminating.unwrap_or(false)
}

impl Model {
    /// Builds the model from every Service and EndpointSlice the node knows of. Slices are matched to
    /// their Service by the `kubernetes.io/service-name` label and the namespace, and slice ports to
    /// service ports by name and protocol (a Service with a single unnamed port has a slice port with no
    /// name). Services of type ExternalName and non-IPv4 addresses are skipped.
    pub fn from_k8s<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Model {
        // (namespace, service) → slices
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                continue;
            }
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
                continue;
            };
            by_service.entry((ns, svc.clone())).or_default().push(slice);
        }
        let mut ports = BTreeMap::new();
        for svc in services {
            let Some(spec) = &svc.spec else { continue };
            let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
            if type_ == "ExternalName" {
                continue;
            }
            let namespace = svc.metadata.namespace.clone().unwrap_or_default();
            let name = svc.metadata.name.clone().unwrap_or_default();
            let mut cluster_ips: Vec<Ipv4Addr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .collect();
            cluster_ips.sort();
            cluster_ips.dedup();
            let slices = by_service.get(&(namespace.clone(), name.clone()));
            let host_ips = host_ips(svc.metadata.annotations.as_ref().and_then(|a| a.get(HOST_IPS_ANNOTATION)));
            for p in spec.ports.iter().flatten() {
                let Ok(port) = u16::try_from(p.port) else { continue };
                let protocol = Protocol::from_k8s(p.protocol.as_deref());
                let port_name = p.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| port.to_string());
                let mut endpoints = Vec::new();
                for slice in slices.into_iter().flatten() {
                    let slice_port = slice.ports.iter().flatten().find(|sp| {
                        sp.name.as_deref().unwrap_or("") == p.name.as_deref().unwrap_or("")
                            && Protocol::from_k8s(sp.protocol.as_deref()) == protocol
                    });
                    let Some(target) = slice_port.and_then(|sp| sp.port).and_then(|n| u16::try_from(n).ok()) else {
                        continue;
                    };
                    for ep in slice.endpoints.iter().filter(|e| endpoint_ready(e)) {
                        for addr in &ep.addresses {
                            if let Ok(ip) = addr.parse::<Ipv4Addr>() {
                                endpoints.push(SocketAddrV4::new(ip, target));
                            }
                        }
                    }
                }
                endpoints.sort();
                endpoints.dedup();
                let node_port = match type_ {
                    "NodePort" | "LoadBalancer" => p.node_port.and_then(|n| u16::try_from(n).ok()),
                    _ => None,
                };
                let sp = ServicePort {
                    namespace: namespace.clone(),
                    service: name.clone(),
                    port_name,
                    protocol,
                    port,
                    cluster_ips: cluster_ips.clone(),
                    node_port,
                    load_balancer_port: (type_ == "LoadBalancer").then_some(port),
                    host_ip: host_ips.get(&(port, protocol)).copied().filter(|ip| !ip.is_unspecified()),
                    endpoints,
                };
                ports.insert(sp.id(), sp);
            }
        }
        Model { ports }
    }

    /// Stops publishing `port` for the given service (its loopback listener could not be had): the
    /// LoadBalancer port or nodePort equal to it is dropped, the ClusterIP stays.
    pub fn withdraw_published(&mut self, namespace: &str, service: &str, protocol: Protocol, port: u16) {
        for p in self.ports.values_mut() {
            if p.namespace == namespace && p.service == service && p.protocol == protocol {
                if p.load_balancer_port == Some(port) {
                    p.load_balancer_port = None;
                }
                if p.node_port == Some(port) {
                    p.node_port = None;
                }
            }
        }
    }

    /// The service ports of one Service (for incremental updates and events).
    pub fn service(&self, namespace: &str, name: &str) -> impl Iterator<Item = &ServicePort> {
        self.ports.values().filter(move |p| p.namespace == namespace && p.service == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort as K8sPort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(type_: &str, ip: &str, ports: Vec<K8sPort>) -> Service {
        Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("app".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ep(ip: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions { ready, terminating, serving: None }),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<Endpoint>, port_name: Option<&str>, port: i32) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("app".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: Some(vec![EndpointPort {
                name: port_name.map(Into::into),
                port: Some(port),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]),
        }
    }

    #[test]
    fn only_ready_endpoints_are_kept() {
        let s = svc("ClusterIP", "10.43.0.10", vec![K8sPort { port: 80, ..Default::default() }]);
        let sl = slice(
            vec![
                ep("10.42.0.5", Some(true), None),
                ep("10.42.0.6", None, None),
                ep("10.42.0.7", Some(false), None),
                ep("10.42.0.8", Some(true), Some(true)),
            ],
            None,
            8080,
        );
        let m = Model::from_k8s([&s], [&sl]);
        let p = &m.ports["app/web/tcp/80"];
        assert_eq!(p.cluster_ips, vec![Ipv4Addr::new(10, 43, 0, 10)]);
        assert_eq!(
            p.endpoints,
            vec!["10.42.0.5:8080".parse().unwrap(), "10.42.0.6:8080".parse::<SocketAddrV4>().unwrap()]
        );
        assert_eq!(p.external_ports(), Vec::<u16>::new());
    }

    #[test]
    fn named_ports_match_slice_ports_by_name() {
        let s = svc(
            "LoadBalancer",
            "10.43.0.11",
            vec![K8sPort { name: Some("http".into()), port: 8080, node_port: Some(30080), ..Default::default() }],
        );
        let good = slice(vec![ep("10.42.0.5", Some(true), None)], Some("http"), 80);
        let mut other = slice(vec![ep("10.42.0.9", Some(true), None)], Some("metrics"), 9090);
        other.metadata.name = Some("web-def".into());
        let m = Model::from_k8s([&s], [&good, &other]);
        let p = &m.ports["app/web/tcp/http"];
        assert_eq!(p.endpoints, vec!["10.42.0.5:80".parse().unwrap()]);
        assert_eq!(p.external_ports(), vec![8080, 30080]);
        assert_eq!(p.loopback_port(), Some(8080));
    }

    #[test]
    fn host_ips_annotation_pins_published_ports() {
        let mut s = svc(
            "LoadBalancer",
            "10.43.0.12",
            vec![
                K8sPort { port: 8080, ..Default::default() },
                K8sPort { port: 53, protocol: Some("UDP".into()), ..Default::default() },
                K8sPort { port: 9090, ..Default::default() },
            ],
        );
        s.metadata.annotations = Some(
            [(HOST_IPS_ANNOTATION.to_string(), "8080/tcp=127.0.0.1,53/udp=192.168.9.5,9090/tcp=0.0.0.0".to_string())]
                .into(),
        );
        let m = Model::from_k8s([&s], []);
        assert_eq!(m.ports["app/web/tcp/8080"].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.ports["app/web/udp/53"].host_ip, Some("192.168.9.5".parse().unwrap()));
        assert_eq!(m.ports["app/web/tcp/9090"].host_ip, None);
        // Pinned to loopback: no node address, a loopback listener.
        assert_eq!(m.ports["app/web/tcp/8080"].external_ports(), Vec::<u16>::new());
        assert_eq!(m.ports["app/web/tcp/8080"].loopback_port(), Some(8080));
        // Pinned to another address: that address only, no loopback listener.
        assert_eq!(m.ports["app/web/udp/53"].pinned_port(), Some(("192.168.9.5".parse().unwrap(), 53)));
        assert_eq!(m.ports["app/web/udp/53"].loopback_port(), None);
    }

    #[test]
    fn headless_and_external_name_have_no_ips() {
        let s = svc("ClusterIP", "None", vec![K8sPort { port: 80, ..Default::default() }]);
        let m = Model::from_k8s([&s], []);
        assert!(m.ports["app/web/tcp/80"].cluster_ips.is_empty());
        let e = svc("ExternalName", "", vec![K8sPort { port: 80, ..Default::default() }]);
        assert!(Model::from_k8s([&e], []).ports.is_empty());
    }
}
