//! No raw PII in what the binaries write, whatever `RUST_LOG` says: `send`, `run`,
//! `rejects replay` and `rejects list`, `reveal` and `mask` (beyond the values they exist to
//! print), and `sqs2pg-lambda` under the Lambda Runtime API, each at `trace` and with
//! directives aimed at the crates that log payloads; and a contained panic prints where it
//! happened, not its message.

use std::process::Output;

use crate::helpers::{event_of, login, pipe_through, stderr, stdout_ok, LambdaRuntime, TestEnv};

/// The crates that log HTTP and protocol payloads (message bodies), each named at its most
/// specific: no directive may lift the cap on other crates than sqs2pg's.
const AIMED_AT_PAYLOAD_LOGGERS: &str = "lambda_runtime=trace,lambda_runtime_api_client=trace,\
    aws_sigv4=trace,aws_smithy_runtime::client::orchestrator=trace,aws_smithy_http_client=trace,\
    aws_sdk_sqs=trace,hyper=trace,hyper_util::client=trace,tokio_postgres=trace,\
    tokio_postgres::query=trace,rustls=trace";

/// Every `RUST_LOG` these tests run under.
const FILTERS: [&str; 2] = ["trace", AIMED_AT_PAYLOAD_LOGGERS];

/// Known ips and device ids, in valid and rejected bodies.
const IPS: [&str; 3] = ["203.0.113.77", "2001:db8:abcd::4242", "198.51.100.99"];
const DEVICES: [&str; 3] = [
    "secret-device-8812",
    "ssn-like-123-45-6789",
    "device-zz-0091",
];

/// Two valid logins, one rejected for its app version, one that is not JSON.
fn bodies() -> Vec<String> {
    vec![
        login("pii-1", IPS[0], DEVICES[0]),
        login("pii-2", IPS[1], DEVICES[1]),
        format!(
            r#"{{"user_id":"pii-3","app_version":"bad","device_type":"ios","ip":"{}","locale":"US","device_id":"{}"}}"#,
            IPS[2], DEVICES[2]
        ),
        format!("not json {} {}", IPS[2], DEVICES[2]),
    ]
}

/// Asserts no ip, device id or whole body of [`bodies`] is in `text`.
fn assert_no_pii(what: &str, filter: &str, text: &str) {
    let bodies = bodies();
    let secrets = IPS.iter().chain(DEVICES.iter()).copied();
    for secret in secrets.chain(bodies.iter().map(String::as_str)) {
        assert!(
            !text.contains(secret),
            "{secret} leaked from {what} with RUST_LOG={filter}:\n{text}"
        );
    }
}

/// Stdout and stderr of a command that must succeed, together.
fn all_output(out: &Output) -> String {
    stdout_ok(out);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// `send --file`, `run` (JSON logs), `rejects replay` and `rejects list` over the bodies.
#[tokio::test(flavor = "multi_thread")]
async fn no_pii_in_the_output_of_send_run_and_rejects() {
    let env = TestEnv::new().await;
    let file = std::env::temp_dir().join(format!("sqs2pg-it-pii-{}.jsonl", env.queue_name));
    std::fs::write(&file, bodies().join("\n") + "\n").expect("write bodies");
    let file = file.to_str().expect("a UTF-8 temp path");
    let commands: [&[&str]; 4] = [
        &["send", "--file", file],
        &[
            "run",
            "--until-empty",
            "--wait-seconds",
            "1",
            "--log-format",
            "json",
        ],
        &["rejects", "replay"],
        &["rejects", "list"],
    ];
    for filter in FILTERS {
        for args in commands {
            let out = env.cmd(args).env("RUST_LOG", filter).output().expect("run");
            let all = all_output(&out);
            assert_no_pii(&args.join(" "), filter, &all);
            if filter == "trace" && args[0] == "run" {
                // sqs2pg's own debug lines: the filter reached the binary.
                let debug = all.contains(r#""level":"DEBUG""#);
                assert!(debug, "not a trace-level log:\n{all}");
            }
        }
    }
    let loaded = 2 * FILTERS.len() as i64;
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, loaded);
    std::fs::remove_file(file).expect("remove bodies");
}

/// `reveal` and `mask` print the values they are asked for on stdout, and nothing else
/// anywhere: stdout is exactly the answer, stderr holds no value.
#[tokio::test(flavor = "multi_thread")]
async fn no_pii_in_the_logs_of_reveal_and_mask() {
    let env = TestEnv::new().await;
    env.send(&bodies()).await;
    env.drain().await;
    let tokens: Vec<String> = env
        .column("SELECT masked_ip FROM user_logins ORDER BY user_id")
        .await;
    let reject: String = env
        .scalar("SELECT message_id FROM user_logins_rejects WHERE reason LIKE 'bad_app%'")
        .await;
    let why = ["--reason", "pii_logs test"];
    for filter in FILTERS {
        let run = |args: &[&str], input: &str| {
            let mut cmd = env.cmd(&[args, &why[..]].concat());
            pipe_through(cmd.env("RUST_LOG", filter), input)
        };
        let out = run(&["reveal", "--column", "ip"], &(tokens.join("\n") + "\n"));
        assert_eq!(stdout_ok(&out), format!("{}\n{}\n", IPS[0], IPS[1]));
        assert_no_pii("reveal", filter, &stderr(&out));

        let out = run(&["reveal", "--reject", &reject], "");
        assert_eq!(stdout_ok(&out).trim_end(), bodies()[2]);
        assert_no_pii("reveal --reject", filter, &stderr(&out));

        let out = run(&["mask", "--column", "ip"], &format!("{}\n", IPS[0]));
        assert_eq!(stdout_ok(&out).trim_end(), tokens[0]);
        assert_no_pii("mask", filter, &stderr(&out));
    }
}

/// `sqs2pg-lambda` invoked through the Runtime API with the bodies: its stdout and stderr
/// hold none of them (`lambda_runtime` traces the raw invocation JSON, `aws_sigv4` its
/// canonical requests).
#[tokio::test(flavor = "multi_thread")]
async fn no_pii_in_the_lambda_output_under_the_runtime_api() {
    let env = TestEnv::new().await;
    let bodies = bodies();
    for filter in FILTERS {
        let mut rt = LambdaRuntime::start().await;
        rt.start_function_with(&env.database_url, &[("RUST_LOG", filter)]);
        let ids: Vec<String> = (0..bodies.len())
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let answer = rt.invoke(&event_of(&ids, &bodies)).await;
        assert_eq!(
            answer["batchItemFailures"],
            serde_json::json!([]),
            "{answer}"
        );
        assert_no_pii("sqs2pg-lambda", filter, &rt.function_output());
    }
    let loaded = 2 * FILTERS.len() as i64;
    assert_eq!(env.count("SELECT count(*) FROM user_logins").await, loaded);
}
