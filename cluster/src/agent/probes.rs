//! Readiness, liveness and startup probes as the kubelet runs them: exec (docker exec, exit code 0 is
//! success), httpGet (a status in 200..400 is success) and tcpSocket (a connection is success), from the
//! agent into the pod's address, with Kubernetes' periods, delays, timeouts and thresholds.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The running tally of one probe of one container instance.
#[derive(Debug, Default, Clone)]
pub struct ProbeState {
    pub container_id: String,
    pub last_run: Option<Instant>,
    pub successes: i32,
    pub failures: i32,
    /// The probe's verdict after its thresholds (None until first decided).
    pub result: Option<bool>,
    pub last_message: String,
}

impl ProbeState {
    /// Resets the tally when the container instance changes.
    pub fn for_container(&mut self, id: &str) {
        if self.container_id != id {
            *self = ProbeState { container_id: id.to_string(), ..Default::default() };
        }
    }

    /// Whether the probe is due now, for a container started at `started`.
    pub fn due(&self, probe: &Probe, started: Instant, now: Instant) -> bool {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        if now < started + delay {
            return false;
        }
        let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
        self.last_run.is_none_or(|t| now >= t + period)
    }

    /// Records one outcome and updates the verdict with the thresholds.
    pub fn record(&mut self, probe: &Probe, ok: bool, message: String, now: Instant) {
        self.last_run = Some(now);
        self.last_message = message;
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                self.result = Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                self.result = Some(false);
            }
        }
    }
}

fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Some(p);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }
    }
}

/// Runs one probe; returns (success, message).
pub async fn run_probe(
    docker: &Docker,
    container_id: &str,
    container: &Container,
    probe: &Probe,
    pod_ip: &str,
) -> (bool, String) {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let work = async {
        if let Some(exec) = &probe.exec {
            exec_probe(docker, container_id, exec.command.clone().unwrap_or_default()).await
        } else if let Some(http) = &probe.http_get {
            let Some(port) = resolve_port(container, &http.port) else {
                return (false, format!("unknown port {:?}", http.port));
            };
            let host = http.host.clone().unwrap_or_else(|| pod_ip.to_string());
            let path = http.path.clone().unwrap_or_else(|| "/".into());
            let headers: Vec<(String, String)> =
                http.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
            http_probe(&host, port, &path, &headers).await
        } else if let Some(tcp) = &probe.tcp_socket {
            let Some(port) = resolve_port(container, &tcp.port) else {
                return (false, format!("unknown port {:?}", tcp.port));
            };
            let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_string());
            match tokio::net::TcpStream::connect((host.as_str(), port)).await {
                Ok(_) => (true, String::new()),
                Err(e) => (false, format!("dial tcp {host}:{port}: {e}")),
            }
        } else {
            (true, String::new())
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => (false, format!("probe timed out after {}s", timeout.as_secs())),
    }
}

async fn exec_probe(docker: &Docker, container_id: &str, cmd: Vec<String>) -> (bool, String) {
    let create = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd),
        ..Default::default()
    };
    let exec = match docker.create_exec(container_id, create).await {
        Ok(e) => e,
        Err(e) => return (false, e.to_string()),
    };
    let mut output = String::new();
    match docker.start_exec(&exec.id, None).await {
        Ok(StartExecResults::Attached { output: mut out, .. }) => {
            while let Some(Ok(chunk)) = out.next().await {
                if output.len() < 1024 {
                    output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                }
            }
        }
        Ok(StartExecResults::Detached) => {}
        Err(e) => return (false, e.to_string()),
    }
    match docker.inspect_exec(&exec.id).await {
        Ok(i) if i.exit_code == Some(0) => (true, output),
        Ok(i) => (false, format!("command exited with {}: {}", i.exit_code.unwrap_or(-1), output.trim())),
        Err(e) => (false, e.to_string()),
    }
}

async fn http_probe(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> (bool, String) {
    let mut stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return (false, format!("Get \"http://{host}:{port}{path}\": {e}")),
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = stream.write_all(req.as_bytes()).await {
        return (false, e.to_string());
    }
    let mut buf = vec![0u8; 1024];
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]).await {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if buf[..got].windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) => return (false, e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let code: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match code {
        Some(c) if (200..400).contains(&c) => (true, String::new()),
        Some(c) => (false, format!("HTTP probe failed with statuscode: {c}")),
        None => (false, "malformed HTTP response".to_string()),
    }
}
