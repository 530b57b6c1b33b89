//! `sm-driver`: installed as `/opt/xensource/sm/LUNoISCSISR` and `LUNoHBASR`; argv[0]
//! picks the SR type, argv[1] is the SMAPIv1 methodCall.

fn main() -> std::process::ExitCode {
    sm_plugin::driver_main()
}
