#!/usr/bin/python3
"""Run a command under an OCI seccomp profile, as a container runtime would load it.

Usage: seccomp-exec.py PROFILE.json COMMAND [ARGS...]

The profile (the format of a Kubernetes `seccompProfile: {type: Localhost}` file: the OCI
runtime spec's `linux.seccomp`) is compiled with libseccomp (Debian's python3-seccomp, so
run it with /usr/bin/python3), loaded with no_new_privs, and COMMAND is exec'ed in this
process (same PID: signals sent to it reach the command). Syscall names this architecture
does not know are skipped, as runc and crun skip them. A denied syscall fails with the
profile's errno (EPERM by default), so a missing entry shows up as a failing command.
"""
import json
import os
import sys

import seccomp

ACTIONS = {
    "SCMP_ACT_ALLOW": lambda ret: seccomp.ALLOW,
    "SCMP_ACT_ERRNO": lambda ret: seccomp.ERRNO(ret),
    "SCMP_ACT_KILL": lambda ret: seccomp.KILL,
    "SCMP_ACT_LOG": lambda ret: seccomp.LOG,
}
OPS = {
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}
EPERM = 1


def action(name, errno_ret):
    if name not in ACTIONS:
        raise SystemExit(f"seccomp-exec: unsupported action {name}")
    return ACTIONS[name](errno_ret)


def build_filter(profile):
    default = action(profile["defaultAction"], profile.get("defaultErrnoRet", EPERM))
    f = seccomp.SyscallFilter(defaction=default)
    skipped = []
    for rule in profile["syscalls"]:
        act = action(rule["action"], rule.get("errnoRet", EPERM))
        args = [
            seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
            for a in rule.get("args", [])
        ]
        for name in rule["names"]:
            try:
                seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
            except (ValueError, RuntimeError):
                skipped.append(name)
                continue
            f.add_rule(act, name, *args)
    return f, skipped


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    profile = json.load(open(sys.argv[1]))
    f, skipped = build_filter(profile)
    if os.environ.get("SECCOMP_EXEC_VERBOSE"):
        print(f"seccomp-exec: {len(skipped)} names unknown here, skipped: {' '.join(skipped)}",
              file=sys.stderr)
    f.load()
    os.execv(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
