//! Control-plane cost of the ruleset: rendering N services (2 endpoints each) and building the full
//! transaction's JSON, and the partial transaction after one service changed. Pure, no `nft` run: the
//! kernel's load time is measured separately (ARCHITECTURE.md, "nftables scale").

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netproxy::render::{self, RenderConfig, parse_cidr};
use netproxy::{Model, Protocol, ServicePort};

fn model(n: u32) -> Model {
    let ports = (0..n).map(|i| {
        let p = ServicePort {
            namespace: format!("ns{}", i % 10),
            service: format!("svc{i}"),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec![Ipv4Addr::from(0x0a2b_0000 + i + 2)],
            node_port: None,
            load_balancer_port: None,
            host_ip: None,
            endpoints: (0..2).map(|e| SocketAddrV4::new(Ipv4Addr::from(0x0a2a_0000 + 2 * i + e + 2), 8080)).collect(),
        };
        (p.id(), p)
    });
    Model { ports: ports.collect() }
}

fn bench(c: &mut Criterion) {
    let cfg = RenderConfig {
        table: "flotilla".into(),
        cluster_cidr: parse_cidr("10.42.0.0/16"),
        service_cidr: parse_cidr("10.43.0.0/16"),
    };
    let mut group = c.benchmark_group("render");
    for n in [100u32, 1000] {
        let m = model(n);
        group.bench_with_input(BenchmarkId::new("full_sync_json", n), &m, |b, m| {
            b.iter(|| black_box(render::full_sync(&cfg, &render::render(m, &cfg)).to_json_string()))
        });
        let old = render::render(&m, &cfg);
        let mut changed = m.clone();
        changed.ports.values_mut().next().expect("a service").endpoints.pop();
        group.bench_with_input(BenchmarkId::new("partial_sync_one_service", n), &changed, |b, changed| {
            b.iter(|| black_box(render::partial_sync(&cfg, &old, &render::render(changed, &cfg)).to_json_string()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
