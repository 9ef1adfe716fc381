//! The cluster's names, built from Services and EndpointSlices: a pure, in-memory index the DNS handler
//! answers from (no I/O here, so it is unit-tested from plain objects).
//!
//! Names follow the Kubernetes DNS specification: `<svc>.<ns>.svc.<zone>` (A: the ClusterIP, or one A
//! per ready endpoint for a headless service), `<hostname>.<svc>.<ns>.svc.<zone>` for endpoints with a
//! hostname, and SRV `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for named ports. Compose names that are
//! not valid Kubernetes names (`my_db`, `Web`) and network aliases recorded by the translator in the
//! `compose.flotilla.dev/service-name` and `compose.flotilla.dev/aliases` annotations are answered too,
//! under the same namespace, so `ping my_db` works from another service of the project.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The cluster domain.
pub const ZONE: &str = "cluster.local";
/// The compose service's own name (the translator's `labels::SERVICE_NAME`).
const SERVICE_NAME_ANNOTATION: &str = "compose.flotilla.dev/service-name";
/// Comma-separated network aliases, links and container_name (the translator's `labels::ALIASES`).
const ALIASES_ANNOTATION: &str = "compose.flotilla.dev/aliases";
/// Marks the extra Services the translator makes for aliases.
const ALIAS_OF_ANNOTATION: &str = "compose.flotilla.dev/alias-of";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Records of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub a: Vec<Ipv4Addr>,
    /// (port, target name without the trailing dot)
    pub srv: Vec<(u16, String)>,
}

/// What a lookup under the cluster zone found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists (its records may not include the type asked for: then the answer is empty).
    Found(Records),
    /// No such name.
    NxDomain,
}

/// Every name of the cluster zone, lower case, without the trailing dot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    names: HashMap<String, Records>,
}

struct ServiceData<'a> {
    service: &'a Service,
    namespace: String,
    name: String,
    headless: bool,
    /// Ready endpoints: (address, hostname)
    endpoints: Vec<(Ipv4Addr, Option<String>)>,
    /// (port name, protocol, port on the service, target port on the endpoints)
    ports: Vec<(String, String, u16, Option<u16>)>,
}

impl Index {
    /// Builds the index from every Service and EndpointSlice.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Index {
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                continue;
            }
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            if let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                by_service.entry((ns, svc.clone())).or_default().push(slice);
            }
        }
        let mut data = Vec::new();
        for service in services {
            let Some(spec) = &service.spec else { continue };
            if spec.type_.as_deref() == Some("ExternalName") {
                continue;
            }
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let name = service.metadata.name.clone().unwrap_or_default();
            let headless = spec.cluster_ip.as_deref().is_none_or(|ip| ip == "None" || ip.is_empty());
            let mut endpoints = Vec::new();
            let mut target_ports: HashMap<String, u16> = HashMap::new();
            for slice in by_service.get(&(namespace.clone(), name.clone())).into_iter().flatten() {
                for p in slice.ports.iter().flatten() {
                    if let Some(port) = p.port.and_then(|n| u16::try_from(n).ok()) {
                        target_ports.insert(p.name.clone().unwrap_or_default(), port);
                    }
                }
                for ep in &slice.endpoints {
                    let ready = ep
                        .conditions
                        .as_ref()
                        .is_none_or(|c| c.ready.unwrap_or(true) && !c.terminating.unwrap_or(false));
                    if !ready {
                        continue;
                    }
                    for addr in &ep.addresses {
                        if let Ok(ip) = addr.parse::<Ipv4Addr>() {
                            endpoints.push((ip, ep.hostname.clone().map(|h| h.to_ascii_lowercase())));
                        }
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let port = u16::try_from(p.port).ok()?;
                    let pname = p.name.clone().unwrap_or_default();
                    let target = target_ports.get(&pname).copied();
                    Some((pname, p.protocol.clone().unwrap_or_else(|| "TCP".into()).to_ascii_lowercase(), port, target))
                })
                .collect();
            data.push(ServiceData { service, namespace, name, headless, endpoints, ports });
        }

        let mut index = Index::default();
        // Real Service names first, so an extra (compose) name never hides one.
        for d in &data {
            index.add_service(d, &d.name.to_ascii_lowercase());
        }
        for d in &data {
            for extra in extra_names(d) {
                let fqdn = format!("{extra}.{}.svc.{ZONE}", d.namespace);
                if !index.names.contains_key(&fqdn) {
                    index.add_service(d, &extra);
                }
            }
        }
        index
    }

    fn add_service(&mut self, d: &ServiceData<'_>, label: &str) {
        let base = format!("{label}.{}.svc.{ZONE}", d.namespace);
        let spec = d.service.spec.as_ref().expect("checked");
        if d.headless {
            // One A per ready endpoint; no name at all while none is ready (NXDOMAIN, per the spec).
            if d.endpoints.is_empty() {
                return;
            }
            self.names.entry(base.clone()).or_default().a = d.endpoints.iter().map(|(ip, _)| *ip).collect();
            for (ip, hostname) in &d.endpoints {
                // Endpoints without a hostname get their dashed address, the target of their SRV records.
                let host = hostname.clone().unwrap_or_else(|| ip.to_string().replace('.', "-"));
                self.names.entry(format!("{host}.{base}")).or_default().a.push(*ip);
            }
        } else {
            let mut ips: Vec<Ipv4Addr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .collect();
            ips.sort();
            ips.dedup();
            self.names.entry(base.clone()).or_default().a = ips;
        }
        for (pname, proto, port, target) in &d.ports {
            if pname.is_empty() {
                continue;
            }
            let srv_name = format!("_{}._{proto}.{base}", pname.to_ascii_lowercase());
            let entry = self.names.entry(srv_name).or_default();
            if d.headless {
                let Some(target) = target else { continue };
                for (ip, hostname) in &d.endpoints {
                    let host = hostname.clone().unwrap_or_else(|| ip.to_string().replace('.', "-"));
                    entry.srv.push((*target, format!("{host}.{base}")));
                }
            } else {
                entry.srv.push((*port, base.clone()));
            }
        }
    }

    /// Looks a name up (any case, with or without the trailing dot).
    pub fn lookup(&self, name: &str) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(r) = self.names.get(&name) {
            return Answer::Found(r.clone());
        }
        // An empty non-terminal (`ns.svc.cluster.local`, `svc.cluster.local`, the zone itself) exists,
        // with no records: NOERROR and an empty answer, not NXDOMAIN.
        let suffix = format!(".{name}");
        if name == ZONE || self.names.keys().any(|k| k.ends_with(&suffix)) {
            return Answer::Found(Records::default());
        }
        Answer::NxDomain
    }

    /// Number of names (for logs and tests).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A DNS label made of a compose name: lower case; names that cannot be a label are skipped.
fn dns_name(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    ok.then_some(t)
}

/// The compose names of a Service: its compose service name and its aliases, when they differ from the
/// Kubernetes name. Published (LoadBalancer/NodePort) and alias Services add none: the main ClusterIP
/// Service owns the compose names.
fn extra_names(d: &ServiceData<'_>) -> Vec<String> {
    let ann = d.service.metadata.annotations.clone().unwrap_or_default();
    let type_ = d.service.spec.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if ann.contains_key(ALIAS_OF_ANNOTATION) || type_ != "ClusterIP" {
        return Vec::new();
    }
    let mut out: Vec<String> = ann
        .get(SERVICE_NAME_ANNOTATION)
        .into_iter()
        .map(String::as_str)
        .chain(ann.get(ALIASES_ANNOTATION).map(|a| a.split(',').collect::<Vec<_>>()).unwrap_or_default())
        .filter_map(dns_name)
        .filter(|n| *n != d.name)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(name: &str, ip: &str, ports: &[(&str, i32)], ann: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                annotations: Some(ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                type_: Some("ClusterIP".into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *p,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(svc: &str, eps: &[(&str, Option<&str>, bool)], port: (&str, i32)) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{svc}-x")),
                namespace: Some("shop".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(Into::into),
                    conditions: Some(EndpointConditions { ready: Some(*ready), ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: (!port.0.is_empty()).then(|| port.0.to_string()),
                port: Some(port.1),
                ..Default::default()
            }]),
        }
    }

    fn a(index: &Index, name: &str) -> Vec<String> {
        match index.lookup(name) {
            Answer::Found(r) => r.a.iter().map(|ip| ip.to_string()).collect(),
            Answer::NxDomain => vec!["NXDOMAIN".into()],
        }
    }

    #[test]
    fn cluster_ip_service_answers_its_cluster_ip() {
        let s = svc("web", "10.43.0.20", &[("http", 80)], &[]);
        let i = Index::build([&s], []);
        assert_eq!(a(&i, "web.shop.svc.cluster.local."), vec!["10.43.0.20"]);
        assert_eq!(a(&i, "WEB.shop.svc.cluster.local"), vec!["10.43.0.20"]);
        assert_eq!(a(&i, "nope.shop.svc.cluster.local"), vec!["NXDOMAIN"]);
        assert_eq!(a(&i, "web.other.svc.cluster.local"), vec!["NXDOMAIN"]);
        // Empty non-terminals exist.
        assert_eq!(a(&i, "shop.svc.cluster.local"), Vec::<String>::new());
        let Answer::Found(r) = i.lookup("_http._tcp.web.shop.svc.cluster.local") else { panic!() };
        assert_eq!(r.srv, vec![(80, "web.shop.svc.cluster.local".to_string())]);
    }

    #[test]
    fn headless_service_answers_ready_endpoints_and_hostnames() {
        let s = svc("db", "None", &[("pg", 5432)], &[]);
        let sl = slice(
            "db",
            &[("10.42.0.7", Some("db-0"), true), ("10.42.0.8", None, true), ("10.42.0.9", None, false)],
            ("pg", 5432),
        );
        let i = Index::build([&s], [&sl]);
        assert_eq!(a(&i, "db.shop.svc.cluster.local"), vec!["10.42.0.7", "10.42.0.8"]);
        assert_eq!(a(&i, "db-0.db.shop.svc.cluster.local"), vec!["10.42.0.7"]);
        assert_eq!(a(&i, "10-42-0-8.db.shop.svc.cluster.local"), vec!["10.42.0.8"]);
        let Answer::Found(r) = i.lookup("_pg._tcp.db.shop.svc.cluster.local") else { panic!() };
        assert_eq!(r.srv.len(), 2);
        // No ready endpoint: NXDOMAIN.
        let none = slice("db", &[("10.42.0.9", None, false)], ("pg", 5432));
        assert_eq!(a(&Index::build([&s], [&none]), "db.shop.svc.cluster.local"), vec!["NXDOMAIN"]);
    }

    #[test]
    fn compose_names_and_aliases_resolve() {
        let main = svc(
            "my-db",
            "10.43.0.30",
            &[("", 5432)],
            &[(SERVICE_NAME_ANNOTATION, "My_DB"), (ALIASES_ANNOTATION, "database,pg.local,web")],
        );
        let web = svc("web", "10.43.0.31", &[("", 80)], &[]);
        let i = Index::build([&main, &web], []);
        assert_eq!(a(&i, "my_db.shop.svc.cluster.local"), vec!["10.43.0.30"]);
        assert_eq!(a(&i, "database.shop.svc.cluster.local"), vec!["10.43.0.30"]);
        assert_eq!(a(&i, "pg.local.shop.svc.cluster.local"), vec!["10.43.0.30"]);
        // An alias never hides a real service's name.
        assert_eq!(a(&i, "web.shop.svc.cluster.local"), vec!["10.43.0.31"]);
    }
}
