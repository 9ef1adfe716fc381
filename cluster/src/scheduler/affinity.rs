//! The rules that place a pod relative to node labels and to other pods, as kube-scheduler's NodeAffinity,
//! InterPodAffinity and PodTopologySpread plugins do: required node affinity (what the translator emits
//! for compose `deploy.placement.constraints`), required pod affinity and anti-affinity (anti-affinity on
//! `kubernetes.io/hostname` is compose's `max_replicas_per_node: 1`), topology spread constraints, and
//! the scores for preferred node affinity and for spreading a workload's replicas over nodes.
//!
//! What depends on other pods is computed once per scheduling attempt ([`Context::new`], one pass over
//! the nodes' cached pod metadata), so each node check stays a few lookups. A pod with none of these rules
//! gets an empty context and costs nothing extra. Not done: the symmetry of existing pods' anti-affinity
//! against the incoming pod, and `namespaceSelector` (terms use `namespaces`, else the pod's own).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::filter::{NodeInfo, NodeUsage};

/// Who a placed pod is, for the rules about other pods (kept per pod in the scheduler's cache).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The uid of its controller (ReplicaSet, StatefulSet, ...): replicas of one workload spread.
    pub owner: Option<String>,
}

impl PodMeta {
    pub fn of(pod: &Pod) -> Arc<PodMeta> {
        let owner =
            pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone());
        Arc::new(PodMeta {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            owner,
        })
    }
}

/// kube's `LabelSelector` semantics: all of `matchLabels` and every expression.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let plain = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    plain
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => value.and_then(|v| number(v)).zip(values.first().and_then(|v| number(v))).is_some_and(|(a, b)| a > b),
        "Lt" => value.and_then(|v| number(v)).zip(values.first().and_then(|v| number(v))).is_some_and(|(a, b)| a < b),
        _ => false,
    }
}

/// A node selector term: every expression on labels and every field (`metadata.name`) matches. An empty
/// term matches nothing, as in kube.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, node.labels.get(&r.key)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&node.name)))
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity (terms are ORed).
pub fn node_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let spec = pod.spec.as_ref();
    let selector = spec.and_then(|s| s.node_selector.as_ref());
    if !selector.iter().copied().flatten().all(|(k, v)| node.labels.get(k) == Some(v)) {
        return false;
    }
    let required = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// Sum of the weights of the preferred node affinity terms the node matches.
fn preferred_node_weight(pod: &Pod, node: &NodeInfo) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A pod (anti-)affinity term, with the topology domains (values of its key) that hold a matching pod.
struct PodTerm {
    key: String,
    domains: HashSet<String>,
}

/// A topology spread constraint with the matching pods counted per domain of eligible nodes.
struct Spread {
    key: String,
    max_skew: i64,
    hard: bool,
    counts: HashMap<String, i64>,
    min: i64,
}

/// What the rules need to know about the other pods, for one pod being scheduled.
#[derive(Default)]
pub struct Context {
    anti: Vec<PodTerm>,
    affinity: Vec<PodTerm>,
    spread: Vec<Spread>,
    /// The pod's controller uid: its replicas already placed, per node, spread it.
    owner: Option<String>,
    preferred_nodes: bool,
}

fn term_selects(term: &PodAffinityTerm, pod_namespace: &str, other: &PodMeta) -> bool {
    let in_namespace = match term.namespaces.as_deref() {
        Some(list) if !list.is_empty() => list.contains(&other.namespace),
        _ => other.namespace == pod_namespace,
    };
    // A term without a selector selects no pod (kube).
    in_namespace && term.label_selector.as_ref().is_some_and(|s| selector_matches(s, &other.labels))
}

impl Context {
    /// One pass over every node's pods. Cheap when the pod has no rule about other pods.
    pub fn new(pod: &Pod, me: &PodMeta, nodes: &[NodeInfo], usage: &HashMap<String, NodeUsage>) -> Context {
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let anti_terms: Vec<&PodAffinityTerm> = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .collect();
        let affinity_terms: Vec<&PodAffinityTerm> = affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .collect();
        let constraints = spec.and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or_default();
        let preferred_nodes = affinity
            .and_then(|a| a.node_affinity.as_ref())
            .is_some_and(|n| n.preferred_during_scheduling_ignored_during_execution.is_some());
        let mut ctx = Context { owner: me.owner.clone(), preferred_nodes, ..Default::default() };
        if anti_terms.is_empty() && affinity_terms.is_empty() && constraints.is_empty() && ctx.owner.is_none() {
            return ctx;
        }
        let ns = me.namespace.as_str();
        let domains_of = |term: &PodAffinityTerm| PodTerm {
            key: term.topology_key.clone(),
            domains: nodes
                .iter()
                .filter(|n| {
                    usage.get(&n.name).is_some_and(|u| u.pods.iter().any(|other| term_selects(term, ns, other)))
                })
                .filter_map(|n| n.labels.get(&term.topology_key).cloned())
                .collect(),
        };
        ctx.anti = anti_terms.into_iter().map(domains_of).collect();
        ctx.affinity = affinity_terms.into_iter().map(domains_of).collect();
        for c in constraints {
            let mut counts: HashMap<String, i64> = HashMap::new();
            for node in nodes.iter().filter(|n| node_matches(pod, n)) {
                let Some(domain) = node.labels.get(&c.topology_key) else { continue };
                let matching = usage.get(&node.name).map_or(0, |u| {
                    u.pods
                        .iter()
                        .filter(|o| {
                            o.namespace == ns
                                && c.label_selector.as_ref().is_some_and(|s| selector_matches(s, &o.labels))
                        })
                        .count() as i64
                });
                *counts.entry(domain.clone()).or_default() += matching;
            }
            let min = counts.values().copied().min().unwrap_or(0);
            ctx.spread.push(Spread {
                key: c.topology_key.clone(),
                max_skew: i64::from(c.max_skew.max(1)),
                hard: c.when_unsatisfiable == "DoNotSchedule",
                counts,
                min,
            });
        }
        ctx
    }

    /// The reason the node fails a rule about other pods, in kube-scheduler's words.
    pub fn filter(&self, node: &NodeInfo) -> Option<String> {
        for term in &self.anti {
            if node.labels.get(&term.key).is_some_and(|d| term.domains.contains(d)) {
                return Some("node(s) didn't match pod anti-affinity rules".into());
            }
        }
        for term in &self.affinity {
            if !node.labels.get(&term.key).is_some_and(|d| term.domains.contains(d)) {
                return Some("node(s) didn't match pod affinity rules".into());
            }
        }
        for s in self.spread.iter().filter(|s| s.hard) {
            let Some(domain) = node.labels.get(&s.key) else {
                return Some("node(s) didn't match pod topology spread constraints (missing required label)".into());
            };
            let count = s.counts.get(domain).copied().unwrap_or(0);
            if count + 1 - s.min > s.max_skew {
                return Some("node(s) didn't match pod topology spread constraints".into());
            }
        }
        None
    }

    /// Added to the least-allocated score: spreading (fewer pods of the same workload, fewer matching pods
    /// in the node's domain for soft constraints) and preferred node affinity, each weighted 2 as in
    /// kube-scheduler's default profile.
    pub fn score(&self, pod: &Pod, node: &NodeInfo, used: &NodeUsage) -> i64 {
        let mut score = 0;
        if let Some(owner) = &self.owner {
            let siblings = used.pods.iter().filter(|p| p.owner.as_ref() == Some(owner)).count() as i64;
            score += 2 * 100 / (1 + siblings);
        }
        for s in self.spread.iter().filter(|s| !s.hard) {
            let count = node.labels.get(&s.key).and_then(|d| s.counts.get(d)).copied().unwrap_or(0);
            score += 2 * 100 / (1 + count - s.min).max(1);
        }
        if self.preferred_nodes {
            score += 2 * preferred_node_weight(pod, node).clamp(0, 100);
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    use super::super::filter::schedule_pods;

    fn node(name: &str, zone: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": zone}},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap()
    }

    fn replica(i: usize, spec_extra: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
        spec.as_object_mut().unwrap().extend(spec_extra.as_object().cloned().unwrap_or_default());
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "namespace": "app", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                              "uid": "rs-1", "controller": true}]},
            "spec": spec
        }))
        .unwrap()
    }

    /// Schedules `count` replicas one after the other, each seeing the earlier ones.
    fn place(nodes: &[Node], count: usize, extra: serde_json::Value) -> Vec<Result<String, String>> {
        let refs: Vec<&Node> = nodes.iter().collect();
        let pods: Vec<Pod> = (0..count).map(|i| replica(i, extra.clone())).collect();
        let mut on: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        let mut out = vec![];
        for p in &pods {
            let r = schedule_pods(p, &refs, &on);
            if let Ok(n) = &r {
                on.entry(n.clone()).or_default().push(p);
            }
            out.push(r);
        }
        out
    }

    #[test]
    fn replicas_of_one_workload_spread_over_equal_nodes() {
        let nodes = [node("a", "z1"), node("b", "z1"), node("c", "z2")];
        let mut placed: Vec<String> = place(&nodes, 3, json!({})).into_iter().map(Result::unwrap).collect();
        placed.sort();
        assert_eq!(placed, ["a", "b", "c"]);
    }

    #[test]
    fn anti_affinity_on_hostname_allows_one_per_node() {
        let nodes = [node("a", "z1"), node("b", "z1"), node("c", "z2")];
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        let placed = place(&nodes, 4, anti);
        assert!(placed[..3].iter().all(Result::is_ok), "{placed:?}");
        assert_eq!(
            placed[3].as_ref().unwrap_err(),
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        );
    }

    #[test]
    fn required_node_affinity_and_its_operators() {
        let nodes = [node("a", "z1"), node("b", "z2")];
        let affinity = |exprs: serde_json::Value| {
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
        };
        let placed = place(&nodes, 2, affinity(json!([{"key": "zone", "operator": "In", "values": ["z2"]}])));
        assert!(placed.iter().all(|r| r.as_deref() == Ok("b")), "{placed:?}");
        let placed = place(&nodes, 1, affinity(json!([{"key": "zone", "operator": "NotIn", "values": ["z2"]}])));
        assert_eq!(placed[0].as_deref(), Ok("a"));
        let placed = place(&nodes, 1, affinity(json!([{"key": "gpu", "operator": "Exists"}])));
        assert_eq!(
            placed[0].as_ref().unwrap_err(),
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn topology_spread_keeps_the_skew() {
        let nodes = [node("a", "z1"), node("b", "z1"), node("c", "z2")];
        let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
        let placed: Vec<String> = place(&nodes, 4, spread).into_iter().map(Result::unwrap).collect();
        let z2 = placed.iter().filter(|n| *n == "c").count();
        assert_eq!(z2, 2, "zone z2 (one node) must get half of 4 replicas: {placed:?}");
    }
}
