"""Tests for scripts/check-file-length.sh on a fixture tree built in a temp dir."""

import os
import subprocess
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "check-file-length.sh")


class CheckFileLength(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, rel, first, lines):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(first + "\n" + "x\n" * (lines - 1))

    def run_check(self):
        proc = subprocess.run(
            ["bash", SCRIPT, self.root], capture_output=True, text=True, check=False
        )
        return proc.returncode, proc.stdout.splitlines()

    def test_short_files_and_reasoned_long_files_pass(self):
        self.write("common/src/a.rs", "// a", 800)
        self.write("bench-client/src/b.rs", "// long-file: one table, read top to bottom", 900)
        self.write("bench-client/tests/c.rs", "// c", 5000)  # outside the checked dirs
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertEqual(out, ["no file over 800 lines without a reason (2 files)"])

    def test_long_files_without_a_reason_are_listed(self):
        self.write("common/src/a.rs", "// a", 801)
        self.write("common/tests/t.rs", "// long-file:", 900)  # empty reason
        self.write("bench-client/src/x/b.rs", "use std::io;", 1200)
        self.write("bench-client/src/c.rs", "// c\n// long-file: not on the first line", 1000)
        rc, out = self.run_check()
        self.assertEqual(rc, 1)
        self.assertEqual(len(out), 5, out)
        self.assertIn("bench-client/src/x/b.rs: 1200 lines", out[1])
        self.assertTrue(out[0].startswith("bench-client/src/c.rs: 1001 lines"), out)
        self.assertTrue(out[2].startswith("common/src/a.rs: 801 lines"), out)
        self.assertTrue(out[3].startswith("common/tests/t.rs: 900 lines"), out)
        self.assertEqual(out[4], "4 file(s) over 800 lines without a long-file reason")


if __name__ == "__main__":
    unittest.main()
