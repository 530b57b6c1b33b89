# A SMAPIv1 driver the way sm writes one, for tests/tests/xapi_python.rs: it reads the
# methodCall from argv[1] and, on sr_attach, uses the session xapi handed it (over the socket
# $SM_RS_XAPI names, as sm uses XenAPI.xapi_local()) to change its PBD. The first line, the
# interpreter, is written by the test.
import os
import sys
import xmlrpc.client

import XenAPI

params, command = xmlrpc.client.loads(sys.argv[1])
call = params[0]


def reply(value):
    print(xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True))


if call["command"] == "sr_get_driver_info":
    reply({"name": "callback", "description": "test", "vendor": "sm-rs", "copyright": "none",
           "driver_version": "1.0", "required_api_version": "1.0",
           "capabilities": ["SR_PROBE"], "configuration": []})
elif call["command"] == "sr_attach":
    socket_path = os.environ["SM_RS_XAPI"][len("unix:"):]
    session = XenAPI.Session("http://" + socket_path.replace("/", "_") + "/", transport=XenAPI.UDSTransport())
    session._session = call["session_ref"]
    where = 'field "host" = "%s" and field "SR" = "%s"' % (call["host_ref"], call["sr_ref"])
    pbd = list(session.xenapi.PBD.get_all_records_where(where))[0]
    config = dict(call["device_config"])
    del config["SRmaster"]
    config["discovered"] = "iqn.2026-01.com.example:array"
    session.xenapi.PBD.set_device_config(pbd, config)
    session.xenapi.PBD.add_to_other_config(pbd, "multipathed", "true")
    reply(None)
else:
    reply(None)
