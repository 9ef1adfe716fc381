//! `kubectl port-forward`: the kubelet's `/portForward/{ns}/{pod}` on the agent, reached through the API
//! server's `pods/portforward` (which splices the WebSocket through, as it does for exec).
//!
//! The WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`) carries a SPDY session ([`spdy`]). For every
//! local connection kubectl opens two streams with the same `requestid` header: an `error` stream (which
//! it half-closes at once and reads to the end) and a `data` stream. Once both exist, the agent connects
//! to `localhost:<port>` *inside the pod's network namespace* (as containerd does, so a server bound to
//! 127.0.0.1 in the pod is reachable) and copies bytes both ways. Ending follows containerd: when either
//! direction finishes, the other gets one second, then both streams are finished; a failed connect is
//! written to the error stream, which kubectl prints as "an error occurred forwarding L -> P: ...".

pub mod spdy;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use spdy::{FLAG_FIN, Frame};

/// The WebSocket subprotocol kubectl asks for: SPDY tunnelled in WebSocket messages.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Largest data frame sent (spdystream reads any size; this keeps WebSocket messages small).
const CHUNK: usize = 32 * 1024;

/// How long the second direction of a forwarded connection may take after the first ended (containerd).
const LINGER: Duration = Duration::from_secs(1);

/// How long connecting to the port inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued for the WebSocket at most; a slow client slows the pods' sockets, not our memory.
const OUT_QUEUE: usize = 64;

/// Runs one port-forward session until kubectl closes it. `pid` is a process in the pod's network
/// namespace (its pause container); `pod` names the pod in error messages.
pub async fn serve(socket: WebSocket, pid: i64, pod: String) {
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        let mut encoder = spdy::Encoder::default();
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(Bytes::from(encoder.encode(&frame)))).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let mut session = Session { out: out_tx, pid, pod, requests: HashMap::new(), streams: HashMap::new() };
    let mut decoder = spdy::Decoder::default();
    let mut buf = BytesMut::new();
    'read: while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Binary(bytes) => buf.extend_from_slice(&bytes),
            Message::Close(_) => break,
            _ => continue,
        }
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if !session.handle(frame).await {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY input, closing the session");
                    let _ = session.out.send(Frame::GoAway { last_good_stream_id: 0, status: 1 }).await;
                    break 'read;
                }
            }
        }
    }
    // Dropping the session drops every stream's input: forwarders see the end and finish.
    drop(session);
    let _ = writer.await;
}

/// What the session knows about one SPDY stream.
enum Stream {
    /// kubectl's half of an error stream; nothing it sends there matters.
    Error,
    /// A data stream: its bytes go to the forwarder through this sender (dropped on FIN).
    Data(Option<mpsc::Sender<Bytes>>),
}

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Request {
    port: u16,
    error_stream: Option<u32>,
    data_stream: Option<(u32, mpsc::Receiver<Bytes>)>,
}

struct Session {
    out: mpsc::Sender<Frame>,
    pid: i64,
    pod: String,
    requests: HashMap<String, Request>,
    streams: HashMap<u32, Stream>,
}

impl Session {
    /// Acts on one frame from kubectl; false ends the session.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream { stream_id, headers, .. } => self.open(stream_id, &headers).await,
            Frame::Data { stream_id, flags, data } => {
                if let Some(Stream::Data(input)) = self.streams.get_mut(&stream_id) {
                    if let Some(tx) = input.as_ref()
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        *input = None;
                    }
                    if flags & FLAG_FIN != 0 {
                        *input = None;
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                self.streams.remove(&stream_id);
            }
            // Pings from kubectl carry odd ids; answering is echoing.
            Frame::Ping { id } => {
                let _ = self.out.send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => return false,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Other { .. } => {}
        }
        true
    }

    /// A new stream from kubectl: accept it, and start forwarding once its request has both streams.
    async fn open(&mut self, stream_id: u32, headers: &spdy::Headers) {
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
        let (kind, port, request_id) = (header("streamtype"), header("port"), header("requestid").to_string());
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && matches!(kind, "error" | "data") => p,
            _ => {
                tracing::debug!(stream_id, kind, port, "port-forward: refusing a stream without a valid port/type");
                let _ = self.out.send(Frame::RstStream { stream_id, status: spdy::RST_PROTOCOL_ERROR }).await;
                return;
            }
        };
        let _ = self.out.send(Frame::SynReply { stream_id, flags: 0, headers: vec![] }).await;
        let request = self.requests.entry(request_id.clone()).or_default();
        request.port = port;
        if kind == "error" {
            request.error_stream = Some(stream_id);
            self.streams.insert(stream_id, Stream::Error);
        } else {
            let (tx, rx) = mpsc::channel(16);
            request.data_stream = Some((stream_id, rx));
            self.streams.insert(stream_id, Stream::Data(Some(tx)));
        }
        if request.error_stream.is_some() && request.data_stream.is_some() {
            let Some(Request { port, error_stream: Some(error_stream), data_stream: Some((data_stream, input)) }) =
                self.requests.remove(&request_id)
            else {
                return;
            };
            let forward = Forward { out: self.out.clone(), pid: self.pid, pod: self.pod.clone(), port };
            tokio::spawn(forward.run(error_stream, data_stream, input));
        }
    }
}

/// One forwarded connection.
struct Forward {
    out: mpsc::Sender<Frame>,
    pid: i64,
    pod: String,
    port: u16,
}

impl Forward {
    async fn run(self, error_stream: u32, data_stream: u32, input: mpsc::Receiver<Bytes>) {
        match connect_in_netns(self.pid, self.port).await {
            Ok(conn) => self.copy(conn, data_stream, input).await,
            Err(e) => {
                let message = format!(
                    "error forwarding port {} to pod {}: failed to connect to localhost:{} inside the pod's \
                     network namespace: {e}",
                    self.port, self.pod, self.port
                );
                tracing::debug!(%message, "port-forward");
                let data = Bytes::from(message.into_bytes());
                let _ = self.out.send(Frame::Data { stream_id: error_stream, flags: 0, data }).await;
            }
        }
        // kubectl waits for both streams to end: data first (its copy to the local socket finishes), then
        // the error stream (read to its end, empty when all went well).
        for stream_id in [data_stream, error_stream] {
            let _ = self.out.send(Frame::Data { stream_id, flags: FLAG_FIN, data: Bytes::new() }).await;
        }
    }

    /// Copies until one direction ends, then gives the other [`LINGER`] to finish.
    async fn copy(&self, conn: TcpStream, data_stream: u32, mut input: mpsc::Receiver<Bytes>) {
        let (mut from_pod, mut to_pod) = conn.into_split();
        let out = self.out.clone();
        let mut pod_to_client = Box::pin(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match from_pod.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if out.send(Frame::Data { stream_id: data_stream, flags: 0, data }).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut client_to_pod = Box::pin(async move {
            while let Some(bytes) = input.recv().await {
                if to_pod.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            // kubectl half-closed its side: so do we, towards the pod.
            let _ = to_pod.shutdown().await;
        });
        tokio::select! {
            _ = &mut pod_to_client => { let _ = tokio::time::timeout(LINGER, client_to_pod).await; }
            _ = &mut client_to_pod => { let _ = tokio::time::timeout(LINGER, pod_to_client).await; }
        }
    }
}

/// Connects to `localhost:port` in the network namespace of process `pid`: IPv4 first, then IPv6, as
/// containerd does. A socket keeps the namespace it was made in, so a short-lived thread enters the
/// namespace, connects and hands the socket back; no tokio worker ever changes namespace.
async fn connect_in_netns(pid: i64, port: u16) -> io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("flotilla-portfwd".into()).spawn(move || {
        let result = (|| {
            let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            // SAFETY: setns on a valid namespace fd affects only this thread, which exits right after.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT).or_else(|e4| {
                let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT)
                    .map_err(|e6| io::Error::new(e4.kind(), format!("IPv4: {}; IPv6: {}", short(&e4), short(&e6))))
            })
        })();
        let _ = tx.send(result);
    })?;
    let stream = rx.await.map_err(|_| io::Error::other("port-forward connect thread ended"))??;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// An error as Go's net package words it ("connection refused"), which is what kubectl users know.
fn short(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut => "i/o timeout".into(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        _ => e.to_string(),
    }
}
