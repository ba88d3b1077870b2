"""Tests for scripts/check-import-cycles.py on tiny fixture workspaces built in a temp dir."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "check-import-cycles.py")


def make_workspace(root, crates):
    """crates: {crate name: {path under src/: source}}."""
    members = ", ".join(f'"{name}"' for name in crates)
    with open(os.path.join(root, "Cargo.toml"), "w") as f:
        f.write(f'[workspace]\nmembers = [{members}]\nexclude = ["fuzz"]\n')
    for name, files in crates.items():
        os.makedirs(os.path.join(root, name, "src"), exist_ok=True)
        with open(os.path.join(root, name, "Cargo.toml"), "w") as f:
            f.write(f'[package]\nname = "{name}"\nversion = "0.1.0"\n')
        for rel, text in files.items():
            path = os.path.join(root, name, "src", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(textwrap.dedent(text))


def run(root, *flags):
    proc = subprocess.run(
        [sys.executable, SCRIPT, *flags, root], capture_output=True, text=True, check=False
    )
    return proc.returncode, proc.stdout.splitlines()


class CheckImportCycles(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def check(self, crates, *flags):
        make_workspace(self.root, crates)
        return run(self.root, *flags)

    def test_cycle_via_use_super_glob(self):
        rc, out = self.check({
            "alpha": {
                "lib.rs": "pub mod engine;\n",
                "engine/mod.rs": """
                    mod runner;
                    pub struct Config;
                    pub fn go() { runner::start() }
                """,
                "engine/runner.rs": """
                    use super::*;
                    pub fn start() {}
                """,
            }
        })
        self.assertEqual(rc, 1)
        self.assertEqual(out, ["alpha: engine/mod.rs -> engine/runner.rs -> engine/mod.rs"])

    def test_cycle_via_crate_paths(self):
        rc, out = self.check({
            "beta": {
                "lib.rs": "mod a;\nmod b;\nmod c;\n",
                "a.rs": "use crate::b::Thing;\n",
                # an inline path, resolved to the deepest module that exists
                "b.rs": "pub struct Thing;\npub fn f() { crate::c::deep::Item::new(); }\n",
                "c.rs": "pub mod deep { pub struct Item; }\npub fn g() { let _ = crate::a::X; }\n",
            }
        })
        self.assertEqual(rc, 1)
        self.assertEqual(out, ["beta: a.rs -> b.rs -> c.rs -> a.rs"])

    def test_re_export_cycle(self):
        rc, out = self.check({
            "gamma": {
                "lib.rs": "mod config;\npub use config::Config;\npub struct Root;\n",
                "config.rs": "pub struct Config(crate::Root);\n",
            }
        })
        self.assertEqual(rc, 1)
        self.assertEqual(out, ["gamma: config.rs -> lib.rs -> config.rs"])

    def test_acyclic_tree(self):
        rc, out = self.check({
            "delta": {
                "lib.rs": "pub mod shapes;\npub mod engine;\npub use engine::run;\n",
                "shapes.rs": "pub struct Shape;\n",
                "engine/mod.rs": "mod runner;\npub use runner::run;\nuse crate::shapes::Shape;\n",
                "engine/runner.rs": "use crate::shapes::{self, Shape};\npub fn run() {}\n",
            },
            "epsilon": {
                "main.rs": "mod cli;\nfn main() { cli::parse(); delta::run(); }\n",
                "cli.rs": "pub fn parse() { std::env::args(); }\n",
            },
        })
        self.assertEqual(rc, 0)
        self.assertEqual(out, ["no import circle in 2 crates (6 files)"])

    def test_test_modules_comments_and_strings_are_ignored(self):
        rc, out = self.check({
            "zeta": {
                "lib.rs": "mod parent;\n",
                "parent/mod.rs": """
                    mod child;
                    pub use child::Leaf;
                    pub struct Shared;
                """,
                "parent/child.rs": """
                    //! Talks about `super::Shared` and crate::parent::Shared in docs.
                    pub struct Leaf;
                    /* a block comment: use super::*; /* nested */ crate::parent::Shared */
                    pub const S: &str = "super::Shared and crate::parent::Shared";
                    pub const R: &str = r#"use super::*;"#;
                    pub const C: char = '"';
                    fn lifetimes<'a>(x: &'a str) -> &'a str { x }

                    #[cfg(test)]
                    mod tests {
                        use super::*;
                        use crate::parent::Shared;
                        fn f() { let _ = super::super::Shared; }
                    }

                    #[cfg(test)]
                    fn helper() -> crate::parent::Shared { crate::parent::Shared }
                """,
            }
        })
        self.assertEqual(rc, 0, out)
        self.assertEqual(out, ["no import circle in 1 crates (3 files)"])

    def test_non_test_inline_module_counts_for_its_file(self):
        rc, out = self.check({
            "eta": {
                "lib.rs": "mod outer;\n",
                "outer/mod.rs": "mod inner;\npub use inner::X;\npub struct Y;\n",
                "outer/inner.rs": "pub struct X;\nmod helpers { use super::super::Y; }\n",
            }
        })
        self.assertEqual(rc, 1)
        self.assertEqual(out, ["eta: outer/inner.rs -> outer/mod.rs -> outer/inner.rs"])

    def test_why_names_the_source_of_each_edge(self):
        rc, out = self.check({
            "theta": {
                "lib.rs": "mod a;\nmod b;\n",
                "a.rs": "\nuse crate::b::B;\npub struct A;\n",
                "b.rs": "pub struct B;\nfn f() -> super::a::A { todo!() }\n",
            }
        }, "--why")
        self.assertEqual(rc, 1)
        self.assertEqual(out, [
            "theta: a.rs -> b.rs -> a.rs",
            "    a.rs:2: crate::b::B",
            "    b.rs:2: super::a::A",
        ])

    def test_fuzz_and_bins_and_aliases(self):
        make_workspace(self.root, {
            "iota": {
                "lib.rs": "pub mod x;\n",
                "x.rs": "pub struct X;\n",
                "bin/tool.rs": "mod cmd;\nuse cmd as c;\npub struct T;\nfn main() { c::run(); }\n",
                "bin/cmd.rs": "pub fn run() { let _ = crate::T; }\n",
            }
        })
        # a cyclic crate under fuzz/, picked up by a `*` member glob, is skipped
        make_workspace(self.root, {"fuzz": {"lib.rs": "mod a;\nstruct L;\n", "a.rs": "use crate::L;\n"}})
        with open(os.path.join(self.root, "Cargo.toml"), "w") as f:
            f.write('[workspace]\nmembers = ["*"]\n')
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertEqual(out, ["iota (bin tool): bin/cmd.rs -> bin/tool.rs -> bin/cmd.rs"])


if __name__ == "__main__":
    unittest.main()
