//! The dev cluster's wires: a bridge on the host, and per node a network namespace joined to it by a veth.
//! Node addresses come from a /24 that overlaps nothing the host routes, so a dev cluster never shadows
//! a real network. Between nodes the traffic is bridged; when Docker's FORWARD policy (with br_netfilter)
//! would drop bridged frames, one accept rule for the bridge goes into `DOCKER-USER`.

use std::net::Ipv4Addr;

use anyhow::bail;

use super::procs::run;
use super::state::{NodeState, State};

/// Where dev clusters take their /24 from: 172.30.0.0/16 first (Docker's default pools stop at 172.29 in
/// practice, and 172.17-19 are in use here), then 10.200.0.0/16; never the pod (10.42/16) or service
/// (10.43/16) ranges.
const POOLS: [(u8, u8); 2] = [(172, 30), (10, 200)];

/// The first /24 of the pools that overlaps no route or address of the host.
pub async fn free_subnet() -> anyhow::Result<Ipv4Addr> {
    let routes = run("ip", &["-4", "-o", "route", "show", "table", "all"]).await?;
    let addrs = run("ip", &["-4", "-o", "addr", "show"]).await?;
    let taken: Vec<(u32, u32)> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit())))
        .chain(addrs.lines().filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1)))
        .filter_map(parse_cidr)
        .filter(|&(_, len)| len > 0)
        .collect();
    for (a, b) in POOLS {
        for c in 0..=255u8 {
            let candidate = u32::from(Ipv4Addr::new(a, b, c, 0));
            if !taken.iter().any(|&(net, len)| overlaps((candidate, 24), (net, len))) {
                return Ok(Ipv4Addr::from(candidate));
            }
        }
    }
    bail!("no free /24 in 172.30.0.0/16 or 10.200.0.0/16 for the dev cluster's nodes; hint: remove unused bridges")
}

fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.split_once('/').unwrap_or((text, "32"));
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// The host's bridge with the gateway address; plus the `DOCKER-USER` accept when that chain exists.
pub async fn create_bridge(state: &mut State) -> anyhow::Result<()> {
    let gateway = format!("{}/24", state.gateway());
    run("ip", &["link", "add", &state.bridge, "type", "bridge"]).await?;
    run("ip", &["addr", "add", &gateway, "dev", &state.bridge]).await?;
    run("ip", &["link", "set", &state.bridge, "up"]).await?;
    if run("iptables", &["-w", "-n", "-L", "DOCKER-USER"]).await.is_ok() {
        run("iptables", &docker_user_rule("-I", &state.bridge)).await?;
        state.docker_user_rule = true;
        state.save()?;
    }
    Ok(())
}

fn docker_user_rule<'a>(op: &'a str, bridge: &'a str) -> [&'a str; 9] {
    ["-w", op, "DOCKER-USER", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
}

/// Node `index`: its namespace, the veth pair (host end on the bridge, `eth0` inside), its address and a
/// default route via the bridge.
pub async fn create_node(state: &State, index: usize) -> anyhow::Result<()> {
    let node = &state.nodes[index];
    run("ip", &["netns", "add", &node.netns]).await?;
    run("ip", &["link", "add", &node.veth, "type", "veth", "peer", "name", "eth0", "netns", &node.netns]).await?;
    run("ip", &["link", "set", &node.veth, "master", &state.bridge]).await?;
    run("ip", &["link", "set", &node.veth, "up"]).await?;
    let batch = format!(
        "link set lo up\naddr add {ip}/24 dev eth0\nlink set eth0 up\nroute add default via {gw}\n",
        ip = node.ip,
        gw = state.gateway()
    );
    super::procs::run_stdin("ip", &["-n", &node.netns, "-batch", "-"], &batch).await?;
    Ok(())
}

/// Deletes a node's namespace (its veth goes with it). Best effort.
pub async fn remove_node(node: &NodeState) {
    let _ = run("ip", &["netns", "del", &node.netns]).await;
    let _ = run("ip", &["link", "del", &node.veth]).await;
}

/// Deletes the bridge and the `DOCKER-USER` rule. Best effort.
pub async fn remove_bridge(state: &State) {
    let _ = run("ip", &["link", "del", &state.bridge]).await;
    if state.docker_user_rule {
        let _ = run("iptables", &docker_user_rule("-D", &state.bridge)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap() {
        let net = |s| parse_cidr(s).unwrap();
        assert!(overlaps(net("172.30.0.0/24"), net("172.16.0.0/12")));
        assert!(overlaps(net("172.30.5.0/24"), net("172.30.5.7")));
        assert!(!overlaps(net("172.30.5.0/24"), net("172.30.6.0/24")));
        assert!(!overlaps(net("10.200.0.0/24"), net("10.42.0.0/16")));
    }
}
