//! The web page in headless Chromium (Debian: `apt-get install -y chromium chromium-driver`).
//! Skips (passes with a message) when /usr/bin/chromium is absent.

mod common;

use common::*;
use dnsward_admin::{serve, EventStore};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--virtual-time-budget=5000")
    .args(extra)
    .arg(url);
    cmd.output().expect("run chromium")
}

/// The page opened at `#why=NAME` with `profile` (which holds the token): the DOM from the
/// why-blocked box's result on.
async fn why_box(profile: &Path, base: &str, name: &str) -> String {
    let url = format!("{base}#why={name}");
    let profile = profile.to_path_buf();
    let out = tokio::task::spawn_blocking(move || chromium(&profile, &["--dump-dom"], &url))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    dom.split("id=\"why-result\"")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_renders_blocks_and_clients() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} not found (install with: apt-get install -y chromium chromium-driver)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.token = Some(TOKEN.to_string());
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    let admin = serve(&cfg, store.clone(), FakeBackend::new())
        .await
        .unwrap();
    let base = format!("http://{}/", admin.addr);

    // With the token handed over in the fragment (stored in localStorage by the page).
    let profile = dir.path().join("profile");
    let url = format!("{base}#token={TOKEN}");
    let out = tokio::task::spawn_blocking({
        let profile = profile.clone();
        move || chromium(&profile, &["--dump-dom"], &url)
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "ads.tracker.example",
        "c2.badhost.example",
        "x19qjzkvbwplrt.net",
        "10.0.0.66",
        "suspected",
        "dga_burst",
        "name_classifier · dga-model",
        // The escalated client and the time its escalation has left (stats API).
        "Escalated (names judged at the escalated DGA threshold)",
        "10.0.0.7</span> (5 h 50 min left)",
        "1 escalated",
        // Enforced blocks apart from log-only verdicts, and the stale IOC list (stats API).
        "38 blocked",
        "IOC list feodo \"ips\".txt is ",
        // A monitor mode must show, with the group that is enforced anyway.
        "MONITOR MODE: nothing enforced except group pilot",
        "LAST RELOAD FAILED, the previous policy is running: lists/deny.txt: permission denied",
    ] {
        assert!(dom.contains(needle), "DOM lacks {needle}:\n{dom}");
    }
    assert!(
        !dom.contains("class=\"err\""),
        "an error is shown (token not used?):\n{dom}"
    );

    // Same profile, no fragment: the stored token is reused; take a screenshot for a human look.
    let shot = std::env::var("DNSWARD_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("page.png"));
    let arg = format!("--screenshot={}", shot.display());
    let base2 = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        chromium(
            &profile,
            &[&arg, "--window-size=1400,900", "--hide-scrollbars"],
            &base2,
        )
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert!(std::fs::metadata(&shot)
        .map(|m| m.len() > 10_000)
        .unwrap_or(false));

    // The why-blocked box (prefilled through the fragment, same profile so the token is known).
    let profile = dir.path().join("profile");
    let why = why_box(&profile, &base, "WWW.Evil.Example").await;
    for needle in [
        "blocked (list, action nxdomain)",
        "www.evil.example",
        "||evil.example^",
        "lists/deny.txt:12",
    ] {
        assert!(why.contains(needle), "why box lacks {needle}:\n{why}");
    }

    // The same name as a client of a monitored group gets it: logged, with the group named.
    let why = why_box(&profile, &base, "www.evil.example&client=10.9.0.1").await;
    for needle in [
        "logged only, not enforced (list)",
        "10.9.0.1",
        "client group</dt><dd>lab",
    ] {
        assert!(
            why.contains(needle),
            "why box lacks {needle}:
{why}"
        );
    }

    // A name that only an escalated client gets blocked: the box says so and why.
    let why = why_box(&profile, &base, "xjw3kqpz0a.net").await;
    for needle in [
        "not blocked",
        "if the client is escalated",
        "blocked (dga, action nxdomain) · client_escalation · dga-model · score 0.944",
    ] {
        assert!(why.contains(needle), "why box lacks {needle}:\n{why}");
    }

    // A fresh profile without a token sees the 401 explained, not data.
    let fresh = dir.path().join("fresh");
    let out = tokio::task::spawn_blocking(move || chromium(&fresh, &["--dump-dom"], &base))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(dom.contains("class=\"err\">unauthorized"), "{dom}");
    assert!(!dom.contains("ads.tracker.example"));
    tokio::time::timeout(Duration::from_secs(5), admin.shutdown())
        .await
        .unwrap();
}
