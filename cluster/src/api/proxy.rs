//! `pods/log`, `pods/exec` and `pods/portforward`: the API server finds the pod's node and proxies the request to that node's
//! agent (our kubelet), over HTTPS with mutual TLS, exactly as kube-apiserver proxies to the kubelet.
//!
//! Logs are a plain HTTP GET whose body is streamed through as it arrives (`kubectl logs -f` keeps it open).
//! Exec and port-forward are WebSockets (`v5.channel.k8s.io`, `SPDY/3.1+portforward.k8s.io`): the client's upgrade request is replayed to the agent with
//! its `Sec-WebSocket-*` headers, the agent's `101 Switching Protocols` is relayed back (its
//! `Sec-WebSocket-Accept` is valid for the client because the key is the client's), and then the two
//! upgraded connections are spliced byte for byte. The API server never parses WebSocket frames, so every
//! subprotocol the agent speaks works unchanged.
//!
//! Validation and error wording follow kube-apiserver (`pkg/registry/core/pod/strategy.go`): the container
//! defaults to the pod's only container, an unscheduled pod has no logs yet (empty body) and cannot be
//! exec'd into (400), and failures of the agent come back as a `Status` carrying the agent's message.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{ApiError, AppState};

/// The kubelet's port, used when a Node does not publish `status.daemonEndpoints.kubeletEndpoint.Port`.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting (TCP and TLS) to an agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a failed agent response is read for the error message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Annotation naming the container `kubectl logs`/`exec` use when none is given.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Log options forwarded to the agent (the `container` parameter is consumed here, others are dropped).
const LOG_PARAMS: &[&str] =
    &["follow", "tailLines", "timestamps", "previous", "sinceSeconds", "sinceTime", "limitBytes"];

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`: streams the container's log from the node's agent.
pub async fn pod_log(state: Arc<AppState>, namespace: String, pod: String, query: Option<String>) -> Response {
    let query = query.unwrap_or_default();
    let pod_obj = match state.get_object("pods", Some(&namespace), &pod).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = validate_log_options(&pod, &query) {
        return e.into_response();
    }
    let container = match pick_container(&pod_obj, query_value(&query, "container")) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let node_name = text(&pod_obj, &["spec", "nodeName"]);
    if node_name.is_empty() {
        // kube-apiserver: a pod not yet on a node has no logs; the answer is an empty stream.
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], Body::empty()).into_response();
    }
    let endpoint = match node_endpoint(&state, node_name).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let path = format!(
        "/containerLogs/{namespace}/{pod}/{container}{}",
        forwarded_query(&query, |key| LOG_PARAMS.contains(&key))
    );
    match proxy_log(&state.kubelet_tls, &endpoint, &path).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec` (and `/attach`): a WebSocket upgrade relayed to the
/// node's agent.
pub async fn pod_exec(
    state: Arc<AppState>,
    namespace: String,
    pod: String,
    query: Option<String>,
    req: Request,
) -> Response {
    let query = query.unwrap_or_default();
    let subresource = if req.uri().path().ends_with("/attach") { "attach" } else { "exec" };
    let pod_obj = match state.get_object("pods", Some(&namespace), &pod).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let container = match pick_container(&pod_obj, query_value(&query, "container")) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let node_name = text(&pod_obj, &["spec", "nodeName"]);
    if node_name.is_empty() {
        return ApiError::bad_request(format!("pod {pod} does not have a host assigned")).into_response();
    }
    let upgrade = header_str(req.headers(), header::UPGRADE);
    if !upgrade.eq_ignore_ascii_case("websocket") {
        if upgrade.to_ascii_lowercase().starts_with("spdy") {
            // kubectl tries WebSocket first and falls back to SPDY only when the WebSocket attempt failed.
            return ApiError::bad_request(
                "SPDY streams are not supported by this server: use kubectl v1.30 or newer, which speaks \
                 the WebSocket protocol (v5.channel.k8s.io)",
            )
            .into_response();
        }
        return ApiError::bad_request("Upgrade request required").into_response();
    }
    let endpoint = match node_endpoint(&state, node_name).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let path =
        format!("/{subresource}/{namespace}/{pod}/{container}{}", forwarded_query(&query, |key| key != "container"));
    match proxy_upgrade(&state.kubelet_tls, &endpoint, &path, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward`: kubectl's WebSocket (SPDY tunnelled in it,
/// subprotocol `SPDY/3.1+portforward.k8s.io`) relayed to the agent's `/portForward/{ns}/{name}`, which
/// speaks the SPDY; the ports travel in the SPDY streams' headers, not in the query.
pub async fn pod_port_forward(state: Arc<AppState>, namespace: String, pod: String, req: Request) -> Response {
    let pod_obj = match state.get_object("pods", Some(&namespace), &pod).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let node_name = text(&pod_obj, &["spec", "nodeName"]);
    if node_name.is_empty() {
        return ApiError::bad_request(format!("pod {pod} does not have a host assigned")).into_response();
    }
    let upgrade = header_str(req.headers(), header::UPGRADE);
    if !upgrade.eq_ignore_ascii_case("websocket") {
        // kubectl tries WebSocket first and falls back to plain SPDY only when the WebSocket attempt failed.
        return ApiError::bad_request(
            "port-forward is served over WebSocket (SPDY/3.1+portforward.k8s.io) only: use kubectl v1.30 or newer",
        )
        .into_response();
    }
    let endpoint = match node_endpoint(&state, node_name).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let path = format!("/portForward/{namespace}/{pod}");
    match proxy_upgrade(&state.kubelet_tls, &endpoint, &path, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Where a node's agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address to dial and to verify the agent's certificate against (an IP, or a host name).
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub(crate) fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

async fn node_endpoint(state: &AppState, node_name: &str) -> Result<Endpoint, ApiError> {
    let node = state.get_object("nodes", None, node_name).await?;
    endpoint_of(&node)
}

/// The agent's address from a Node: the first InternalIP, else ExternalIP, else Hostname (the contract
/// of k3s's `--kubelet-preferred-address-types`), and the port it publishes.
pub fn endpoint_of(node: &Value) -> Result<Endpoint, ApiError> {
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let host = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|ty| {
        addresses.iter().find(|a| text(a, &["type"]) == *ty).map(|a| text(a, &["address"])).filter(|a| !a.is_empty())
    });
    let Some(host) = host else {
        let known: Vec<String> =
            addresses.iter().map(|a| format!("{{{} {}}}", text(a, &["type"]), text(a, &["address"]))).collect();
        return Err(ApiError::internal(format!(
            "no preferred addresses found; known addresses: [{}]",
            known.join(" ")
        )));
    };
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(Endpoint { host: host.to_string(), port })
}

/// kube-apiserver's `validateContainer`: the requested container must exist (among init, regular and
/// ephemeral containers); without one, the `kubectl.kubernetes.io/default-container` annotation or the
/// pod's only container is used.
pub fn pick_container(pod: &Value, requested: Option<String>) -> Result<String, ApiError> {
    let pod_name = text(pod, &["metadata", "name"]);
    let names = |field: &str| -> Vec<&str> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| text(c, &["name"])).collect())
            .unwrap_or_default()
    };
    let containers = names("containers");
    let all: Vec<&str> = names("initContainers")
        .into_iter()
        .chain(containers.iter().copied())
        .chain(names("ephemeralContainers"))
        .collect();
    if let Some(requested) = requested.filter(|c| !c.is_empty()) {
        if !all.contains(&requested.as_str()) {
            return Err(ApiError::bad_request(format!("container {requested} is not valid for pod {pod_name}")));
        }
        return Ok(requested);
    }
    let annotated = text(pod, &["metadata", "annotations", DEFAULT_CONTAINER_ANNOTATION]);
    if !annotated.is_empty() && all.contains(&annotated) {
        return Ok(annotated.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.to_string()),
        [] => Err(ApiError::bad_request(format!("pod {pod_name} does not have a container"))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

/// The checks kube-apiserver makes on `PodLogOptions` before asking the kubelet.
fn validate_log_options(pod: &str, query: &str) -> Result<(), ApiError> {
    let invalid = |field: &str, value: &str, why: &str| {
        ApiError::invalid("PodLogOptions", pod, &format!("{field}: Invalid value: {value}: {why}"))
    };
    for (key, positive) in [("tailLines", false), ("sinceSeconds", true), ("limitBytes", true)] {
        let Some(raw) = query_value(query, key) else { continue };
        let Ok(value) = raw.parse::<i64>() else {
            return Err(ApiError::bad_request(format!("invalid value for {key}: {raw:?} is not an integer")));
        };
        if positive && value < 1 {
            return Err(invalid(key, &raw, "must be greater than 0"));
        }
        if !positive && value < 0 {
            return Err(invalid(key, &raw, "must be greater than or equal to 0"));
        }
    }
    if query_value(query, "sinceSeconds").is_some() && query_value(query, "sinceTime").is_some() {
        return Err(ApiError::invalid(
            "PodLogOptions",
            pod,
            "sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Talking to the agent.

/// Dials the agent: TCP, then TLS verified against the cluster CA with the kubelet-client certificate.
/// HTTP/1.1 only, because upgrades (exec) exist only there.
pub(crate) async fn connect(
    tls: &Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ApiError> {
    let dial_error = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!("error dialing backend: dial tcp {}: {e}", endpoint.authority()))
    };
    let server_name = match endpoint.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::from(ip),
        Err(_) => ServerName::try_from(endpoint.host.clone()).map_err(|e| dial_error(&e))?,
    };
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let attempt = async {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
        tcp.set_nodelay(true)?;
        connector.connect(server_name, tcp).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(dial_error(&e)),
        Err(_) => Err(dial_error(&"i/o timeout")),
    }
}

fn backend_error(endpoint: &Endpoint, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("error talking to the node agent at {}: {e}", endpoint.authority()))
}

/// GETs `path` from the agent and streams a 200 answer through; anything else becomes a Status error.
async fn proxy_log(tls: &Arc<rustls::ClientConfig>, endpoint: &Endpoint, path: &str) -> Result<Response, ApiError> {
    let stream = connect(tls, endpoint).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| backend_error(endpoint, e))?;
    // The connection task lives as long as the body is being read (or the client goes away).
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("log stream from node agent ended: {e}");
        }
    });
    let request = axum::http::Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, endpoint.authority())
        .body(Body::empty())
        .map_err(|e| backend_error(endpoint, e))?;
    let response = sender.send_request(request).await.map_err(|e| backend_error(endpoint, e))?;
    if !response.status().is_success() {
        return Err(error_from_backend(response).await);
    }
    let content_type =
        response.headers().get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("text/plain"));
    let mut out = Response::new(Body::new(response.into_body()));
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    Ok(out)
}

/// Replays a WebSocket upgrade to the agent and, once the agent switched protocols, answers the client
/// with the agent's 101 and splices the two connections.
async fn proxy_upgrade(
    tls: &Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    path: &str,
    mut req: Request,
) -> Result<Response, ApiError> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut builder = axum::http::Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, endpoint.authority())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket");
    for name in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_VERSION, header::SEC_WEBSOCKET_PROTOCOL] {
        for value in req.headers().get_all(&name) {
            builder = builder.header(&name, value);
        }
    }
    let request = builder.body(Body::empty()).map_err(|e| backend_error(endpoint, e))?;

    let stream = connect(tls, endpoint).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| backend_error(endpoint, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("exec connection to node agent ended: {e}");
        }
    });
    let mut response = sender.send_request(request).await.map_err(|e| backend_error(endpoint, e))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(error_from_backend(response).await);
    }

    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [header::CONNECTION, header::UPGRADE, header::SEC_WEBSOCKET_ACCEPT, header::SEC_WEBSOCKET_PROTOCOL] {
        for value in response.headers().get_all(&name) {
            out.headers_mut().append(&name, value.clone());
        }
    }
    let backend_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let (client, backend) = tokio::join!(client_upgrade, backend_upgrade);
        match (client, backend) {
            (Ok(client), Ok(backend)) => {
                let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    tracing::debug!("exec stream ended: {e}");
                }
            }
            (client, backend) => {
                tracing::warn!(
                    "exec upgrade failed: client: {:?}, agent: {:?}",
                    client.err().map(|e| e.to_string()),
                    backend.err().map(|e| e.to_string())
                );
            }
        }
    });
    Ok(out)
}

/// Turns a failed agent answer into a Status: a Status body is passed through, text becomes the message
/// (kubectl then prints `Error from server (BadRequest): <the agent's words>`).
async fn error_from_backend(response: hyper::Response<hyper::body::Incoming>) -> ApiError {
    let code = response.status().as_u16();
    let body = axum::body::to_bytes(Body::new(response.into_body()), ERROR_BODY_LIMIT).await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    if let Some(status) = parsed.filter(|v| v.get("kind").and_then(Value::as_str) == Some("Status")) {
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or_else(|| reason_for(code));
        let message = status.get("message").and_then(Value::as_str).unwrap_or_default();
        return ApiError::new(code, reason, message);
    }
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() { format!("the node agent answered {code} without a message") } else { text };
    ApiError::new(code, reason_for(code), message)
}

/// The Status reason kube-apiserver gives an upstream error of this HTTP code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(v, |v, key| v.get(key)).and_then(Value::as_str).unwrap_or("")
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The decoded value of the first `key=` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').filter_map(|pair| pair.split_once('=').or(Some((pair, "")))).find(|(k, _)| *k == key).map(
        |(_, v)| {
            let v = v.replace('+', " ");
            percent_decode(&v)
        },
    )
}

/// `?` plus the raw `key=value` pairs whose key passes `keep`, in their original order and encoding.
fn forwarded_query(query: &str, keep: impl Fn(&str) -> bool) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| keep(pair.split_once('=').map(|(k, _)| k).unwrap_or(pair)))
        .collect();
    if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;

    use axum::http::Response as HttpResponse;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::RootCertStore;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::WebPkiClientVerifier;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn container_defaults_and_errors_match_kube_apiserver() {
        let one = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), "app");
        assert_eq!(pick_container(&one, Some(String::new())).unwrap(), "app");
        assert_eq!(pick_container(&one, Some("app".into())).unwrap(), "app");
        let err = pick_container(&one, Some("db".into())).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "container db is not valid for pod web"));

        let two = json!({"metadata": {"name": "web"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let err = pick_container(&two, None).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, "BadRequest");
        assert_eq!(err.message, "a container name must be specified for pod web, choose one of: [init a b]");
        assert_eq!(pick_container(&two, Some("init".into())).unwrap(), "init");

        let annotated = json!({"metadata": {"name": "web", "annotations": {DEFAULT_CONTAINER_ANNOTATION: "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(pick_container(&annotated, None).unwrap(), "b");

        let none = json!({"metadata": {"name": "web"}, "spec": {"containers": []}});
        assert_eq!(pick_container(&none, None).unwrap_err().message, "pod web does not have a container");
    }

    #[test]
    fn node_endpoint_prefers_internal_ip_and_published_port() {
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.7"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}});
        assert_eq!(endpoint_of(&node).unwrap(), Endpoint { host: "10.0.0.7".into(), port: 11250 });
        let default_port = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(endpoint_of(&default_port).unwrap(), Endpoint { host: "n1".into(), port: DEFAULT_KUBELET_PORT });
        let err = endpoint_of(&json!({"status": {}})).unwrap_err();
        assert_eq!(err.code, 500);
        assert!(err.message.contains("no preferred addresses found"), "{}", err.message);
        let v6 = Endpoint { host: "fd00::1".into(), port: 10250 };
        assert_eq!(v6.authority(), "[fd00::1]:10250");
    }

    #[test]
    fn queries_are_filtered_and_validated() {
        let q = "container=app&follow=true&tailLines=10&pretty=1&command=sh&command=-c&command=echo%20hi";
        assert_eq!(forwarded_query(q, |k| LOG_PARAMS.contains(&k)), "?follow=true&tailLines=10");
        assert_eq!(
            forwarded_query(q, |k| k != "container"),
            "?follow=true&tailLines=10&pretty=1&command=sh&command=-c&command=echo%20hi"
        );
        assert_eq!(forwarded_query("container=app", |k| k != "container"), "");
        assert_eq!(query_value(q, "container").as_deref(), Some("app"));
        assert_eq!(query_value("command=echo%20hi+there", "command").as_deref(), Some("echo hi there"));
        assert_eq!(query_value(q, "missing"), None);

        assert!(validate_log_options("web", "tailLines=0&limitBytes=5&sinceSeconds=3").is_ok());
        let err = validate_log_options("web", "tailLines=-1").unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(err.message.starts_with("PodLogOptions \"web\" is invalid: tailLines"), "{}", err.message);
        assert_eq!(validate_log_options("web", "sinceSeconds=0").unwrap_err().code, 422);
        assert_eq!(validate_log_options("web", "limitBytes=abc").unwrap_err().code, 400);
        assert_eq!(validate_log_options("web", "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z").unwrap_err().code, 422);
    }

    /// A cluster CA, a serving certificate for 127.0.0.1 and a client certificate, like the ones the
    /// server and agents use.
    struct TestPki {
        ca_pem: String,
        server: (String, String),
        client: (String, String),
    }

    fn test_pki() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |sans: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        TestPki { ca_pem: ca.pem(), server: leaf(vec!["127.0.0.1".into()]), client: leaf(vec!["apiserver".into()]) }
    }

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<_, _>>().unwrap()
    }

    fn key(pem: &str) -> PrivateKeyDer<'static> {
        rustls_pemfile::private_key(&mut pem.as_bytes()).unwrap().unwrap()
    }

    fn roots(pem: &str) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in certs(pem) {
            roots.add(cert).unwrap();
        }
        roots
    }

    fn client_tls(pki: &TestPki) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots(&pki.ca_pem))
                .with_client_auth_cert(certs(&pki.client.0), key(&pki.client.1))
                .unwrap(),
        )
    }

    /// A stand-in for a node agent, for these tests only: mutual TLS like the real one, a log endpoint that
    /// echoes the request line it got, and an exec endpoint that switches protocols and echoes bytes.
    async fn start_fake_agent(pki: &TestPki) -> Endpoint {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&pki.ca_pem)), provider.clone())
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&pki.server.0), key(&pki.server.1))
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(|mut req: axum::http::Request<Incoming>| async move {
                        let uri = req.uri().to_string();
                        let response = if uri.starts_with("/exec/") {
                            let key = header_str(req.headers(), header::SEC_WEBSOCKET_KEY).to_string();
                            let protocol = header_str(req.headers(), header::SEC_WEBSOCKET_PROTOCOL).to_string();
                            let upgrade = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let io = TokioIo::new(upgrade.await.unwrap());
                                let (mut r, mut w) = tokio::io::split(io);
                                let _ = tokio::io::copy(&mut r, &mut w).await;
                            });
                            HttpResponse::builder()
                                .status(StatusCode::SWITCHING_PROTOCOLS)
                                .header(header::CONNECTION, "Upgrade")
                                .header(header::UPGRADE, "websocket")
                                .header(header::SEC_WEBSOCKET_ACCEPT, format!("accept-{key}"))
                                .header(header::SEC_WEBSOCKET_PROTOCOL, protocol.split(',').next().unwrap_or("").trim())
                                .body(Body::empty())
                        } else if uri.contains("/missing") {
                            HttpResponse::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .body(Body::from("container \"missing\" in pod \"web\" is waiting to start\n"))
                        } else {
                            HttpResponse::builder()
                                .header(header::CONTENT_TYPE, "text/plain")
                                .body(Body::from(format!("{uri}\nhello\n")))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Endpoint { host: "127.0.0.1".into(), port }
    }

    #[tokio::test]
    async fn logs_stream_through_over_mutual_tls() {
        let pki = test_pki();
        let agent = start_fake_agent(&pki).await;
        let tls = client_tls(&pki);
        let response = proxy_log(&tls, &agent, "/containerLogs/ns/web/app?tailLines=2").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&body), "/containerLogs/ns/web/app?tailLines=2\nhello\n");

        let err = proxy_log(&tls, &agent, "/containerLogs/ns/web/missing").await.unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
        assert_eq!(err.message, "container \"missing\" in pod \"web\" is waiting to start");
    }

    #[tokio::test]
    async fn agent_refuses_clients_without_the_cluster_certificate() {
        let pki = test_pki();
        let agent = start_fake_agent(&pki).await;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let anonymous = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots(&pki.ca_pem))
                .with_no_client_auth(),
        );
        let err = proxy_log(&anonymous, &agent, "/containerLogs/ns/web/app").await.unwrap_err();
        assert_eq!(err.code, 500);

        // An agent whose certificate the cluster CA did not sign is refused too.
        let other = test_pki();
        let err = proxy_log(&client_tls(&other), &agent, "/containerLogs/ns/web/app").await.unwrap_err();
        assert!(err.message.contains("error dialing backend"), "{}", err.message);

        let closed = Endpoint { host: "127.0.0.1".into(), port: 1 };
        let err = proxy_log(&client_tls(&pki), &closed, "/containerLogs/ns/web/app").await.unwrap_err();
        assert!(err.message.contains("error dialing backend: dial tcp 127.0.0.1:1"), "{}", err.message);
    }

    #[tokio::test]
    async fn exec_upgrade_is_relayed_and_spliced() {
        let pki = test_pki();
        let agent = start_fake_agent(&pki).await;
        let tls = client_tls(&pki);
        // The API server side: a plain HTTP server with upgrades, whose handler relays to the agent.
        let app = axum::Router::new().route(
            "/exec",
            axum::routing::get(move |req: Request| {
                let (tls, agent) = (tls.clone(), agent.clone());
                async move {
                    proxy_upgrade(&tls, &agent, "/exec/ns/web/app?command=sh&stdout=true", req)
                        .await
                        .unwrap_or_else(|e| e.into_response())
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"GET /exec HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < 4096, "no end of response head: {}", String::from_utf8_lossy(&head));
            client.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept: accept-dghlihnhbxbszq=="), "{head}");
        assert!(head.contains("sec-websocket-protocol: v5.channel.k8s.io"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");

        // After the switch, bytes flow both ways untouched (the fake agent echoes them).
        client.write_all(b"\x82\x05hello").await.unwrap();
        let mut echoed = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut echoed)).await.unwrap().unwrap();
        assert_eq!(&echoed, b"\x82\x05hello");
    }
}
