//! Tests of the canonical and defaults passes on whole trees, with compose-go's cases where it has some
//! (`transform/*_test.go`) and outputs checked against `docker compose config`.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{canonical, canonical_with, set_default_values};
use crate::diag::Diagnostic;
use crate::load::yaml::{Node, parse};

fn tree(yaml: &str) -> Node {
    parse(yaml, &Arc::from("compose.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs canonical then defaults on `yaml`, returning the JSON.
fn check(yaml: &str) -> Json {
    let mut root = tree(yaml);
    canonical(&mut root).unwrap_or_else(|e| panic!("{e}"));
    set_default_values(&mut root);
    root.to_json()
}

fn fail(yaml: &str) -> Diagnostic {
    let mut root = tree(yaml);
    canonical(&mut root).expect_err("canonical should fail")
}

fn service(json: &Json) -> &Json {
    &json["services"]["web"]
}

#[test]
fn ports_short_syntax() {
    let got = check(
        r#"
services:
  web:
    ports:
      - "127.0.0.1:8080:80"
      - "127.0.0.1:8081:81"
      - 80
      - "8-10:8-10"
      - target: 90
"#,
    );
    assert_eq!(
        service(&got)["ports"],
        json!([
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "tcp"},
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 81, "published": "8081", "protocol": "tcp"},
            {"mode": "ingress", "target": 80, "protocol": "tcp"},
            {"mode": "ingress", "target": 10, "published": "10", "protocol": "tcp"},
            {"mode": "ingress", "target": 8, "published": "8", "protocol": "tcp"},
            {"mode": "ingress", "target": 9, "published": "9", "protocol": "tcp"},
            {"target": 90, "protocol": "tcp", "mode": "ingress"}
        ])
    );
}

#[test]
fn port_errors_point_at_the_entry() {
    let e = fail("services:\n  web:\n    ports:\n      - 80\n      - \"127.0.1:8080:80\"\n");
    assert_eq!(e.message, "invalid IP address: 127.0.1");
    assert_eq!(e.key, "services.web.ports[1]");
    let loc = e.location.expect("a location");
    assert_eq!((loc.line, loc.column), (5, 9));
}

#[test]
fn unparsable_ports_stay_when_parse_errors_are_ignored() {
    let mut root = tree("services:\n  web:\n    ports: [\"${HOST_IP}:${HOST_PORT}:80\"]\n");
    canonical_with(&mut root, true).unwrap();
    assert_eq!(service(&root.to_json())["ports"], json!(["${HOST_IP}:${HOST_PORT}:80"]));
}

#[test]
fn new_nodes_keep_the_location_they_came_from() {
    let mut root = tree("services:\n  web:\n    ports:\n      - \"8080:80\"\n");
    canonical(&mut root).unwrap();
    let port = &root.get("services").unwrap().get("web").unwrap().get("ports").unwrap().as_seq().unwrap()[0];
    let published = port.get("published").unwrap();
    assert_eq!((published.loc.line, published.loc.column), (4, 9));
}

#[test]
fn volumes_short_syntax() {
    let got = check(
        r#"
services:
  web:
    volumes:
      - vol:/data:ro,nocopy
      - ./src:/src:z,rshared
      - /abs//x/../y:/dst/./a/
      - anon
      - type: bind
        source: /x
        target: /x
        bind: {propagation: shared}
"#,
    );
    assert_eq!(
        service(&got)["volumes"],
        json!([
            {"type": "volume", "source": "vol", "target": "/data", "read_only": true, "volume": {"nocopy": true}},
            {"type": "bind", "source": "./src", "target": "/src", "bind": {"selinux": "z", "propagation": "rshared", "create_host_path": true}},
            {"type": "bind", "source": "/abs//x/../y", "target": "/dst/a", "bind": {"create_host_path": true}},
            {"type": "volume", "target": "anon", "volume": {}},
            {"type": "bind", "source": "/x", "target": "/x", "bind": {"propagation": "shared", "create_host_path": true}}
        ])
    );
    let e = fail("services:\n  web:\n    volumes: [\"/foo:/foo:ro:foo\"]\n");
    assert_eq!(e.message, "invalid spec: /foo:/foo:ro:foo: too many colons");
}

#[test]
fn service_short_forms() {
    let got = check(
        r#"
services:
  web:
    build: ./ctx
    extends: base
    depends_on: [db]
    env_file: [a.env, {path: b.env, required: false}, {path: c.env}]
    networks: [front, back]
    dns: 8.8.8.8
    label_file: labels
    devices: ["/dev/a:/dev/b:r", "/dev/c"]
    secrets: [s1, {source: s2, target: /s}]
    configs: [c1]
    gpus: all
    ulimits: {nproc: 65535, nofile: {soft: 1, hard: 2}}
  api:
    build:
      context: .
      ssh: [default, "k=/p"]
      additional_contexts: ["a=../a", "b=docker-image://x"]
      secrets: [bs]
      provenance: true
    depends_on:
      db: {condition: service_healthy}
    env_file: one.env
    deploy:
      resources:
        reservations:
          devices: [{capabilities: [gpu]}, {device_ids: ["0"]}]
"#,
    );
    assert_eq!(
        got["services"]["web"],
        json!({
            "build": {"context": "./ctx"},
            "extends": {"service": "base"},
            "depends_on": {"db": {"condition": "service_started", "required": true}},
            "env_file": [{"path": "a.env", "required": true}, {"path": "b.env", "required": false}, {"path": "c.env", "required": true}],
            "networks": {"front": null, "back": null},
            "dns": ["8.8.8.8"],
            "label_file": ["labels"],
            "devices": [
                {"source": "/dev/a", "target": "/dev/b", "permissions": "r"},
                {"source": "/dev/c", "target": "/dev/c", "permissions": "rwm"}
            ],
            "secrets": [{"source": "s1", "target": "/run/secrets/s1"}, {"source": "s2", "target": "/s"}],
            "configs": [{"source": "c1"}],
            "gpus": [{"count": "all"}],
            "ulimits": {"nproc": 65535, "nofile": {"soft": 1, "hard": 2}}
        })
    );
    assert_eq!(
        got["services"]["api"],
        json!({
            "build": {
                "context": ".",
                "ssh": {"default": null, "k": "/p"},
                "additional_contexts": {"a": "../a", "b": "docker-image://x"},
                "secrets": [{"source": "bs"}],
                "provenance": "true"
            },
            "depends_on": {"db": {"condition": "service_healthy", "required": true}},
            "env_file": [{"path": "one.env", "required": true}],
            "deploy": {"resources": {"reservations": {"devices": [
                {"capabilities": ["gpu"], "count": "all"},
                {"device_ids": ["0"]}
            ]}}}
        })
    );
}

#[test]
fn build_context_default() {
    assert_eq!(
        check("services:\n  web:\n    build: {dockerfile: D}\n")["services"]["web"]["build"],
        json!({"dockerfile": "D", "context": "."})
    );
}

#[test]
fn short_form_errors() {
    let e = fail("services:\n  web:\n    devices: [\"a:b:c:d\"]\n");
    assert_eq!(e.message, "confusing device mapping, please use long syntax: a:b:c:d");
    let e = fail("services:\n  web:\n    build: 1\n");
    assert_eq!((e.key.as_str(), e.message.as_str()), ("services.web.build", "invalid type int for build"));
    let e = fail("services:\n  web:\n    build: {ssh: [nope]}\n");
    assert_eq!(e.message, "invalid ssh key \"nope\"");
    let e = fail("services:\n  web:\n    build: {additional_contexts: [nope]}\n");
    assert_eq!(e.message, "invalid value nope, expected key=value");
    let e = fail("services:\n  web:\n    depends_on: {db: 1}\n");
    assert_eq!(e.key, "services.web.depends_on.db");
    let e = fail("services:\n  web:\n    ports: 80\n");
    assert_eq!(e.message, "invalid type int for port");
}

#[test]
fn external_resources() {
    let got = check(
        r#"
volumes:
  old: {external: {name: foo}}
  new: {external: true, name: bar}
  same: {external: {name: baz}, name: baz}
  empty:
networks:
  n: {external: {}}
"#,
    );
    assert_eq!(
        got,
        json!({
            "volumes": {
                "old": {"external": true, "name": "foo"},
                "new": {"external": true, "name": "bar"},
                "same": {"external": true, "name": "baz"},
                "empty": null
            },
            "networks": {"n": {"external": true}}
        })
    );
    let e = fail("volumes:\n  v: {external: {name: foo}, name: bar}\n");
    assert_eq!(e.message, "name and external.name conflict; only use name");
    assert_eq!(e.key, "volumes.v");
}

#[test]
fn include_entries() {
    let got = check("include:\n  - a.yaml\n  - path: [b.yaml]\n");
    assert_eq!(got["include"], json!([{"path": "a.yaml"}, {"path": ["b.yaml"]}]));
}

#[test]
fn watch_ignore_and_include_lists() {
    let got = check(
        "services:\n  web:\n    develop:\n      watch:\n        - {path: ., action: sync, ignore: x, include: y}\n",
    );
    assert_eq!(
        got["services"]["web"]["develop"]["watch"][0],
        json!({"path": ".", "action": "sync", "ignore": ["x"], "include": ["y"]})
    );
}
