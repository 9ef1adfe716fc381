//! The performance target: a generated 1,000-service compose file with anchors, environment,
//! ports and volumes. `load` (everything `flotilla config` does) and `load+convert` (everything
//! `flotilla convert` does) are compared with a plain parse of the same text into a generic YAML value.
//! `scripts/bench` runs this and Docker Compose v2 on the same file and records the ratios in
//! BENCHMARKS.md.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn input(count: usize) -> String {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["run", "-q", "--release", "-p", "translator", "--example", "generate_compose", "--", &count.to_string()])
        .output()
        .expect("cargo runs the generator");
    String::from_utf8(status.stdout).expect("the generator writes UTF-8")
}

fn request(dir: &Path) -> translator::load::Request {
    translator::load::Request { cwd: dir.to_path_buf(), ..Default::default() }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let text = input(1000);
    std::fs::write(dir.path().join("compose.yaml"), &text).expect("the file is written");

    let mut group = c.benchmark_group("1000-services");
    group.sample_size(20);
    group.bench_function("parse-generic-yaml", |b| {
        // Without serde-saphyr's alias budget, which refuses one anchor used 1,000 times (our loader has
        // its own limit on what aliases expand to).
        let mut options = serde_saphyr::Options::default();
        options.budget = None;
        b.iter(|| serde_saphyr::from_str_with_options::<serde_json::Value>(&text, options.clone()).expect("valid YAML"))
    });
    // Outputs are dropped outside the timing: the binary never frees them (it exits).
    group.bench_function("load", |b| {
        b.iter_with_large_drop(|| translator::load::load(&request(dir.path())).expect("loads"))
    });
    group.bench_function("load+convert", |b| {
        b.iter_with_large_drop(|| {
            let loaded = translator::load::load(&request(dir.path())).expect("loads");
            let conversion = translator::project::convert_loaded(&loaded, &translator::convert::Options::default())
                .expect("converts");
            (loaded, conversion)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
