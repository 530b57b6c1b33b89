//! `sm-sim-tool`: the stand-ins of a simulated host in one executable. Linked as `iscsiadm`,
//! `udevadm` or `systemctl` (argv[0] picks which), it passes its argv to the simulated host
//! under `$SM_RS_ROOT` and prints the answer (see `sm_testkit::host_sim::relay`).

fn main() -> std::process::ExitCode {
    sm_testkit::host_sim::relay::main(std::env::args().collect())
}
