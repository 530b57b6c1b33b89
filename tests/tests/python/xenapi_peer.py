"""The official XenAPI binding against the xapi simulator: what it sees must be what it would
see from a real xapi. Run by tests/tests/xapi_python.rs; prints PYTHON-PEER-OK at the end."""

import sys
import xmlrpc.client

import XenAPI

socket_path, http_url, password = sys.argv[1:4]


def expect_failure(details, call, *args):
    try:
        call(*args)
    except XenAPI.Failure as f:
        assert f.details == details, (f.details, details)
        return
    raise AssertionError("expected %r" % (details,))


def exercise(session, label):
    pool = session.xenapi.pool.get_all()[0]
    master = session.xenapi.pool.get_master(pool)
    # XenAPI.py reads the API version through pool.get_all, pool.get_master and host getters.
    assert session.API_version == "2.21", session.API_version
    host = session.xenapi.host.get_record(master)
    assert host["API_version_major"] == "2", "ints are decimal strings on XML-RPC"
    assert host["enabled"] is True and isinstance(host["multipathing"], bool)

    where = 'field "host" = "%s"' % master
    pbds = session.xenapi.PBD.get_all_records_where(where)
    assert len(pbds) == 1, pbds
    pbd, record = next(iter(pbds.items()))
    assert record["currently_attached"] is False
    key = "mpath-3600a0b8" + label

    session.xenapi.PBD.add_to_other_config(pbd, key, "[2, 2]")
    expect_failure(["MAP_DUPLICATE_KEY", "PBD", "other_config", pbd, key],
                   session.xenapi.PBD.add_to_other_config, pbd, key, "[2, 2]")
    session.xenapi.PBD.remove_from_other_config(pbd, key)
    session.xenapi.PBD.remove_from_other_config(pbd, key)
    session.xenapi.PBD.add_to_other_config(pbd, key, "[1, 2]")
    assert session.xenapi.PBD.get_other_config(pbd)[key] == "[1, 2]"

    expect_failure(["HANDLE_INVALID", "PBD", "OpaqueRef:nope"], session.xenapi.PBD.get_record, "OpaqueRef:nope")
    expect_failure(["UUID_INVALID", "host", "nope"], session.xenapi.host.get_by_uuid, "nope")
    expect_failure(["MESSAGE_METHOD_UNKNOWN", "PBD.frobnicate"], session.xenapi.PBD.frobnicate, pbd)
    expect_failure(["MESSAGE_PARAMETER_COUNT_MISMATCH", "PBD.get_record", "2", "1"], session.xenapi.PBD.get_record)

    session.xenapi.host.set_multipathing(master, True)
    assert session.xenapi.host.get_other_config(master)["multipathing"] == "true"

    # Python sends the priority as <int>; timestamps come back as dateTime.iso8601.
    sr_uuid = session.xenapi.SR.get_uuid(record["SR"])
    ref = session.xenapi.message.create("PYTHON_PEER", 5, "SR", sr_uuid, "hello from " + label)
    message = session.xenapi.message.get_all_records()[ref]
    assert message["priority"] == "5"
    assert isinstance(message["timestamp"], xmlrpc.client.DateTime), type(message["timestamp"])

    # XenAPI.py logs in again by itself when its session dies under it (the raw call below
    # bypasses its own bookkeeping).
    dead = session._session
    getattr(session, "session.logout")(dead)
    assert len(session.xenapi.pool.get_all()) == 1
    assert session._session != dead

    session.xenapi.session.logout()


# The unix socket, the way xapi_local() reaches /var/lib/xcp/xapi: '/' spelled '_' in the host.
assert "_" not in socket_path, socket_path
local = XenAPI.Session("http://" + socket_path.replace("/", "_") + "/", transport=XenAPI.UDSTransport())
local.xenapi.login_with_password("anyone", "any password", "1.0", "python-peer")
exercise(local, "unix")

remote = XenAPI.Session(http_url)
expect_failure(["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"],
               remote.xenapi.login_with_password, "root", "wrong", "1.0", "python-peer")
remote.xenapi.login_with_password("root", password, "1.0", "python-peer")
exercise(remote, "tcp")

# The raw envelope, as any XML-RPC client sees it (no path: Python posts to /RPC2).
proxy = xmlrpc.client.ServerProxy(http_url.rstrip("/"))
answer = getattr(proxy, "pool.get_all")("OpaqueRef:bad")
assert answer == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", "OpaqueRef:bad"]}, answer

print("PYTHON-PEER-OK")
