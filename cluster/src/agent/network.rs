//! The node's pod network, driven through the `ip`, `nsenter`, `nft` and `iptables` commands of the node's
//! network namespace (the agent's own): the pod bridge holding the gateway address, one veth per pod moved
//! into the pause container's namespace, masquerade for pod traffic leaving the cluster CIDR (our own table
//! `ip flotilla-nat`), and accept rules in Docker's `DOCKER-USER` chain when Docker's FORWARD policy would
//! drop bridged pod traffic.
//!
//! Why commands and not rtnetlink: the veth must be configured from inside the pod's namespace, which with
//! a netlink socket means a thread that `setns`-ed into it; `ip ... netns <pid>` and `nsenter` do exactly
//! that with no unsafe code, and iproute2 is a documented prerequisite. The cost is one process per step
//! (a pod start runs four), small next to the container starts themselves.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::ipam::PodCidr;

/// The whole cluster's pod range: traffic to it is never masqueraded (host-gw routes carry it).
pub const CLUSTER_CIDR: &str = "10.42.0.0/16";
/// Our nftables table for pod egress masquerade.
pub const NAT_TABLE: &str = "flotilla-nat";

#[derive(Debug, thiserror::Error)]
#[error("{command}: {message}")]
pub struct NetError {
    command: String,
    message: String,
}

/// Runs a command, optionally with stdin, returning stdout; a non-zero exit is an error carrying stderr.
pub async fn run_cmd(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| NetError { command: command.clone(), message: e.to_string() })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| NetError { command: command.clone(), message: e.to_string() })?;
    }
    let out =
        child.wait_with_output().await.map_err(|e| NetError { command: command.clone(), message: e.to_string() })?;
    if !out.status.success() {
        return Err(NetError { command, message: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates (or keeps) the bridge with the gateway address of `cidr`, up, and turns on IPv4 forwarding.
pub async fn ensure_bridge(bridge: &str, cidr: PodCidr) -> Result<(), NetError> {
    if run_cmd("ip", &["link", "show", bridge], None).await.is_err() {
        run_cmd("ip", &["link", "add", bridge, "type", "bridge"], None).await?;
    }
    let addr = format!("{}/{}", cidr.gateway(), cidr.prefix);
    run_cmd("ip", &["addr", "replace", &addr, "dev", bridge], None).await?;
    run_cmd("ip", &["link", "set", bridge, "up"], None).await?;
    // Pod addresses of no node must never leave by the default route; the bridge's /24 (and other
    // nodes' routes) are more specific and win.
    run_cmd("ip", &["route", "replace", "unreachable", CLUSTER_CIDR], None).await?;
    // Forwarding between the bridge and the node's other interfaces (egress, other nodes' pods).
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| NetError { command: "write /proc/sys/net/ipv4/ip_forward".into(), message: e.to_string() })?;
    Ok(())
}

/// Replaces our NAT table in one atomic `nft` batch: masquerade pod traffic that leaves the cluster CIDR
/// through any interface but the bridge.
pub async fn ensure_masquerade(bridge: &str, cidr: PodCidr) -> Result<(), NetError> {
    let script = format!(
        "add table ip {NAT_TABLE}\n\
         delete table ip {NAT_TABLE}\n\
         table ip {NAT_TABLE} {{\n\
         \tcomment \"flotilla agent: masquerade for pod egress\"\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cidr} ip daddr != {CLUSTER_CIDR} oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n"
    );
    run_cmd("nft", &["-f", "-"], Some(&script)).await.map(drop)
}

/// Removes our NAT table (best effort).
pub fn remove_masquerade_blocking() {
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "ip", NAT_TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn docker_user_rules(cidr: PodCidr) -> [[String; 4]; 2] {
    let c = cidr.to_string();
    [["-s".into(), c.clone(), "-j".into(), "ACCEPT".into()], ["-d".into(), c, "-j".into(), "ACCEPT".into()]]
}

/// Adds accept rules for the pod CIDR to Docker's `DOCKER-USER` chain when that chain exists (Docker's
/// FORWARD policy is DROP and bridged traffic passes through it). Returns whether rules were added.
pub async fn ensure_docker_user(cidr: PodCidr) -> Result<bool, NetError> {
    if run_cmd("iptables", &["-w", "-n", "-L", "DOCKER-USER"], None).await.is_err() {
        return Ok(false);
    }
    for rule in docker_user_rules(cidr) {
        let r: Vec<&str> = rule.iter().map(String::as_str).collect();
        let mut check = vec!["-w", "-C", "DOCKER-USER"];
        check.extend(&r);
        if run_cmd("iptables", &check, None).await.is_err() {
            let mut insert = vec!["-w", "-I", "DOCKER-USER", "1"];
            insert.extend(&r);
            run_cmd("iptables", &insert, None).await?;
        }
    }
    Ok(true)
}

/// Removes the rules `ensure_docker_user` added (blocking: it runs from a drop guard at shutdown).
pub fn remove_docker_user_blocking(cidr: PodCidr) {
    for rule in docker_user_rules(cidr) {
        let mut args: Vec<String> = vec!["-w".into(), "-D".into(), "DOCKER-USER".into()];
        args.extend(rule);
        let _ = std::process::Command::new("iptables").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The host side name of a pod's veth: stable per pod uid, at most 15 bytes.
pub fn host_veth_name(uid: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(uid.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("vflt{hex}")
}

/// Wires a pod: a veth pair whose peer becomes `eth0` in the namespace of process `pid` with `ip`, default
/// route via the bridge; the host end joins the bridge (hairpin on, so a pod reaches itself through a
/// service address).
pub async fn attach_pod(bridge: &str, uid: &str, pid: i64, ip: Ipv4Addr, cidr: PodCidr) -> Result<(), NetError> {
    let host = host_veth_name(uid);
    let pid_s = pid.to_string();
    let _ = run_cmd("ip", &["link", "del", &host], None).await;
    // A stale neighbour entry for this address (an earlier pod's MAC) would black-hole node -> pod traffic
    // until it expires.
    forget_neighbour(bridge, ip).await;
    run_cmd("ip", &["link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &pid_s], None).await?;
    run_cmd("ip", &["link", "set", &host, "master", bridge], None).await?;
    run_cmd("ip", &["link", "set", &host, "type", "bridge_slave", "hairpin", "on"], None).await?;
    run_cmd("ip", &["link", "set", &host, "up"], None).await?;
    let netns = format!("--net=/proc/{pid}/ns/net");
    let batch = format!(
        "link set lo up\naddr add {ip}/{prefix} dev eth0\nlink set eth0 up\nroute replace default via {gw} dev eth0\n",
        prefix = cidr.prefix,
        gw = cidr.gateway()
    );
    run_cmd("nsenter", &[&netns, "ip", "-batch", "-"], Some(&batch)).await?;
    Ok(())
}

/// Removes a pod's host veth if it is still there (deleting the pause container's namespace removes it too)
/// and the node's neighbour entry for its address.
pub async fn detach_pod(bridge: &str, uid: &str, ip: Option<Ipv4Addr>) {
    let host = host_veth_name(uid);
    if run_cmd("ip", &["link", "show", &host], None).await.is_ok() {
        let _ = run_cmd("ip", &["link", "del", &host], None).await;
    }
    if let Some(ip) = ip {
        forget_neighbour(bridge, ip).await;
    }
}

/// Deletes the neighbour (ARP) entry of `ip` on the bridge; absent entries are fine.
async fn forget_neighbour(bridge: &str, ip: Ipv4Addr) {
    let _ = run_cmd("ip", &["neigh", "del", &ip.to_string(), "dev", bridge], None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_ifnamsiz() {
        let name = host_veth_name("6b1f7a3e-0000-4000-8000-000000000000");
        assert_eq!(name.len(), 14);
        assert!(name.starts_with("vflt"));
        assert_eq!(name, host_veth_name("6b1f7a3e-0000-4000-8000-000000000000"));
    }
}
