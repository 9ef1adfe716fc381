//! Host-local IP allocation (round robin) over the node's pod /24, persisted as JSON in `<data-dir>/agent/ipam.json` so a
//! restarted agent keeps the addresses of the pods it adopts. `.0` is the network, `.1` the bridge, the
//! broadcast address is never handed out.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A node's pod subnet, e.g. 10.42.0.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl PodCidr {
    /// Parses `a.b.c.d/n` (IPv4 only, prefix 8..=30).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if !(8..=30).contains(&prefix) {
            return None;
        }
        let mask = u32::MAX << (32 - prefix);
        Some(Self { network: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    /// The first usable address, held by the bridge and used as pods' gateway and DNS server.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    cidr: String,
    /// address -> pod uid
    allocations: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out: the next search starts after it (round robin, as CNI's host-local),
    /// so a new pod does not get the address a deleted pod had a moment ago (neighbour caches and
    /// conntrack entries on the node still point at the old pod).
    #[serde(default)]
    last: Option<Ipv4Addr>,
}

/// The allocator; every change is written to disk (write + rename) before it is used.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    cidr: PodCidr,
    state: State,
}

impl Ipam {
    /// Loads the state under `dir`; allocations for another CIDR (the node got a new /24) are dropped.
    pub fn open(dir: &Path, cidr: PodCidr) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("ipam.json");
        let mut state: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        if state.cidr != cidr.to_string() {
            state = State { cidr: cidr.to_string(), ..State::default() };
        }
        Ok(Self { path, cidr, state })
    }

    /// The address of `uid`, allocating the lowest free one if it has none.
    pub fn allocate(&mut self, uid: &str) -> io::Result<Ipv4Addr> {
        if let Some(ip) = self.lookup(uid) {
            return Ok(ip);
        }
        let base = u32::from(self.cidr.network);
        let usable = self.cidr.size() - 3; // network, gateway, broadcast
        let start = match self.state.last {
            Some(last) if u32::from(last) > base + 1 && u32::from(last) < base + self.cidr.size() - 1 => {
                u32::from(last) - base - 2 + 1
            }
            _ => 0,
        };
        let ip = (0..usable)
            .map(|i| Ipv4Addr::from(base + 2 + (start + i) % usable))
            .find(|ip| !self.state.allocations.contains_key(ip))
            .ok_or_else(|| io::Error::other(format!("pod CIDR {} is full", self.cidr)))?;
        self.state.allocations.insert(ip, uid.to_string());
        self.state.last = Some(ip);
        self.save()?;
        Ok(ip)
    }

    pub fn lookup(&self, uid: &str) -> Option<Ipv4Addr> {
        self.state.allocations.iter().find(|(_, u)| u.as_str() == uid).map(|(ip, _)| *ip)
    }

    /// Frees the address of `uid` (no-op when it has none).
    pub fn release(&mut self, uid: &str) -> io::Result<()> {
        let before = self.state.allocations.len();
        self.state.allocations.retain(|_, u| u != uid);
        if self.state.allocations.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Uids holding an address.
    pub fn owners(&self) -> Vec<String> {
        self.state.allocations.values().cloned().collect()
    }

    fn save(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let cidr = PodCidr::parse("10.42.3.7/24").unwrap();
        assert_eq!(cidr.to_string(), "10.42.3.0/24");
        assert_eq!(cidr.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        let mut ipam = Ipam::open(dir.path(), cidr).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(ipam.allocate("b").unwrap(), Ipv4Addr::new(10, 42, 3, 3));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 42, 3, 2));
        ipam.release("a").unwrap();
        let mut again = Ipam::open(dir.path(), cidr).unwrap();
        assert_eq!(again.lookup("b"), Some(Ipv4Addr::new(10, 42, 3, 3)));
        // Round robin: the freed .2 is not reused while later addresses are free.
        assert_eq!(again.allocate("c").unwrap(), Ipv4Addr::new(10, 42, 3, 4));
        let other = Ipam::open(dir.path(), PodCidr::parse("10.42.4.0/24").unwrap()).unwrap();
        assert!(other.owners().is_empty());
    }

    #[test]
    fn full_range_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), PodCidr::parse("10.0.0.0/30").unwrap()).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(ipam.allocate("b").is_err());
    }

    #[test]
    fn wraps_around_to_freed_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), PodCidr::parse("10.0.0.0/29").unwrap()).unwrap();
        let all: Vec<_> = ["a", "b", "c", "d", "e"].iter().map(|u| ipam.allocate(u).unwrap()).collect();
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 0, 0, 6)));
        assert!(ipam.allocate("f").is_err());
        ipam.release("b").unwrap();
        assert_eq!(ipam.allocate("g").unwrap(), Ipv4Addr::new(10, 0, 0, 3));
    }
}
