"""hot-path-ab.sh and hot-path-summary.py take the gateway variants from
`bench-client variants` (the workspace's gateways.tsv), not from copies of their own.
Both run here against stub binaries in a temp dir."""

import json
import os
import stat
import subprocess
import tempfile
import textwrap
import unittest

SCRIPTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
REPO = os.path.dirname(SCRIPTS)

# What `bench-client variants` prints for the workspace's gateways.tsv.
TABLE = (
    "tokio-multi\tgateway-tokio\t--flavor multi\ttokio\n"
    "tokio-per-core\tgateway-tokio\t--flavor per-core\ttokio\n"
    "uring\tgateway-uring\t\ttokio-uring\n"
    "compio\tgateway-compio\t\tcompio\n"
)


def stub(path, body):
    with open(path, "w") as f:
        f.write("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def table_file(tmp):
    path = os.path.join(tmp, "table.tsv")
    with open(path, "w") as f:
        f.write(TABLE)
    return path


class TableMatchesTheDataFile(unittest.TestCase):
    def test_the_stub_table_is_gateways_tsv(self):
        with open(os.path.join(REPO, "gateways.tsv")) as f:
            rows = [l for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual("".join(rows), TABLE)


class HotPathAb(unittest.TestCase):
    """A whole round over stub binaries: each gateway is started as the table says."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.bins = os.path.join(self.tmp, "bin")
        self.path = os.path.join(self.tmp, "path")
        os.makedirs(self.bins)
        os.makedirs(self.path)
        self.calls = os.path.join(self.tmp, "calls")
        table = table_file(self.tmp)
        stub(os.path.join(self.path, "taskset"), 'shift 2\nexec "$@"\n')
        stub(os.path.join(self.bins, "bench-client"), f"""
            [ "$1" = variants ] && exec cat {table}
            while [ $# -gt 0 ]; do
              [ "$1" = --json ] && printf '%s' '{json.dumps(self.run_json())}' > "$2"
              shift
            done
        """)
        for gw in ("gateway-tokio", "gateway-uring", "gateway-compio"):
            stub(os.path.join(self.bins, gw), f"""
                echo "{gw} $*" >> {self.calls}
                echo "listening on 127.0.0.1:9"
                exec sleep 30
            """)
        stub(os.path.join(self.bins, "kafka-mock"), "echo 127.0.0.1:9092\nexec sleep 30\n")
        stub(os.path.join(self.bins, "producer-bench"), """
            while [ $# -gt 0 ]; do
              [ "$1" = --json ] && echo '{"records_per_sec": 1000, "cpu_us_per_record": 1.5}' > "$2"
              shift
            done
        """)

    def tearDown(self):
        self._tmp.cleanup()

    @staticmethod
    def run_json():
        return {
            "totals": {"ok": 4000, "ok_per_sec": 1000, "errors": 0},
            "latency": {"p50_us": 100, "p99_us": 300},
            "cpu_steal": {},
        }

    def run_ab(self, **env):
        out = os.path.join(self.tmp, "out")
        full_env = dict(os.environ, PATH=self.path + os.pathsep + os.environ["PATH"], **env)
        proc = subprocess.run(
            ["bash", os.path.join(SCRIPTS, "hot-path-ab.sh"), out, "1", f"v={self.bins}"],
            capture_output=True, text=True, env=full_env, check=False, timeout=120,
        )
        return proc, out

    def test_every_gateway_starts_with_the_table_binary_and_arguments(self):
        proc, out = self.run_ab(CASES="http-null")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        with open(self.calls) as f:
            calls = f.read().splitlines()
        self.assertEqual(calls, [
            "gateway-tokio --flavor multi --sink null --threads 1 --listen 127.0.0.1:0",
            "gateway-tokio --flavor per-core --sink null --threads 1 --listen 127.0.0.1:0",
            "gateway-uring --sink null --threads 1 --listen 127.0.0.1:0",
            "gateway-compio --sink null --threads 1 --listen 127.0.0.1:0",
        ])
        with open(os.path.join(out, "results.tsv")) as f:
            gateways = [line.split("\t")[1] for line in f.read().splitlines()[1:]]
        self.assertEqual(gateways, ["tokio-multi", "tokio-per-core", "uring", "compio"])

    def test_an_unknown_gateway_is_refused(self):
        proc, _ = self.run_ab(GATEWAYS="uring tokio")
        self.assertEqual(proc.returncode, 2)
        self.assertIn(
            "unknown gateway tokio (bench-client variants: tokio-multi tokio-per-core uring compio)",
            proc.stdout,
        )
        self.assertFalse(os.path.exists(self.calls))


class HotPathSummary(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.out)
        rows = ["variant\tgateway\tcase\tround\tok_per_s\terrors\tgw_cpu_s\tgw_cpu_us_per_req"
                "\tp50_us\tp99_us\tload1\tsteal_cpu1_pct\tsteal_cpu0_pct"]
        producer = ["run\trecords_per_s\tcpu_us_per_record", "max.r1\t90000\t2.0"]
        for gw in ("uring", "compio", "tokio-multi"):  # not the table's order
            for case in ("http-kafka", "http-null", "ws-kafka", "ws-null"):
                rows.append(f"v\t{gw}\t{case}\t1\t1000\t0\t1.0\t10.0\t100\t300\t0.5\t0\t0")
            producer.append(f"v.{gw}.http-kafka.r1\t1000\t1.5")
        for name, lines in (("results.tsv", rows), ("producer.tsv", producer)):
            with open(os.path.join(self.out, name), "w") as f:
                f.write("\n".join(lines) + "\n")

    def tearDown(self):
        self._tmp.cleanup()

    def summary(self, client):
        return subprocess.run(
            ["python3", os.path.join(SCRIPTS, "hot-path-summary.py"), self.out],
            capture_output=True, text=True, check=False,
            env=dict(os.environ, BENCH_CLIENT=client),
        )

    def test_gateways_are_in_the_table_order(self):
        client = os.path.join(self.tmp, "bench-client")
        stub(client, f'[ "$1" = variants ] && exec cat {table_file(self.tmp)}\nexit 2\n')
        proc = self.summary(client)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        first_table = [l.split(" | ")[0].lstrip("| ") for l in proc.stdout.splitlines()
                       if l.startswith("| ") and " | v | " in l][:3]
        self.assertEqual(first_table, ["tokio-multi", "uring", "compio"])

    def test_no_bench_client_is_an_error(self):
        proc = self.summary(os.path.join(self.tmp, "missing"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no bench-client", proc.stderr)


if __name__ == "__main__":
    unittest.main()
