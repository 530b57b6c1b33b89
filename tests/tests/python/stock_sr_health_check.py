"""Runs stock sm's drivers/sr_health_check.py (from an xcp-ng/sm checkout) unchanged against
the xapi simulator, as its systemd timer runs it on a host. Two host facts the script hard
codes are pointed at the test's: the local xapi (XenAPI.xapi_local, the dom0 socket) becomes
the simulator's URL, and /etc/xensource-inventory the host's inventory file. Every SR whose
check_sr ran is printed, then DONE when main() returned.

Environment: SM_RS_STOCK_SM (the checkout), XAPI_URL, INVENTORY.
"""

import builtins
import os
import sys

stock = os.environ["SM_RS_STOCK_SM"]
sys.path[:0] = [
    os.path.join(stock, "drivers"),
    os.path.join(stock, "misc", "fairlock"),
    stock,
]

import XenAPI  # noqa: E402

url = os.environ["XAPI_URL"]
XenAPI.xapi_local = lambda: XenAPI.Session(url)

inventory = os.environ["INVENTORY"]
real_open = builtins.open


def host_open(file, *args, **kwargs):
    if file == "/etc/xensource-inventory":
        file = inventory
    return real_open(file, *args, **kwargs)


builtins.open = host_open

import SR  # noqa: E402

stock_check_sr = SR.SR.check_sr


def check_sr(self, sr_uuid):
    print("CHECKED %s %s" % (sr_uuid, type(self).__name__), flush=True)
    return stock_check_sr(self, sr_uuid)


SR.SR.check_sr = check_sr

import sr_health_check  # noqa: E402

sr_health_check.main()
print("DONE", flush=True)
