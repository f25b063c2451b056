//! The `dnsward` binary as a user runs it: `check` exit codes and reasons, config errors that
//! name the key, `serve` with SIGHUP reload.

mod support;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn dnsward() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnsward"))
}

fn setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deny.txt"), "# denied\n||evil.example^\n").unwrap();
    std::fs::write(dir.path().join("allow.txt"), "good.evil.example\n").unwrap();
    std::fs::write(dir.path().join("dnsward.toml"), config).unwrap();
    dir
}

/// `dnsward check [flags] --config CONFIG NAMES...`: exit code, stdout, stderr.
fn check(
    flags: &[&str],
    config: &std::path::Path,
    names: &[&str],
) -> (Option<i32>, String, String) {
    let out = dnsward()
        .arg("check")
        .args(flags)
        .arg("--config")
        .arg(config)
        .args(names)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const LISTS: &str = "[lists]\ndeny = [\"deny.txt\"]\nallow = [\"allow.txt\"]\n";

#[test]
fn check_reports_verdicts_and_exit_codes() {
    let dir = setup(LISTS);
    let cfg = dir.path().join("dnsward.toml");
    let (code, text, _) = check(&[], &cfg, &["www.evil.example."]);
    assert_eq!(code, Some(1), "blocked -> exit 1");
    assert!(
        text.contains("block category=list action=nxdomain"),
        "{text}"
    );
    assert!(text.contains("deny.txt:2"), "{text}");

    let (code, text, _) = check(&[], &cfg, &["good.evil.example", "example.org"]);
    assert_eq!(code, Some(0), "nothing blocked -> exit 0");
    assert!(text.contains("good.evil.example\tallow"), "{text}");
    assert!(text.contains("example.org\tpass"), "{text}");
    assert!(!text.contains("if the client is escalated"), "{text}");

    // A name between the escalated and the default DGA threshold passes, and says what an
    // escalated client would get.
    let (code, text, _) = check(&[], &cfg, &["xjw3kqpz0a.net"]);
    assert_eq!(code, Some(0), "passes at the default threshold");
    assert!(text.contains("xjw3kqpz0a.net\tpass"), "{text}");
    assert!(
        text.contains("if the client is escalated: block category=dga")
            && text.contains("client_escalation"),
        "{text}"
    );

    let (code, text, _) = check(&["--json", "--monitor"], &cfg, &["evil.example"]);
    assert_eq!(code, Some(0), "monitor mode blocks nothing");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["name"], "evil.example");
    assert_eq!(v["action"], "log");
    assert_eq!(v["category"], "list");
    assert_eq!(v["blocked"], false);
    assert_eq!(v["reason"]["stage"], "denylist");
}

#[test]
fn check_client_shows_what_a_client_group_gets() {
    let dir = setup(&format!(
        "{LISTS}[[actions.groups]]\nname = \"lab\"\nclients = [\"10.9.0.0/16\"]\nmonitor = true\n"
    ));
    let cfg = dir.path().join("dnsward.toml");
    let (code, text, _) = check(&["--client", "10.9.1.1"], &cfg, &["evil.example"]);
    assert_eq!(code, Some(0), "the lab's blocks are logged: {text}");
    assert!(
        text.contains("action=log") && text.contains("[client group lab]"),
        "{text}"
    );
    let (code, text, _) = check(&["--client", "10.8.1.1"], &cfg, &["evil.example"]);
    assert_eq!(code, Some(1), "outside the lab: {text}");
    assert!(!text.contains("client group"), "{text}");
    // --monitor blocks nothing, whatever a group says.
    let dir = setup(&format!(
        "{LISTS}[[actions.groups]]\nname = \"pilot\"\nclients = [\"10.1.0.0/16\"]\nmonitor = false\n"
    ));
    let cfg = dir.path().join("dnsward.toml");
    let (code, text, _) = check(&["--client", "10.1.1.1"], &cfg, &["evil.example"]);
    assert_eq!(code, Some(1), "the pilot is enforced: {text}");
    let (code, text, _) = check(
        &["--client", "10.1.1.1", "--monitor"],
        &cfg,
        &["evil.example"],
    );
    assert_eq!(code, Some(0), "--monitor: {text}");
    assert!(text.contains("action=log"), "{text}");
    let (code, _, err) = check(&["--client", "lab"], &cfg, &["evil.example"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--client"), "{err}");
}

#[test]
fn broken_config_and_missing_list_are_clear_errors() {
    let dir = setup("[server]\nlisten = [\"127.0.0.1:5353\"]\nworkerz = 2\n");
    let out = dnsward()
        .args(["serve", "--config"])
        .arg(dir.path().join("dnsward.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("workerz") && err.contains("dnsward.toml"),
        "{err}"
    );

    let dir = setup("[cache]\nmin_ttl = 600\nmax_ttl = 60\n");
    let (code, _, err) = check(&[], &dir.path().join("dnsward.toml"), &["a.b"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cache.min_ttl"), "{err}");

    let dir = setup("[lists]\ndeny = [\"nope.txt\"]\n");
    let (code, _, err) = check(&[], &dir.path().join("dnsward.toml"), &["a.b"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("lists.deny") && err.contains("nope.txt"),
        "{err}"
    );

    let missing = std::path::Path::new("/nonexistent/dnsward.toml");
    let (code, _, err) = check(&[], missing, &["a.b"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/dnsward.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_reloads_on_sighup() {
    let up = start_upstream().await;
    let dir = setup(LISTS);
    std::fs::write(dir.path().join("deny.txt"), "bad.test\n").unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = dnsward()
        .args([
            "serve",
            "--workers",
            "1",
            "--admin",
            "off",
            "--listen",
            &listen,
            "--upstream",
            &up.addr.to_string(),
            "--config",
        ])
        .arg(dir.path().join("dnsward.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    let mut ready = false;
    for _ in 0..100 {
        let pkt = query("www.test.", RecordType::A, None).to_vec().unwrap();
        if udp_raw(addr, &pkt, Duration::from_millis(100))
            .await
            .is_some()
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "dnsward serve answers");
    // The container health check: answers for a live listener, exit 1 for a dead one.
    let health = |target: String| {
        dnsward()
            .args(["health", &target, "--timeout-ms", "1000"])
            .output()
            .unwrap()
    };
    let ok = health(listen.clone());
    assert!(ok.status.success(), "{ok:?}");
    let dead = health(format!("127.0.0.1:{}", free_port()));
    assert_eq!(dead.status.code(), Some(1), "{dead:?}");
    let got = udp(addr, &query("bad.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let got = udp(addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);

    std::fs::write(dir.path().join("deny.txt"), "bad.test\nlater.test\n").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut blocked = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = udp(addr, &query("later.test.", RecordType::A, None)).await;
        if got.metadata.response_code == ResponseCode::NXDomain {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "SIGHUP reloaded the denylist");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("reloaded lists and policy"), "{log}");
    assert!(
        log.contains("blocked"),
        "blocks are logged with their reason: {log}"
    );
}

/// `dnsward classify [--config FILE]` with `input` on stdin: it must succeed; one JSON object
/// per output line.
fn classify_stdin(config: Option<&std::path::Path>, input: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut cmd = dnsward();
    cmd.arg("classify");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn classify_scores_names_as_json_lines() {
    let lines = classify_stdin(
        None,
        "kqvwxjzrtplmnbvcxqwe.net\nwww.wikipedia.org\n\n1.2.0.192.zen.spamhaus.org\nlocalhost\nxjw3kqpz0a.net\n",
    );
    assert_eq!(lines.len(), 5, "one object per non-empty line");
    // Between the escalated and the default threshold: blocked only for escalated clients.
    assert_eq!(lines[4]["blocked"], false, "{}", lines[4]);
    assert_eq!(lines[4]["blocked_if_escalated"], true, "{}", lines[4]);
    assert_eq!(lines[0]["blocked_if_escalated"], true);
    assert_eq!(lines[1]["blocked_if_escalated"], false);
    assert_eq!(lines[0]["name"], "kqvwxjzrtplmnbvcxqwe.net");
    assert!(lines[0]["dga_score"].as_f64().unwrap() > 0.9);
    assert_eq!(lines[0]["blocked"], true);
    assert!(lines[0]["family"].is_string());
    assert_eq!(lines[1]["blocked"], false);
    assert!(lines[1]["dga_score"].as_f64().unwrap() < 0.5);
    assert_eq!(lines[2]["not_judged"], "dnsbl_zone");
    assert_eq!(lines[3]["not_judged"], "single_label");
    // A missing input file is a clear error.
    let out = dnsward()
        .args(["classify", "/nonexistent/names.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/names.txt"));
}

/// `[dga] judge_idn`: off by default (IDN labels are `not_judged`), on when configured. The name
/// is a Korean IDN (under `.닷컴`) from the Tranco benign test names that the model scores above
/// its default threshold (models/README.md, "Never judged").
#[test]
fn classify_idn_labels_follow_dga_judge_idn() {
    let idn = "xn--hu1b43d9l72a44a66pca542avufjx8asjn.xn--mk1bu44c";
    let one = |lines: Vec<serde_json::Value>| {
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap()
    };
    let default = one(classify_stdin(None, &format!("{idn}\n")));
    assert_eq!(default["not_judged"], "idn_label", "{default}");
    assert_eq!(default["blocked"], false);
    let dir = setup("[dga]\njudge_idn = true\n");
    let judged = one(classify_stdin(
        Some(&dir.path().join("dnsward.toml")),
        &format!("{idn}\n"),
    ));
    assert!(judged.get("not_judged").is_none(), "{judged}");
    assert!(judged["dga_score"].as_f64().unwrap() > 0.99, "{judged}");
    assert_eq!(judged["blocked"], true, "{judged}");
}

#[test]
fn missing_model_file_fails_or_disables_as_configured() {
    let dir = setup("[dga]\nmodel = \"nope.onnx\"\n");
    let (code, _, err) = check(&[], &dir.path().join("dnsward.toml"), &["a.b"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("dga.model") && err.contains("nope.onnx"),
        "{err}"
    );
    let dir = setup("[dga]\nmodel = \"nope.onnx\"\non_model_error = \"disable\"\n");
    let (code, _, _) = check(
        &[],
        &dir.path().join("dnsward.toml"),
        &["kqvwxjzrtplmnbvcxqwe.net"],
    );
    assert_eq!(code, Some(0), "runs without the DGA stage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_resolve_runs_the_answer_checks() {
    let up = start_upstream().await;
    let dir = setup("[intel]\nioc_files = [\"iocs.txt\"]\n");
    std::fs::write(dir.path().join("iocs.txt"), "ip 192.0.2.66 test C2\n").unwrap();
    let cfg = dir.path().join("dnsward.toml");
    let upstream = up.addr.to_string();
    let (code, text, err) = tokio::task::spawn_blocking(move || {
        let flags = ["--resolve", "--json", "--upstream", &upstream];
        check(&flags, &cfg, &["bad.test", "www.test"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["category"], "ioc");
    assert_eq!(lines[0]["reason"]["stage"], "answer_check");
    assert!(
        lines[0]["reason"]["features"]["features"].is_object(),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["kind"], "pass");
}

#[test]
fn replay_answers_reports_detections_per_label() {
    let dir = setup("[intel]\nioc_files = [\"iocs.txt\"]\n");
    std::fs::write(
        dir.path().join("iocs.txt"),
        "cidr 203.0.113.0/24 test bulletproof range\n",
    )
    .unwrap();
    let stream = dir.path().join("stream.jsonl");
    std::fs::write(
        &stream,
        concat!(
            r#"{"t":1700000000,"name":"c2.example","answers":[{"ip":"203.0.113.7","ttl":60}],"label":"ioc"}"#,
            "\n",
            r#"{"t":1700000001,"name":"www.example.org","answers":[{"ip":"192.0.2.80","ttl":3600}],"label":"benign"}"#,
            "\n",
        ),
    )
    .unwrap();
    let det = dir.path().join("det.jsonl");
    let out = dnsward()
        .args(["replay-answers", "--json", "--config"])
        .arg(dir.path().join("dnsward.toml"))
        .arg(&stream)
        .arg("--detections")
        .arg(&det)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 2, "{report}");
    let detections = std::fs::read_to_string(&det).unwrap();
    assert_eq!(detections.lines().count(), 1, "{detections}");
    assert!(detections.contains("c2.example"));
}
