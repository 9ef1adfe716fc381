//! Tests for [`super::merge`]: the `assertMergeYaml` cases of compose-go's `override/merge_*_test.go`
//! (same inputs, same expected output; the merged tree goes through [`super::super::unicity`] as there),
//! then the `!reset` / `!override` behaviour observed with `docker compose config`.

use std::sync::Arc;

use super::*;
use crate::load::unicity::enforce_unicity;
use crate::load::yaml::parse;

fn yaml(name: &str, text: &str) -> Node {
    parse(text, &Arc::from(name)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn merged(base: &str, overlay: &str) -> Result<Node, Diagnostic> {
    let mut node = merge(yaml("base.yaml", base), yaml("override.yaml", overlay))?;
    enforce_unicity(&mut node)?;
    Ok(node)
}

/// Merges `overlay` into `base`, removes duplicates, and compares with `expected` as typed values.
fn check(base: &str, overlay: &str, expected: &str) {
    let got = merged(base, overlay).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.to_json(), yaml("expected.yaml", expected).to_json(), "\nbase:{base}\noverride:{overlay}");
}

#[test]
fn merge_overrides() {
    check(
        r#"
services:
  test:
    image: foo
    scale: 1
"#,
        r#"
services:
  test:
    image: bar
    scale: 2
"#,
        r#"
services:
  test:
    image: bar
    scale: 2
"#,
    );
}

#[test]
fn merge_annotations_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    annotations:
      - FOO=BAR
"#,
        r#"
services:
  test:
    annotations:
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
        r#"
services:
  test:
    image: foo
    annotations:
      - FOO=BAR
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
    );
}

#[test]
fn merge_annotations_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    annotations:
      FOO: BAR
"#,
        r#"
services:
  test:
    annotations:
      EMPTY: ""
      NIL: null
      QIX: ZOT
"#,
        r#"
services:
  test:
    image: foo
    annotations:
      - FOO=BAR
      - EMPTY=
      - NIL
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_annotations_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    annotations:
      FOO: BAR
"#,
        r#"
services:
  test:
    annotations:
      - QIX=ZOT
"#,
        r#"
services:
  test:
    image: foo
    annotations:
      - FOO=BAR
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_annotations_numbers() {
    check(
        r#"
services:
  test:
    annotations:
      FOO: 1
"#,
        r#"
services:
  test:
    annotations:
      FOO: 3
"#,
        r#"
services:
  test:
    annotations:
      - FOO=3
"#,
    );
}

#[test]
fn merge_yaml_build_sequence() {
    check(
        r#"
services:
  test:
    build:
      context: .
      args:
        - FOO=BAR
      additional_contexts:
        - resources=/path/to/resources
        - app=docker-image://my-app:latest
      platform: 
        - linux/amd64
      tags:
        - "myimage:mytag"
      extra_hosts:
        - "somehost=162.242.195.82"
        - "otherhost=50.31.209.229"
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
        - GIT_COMMIT=cdc3b19
        - EMPTY=
        - NIL
      additional_contexts:
        - source=https://github.com/myuser/project.git
      platform:
        - "linux/arm64"
        - "linux/amd64"
        - "unsupported/unsupported"
      tags:
        - "myimage:mytag"
        - "registry/username/myrepos:my-other-tag"
      extra_hosts:
        - "otherhost=50.31.209.230"
        - "myhostv6=::1"
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
        - FOO=BAR
        - GIT_COMMIT=cdc3b19
        - EMPTY=
        - NIL
      additional_contexts:
        - resources=/path/to/resources
        - app=docker-image://my-app:latest
        - source=https://github.com/myuser/project.git
      platform:
        - "linux/amd64"
        - "linux/arm64"
        - "unsupported/unsupported"
      tags:
        - "myimage:mytag"
        - "registry/username/myrepos:my-other-tag"
      extra_hosts:
        - "somehost=162.242.195.82"
        - "otherhost=50.31.209.229"
        - "otherhost=50.31.209.230"
        - "myhostv6=::1"
"#,
    );
}

#[test]
fn merge_yaml_args_mapping() {
    check(
        r#"
services:
  test:
    build:
      context: .
      args:
        FOO: BAR
      additional_contexts:
        source: https://github.com/myuser/project.git
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
        EMPTY: ""
        NIL: null
        QIX: ZOT
      additional_contexts:
        app: docker-image://my-app:latest
        resources: /path/to/resources
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
       - FOO=BAR
       - EMPTY=
       - NIL
       - QIX=ZOT
      additional_contexts:
        - source=https://github.com/myuser/project.git
        - app=docker-image://my-app:latest
        - resources=/path/to/resources
"#,
    );
}

#[test]
fn merge_yaml_args_mixed() {
    check(
        r#"
services:
  test:
    build:
      context: .
      args:
        FOO: BAR
      additional_contexts:
        - resources=/path/to/resources
        - app=docker-image://my-app:latest
      platform: linux/amd64
      tags:
        - "myimage:mytag"
"#,
        r#"
services:
  test:
    build:
      args:
        - QIX=ZOT
      additional_contexts:
        app: docker-image://new-app:latest
        source: https://github.com/myuser/project.git
      tags:
        - "registry/username/myrepos:my-other-tag"

"#,
        r#"
services:
  test:
    build:
      context: .
      args:
        - FOO=BAR
        - QIX=ZOT
      additional_contexts:
        - resources=/path/to/resources
        - app=docker-image://new-app:latest
        - source=https://github.com/myuser/project.git
      platform: linux/amd64
      tags:
        - "myimage:mytag"
        - "registry/username/myrepos:my-other-tag"
"#,
    );
}

#[test]
fn merge_yaml_args_number() {
    check(
        r#"
services:
  test:
    build:
      context: .
      args:
        FOO: 1
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
        FOO: 3
"#,
        r#"
services:
  test:
    build:
      context: .
      args:
       - FOO=3
"#,
    );
}

#[test]
fn merge_capsequence() {
    check(
        r#"
services:
  test:
    image: foo
    cap_add:
      - CAP_BPF
      - CAP_CHOWN
    cap_drop:
      - NET_ADMIN
      - SYS_ADMIN
"#,
        r#"
services:
  test:
    cap_add:
      - CAP_KILL
      - CAP_CHOWN
    cap_drop:
      - NET_ADMIN
      - CAP_FOWNER
"#,
        r#"
services:
  test:
    image: foo
    cap_add:
      - CAP_BPF
      - CAP_CHOWN
      - CAP_KILL
    cap_drop:
      - NET_ADMIN
      - SYS_ADMIN
      - CAP_FOWNER
"#,
    );
}

#[test]
fn merge_yaml_devices() {
    check(
        r#"
services:
  test:
    image: foo
    devices:
      - '/dev/sda:/dev/sda'
      - '/dev/sdb:/dev/sdb'
      - '/dev/sdc:/dev/sdc'
      - '/dev/sdd:/dev/sdd'
"#,
        r#"
services:
  test:
    devices:
      - '/dev/sde:/dev/sde'
      - '/dev/sdf:/dev/sdf'
      - '/dev/sdg:/dev/sdg'
      - '/dev/sdh:/dev/sdh'
"#,
        r#"
services:
  test:
    image: foo
    devices:
      - '/dev/sda:/dev/sda'
      - '/dev/sdb:/dev/sdb'
      - '/dev/sdc:/dev/sdc'
      - '/dev/sdd:/dev/sdd'
      - '/dev/sde:/dev/sde'
      - '/dev/sdf:/dev/sdf'
      - '/dev/sdg:/dev/sdg'
      - '/dev/sdh:/dev/sdh'
"#,
    );
}

#[test]
fn merge_yaml_devices_override() {
    check(
        r#"
services:
  test:
    image: foo
    devices:
      - '/dev/sda:/dev/sda'
      - '/dev/sdb:/dev/sdb'
      - '/dev/sdc:/dev/sdc'
      - '/dev/sdd:/dev/sdd'
"#,
        r#"
services:
  test:
    devices:
      - '/dev/nvme0n1p1:/dev/sda'
      - '/dev/nvme1n1p1:/dev/sdb'
      - '/dev/nvme2n1p1:/dev/sdc'
"#,
        r#"
services:
  test:
    image: foo
    devices:
      - '/dev/nvme0n1p1:/dev/sda'
      - '/dev/nvme1n1p1:/dev/sdb'
      - '/dev/nvme2n1p1:/dev/sdc'
      - '/dev/sdd:/dev/sdd'
"#,
    );
}

#[test]
fn merge_yaml_dnssequence() {
    check(
        r#"
services:
  test:
    image: foo
    dns:
      - 8.8.8.8
    dns_opt:
      - use-vc
    dns_search:
      - dc1.example.com
"#,
        r#"
services:
  test:
    dns:
      - 9.9.9.9
    dns_opt:
      - no-tld-query
    dns_search:
      - dc2.example.com
"#,
        r#"
services:
  test:
    image: foo
    dns:
      - 8.8.8.8
      - 9.9.9.9
    dns_opt:
      - use-vc
      - no-tld-query
    dns_search:
      - dc1.example.com
      - dc2.example.com
"#,
    );
}

#[test]
fn merge_yaml_dnsmixed() {
    check(
        r#"
services:
  test:
    image: foo
    dns:
      - 8.8.8.8
      - 10.10.10.10
      - 9.9.9.9
    dns_opt:
      - use-vc
      - no-tld-query
    dns_search:
      - dc1.example.com
      - dc2.example.com
"#,
        r#"
services:
  test:
    dns: 9.9.9.9
    dns_opt:
      - no-tld-query
    dns_search: dc2.example.com
"#,
        r#"
services:
  test:
    image: foo
    dns:
      - 8.8.8.8
      - 10.10.10.10
      - 9.9.9.9
    dns_opt:
      - use-vc
      - no-tld-query
    dns_search:
      - dc1.example.com
      - dc2.example.com
"#,
    );
}

#[test]
fn merge_env_files_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    env_file:
      - foo.env
"#,
        r#"
services:
  test:
    env_file:
      - bar.env
      - baz.env
"#,
        r#"
services:
  test:
    image: foo
    env_file:
      - foo.env
      - bar.env
      - baz.env
"#,
    );
}

#[test]
fn merge_env_files_string() {
    check(
        r#"
services:
  test:
    image: foo
    env_file: foo.env
"#,
        r#"
services:
  test:
    env_file: bar.env
"#,
        r#"
services:
  test:
    image: foo
    env_file:
      - foo.env
      - bar.env
"#,
    );
}

#[test]
fn merge_env_files_mixed_sequence_then_string() {
    check(
        r#"
services:
  test:
    env_file: foo.env
"#,
        r#"
services:
  test:
    env_file:
      - bar.env
      - foo.env
"#,
        r#"
services:
  test:
    env_file:
      - foo.env
      - bar.env
"#,
    );
}

#[test]
fn merge_env_files_mixed_string_then_sequence() {
    check(
        r#"
services:
  test:
    env_file:
      - bar.env
      - foo.env
"#,
        r#"
services:
  test:
    env_file: foo.env
"#,
        r#"
services:
  test:
    env_file:
      - bar.env
      - foo.env
"#,
    );
}

#[test]
fn merge_env_files_mixed_unicity_between_string_and_mapping() {
    check(
        r#"
services:
  test:
    env_file:
      - bar.env
      - foo.env
"#,
        r#"
services:
  test:
    env_file: 
      - path: foo.env
        required: true
"#,
        r#"
services:
  test:
    env_file:
      - bar.env
      - path: foo.env
        required: true

"#,
    );
}

#[test]
fn merge_yaml_environment_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    environment:
      - FOO=BAR
"#,
        r#"
services:
  test:
    environment:
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
        r#"
services:
  test:
    image: foo
    environment:
      - FOO=BAR
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
    );
}

#[test]
fn merge_yaml_environment_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    environment:
      FOO: BAR
"#,
        r#"
services:
  test:
    environment:
      EMPTY: ""
      NIL: null
      QIX: ZOT
"#,
        r#"
services:
  test:
    image: foo
    environment:
      - FOO=BAR
      - EMPTY=
      - NIL
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_environment_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    environment:
      FOO: BAR
"#,
        r#"
services:
  test:
    environment:
      - QIX=ZOT
"#,
        r#"
services:
  test:
    image: foo
    environment:
      - FOO=BAR
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_environment_number() {
    check(
        r#"
services:
  test:
    environment:
      FOO: 1
"#,
        r#"
services:
  test:
    environment:
      FOO: 3
"#,
        r#"
services:
  test:
    environment:
      - FOO=3
"#,
    );
}

#[test]
fn merge_extra_hosts_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    extra_hosts:
      - example.com=1.2.3.4
"#,
        r#"
services:
  test:
    extra_hosts:
      - localhost=127.0.0.1
      - example.com=1.2.3.4
      - example.com=4.3.2.1
"#,
        r#"
services:
  test:
    image: foo
    extra_hosts:
      - example.com=1.2.3.4
      - localhost=127.0.0.1
      - example.com=4.3.2.1
"#,
    );
}

#[test]
fn merge_extra_hosts_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    extra_hosts:
      "example.com": "1.2.3.4"
"#,
        r#"
services:
  test:
    extra_hosts:
      "localhost": "127.0.0.1"
      "example.com": ["1.2.3.4", "4.3.2.1"]
"#,
        r#"
services:
  test:
    image: foo
    extra_hosts:
      - example.com=1.2.3.4
      - example.com=4.3.2.1
      - localhost=127.0.0.1
"#,
    );
}

#[test]
fn merge_extra_hosts_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    extra_hosts:
      "example.com": "1.2.3.4"
"#,
        r#"
services:
  test:
    extra_hosts:
      - localhost=127.0.0.1
      - example.com=1.2.3.4
      - example.com=4.3.2.1
"#,
        r#"
services:
  test:
    image: foo
    extra_hosts:
      - example.com=1.2.3.4
      - localhost=127.0.0.1
      - example.com=4.3.2.1
"#,
    );
}

#[test]
fn merge_yaml_labels_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    labels:
      - FOO=BAR
"#,
        r#"
services:
  test:
    labels:
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
        r#"
services:
  test:
    image: foo
    labels:
      - FOO=BAR
      - QIX=ZOT
      - EMPTY=
      - NIL
"#,
    );
}

#[test]
fn merge_yaml_labels_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    labels:
      FOO: BAR
"#,
        r#"
services:
  test:
    labels:
      EMPTY: ""
      NIL: null
      QIX: ZOT
"#,
        r#"
services:
  test:
    image: foo
    labels:
      - FOO=BAR
      - EMPTY=
      - NIL
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_labels_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    labels:
      FOO: BAR
"#,
        r#"
services:
  test:
    labels:
      - QIX=ZOT
"#,
        r#"
services:
  test:
    image: foo
    labels:
      - FOO=BAR
      - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_labels_number() {
    check(
        r#"
services:
  test:
    labels:
      FOO: 1
"#,
        r#"
services:
  test:
    labels:
      FOO: 3
"#,
        r#"
services:
  test:
    labels:
      - FOO=3
"#,
    );
}

#[test]
fn merge_yaml_deploy_labels_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        - FOO=BAR
"#,
        r#"
services:
  test:
    deploy:
      labels:
        - QIX=ZOT
        - EMPTY=
        - NIL
"#,
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        - FOO=BAR
        - QIX=ZOT
        - EMPTY=
        - NIL
"#,
    );
}

#[test]
fn merge_yaml_deploy_labels_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        FOO: BAR
"#,
        r#"
services:
  test:
    deploy:
      labels:
        EMPTY: ""
        NIL: null
        QIX: ZOT
"#,
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        - FOO=BAR
        - EMPTY=
        - NIL
        - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_deploy_labels_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        FOO: BAR
"#,
        r#"
services:
  test:
    deploy:
      labels:
        - QIX=ZOT
"#,
        r#"
services:
  test:
    image: foo
    deploy:
      labels:
        - FOO=BAR
        - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_deploy_labels_number() {
    check(
        r#"
services:
  test:
    deploy:
      labels:
        FOO: 1
"#,
        r#"
services:
  test:
    deploy:
      labels:
        FOO: 3
"#,
        r#"
services:
  test:
    deploy:
      labels:
        - FOO=3
"#,
    );
}

#[test]
fn merge_yaml_build_labels_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    build:
      labels:
        - FOO=BAR
"#,
        r#"
services:
  test:
    build:
      labels:
        - QIX=ZOT
        - EMPTY=
        - NIL
"#,
        r#"
services:
  test:
    image: foo
    build:
      labels:
        - FOO=BAR
        - QIX=ZOT
        - EMPTY=
        - NIL
"#,
    );
}

#[test]
fn merge_yaml_build_labels_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    build:
      labels:
        FOO: BAR
"#,
        r#"
services:
  test:
    build:
      labels:
        EMPTY: ""
        NIL: null
        QIX: ZOT
"#,
        r#"
services:
  test:
    image: foo
    build:
      labels:
        - FOO=BAR
        - EMPTY=
        - NIL
        - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_build_labels_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    build:
      labels:
        FOO: BAR
"#,
        r#"
services:
  test:
    build:
      labels:
        - QIX=ZOT
"#,
        r#"
services:
  test:
    image: foo
    build:
      labels:
        - FOO=BAR
        - QIX=ZOT
"#,
    );
}

#[test]
fn merge_yaml_build_labels_number() {
    check(
        r#"
services:
  test:
    build:
      labels:
        FOO: 1
"#,
        r#"
services:
  test:
    build:
      labels:
        FOO: 3
"#,
        r#"
services:
  test:
    build:
      labels:
        - FOO=3
"#,
    );
}

#[test]
fn merge_extra_links_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    links:
      - service1
      - service2
"#,
        r#"
services:
  test:
    links:
      - service2=alias1
"#,
        r#"
services:
  test:
    image: foo
    links:
      - service1
      - service2=alias1
"#,
    );
}

#[test]
fn merge_yaml_logging_same_driver() {
    check(
        r#"
services:
  test:
    image: foo
    logging:
      driver: syslog
      options:
        syslog-address: "tcp://192.168.0.42:123"
"#,
        r#"
services:
  test:
    logging:
      driver: syslog
      options:
        syslog-address: "tcp://127.0.0.1:123"
"#,
        r#"
services:
  test:
    image: foo
    logging:
      driver: syslog
      options:
        syslog-address: "tcp://127.0.0.1:123"
"#,
    );
}

#[test]
fn merge_yaml_logging_distinct_driver() {
    check(
        r#"
services:
  test:
    image: foo
    logging:
      driver: local
      options:
        max-size: "10m"
"#,
        r#"
services:
  test:
    logging:
      driver: syslog
      options:
        syslog-address: "tcp://127.0.0.1:123"
"#,
        r#"
services:
  test:
    image: foo
    logging:
      driver: syslog
      options:
        syslog-address: "tcp://127.0.0.1:123"
"#,
    );
}

#[test]
fn merge_yaml_logging_implicit_driver() {
    check(
        r#"
services:
  test:
    image: foo
    logging:
      options:
        max-size: "10m"
"#,
        r#"
services:
  test:
    logging:
      options:
        max-file: 3
"#,
        r#"
services:
  test:
    image: foo
    logging:
      options:
        max-size: "10m"
        max-file: 3
"#,
    );
}

#[test]
fn mem_limit_mixed_string_then_int() {
    check(
        r#"
services:
  test:
    mem_limit: 1
"#,
        r#"
services:
  test:
    mem_limit: '256m'
"#,
        r#"
services:
  test:
    mem_limit: 256m
"#,
    );
}

#[test]
fn mem_limit_mixed_int_then_string() {
    check(
        r#"
services:
  test:
    mem_limit: '256m'
"#,
        r#"
services:
  test:
    mem_limit: 1
"#,
        r#"
services:
  test:
    mem_limit: 1
"#,
    );
}

#[test]
fn merge_yaml_service_models_short_syntax() {
    check(
        r#"
services:
  test:
    image: foo
    models:
      - llm
      - embedding-model
"#,
        r#"
services:
  test:
    models:
      - vision-model
"#,
        r#"
services:
  test:
    image: foo
    models:
      llm:
      embedding-model:
      vision-model:
"#,
    );
}

#[test]
fn merge_yaml_service_models_long_syntax() {
    check(
        r#"
services:
  test:
    image: foo
    models:
      llm:
        endpoint_var: AI_MODEL_URL
        model_var: AI_MODEL_NAME
"#,
        r#"
services:
  test:
    models:
      embedding-model:
        endpoint_var: EMBEDDING_URL
        model_var: EMBEDDING_MODEL
"#,
        r#"
services:
  test:
    image: foo
    models:
      llm:
        endpoint_var: AI_MODEL_URL
        model_var: AI_MODEL_NAME
      embedding-model:
        endpoint_var: EMBEDDING_URL
        model_var: EMBEDDING_MODEL
"#,
    );
}

#[test]
fn merge_yaml_service_models_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    models:
      - llm
      - embedding-model
"#,
        r#"
services:
  test:
    models:
      vision-model:
        endpoint_var: VISION_URL
        model_var: VISION_MODEL
"#,
        r#"
services:
  test:
    image: foo
    models:
      llm:
      embedding-model:
      vision-model:
        endpoint_var: VISION_URL
        model_var: VISION_MODEL
"#,
    );
}

#[test]
fn merge_yaml_service_models_override() {
    check(
        r#"
services:
  test:
    image: foo
    models:
      llm:
        endpoint_var: OLD_MODEL_URL
        model_var: OLD_MODEL_NAME
"#,
        r#"
services:
  test:
    models:
      llm:
        endpoint_var: NEW_MODEL_URL
        model_var: NEW_MODEL_NAME
"#,
        r#"
services:
  test:
    image: foo
    models:
      llm:
        endpoint_var: NEW_MODEL_URL
        model_var: NEW_MODEL_NAME
"#,
    );
}

#[test]
fn merge_yaml_top_level_models() {
    check(
        r#"
services:
  test:
    image: foo
models:
  llm:
    model: ai/smollm2
    context_size: 2048
    runtime_flags:
      - "--gpu"
"#,
        r#"
services:
  test:
    image: foo
models:
  embedding-model:
    model: ai/all-minilm
    context_size: 512
    runtime_flags:
      - "--cpu"
"#,
        r#"
services:
  test:
    image: foo
models:
  llm:
    model: ai/smollm2
    context_size: 2048
    runtime_flags:
      - "--gpu"
  embedding-model:
    model: ai/all-minilm
    context_size: 512
    runtime_flags:
      - "--cpu"
"#,
    );
}

#[test]
fn merge_yaml_models_complete_scenario() {
    check(
        r#"
services:
  app:
    image: myapp
    models:
      - llm
  worker:
    image: worker
    models:
      embedding-model:
        endpoint_var: EMBEDDING_URL
models:
  llm:
    model: ai/smollm2
    context_size: 2048
  embedding-model:
    model: ai/all-minilm
    context_size: 512
"#,
        r#"
services:
  app:
    models:
      - vision-model
  worker:
    models:
      llm:
        endpoint_var: LLM_URL
        model_var: LLM_NAME
models:
  vision-model:
    model: ai/clip
    context_size: 1024
  llm:
    model: ai/gpt-4
    context_size: 8192
"#,
        r#"
services:
  app:
    image: myapp
    models:
      llm:
      vision-model:
  worker:
    image: worker
    models:
      embedding-model:
        endpoint_var: EMBEDDING_URL
      llm:
        endpoint_var: LLM_URL
        model_var: LLM_NAME
models:
  llm:
    model: ai/gpt-4
    context_size: 8192
  embedding-model:
    model: ai/all-minilm
    context_size: 512
  vision-model:
    model: ai/clip
    context_size: 1024
"#,
    );
}

// compose-go comments this case out: `runtime_flags` has no rule of its own, so the lists are
// concatenated like any other list, which is what we check.
#[test]
fn merge_yaml_models_runtime_flags_are_appended() {
    check(
        r#"
services:
  test:
    image: foo
models:
  llm:
    model: ai/smollm2
    runtime_flags:
      - "--gpu"
      - "--batch-size=32"
"#,
        r#"
services:
  test:
    image: foo
models:
  llm:
    model: ai/smollm2
    runtime_flags:
      - "--fp16"
      - "--batch-size=64"
"#,
        r#"
services:
  test:
    image: foo
models:
  llm:
    model: ai/smollm2
    runtime_flags:
      - "--gpu"
      - "--batch-size=32"
      - "--fp16"
      - "--batch-size=64"
"#,
    );
}

#[test]
fn merge_yaml_models_multiple_services() {
    check(
        r#"
services:
  go-genai:
    models:
      - llm
models:
  llm:
    model: ai/smollm2
    context_size: 2048
"#,
        r#"
services:
  node-genai:
    models:
      - llm
models:
  llm:
    model: ai/smollm2
    context_size: 2048
"#,
        r#"
services:
  go-genai:
    models:
      - llm
  node-genai:
    models:
      - llm
models:
  llm:
    model: ai/smollm2
    context_size: 2048
"#,
    );
}

#[test]
fn merge_yaml_service_mount() {
    check(
        r#"
services:
  test:
    image: foo
    secrets:
      - foo
      - bar
      - zot
"#,
        r#"
services:
  test:
    image: foo
    secrets:
      - source: zot
        target: /run/secrets/foo
"#,
        r#"
services:
  test:
    image: foo
    secrets:
      - source: zot
        target: /run/secrets/foo
      - bar
      - zot
"#,
    );
}

#[test]
fn merge_yaml_service_network_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    networks:
      - front-network
      - back-network
"#,
        r#"
services:
  test:
    networks:
      - front-network
"#,
        r#"
services:
  test:
    image: foo
    networks:
      front-network:
      back-network:
"#,
    );
}

#[test]
fn merge_yaml_service_networks_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    networks:
      network1:
        aliases:
          - alias1
          - alias2
        link_local_ips:
          - 57.123.22.11
          - 57.123.22.13
      network2:
        aliases:
          - alias1
          - alias3
"#,
        r#"
services:
  test:
    networks:
      network1:
        aliases:
          - alias3
          - alias1
        link_local_ips:
          - 57.123.22.12
          - 57.123.22.13
"#,
        r#"
services:
  test:
    image: foo
    networks:
      network1:
        aliases:
          - alias1
          - alias2
          - alias3
        link_local_ips:
          - 57.123.22.11
          - 57.123.22.13
          - 57.123.22.12
      network2:
        aliases:
          - alias1
          - alias3
"#,
    );
}

#[test]
fn merge_yaml_service_networks_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    networks:
      - front-network
      - back-network
      - network1
"#,
        r#"
services:
  test:
    image: foo
    networks:
      network1:
        aliases:
          - alias1
          - alias2
        link_local_ips:
          - 57.123.22.11
          - 57.123.22.13
      network2:
        aliases:
          - alias1
          - alias3
"#,
        r#"
services:
  test:
    image: foo
    networks:
      front-network:
      back-network:
      network1:
        aliases:
          - alias1
          - alias2
        link_local_ips:
          - 57.123.22.11
          - 57.123.22.13
      network2:
        aliases:
          - alias1
          - alias3
"#,
    );
}

#[test]
fn merge_yaml_networks() {
    check(
        r#"
services:
  test:
    image: foo
networks:
  network1:
    ipam:
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.0/24
          gateway: 172.28.5.254
          aux_addresses:
            host1: 172.28.1.5
            host2: 172.28.1.6
            host3: 172.28.1.7
      options:
        foo: bar
        baz: "0"
    labels:
      com.example.description: "Financial transaction network"
      com.example.department: "Finance"
      com.example.label-with-empty-value: ""
"#,
        r#"
services:
  test:
    image: foo
networks:
  network1:
    ipam:
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.1/24
          gateway: 172.28.5.254
          aux_addresses:
            host1: 172.28.1.5
            host2: 172.28.1.4
            host4: 172.28.1.10
        - subnet: 172.28.10.0/16
          ip_range: 172.28.10.1/24
          gateway: 172.28.10.254
          aux_addresses:
            host1: 172.28.10.5
            host2: 172.28.10.4
            host3: 172.28.10.10
      options:
        bar: foo
        baz: "0"
    labels:
      - "com.example.department-new=New"
      - "com.example.description=Financial transaction network"
      - "com.example.label-with-empty-value="
  network2:
"#,
        r#"
services:
  test:
    image: foo
networks:
  network1:
    ipam:
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.1/24
          gateway: 172.28.5.254
          aux_addresses:
            host1: 172.28.1.5
            host2: 172.28.1.4
            host3: 172.28.1.7
            host4: 172.28.1.10
        - subnet: 172.28.10.0/16
          ip_range: 172.28.10.1/24
          gateway: 172.28.10.254
          aux_addresses:
            host1: 172.28.10.5
            host2: 172.28.10.4
            host3: 172.28.10.10
      options:
        foo: bar
        bar: foo
        baz: "0"
    labels:
      - "com.example.department=Finance"
      - "com.example.description=Financial transaction network"
      - "com.example.label-with-empty-value="
      - "com.example.department-new=New"
  network2:
"#,
    );
}

#[test]
fn merge_profiles_unicity() {
    check(
        r#"
services:
  test:
    image: foo
    profiles:
      - profile1
      - profile2
"#,
        r#"
services:
  test:
    profiles:
      - profile2
      - profile3
"#,
        r#"
services:
  test:
    image: foo
    profiles:
      - profile1
      - profile2
      - profile3
"#,
    );
}

#[test]
fn merge_sysctls_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    sysctls:
      - net.ipv6.conf.all.disable_ipv6=1
"#,
        r#"
services:
  test:
    sysctls:
      - net.ipv4.tcp_keepalive_time=300
"#,
        r#"
services:
  test:
    image: foo
    sysctls:
      - net.ipv6.conf.all.disable_ipv6=1
      - net.ipv4.tcp_keepalive_time=300
"#,
    );
}

#[test]
fn merge_sysctls_mapping() {
    check(
        r#"
services:
  test:
    image: foo
    sysctls:
      "net.ipv6.conf.all.disable_ipv6": 1
"#,
        r#"
services:
  test:
    sysctls:
      "net.ipv4.tcp_keepalive_time": "300"
"#,
        r#"
services:
  test:
    image: foo
    sysctls:
      - net.ipv6.conf.all.disable_ipv6=1
      - net.ipv4.tcp_keepalive_time=300
"#,
    );
}

#[test]
fn merge_sysctls_mixed() {
    check(
        r#"
services:
  test:
    image: foo
    sysctls:
      "net.ipv6.conf.all.disable_ipv6": 1
"#,
        r#"
services:
  test:
    sysctls:
      - net.ipv4.tcp_keepalive_time=300
"#,
        r#"
services:
  test:
    image: foo
    sysctls:
      - net.ipv6.conf.all.disable_ipv6=1
      - net.ipv4.tcp_keepalive_time=300
"#,
    );
}

#[test]
fn merge_sysctls_numbers() {
    check(
        r#"
services:
  test:
    sysctls:
      "net.ipv4.tcp_keepalive_time": 1
"#,
        r#"
services:
  test:
    sysctls:
      "net.ipv4.tcp_keepalive_time": 3
"#,
        r#"
services:
  test:
    sysctls:
      - net.ipv4.tcp_keepalive_time=3
"#,
    );
}

#[test]
fn merge_tmpfs_sequence() {
    check(
        r#"
services:
  test:
    image: foo
    tmpfs:
      - /foo
"#,
        r#"
services:
  test:
    tmpfs:
      - /bar
      - /baz
      - /foo
"#,
        r#"
services:
  test:
    image: foo
    tmpfs:
      - /foo
      - /bar
      - /baz
"#,
    );
}

#[test]
fn merge_tmpfs_string() {
    check(
        r#"
services:
  test:
    image: foo
    tmpfs: /foo
"#,
        r#"
services:
  test:
    tmpfs: /bar
"#,
        r#"
services:
  test:
    image: foo
    tmpfs:
      - /foo
      - /bar
"#,
    );
}

#[test]
fn merge_tmpfs_mixed_sequence_then_string() {
    check(
        r#"
services:
  test:
    image: foo
    tmpfs: /foo
"#,
        r#"
services:
  test:
    tmpfs:
      - /bar
      - /foo
"#,
        r#"
services:
  test:
    image: foo
    tmpfs:
      - /foo
      - /bar
"#,
    );
}

#[test]
fn merge_tmpfs_mixed_string_then_sequence() {
    check(
        r#"
services:
  test:
    tmpfs:
      - /bar
      - /foo
"#,
        r#"
services:
  test:
    image: foo
    tmpfs: /foo
"#,
        r#"
services:
  test:
    image: foo
    tmpfs:
      - /bar
      - /foo
"#,
    );
}

#[test]
fn merge_yaml_ulimits() {
    check(
        r#"
services:
  test:
    image: foo
    ulimits:
      nofile: 
          soft: 20000
          hard: 40000
      nproc: 65535
      locks: 
          soft: 20000
          hard: 40000
"#,
        r#"
services:
  test:
    image: foo
    ulimits:
      nofile: 
          soft: 10000
          hard: 40000
      nproc: 
          soft: 65535
      locks:
          hard: 65535
"#,
        r#"
services:
  test:
    image: foo
    ulimits:
      nofile: 
          soft: 10000
          hard: 40000
      nproc: 
          soft: 65535
      locks:
          hard: 65535
"#,
    );
}

#[test]
fn merge_volumes() {
    check(
        r#"
services:
  test:
    image: foo
    volumes:
     - a:/a
     - type: bind
       source: ./b
       target: /b
"#,
        r#"
services:
  test:
    volumes:
      - c:/c
"#,
        r#"
services:
  test:
    image: foo
    volumes:
      - a:/a
      - type: bind
        source: ./b
        target: /b
      - c:/c
"#,
    );
}

// `!reset` and `!override`, as `docker compose config` (compose-go v2.9) applies them.

#[test]
fn reset_removes_the_key_and_override_replaces_without_merging() {
    check(
        r#"
services:
  web:
    image: nginx
    ports: ["80:80"]
    environment: {A: "1", B: "2"}
    command: echo hi
"#,
        r#"
services:
  web:
    ports: !reset []
    environment: !override {C: "3"}
    command: !reset
"#,
        r#"
services:
  web:
    image: nginx
    environment: {C: "3"}
"#,
    );
}

#[test]
fn nested_reset_removes_one_entry() {
    check(
        "services:\n  foo:\n    build: {context: ., dockerfile: foo.Dockerfile}\n    environment:\n      FOO: BAR\n",
        "services:\n  foo:\n    image: foo\n    build: !reset\n    environment:\n      FOO: !reset\n",
        "services:\n  foo:\n    image: foo\n    environment:\n",
    );
}

#[test]
fn reset_under_a_list_base_does_not_reach_into_it() {
    // The path `labels.x` names a mapping key; the base holds a list, so nothing is removed.
    check(
        "services:\n  web:\n    labels: [x=1]\n",
        "services:\n  web:\n    labels:\n      x: !reset\n",
        "services:\n  web:\n    labels: [x=1]\n",
    );
}

#[test]
fn reset_in_the_first_file_and_in_lists_drops_the_value() {
    check(
        "{}",
        "services:\n  web:\n    image: nginx\n    ports: !reset [\"80:80\"]\n    dns: [1.1.1.1, !reset 8.8.8.8, 9.9.9.9]\n",
        "services:\n  web:\n    image: nginx\n    dns: [1.1.1.1, 9.9.9.9]\n",
    );
    // Tags in the base are resolved as well: it may be the first file itself.
    check("services:\n  web:\n    command: !reset x\n    image: a\n", "{}", "services:\n  web:\n    image: a\n");
}

#[test]
fn override_values_are_taken_literally() {
    // go-yaml leaves a scalar with an unknown tag untyped, and does not look at tags inside `!override`.
    check(
        "services:\n  web:\n    environment: {A: 0}\n",
        "services:\n  web:\n    environment: !override\n      A: \"1\"\n      B: !reset x\n      C: !reset\n    cpus: !override 0.5\n",
        "services:\n  web:\n    environment: {A: \"1\", B: x, C: \"\"}\n    cpus: \"0.5\"\n",
    );
}

#[test]
fn override_replaces_a_list_and_a_special_key() {
    check(
        "services:\n  b:\n    depends_on: [c]\n    ports: [\"80:80\"]\n",
        "services:\n  b:\n    depends_on: !override [a]\n    ports: !override [\"81:81\"]\n",
        "services:\n  b:\n    depends_on: [a]\n    ports: [\"81:81\"]\n",
    );
}

#[test]
fn null_overrides_keep_the_base_except_replaced_keys() {
    check(
        "services:\n  w:\n    image: x\n    environment: [A=1]\n    command: echo\n    logging: {driver: x}\n",
        "services:\n  w:\n    image:\n    environment:\n    command:\n    logging:\n",
        "services:\n  w:\n    image: x\n    environment: [A=1]\n    command:\n    logging: {driver: x}\n",
    );
}

#[test]
fn ulimit_entries_are_replaced_whole() {
    check(
        "services:\n  w:\n    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 3}\n",
        "services:\n  w:\n    ulimits: {nofile: {soft: 3}}\n",
        "services:\n  w:\n    ulimits: {nofile: {soft: 3}, nproc: 3}\n",
    );
}

#[test]
fn mapping_values_become_go_formatted_strings() {
    // Entries are sorted before duplicates are dropped, so `D=x` (after `D=2`) wins.
    check(
        "services:\n  w:\n    environment: {A: 1.0, B: 1e6, C: true, D: [x, 2]}\n",
        "services:\n  w:\n    environment: {E: 0x10}\n",
        "services:\n  w:\n    environment: [A=1, B=1e+06, C=true, D=x, E=16]\n",
    );
}

#[test]
fn mismatched_shapes_are_refused_like_compose() {
    let e = merged("services:\n  w:\n    ports: [\"80:80\"]\n", "services:\n  w:\n    ports: {a: 1}\n").unwrap_err();
    assert_eq!(
        e.to_string().split("; hint").next(),
        Some("error: override.yaml:3:12: services.w.ports: cannot override services.w.ports")
    );
    let e =
        merged("networks:\n  n:\n    ipam: {config: {}}\n", "networks:\n  n:\n    ipam: {config: []}\n").unwrap_err();
    assert_eq!(e.message, "networks.n.ipam.config: unexpected type map[string]interface {}");
}

#[test]
fn merged_values_keep_the_location_of_the_file_that_won() {
    let got = merged("services:\n  w:\n    image: a\n    user: u\n", "services:\n  w:\n    image: b\n").unwrap();
    let w = got.get("services").and_then(|s| s.get("w")).unwrap();
    assert_eq!(&*w.get("image").unwrap().loc.file, "override.yaml");
    assert_eq!(&*w.get("user").unwrap().loc.file, "base.yaml");
}

#[test]
fn merge_service_keeps_markers_for_the_file_level_merge() {
    let base = yaml("a.yaml", "image: busybox\nports: [\"90:90\"]\ncommand: x\n");
    let service = yaml("b.yaml", "extends: base\nports: !reset []\nenvironment: !override {A: \"1\"}\n");
    let got = merge_service(base, service).unwrap();
    assert_eq!(got.get("ports").map(|n| n.tag), Some(Tag::Reset));
    assert_eq!(got.get("environment").map(|n| n.tag), Some(Tag::Override));
    // The file-level merge then removes what an earlier file said for those keys, too.
    let earlier = yaml("0.yaml", "services:\n  web:\n    ports: [\"80:80\"]\n    environment: {B: \"2\"}\n");
    let mut cfg = yaml("b.yaml", "services:\n  web: {}\n");
    *cfg.get_mut("services").and_then(|s| s.get_mut("web")).unwrap() = got;
    let all = merge(earlier, cfg).unwrap();
    assert_eq!(
        all.to_json(),
        serde_json::json!({"services": {"web": {"environment": {"A": "1"}, "image": "busybox", "command": "x", "extends": "base"}}})
    );
}
