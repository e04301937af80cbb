#!/usr/bin/env python3
"""Run a command and report its peak resident memory and wall time.

Usage: peak_rss.py [-o RESULT_FILE] [--] CMD [ARG...]

The command inherits stdin, stdout and stderr, so redirect them as usual, for example
`peak_rss.py -o r.txt -- bucketlog parse -q big.log > /dev/null`. When it exits, one line

    peak_rss_kib=3340 wall_s=1.234567 user_s=1.200 sys_s=0.030 exit=0 method=vmhwm ru_maxrss_kib=10804

is appended to RESULT_FILE (or written to stderr without -o), and peak_rss.py exits with the
command's exit status. Standard library only (ctypes for ptrace), no /usr/bin/time needed.

Why not just getrusage(RUSAGE_CHILDREN) / wait4's ru_maxrss
-----------------------------------------------------------
Linux keeps a process's ru_maxrss across execve(): a child forked (or vforked) from this
Python process starts with Python's own ~10-14 MiB high-water mark, so ru_maxrss can never
report less than that, however small the command is (`sh -c true` "uses" 14 MiB). That
floor would hide exactly what we want to see: a streaming parser using 3 MiB.
`/usr/bin/time -v` has the same effect, with its own smaller (~1-2 MiB) floor.

So the child is started under ptrace (PTRACE_TRACEME, then PTRACE_O_TRACEEXIT) and stopped
just as it exits, while its address space still exists; peak_rss_kib is then VmHWM from
/proc/PID/status: the high-water RSS of the program image after execve only. ru_maxrss_kib
is reported next to it for comparison. If ptrace is not permitted (some sandboxes), the
line says method=ru_maxrss and peak_rss_kib is ru_maxrss, an upper bound that includes the
inherited floor. The tracer only acts at exec, signal delivery and exit, so wall time is
not measurably affected. wall_s runs from just before the fork to just after the final
wait4, so Python's own start-up is not included.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_EXIT = 6

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long


def _trace_me():
    # In the child, between fork and exec. A failure just means no tracing: the parent
    # notices (the first wait reports an exit, not the exec stop) and falls back.
    _ptrace(PTRACE_TRACEME, 0, None, None)


def _vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run(args):
    """Run args; return (exit code, wall seconds, rusage, VmHWM KiB or None)."""
    started = time.perf_counter()
    child = subprocess.Popen(args, preexec_fn=_trace_me)
    pid = child.pid
    # Like time(1): Ctrl-C goes to the child (same process group); we wait for it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    hwm = None
    traced = False
    try:
        while True:
            _, status, usage = os.wait4(pid, 0)
            if not os.WIFSTOPPED(status):
                break
            sig = os.WSTOPSIG(status)
            event = status >> 16
            inject = 0
            if not traced and sig == signal.SIGTRAP:
                # The stop after execve: ask to be stopped again at exit.
                traced = True
                _ptrace(PTRACE_SETOPTIONS, pid, None,
                        ctypes.c_void_p(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL))
            elif sig == signal.SIGTRAP and event == PTRACE_EVENT_EXIT:
                hwm = _vm_hwm_kib(pid)
            else:
                inject = sig  # an ordinary signal: deliver it
            _ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(inject))
    finally:
        signal.signal(signal.SIGINT, previous)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped above: tell Popen
    return child.returncode, wall, usage, hwm


def main(argv):
    args = argv[1:]
    out_path = None
    if args[:1] == ["-o"] and len(args) >= 2:
        out_path, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        code, wall, usage, hwm = run(args)
    except OSError as e:
        print(f"peak_rss.py: cannot run {args[0]}: {e}", file=sys.stderr)
        return 127
    method = "vmhwm" if hwm is not None else "ru_maxrss"
    peak = hwm if hwm is not None else usage.ru_maxrss
    line = (
        f"peak_rss_kib={peak} wall_s={wall:.6f} user_s={usage.ru_utime:.3f} "
        f"sys_s={usage.ru_stime:.3f} exit={code} method={method} "
        f"ru_maxrss_kib={usage.ru_maxrss}\n"
    )
    if out_path is None:
        sys.stderr.write(line)
    else:
        with open(out_path, "a") as f:
            f.write(line)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
