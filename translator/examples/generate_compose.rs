//! Writes a large synthetic compose file to stdout, for benchmarks: `cargo run --release -p translator
//! --example generate_compose -- 1000 > big/compose.yaml`. Every service uses an anchor with a merge key,
//! environment variables with interpolation, a published port and a named volume.

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    print!("{}", translator_bench_input(count));
}

fn translator_bench_input(count: usize) -> String {
    let mut out = String::with_capacity(count * 400);
    out.push_str("x-common: &common\n  restart: unless-stopped\n  environment:\n    LOG_LEVEL: ${LOG_LEVEL:-info}\n    REGION: eu\n  labels:\n    tier: backend\n\nservices:\n");
    for i in 0..count {
        out.push_str(&format!(
            "  svc{i}:\n    <<: *common\n    image: registry.local/app{i}:${{TAG:-1.0}}\n    command: [\"serve\", \"--port\", \"8080\"]\n    ports:\n      - \"{port}:8080\"\n    environment:\n      SERVICE_INDEX: \"{i}\"\n      PEER: svc{peer}:8080\n    volumes:\n      - data{i}:/var/lib/app\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"localhost:8080/health\"]\n      interval: 10s\n",
            port = 20000 + i,
            peer = (i + 1) % count,
        ));
    }
    out.push_str("\nvolumes:\n");
    for i in 0..count {
        out.push_str(&format!("  data{i}: {{}}\n"));
    }
    out
}
