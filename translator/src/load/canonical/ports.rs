//! Short port syntax, `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]`, as long-form
//! mappings; follows compose-go `transform/ports.go` and `types.ParsePortConfig`, which parse with
//! docker/go-connections `nat.ParsePortSpec` (v0.6.0, the version docker compose 2.40 ships).
//!
//! Two things surprise: a container port range becomes one entry per port, **sorted as text** by
//! `PORT/PROTOCOL` (`"8-10:8-10"` gives 10, 8, 9); and a host range for a single container port is kept
//! as a range in `published` (`"3000-3005:80"`), for the engine to pick a free port from.

use std::net::IpAddr;

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_int, as_string, go_type, map_node, plain_node, str_node};
use crate::load::yaml::{Node, Value};

/// One port of the long syntax, as the short syntax describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Empty when not given.
    pub host_ip: String,
    pub target: u32,
    /// A port, a `START-END` range, or empty when not given.
    pub published: String,
    pub protocol: String,
}

impl PortConfig {
    /// The long-syntax mapping, keys as compose's `encode` writes them (empty ones left out).
    fn to_node(&self, loc: &crate::source::Location) -> Node {
        let mut entries = vec![("mode", str_node("ingress", loc))];
        if !self.host_ip.is_empty() {
            entries.push(("host_ip", str_node(&self.host_ip, loc)));
        }
        entries.push(("target", plain_node(self.target.to_string(), loc)));
        if !self.published.is_empty() {
            entries.push(("published", str_node(&self.published, loc)));
        }
        entries.push(("protocol", str_node(&self.protocol, loc)));
        map_node(entries, loc)
    }
}

/// `services.*.ports`: every short entry replaced by the mappings it stands for, in place.
pub(super) fn ports(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    let Value::Seq(items) = &node.value else {
        return Err(error(node, path, format!("invalid type {} for port", go_type(node))));
    };
    let mut result = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let parsed = if let Some(port) = as_int(item) {
            parse_port_config(&port.to_string())
        } else if let Some(spec) = as_string(item) {
            match parse_port_config(spec) {
                // The whole list stays as written: it may still hold `${VAR}`.
                Err(_) if ignore => return Ok(()),
                parsed => parsed,
            }
        } else if item.as_map().is_some() {
            result.push(item.clone());
            continue;
        } else {
            return Err(error(item, &path.index(i), format!("invalid type {} for port", go_type(item))));
        };
        let parsed = parsed.map_err(|message| {
            error(item, &path.index(i), message)
                .with_hint("write `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]` or use the long syntax")
        })?;
        result.extend(parsed.iter().map(|port| port.to_node(&item.loc)));
    }
    node.value = Value::Seq(result);
    Ok(())
}

/// The long-form ports one short entry stands for, or go-connections' error message.
pub fn parse_port_config(spec: &str) -> Result<Vec<PortConfig>, String> {
    let mut ports = parse_port_spec(spec)?;
    // compose-go collects the ports in a map keyed "PORT/PROTO" and walks its keys in string order.
    ports.sort_by_cached_key(|p| format!("{}/{}", p.target, p.protocol));
    Ok(ports)
}

fn parse_port_spec(raw: &str) -> Result<Vec<PortConfig>, String> {
    let (ip, host_port, container_port) = split_parts(raw);
    let (container_port, protocol) = match container_port.split_once('/') {
        Some(("", _)) => ("", ""),
        Some((port, "")) => (port, "tcp"),
        Some((port, protocol)) => (port, protocol),
        None if container_port.is_empty() => ("", ""),
        None => (container_port, "tcp"),
    };
    let protocol = protocol.to_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {protocol}"));
    }
    let ip = if ip.starts_with('[') { strip_brackets(&ip)? } else { ip };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) =
        parse_port_range(container_port).ok_or_else(|| format!("invalid containerPort: {container_port}"))?;
    let (mut host_start, mut host_end) = (0, 0);
    if !host_port.is_empty() {
        (host_start, host_end) = parse_port_range(host_port).ok_or_else(|| format!("invalid hostPort: {host_port}"))?;
        // A host range is allowed against a single container port: the engine picks one from it.
        if end - start != host_end - host_start && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            ));
        }
    }
    let count = end - start + 1;
    Ok((0..count)
        .map(|i| {
            let mut published = String::new();
            if !host_port.is_empty() {
                published = (host_start + i).to_string();
                if count == 1 && host_start != host_end {
                    published = format!("{published}-{host_end}");
                }
            }
            PortConfig { host_ip: ip.clone(), target: start + i, published, protocol: protocol.clone() }
        })
        .collect())
}

/// `IP:HOST:CONTAINER`, where an IPv6 address brings its own colons.
fn split_parts(raw: &str) -> (String, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [container] => (String::new(), "", container),
        [host, container] => (String::new(), host, container),
        [ip @ .., host, container] => (ip.join(":"), host, container),
        [] => (String::new(), "", ""),
    }
}

/// `[::1]` → `::1`, with Go's `net.SplitHostPort` complaints for malformed brackets.
fn strip_brackets(ip: &str) -> Result<String, String> {
    let address = format!("{ip}:");
    let fail = |why: &str| format!("invalid IP address {ip}: address {address}: {why}");
    let Some(end) = address.find(']') else { return Err(fail("missing ']' in address")) };
    if end + 1 != address.len() - 1 {
        return Err(fail(if address.as_bytes().get(end + 1) == Some(&b':') {
            "too many colons in address"
        } else {
            "missing port in address"
        }));
    }
    let host = &address[1..end];
    if host.contains('[') {
        return Err(fail("unexpected '[' in address"));
    }
    Ok(host.to_owned())
}

/// `80` or `8000-8010`: decimal, at most 65535, end not before start. Text after a second `-` is
/// ignored, as go-connections ignores it.
fn parse_port_range(ports: &str) -> Option<(u32, u32)> {
    let port = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = s.trim_start_matches('0');
        if trimmed.len() > 5 {
            return None;
        }
        trimmed.parse::<u32>().ok().or(Some(0)).filter(|p| *p <= 65535)
    };
    match ports.split('-').collect::<Vec<_>>().as_slice() {
        [single] => port(single).map(|p| (p, p)),
        [start, end, ..] => {
            let (start, end) = (port(start)?, port(end)?);
            (end >= start).then_some((start, end))
        }
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host_ip: &str, target: u32, published: &str, protocol: &str) -> PortConfig {
        PortConfig { host_ip: host_ip.into(), target, published: published.into(), protocol: protocol.into() }
    }

    #[test]
    fn parses_short_syntax() {
        let cases: &[(&str, Vec<PortConfig>)] = &[
            ("80", vec![config("", 80, "", "tcp")]),
            ("8080:80", vec![config("", 80, "8080", "tcp")]),
            ("127.0.0.1:8080:80", vec![config("127.0.0.1", 80, "8080", "tcp")]),
            ("127.0.0.1:8081:81", vec![config("127.0.0.1", 81, "8081", "tcp")]),
            ("127.0.0.1::80/UDP", vec![config("127.0.0.1", 80, "", "udp")]),
            ("[::1]:81:81", vec![config("::1", 81, "81", "tcp")]),
            ("::1:81:81", vec![config("::1", 81, "81", "tcp")]),
            ("3000-3005:4000", vec![config("", 4000, "3000-3005", "tcp")]),
            ("80/", vec![config("", 80, "", "tcp")]),
            ("0080:080", vec![config("", 80, "80", "tcp")]),
            (
                "0.0.0.0:1234-1235:3333-3334/tcp",
                vec![config("0.0.0.0", 3333, "1234", "tcp"), config("0.0.0.0", 3334, "1235", "tcp")],
            ),
            // Sorted as text, as compose-go sorts its map keys.
            ("8-10:8-10", vec![config("", 10, "10", "tcp"), config("", 8, "8", "tcp"), config("", 9, "9", "tcp")]),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_port_config(spec).as_ref(), Ok(want), "{spec}");
        }
    }

    #[test]
    fn refuses_like_go_connections() {
        let cases = [
            ("127.0.1:8080:80", "invalid IP address: 127.0.1"),
            ("8080:80/foo", "invalid proto: foo"),
            ("8080:", "invalid proto: "),
            ("8080-8081:80-83", "invalid ranges specified for container and host Ports: 80-83 and 8080-8081"),
            ("99999:80", "invalid hostPort: 99999"),
            ("a:80", "invalid hostPort: a"),
            ("80-70", "invalid containerPort: 80-70"),
            ("-1", "invalid containerPort: -1"),
            ("[::1:80:80", "invalid IP address [::1: address [::1:: missing ']' in address"),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_port_config(spec), Err(want.to_owned()), "{spec}");
        }
    }
}
