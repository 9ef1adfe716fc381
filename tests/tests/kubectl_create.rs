//! kubectl's typed generators against a real `flotilla server --no-agent` (tier `api`): `kubectl create
//! deployment|job|cronjob|service|secret|configmap`, `kubectl run` (with `--overrides` reaching far corners
//! of the Pod schema), `kubectl expose` and `kubectl drain` (protobuf DeleteOptions). kubectl 1.33 sends all of these as protobuf
//! (`application/vnd.kubernetes.protobuf`, never falling back to JSON), so they hold the server's protobuf
//! decoder to the JSON the same objects would have had. Each object is read back with `kubectl get -o json`,
//! checked field by field and parsed into its k8s-openapi type.

mod common;

use common::Tier;
use common::server::{ApiServer, unique};
use serde_json::{Value, json};

fn get_json(server: &ApiServer, ns: &str, what: &str) -> Value {
    let out = server.ok(&["get", "-n", ns, what, "-o", "json"], None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {what} -o json: {e}\n{out}"))
}

fn at<'a>(obj: &'a Value, pointer: &str) -> &'a Value {
    obj.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in {obj:#}"))
}

/// Every leaf of `expected` is in `actual` at the same place (defaulting may add fields, never change these).
/// Arrays match element by element.
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                let sub = a.get(k).unwrap_or_else(|| panic!("missing {path}/{k}; got {actual:#}"));
                assert_contains(sub, v, &format!("{path}/{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "length of {path}: got {actual:#}");
            for (i, (a, e)) in a.iter().zip(e).enumerate() {
                assert_contains(a, e, &format!("{path}/{i}"));
            }
        }
        _ => assert_eq!(actual, expected, "at {path}"),
    }
}

fn parses<K: k8s_openapi::serde::de::DeserializeOwned>(obj: &Value) {
    if let Err(e) = serde_json::from_value::<K>(obj.clone()) {
        panic!("not a valid {}: {e}\n{obj:#}", std::any::type_name::<K>());
    }
}

#[test]
fn kubectl_create_generators_send_protobuf_the_server_reads() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("create");
    server.ok(&["create", "namespace", &ns], None);
    let n = ["-n", ns.as_str()];

    // Deployment: replicas, port, labels and selector.
    server.ok(&[&n[..], &["create", "deployment", "web", "--image=x", "--replicas=2", "--port=80"]].concat(), None);
    let deploy = get_json(&server, &ns, "deployment/web");
    assert_eq!(at(&deploy, "/spec/replicas"), &json!(2));
    assert_eq!(at(&deploy, "/spec/selector/matchLabels"), &json!({"app": "web"}));
    assert_eq!(at(&deploy, "/spec/template/metadata/labels"), &json!({"app": "web"}));
    let container = at(&deploy, "/spec/template/spec/containers/0");
    assert_eq!(container["image"], "x");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert!(deploy.pointer("/metadata/uid").and_then(Value::as_str).is_some_and(|u| !u.is_empty()));
    parses::<k8s_openapi::api::apps::v1::Deployment>(&deploy);

    // A pointer field set to zero stays zero (it is not "omitted").
    server.ok(&[&n[..], &["create", "deployment", "idle", "--image=x", "--replicas=0"]].concat(), None);
    assert_eq!(at(&get_json(&server, &ns, "deployment/idle"), "/spec/replicas"), &json!(0));

    // Pod from kubectl run: env, labels, port, args.
    server.ok(
        &[&n[..], &["run", "p", "--image=x", "--env=A=1", "--labels=a=b", "--port=8080", "--", "sleep", "1"]].concat(),
        None,
    );
    let pod = get_json(&server, &ns, "pod/p");
    assert_eq!(at(&pod, "/metadata/labels"), &json!({"a": "b"}));
    let c = at(&pod, "/spec/containers/0");
    assert_eq!(c["name"], "p");
    assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(c["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
    assert_eq!(c["args"], json!(["sleep", "1"]));
    parses::<k8s_openapi::api::core::v1::Pod>(&pod);

    // Job and CronJob.
    server.ok(&[&n[..], &["create", "job", "j", "--image=x", "--", "echo", "hi"]].concat(), None);
    let job = get_json(&server, &ns, "job/j");
    assert_eq!(at(&job, "/spec/template/spec/containers/0/command"), &json!(["echo", "hi"]));
    assert_eq!(at(&job, "/spec/template/spec/restartPolicy"), &json!("Never"));
    parses::<k8s_openapi::api::batch::v1::Job>(&job);
    server.ok(
        &[&n[..], &["create", "cronjob", "cj", "--image=x", "--schedule=*/5 * * * *", "--", "echo", "hi"]].concat(),
        None,
    );
    let cronjob = get_json(&server, &ns, "cronjob/cj");
    assert_eq!(at(&cronjob, "/spec/schedule"), &json!("*/5 * * * *"));
    assert_eq!(at(&cronjob, "/spec/jobTemplate/spec/template/spec/containers/0/command"), &json!(["echo", "hi"]));
    assert_eq!(at(&cronjob, "/spec/jobTemplate/spec/template/spec/restartPolicy"), &json!("OnFailure"));
    parses::<k8s_openapi::api::batch::v1::CronJob>(&cronjob);
    // A Job from the CronJob: owner reference (a bool pointer, controller: true) and annotation.
    server.ok(&[&n[..], &["create", "job", "manual", "--from=cronjob/cj"]].concat(), None);
    let manual = get_json(&server, &ns, "job/manual");
    let owner = at(&manual, "/metadata/ownerReferences/0");
    assert_eq!((&owner["kind"], &owner["name"], &owner["controller"]), (&json!("CronJob"), &json!("cj"), &json!(true)));
    assert_eq!(owner["uid"], cronjob["metadata"]["uid"]);
    assert_eq!(at(&manual, "/metadata/annotations/cronjob.kubernetes.io~1instantiate"), &json!("manual"));

    // Services: IntOrString target ports, node ports, headless, external names.
    server.ok(&[&n[..], &["create", "service", "clusterip", "c1", "--tcp=80:8080"]].concat(), None);
    let svc = get_json(&server, &ns, "service/c1");
    assert_eq!(at(&svc, "/spec/type"), &json!("ClusterIP"));
    assert_contains(
        at(&svc, "/spec/ports"),
        &json!([{"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
        "ports",
    );
    assert_eq!(at(&svc, "/spec/selector"), &json!({"app": "c1"}));
    parses::<k8s_openapi::api::core::v1::Service>(&svc);
    server.ok(&[&n[..], &["create", "service", "nodeport", "n1", "--tcp=80:http", "--node-port=30099"]].concat(), None);
    let svc = get_json(&server, &ns, "service/n1");
    assert_eq!(at(&svc, "/spec/type"), &json!("NodePort"));
    assert_contains(at(&svc, "/spec/ports/0"), &json!({"port": 80, "targetPort": "http", "nodePort": 30099}), "port");
    server.ok(&[&n[..], &["create", "service", "clusterip", "h1", "--clusterip=None"]].concat(), None);
    assert_eq!(at(&get_json(&server, &ns, "service/h1"), "/spec/clusterIP"), &json!("None"));
    server.ok(&[&n[..], &["create", "service", "externalname", "e1", "--external-name=example.com"]].concat(), None);
    let svc = get_json(&server, &ns, "service/e1");
    assert_eq!(
        (at(&svc, "/spec/type"), at(&svc, "/spec/externalName")),
        (&json!("ExternalName"), &json!("example.com"))
    );

    // kubectl expose reads the Deployment's selector and ports into a new Service.
    server.ok(
        &[&n[..], &["expose", "deployment", "web", "--port=8080", "--target-port=80", "--name=web-svc"]].concat(),
        None,
    );
    let svc = get_json(&server, &ns, "service/web-svc");
    assert_eq!(at(&svc, "/spec/selector"), &json!({"app": "web"}));
    assert_contains(at(&svc, "/spec/ports"), &json!([{"port": 8080, "targetPort": 80}]), "ports");

    // Secret (map<string, bytes>) and ConfigMap from files (data and binaryData).
    server.ok(
        &[&n[..], &["create", "secret", "generic", "s1", "--from-literal=user=admin", "--from-literal=pw=p@ss"]]
            .concat(),
        None,
    );
    let secret = get_json(&server, &ns, "secret/s1");
    assert_eq!(at(&secret, "/data"), &json!({"user": "YWRtaW4=", "pw": "cEBzcw=="}));
    assert_eq!(at(&secret, "/type"), &json!("Opaque"));
    parses::<k8s_openapi::api::core::v1::Secret>(&secret);
    let text = server.dir.path().join("app.conf");
    std::fs::write(&text, "line1\nline2\n").expect("writing app.conf");
    let binary = server.dir.path().join("blob.bin");
    std::fs::write(&binary, [0u8, 159, 146, 150, 255]).expect("writing blob.bin");
    let (from_text, from_binary) =
        (format!("--from-file={}", text.display()), format!("--from-file={}", binary.display()));
    server.ok(&[&n[..], &["create", "configmap", "files", &from_text, &from_binary]].concat(), None);
    let cm = get_json(&server, &ns, "configmap/files");
    assert_eq!(at(&cm, "/data"), &json!({"app.conf": "line1\nline2\n"}));
    assert_eq!(at(&cm, "/binaryData"), &json!({"blob.bin": "AJ+Slv8="}));
    parses::<k8s_openapi::api::core::v1::ConfigMap>(&cm);

    // kubectl drain deletes pods with client-go's typed Delete: DeleteOptions in protobuf.
    let node = unique("node");
    let manifest = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n---\napiVersion: v1\nkind: Pod\n\
         metadata: {{name: bound, namespace: {ns}}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\n"
    );
    server.ok(&["create", "-f", "-"], Some(&manifest));
    let drained = server.ok(&["drain", &node, "--force", "--grace-period=0", "--timeout=30s"], None);
    assert!(drained.contains("drained"), "{drained}");
    let left = server.kubectl(&["get", "-n", &ns, "pod/bound"], None);
    assert!(!left.success() && left.stderr_text().contains("NotFound"), "{}", left.stderr_text());

    // A kind this server does not serve: kubectl's usual not-found error, not a decoding error.
    let err = server.fails(&["create", "priorityclass", "high", "--value=1000"], None);
    assert!(err.contains("the server could not find the requested resource"), "{err}");
}

#[test]
fn kubectl_run_overrides_reach_every_corner_of_the_pod() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("run");
    server.ok(&["create", "namespace", &ns], None);
    // Inline messages (volume sources, probe handlers), IntOrString, Quantity, int64 and bool pointers set to
    // zero and false, maps, nested repeated messages, bytes-free strings with unicode.
    let spec = json!({
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo", "bar"]}],
        "activeDeadlineSeconds": 0,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": false,
        "nodeSelector": {"disk": "ssd", "zone": "ü-1"},
        "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "fsGroup": 2000,
                            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
        "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"run": "p"}}}],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "containers": [{
            "name": "p", "image": "busybox", "command": ["sh", "-c"], "args": ["sleep 3600"], "workingDir": "/w",
            "env": [
                {"name": "NEG", "value": "-1"},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": false}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
            ],
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg", "optional": true}}],
            "ports": [{"name": "http", "containerPort": 8080, "hostPort": 18080, "protocol": "UDP",
                       "hostIP": "127.0.0.1"}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                          "requests": {"cpu": "100m", "ephemeral-storage": "1Gi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP",
                                           "httpHeaders": [{"name": "X-A", "value": "b"}]},
                               "periodSeconds": 3, "failureThreshold": 7},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5,
                              "terminationGracePeriodSeconds": 0},
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ok"]}},
            "lifecycle": {"preStop": {"sleep": {"seconds": 2}}, "postStart": {"exec": {"command": ["true"]}}},
            "securityContext": {"privileged": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "runAsGroup": 0},
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                             {"name": "conf", "mountPath": "/conf", "readOnly": true, "subPath": "x"}],
            "stdin": true, "tty": true, "imagePullPolicy": "IfNotPresent"
        }],
        "volumes": [
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "conf", "configMap": {"name": "cfg", "defaultMode": 420,
                                           "items": [{"key": "a", "path": "a.txt", "mode": 256}]}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "proj", "projected": {"sources": [
                {"secret": {"name": "s", "items": [{"key": "k", "path": "k"}]}},
                {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": "api"}}]}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}}
        ]
    });
    let overrides = json!({"apiVersion": "v1", "metadata": {"annotations": {"note": "ünïcode ✓"}}, "spec": spec});
    let overrides_arg = format!("--overrides={overrides}");
    server.ok(&["run", "-n", &ns, "p", "--image=busybox", &overrides_arg], None);
    let pod = get_json(&server, &ns, "pod/p");
    assert_contains(&pod["spec"], &spec, "spec");
    assert_eq!(at(&pod, "/metadata/annotations/note"), &json!("ünïcode ✓"));
    assert_eq!(at(&pod, "/metadata/labels"), &json!({"run": "p"}));
    parses::<k8s_openapi::api::core::v1::Pod>(&pod);
}
