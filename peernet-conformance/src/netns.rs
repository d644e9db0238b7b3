//! Running a test again in a network namespace of its own (`unshare -n`,
//! root only), for tests that need what the host's network may not give:
//! multicast on the loopback (real mDNS), or a LAN of their own making.
//!
//! A test calls [`in_own_netns`] (or [`here_with_loopback_multicast`])
//! with its own name first: outside the namespace that runs the test's
//! binary again with `--exact NAME` inside a new one, set up by shell
//! commands, and fails if the test failed there, or if no test of that
//! name ran (a misspelt name would otherwise pass unseen). Where no
//! namespace can be made, the test is skipped with a message.

use std::process::Command;

/// Set in the environment of the run inside the namespace.
pub const IN_NETNS: &str = "PEERNET_TEST_IN_NETNS";

/// A network namespace's loopback, up and taking multicast.
pub const LOOPBACK: &str = "ip link set lo up && ip link set lo multicast on";

/// Whether this process runs inside the namespace a test was run again in.
pub fn inside() -> bool {
    std::env::var_os(IN_NETNS).is_some()
}

/// Whether the loopback interface takes multicast (the MULTICAST flag,
/// as `ip link` shows it in this network namespace); `Err` says why not.
pub fn loopback_multicast() -> Result<(), String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "lo"])
        .output()
        .map_err(|e| format!("cannot run `ip link`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let flags = text
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.to_string())
        .ok_or_else(|| format!("unexpected `ip link` output: {text}"))?;
    if !flags.split(',').any(|f| f == "MULTICAST") {
        return Err(
            "the loopback interface has no MULTICAST flag (to test real mDNS, run this test \
             in a network namespace: `unshare -n sh -c 'ip link set lo up multicast on && \
             <test binary>'`)"
                .into(),
        );
    }
    Ok(())
}

/// Runs `test` of this binary again in a new network namespace set up by
/// the shell commands `setup` (e.g. [`LOOPBACK`]). `Err` if no namespace
/// could be made; otherwise whether the test ran there, alone, and passed.
pub fn rerun_in_netns(test: &str, setup: &str) -> Result<bool, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let probe = Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .map_err(|e| format!("no `unshare`: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "cannot make a network namespace: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg(format!(r#"{setup} && exec "$0" --exact "$1" --nocapture"#))
        .arg(me)
        .arg(test)
        .env(IN_NETNS, "1")
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&out.stdout);
    eprint!("{said}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!(
        "ran {test} in a network namespace of its own: {}",
        out.status
    );
    // (a name that is no test's runs nothing and exits 0: that is a
    // failure too, or a misspelt name would pass unseen)
    let ran_it = said.contains("running 1 test") && said.contains(" 1 passed");
    if out.status.success() && !ran_it {
        eprintln!("no test named {test} ran in the namespace");
    }
    Ok(out.status.success() && ran_it)
}

/// Runs the test `name` again in a network namespace set up by `setup`
/// and fails if it failed there; skipped, with a message, where no
/// namespace can be made.
pub fn rerun_checked(name: &str, setup: &str) {
    match rerun_in_netns(name, setup) {
        Ok(passed) => assert!(
            passed,
            "the test failed in its network namespace (output above)"
        ),
        Err(why) => eprintln!("SKIPPED {name}: {why}"),
    }
}

/// Whether the test `name` runs here: true in the network namespace it
/// was run again in; elsewhere it is run again in one set up by `setup`
/// ([`rerun_checked`]), and the caller returns.
pub fn in_own_netns(name: &str, setup: &str) -> bool {
    if inside() {
        return true;
    }
    rerun_checked(name, setup);
    false
}

/// Whether a test that needs multicast on the loopback runs here: true
/// where the loopback takes it (or in the network namespace this test
/// was run again in); otherwise it is run again as `name` in a namespace
/// of its own (or skipped, with a message, where none can be made), and
/// the caller returns.
pub fn here_with_loopback_multicast(name: &str) -> bool {
    let Err(reason) = loopback_multicast() else {
        return true;
    };
    if inside() {
        panic!("no multicast on the loopback even in a network namespace: {reason}");
    }
    eprintln!("{name}: {reason}");
    rerun_checked(name, LOOPBACK);
    false
}
