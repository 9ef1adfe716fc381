//! The kubelet-like endpoint on `<node-ip>:<kubelet_port>` (10250): HTTPS with mutual TLS (client
//! certificates signed by the cluster CA, rustls with ring), serving the paths of the kubelet that the API
//! server proxies to: `GET /containerLogs/{ns}/{pod}/{container}` (docker logs; follow, tailLines,
//! timestamps, sinceSeconds, limitBytes, previous), `/exec/{ns}/{pod}/{container}` as a WebSocket with the
//! `v5.channel.k8s.io` / `v4.channel.k8s.io` stream protocol (docker exec), `/portForward/{ns}/{pod}` as
//! a WebSocket carrying SPDY ([`super::portforward`]), and `/healthz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::LogsOptions;
use futures::{SinkExt, StreamExt};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt;

use super::Ctx;
use super::pod::find_container;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("bad TLS material: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

fn tls_config(ctx: &Ctx) -> Result<rustls::ServerConfig, KubeletError> {
    let tls = |e: &dyn std::fmt::Display| KubeletError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ctx.config.ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().map_err(|e| tls(&e))?;
    let certs = rustls_pemfile::certs(&mut ctx.config.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = rustls_pemfile::private_key(&mut ctx.config.key_pem.as_bytes())
        .map_err(|e| tls(&e))?
        .ok_or_else(|| KubeletError::Tls("no private key in the agent's key PEM".into()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    // HTTP/1.1 only: exec is a WebSocket upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The router (without TLS), for the endpoint and for tests.
pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/exec/{namespace}/{pod}/{container}", get(exec).post(exec))
        .route("/portForward/{namespace}/{pod}", get(port_forward).post(port_forward))
        .route("/images/present", get(super::images::present))
        .route("/images/load", axum::routing::post(super::images::load))
        .with_state(ctx)
}

/// Binds the endpoint and returns the future that serves it.
pub async fn serve(ctx: Arc<Ctx>) -> Result<impl Future<Output = ()> + Send + 'static, KubeletError> {
    let config = Arc::new(tls_config(&ctx)?);
    let addr = SocketAddr::new(ctx.config.node_ip, ctx.config.kubelet_port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| KubeletError::Bind { addr, source: e })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let app = router(ctx);
    Ok(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "kubelet endpoint: TLS handshake failed");
                        return;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "kubelet endpoint: connection ended");
                }
            });
        }
    })
}

/// Parses a query string keeping repeated keys (`command=a&command=b`).
fn parse_query(raw: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode(k)).or_default().push(decode(v));
    }
    out
}

fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {}
            b => out.push(b),
        }
        if bytes[i] == b'%' {
            match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            }
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(q: &HashMap<String, Vec<String>>, key: &str) -> bool {
    q.get(key).and_then(|v| v.first()).is_some_and(|v| v == "true" || v == "1")
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn container_logs(
    State(ctx): State<Arc<Ctx>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = parse_query(raw.as_deref());
    let previous = flag(&q, "previous");
    let Some(id) = find_container(&ctx, &namespace, &pod, &container, previous).await else {
        let what = if previous { "previous terminated container" } else { "container" };
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let get = |k: &str| q.get(k).and_then(|v| v.first()).cloned();
    let tail = get("tailLines").filter(|t| t.parse::<i64>().is_ok_and(|n| n >= 0)).unwrap_or_else(|| "all".into());
    let since = get("sinceSeconds")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| (jiff::Timestamp::now().as_second() - s).max(0) as i32)
        .or_else(|| get("sinceTime").and_then(|t| t.parse::<jiff::Timestamp>().ok()).map(|t| t.as_second() as i32))
        .unwrap_or(0);
    let options = LogsOptions {
        follow: flag(&q, "follow"),
        stdout: true,
        stderr: true,
        since,
        until: 0,
        timestamps: flag(&q, "timestamps"),
        tail,
    };
    let mut limit: Option<usize> = get("limitBytes").and_then(|l| l.parse().ok());
    let stream = ctx.docker.logs(&id, Some(options));
    let body = stream
        .map(move |item| match item {
            Ok(chunk) => {
                let mut bytes = chunk.into_bytes();
                if let Some(left) = limit.as_mut() {
                    if bytes.len() > *left {
                        bytes.truncate(*left);
                    }
                    *left -= bytes.len();
                }
                Ok::<Bytes, std::io::Error>(bytes)
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        })
        .take_while(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())));
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn exec(
    State(ctx): State<Arc<Ctx>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let q = parse_query(raw.as_deref());
    let Ok(ws) = ws else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "exec needs a WebSocket upgrade (v5.channel.k8s.io)".into(),
        );
    };
    let command: Vec<String> = q.get("command").cloned().unwrap_or_default();
    if command.is_empty() {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", "you must specify at least 1 command".into());
    }
    let Some(id) = find_container(&ctx, &namespace, &pod, &container, false).await else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let opts = ExecOpts {
        stdin: flag(&q, "stdin") || flag(&q, "input"),
        stdout: flag(&q, "stdout") || flag(&q, "output") || !q.contains_key("stdout"),
        stderr: flag(&q, "stderr") || flag(&q, "error"),
        tty: flag(&q, "tty"),
        command,
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            let v5 = socket.protocol().is_some_and(|p| p.as_bytes() == b"v5.channel.k8s.io");
            if let Err(e) = run_exec(ctx, id, opts, socket, v5).await {
                tracing::debug!(error = %e, "exec session ended with an error");
            }
        })
        .into_response()
}

async fn port_forward(
    State(ctx): State<Arc<Ctx>>,
    Path((namespace, pod)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("port-forward needs a WebSocket upgrade ({})", super::portforward::PROTOCOL),
        );
    };
    let Some(pid) = super::pod::sandbox_pid(&ctx, &namespace, &pod).await else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pod \"{pod}\" in namespace \"{namespace}\" has no running sandbox on this node"),
        );
    };
    ws.protocols([super::portforward::PROTOCOL])
        .on_upgrade(move |socket| super::portforward::serve(socket, pid, format!("{namespace}/{pod}")))
        .into_response()
}

struct ExecOpts {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    command: Vec<String>,
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Ends the session with a Normal Closure (1000): client-go treats any other close, even one without a
/// code, as an error on every stream.
async fn close_normally<S>(sink: &mut S) -> Result<(), axum::Error>
where
    S: futures::Sink<Message, Error = axum::Error> + Unpin,
{
    let frame = axum::extract::ws::CloseFrame { code: 1000, reason: "".into() };
    sink.send(Message::Close(Some(frame))).await?;
    sink.close().await
}

/// The Status the kubelet sends on the error channel when the command ends.
fn exit_status(command: &[String], code: Option<i64>, error: Option<String>) -> serde_json::Value {
    match (code, error) {
        (_, Some(message)) => serde_json::json!({"metadata": {}, "status": "Failure", "message": message}),
        (Some(0), None) => serde_json::json!({"metadata": {}, "status": "Success"}),
        (code, None) => {
            let code = code.unwrap_or(-1);
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
    }
}

async fn run_exec(
    ctx: Arc<Ctx>,
    id: String,
    opts: ExecOpts,
    socket: WebSocket,
    v5: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (mut sink, mut incoming) = socket.split();
    let create = CreateExecOptions {
        attach_stdin: Some(opts.stdin),
        attach_stdout: Some(opts.stdout),
        attach_stderr: Some(opts.stderr),
        tty: Some(opts.tty),
        cmd: Some(opts.command.clone()),
        ..Default::default()
    };
    let exec = match ctx.docker.create_exec(&id, create).await {
        Ok(e) => e,
        Err(e) => {
            let status = exit_status(&opts.command, None, Some(e.to_string()));
            sink.send(frame(ERROR, status.to_string().as_bytes())).await?;
            let _ = close_normally(&mut sink).await;
            return Ok(());
        }
    };
    let started = ctx
        .docker
        .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty: opts.tty, output_capacity: None }))
        .await;
    let (mut output, mut input) = match started {
        Ok(StartExecResults::Attached { output, input }) => (output, input),
        Ok(StartExecResults::Detached) => return Ok(()),
        Err(e) => {
            let status = exit_status(&opts.command, None, Some(e.to_string()));
            sink.send(frame(ERROR, status.to_string().as_bytes())).await?;
            let _ = close_normally(&mut sink).await;
            return Ok(());
        }
    };
    // Client -> container: stdin, resize, stdin close (v5).
    let docker = ctx.docker.clone();
    let exec_id = exec.id.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_str().as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else { continue };
            match channel {
                STDIN => {
                    if input.write_all(payload).await.is_err() {
                        break;
                    }
                    let _ = input.flush().await;
                }
                RESIZE => {
                    #[derive(serde::Deserialize)]
                    struct Size {
                        #[serde(rename = "Width")]
                        width: u16,
                        #[serde(rename = "Height")]
                        height: u16,
                    }
                    if let Ok(size) = serde_json::from_slice::<Size>(payload) {
                        let _ = docker
                            .resize_exec(&exec_id, ResizeExecOptions { width: size.width, height: size.height })
                            .await;
                    }
                }
                CLOSE if v5 && payload.first() == Some(&STDIN) => {
                    let _ = input.shutdown().await;
                }
                _ => {}
            }
        }
    });
    // Container -> client.
    while let Some(item) = output.next().await {
        let Ok(chunk) = item else { break };
        let msg = match chunk {
            bollard::container::LogOutput::StdErr { message } => frame(STDERR, &message),
            bollard::container::LogOutput::StdOut { message } | bollard::container::LogOutput::Console { message } => {
                frame(STDOUT, &message)
            }
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        if sink.send(msg).await.is_err() {
            break;
        }
    }
    reader.abort();
    let mut code = None;
    for _ in 0..50 {
        match ctx.docker.inspect_exec(&exec.id).await {
            Ok(i) if i.running == Some(true) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Ok(i) => {
                code = i.exit_code;
                break;
            }
            Err(_) => break,
        }
    }
    let status = exit_status(&opts.command, code, None);
    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = close_normally(&mut sink).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keeps_repeated_keys_and_decodes() {
        let q = parse_query(Some("command=sh&command=-c&command=echo%20hi+there&stdout=true&tty=1"));
        assert_eq!(q["command"], vec!["sh", "-c", "echo hi there"]);
        assert!(flag(&q, "stdout"));
        assert!(flag(&q, "tty"));
        assert!(!flag(&q, "stdin"));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%2"), "%2");
    }

    #[test]
    fn exit_status_shapes() {
        let ok = exit_status(&["true".into()], Some(0), None);
        assert_eq!(ok["status"], "Success");
        let bad = exit_status(&["sh".into()], Some(3), None);
        assert_eq!(bad["reason"], "NonZeroExitCode");
        assert_eq!(bad["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(bad["details"]["causes"][0]["message"], "3");
    }
}
