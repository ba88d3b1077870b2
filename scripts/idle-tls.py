#!/usr/bin/env python3
"""Idle memory per connection, plaintext vs TLS, for each gateway variant.

For each variant of gateways.tsv and each of plain / tls: start the gateway (null sink, one
I/O thread, a self-signed EC certificate made with openssl for the TLS case), open N
connections, send one 100-byte POST on each and read its answer, then read the gateway's
VmRSS: (after - before) / N bytes per idle connection. The same method as compare's
idle-http cell (`bench-client/src/experiments/idle.rs`), with Python's ssl module as the TLS
client (compare has no TLS idle cell yet). Bounded: N connections, 60 s per gateway start,
everything it starts is stopped by PID and its temp dir removed.

Usage: scripts/idle-tls.py [--conns N] [--bin-dir target/release] [--variants a,b]
Prints one line per variant and mode, and a markdown table at the end.
"""
import argparse
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variants():
    out = []
    with open(os.path.join(ROOT, "gateways.tsv")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            name, binary = cols[0], cols[1]
            args = cols[2].split() if len(cols) > 2 and cols[2] not in ("", "-") else []
            out.append((name, binary, args))
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def start(binary, args, extra, log_path):
    log = open(log_path, "w+")
    p = subprocess.Popen(
        [binary, *args, "--listen", "127.0.0.1:0", "--sink", "null", "--threads", "1", *extra],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        log.seek(0)
        m = re.search(r"listening on (\d+\.\d+\.\d+\.\d+:\d+)", log.read())
        if m:
            host, port = m.group(1).split(":")
            return p, (host, int(port))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    log.seek(0)
    raise RuntimeError(f"{binary} did not start: {log.read()[-2000:]}")


def hold(addr, n, ctx):
    request = (
        b"POST /topics/idle HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"v" * 100
    )
    conns, answered = [], 0
    for _ in range(n):
        s = socket.create_connection(addr, timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        conns.append(s)
    for s in conns:
        s.sendall(request)
    for s in conns:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 2"):
            answered += 1
    return conns, answered


def measure(binary, args, extra, n, ctx, tmp):
    p, addr = start(binary, args, extra, os.path.join(tmp, "gateway.log"))
    try:
        time.sleep(0.5)
        before = rss_kib(p.pid)
        conns, answered = hold(addr, n, ctx)
        time.sleep(0.2)
        after = rss_kib(p.pid)
        for s in conns:
            s.close()
        return (after - before) * 1024 / n, answered
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--variants", default="")
    a = ap.parse_args()
    want = set(filter(None, a.variants.split(",")))
    tmp = tempfile.mkdtemp(prefix="idle-tls-")
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        ctx = ssl.create_default_context(cafile=cert)
        ctx.set_alpn_protocols(["http/1.1"])
        rows = []
        for name, binary, args in variants():
            if want and name not in want:
                continue
            path = os.path.join(a.bin_dir, binary)
            plain, ok_p = measure(path, args, [], a.conns, None, tmp)
            tls, ok_t = measure(path, args, ["--tls-cert", cert, "--tls-key", key], a.conns, ctx, tmp)
            print(f"{name}: plain {plain:.0f} B/conn ({ok_p}/{a.conns} answered), "
                  f"tls {tls:.0f} B/conn ({ok_t}/{a.conns} answered)", flush=True)
            rows.append((name, plain, tls, ok_p, ok_t))
        print(f"\n| gateway | idle HTTP plain, B/conn | idle HTTPS, B/conn | TLS adds | answered plain / TLS (of {a.conns}) |")
        print("|---|---:|---:|---:|---|")
        for name, plain, tls, ok_p, ok_t in rows:
            print(f"| {name} | {plain:,.0f} | {tls:,.0f} | {tls - plain:+,.0f} | {ok_p} / {ok_t} |")
        return 0 if all(r[3] == a.conns and r[4] == a.conns for r in rows) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
