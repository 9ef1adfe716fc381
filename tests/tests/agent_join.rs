//! `flotilla agent --server URL --token TOKEN`: a node joins a running control plane with the k3s-style
//! token. The real server (`--no-agent`) and the real agent run as two processes in a network namespace
//! of the test's own; the agent must refuse a server whose CA is not the one the token pins, be refused
//! with a wrong secret, and otherwise register a Ready Node that runs a pod whose logs kubectl reads (the
//! API server reaching the agent's kubelet port with the certificate the agent got when joining).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Tier;
use common::node::{GracefulChild, Netns, NodeContainers};

#[test]
fn an_agent_joins_with_the_token_and_runs_pods() {
    if common::skip_tier(Tier::Node) {
        return;
    }
    common::apps::ensure_base_images();
    let id = common::server::unique("jn");
    let netns = Netns::new(&id);
    let dir = tempfile::Builder::new().prefix("flt-join-").tempdir().expect("temporary dir");
    let server_dir = dir.path().join("server");
    let agent_dir = dir.path().join("agent");
    let node = format!("{id}-worker");
    let _containers = NodeContainers(node.clone());
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
    let server_log = log("server.log");
    let _server = GracefulChild(
        netns
            .command(common::flotilla_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(&server_dir)
            .args(["--listen", "127.0.0.1:6443", "--no-agent", "--node-name", &id])
            .stdin(Stdio::null())
            .stdout(server_log.try_clone().unwrap())
            .stderr(server_log)
            .spawn()
            .expect("starting flotilla server"),
    );
    let logs = || {
        let read = |n: &str| common::head(&std::fs::read_to_string(dir.path().join(n)).unwrap_or_default(), 60);
        format!("server log:\n{}\nagent log:\n{}", read("server.log"), read("agent.log"))
    };
    let kubectl = |args: &[&str]| {
        let mut cmd = netns.command("kubectl");
        cmd.env_clear();
        for (k, v) in common::FIXED_ENV {
            cmd.env(k, v);
        }
        cmd.env("KUBECONFIG", server_dir.join("kubeconfig.yaml")).env("HOME", dir.path()).args(args);
        common::run(cmd, None, common::CHILD_TIMEOUT)
    };
    let until = |what: &str, limit: u64, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(limit);
        while !check() {
            assert!(Instant::now() < deadline, "{what}\n{}", logs());
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    until("the server never answered", 60, &|| kubectl(&["get", "--raw", "/readyz"]).success());
    let token = std::fs::read_to_string(server_dir.join("token")).expect("the server writes its token");
    let token = token.trim().to_string();
    let (prefix, secret) = token.rsplit_once("::server:").expect("K10<hash>::server:<secret>");

    let agent = |token: &str, log_name: &str| {
        let out = log(log_name);
        let mut cmd = netns.command(common::flotilla_bin());
        cmd.args(["agent", "--server", "https://127.0.0.1:6443", "--token", token, "--node-name", &node])
            .args(["--node-ip", "127.0.0.1", "--data-dir"])
            .arg(&agent_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        cmd
    };
    let refused = |token: &str, want: &str| {
        let mut child = GracefulChild(agent(token, "refused.log").spawn().expect("starting flotilla agent"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                break status;
            }
            assert!(Instant::now() < deadline, "the agent with token {token:?} kept running\n{}", logs());
            std::thread::sleep(Duration::from_millis(100));
        };
        let said = std::fs::read_to_string(dir.path().join("refused.log")).unwrap_or_default();
        assert!(!status.success() && said.contains(want), "agent with a bad token: {status}: {said}");
    };

    // A CA that is not the pinned one: refused before any secret is sent.
    let flipped = match prefix.strip_suffix('0') {
        Some(rest) => format!("{rest}1"),
        None => format!("{}0", &prefix[..prefix.len() - 1]),
    };
    refused(&format!("{flipped}::server:{secret}"), "is not the one the token pins");
    // The right CA but a wrong secret: the server refuses.
    refused(&format!("{prefix}::server:not-the-secret"), "refused to issue node credentials (401)");
    let nodes = kubectl(&["get", "nodes", "-o", "name"]);
    assert!(!nodes.stdout_text().contains(&node), "a refused agent registered a node: {}", nodes.stdout_text());

    // The real token: the node registers, gets a pod CIDR, turns Ready and runs a pod.
    let _agent = GracefulChild(agent(&token, "agent.log").spawn().expect("starting flotilla agent"));
    until("the joined node never became Ready", 120, &|| {
        let out = kubectl(&["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
        out.success() && out.stdout_text() == "True"
    });
    let cidr = kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.podCIDR}"]).stdout_text();
    assert!(cidr.starts_with("10.42.") && cidr.ends_with("/24"), "podCIDR {cidr:?}");
    let whoami = {
        let mut cmd = netns.command("kubectl");
        cmd.env_clear();
        for (k, v) in common::FIXED_ENV {
            cmd.env(k, v);
        }
        cmd.env("KUBECONFIG", agent_dir.join("kubeconfig.yaml")).env("HOME", dir.path());
        cmd.args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
        common::run(cmd, None, common::CHILD_TIMEOUT)
    };
    assert_eq!(whoami.stdout_text(), format!("system:node:{node}"), "{}", whoami.stderr_text());

    let run = kubectl(&[
        "run",
        "hello",
        "--image=flotilla-fixtures/busybox:1",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hello from the joined node",
    ]);
    assert!(run.success(), "kubectl run: {}\n{}", run.stderr_text(), logs());
    until("the pod never succeeded", 120, &|| {
        kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.phase}"]).stdout_text() == "Succeeded"
    });
    let placed = kubectl(&["get", "pod", "hello", "-o", "jsonpath={.spec.nodeName}"]).stdout_text();
    assert_eq!(placed, node);
    let out = kubectl(&["logs", "hello"]);
    assert_eq!(out.stdout_text(), "hello from the joined node\n", "kubectl logs: {}\n{}", out.stderr_text(), logs());
}
