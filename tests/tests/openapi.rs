//! `/openapi/v3`, field validation, 422 validation and server-side dry runs, through the real kubectl
//! against a real `flotilla server --no-agent` (tier `api`): `kubectl explain`, `--validate=strict|warn|
//! ignore`, an invalid Deployment's 422 as kubectl prints it, and `--dry-run=server` on create, apply,
//! scale, label and delete. kubectl must never need `/openapi/v2` (it is not served): checked in its
//! request log (`--v=6`).
//!
//! Each test starts its own server on a free loopback port with its own data dir, stopped by its guard.

mod common;

use common::Tier;
use common::server::{ApiServer, unique};

/// The URLs kubectl requested, from its `--v=6` log.
fn requested_urls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split("url=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn assert_no_openapi_v2(what: &str, stderr: &str) {
    let urls = requested_urls(stderr);
    assert!(!urls.is_empty(), "{what}: no request log in kubectl's output:\n{stderr}");
    assert!(!urls.iter().any(|u| u.contains("/openapi/v2")), "{what} asked for /openapi/v2: {urls:#?}");
}

#[test]
fn explain_reads_openapi_v3_generated_from_the_types() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);

    let out = server.kubectl(&["explain", "pod.spec.containers.ports", "--v=6"], None);
    assert!(out.success(), "explain failed:\n{}{}", out.stdout_text(), out.stderr_text());
    assert_no_openapi_v2("explain", &out.stderr_text());
    let text = out.stdout_text();
    assert!(text.starts_with("KIND:       Pod\nVERSION:    v1\n"), "{text}");
    assert!(text.contains("FIELD: ports <[]ContainerPort>"), "{text}");
    assert!(text.contains("List of ports to expose from the container."), "{text}");
    assert!(text.contains("containerPort\t<integer> -required-"), "{text}");
    assert!(text.contains("protocol\t<string>"), "{text}");

    let text = server.ok(&["explain", "deployment", "--recursive"], None);
    assert!(text.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"), "{text}");
    assert!(text.contains("Deployment enables declarative updates for Pods and ReplicaSets."), "{text}");
    // Nested fields, indented two spaces per level.
    assert!(text.contains("\n  spec\t<DeploymentSpec>\n"), "{text}");
    assert!(text.contains("\n    template\t<PodTemplateSpec> -required-\n"), "{text}");
    assert!(text.contains("\n            containerPort\t<integer> -required-\n"), "{text}");
    // metadata is not required on a kind (k8s-openapi's Rust types make it so; kube-apiserver does not).
    assert!(text.contains("\n  metadata\t<ObjectMeta>\n"), "{text}");

    let text = server.ok(&["explain", "svc.spec.ports.targetPort"], None);
    assert!(text.contains("FIELD: targetPort <IntOrString>"), "{text}");
    let text = server.ok(&["explain", "cronjobs.spec.jobTemplate.spec.template.spec.restartPolicy"], None);
    assert!(text.contains("GROUP:      batch"), "{text}");
    let err = server.fails(&["explain", "pod.spec.nosuchfield"], None);
    assert!(err.contains("field \"nosuchfield\" does not exist"), "{err}");
}

#[test]
fn openapi_documents_are_cached_by_hash() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let index: serde_json::Value = serde_json::from_str(&server.ok(&["get", "--raw", "/openapi/v3"], None)).unwrap();
    let paths = index["paths"].as_object().unwrap();
    for gv in ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/discovery.k8s.io/v1", "apis/networking.k8s.io/v1"] {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{gv}: {url}");
    }
    let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
    let out = server.kubectl(&["get", "--raw", url, "--v=8"], None);
    assert!(out.success(), "{}", out.stderr_text());
    let log = out.stderr_text();
    assert!(
        log.contains("Cache-Control: public, immutable") || log.contains("Cache-Control=\"public, immutable\""),
        "{log}"
    );
    assert!(log.to_ascii_lowercase().contains("etag"), "{log}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let deploy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(deploy["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
    let containers = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");

    // An old hash is sent to the current document.
    let stale = format!("{}?hash=0000", url.split('?').next().unwrap());
    let again: serde_json::Value = serde_json::from_str(&server.ok(&["get", "--raw", &stale], None)).unwrap();
    assert_eq!(again, doc);
    server.fails(&["get", "--raw", "/openapi/v3/apis/nosuch/v1"], None);
}

fn pod_with_typos(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: web
    image: nginx
    imagee: nginx
    ports: [{{containerPort: 80, portt: 1}}]
"#
    )
}

#[test]
fn field_validation_strict_warn_ignore() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("fv");
    server.ok(&["create", "namespace", &ns], None);

    // kubectl validates strictly by default: the server names every unknown field.
    let out = server.kubectl(&["create", "-n", &ns, "-f", "-", "--v=6"], Some(&pod_with_typos("strict")));
    assert!(!out.success());
    assert_no_openapi_v2("create", &out.stderr_text());
    let err = out.stderr_text();
    assert!(
        err.contains(
            "Error from server (BadRequest): error when creating \"STDIN\": Pod in version \"v1\" cannot be handled \
             as a Pod: strict decoding error: unknown field \"spec.containers[0].imagee\", unknown field \
             \"spec.containers[0].ports[0].portt\""
        ),
        "{err}"
    );
    server.fails(&["get", "pod", "strict", "-n", &ns], None);

    // Warn: created, one warning per field, and the unknown fields are dropped.
    let out = server.kubectl(&["create", "-n", &ns, "-f", "-", "--validate=warn"], Some(&pod_with_typos("warn")));
    assert!(out.success(), "{}", out.stderr_text());
    let err = out.stderr_text();
    assert!(err.contains("Warning: unknown field \"spec.containers[0].imagee\""), "{err}");
    assert!(err.contains("Warning: unknown field \"spec.containers[0].ports[0].portt\""), "{err}");
    let stored = server.ok(&["get", "pod", "warn", "-n", &ns, "-o", "json"], None);
    assert!(!stored.contains("imagee") && !stored.contains("portt"), "{stored}");

    // Ignore: silent.
    let out = server.kubectl(&["create", "-n", &ns, "-f", "-", "--validate=false"], Some(&pod_with_typos("ignore")));
    assert!(out.success(), "{}", out.stderr_text());
    assert!(!out.stderr_text().contains("unknown field"), "{}", out.stderr_text());

    // apply (a strategic merge patch of an existing object) is checked too, and never needs /openapi/v2.
    let out = server.kubectl(&["apply", "-n", &ns, "-f", "-", "--v=6"], Some(&pod_with_typos("warn")));
    assert!(!out.success());
    assert_no_openapi_v2("apply", &out.stderr_text());
    assert!(out.stderr_text().contains("strict decoding error: unknown field \"spec.containers[0].imagee\""));

    // A value of the wrong type is refused in every mode, naming the field.
    let wrong =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: wrong, namespace: {ns}}}\ndata: {{a: [1]}}\n");
    let err = server.fails(&["create", "-f", "-", "--validate=false"], Some(&wrong));
    assert!(
        err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: data.a: invalid type"),
        "{err}"
    );

    // A duplicate key in a JSON body (YAML refuses them before kubectl sends anything).
    let dup = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"dup","namespace":"{ns}"}},"data":{{"a":"1","a":"2"}}}}"#
    );
    let path = format!("/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict");
    let err = server.fails(&["create", "--raw", &path, "-f", "-"], Some(&dup));
    assert!(err.contains("duplicate field \\\"data.a\\\"") || err.contains("duplicate field \"data.a\""), "{err}");
}

#[test]
fn invalid_objects_get_kubernetes_422s() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("inv");
    server.ok(&["create", "namespace", &ns], None);
    let deployment = |selector: &str, labels: &str, image: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {selector}}}}}
  template:
    metadata: {{labels: {{app: {labels}}}}}
    spec:
      containers:
      - name: web
{image}"#
        )
    };
    let err = server.fails(&["create", "-f", "-"], Some(&deployment("web", "api", "")));
    assert_eq!(
        err.trim_end(),
        "The Deployment \"web\" is invalid: \n\
         * spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`\n\
         * spec.template.spec.containers[0].image: Required value"
    );
    server.ok(&["apply", "-f", "-"], Some(&deployment("web", "web", "        image: nginx\n")));
    let err = server.fails(&["apply", "-f", "-"], Some(&deployment("other", "other", "        image: nginx\n")));
    assert_eq!(
        err.trim_end(),
        "The Deployment \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );

    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  ports: [{{port: 0}}]\n"
    );
    let err = server.fails(&["create", "-f", "-"], Some(&service));
    // targetPort defaults to port, so kube-apiserver names both.
    assert_eq!(
        err.trim_end(),
        "The Service \"db\" is invalid: \n\
         * spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n\
         * spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive"
    );
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: Bad_Name, namespace: {ns}}}\nspec:\n  containers: [{{name: c, image: i}}]\n"
    );
    let err = server.fails(&["create", "-f", "-"], Some(&pod));
    assert!(err.contains("The Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");

    // A pod's spec is immutable but for images (and a few fields kubectl users rarely touch).
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: {ns}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"
    );
    server.ok(&["apply", "-f", "-"], Some(&pod));
    server.ok(&["apply", "-f", "-"], Some(&pod.replace("image: busybox", "image: busybox:1")));
    let err = server.fails(&["apply", "-f", "-"], Some(&pod.replace("name: c,", "name: d,")));
    assert!(err.contains("spec: Forbidden: pod updates may not change fields other than"), "{err}");
}

#[test]
fn server_side_dry_run_writes_nothing() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("dry");
    server.ok(&["create", "namespace", &ns], None);
    let objects = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80}}]
"#
    );
    // create: the answer is the object as it would be (defaulted, with an address), and nothing is stored.
    let out = server.ok(&["create", "-f", "-", "--dry-run=server", "-o", "json"], Some(&objects));
    let items: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&out).into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(items[0]["spec"]["strategy"]["type"], "RollingUpdate", "{out}");
    assert!(items[1]["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.43.")), "{out}");
    assert!(items[1]["spec"]["ports"][0]["nodePort"].as_i64().is_some(), "{out}");
    assert_eq!(server.ok(&["get", "deploy,svc", "-n", &ns, "-o", "name"], None).trim(), "");

    // An invalid object still fails in a dry run.
    let err =
        server.fails(&["create", "-f", "-", "--dry-run=server"], Some(&objects.replace("image: nginx", "image: \"\"")));
    assert!(err.contains("spec.template.spec.containers[0].image: Required value"), "{err}");

    let out = server.kubectl(&["apply", "-f", "-", "--dry-run=server", "--v=6"], Some(&objects));
    assert!(out.success(), "{}", out.stderr_text());
    assert_no_openapi_v2("apply --dry-run=server", &out.stderr_text());
    assert!(out.stdout_text().contains("deployment.apps/web created (server dry run)"), "{}", out.stdout_text());
    assert_eq!(server.ok(&["get", "deploy,svc", "-n", &ns, "-o", "name"], None).trim(), "");

    server.ok(&["apply", "-f", "-"], Some(&objects));
    let out =
        server.ok(&["apply", "-f", "-", "--dry-run=server"], Some(&objects.replace("replicas: 2", "replicas: 5")));
    assert!(out.contains("deployment.apps/web configured (server dry run)"), "{out}");
    let out = server.ok(&["scale", "deploy", "web", "-n", &ns, "--replicas=7", "--dry-run=server"], None);
    assert!(out.contains("scaled (server dry run)"), "{out}");
    let out = server.ok(
        &["label", "deploy", "web", "-n", &ns, "tier=front", "--dry-run=server", "-o", "jsonpath={.metadata.labels}"],
        None,
    );
    assert!(out.contains("front"), "{out}");
    let out = server.ok(&["delete", "deploy", "web", "-n", &ns, "--dry-run=server"], None);
    assert!(out.contains("deleted (server dry run)"), "{out}");
    // (The controllers may have written the status meanwhile: compare what the dry runs would change.)
    let after =
        server.ok(&["get", "deploy", "web", "-n", &ns, "-o", "jsonpath={.spec.replicas} {.metadata.labels}"], None);
    assert_eq!(after, "2 ");

    // Only `All` is a dry run.
    let cm = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c","namespace":"{ns}"}}}}"#);
    let path = format!("/api/v1/namespaces/{ns}/configmaps?dryRun=Everything");
    let err = server.fails(&["create", "--raw", &path, "-f", "-"], Some(&cm));
    assert!(err.contains("dryRun: Unsupported value"), "{err}");
}
