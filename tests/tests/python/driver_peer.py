"""Independent peer: Python's xmlrpc.client (what stock sm and xapi's tools use) builds every
command's call to the sm-rs driver, runs the driver as xapi does (the call in argv[1], exit
status 0 whatever happens) and reads every response.

usage: driver_peer.py CONTEXT.json   (written by tests/driver_python.rs)
"""

import json
import subprocess
import sys
import xmlrpc.client

ctx = json.load(open(sys.argv[1]))
failures = []
passed = 0


def call(command, args=(), vdi=False, extra=None, raw=None, argv=None):
    """Runs one call; returns (value or Fault, stderr)."""
    params = {
        "host_ref": ctx["host_ref"],
        "command": command,
        "args": list(args),
        "device_config": dict(ctx["device_config"]),
        "session_ref": ctx["session_ref"],
        "sr_ref": ctx["sr_ref"],
        "sr_uuid": ctx["sr_uuid"],
        "subtask_of": "OpaqueRef:NULL",
    }
    if vdi:
        params.update(
            vdi_ref=ctx["vdi_ref"],
            vdi_uuid=ctx["vdi_uuid"],
            vdi_location=ctx["vdi_location"],
            vdi_on_boot="persist",
            vdi_allow_caching="false",
        )
    params.update(extra or {})
    text = raw if raw is not None else xmlrpc.client.dumps((params,), command, allow_none=True)
    out = subprocess.run(
        argv if argv is not None else [ctx["driver"], text],
        env=ctx["env"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise AssertionError("%s: exit status %d" % (command, out.returncode))
    try:
        (value,), _ = xmlrpc.client.loads(out.stdout)
        return value, out.stderr
    except xmlrpc.client.Fault as fault:
        return fault, out.stderr


def check(name, condition, detail=""):
    global passed
    if condition:
        passed += 1
    else:
        failures.append("%s: %s" % (name, detail))


def fault(value, code):
    return isinstance(value, xmlrpc.client.Fault) and value.faultCode == code


info, _ = call("sr_get_driver_info", extra={"session_ref": None})
check(
    "sr_get_driver_info",
    isinstance(info, dict)
    and all(isinstance(info.get(k), str) for k in
            ["name", "description", "vendor", "copyright", "driver_version", "required_api_version"])
    and info["required_api_version"] == "1.1"
    and "SR_MULTIPATH" in info["capabilities"]
    and all(set(c) == {"key", "description"} for c in info["configuration"]),
    repr(info),
)
value, _ = call("sr_attach")
check("sr_attach", value is None, repr(value))
value, _ = call("sr_create", args=["0"])
check("sr_create", value is None, repr(value))
value, stderr = call("sr_probe", extra={"sr_sm_config": {}})
check("sr_probe lists LUNs on stderr", fault(value, 107) and "<SCSIid>" in stderr, repr(value) + stderr)
value, _ = call("sr_scan")
check("sr_scan", value is None, repr(value))
value, _ = call("sr_update")
check("sr_update", value is None, repr(value))
value, _ = call("sr_content_type")
check("sr_content_type", isinstance(value, str), repr(value))
value, _ = call("vdi_introduce", extra={"new_uuid": ctx["vdi_uuid"], "vdi_location": ctx["vdi_location"],
                                       "vdi_sm_config": {"SCSIid": ctx["vdi_location"]}})
check("vdi_introduce", isinstance(value, dict) and value.get("location") == ctx["vdi_location"], repr(value))
value, _ = call("vdi_attach", args=["true"], vdi=True)
check("vdi_attach", isinstance(value, dict) and value.get("params_nbd") == ""
      and value.get("params", "").startswith("/dev/"), repr(value))
value, _ = call("vdi_activate", args=["true"], vdi=True)
check("vdi_activate", value is None, repr(value))
value, _ = call("vdi_epoch_begin", vdi=True)
check("vdi_epoch_begin", value is None, repr(value))
value, _ = call("vdi_epoch_end", vdi=True)
check("vdi_epoch_end", value is None, repr(value))
value, _ = call("vdi_deactivate", vdi=True)
check("vdi_deactivate", value is None, repr(value))
value, _ = call("vdi_detach", vdi=True)
check("vdi_detach", value is None, repr(value))
config, _ = call("vdi_generate_config", vdi=True)
check("vdi_generate_config", isinstance(config, str), repr(config))
if isinstance(config, str):
    (params,), method = xmlrpc.client.loads(config)
    check("the generated call", method == "vdi_attach_from_config"
          and params["device_config"].get("multipathhandle") in ("dmp", "null"), repr(params))
    value, _ = call("vdi_attach_from_config", raw=config)
    check("vdi_attach_from_config", isinstance(value, dict) and "params_nbd" in value, repr(value))
    params["command"] = "vdi_detach_from_config"
    value, _ = call("vdi_detach_from_config",
                    raw=xmlrpc.client.dumps((params,), "vdi_detach_from_config", allow_none=True))
    check("vdi_detach_from_config", value is None, repr(value))
value, _ = call("vdi_delete", vdi=True)
check("vdi_delete is not supported", fault(value, 38), repr(value))
value, _ = call("vdi_frobnicate", vdi=True)
check("an unknown command", fault(value, 143), repr(value))
value, _ = call("sr_attach", raw="<methodCall><methodName>sr_attach</methodName>")
check("a torn call", fault(value, 143), repr(value))
value, _ = call("none", argv=[ctx["driver"]])
check("no argument", fault(value, 143), repr(value))
value, _ = call("sr_detach")
check("sr_detach", value is None, repr(value))
value, _ = call("sr_delete")
check("sr_delete", value is None, repr(value))

print("%d passed, %d failed" % (passed, len(failures)))
for failure in failures:
    print("FAILED " + failure)
sys.exit(1 if failures else 0)
