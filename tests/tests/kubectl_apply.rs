//! `kubectl apply` (client-side), `patch`, `edit`, `label`, `annotate` and `set image` with the real kubectl
//! against a real `flotilla server --no-agent` (tier `api`): kubectl computes strategic merge patches
//! (with `$setElementOrder`, `$patch: delete`, nulls) and the server applies them as kube-apiserver does.
//! Plus the check (tier `conformance`) that the server's table of patch merge keys agrees with the
//! Kubernetes OpenAPI definitions bundled with kubernetes-validate.
//!
//! Each API test starts its own server on a free loopback port with its own data dir and stops it in a
//! Drop guard, so tests run in parallel and leave nothing behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cluster::api::resources::RESOURCES;
use cluster::api::strategic::{FIELDS, root_type};
use common::Tier;
use common::server::{ApiServer, unique};
use serde_json::Value;

// --- the merge-key table against the OpenAPI definitions -----------------------------------------------

/// `_definitions.json` of kubernetes-validate's bundled v1.33 schemas, found from `$KUBERNETES_VALIDATE`
/// (`<venv>/bin/kubernetes-validate` → `<venv>/lib/python3.*/site-packages/kubernetes_validate/...`).
fn openapi_definitions() -> Value {
    let bin = common::kubernetes_validate_bin();
    let venv = bin.parent().and_then(Path::parent).expect("kubernetes-validate lives in <venv>/bin");
    let lib = venv.join("lib");
    let mut found: Option<PathBuf> = None;
    for entry in std::fs::read_dir(&lib).unwrap_or_else(|e| panic!("reading {}: {e}", lib.display())) {
        let path = entry
            .expect("a directory entry")
            .path()
            .join("site-packages/kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json");
        if path.is_file() {
            found = Some(path);
        }
    }
    let path = found.unwrap_or_else(|| panic!("no v1.33.0-local/_definitions.json under {}", lib.display()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("_definitions.json is JSON");
    doc.get("$defs").or_else(|| doc.get("definitions")).cloned().expect("_definitions.json has $defs")
}

/// The OpenAPI name of a table type name (`core.v1.PodSpec` → `io.k8s.api.core.v1.PodSpec`).
fn openapi_name(short: &str) -> String {
    if short.starts_with("meta.") {
        format!("io.k8s.apimachinery.pkg.apis.{short}")
    } else {
        format!("io.k8s.api.{short}")
    }
}

/// The table name of an OpenAPI name (the inverse of [`openapi_name`]).
fn short_name(long: &str) -> String {
    long.trim_start_matches("io.k8s.apimachinery.pkg.apis.").trim_start_matches("io.k8s.api.").to_string()
}

/// The definition a property refers to (directly, as its list's items, as its map's values, or through
/// `allOf`).
fn referenced(prop: &Value) -> Option<String> {
    let mut places = vec![prop];
    places.extend(prop.get("items"));
    places.extend(prop.get("additionalProperties").filter(|v| v.is_object()));
    for place in places {
        if let Some(r) = place.get("$ref").and_then(Value::as_str) {
            return r.rsplit('/').next().map(str::to_string);
        }
        for part in place.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = part.get("$ref").and_then(Value::as_str) {
                return r.rsplit('/').next().map(str::to_string);
            }
        }
    }
    None
}

fn patch_meta(prop: &Value) -> (String, String) {
    let get = |k: &str| prop.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    (get("x-kubernetes-patch-merge-key"), get("x-kubernetes-patch-strategy"))
}

/// True when `ty` or a type below it carries patch metadata.
fn has_patch_meta(defs: &Value, ty: &str, memo: &mut BTreeMap<String, bool>, stack: &mut Vec<String>) -> bool {
    if let Some(known) = memo.get(ty) {
        return *known;
    }
    if stack.iter().any(|t| t == ty) {
        return false;
    }
    stack.push(ty.to_string());
    let mut found = false;
    if let Some(props) = defs[ty].get("properties").and_then(Value::as_object) {
        for prop in props.values() {
            let (key, strategy) = patch_meta(prop);
            if !key.is_empty() || !strategy.is_empty() {
                found = true;
            }
            if let Some(child) = referenced(prop)
                && has_patch_meta(defs, &child, memo, stack)
            {
                found = true;
            }
        }
    }
    stack.pop();
    memo.insert(ty.to_string(), found);
    found
}

#[test]
fn strategic_merge_keys_match_the_kubernetes_openapi_definitions() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let defs = openapi_definitions();
    let mut memo = BTreeMap::new();

    // Every row says what the definitions say.
    for row in FIELDS {
        let ty = openapi_name(row.ty);
        let prop = defs[&ty]["properties"]
            .get(row.field)
            .unwrap_or_else(|| panic!("{}.{}: no such field in the OpenAPI definitions", row.ty, row.field));
        let (key, strategy) = patch_meta(prop);
        assert_eq!(row.merge_key, key, "{}.{}: merge key", row.ty, row.field);
        assert_eq!(row.strategy, strategy, "{}.{}: patch strategy", row.ty, row.field);
        if !row.child.is_empty() {
            assert_eq!(
                referenced(prop).as_deref(),
                Some(openapi_name(row.child).as_str()),
                "{}.{}: type of the value",
                row.ty,
                row.field
            );
        }
    }

    // From every served kind (and Scale), each field with patch metadata, or leading to a type with some, has its row.
    let mut todo: Vec<String> = RESOURCES
        .iter()
        .map(|r| root_type(&r.api_version(), r.kind).unwrap_or_else(|| panic!("{} has no root type", r.kind)))
        .chain(root_type("autoscaling/v1", "Scale")) // the body of every `/scale` subresource
        .map(openapi_name)
        .collect();
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    while let Some(ty) = todo.pop() {
        if !seen.insert(ty.clone()) {
            continue;
        }
        let props = defs[&ty].get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        for (field, prop) in &props {
            let (key, strategy) = patch_meta(prop);
            let child = referenced(prop).filter(|c| has_patch_meta(&defs, c, &mut memo, &mut Vec::new()));
            if key.is_empty() && strategy.is_empty() && child.is_none() {
                continue;
            }
            let short = short_name(&ty);
            let row = FIELDS.iter().find(|r| r.ty == short && r.field == field).unwrap_or_else(|| {
                panic!("{short}.{field} has patch metadata (or leads to some) but no row in FIELDS")
            });
            assert_eq!(row.child, child.as_deref().map(short_name).unwrap_or_default(), "{short}.{field}: child");
            checked += 1;
            todo.extend(child);
        }
    }
    assert_eq!(checked, FIELDS.len(), "FIELDS has rows no served kind reaches");
}

// --- kubectl against a server ----------------------------------------------------------------------------

fn get_json(server: &ApiServer, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&server.ok(&all, None)).expect("kubectl -o json prints JSON")
}

fn deployment(ns: &str, image: &str, labels: &str, containers_extra: &str, env_extra: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web{labels}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - {{containerPort: 80}}
        env:
        - {{name: A, value: "1"}}{env_extra}{containers_extra}
"#
    )
}

fn containers(deploy: &Value) -> Vec<(String, String)> {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap_or_default().to_string(), c["image"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn env_names(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn client_side_apply_creates_keeps_and_prunes_what_the_file_dropped() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("apply");
    server.ok(&["create", "namespace", &ns], None);

    let first = deployment(
        &ns,
        "nginx:1",
        ", tier: front",
        "\n      - name: side\n        image: busybox:1",
        "\n        - {name: B, value: \"2\"}",
    );
    let out = server.ok(&["apply", "-f", "-"], Some(&first));
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let deploy = get_json(&server, &["deploy", "web", "-n", &ns]);
    let last = deploy["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("apply records the last-applied-configuration annotation");
    let last: Value = serde_json::from_str(last).expect("last-applied is JSON");
    assert_eq!(last["metadata"]["labels"]["tier"], "front");

    let out = server.ok(&["apply", "-f", "-"], Some(&first));
    assert!(out.contains("deployment.apps/web unchanged"), "a second identical apply: {out}");

    // Others change the object: an annotation (as a controller would) and the replicas (not in the file).
    server.ok(&["annotate", "deploy", "web", "-n", &ns, "example.com/owner=controller"], None);
    server.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=3"], None);

    // The file drops the label, the second container and an env var, and changes the image.
    let second = deployment(&ns, "nginx:2", "", "", "");
    let out = server.ok(&["apply", "-f", "-"], Some(&second));
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let deploy = get_json(&server, &["deploy", "web", "-n", &ns]);
    assert_eq!(containers(&deploy), [("web".to_string(), "nginx:2".to_string())]);
    assert_eq!(env_names(&deploy), ["A"]);
    assert_eq!(deploy["metadata"]["labels"], serde_json::json!({"app": "web"}));
    assert_eq!(deploy["metadata"]["annotations"]["example.com/owner"], "controller", "set by another writer");
    assert_eq!(deploy["spec"]["replicas"], 3, "scaled replicas were never in the file");
    // Defaults the server filled in survive a merge of the container.
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");

    // Adding back: a container and an env var appear in the file's order.
    let third = deployment(
        &ns,
        "nginx:2",
        "",
        "\n      - name: side\n        image: busybox:2",
        "\n        - {name: C, value: \"3\"}",
    );
    server.ok(&["apply", "-f", "-"], Some(&third));
    let deploy = get_json(&server, &["deploy", "web", "-n", &ns]);
    assert_eq!(
        containers(&deploy),
        [("web".to_string(), "nginx:2".to_string()), ("side".to_string(), "busybox:2".to_string())]
    );
    assert_eq!(env_names(&deploy), ["A", "C"]);
    let out = server.ok(&["apply", "-f", "-"], Some(&third));
    assert!(out.contains("unchanged"), "{out}");
}

#[test]
fn apply_a_converted_fixture_directory_twice() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("applydir");
    let project = common::repo_root().join("fixtures/compose/app-three-tier");
    let out_dir = server.dir.path().join("objects");
    let convert = common::run(
        {
            let mut cmd = common::fixed_command(&common::flotilla_bin(), &project, &[]);
            cmd.args(["convert", "--namespace", &ns, "-o"]).arg(&out_dir);
            cmd
        },
        None,
        common::CHILD_TIMEOUT,
    );
    assert!(convert.success(), "flotilla convert failed: {}", convert.stderr_text());
    let dir = out_dir.display().to_string();
    let namespace_file = format!("{dir}/namespace-{ns}.yaml");
    server.ok(&["apply", "-f", &namespace_file], None);

    let out = server.ok(&["apply", "-f", &dir], None);
    let files = std::fs::read_dir(&out_dir).expect("the converted objects").count();
    assert!(files >= 5, "convert wrote {files} files");
    assert_eq!(out.lines().filter(|l| l.ends_with(" created")).count(), files - 1, "{out}");
    assert!(out.contains(&format!("namespace/{ns} unchanged")), "{out}");

    let out = server.ok(&["apply", "-f", &dir], None);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" unchanged")).count(),
        files,
        "a second apply changes nothing:\n{out}"
    );
    server.ok(&["get", "deploy/api", "deploy/db", "deploy/frontend", "svc/api", "-n", &ns], None);
}

#[test]
fn patch_types_edit_label_annotate_and_set_image() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("patch");
    server.ok(&["create", "namespace", &ns], None);
    let two = deployment(&ns, "nginx:1", "", "\n      - name: side\n        image: busybox:1", "");
    server.ok(&["create", "-f", "-"], Some(&two));
    let target = ["deploy", "web", "-n", ns.as_str()];
    let with = |verb: &[&str], rest: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        args.extend(target.iter().map(|s| s.to_string()));
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        server.ok(&refs, None)
    };

    // strategic (the default): one container changes, the other stays.
    run(with(
        &["patch"],
        &["-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:2"}]}}}}"#],
    ));
    let deploy = get_json(&server, &target);
    assert_eq!(
        containers(&deploy),
        [("web".to_string(), "nginx:1".to_string()), ("side".to_string(), "busybox:2".to_string())]
    );

    // strategic list directives: delete one container by name.
    run(with(
        &["patch"],
        &[
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
        ],
    ));
    assert_eq!(containers(&get_json(&server, &target)), [("web".to_string(), "nginx:1".to_string())]);

    // $retainKeys: switching the strategy type drops rollingUpdate.
    run(with(&["patch"], &["-p", r#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#]));
    let deploy = get_json(&server, &target);
    assert_eq!(deploy["spec"]["strategy"], serde_json::json!({"type": "Recreate"}));

    // merge: a list is replaced whole (a JSON merge patch has no merge keys).
    run(with(
        &["patch"],
        &[
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"busybox:3"}]}}}}"#,
        ],
    ));
    assert_eq!(containers(&get_json(&server, &target)), [("only".to_string(), "busybox:3".to_string())]);

    // json: operations by path.
    run(with(
        &["patch"],
        &[
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"busybox:4"}]"#,
        ],
    ));
    assert_eq!(containers(&get_json(&server, &target)), [("only".to_string(), "busybox:4".to_string())]);

    // set image sends a strategic patch keyed by container name.
    let out = run(with(&["set", "image"], &["only=busybox:5"]));
    assert!(out.contains("image updated"), "{out}");
    assert_eq!(containers(&get_json(&server, &target)), [("only".to_string(), "busybox:5".to_string())]);

    // edit: the editor is a script; kubectl sends the difference as a strategic patch.
    let edited = server.kubectl_env(
        &with(&["edit"], &[]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
        &[("KUBE_EDITOR", "sed -i -e s/busybox:5/busybox:6/")],
    );
    assert!(edited.success(), "kubectl edit failed: {}{}", edited.stdout_text(), edited.stderr_text());
    assert!(edited.stdout_text().contains("edited"), "{}", edited.stdout_text());
    assert_eq!(containers(&get_json(&server, &target)), [("only".to_string(), "busybox:6".to_string())]);

    // label and annotate: add, refuse to overwrite, overwrite, remove with `key-`.
    run(with(&["label"], &["color=blue"]));
    let refused = server.fails(&with(&["label"], &["color=red"]).iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(refused.contains("--overwrite"), "{refused}");
    run(with(&["label"], &["color=red", "--overwrite"]));
    assert_eq!(get_json(&server, &target)["metadata"]["labels"]["color"], "red");
    run(with(&["label"], &["color-"]));
    assert!(get_json(&server, &target)["metadata"]["labels"].get("color").is_none());
    run(with(&["annotate"], &["note=hello"]));
    assert_eq!(get_json(&server, &target)["metadata"]["annotations"]["note"], "hello");
    run(with(&["annotate"], &["note-"]));
    let annotations = get_json(&server, &target)["metadata"]["annotations"].clone();
    assert!(annotations.get("note").is_none(), "{annotations}");
}

fn service(ns: &str, extra_port: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: front, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: front}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}{extra_port}
"#
    )
}

#[test]
fn apply_merges_service_ports_by_port_keeping_what_the_server_allocated() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("applysvc");
    server.ok(&["create", "namespace", &ns], None);
    let both = service(&ns, "\n  - {name: https, port: 443, targetPort: 8443}");
    server.ok(&["apply", "-f", "-"], Some(&both));
    let svc = get_json(&server, &["svc", "front", "-n", &ns]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().expect("an allocated clusterIP").to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().expect("an allocated nodePort");

    // The file drops the https port: it goes, the http port keeps its allocated nodePort.
    let out = server.ok(&["apply", "-f", "-"], Some(&service(&ns, "")));
    assert!(out.contains("service/front configured"), "{out}");
    let svc = get_json(&server, &["svc", "front", "-n", &ns]);
    let ports = svc["spec"]["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["port"], 80);
    assert_eq!(ports[0]["nodePort"].as_i64(), Some(node_port), "the allocated nodePort survives the merge");
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some(cluster_ip.as_str()));
    let out = server.ok(&["apply", "-f", "-"], Some(&service(&ns, "")));
    assert!(out.contains("service/front unchanged"), "{out}");
}

#[test]
fn finalizers_merge_as_a_set_and_leave_by_delete_from_primitive_list() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("finalizers");
    server.ok(&["create", "namespace", &ns], None);
    server.ok(&["create", "configmap", "settings", "-n", &ns, "--from-literal=a=1"], None);
    let target = ["configmap", "settings", "-n", ns.as_str()];
    let patch = |p: &str| {
        let mut args = vec!["patch"];
        args.extend(target);
        args.extend(["-p", p]);
        server.ok(&args, None);
    };
    patch(r#"{"metadata":{"finalizers":["example.com/a","example.com/b"]}}"#);
    patch(r#"{"metadata":{"finalizers":["example.com/b","example.com/c"]}}"#);
    let cm = get_json(&server, &target);
    assert_eq!(cm["metadata"]["finalizers"], serde_json::json!(["example.com/a", "example.com/b", "example.com/c"]));
    patch(r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a","example.com/b","example.com/c"]}}"#);
    let cm = get_json(&server, &target);
    let left = cm["metadata"].get("finalizers").cloned().unwrap_or(Value::Null);
    assert!(left.is_null() || left == serde_json::json!([]), "finalizers left: {left}");
}

#[test]
fn bad_strategic_patches_and_server_side_apply_are_refused_clearly() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("badpatch");
    server.ok(&["create", "namespace", &ns], None);
    server.ok(&["create", "-f", "-"], Some(&deployment(&ns, "nginx:1", "", "", "")));

    let err = server.fails(
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
        ],
        None,
    );
    assert!(
        err.contains("BadRequest") && err.contains("spec.template.spec.containers") && err.contains("\"name\""),
        "{err}"
    );

    let err = server.fails(&["patch", "deploy", "web", "-n", &ns, "-p", r#"{"spec":{"$patch":"bogus"}}"#], None);
    assert!(err.contains("unknown patch type") && err.contains("bogus"), "{err}");

    let err = server.fails(
        &[
            "patch",
            "deploy",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"merge"}]}}}}"#,
        ],
        None,
    );
    assert!(err.contains("merging lists cannot yet be specified"), "{err}");

    // Server-side apply needs field managers this server does not track: a clear refusal, not a wrong merge.
    let err = server.fails(&["apply", "--server-side", "-f", "-"], Some(&deployment(&ns, "nginx:2", "", "", "")));
    assert!(err.contains("Server-side apply not available") && err.contains("client-side apply"), "{err}");
    assert_eq!(
        containers(&get_json(&server, &["deploy", "web", "-n", &ns])),
        [("web".to_string(), "nginx:1".to_string())]
    );
}
