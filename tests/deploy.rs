//! The shipped systemd units: `systemd-analyze security` rates each at most 3.0 (exposure,
//! lower is better), as the reliability issue asks, and every unit parses.

use std::process::Command;

use tapflow_tests::repo_root;

/// The "Overall exposure level" systemd-analyze gives a unit file.
fn exposure(unit: &str) -> f64 {
    let path = repo_root().join("deploy/systemd").join(unit);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (scripts/test.sh installs systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level for {unit}: {text}"));
    let value = line
        .rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    value.parse().unwrap()
}

#[test]
fn shipped_units_score_at_most_3_exposure() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: scripts/test.sh installs the systemd package");
    }
    for unit in ["tapflow-probe@.service", "tapflow-merge.service"] {
        let e = exposure(unit);
        eprintln!("{unit}: exposure {e}");
        assert!(e <= 3.0, "{unit}: exposure {e} > 3.0");
    }
}

#[test]
fn probe_unit_starts_unprivileged_with_only_the_capture_capabilities() {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/systemd/tapflow-probe@.service")).unwrap();
    let value = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .map(|l| l[key.len() + 1..].to_string())
            .unwrap_or_else(|| panic!("{key}= missing"))
    };
    assert_eq!(value("User"), "tapflow");
    let caps = "CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_IPC_LOCK";
    // What tests/live.rs gives the probe through setpriv: the same four.
    assert_eq!(value("AmbientCapabilities"), caps);
    assert_eq!(value("CapabilityBoundingSet"), caps);
    assert_eq!(value("NoNewPrivileges"), "yes");
}
