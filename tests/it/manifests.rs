//! The deployment files against the program: every name the Kubernetes manifests, the
//! compose file and the Dockerfile give sqs2pg (environment variables, config keys, ports,
//! probe paths, mount paths) is one sqs2pg reads, and every name a manifest references
//! exists. Each check compares the set it found with the expected list, so a field that
//! disappears from a manifest fails the test instead of making it vacuous. Schema and
//! policy checks of the same files are in `make check-deploy` (scripts/check-deploy/).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde::Deserialize;
use serde_yaml::Value;

/// Environment variables that sqs2pg does not declare but its AWS SDK reads.
const AWS_SDK_ENV: &[&str] = &["AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every variable a flag of sqs2pg (any subcommand) reads.
fn env_names_sqs2pg_reads() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&sqs2pg::cli::Cli::command(), &mut out);
    out.extend(AWS_SDK_ENV.iter().map(|s| s.to_string()));
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every non-empty YAML document of every `*.yaml` in `dir`; panics naming a file that
/// does not parse.
fn k8s_documents(dir: &Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/k8s"))
}

fn has_named(docs: &[Value], kind: &str, name: &str) -> bool {
    docs.iter()
        .any(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(|s| s.as_slice()).unwrap_or_default()
}

fn the_container(deployment: &Value) -> &Value {
    seq(&deployment["spec"]["template"]["spec"]["containers"])
        .iter()
        .find(|c| c["name"] == "sqs2pg")
        .expect("a container named sqs2pg")
}

/// The Deployment's environment: exactly the expected names, each one sqs2pg reads, and
/// every secretKeyRef names a key of an existing Secret.
#[test]
fn deployment_env_names_are_ones_sqs2pg_reads() {
    let docs = k8s_documents(&root().join("deploy/k8s"));
    let container = the_container(find(&docs, "Deployment"));
    let env = seq(&container["env"]);
    let names: BTreeSet<String> = env
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        set(&[
            "AWS_REGION",
            "DATABASE_URL",
            "SQS2PG_CONFIG",
            "SQS2PG_KEYS_FILE"
        ])
    );
    let known = env_names_sqs2pg_reads();
    assert!(known.contains("SQS2PG_QUEUE_URL"), "{known:?}");
    let unknown: Vec<_> = names.difference(&known).collect();
    assert!(unknown.is_empty(), "sqs2pg reads none of {unknown:?}");
    let mut refs = 0;
    for e in env {
        let r = &e["valueFrom"]["secretKeyRef"];
        let Some(sec) = r["name"].as_str() else {
            continue;
        };
        let key = r["key"].as_str().expect("secretKeyRef.key");
        let secret = docs
            .iter()
            .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == sec)
            .unwrap_or_else(|| panic!("secret {sec}"));
        assert!(
            secret["stringData"][key].is_string() || secret["data"][key].is_string(),
            "secret {sec} has no key {key}"
        );
        refs += 1;
    }
    assert_eq!(refs, 1, "DATABASE_URL comes from the Secret");
    let args: Vec<_> = seq(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["run"]);
}

/// The ConfigMap's sqs2pg.toml is a file sqs2pg accepts (unknown keys are refused), it is
/// mounted where SQS2PG_CONFIG points, and the keyring where SQS2PG_KEYS_FILE points.
#[test]
fn configmap_keys_and_mount_paths_are_ones_sqs2pg_reads() {
    let docs = k8s_documents(&root().join("deploy/k8s"));
    let cm = find(&docs, "ConfigMap");
    let data_keys: Vec<_> = cm["data"]
        .as_mapping()
        .expect("ConfigMap data")
        .keys()
        .collect();
    assert_eq!(data_keys, [&Value::from("sqs2pg.toml")]);
    let toml = cm["data"]["sqs2pg.toml"].as_str().unwrap();
    let file = std::env::temp_dir().join(format!("sqs2pg-configmap-{}.toml", std::process::id()));
    std::fs::write(&file, toml).unwrap();
    let parsed = sqs2pg::config::file::FileConfig::load(&file);
    std::fs::remove_file(&file).unwrap();
    let parsed = parsed.unwrap_or_else(|e| panic!("the ConfigMap's sqs2pg.toml: {e}"));
    assert_eq!(parsed.warnings(), [] as [String; 0], "no deprecated key");
    let table: toml::Table = toml.parse().unwrap();
    let top: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(
        top,
        set(&["log_format", "metrics_addr", "queue_url", "run"])
    );
    assert_eq!(parsed.run.writers.map(|w| w.into_inner()), Some(2));

    let container = the_container(find(&docs, "Deployment"));
    let env_value = |name: &str| {
        seq(&container["env"])
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("env {name}"))
            .to_owned()
    };
    let mounts: BTreeSet<String> = seq(&container["volumeMounts"])
        .iter()
        .filter_map(|m| m["mountPath"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        mounts,
        set(&["/etc/sqs2pg/keys", "/etc/sqs2pg/sqs2pg.toml"])
    );
    assert!(mounts.contains(&env_value("SQS2PG_CONFIG")));
    assert!(mounts.contains(&env_value("SQS2PG_KEYS_FILE")));
}

/// One metrics port everywhere: the container port the probes use, the scrape annotation,
/// the ConfigMap's metrics_addr, the Dockerfile's EXPOSE and SQS2PG_METRICS_ADDR; the probe
/// paths are routes the metrics server serves.
#[test]
fn ports_and_probe_paths_are_ones_sqs2pg_serves() {
    let docs = k8s_documents(&root().join("deploy/k8s"));
    let deployment = find(&docs, "Deployment");
    let container = the_container(deployment);
    let ports: Vec<(String, i64)> = seq(&container["ports"])
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("metrics".to_owned(), 9898)]);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "9898");
    let toml = find(&docs, "ConfigMap")["data"]["sqs2pg.toml"]
        .as_str()
        .unwrap();
    assert!(toml.contains("metrics_addr = \"0.0.0.0:9898\""), "{toml}");
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("EXPOSE 9898"));
    assert!(dockerfile.contains("SQS2PG_METRICS_ADDR=0.0.0.0:9898"));

    let http = std::fs::read_to_string(root().join("src/telemetry/http.rs")).unwrap();
    let mut probes = BTreeSet::new();
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "metrics", "{probe} uses the metrics port");
        let path = get["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} path"));
        assert!(
            http.contains(&format!("\"{path}\"")),
            "{path} is no route of src/telemetry/http.rs"
        );
        probes.insert(path.to_owned());
    }
    assert_eq!(probes, set(&["/healthz", "/readyz"]));
}

/// Every name the Deployment and the ScaledObject reference exists in the manifests, and
/// KEDA watches the queue the ConfigMap names.
#[test]
fn manifest_references_exist() {
    let docs = k8s_documents(&root().join("deploy/k8s"));
    let deployment = find(&docs, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let sa = spec["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert!(
        has_named(&docs, "ServiceAccount", sa),
        "service account {sa}"
    );
    let mut volumes = BTreeSet::new();
    // A volume's `items` name keys of its ConfigMap or Secret: a missing one leaves the pod
    // unable to mount it.
    let keys_of = |kind: &str, name: &str| -> BTreeSet<String> {
        let doc = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"));
        ["data", "stringData", "binaryData"]
            .iter()
            .filter_map(|f| doc[*f].as_mapping())
            .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned))
            .collect()
    };
    for vol in seq(&spec["volumes"]) {
        for (source, name_field, kind) in [
            ("configMap", "name", "ConfigMap"),
            ("secret", "secretName", "Secret"),
        ] {
            let Some(name) = vol[source][name_field].as_str() else {
                continue;
            };
            assert!(has_named(&docs, kind, name), "{source} {name}");
            let keys = keys_of(kind, name);
            for item in seq(&vol[source]["items"]) {
                let key = item["key"].as_str().expect("items key");
                assert!(keys.contains(key), "{source} {name} has no key {key}");
            }
        }
        volumes.insert(vol["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(volumes, set(&["config", "keyring", "secret"]));
    let containers = seq(&spec["containers"])
        .iter()
        .chain(seq(&spec["initContainers"]));
    for c in containers {
        for m in seq(&c["volumeMounts"]) {
            let name = m["name"].as_str().unwrap();
            assert!(
                volumes.contains(name),
                "{} mounts missing volume {name}",
                c["name"].as_str().unwrap()
            );
        }
    }

    let scaled = find(&docs, "ScaledObject");
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let triggers = seq(&scaled["spec"]["triggers"]);
    assert_eq!(triggers.len(), 1);
    let auth = triggers[0]["authenticationRef"]["name"]
        .as_str()
        .expect("authenticationRef");
    assert!(
        has_named(&docs, "TriggerAuthentication", auth),
        "trigger auth {auth}"
    );
    let queue = triggers[0]["metadata"]["queueURL"]
        .as_str()
        .expect("queueURL");
    let toml = find(&docs, "ConfigMap")["data"]["sqs2pg.toml"]
        .as_str()
        .unwrap();
    assert!(
        toml.contains(&format!("queue_url = \"{queue}\"")),
        "KEDA watches {queue}"
    );
}

/// docker-compose.yml: every `depends_on` names a service, and the consumer's
/// environment names only variables sqs2pg reads.
#[test]
fn compose_dependencies_and_env_names_exist() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let compose: Value = serde_yaml::from_str(&text).unwrap();
    let services = compose["services"].as_mapping().expect("compose services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        [
            "create-queue",
            "keygen",
            "localstack",
            "migrate",
            "postgres",
            "send",
            "sqs2pg"
        ]
        .into()
    );
    for (name, svc) in services {
        for dep in svc["depends_on"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            assert!(
                services.contains_key(dep),
                "{name:?} depends on missing {dep:?}"
            );
        }
    }
    let mut consumer = compose["services"]["sqs2pg"]["environment"].clone();
    consumer.apply_merge().unwrap(); // the `<<: *sqs2pg` and `<<: *aws` merge keys
    consumer.apply_merge().unwrap();
    let env = consumer.as_mapping().expect("sqs2pg environment");
    let seen: BTreeSet<String> = env
        .keys()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let known = env_names_sqs2pg_reads();
    let known_or_sdk = |n: &String| known.contains(n) || n.starts_with("AWS_");
    let unknown: Vec<_> = seen.iter().filter(|n| !known_or_sdk(n)).collect();
    assert!(
        seen.contains("SQS2PG_METRICS_ADDR") && seen.len() >= 4,
        "{seen:?}"
    );
    assert!(unknown.is_empty(), "sqs2pg reads none of {unknown:?}");
}
