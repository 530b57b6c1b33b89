//! The real-stack harness itself: guest commands come back faithfully, the build output is
//! shared read-only, QMP answers, and no qemu survives its test, whether the test ends
//! normally, panics, or is killed outright.

use std::io::{BufRead, BufReader, Read};
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sm_testkit::realstack::{self, Probe, Topology, report, wait_for};

/// Set in the child process of `realstack_harness_killed_test_leaves_no_qemu`.
const CHILD_ENV: &str = "SM_RS_REALSTACK_HARNESS_CHILD";

#[test]
fn realstack_harness_commands_share_monitor_and_panic_cleanup() {
    let Some(stack) = realstack::prepare().expect("real stack") else {
        return;
    };
    let mut vm = stack.boot(Topology::Bare).expect("boot a bare VM");

    // exit code, stdout and stderr come back apart and intact
    let out = vm
        .run("echo out; echo err >&2; printf 'no newline'; exit 7")
        .expect("run");
    assert_eq!(out.rc, 7);
    assert_eq!(out.stdout, "out\nno newline");
    assert_eq!(out.stderr, "err\n");
    let out = vm
        .run_with_stdin("tr a-z A-Z", "hello, guest\n")
        .expect("run with stdin");
    assert_eq!(out.stdout, "HELLO, GUEST\n");
    let big = vm
        .sh("head -c 3000000 /dev/zero | tr '\\0' x")
        .expect("big output");
    assert_eq!(big.len(), 3_000_000);

    // a command past its timeout is killed with its children, and the agent carries on
    let started = Instant::now();
    let out = vm
        .run_timeout("sleep 300 & sleep 301; echo never", Duration::from_secs(2))
        .expect("timed-out command still answers");
    assert!(out.timed_out && out.rc == -9, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        vm.sh("pgrep -c -f 'sleep 30[01]' || true")
            .expect("pgrep")
            .trim(),
        "0"
    );
    assert_eq!(
        vm.sh("echo still here").expect("agent alive"),
        "still here\n"
    );

    // the guest has the stack the tests need
    let daemon = vm.sh("multipathd show daemon").expect("multipathd");
    assert!(daemon.starts_with("pid "), "{daemon}");
    let modules = vm.sh("lsmod").expect("lsmod");
    for module in ["dm_multipath", "scsi_dh_alua", "virtio_scsi", "9p"] {
        assert!(modules.contains(module), "{module} not loaded:\n{modules}");
    }
    vm.sh("iscsiadm --version && tgtd --help >/dev/null && sg_inq --version && lsscsi --version")
        .expect("open-iscsi, tgt, sg3-utils, lsscsi");

    // the build output is there, identical, and read-only
    let build_dir = stack.build_dir().expect("build dir").to_path_buf();
    let exe = std::env::current_exe().expect("current exe");
    let rel = exe
        .strip_prefix(&build_dir)
        .expect("test binary under the build dir");
    let host_sum = format!(
        "{:x}",
        Sha256::digest(std::fs::read(&exe).expect("read test binary"))
    );
    let guest_sum = vm
        .sh(&format!("sha256sum /mnt/host/{}", rel.display()))
        .expect("sha256sum over 9p");
    assert!(
        guest_sum.starts_with(&host_sum),
        "host {host_sum}, guest {guest_sum}"
    );
    let write = vm.run("touch /mnt/host/smrs-write-test").expect("run");
    assert_ne!(write.rc, 0, "the share must be read-only");
    assert!(!build_dir.join("smrs-write-test").exists());

    // QMP answers
    let status = vm
        .qmp()
        .execute("query-status", None)
        .expect("query-status");
    assert_eq!(status["status"], "running", "{status}");

    // a panicking test still takes its qemu down
    let pid = vm.pid();
    assert!(realstack::is_alive(pid));
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| eprintln!("(expected) {info}")));
    let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
        let _vm = vm;
        panic!("deliberate panic: the VM must not survive it");
    }));
    panic::set_hook(default_hook);
    assert!(outcome.is_err());
    assert!(!realstack::is_alive(pid), "qemu {pid} survived a panic");
}

/// Not a test of its own: the body of the child process below. It boots a VM, says which
/// qemu it runs, and waits to be killed.
#[test]
fn realstack_harness_child_helper() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let stack = realstack::prepare()
        .expect("real stack")
        .expect("the parent checked that the real stack runs here");
    let vm = stack.boot(Topology::Bare).expect("boot");
    println!("QEMU_PID={}", vm.pid());
    let _ = std::io::stdin().read(&mut [0u8; 1]); // the parent never writes: wait for the kill
    drop(vm);
}

#[test]
fn realstack_harness_killed_test_leaves_no_qemu() {
    if realstack::prepare().expect("real stack").is_none() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["realstack_harness_child_helper", "--exact", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let pid: u32 = loop {
        let line = lines
            .next()
            .expect("the child ended before booting its VM")
            .expect("read child output");
        if let Some(pid) = line.strip_prefix("QEMU_PID=") {
            break pid.parse().expect("a pid");
        }
    };
    assert!(realstack::is_alive(pid));
    child.kill().expect("SIGKILL the child"); // no destructor runs in it
    child.wait().expect("reap the child");
    let (_, took) = wait_for(
        "qemu to die with its test process",
        Duration::from_secs(20),
        || {
            Ok(if realstack::is_alive(pid) {
                Probe::Pending(format!("qemu {pid} alive"))
            } else {
                Probe::Ready(())
            })
        },
    )
    .expect("qemu must not outlive a killed test");
    report("qemu gone after its test process was killed", took);
}
