//! Unit tests of the conversion, at least one per row of the conversion list. Each builds a
//! project from inline canonical JSON (the shape `docker-compose config --format json` prints) and
//! asserts on the objects (as JSON, so the assertions read like the YAML a user sees) and diagnostics.

use serde_json::{Value, json};

use super::*;

fn project(value: Value) -> Project {
    crate::model::from_json(value).expect("test project decodes")
}

fn run_with(value: Value, files: &MemoryFiles, options: &Options) -> Result<Conversion, Errors> {
    convert(&project(value), &SourceMap::default(), files, options)
}

fn run(value: Value) -> Conversion {
    run_with(value, &MemoryFiles::default(), &Options::default()).expect("conversion succeeds")
}

/// The object of `kind` named `name`, as JSON.
fn obj(c: &Conversion, kind: &str, name: &str) -> Value {
    let found = c.objects.iter().find(|o| o.kind() == kind && o.name() == name);
    let listed: Vec<String> = c.objects.iter().map(|o| format!("{}/{}", o.kind(), o.name())).collect();
    serde_json::to_value(found.unwrap_or_else(|| panic!("no {kind}/{name} in {listed:?}"))).unwrap()
}

fn has(c: &Conversion, kind: &str, name: &str) -> bool {
    c.objects.iter().any(|o| o.kind() == kind && o.name() == name)
}

/// The pod template's first container.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn warnings(c: &Conversion) -> Vec<String> {
    c.diagnostics.iter().map(ToString::to_string).collect()
}

fn warned(c: &Conversion, key: &str) -> bool {
    c.diagnostics.iter().any(|d| d.key == key)
}

fn web(service: Value) -> Value {
    json!({"name": "demo", "services": {"web": service}})
}

#[test]
fn deployment_by_default_with_our_labels_and_pull_policy() {
    let c = run(web(json!({"image": "nginx", "command": null, "entrypoint": null})));
    let d = obj(&c, "Deployment", "web");
    assert_eq!(d["metadata"]["namespace"], "demo");
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "web");
    assert_eq!(labels["app.kubernetes.io/part-of"], "demo");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "flotilla");
    assert_eq!(labels["compose.flotilla.dev/service"], "web");
    assert_eq!(d["spec"]["selector"]["matchLabels"], json!({"compose.flotilla.dev/service": "web"}));
    assert_eq!(container(&d)["image"], "nginx");
    assert_eq!(container(&d)["imagePullPolicy"], "IfNotPresent");
    assert!(container(&d).get("args").is_none());
    assert!(c.diagnostics.is_empty(), "{:?}", warnings(&c));
}

#[test]
fn global_mode_is_a_daemonset() {
    let c = run(web(json!({"image": "agent", "deploy": {"mode": "global", "replicas": 2}})));
    assert!(has(&c, "DaemonSet", "web"));
    assert!(warned(&c, "services.web.deploy.replicas"));
}

#[test]
fn statefulset_when_asked_by_x_flotilla_or_kompose() {
    let c = run(json!({"name": "p", "services": {
        "db": {"image": "postgres", "x-flotilla": {"controller": "statefulset", "liveness": true}},
        "cache": {"image": "redis", "labels": {"kompose.controller.type": "statefulset"}}
    }}));
    let db = obj(&c, "StatefulSet", "db");
    assert_eq!(db["spec"]["serviceName"], "db");
    assert!(has(&c, "StatefulSet", "cache"));
    // The kompose label is a setting: it is not copied into annotations.
    assert!(obj(&c, "StatefulSet", "cache")["metadata"]["annotations"].get("kompose.controller.type").is_none());
}

#[test]
fn bad_x_flotilla_is_a_warning() {
    let c = run(web(json!({"image": "a", "x-flotilla": {"controller": "pod", "colour": 1}})));
    assert!(has(&c, "Deployment", "web"));
    assert!(warned(&c, "services.web.x-flotilla"));
}

#[test]
fn job_only_for_services_waited_on_to_complete() {
    let c = run(json!({"name": "p", "services": {
        "migrate": {"image": "app", "command": ["migrate"], "restart": "no"},
        "app": {"image": "app", "depends_on": {"migrate": {"condition": "service_completed_successfully", "required": true}}},
        "once": {"image": "app", "restart": "no"}
    }}));
    let job = obj(&c, "Job", "migrate");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    // `restart: no` alone does not make a Job, but the difference is reported.
    assert!(has(&c, "Deployment", "once"));
    assert!(warned(&c, "services.once.restart"));
    // The dependant cannot wait for completion from inside its pod: annotation and warning, no init.
    let app = obj(&c, "Deployment", "app");
    assert!(
        app["metadata"]["annotations"]["compose.flotilla.dev/depends-on"]
            .as_str()
            .unwrap()
            .contains("service_completed_successfully")
    );
    assert!(app["spec"]["template"]["spec"].get("initContainers").is_none());
    assert!(warned(&c, "services.app.depends_on.migrate"));
}

#[test]
fn job_restart_on_failure_sets_backoff() {
    let c = run(web(json!({"image": "a", "restart": "on-failure:4", "x-flotilla": {"controller": "job"}})));
    let job = obj(&c, "Job", "web");
    assert_eq!(job["spec"]["backoffLimit"], 4);
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
}

#[test]
fn names_are_made_valid_and_the_original_kept() {
    let c = run(
        json!({"name": "my_app", "services": {"front_end": {"image": "a"}, "NGINX": {"image": "n"}, "appFoo": {"image": "f"}}}),
    );
    assert!(has(&c, "Namespace", "my-app"));
    let d = obj(&c, "Deployment", "front-end");
    assert_eq!(d["metadata"]["namespace"], "my-app");
    assert_eq!(d["metadata"]["annotations"]["compose.flotilla.dev/service-name"], "front_end");
    assert_eq!(d["spec"]["template"]["metadata"]["annotations"]["compose.flotilla.dev/service-name"], "front_end");
    assert_eq!(
        obj(&c, "Service", "front-end")["metadata"]["annotations"]["compose.flotilla.dev/service-name"],
        "front_end"
    );
    assert!(has(&c, "Deployment", "nginx"));
    assert!(has(&c, "Deployment", "appfoo"));
}

#[test]
fn name_collisions_are_errors() {
    let err = run_with(
        json!({"name": "p", "services": {"front_end": {"image": "a"}, "front-end": {"image": "b"}}}),
        &MemoryFiles::default(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("both become \"front-end\""), "{err}");
}

#[test]
fn namespace_option_wins() {
    let options = Options { namespace: Some("team-a".into()), ..Default::default() };
    let c = run_with(web(json!({"image": "a"})), &MemoryFiles::default(), &options).unwrap();
    assert!(has(&c, "Namespace", "team-a"));
    assert_eq!(obj(&c, "Deployment", "web")["metadata"]["namespace"], "team-a");
}

#[test]
fn two_services_for_published_ports() {
    let c = run(web(json!({
        "image": "nginx",
        "ports": [
            {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
            {"mode": "ingress", "target": 53, "published": "5353", "protocol": "udp", "host_ip": "127.0.0.1"},
            {"mode": "ingress", "target": 9000, "published": "9000", "protocol": "tcp"},
            {"mode": "ingress", "target": 9001, "published": "9001", "protocol": "tcp"}
        ],
        "expose": ["3000"]
    })));
    let svc = obj(&c, "Service", "web");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["spec"].get("clusterIP").is_none());
    let ports: Vec<(i64, i64, &str)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["targetPort"].as_i64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    // Other services call the container port, not the published one.
    assert_eq!(
        ports,
        vec![(80, 80, "TCP"), (53, 53, "UDP"), (9000, 9000, "TCP"), (9001, 9001, "TCP"), (3000, 3000, "TCP")]
    );
    let published = obj(&c, "Service", "web-published");
    assert_eq!(published["spec"]["type"], "LoadBalancer");
    assert_eq!(published["spec"]["ports"][0]["port"], 8080);
    assert_eq!(published["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(published["spec"]["ports"][1]["protocol"], "UDP");
    assert_eq!(published["spec"]["ports"].as_array().unwrap().len(), 4);
    assert_eq!(published["metadata"]["annotations"]["compose.flotilla.dev/host-ips"], "5353/udp=127.0.0.1");
    assert!(warned(&c, "services.web.ports.1"));
    let d = obj(&c, "Deployment", "web");
    assert_eq!(container(&d)["ports"].as_array().unwrap().len(), 5);
}

#[test]
fn a_service_without_ports_gets_a_headless_service() {
    let c = run(web(json!({"image": "worker"})));
    let svc = obj(&c, "Service", "web");
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert!(svc["spec"].get("ports").is_none());
    assert!(!has(&c, "Service", "web-published"));
}

#[test]
fn dnsrr_is_headless_and_kompose_type_sets_the_published_type() {
    let c = run(web(json!({
        "image": "a",
        "deploy": {"endpoint_mode": "dnsrr"},
        "labels": {"kompose.service.type": "nodeport", "kompose.service.nodeport.port": "30080"},
        "ports": [{"mode": "ingress", "target": 80, "published": "80", "protocol": "tcp"}]
    })));
    assert_eq!(obj(&c, "Service", "web")["spec"]["clusterIP"], "None");
    let p = obj(&c, "Service", "web-published");
    assert_eq!(p["spec"]["type"], "NodePort");
    assert_eq!(p["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn build_gives_the_image_compose_would_build() {
    let c = run(web(json!({"build": {"context": "/src/web", "dockerfile": "Dockerfile"}})));
    let d = obj(&c, "Deployment", "web");
    assert_eq!(container(&d)["image"], "demo-web");
    assert_eq!(container(&d)["imagePullPolicy"], "IfNotPresent");
    let build: Value =
        serde_json::from_str(d["metadata"]["annotations"]["compose.flotilla.dev/build"].as_str().unwrap()).unwrap();
    assert_eq!(build["context"], "/src/web");
    assert!(warned(&c, "services.web.build"));
}

#[test]
fn dollars_reach_the_container_as_compose_hands_them_over() {
    // Canonical form: compose prints every literal `$` as `$$`.
    let c = run(web(json!({
        "image": "a",
        "entrypoint": ["sh", "-c"],
        "command": ["echo $$HOME $$(date) $$$$"],
        "environment": {"PLAIN": "x", "SHELL_VAR": "$$HOME", "SUBST": "$$(HOME)", "TWO": "$$$$", "UNSET": null}
    })));
    let d = obj(&c, "Deployment", "web");
    let c0 = container(&d);
    assert_eq!(c0["command"], json!(["sh", "-c"]));
    // The container must see `echo $HOME $(date) $$`: `$(` and `$$` are doubled for the kubelet.
    assert_eq!(c0["args"], json!(["echo $HOME $$(date) $$$"]));
    let env: Vec<(String, String)> = c0["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().into(), e["value"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        env,
        vec![
            ("PLAIN".into(), "x".into()),
            ("SHELL_VAR".into(), "$HOME".into()),
            ("SUBST".into(), "$$(HOME)".into()),
            ("TWO".into(), "$$$".into())
        ]
    );
    assert!(warned(&c, "services.web.environment.UNSET"));
}

#[test]
fn kubelet_escaping() {
    assert_eq!(kubelet_escape("$HOME"), "$HOME");
    assert_eq!(kubelet_escape("$(x)"), "$$(x)");
    assert_eq!(kubelet_escape("$$"), "$$$");
    assert_eq!(kubelet_escape("a$"), "a$");
    assert_eq!(unescape("$$x $$$$"), "$x $$");
}

#[test]
fn env_file_becomes_a_configmap_read_with_env_from() {
    let files = MemoryFiles::default().with("/p/app.env", "A=1\nB=two\n");
    let c = run_with(
        web(json!({
            "image": "a",
            "env_file": [{"path": "/p/app.env", "required": true}, {"path": "/p/missing.env", "required": false}],
            "environment": {"A": "1", "B": "override", "C": "3"}
        })),
        &files,
        &Options::default(),
    )
    .unwrap();
    let cm = obj(&c, "ConfigMap", "web-env-0");
    assert_eq!(cm["data"], json!({"A": "1", "B": "two"}));
    let d = obj(&c, "Deployment", "web");
    assert_eq!(container(&d)["envFrom"], json!([{"configMapRef": {"name": "web-env-0"}}]));
    // A repeats the file and is left to envFrom; B overrides it and stays in env, which wins.
    let names: Vec<&str> =
        container(&d)["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["B", "C"]);
}

#[test]
fn a_missing_required_env_file_is_an_error() {
    let err = run_with(
        web(json!({"image": "a", "env_file": [{"path": "/nope.env"}]})),
        &MemoryFiles::default(),
        &Options::default(),
    );
    assert!(err.unwrap_err().to_string().contains("services.web.env_file.0: cannot read /nope.env"));
}

#[test]
fn container_and_pod_settings() {
    let c = run(web(json!({
        "image": "a",
        "working_dir": "/app",
        "user": "1000:2000",
        "stdin_open": true,
        "tty": true,
        "hostname": "Box_1",
        "domainname": "example",
        "extra_hosts": ["db=10.0.0.1", "db2=10.0.0.1", "v6=::1"],
        "dns": ["8.8.8.8"],
        "dns_search": ["example.com"],
        "dns_opt": ["ndots:2", "use-vc"],
        "cap_add": ["NET_ADMIN"],
        "cap_drop": ["ALL"],
        "privileged": true,
        "read_only": true,
        "sysctls": {"net.ipv4.tcp_syncookies": "1", "net.core.somaxconn": "1024"},
        "stop_grace_period": "1m30s",
        "stop_signal": "SIGUSR1",
        "labels": {"com.example.team": "web", "bad key": "x", "kompose.image-pull-policy": "Always", "kompose.hpa.cpu": "50"},
        "security_opt": ["no-new-privileges:true"],
        "init": true,
        "platform": "linux/arm64",
        "group_add": ["42", "mail"]
    })));
    let d = obj(&c, "Deployment", "web");
    let pod = &d["spec"]["template"]["spec"];
    let c0 = container(&d);
    assert_eq!(c0["workingDir"], "/app");
    assert_eq!(c0["securityContext"]["runAsUser"], 1000);
    assert_eq!(c0["securityContext"]["runAsGroup"], 2000);
    assert_eq!(c0["securityContext"]["capabilities"], json!({"add": ["NET_ADMIN"], "drop": ["ALL"]}));
    assert_eq!(c0["securityContext"]["privileged"], true);
    assert_eq!(c0["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c0["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c0["stdin"], true);
    assert_eq!(c0["tty"], true);
    assert_eq!(c0["lifecycle"]["stopSignal"], "SIGUSR1");
    assert_eq!(pod["os"]["name"], "linux");
    assert_eq!(pod["hostname"], "box-1");
    assert_eq!(pod["subdomain"], "example");
    assert_eq!(
        pod["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["db", "db2"]}, {"ip": "::1", "hostnames": ["v6"]}])
    );
    assert_eq!(pod["dnsConfig"]["nameservers"], json!(["8.8.8.8"]));
    assert_eq!(pod["dnsConfig"]["searches"], json!(["example.com"]));
    assert_eq!(pod["dnsConfig"]["options"], json!([{"name": "ndots", "value": "2"}, {"name": "use-vc"}]));
    assert_eq!(pod["securityContext"]["sysctls"].as_array().unwrap().len(), 2);
    assert_eq!(pod["securityContext"]["supplementalGroups"], json!([42]));
    assert_eq!(pod["terminationGracePeriodSeconds"], 90);
    assert_eq!(pod["shareProcessNamespace"], true);
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}));
    assert_eq!(d["metadata"]["annotations"]["com.example.team"], "web");
    assert!(warned(&c, "services.web.hostname"));
    assert!(warned(&c, "services.web.labels.bad key"));
    assert_eq!(c0["imagePullPolicy"], "Always");
    assert!(warned(&c, "services.web.labels.kompose.hpa.cpu"));
    assert!(warned(&c, "services.web.sysctls.net.core.somaxconn"));
    assert!(!warned(&c, "services.web.sysctls.net.ipv4.tcp_syncookies"));
    assert!(warned(&c, "services.web.group_add"));
}

#[test]
fn non_numeric_user_is_a_warning() {
    let c = run(web(json!({"image": "a", "user": "nobody"})));
    assert!(warned(&c, "services.web.user"));
    assert!(container(&obj(&c, "Deployment", "web")).get("securityContext").is_none());
}

#[test]
fn deploy_replicas_resources_placement_and_updates() {
    let c = run(web(json!({
        "image": "a",
        "deploy": {
            "replicas": 3,
            "resources": {
                "limits": {"cpus": 0.5, "memory": "52428800"},
                "reservations": {"cpus": 0.25, "memory": "20971520", "devices": [{"capabilities": ["gpu"], "driver": "nvidia", "count": 2}]}
            },
            "placement": {
                "constraints": ["node.hostname==n1", "node.labels.disk!=hdd", "node.role==manager", "node.id==x"],
                "preferences": [{"spread": "node.labels.zone"}],
                "max_replicas_per_node": 1
            },
            "update_config": {"parallelism": 2, "order": "start-first", "delay": "10s"}
        }
    })));
    let d = obj(&c, "Deployment", "web");
    assert_eq!(d["spec"]["replicas"], 3);
    let r = &container(&d)["resources"];
    assert_eq!(r["limits"], json!({"cpu": "500m", "memory": "50Mi", "nvidia.com/gpu": "2"}));
    assert_eq!(r["requests"], json!({"cpu": "250m", "memory": "20Mi"}));
    let pod = &d["spec"]["template"]["spec"];
    let exprs = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"];
    assert_eq!(exprs[0], json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}));
    assert_eq!(exprs[1], json!({"key": "disk", "operator": "NotIn", "values": ["hdd"]}));
    assert_eq!(exprs[2], json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}));
    assert!(warned(&c, "services.web.deploy.placement.constraints.3"));
    assert_eq!(pod["topologySpreadConstraints"][0]["topologyKey"], "zone");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}})
    );
    assert!(warned(&c, "services.web.deploy.update_config"));
}

#[test]
fn healthcheck_is_a_readiness_probe_only() {
    let c = run(web(json!({
        "image": "a",
        "healthcheck": {"test": ["CMD-SHELL", "curl -f http://localhost || exit 1"], "interval": "5s", "timeout": "2s", "retries": 4, "start_period": "40s"}
    })));
    let c0 = container(&obj(&c, "Deployment", "web")).clone();
    assert_eq!(
        c0["readinessProbe"],
        json!({"exec": {"command": ["/bin/sh", "-c", "curl -f http://localhost || exit 1"]}, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 4})
    );
    assert!(c0.get("livenessProbe").is_none());
    assert!(c0.get("startupProbe").is_none());
}

#[test]
fn liveness_and_startup_probes_when_asked() {
    let c = run(web(json!({
        "image": "a",
        "x-flotilla": {"liveness": true, "startup": true},
        "healthcheck": {"test": ["CMD", "check"], "start_period": "60s"}
    })));
    let c0 = container(&obj(&c, "Deployment", "web")).clone();
    assert_eq!(c0["readinessProbe"]["periodSeconds"], 30);
    assert_eq!(c0["readinessProbe"]["timeoutSeconds"], 30);
    assert_eq!(c0["livenessProbe"]["exec"]["command"], json!(["check"]));
    assert_eq!(c0["startupProbe"]["failureThreshold"], 60 / 30 + 3);
}

#[test]
fn disabled_healthcheck_makes_no_probe() {
    let c = run(web(json!({"image": "a", "healthcheck": {"test": ["NONE"]}})));
    assert!(container(&obj(&c, "Deployment", "web")).get("readinessProbe").is_none());
}

#[test]
fn depends_on_waits_with_init_containers() {
    let c = run(json!({"name": "p", "services": {
        "web": {"image": "a", "depends_on": {
            "db": {"condition": "service_healthy", "required": true, "restart": true},
            "worker": {"condition": "service_started", "required": true}
        }},
        "db": {"image": "postgres", "ports": [{"mode": "ingress", "target": 5432, "protocol": "tcp"}]},
        "worker": {"image": "w"}
    }}));
    let d = obj(&c, "Deployment", "web");
    let ann: Value =
        serde_json::from_str(d["metadata"]["annotations"]["compose.flotilla.dev/depends-on"].as_str().unwrap())
            .unwrap();
    assert_eq!(ann["db"], json!({"condition": "service_healthy", "required": true, "restart": true}));
    let init = &d["spec"]["template"]["spec"]["initContainers"];
    assert_eq!(init[0]["name"], "wait-for-db");
    assert_eq!(init[0]["image"], "busybox:1.36");
    assert!(init[0]["command"][2].as_str().unwrap().contains("nc -z -w 2 db 5432"));
    // worker has no port: its Service is headless and DNS lists only ready pods.
    assert!(init[1]["command"][2].as_str().unwrap().contains("nslookup worker"));
}

#[test]
fn flotilla_up_orders_startup_itself_so_no_wait_containers() {
    let value = json!({"name": "p", "services": {
        "web": {"image": "a", "depends_on": {"db": {"condition": "service_healthy", "required": true}}},
        "db": {"image": "postgres"}
    }});
    let options = Options { wait_init_containers: false, ..Options::default() };
    let c = run_with(value, &MemoryFiles::default(), &options).unwrap();
    let d = obj(&c, "Deployment", "web");
    assert!(d["spec"]["template"]["spec"]["initContainers"].is_null());
    // The annotation stays: it is what `up` orders startup by.
    assert!(
        d["metadata"]["annotations"]["compose.flotilla.dev/depends-on"].as_str().unwrap().contains("service_healthy")
    );
}

#[test]
fn named_volumes_are_claims_sized_by_kompose_labels() {
    let c = run(json!({"name": "p",
        "services": {"db": {"image": "pg", "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/pg", "volume": {}}]}},
        "volumes": {"data": {"name": "p_data", "labels": {"kompose.volume.size": "5Gi"}}}
    }));
    let pvc = obj(&c, "PersistentVolumeClaim", "data");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let d = obj(&c, "Deployment", "db");
    assert_eq!(d["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "data");
    assert_eq!(container(&d)["volumeMounts"][0], json!({"name": "pvc-data", "mountPath": "/var/lib/pg"}));
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
}

#[test]
fn volume_x_flotilla_and_default_size() {
    let c = run(json!({"name": "p",
        "services": {"a": {"image": "a", "volumes": [{"type": "volume", "source": "v", "target": "/v"}, {"type": "volume", "source": "w", "target": "/w"}]}},
        "volumes": {"v": {"x-flotilla": {"size": "2Gi", "access_mode": "ReadWriteMany", "storage_class": "fast"}}, "w": {}}
    }));
    let v = obj(&c, "PersistentVolumeClaim", "v");
    assert_eq!(v["spec"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(v["spec"]["storageClassName"], "fast");
    assert_eq!(obj(&c, "PersistentVolumeClaim", "w")["spec"]["resources"]["requests"]["storage"], "100Mi");
}

#[test]
fn bind_mount_of_a_file_becomes_a_configmap_with_a_warning() {
    let files = MemoryFiles::default()
        .with("/p/nginx.conf", "events {}\n")
        .with("/p/conf.d/a.conf", "a")
        .with("/p/conf.d/b.conf", "b");
    let c = run_with(
        web(json!({"image": "nginx", "volumes": [
            {"type": "bind", "source": "/p/nginx.conf", "target": "/etc/nginx/nginx.conf", "read_only": true, "bind": {"create_host_path": true}},
            {"type": "bind", "source": "/p/conf.d", "target": "/etc/nginx/conf.d", "bind": {"create_host_path": true}}
        ]})),
        &files,
        &Options::default(),
    )
    .unwrap();
    let cm = obj(&c, "ConfigMap", "web-etc-nginx-nginx-conf");
    assert_eq!(cm["data"], json!({"nginx.conf": "events {}\n"}));
    let dir = obj(&c, "ConfigMap", "web-etc-nginx-conf-d");
    assert_eq!(dir["data"], json!({"a.conf": "a", "b.conf": "b"}));
    let d = obj(&c, "Deployment", "web");
    let mounts = &container(&d)["volumeMounts"];
    assert_eq!(mounts[0]["subPath"], "nginx.conf");
    assert_eq!(mounts[0]["readOnly"], true);
    assert!(mounts[1].get("subPath").is_none());
    assert!(warned(&c, "services.web.volumes.0"));
    assert!(warnings(&c).iter().any(|w| w.contains("cannot write to it")));
}

#[test]
fn bind_mount_as_host_path_when_asked() {
    let options = Options { bind_mounts: BindMounts::HostPath, ..Default::default() };
    let c = run_with(
        web(json!({"image": "a", "volumes": [{"type": "bind", "source": "/srv/data", "target": "/data", "bind": {"create_host_path": true}}]})),
        &MemoryFiles::default(),
        &options,
    )
    .unwrap();
    let d = obj(&c, "Deployment", "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["hostPath"],
        json!({"path": "/srv/data", "type": "DirectoryOrCreate"})
    );
    assert!(warned(&c, "services.web.volumes.0"));
    // Per service, x-flotilla asks the same.
    let c = run(web(
        json!({"image": "a", "x-flotilla": {"bind_mounts": "hostpath"}, "volumes": [{"type": "bind", "source": "/srv", "target": "/srv"}]}),
    ));
    assert!(obj(&c, "Deployment", "web")["spec"]["template"]["spec"]["volumes"][0].get("hostPath").is_some());
}

#[test]
fn tmpfs_is_a_memory_empty_dir() {
    let c = run(web(
        json!({"image": "a", "tmpfs": ["/run", "/tmp:size=65536"], "volumes": [{"type": "tmpfs", "target": "/t", "tmpfs": {"size": "1048576"}}]}),
    ));
    let d = obj(&c, "Deployment", "web");
    let vols = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap().clone();
    assert_eq!(vols.len(), 3);
    assert!(vols.iter().all(|v| v["emptyDir"]["medium"] == "Memory"));
    assert!(vols.iter().any(|v| v["emptyDir"]["sizeLimit"] == "1Mi"));
    assert!(vols.iter().any(|v| v["emptyDir"]["sizeLimit"] == "64Ki"));
}

#[test]
fn volumes_from_mounts_the_other_services_volumes() {
    let c = run(json!({"name": "p",
        "services": {
            "app": {"image": "a", "volumes": [{"type": "volume", "source": "data", "target": "/data"}, {"type": "volume", "target": "/anon"}]},
            "backup": {"image": "b", "volumes_from": ["app:ro"]}
        },
        "volumes": {"data": {}}
    }));
    let d = obj(&c, "Deployment", "backup");
    assert_eq!(container(&d)["volumeMounts"][0], json!({"name": "pvc-data", "mountPath": "/data", "readOnly": true}));
    assert!(warned(&c, "services.backup.volumes_from.0"));
}

#[test]
fn configs_and_secrets_are_mounted_where_compose_mounts_them() {
    let files = MemoryFiles::default().with("/p/token.txt", "s3cret");
    let c = run_with(
        json!({"name": "p",
            "services": {"web": {"image": "a",
                "secrets": [{"source": "token", "target": "/run/secrets/token"}, {"source": "token", "target": "alt", "mode": "0400"}],
                "configs": [{"source": "site"}, {"source": "site", "target": "/etc/site.conf", "uid": "1"}]
            }},
            "secrets": {"token": {"name": "p_token", "file": "/p/token.txt"}},
            "configs": {"site": {"name": "p_site", "content": "listen $$PORT\n"}}
        }),
        &files,
        &Options::default(),
    )
    .unwrap();
    let secret = obj(&c, "Secret", "token");
    assert_eq!(secret["data"]["token"], "czNjcmV0");
    let cm = obj(&c, "ConfigMap", "config-site");
    assert_eq!(cm["data"]["site"], "listen $PORT\n");
    let d = obj(&c, "Deployment", "web");
    let mounts: Vec<&str> =
        container(&d)["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert_eq!(mounts, vec!["/site", "/etc/site.conf", "/run/secrets/token", "/run/secrets/alt"]);
    assert!(warned(&c, "services.web.configs.1"));
}

#[test]
fn networks_become_network_policies() {
    let c = run(json!({"name": "p",
        "services": {
            "web": {"image": "a", "networks": {"front": null, "back": {"aliases": ["www"]}},
                "ports": [{"mode": "ingress", "target": 80, "published": "80", "protocol": "tcp"}]},
            "db": {"image": "b", "networks": {"back": {"ipv4_address": "10.0.0.5"}}}
        },
        "networks": {"front": {"name": "p_front", "ipam": {}}, "back": {"name": "p_back", "ipam": {}}}
    }));
    let back = obj(&c, "NetworkPolicy", "network-back");
    let label = json!({"network.compose.flotilla.dev/back": "true"});
    assert_eq!(back["spec"]["podSelector"]["matchLabels"], label);
    assert_eq!(back["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], label);
    assert!(has(&c, "NetworkPolicy", "network-front"));
    let open = obj(&c, "NetworkPolicy", "web-published");
    assert_eq!(open["spec"]["ingress"][0]["ports"][0]["port"], 80);
    assert!(open["spec"]["ingress"][0].get("from").is_none());
    let pod_labels = &obj(&c, "Deployment", "web")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["network.compose.flotilla.dev/front"], "true");
    // The alias resolves: a Service of that name selecting the same pods.
    let alias = obj(&c, "Service", "www");
    assert_eq!(alias["spec"]["selector"], json!({"compose.flotilla.dev/service": "web"}));
    assert!(warned(&c, "services.db.networks.back.ipv4_address"));
}

#[test]
fn links_add_names() {
    let c =
        run(json!({"name": "p", "services": {"web": {"image": "a", "links": ["db:database"]}, "db": {"image": "b"}}}));
    let alias = obj(&c, "Service", "database");
    assert_eq!(alias["spec"]["selector"], json!({"compose.flotilla.dev/service": "db"}));
}

#[test]
fn network_mode_service_shares_the_pod_and_host_is_host_network() {
    let c = run(json!({"name": "p", "services": {
        "vpn": {"image": "vpn", "ports": [{"mode": "ingress", "target": 8080, "published": "8080", "protocol": "tcp"}]},
        "app": {"image": "app", "network_mode": "service:vpn", "hostname": "x"},
        "agent": {"image": "agent", "network_mode": "host"}
    }}));
    let d = obj(&c, "Deployment", "vpn");
    let containers = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["name"], "app");
    assert!(!has(&c, "Deployment", "app"));
    assert!(!has(&c, "Service", "app"));
    let agent = obj(&c, "Deployment", "agent");
    assert_eq!(agent["spec"]["template"]["spec"]["hostNetwork"], true);
    assert_eq!(agent["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirstWithHostNet");
    let app = c.services.iter().find(|s| s.compose_name == "app").unwrap();
    assert_eq!(app.objects[0].name, "vpn");
    assert!(warned(&c, "services.app.network_mode"));
}

#[test]
fn unsupported_keys_warn_at_their_location() {
    // The located tree the loader would hand over, with `ulimits` written at 7:5.
    let text = "name: demo\nservices:\n  web:\n    image: a\n    logging:\n      driver: syslog\n    ulimits:\n      nofile: {soft: 1, hard: 2}\n";
    let sources = SourceMap::new(crate::load::yaml::parse(text, &"compose.yaml".into()).unwrap());
    let project = project(web(
        json!({"image": "a", "ulimits": {"nofile": {"soft": 1, "hard": 2}}, "logging": {"driver": "syslog"}}),
    ));
    let c = convert(&project, &sources, &MemoryFiles::default(), &Options::default()).unwrap();
    let w = warnings(&c);
    assert!(
        w.iter().any(|w| w.starts_with(
            "warning: compose.yaml:7:5: services.web.ulimits: kubernetes has no per-container ulimits; hint: "
        )),
        "{w:?}"
    );
    assert!(warned(&c, "services.web.logging"));
}

#[test]
fn output_is_ordered_namespace_first_then_kind_then_name() {
    let c = run(json!({"name": "p", "services": {"b": {"image": "b"}, "a": {"image": "a"}}}));
    let order: Vec<String> = c.objects.iter().map(|o| format!("{}/{}", o.kind(), o.name())).collect();
    assert_eq!(order, vec!["Namespace/p", "Service/a", "Service/b", "Deployment/a", "Deployment/b"]);
    let again = run(json!({"name": "p", "services": {"b": {"image": "b"}, "a": {"image": "a"}}}));
    assert_eq!(serde_json::to_string(&c.objects).unwrap(), serde_json::to_string(&again.objects).unwrap());
}

#[test]
fn explain_says_why_each_object_exists() {
    let c = run(web(
        json!({"image": "a", "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]}),
    ));
    let origin = &c.services[0];
    assert_eq!(origin.compose_name, "web");
    let kinds: Vec<&str> = origin.objects.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds[0], "Deployment");
    assert!(kinds.contains(&"Service"));
    assert!(origin.objects.iter().all(|o| !o.why.is_empty()));
}

#[test]
fn every_model_key_has_an_outcome() {
    let text = include_str!("../../tests/data/model/loader-extras.json");
    let p = project(serde_json::from_str(text).unwrap());
    for svc in p.services.values() {
        let Value::Object(map) = serde_json::to_value(svc).unwrap() else { panic!() };
        for key in map.keys().filter(|k| !k.starts_with("x-")) {
            assert!(keys::outcome(keys::SERVICE_KEYS, key).is_some(), "service key {key} has no outcome");
        }
    }
    let Value::Object(map) = serde_json::to_value(&p).unwrap() else { panic!() };
    for key in map.keys().filter(|k| !k.starts_with("x-")) {
        assert!(keys::outcome(keys::TOP_LEVEL_KEYS, key).is_some(), "top-level key {key} has no outcome");
    }
}

#[test]
fn the_every_key_snapshot_converts_without_panicking() {
    let text = include_str!("../../tests/data/model/loader-extras.json");
    let p = project(serde_json::from_str(text).unwrap());
    let conf = p.config("c1").and_then(|c| c.file.clone()).unwrap();
    let secret = p.secret("s1").and_then(|c| c.file.clone()).unwrap();
    let files = MemoryFiles::default().with("/tmp/mt/all/app.env", "A=1\n").with(&secret, "s\n").with(&conf, "c\n");
    let c = convert(&p, &SourceMap::default(), &files, &Options::default()).unwrap();
    assert!(c.diagnostics.len() > 20);
    assert!(has(&c, "StatefulSet", "web"));
}

#[test]
fn odd_values_do_not_panic() {
    let result = run_with(
        json!({"name": "", "services": {"": {
            "ports": [{"target": "x"}, {"target": 70000, "published": "-1"}, {"target": 80, "published": "a-b"}],
            "expose": ["nope", "1-99999"],
            "deploy": {"replicas": -3, "resources": {"limits": {"cpus": "lots", "memory": "many"}}, "placement": {"constraints": ["??"]}},
            "healthcheck": {"test": [], "interval": "soon"},
            "stop_grace_period": "later",
            "volumes": [{"type": "volume", "source": "undeclared", "target": "/x"}, {"type": "weird"}],
            "secrets": [{"source": "missing"}],
            "depends_on": {"ghost": {"condition": "service_started", "required": false}},
            "network_mode": "service:",
            "user": ":",
            "extra_hosts": ["junk"]
        }}}),
        &MemoryFiles::default(),
        &Options::default(),
    );
    // Undeclared volumes and secrets are errors; nothing else stops the conversion.
    let errors = result.unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn bind_mounts_outside_the_project_stay_host_paths() {
    let files = MemoryFiles::default().with("/p/conf/app.conf", "a=1");
    let options = Options { project_dir: Some("/p".into()), ..Options::default() };
    let service = json!({"image": "a", "volumes": [
        {"type": "bind", "source": "/p/conf", "target": "/etc/app"},
        {"type": "bind", "source": "/proc", "target": "/host/proc", "read_only": true},
    ]});
    let c = run_with(web(service), &files, &options).unwrap();
    let volumes = &obj(&c, "Deployment", "web")["spec"]["template"]["spec"]["volumes"];
    assert!(volumes[0]["configMap"].is_object(), "project files travel as a ConfigMap: {volumes}");
    assert_eq!(volumes[1]["hostPath"]["path"], "/proc", "a host resource stays a host path: {volumes}");
}

#[test]
fn project_extension_sets_namespace_and_wait_image_unless_the_caller_does() {
    let value = json!({"name": "demo", "x-flotilla": {"namespace": "shop", "wait_image": "alpine:3"},
        "services": {"web": {"image": "a", "depends_on": {"db": {"condition": "service_started", "required": true}}},
                     "db": {"image": "b", "ports": [{"target": 5432, "protocol": "tcp", "mode": "ingress"}]}}});
    let c = run(value.clone());
    let d = obj(&c, "Deployment", "web");
    assert_eq!(d["metadata"]["namespace"], "shop");
    assert_eq!(d["spec"]["template"]["spec"]["initContainers"][0]["image"], "alpine:3");
    let options = Options { namespace: Some("cli".into()), wait_image: Some("busybox:1".into()), ..Options::default() };
    let c = run_with(value, &MemoryFiles::default(), &options).unwrap();
    let d = obj(&c, "Deployment", "web");
    assert_eq!(d["metadata"]["namespace"], "cli");
    assert_eq!(d["spec"]["template"]["spec"]["initContainers"][0]["image"], "busybox:1");
}
