//! Authorization: kube-apiserver's Node authorizer and NodeRestriction admission plugin, for node agents
//! (`system:node:<name>` in `system:nodes`). Every other authenticated user is an administrator (no RBAC
//! in this issue).
//!
//! A node may read everything, and may write only what a kubelet writes about itself: its own Node (and
//! its status), its own Lease in `kube-node-lease`, the status of pods bound to it and the deletion of
//! those pods (graceful deletion ends with the kubelet's delete), Events, and the status of
//! PersistentVolumeClaims (this agent binds claims itself, where Kubernetes has a volume controller). Any
//! other write is refused with a 403 Status worded as kube-apiserver words it, so kubectl prints the same
//! line it would print against a real cluster.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use serde_json::json;

use super::auth::UserInfo;
use super::errors::ApiError;
use super::{AppState, MAX_BODY_BYTES};

/// The namespace of node heartbeat Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What a request is about, parsed from its path as kube-apiserver's RequestInfo.
#[derive(Debug, Default, PartialEq, Eq)]
struct Target {
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Target {
    /// `pods`, `leases.coordination.k8s.io`: how kube-apiserver names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }
}

/// `/api/v1/...` or `/apis/<group>/<version>/...` → the resource it names; None for other paths
/// (discovery, OpenAPI, non-resource URLs).
fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, mut rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    // The legacy `/watch/` prefix: only reads use it.
    if rest.first() == Some(&"watch") {
        rest = &rest[1..];
    }
    let mut target = Target { group: group.to_string(), ..Target::default() };
    // `namespaces/<ns>/<resource>...`, but `namespaces/<name>` and `namespaces/<name>/status|finalize` are
    // the Namespace itself.
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && group.is_empty() && matches!(rest[2], "status" | "finalize"));
    if namespaced {
        target.namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    target.resource = rest.first()?.to_string();
    target.name = rest.get(1).map(|s| s.to_string());
    target.subresource = rest.get(2).map(|s| s.to_string());
    Some(target)
}

/// The verb of a write, as RBAC names it.
fn write_verb(method: &Method, target: &Target) -> Option<&'static str> {
    match *method {
        Method::POST => Some("create"),
        Method::PUT => Some("update"),
        Method::PATCH => Some("patch"),
        Method::DELETE if target.name.is_some() => Some("delete"),
        Method::DELETE => Some("deletecollection"),
        _ => None,
    }
}

/// Lets the request through (giving it back, with its body restored if it was read) or refuses it.
pub async fn authorize(state: &AppState, user: &UserInfo, req: Request) -> Result<Request, ApiError> {
    let Some(node) = user.node_name() else { return Ok(req) };
    let Some(target) = parse_path(req.uri().path()) else { return Ok(req) };
    // Streams that reach into containers are not reads, whatever the method: a kubelet never needs them.
    let streams = target.resource == "pods"
        && matches!(target.subresource.as_deref(), Some("exec" | "attach" | "portforward" | "proxy"));
    let verb = match write_verb(req.method(), &target) {
        Some(verb) => verb,
        None if streams => "create",
        None => return Ok(req),
    };
    if streams {
        return Err(rbac_forbidden(user, verb, &target));
    }
    let sub = target.subresource.as_deref();
    match (target.group.as_str(), target.resource.as_str()) {
        ("", "nodes") => {
            let (req, name) = object_name(req, &target, verb).await?;
            if matches!(sub, None | Some("status")) && verb != "deletecollection" {
                if name.as_deref() == Some(node) {
                    return Ok(req);
                }
                let name = name.unwrap_or_default();
                let action = if verb == "delete" { "delete" } else { "modify" };
                return Err(forbidden(
                    &target,
                    &name,
                    format!("node \"{node}\" is not allowed to {action} node \"{name}\""),
                ));
            }
            Err(rbac_forbidden(user, verb, &target))
        }
        ("coordination.k8s.io", "leases") => {
            if target.namespace.as_deref() != Some(NODE_LEASE_NAMESPACE) {
                return Err(rbac_forbidden(user, verb, &target));
            }
            let (req, name) = object_name(req, &target, verb).await?;
            if sub.is_none() && verb != "deletecollection" && name.as_deref() == Some(node) {
                return Ok(req);
            }
            Err(forbidden(
                &target,
                name.as_deref().unwrap_or_default(),
                "can only access node lease with the same name as the requesting node".to_string(),
            ))
        }
        ("", "pods") => {
            let name = target.name.clone().unwrap_or_default();
            let status_write = sub == Some("status") && matches!(verb, "update" | "patch");
            let delete = sub.is_none() && verb == "delete";
            if !status_write && !delete {
                if verb == "create" && sub.is_none() {
                    let (_, name) = object_name(req, &target, verb).await?;
                    return Err(forbidden(
                        &target,
                        name.as_deref().unwrap_or_default(),
                        format!(
                            "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"{node}\" can only \
                             create mirror pods"
                        ),
                    ));
                }
                return Err(rbac_forbidden(user, verb, &target));
            }
            let bound_to = match state.get_object("pods", target.namespace.as_deref(), &name).await {
                Ok(pod) => pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
                // Not found (or unreadable): the handler answers that, and nothing is written.
                Err(_) => return Ok(req),
            };
            if bound_to == node {
                return Ok(req);
            }
            let what = if delete { "delete pods" } else { "update pod status for pods" };
            Err(forbidden(&target, &name, format!("node \"{node}\" can only {what} with spec.nodeName set to itself")))
        }
        ("" | "events.k8s.io", "events") if matches!(verb, "create" | "update" | "patch") => Ok(req),
        ("", "persistentvolumeclaims") if sub == Some("status") && matches!(verb, "update" | "patch") => Ok(req),
        ("authentication.k8s.io", "selfsubjectreviews") => Ok(req),
        _ => Err(rbac_forbidden(user, verb, &target)),
    }
}

/// The name of the object a write is about: from the path, or for a create from the body's
/// `metadata.name` (the body is read, then put back for the handler).
async fn object_name(req: Request, target: &Target, verb: &str) -> Result<(Request, Option<String>), ApiError> {
    if verb != "create" || target.name.is_some() {
        return Ok((req, target.name.clone()));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(413, "RequestEntityTooLarge", format!("the request body is larger than {MAX_BODY_BYTES} bytes"))
    })?;
    let name = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string));
    Ok((Request::from_parts(parts, Body::from(bytes)), name))
}

/// A 403 Status: `<resource> "<name>" is forbidden: <why>`.
fn forbidden(target: &Target, name: &str, why: String) -> ApiError {
    let qualified = target.qualified();
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {why}")
    };
    let mut err = ApiError::new(403, "Forbidden", message);
    let mut details = json!({"name": name, "kind": target.resource});
    if !target.group.is_empty() {
        details["group"] = json!(target.group);
    }
    err.details = Some(Box::new(details));
    err
}

/// The authorizer's refusal, in RBAC's words.
fn rbac_forbidden(user: &UserInfo, verb: &str, target: &Target) -> ApiError {
    let mut resource = target.resource.clone();
    if let Some(sub) = &target.subresource {
        resource = format!("{resource}/{sub}");
    }
    let scope = match &target.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let why = format!(
        "User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        user.username, target.group
    );
    forbidden(target, target.name.as_deref().unwrap_or_default(), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(group: &str, resource: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            group: group.into(),
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn paths_parse_as_kube_apiserver_request_info() {
        assert_eq!(parse_path("/api/v1/nodes/n1/status"), Some(t("", "nodes", None, Some("n1"), Some("status"))));
        assert_eq!(parse_path("/api/v1/namespaces/a"), Some(t("", "namespaces", None, Some("a"), None)));
        assert_eq!(
            parse_path("/api/v1/namespaces/a/finalize"),
            Some(t("", "namespaces", None, Some("a"), Some("finalize")))
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/pods/p/status"),
            Some(t("", "pods", Some("a"), Some("p"), Some("status")))
        );
        assert_eq!(
            parse_path("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
            Some(t("coordination.k8s.io", "leases", Some("kube-node-lease"), None, None))
        );
        assert_eq!(parse_path("/version"), None);
        assert_eq!(parse_path("/apis/apps/v1"), None);
    }

    #[test]
    fn refusals_use_kube_apiserver_wording() {
        let user = UserInfo { username: "system:node:a".into(), groups: vec!["system:nodes".into()] };
        let err = rbac_forbidden(&user, "create", &t("apps", "deployments", Some("default"), None, None));
        assert_eq!(
            err.message,
            "deployments.apps is forbidden: User \"system:node:a\" cannot create resource \"deployments\" in API \
             group \"apps\" in the namespace \"default\""
        );
        assert_eq!(err.code, 403);
        let err = forbidden(
            &t("", "nodes", None, Some("b"), None),
            "b",
            "node \"a\" is not allowed to modify node \"b\"".into(),
        );
        assert_eq!(err.message, "nodes \"b\" is forbidden: node \"a\" is not allowed to modify node \"b\"");
    }
}
