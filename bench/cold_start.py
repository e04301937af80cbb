#!/usr/bin/env python3
"""How long the Lambda function's init takes: from exec to its first call for work.

    bench/cold_start.py [--bin target/release/bucketlog-lambda] [--runs 20] [VAR=VALUE ...]

A stand-in for Lambda's runtime API listens on 127.0.0.1; the function is started with
AWS_LAMBDA_RUNTIME_API pointing at it and the settings given (GEOIP_DB=..., for example),
and the clock stops when its first `GET .../runtime/invocation/next` arrives: by then it
has read its configuration, built its AWS clients and opened any client databases. The
function's CPU time at that moment is read from /proc. It is then killed; no event is
sent. Reported: median and worst wall and CPU milliseconds over the runs.

Not measured: the Lambda service's own start-up of the sandbox and the download of the
binary, which no code of ours controls, and anything done lazily on the first event
(the user agent regexes, see BENCHMARKS.md).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time


def cpu_ms(pid):
    """CPU time of all the process's threads so far, in milliseconds, from each thread's
    schedstat (nanoseconds; /proc/PID/stat counts whole 10 ms ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e6


def one_run(binary, extra_env):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)
    port = server.getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bucketlog-lambda",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "LOG_LEVEL": "warn",
        **extra_env,
    }
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        conn, _ = server.accept()
        request = conn.recv(4096)
        wall = (time.perf_counter() - started) * 1000
        cpu = cpu_ms(proc.pid)
        conn.close()
    except socket.timeout:
        proc.kill()
        sys.exit(f"cold_start.py: no call for work within 30 s: {proc.stderr.read().decode()}")
    finally:
        server.close()
    proc.kill()
    proc.wait()
    if b"/runtime/invocation/next" not in request:
        sys.exit(f"cold_start.py: unexpected first request: {request[:200]!r}")
    return wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/bucketlog-lambda")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("env", nargs="*", help="VAR=VALUE settings for the function")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    one_run(args.bin, extra)  # untimed: the binary into the page cache
    walls, cpus = zip(*(one_run(args.bin, extra) for _ in range(args.runs)))
    label = " ".join(args.env) or "no settings"
    print(
        f"{label}: init wall median {statistics.median(walls):.1f} ms "
        f"(worst {max(walls):.1f}), CPU median {statistics.median(cpus):.1f} ms "
        f"(worst {max(cpus):.1f}), {args.runs} runs"
    )


if __name__ == "__main__":
    main()
