//! The ruleset as data: [`render`] turns a [`Model`] into a [`Ruleset`] (per-service chains and map
//! elements), and [`full_sync`] / [`partial_sync`] turn rulesets into one nftables transaction.
//!
//! Everything here is pure: no `nft`, no I/O. The shape follows kube-proxy's nftables mode and is
//! documented, hook by hook, in `netproxy/README.md`. Rules and elements use the `nftables` crate's JSON
//! types; only the declaration of the verdict maps is hand-written JSON, because that crate's `SetType`
//! has no `verdict` (see [`TxObject::VerdictMap`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, NgMode, Numgen, Payload,
    PayloadField, Prefix, SetItem, Verdict,
};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Rule, Table};
use nftables::stmt::{JumpTarget, Mangle, Match, NAT, NATFlag, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use sha2::{Digest, Sha256};

use crate::model::{Model, Protocol, ServicePort};

/// The bit kube-proxy uses to mark packets for masquerading (1 << 14). Private to this table.
pub const MASQ_MARK: u32 = 0x4000;

/// nftables' named priorities (see the nftables wiki, "Netfilter hooks").
pub const PRIO_DSTNAT: i32 = -100;
pub const PRIO_SRCNAT: i32 = 100;
/// Filter chains run just before DNAT, so a service without endpoints is rejected on its ClusterIP.
pub const PRIO_FILTER: i32 = PRIO_DSTNAT - 10;

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const SERVICES_CHAIN: &str = "services";
pub const MARK_FOR_MASQ_CHAIN: &str = "mark-for-masquerade";
pub const MASQUERADING_CHAIN: &str = "masquerading";
pub const REJECT_CHAIN: &str = "reject-chain";
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";

/// What the rendering needs besides the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The table's name (family `ip`); must start with `flotilla`, the only tables we touch.
    pub table: String,
    /// The pod CIDR of the whole cluster (10.42.0.0/16). Traffic to a ClusterIP from outside it is
    /// masqueraded so replies come back through this node; `None` masquerades all service traffic.
    pub cluster_cidr: Option<(Ipv4Addr, u8)>,
    /// The service CIDR (10.43.0.0/16): excluded from node-port matching, because service addresses are
    /// local addresses of the node (they have a local route) but are not node addresses.
    pub service_cidr: Option<(Ipv4Addr, u8)>,
}

impl RenderConfig {
    pub fn new(table: impl Into<String>) -> Self {
        RenderConfig { table: table.into(), cluster_cidr: None, service_cidr: None }
    }
}

/// Parses `a.b.c.d/len`.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((ip.parse().ok()?, len))
}

/// Key of the `service-ips` and `no-endpoint-services` maps.
pub type IpKey = (Ipv4Addr, Protocol, u16);
/// Key of the `service-nodeports` and `no-endpoint-nodeports` maps.
pub type PortKey = (Protocol, u16);

/// The per-service part of the table: what changes when Services and EndpointSlices change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Service, external and endpoint chains with their rules.
    pub chains: BTreeMap<String, Vec<Vec<Statement<'static>>>>,
    /// ClusterIP . proto . port → service chain.
    pub service_ips: BTreeMap<IpKey, String>,
    /// proto . port on the node's addresses → external chain.
    pub nodeports: BTreeMap<PortKey, String>,
    /// ClusterIP . proto . port of service ports without ready endpoints (rejected).
    pub no_endpoint_services: BTreeSet<IpKey>,
    /// Node ports without ready endpoints (rejected).
    pub no_endpoint_nodeports: BTreeSet<PortKey>,
}

/// kube-proxy's chain-name hash: the first 8 characters of base32(sha256(id)), so a name is unique even
/// if ids are later truncated, and the readable id follows it.
fn hash8(id: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(id.as_bytes());
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

pub fn service_chain(port: &ServicePort) -> String {
    let id = port.id();
    format!("service-{}-{id}", hash8(&id))
}

pub fn external_chain(port: &ServicePort) -> String {
    let id = port.id();
    format!("external-{}-{id}", hash8(&id))
}

pub fn endpoint_chain(port: &ServicePort, ep: &std::net::SocketAddrV4) -> String {
    let id = format!("{}__{}/{}", port.id(), ep.ip(), ep.port());
    format!("endpoint-{}-{id}", hash8(&id))
}

// ---- small expression helpers -------------------------------------------------------------------

fn s(text: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(text.into()))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: Cow::Borrowed(protocol),
        field: Cow::Borrowed(field),
    })))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn prefix(net: (Ipv4Addr, u8)) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix { addr: Box::new(s(net.0.to_string())), len: net.1.into() }))
}

fn matches(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn jump(target: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget { target: Cow::Owned(target.to_string()) })
}

fn goto(target: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget { target: Cow::Owned(target.to_string()) })
}

fn goto_verdict(target: &str) -> Expression<'static> {
    Expression::Verdict(Verdict::Goto(JumpTarget { target: Cow::Owned(target.to_string()) }))
}

/// `ip daddr . meta l4proto . th dport`
fn daddr_proto_port() -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        payload("ip", "daddr"),
        meta(MetaKey::L4proto),
        payload("th", "dport"),
    ]))
}

/// `meta l4proto . th dport`
fn proto_port() -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![meta(MetaKey::L4proto), payload("th", "dport")]))
}

fn vmap_named(key: Expression<'static>, map: &str) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap { key, data: s(format!("@{map}")) })
}

/// `fib daddr type local ip daddr != 127.0.0.0/8 [ip daddr != <service cidr>]`: a packet for one of the
/// node's own addresses, not loopback (no `route_localnet`, CVE-2020-8558) and not a service address.
fn node_address_match(cfg: &RenderConfig) -> Vec<Statement<'static>> {
    let mut out = vec![
        matches(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: HashSet::from([FibFlag::Daddr]),
            })),
            Operator::EQ,
            s("local"),
        ),
        matches(payload("ip", "daddr"), Operator::NEQ, prefix((Ipv4Addr::new(127, 0, 0, 0), 8))),
    ];
    if let Some(cidr) = cfg.service_cidr {
        out.push(matches(payload("ip", "daddr"), Operator::NEQ, prefix(cidr)));
    }
    out
}

fn ct_state_new() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::CT(nftables::expr::CT {
            key: Cow::Borrowed("state"),
            family: None,
            dir: None,
        })),
        Operator::IN,
        s("new"),
    )
}

fn proto_key(p: Protocol) -> Expression<'static> {
    s(p.as_str())
}

fn ip_key(k: &IpKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![s(k.0.to_string()), proto_key(k.1), Expression::Number(k.2.into())]))
}

fn port_key(k: &PortKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![proto_key(k.0), Expression::Number(k.1.into())]))
}

// ---- rendering ----------------------------------------------------------------------------------

/// Renders the per-service part of the table from the model. Pure.
pub fn render(model: &Model, cfg: &RenderConfig) -> Ruleset {
    let mut rs = Ruleset::default();
    for port in model.ports.values() {
        let externals = port.external_ports();
        let pinned = port.pinned_port();
        if port.endpoints.is_empty() {
            // No ready endpoint: reject at once (filter hooks), so clients fail instead of timing out.
            for ip in &port.cluster_ips {
                rs.no_endpoint_services.insert((*ip, port.protocol, port.port));
            }
            for p in externals {
                rs.no_endpoint_nodeports.insert((port.protocol, p));
            }
            if let Some((ip, p)) = pinned {
                rs.no_endpoint_services.insert((ip, port.protocol, p));
            }
            continue;
        }
        let svc_chain = service_chain(port);
        let mut svc_rules = Vec::new();
        // Traffic to the ClusterIP from outside the pod network (the node itself, other hosts) is
        // masqueraded, so the endpoint's reply comes back through this node and gets un-DNATed.
        let mark = match cfg.cluster_cidr {
            Some(cidr) => vec![matches(payload("ip", "saddr"), Operator::NEQ, prefix(cidr)), jump(MARK_FOR_MASQ_CHAIN)],
            None => vec![jump(MARK_FOR_MASQ_CHAIN)],
        };
        svc_rules.push(mark);
        let mut arms = Vec::new();
        for (i, ep) in port.endpoints.iter().enumerate() {
            let chain = endpoint_chain(port, ep);
            arms.push(SetItem::Mapping(Expression::Number(i as u32), goto_verdict(&chain)));
            rs.chains.insert(
                chain,
                vec![
                    // Hairpin: a pod reaching itself through its service must see the node as the source,
                    // or it would answer itself directly and the connection would not match.
                    vec![
                        matches(payload("ip", "saddr"), Operator::EQ, s(ep.ip().to_string())),
                        jump(MARK_FOR_MASQ_CHAIN),
                    ],
                    vec![
                        matches(meta(MetaKey::L4proto), Operator::EQ, proto_key(port.protocol)),
                        Statement::DNAT(Some(NAT {
                            addr: Some(s(ep.ip().to_string())),
                            family: None,
                            port: Some(Expression::Number(ep.port().into())),
                            flags: None,
                        })),
                    ],
                ],
            );
        }
        svc_rules.push(vec![Statement::VerdictMap(VerdictMap {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: port.endpoints.len() as u32,
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(arms)),
        })]);
        rs.chains.insert(svc_chain.clone(), svc_rules);
        for ip in &port.cluster_ips {
            rs.service_ips.insert((*ip, port.protocol, port.port), svc_chain.clone());
        }
        if !externals.is_empty() || pinned.is_some() {
            let ext = external_chain(port);
            // Traffic from outside always goes through the node (Cluster traffic policy): masquerade it.
            rs.chains.insert(ext.clone(), vec![vec![jump(MARK_FOR_MASQ_CHAIN)], vec![goto(&svc_chain)]]);
            for p in externals {
                rs.nodeports.entry((port.protocol, p)).or_insert_with(|| ext.clone());
            }
            // A compose port published on one host address is answered on that address only.
            if let Some((ip, p)) = pinned {
                rs.service_ips.entry((ip, port.protocol, p)).or_insert_with(|| ext.clone());
            }
        }
    }
    rs
}

// ---- transactions -------------------------------------------------------------------------------

/// One command of a transaction. All but the verdict-map declarations are the `nftables` crate's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxObject {
    Nf(NfObject<'static>),
    /// `add map ip <table> <name> { type <key> : verdict; }`, written by hand because the crate's
    /// `SetType` cannot say `verdict`.
    VerdictMap {
        table: String,
        name: String,
        key: Vec<&'static str>,
        comment: &'static str,
    },
}

/// An nftables transaction: applied as one `nft -j -f -` run, so it applies entirely or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub objects: Vec<TxObject>,
}

impl Transaction {
    fn cmd(&mut self, cmd: NfCmd<'static>) {
        self.objects.push(TxObject::Nf(NfObject::CmdObject(cmd)));
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The libnftables JSON document (`{"nftables": [...]}`), as text: what `nft -j -f -` reads.
    /// Written object by object, without an intermediate `serde_json::Value` (several times faster
    /// for thousands of services).
    pub fn to_json_string(&self) -> String {
        let mut out = String::from(r#"{"nftables":["#);
        for (i, o) in self.objects.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match o {
                TxObject::Nf(obj) => out.push_str(&serde_json::to_string(obj).expect("nftables objects serialize")),
                TxObject::VerdictMap { table, name, key, comment } => {
                    let key = if key.len() == 1 { serde_json::json!(key[0]) } else { serde_json::json!(key) };
                    let map = serde_json::json!({
                        "add": {"map": {
                            "family": "ip", "table": table, "name": name,
                            "type": key, "map": "verdict", "comment": comment,
                        }}
                    });
                    out.push_str(&map.to_string());
                }
            }
        }
        out.push_str("]}");
        out
    }

    /// The same document as a `serde_json::Value` (for tests and inspection).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_json_string()).expect("our own JSON parses")
    }
}

fn table_obj(cfg: &RenderConfig) -> Table<'static> {
    Table { family: NfFamily::IP, name: Cow::Owned(cfg.table.clone()), handle: None }
}

fn chain_obj(cfg: &RenderConfig, name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: Cow::Owned(cfg.table.clone()),
        name: Cow::Owned(name.to_string()),
        ..Default::default()
    }
}

fn base_chain(cfg: &RenderConfig, name: &str, type_: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        _type: Some(type_),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..chain_obj(cfg, name)
    }
}

fn rule_obj(cfg: &RenderConfig, chain: &str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: Cow::Owned(cfg.table.clone()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        ..Default::default()
    }
}

fn element(
    cfg: &RenderConfig,
    map: &str,
    key: Expression<'static>,
    value: Option<Expression<'static>>,
) -> Element<'static> {
    let elem = match value {
        Some(v) => Expression::List(vec![key, v]),
        None => key,
    };
    Element {
        family: NfFamily::IP,
        table: Cow::Owned(cfg.table.clone()),
        name: Cow::Owned(map.to_string()),
        elem: Cow::Owned(vec![elem]),
    }
}

/// A fixed chain: name, hook (type, hook, priority) if it is a base chain, and rules.
type BaseChain = (&'static str, Option<(NfChainType, NfHook, i32)>, Vec<Vec<Statement<'static>>>);

/// The fixed part of the table: hooks, dispatch, masquerading and rejecting.
fn base(cfg: &RenderConfig, tx: &mut Transaction) {
    let add = |tx: &mut Transaction, o: NfListObject<'static>| tx.cmd(NfCmd::Add(o));
    for (name, key, comment) in [
        (SERVICE_IPS, vec!["ipv4_addr", "inet_proto", "inet_service"], "ClusterIP . protocol . port -> service chain"),
        (SERVICE_NODEPORTS, vec!["inet_proto", "inet_service"], "protocol . port on node addresses -> external chain"),
        (
            NO_ENDPOINT_SERVICES,
            vec!["ipv4_addr", "inet_proto", "inet_service"],
            "ClusterIP ports without ready endpoints",
        ),
        (NO_ENDPOINT_NODEPORTS, vec!["inet_proto", "inet_service"], "node ports without ready endpoints"),
    ] {
        tx.objects.push(TxObject::VerdictMap { table: cfg.table.clone(), name: name.into(), key, comment });
    }
    let chains: [BaseChain; 12] = [
        ("nat-prerouting", Some((NfChainType::NAT, NfHook::Prerouting, PRIO_DSTNAT)), vec![vec![jump(SERVICES_CHAIN)]]),
        ("nat-output", Some((NfChainType::NAT, NfHook::Output, PRIO_DSTNAT)), vec![vec![jump(SERVICES_CHAIN)]]),
        (
            "nat-postrouting",
            Some((NfChainType::NAT, NfHook::Postrouting, PRIO_SRCNAT)),
            vec![vec![jump(MASQUERADING_CHAIN)]],
        ),
        ("filter-input", Some((NfChainType::Filter, NfHook::Input, PRIO_FILTER)), {
            let mut rules = vec![
                vec![ct_state_new(), jump(NODEPORT_ENDPOINTS_CHECK)],
                vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)],
            ];
            // Service addresses have a local route, so whatever reaches input still addressed to one
            // (an unallocated address, an undeclared port) would otherwise meet the node's own
            // sockets: refuse it, as kube-proxy's cluster-ips-check does.
            if let Some(cidr) = cfg.service_cidr {
                rules.push(vec![
                    ct_state_new(),
                    matches(payload("ip", "daddr"), Operator::EQ, prefix(cidr)),
                    goto(REJECT_CHAIN),
                ]);
            }
            rules
        }),
        (
            "filter-forward",
            Some((NfChainType::Filter, NfHook::Forward, PRIO_FILTER)),
            vec![vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)]],
        ),
        (
            "filter-output",
            Some((NfChainType::Filter, NfHook::Output, PRIO_FILTER)),
            vec![vec![ct_state_new(), jump(SERVICE_ENDPOINTS_CHECK)]],
        ),
        (
            SERVICES_CHAIN,
            None,
            vec![vec![vmap_named(daddr_proto_port(), SERVICE_IPS)], {
                let mut r = node_address_match(cfg);
                r.push(vmap_named(proto_port(), SERVICE_NODEPORTS));
                r
            }],
        ),
        (SERVICE_ENDPOINTS_CHECK, None, vec![vec![vmap_named(daddr_proto_port(), NO_ENDPOINT_SERVICES)]]),
        (
            NODEPORT_ENDPOINTS_CHECK,
            None,
            vec![{
                let mut r = node_address_match(cfg);
                r.push(vmap_named(proto_port(), NO_ENDPOINT_NODEPORTS));
                r
            }],
        ),
        // `reject` is not a verdict, so the no-endpoint maps `goto` this chain.
        (REJECT_CHAIN, None, vec![vec![Statement::Reject(None)]]),
        (
            MARK_FOR_MASQ_CHAIN,
            None,
            vec![vec![Statement::Mangle(Mangle {
                key: meta(MetaKey::Mark),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                    meta(MetaKey::Mark),
                    Expression::Number(MASQ_MARK),
                ]))),
            })]],
        ),
        (
            MASQUERADING_CHAIN,
            None,
            vec![
                vec![
                    matches(
                        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                            meta(MetaKey::Mark),
                            Expression::Number(MASQ_MARK),
                        ))),
                        Operator::EQ,
                        Expression::Number(0),
                    ),
                    Statement::Return(None),
                ],
                vec![
                    Statement::Mangle(Mangle {
                        key: meta(MetaKey::Mark),
                        value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                            meta(MetaKey::Mark),
                            Expression::Number(MASQ_MARK),
                        ))),
                    }),
                    Statement::Masquerade(Some(NAT {
                        addr: None,
                        family: None,
                        port: None,
                        flags: Some(HashSet::from([NATFlag::FullyRandom])),
                    })),
                ],
            ],
        ),
    ];
    // Declare every chain before any rule, since rules jump to chains declared later.
    for (name, hook, _) in &chains {
        let c = match hook {
            Some((t, h, p)) => base_chain(cfg, name, *t, *h, *p),
            None => chain_obj(cfg, name),
        };
        add(tx, NfListObject::Chain(c));
    }
    for (name, _, rules) in chains {
        for r in rules {
            add(tx, NfListObject::Rule(rule_obj(cfg, name, r)));
        }
    }
}

fn add_chain_with_rules(
    cfg: &RenderConfig,
    tx: &mut Transaction,
    name: &str,
    rules: &[Vec<Statement<'static>>],
    flush: bool,
) {
    tx.cmd(NfCmd::Add(NfListObject::Chain(chain_obj(cfg, name))));
    if flush {
        tx.cmd(NfCmd::Flush(FlushObject::Chain(chain_obj(cfg, name))));
    }
    for r in rules {
        tx.cmd(NfCmd::Add(NfListObject::Rule(rule_obj(cfg, name, r.clone()))));
    }
}

/// The whole table, replacing whatever table of that name exists (`add` + `delete` + re-create in one
/// transaction, so there is never a moment without rules).
pub fn full_sync(cfg: &RenderConfig, rs: &Ruleset) -> Transaction {
    let mut tx = Transaction::default();
    tx.cmd(NfCmd::Add(NfListObject::Table(table_obj(cfg))));
    tx.cmd(NfCmd::Delete(NfListObject::Table(table_obj(cfg))));
    tx.cmd(NfCmd::Add(NfListObject::Table(table_obj(cfg))));
    base(cfg, &mut tx);
    // Chains first (endpoint chains are referenced by service chains, which are referenced by elements).
    for name in rs.chains.keys() {
        tx.cmd(NfCmd::Add(NfListObject::Chain(chain_obj(cfg, name))));
    }
    for (name, rules) in &rs.chains {
        for r in rules {
            tx.cmd(NfCmd::Add(NfListObject::Rule(rule_obj(cfg, name, r.clone()))));
        }
    }
    add_elements(cfg, &mut tx, rs, |_| true, |_| true, |_| true, |_| true);
    tx
}

fn add_elements(
    cfg: &RenderConfig,
    tx: &mut Transaction,
    rs: &Ruleset,
    ips: impl Fn(&IpKey) -> bool,
    nps: impl Fn(&PortKey) -> bool,
    ne_ips: impl Fn(&IpKey) -> bool,
    ne_nps: impl Fn(&PortKey) -> bool,
) {
    for (k, chain) in rs.service_ips.iter().filter(|(k, _)| ips(k)) {
        tx.cmd(NfCmd::Add(NfListObject::Element(element(cfg, SERVICE_IPS, ip_key(k), Some(goto_verdict(chain))))));
    }
    for (k, chain) in rs.nodeports.iter().filter(|(k, _)| nps(k)) {
        tx.cmd(NfCmd::Add(NfListObject::Element(element(
            cfg,
            SERVICE_NODEPORTS,
            port_key(k),
            Some(goto_verdict(chain)),
        ))));
    }
    for k in rs.no_endpoint_services.iter().filter(|k| ne_ips(k)) {
        tx.cmd(NfCmd::Add(NfListObject::Element(element(
            cfg,
            NO_ENDPOINT_SERVICES,
            ip_key(k),
            Some(goto_verdict(REJECT_CHAIN)),
        ))));
    }
    for k in rs.no_endpoint_nodeports.iter().filter(|k| ne_nps(k)) {
        tx.cmd(NfCmd::Add(NfListObject::Element(element(
            cfg,
            NO_ENDPOINT_NODEPORTS,
            port_key(k),
            Some(goto_verdict(REJECT_CHAIN)),
        ))));
    }
}

/// Only what changed between `old` (what the kernel holds) and `new`: new chains are added, changed
/// chains flushed and rewritten, map elements diffed (a changed value is deleted and re-added), and chains
/// that are gone flushed and deleted after the elements that pointed at them. Empty if nothing changed.
pub fn partial_sync(cfg: &RenderConfig, old: &Ruleset, new: &Ruleset) -> Transaction {
    let mut tx = Transaction::default();
    // 1. New and changed chains, declared before anything can point at them.
    for name in new.chains.keys().filter(|n| !old.chains.contains_key(*n)) {
        tx.cmd(NfCmd::Add(NfListObject::Chain(chain_obj(cfg, name))));
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            None => add_chain_with_rules(cfg, &mut tx, name, rules, false),
            Some(old_rules) if old_rules != rules => add_chain_with_rules(cfg, &mut tx, name, rules, true),
            Some(_) => {}
        }
    }
    // 2. Elements that are gone or whose value changed.
    let del = |tx: &mut Transaction, map: &str, key: Expression<'static>| {
        tx.cmd(NfCmd::Delete(NfListObject::Element(element(cfg, map, key, None))));
    };
    for (k, v) in &old.service_ips {
        if new.service_ips.get(k) != Some(v) {
            del(&mut tx, SERVICE_IPS, ip_key(k));
        }
    }
    for (k, v) in &old.nodeports {
        if new.nodeports.get(k) != Some(v) {
            del(&mut tx, SERVICE_NODEPORTS, port_key(k));
        }
    }
    for k in old.no_endpoint_services.difference(&new.no_endpoint_services) {
        del(&mut tx, NO_ENDPOINT_SERVICES, ip_key(k));
    }
    for k in old.no_endpoint_nodeports.difference(&new.no_endpoint_nodeports) {
        del(&mut tx, NO_ENDPOINT_NODEPORTS, port_key(k));
    }
    // 3. Elements that are new or changed.
    add_elements(
        cfg,
        &mut tx,
        new,
        |k| old.service_ips.get(k) != new.service_ips.get(k),
        |k| old.nodeports.get(k) != new.nodeports.get(k),
        |k| !old.no_endpoint_services.contains(k),
        |k| !old.no_endpoint_nodeports.contains(k),
    );
    // 4. Chains that are gone: flush all first (they may jump to each other), then delete.
    let gone: Vec<&String> = old.chains.keys().filter(|n| !new.chains.contains_key(*n)).collect();
    for name in &gone {
        tx.cmd(NfCmd::Flush(FlushObject::Chain(chain_obj(cfg, name))));
    }
    for name in &gone {
        tx.cmd(NfCmd::Delete(NfListObject::Chain(chain_obj(cfg, name))));
    }
    tx
}

/// Removes the table (used when the proxy stops for good, and by tests).
pub fn delete_table(table: &str) -> Transaction {
    let cfg = RenderConfig::new(table);
    let mut tx = Transaction::default();
    // `add` first so the delete cannot fail on a missing table.
    tx.cmd(NfCmd::Add(NfListObject::Table(table_obj(&cfg))));
    tx.cmd(NfCmd::Delete(NfListObject::Table(table_obj(&cfg))));
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    fn port(name: &str, ip: [u8; 4], eps: &[&str], lb: bool) -> ServicePort {
        ServicePort {
            namespace: "app".into(),
            service: name.into(),
            port_name: "80".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec![Ipv4Addr::from(ip)],
            node_port: lb.then_some(30080),
            load_balancer_port: lb.then_some(80),
            host_ip: None,
            endpoints: eps.iter().map(|e| e.parse::<SocketAddrV4>().unwrap()).collect(),
        }
    }

    fn model(ports: Vec<ServicePort>) -> Model {
        Model { ports: ports.into_iter().map(|p| (p.id(), p)).collect() }
    }

    fn cfg() -> RenderConfig {
        RenderConfig {
            table: "flotilla-test".into(),
            cluster_cidr: parse_cidr("10.42.0.0/16"),
            service_cidr: parse_cidr("10.43.0.0/16"),
        }
    }

    fn json(tx: &Transaction) -> String {
        tx.to_json().to_string()
    }

    #[test]
    fn chain_names_follow_kube_proxy() {
        let p = port("web", [10, 43, 0, 10], &["10.42.0.5:8080"], false);
        let name = service_chain(&p);
        assert!(name.starts_with("service-") && name.ends_with("-app/web/tcp/80"), "{name}");
        assert_eq!(name.len(), "service-".len() + 8 + 1 + "app/web/tcp/80".len());
        let ep = endpoint_chain(&p, &p.endpoints[0]);
        assert!(ep.ends_with("-app/web/tcp/80__10.42.0.5/8080"), "{ep}");
    }

    #[test]
    fn service_with_endpoints_dnats_through_numgen() {
        let rs =
            render(&model(vec![port("web", [10, 43, 0, 10], &["10.42.0.5:8080", "10.42.0.6:8080"], false)]), &cfg());
        let key = (Ipv4Addr::new(10, 43, 0, 10), Protocol::Tcp, 80);
        let chain = &rs.service_ips[&key];
        assert!(rs.no_endpoint_services.is_empty());
        assert_eq!(rs.chains.len(), 3, "one service chain and two endpoint chains");
        let rules = serde_json::to_string(&rs.chains[chain]).unwrap();
        assert!(rules.contains(r#""numgen":{"mode":"random","mod":2}"#), "{rules}");
        assert!(rules.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.42.0.0","len":16}},"op":"!="}}"#), "{rules}");
        let ep_rules: Vec<String> = rs
            .chains
            .iter()
            .filter(|(n, _)| n.starts_with("endpoint-"))
            .map(|(_, r)| serde_json::to_string(r).unwrap())
            .collect();
        let all = ep_rules.join("\n");
        assert!(all.contains(r#"{"dnat":{"addr":"10.42.0.5","port":8080}}"#), "{all}");
        assert!(all.contains(r#""right":"10.42.0.6","op":"=="}},{"jump":{"target":"mark-for-masquerade"}}"#), "{all}");
        assert!(rs.nodeports.is_empty());
    }

    #[test]
    fn service_without_endpoints_is_rejected() {
        let rs = render(&model(vec![port("db", [10, 43, 0, 11], &[], true)]), &cfg());
        assert!(rs.chains.is_empty());
        assert!(rs.service_ips.is_empty());
        assert!(rs.no_endpoint_services.contains(&(Ipv4Addr::new(10, 43, 0, 11), Protocol::Tcp, 80)));
        assert_eq!(rs.no_endpoint_nodeports, BTreeSet::from([(Protocol::Tcp, 80), (Protocol::Tcp, 30080)]));
        let full = json(&full_sync(&cfg(), &rs));
        assert!(full.contains(r#""name":"no-endpoint-services","elem":[[{"concat":["10.43.0.11","tcp",80]},{"goto":{"target":"reject-chain"}}]]"#), "{full}");
    }

    #[test]
    fn published_ports_go_through_the_external_chain() {
        let rs = render(&model(vec![port("web", [10, 43, 0, 10], &["10.42.0.5:8080"], true)]), &cfg());
        let ext = &rs.nodeports[&(Protocol::Tcp, 80)];
        assert_eq!(ext, &rs.nodeports[&(Protocol::Tcp, 30080)]);
        assert!(ext.starts_with("external-"));
        let rules = serde_json::to_string(&rs.chains[ext]).unwrap();
        assert!(
            rules.contains(r#"[[{"jump":{"target":"mark-for-masquerade"}}],[{"goto":{"target":"service-"#),
            "{rules}"
        );
    }

    #[test]
    fn pinned_published_port_answers_on_its_address_only() {
        let mut p = port("web", [10, 43, 0, 10], &["10.42.0.5:8080"], true);
        p.node_port = None;
        p.host_ip = Some("192.168.9.5".parse().unwrap());
        let rs = render(&model(vec![p.clone()]), &cfg());
        assert!(rs.nodeports.is_empty());
        assert!(rs.service_ips[&(Ipv4Addr::new(192, 168, 9, 5), Protocol::Tcp, 80)].starts_with("external-"));
        // Pinned to loopback: nftables leaves it to the userspace listener.
        p.host_ip = Some("127.0.0.1".parse().unwrap());
        let rs = render(&model(vec![p]), &cfg());
        assert!(rs.nodeports.is_empty());
        assert_eq!(rs.service_ips.len(), 1, "only the ClusterIP");
    }

    #[test]
    fn full_sync_declares_hooks_and_verdict_maps() {
        let full = full_sync(&cfg(), &Ruleset::default()).to_json();
        let cmds = full["nftables"].as_array().unwrap();
        // add table, delete table, add table: replaces the table atomically.
        assert_eq!(cmds[0], serde_json::json!({"add": {"table": {"family": "ip", "name": "flotilla-test"}}}));
        assert_eq!(cmds[1], serde_json::json!({"delete": {"table": {"family": "ip", "name": "flotilla-test"}}}));
        let text = full.to_string();
        assert!(
            text.contains(r#""name":"service-ips","type":["ipv4_addr","inet_proto","inet_service"],"map":"verdict""#),
            "{text}"
        );
        for (chain, hook, prio) in [
            ("nat-prerouting", "prerouting", -100),
            ("nat-output", "output", -100),
            ("nat-postrouting", "postrouting", 100),
            ("filter-input", "input", -110),
            ("filter-forward", "forward", -110),
            ("filter-output", "output", -110),
        ] {
            let found = cmds.iter().any(|c| {
                let ch = &c["add"]["chain"];
                ch["name"] == chain && ch["hook"] == hook && ch["prio"] == prio
            });
            assert!(found, "base chain {chain} missing");
        }
        assert!(text.contains(r#"{"masquerade":{"flags":["fully-random"]}}"#), "{text}");
        assert!(
            text.contains(
                r#"{"match":{"left":{"fib":{"result":"type","flags":["daddr"]}},"right":"local","op":"=="}}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn partial_sync_touches_only_what_changed() {
        let c = cfg();
        let web = port("web", [10, 43, 0, 10], &["10.42.0.5:8080", "10.42.0.6:8080"], false);
        let db = port("db", [10, 43, 0, 11], &["10.42.0.7:5432"], false);
        let old = render(&model(vec![web.clone(), db.clone()]), &c);
        assert!(partial_sync(&c, &old, &old).is_empty());

        // web loses an endpoint: its service chain is rewritten, one endpoint chain goes; db untouched.
        let mut web2 = web.clone();
        web2.endpoints.pop();
        let new = render(&model(vec![web2, db.clone()]), &c);
        let tx = json(&partial_sync(&c, &old, &new));
        assert!(!tx.contains("app/db/"), "{tx}");
        assert!(tx.contains(r#"{"flush":{"chain":{"family":"ip","table":"flotilla-test","name":"service-"#), "{tx}");
        assert!(tx.contains(r#"{"delete":{"chain":{"family":"ip","table":"flotilla-test","name":"endpoint-"#), "{tx}");
        assert!(tx.contains("10.42.0.6/8080"), "{tx}");
        assert!(!tx.contains("service-ips"), "map elements unchanged: {tx}");

        // db loses all endpoints: its element moves from service-ips to no-endpoint-services.
        let mut db2 = db;
        db2.endpoints.clear();
        let new2 = render(&model(vec![web, db2]), &c);
        let tx = partial_sync(&c, &old, &new2).to_json();
        let cmds = tx["nftables"].as_array().unwrap();
        let pos = |needle: &str| {
            cmds.iter()
                .position(|c| c.to_string().contains(needle))
                .unwrap_or_else(|| panic!("{needle} missing in {tx}"))
        };
        let del_elem = pos(r#"{"delete":{"element":{"family":"ip","table":"flotilla-test","name":"service-ips""#);
        let add_reject =
            pos(r#"{"add":{"element":{"family":"ip","table":"flotilla-test","name":"no-endpoint-services""#);
        let del_chain = pos(r#"{"delete":{"chain""#);
        assert!(del_elem < del_chain && add_reject < del_chain, "elements change before chains go: {tx}");
    }
}
