"""A stock iSCSI SR's host-side protocol, acted out against a simulated host: what xcp-ng/sm
(3.2.x, XCP-ng 8.3) does on the host when a stock LVMoISCSI/ISCSI SR is plugged and unplugged,
written here from the facts of its code (drivers/iscsilib.py, util.py, lock.py, flock.py,
BaseISCSI.py; scripts/set-iscsi-initiator), not imported from it:

- every iscsiadm runs under an fcntl write lock on the whole of
  /var/lock/sm/iscsiadm/isciadm_running (lock.Lock("isciadm_running", "iscsiadm"), opened "w+",
  taken with F_SETLKW, released after the one command);
- the users of a target are the lines of /var/run/sr-ref/<targetIQN>; only lines that begin with a
  lowercase 8-4-4-4-12 uuid count. Plug: log in, then append the SR's uuid unless a line already
  contains it. Unplug: keep the counted lines that do not contain the SR's uuid; none left: unlink
  the file and, if `iscsiadm -m session` shows the target, log out of every portal of it
  (`iscsiadm -m node -T <iqn> -u`); else rewrite the file with the kept lines;
- set-iscsi-initiator holds a shared flock on /run/lock/sm/iscsiadm/running.

Usage: stock_iscsi_peer.py ROOT COMMAND ARGS; iscsiadm is found in PATH. Each step is printed as a
JSON line on stdout. Commands:
  attach IQN PORTAL SR_UUID      discovery, login, count the SR
  detach IQN SR_UUID             uncount the SR, log out if it was the last user
  hold-iscsiadm-lock             take stock's iscsiadm lock, print "held", wait for a line on stdin
  try-iscsiadm-lock              whether stock's iscsiadm lock is free now (does not wait)
  hold-initiator-lock            as set-iscsi-initiator: shared flock, "held", wait for stdin
  try-initiator-lock             whether set-iscsi-initiator would get its lock now
"""

import fcntl
import json
import os
import re
import subprocess
import sys

ROOT = sys.argv[1]
ISCSIADM_LOCK = ROOT + "/var/lock/sm/iscsiadm/isciadm_running"
INITIATOR_LOCK = ROOT + "/run/lock/sm/iscsiadm/running"
REFDIR = ROOT + "/var/run/sr-ref"
UUID_AT_START = re.compile("^[0-9a-f]{8}-(([0-9a-f]{4})-){3}[0-9a-f]{12}")


def say(event, **fields):
    fields["event"] = event
    print(json.dumps(fields), flush=True)


def open_lock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return open(path, "w+")


def iscsiadm(*args):
    """One iscsiadm run under stock's lock (iscsilib.doexec_locked)."""
    f = open_lock(ISCSIADM_LOCK)
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        say("iscsiadm-lock-wait", argv=list(args))
        fcntl.lockf(f, fcntl.LOCK_EX)
    try:
        run = subprocess.run(["iscsiadm"] + list(args), capture_output=True, text=True)
    finally:
        fcntl.lockf(f, fcntl.LOCK_UN)
        f.close()
    say("iscsiadm", argv=list(args), rc=run.returncode)
    return run


def incr(iqn, uuid):
    os.makedirs(REFDIR, exist_ok=True)
    with open(os.path.join(REFDIR, iqn), "a+") as f:
        f.seek(0)
        counted = [line for line in f.readlines() if UUID_AT_START.search(line)]
        count = len(counted)
        if not any(uuid in line for line in counted):
            f.write(uuid + "\n")
            count += 1
    return count


def decr(iqn, uuid):
    path = os.path.join(REFDIR, iqn)
    if not os.path.exists(path):
        return 0
    with open(path, "a+") as f:
        f.seek(0)
        kept = [
            line.rstrip()
            for line in f.readlines()
            if UUID_AT_START.search(line) and uuid not in line
        ]
    if not kept:
        os.unlink(path)
        return 0
    with open(path, "w") as f:
        for line in kept:
            f.write(line + "\n")
    return len(kept)


def logged_in(iqn):
    run = iscsiadm("-m", "session")
    return any(line.startswith("tcp:") and line.split()[3] == iqn for line in run.stdout.splitlines())


def attach(iqn, portal, uuid):
    iscsiadm("-m", "discovery", "-t", "st", "-p", portal)
    login = iscsiadm("-m", "node", "-p", portal, "-T", iqn, "-l")
    if login.returncode not in (0, 15):
        say("login-failed", stderr=login.stderr)
        sys.exit(1)
    say("attached", refcount=incr(iqn, uuid))


def detach(iqn, uuid):
    left = decr(iqn, uuid)
    if left:
        say("kept", refcount=left, lines=open(os.path.join(REFDIR, iqn)).read().splitlines())
        return
    if logged_in(iqn):
        out = iscsiadm("-m", "node", "-T", iqn, "-u")
        say("logged-out", rc=out.returncode)
    else:
        say("no-session")


def hold(path, how):
    f = open_lock(path)
    how(f)
    say("held")
    sys.stdin.readline()
    f.close()
    say("released")


def free(path, how):
    f = open_lock(path)
    try:
        how(f)
        say("free", free=True)
    except OSError:
        say("free", free=False)
    f.close()


command, args = sys.argv[2], sys.argv[3:]
if command == "attach":
    attach(*args)
elif command == "detach":
    detach(*args)
elif command == "hold-iscsiadm-lock":
    hold(ISCSIADM_LOCK, lambda f: fcntl.lockf(f, fcntl.LOCK_EX))
elif command == "try-iscsiadm-lock":
    free(ISCSIADM_LOCK, lambda f: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB))
elif command == "hold-initiator-lock":
    hold(INITIATOR_LOCK, lambda f: fcntl.flock(f, fcntl.LOCK_SH))
elif command == "try-initiator-lock":
    free(INITIATOR_LOCK, lambda f: fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB))
else:
    sys.exit("unknown command " + command)
