#!/usr/bin/env python3
"""Report import circles between the files of each workspace crate.

Usage: check-import-cycles.py [--why] ROOT

For every workspace member of ROOT/Cargo.toml (fuzz/ and target/ skipped) and every crate
root of it (src/lib.rs, src/main.rs, src/bin/*, [[bin]]/[lib] paths), build the file-level
module graph and print one line per cycle:

    crate: a.rs -> b.rs -> a.rs

(paths relative to the crate's src/). Exit 1 if there is any cycle, else print
`no import circle in N crates (M files)` and exit 0. `--why` adds, under each cycle, the
first place in the source that makes each of its edges.

An edge A -> B: code in file A names a path that resolves into file B. Paths are
`crate::…`, `super::…`, `self::…`, `child::…` (a module declared in A's module), or a name a
`use` bound to a module; they resolve to the deepest module that exists (`use super::*` ->
the parent). Both `use` trees (re-exports included) and inline paths count. `mod x;`
declarations do not. Comments, string/char literals and `#[cfg(test)]` items (their
bodies included, e.g. `mod tests { use super::*; }`) are ignored. Non-test inline
`mod x { … }` blocks belong to their file (paths in them resolve relative to `x`).

Standard library only.
"""

import glob
import os
import sys
import tomllib

MAX_CYCLES = 500  # per crate; beyond that the tangle is reported as a note


# ---------------------------------------------------------------- lexing

def _skip_block_comment(s, i):
    """s[i:i+2] == '/*'; returns the index after the matching '*/' (nested)."""
    depth, i, n = 1, i + 2, len(s)
    while i < n and depth:
        if s.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif s.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _skip_quoted(s, i):
    """s[i] == '"'; returns (index after the closing quote, contents)."""
    j, n = i + 1, len(s)
    while j < n and s[j] != '"':
        j += 2 if s[j] == "\\" else 1
    return j + 1, s[i + 1:j]


def _raw_string_at(s, i):
    """If a raw string starts at i (r", r#", br", cr#"...), return (end, contents)."""
    j = i
    if s[j] in "bc":
        j += 1
    if j >= len(s) or s[j] != "r":
        return None
    j += 1
    hashes = 0
    while j < len(s) and s[j] == "#":
        hashes, j = hashes + 1, j + 1
    if j >= len(s) or s[j] != '"':
        return None
    close = '"' + "#" * hashes
    end = s.find(close, j + 1)
    if end < 0:
        end = len(s)
    return end + len(close), s[j + 1:end]


def _is_ident_start(c):
    return c.isalpha() or c == "_"


def _is_ident_char(c):
    return c.isalnum() or c == "_"


def tokenize(s):
    """Tokens (kind, text, line): kind 'id' (identifier/keyword), 'str' (string literal
    contents), 'lit' (number/char), 'p' (punctuation; '::' is one token)."""
    toks = []
    i, n, line = 0, len(s), 1
    while i < n:
        c = s[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif s.startswith("//", i):
            j = s.find("\n", i)
            i = n if j < 0 else j
        elif s.startswith("/*", i):
            j = _skip_block_comment(s, i)
            line += s.count("\n", i, j)
            i = j
        elif c == '"':
            j, text = _skip_quoted(s, i)
            toks.append(("str", text, line))
            line += s.count("\n", i, j)
            i = j
        elif c in "rbc" and (raw := _raw_string_at(s, i)) is not None:
            j, text = raw
            toks.append(("str", text, line))
            line += s.count("\n", i, j)
            i = j
        elif c in "bc" and i + 1 < n and s[i + 1] == '"':
            j, text = _skip_quoted(s, i + 1)
            toks.append(("str", text, line))
            line += s.count("\n", i, j)
            i = j
        elif c == "b" and i + 1 < n and s[i + 1] == "'":
            j = i + 2
            while j < n and s[j] != "'":
                j += 2 if s[j] == "\\" else 1
            toks.append(("lit", "'", line))
            i = j + 1
        elif c == "'":
            if i + 1 < n and s[i + 1] == "\\":  # '\n', '\u{..}', '\''
                j = i + 3
                while j < n and s[j] != "'":
                    j += 1
                toks.append(("lit", "'", line))
                i = j + 1
            elif i + 2 < n and s[i + 2] == "'":  # 'x'
                toks.append(("lit", "'", line))
                i += 3
            else:  # lifetime or label
                j = i + 1
                while j < n and _is_ident_char(s[j]):
                    j += 1
                i = j
        elif c == "r" and s.startswith("r#", i) and i + 2 < n and _is_ident_start(s[i + 2]):
            j = i + 2
            while j < n and _is_ident_char(s[j]):
                j += 1
            toks.append(("id", s[i + 2:j], line))
            i = j
        elif _is_ident_start(c):
            j = i + 1
            while j < n and _is_ident_char(s[j]):
                j += 1
            toks.append(("id", s[i:j], line))
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (_is_ident_char(s[j]) or (s[j] == "." and j + 1 < n and s[j + 1].isdigit())):
                j += 1
            toks.append(("lit", s[i:j], line))
            i = j
        elif s.startswith("::", i):
            toks.append(("p", "::", line))
            i += 2
        else:
            toks.append(("p", c, line))
            i += 1
    return toks


# ---------------------------------------------------------------- parsing one file

class FileScan:
    """What one file says: its `mod` declarations, use leaves and inline paths, each
    tagged with the (possibly inline) module they appear in."""

    def __init__(self):
        self.file_mods = []    # (module path, name, path attr or None)
        self.inline_mods = []  # module path of each non-test inline `mod x { … }`
        self.uses = []         # (module path, segments, alias, line)
        self.paths = []        # (module path, segments, line)


def _matching(toks, i, open_, close):
    """toks[i] is `open_`; returns the index after its matching `close`."""
    depth, n = 0, len(toks)
    while i < n:
        t = toks[i][1] if toks[i][0] == "p" else None
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_item(toks, i):
    """Skip one item (after its attributes): up to a `;` or through the first `{ … }`
    block at this nesting level, whichever comes first."""
    n, depth = len(toks), 0
    while i < n:
        kind, t, _ = toks[i]
        if kind == "p":
            if t in "([":
                depth += 1
            elif t in ")]":
                depth -= 1
            elif t == ";" and depth <= 0:
                return i + 1
            elif t == "{" and depth <= 0:
                return _matching(toks, i, "{", "}")
            elif t == "}" and depth <= 0:
                return i  # end of the enclosing block: let the caller see it
        i += 1
    return n


def _parse_attr(toks, i):
    """toks[i] == '#'; returns (index after the attribute, is_cfg_test, path attr)."""
    j = i + 1
    if j < len(toks) and toks[j][1] == "!":
        j += 1
    end = _matching(toks, j, "[", "]")
    body = toks[j + 1:end - 1]
    idents = [t for k, t, _ in body if k == "id"]
    cfg_test = bool(idents) and idents[0] == "cfg" and "test" in idents and "not" not in idents
    path = None
    if idents[:1] == ["path"]:
        strs = [t for k, t, _ in body if k == "str"]
        path = strs[0] if strs else None
    inner = toks[i + 1][1] == "!"
    return end, (cfg_test and not inner), path


def _parse_use_tree(toks, i, prefix, leaves, line):
    """Parse a use tree at toks[i] with the given segment prefix; append
    (segments, alias) leaves; return the index after the tree."""
    segs = list(prefix)
    n = len(toks)
    if i < n and toks[i][1] == "::":  # `::std::…`: an extern crate
        segs.append("::")
        i += 1
    while i < n:
        kind, t, _ = toks[i]
        if kind == "p" and t == "{":
            i += 1
            while i < n and toks[i][1] != "}":
                i = _parse_use_tree(toks, i, segs, leaves, line)
                if i < n and toks[i][1] == ",":
                    i += 1
            return i + 1
        if kind == "p" and t == "*":
            leaves.append((segs + ["*"], None))
            return i + 1
        if kind == "id":
            segs.append(t)
            i += 1
            if i < n and toks[i][1] == "::":
                i += 1
                continue
            alias = None
            if i + 1 < n and toks[i][1] == "as":
                alias = toks[i + 1][1]
                i += 2
            leaves.append((segs, alias))
            return i
        return i + 1  # malformed: skip a token
    return i


def _read_path(toks, i):
    """toks[i] is an identifier followed by '::'; return (segments, index after)."""
    segs, n = [toks[i][1]], len(toks)
    i += 1
    while i + 1 < n and toks[i][1] == "::" and toks[i + 1][0] == "id":
        segs.append(toks[i + 1][1])
        i += 2
    return segs, i


def scan_file(text, module):
    """Scan one file whose module path is `module` (a tuple)."""
    toks = tokenize(text)
    out = FileScan()
    stack = [(module, -1)]  # (module path, brace depth its block closes back to)
    depth, i, n = 0, 0, len(toks)
    path_attr = None
    while i < n:
        kind, t, line = toks[i]
        cur = stack[-1][0]
        if kind == "p" and t == "#" and i + 1 < n and toks[i + 1][0] == "p" and toks[i + 1][1] in ("[", "!"):
            i, cfg_test, p = _parse_attr(toks, i)
            if cfg_test:
                while i < n and toks[i][1] == "#":  # its other attributes
                    i = _parse_attr(toks, i)[0]
                i = _skip_item(toks, i)
            elif p is not None:
                path_attr = p
            continue
        if kind == "p":
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
                if len(stack) > 1 and depth == stack[-1][1]:
                    stack.pop()
            if t in "{};":
                path_attr = None
            i += 1
            continue
        if kind != "id":
            i += 1
            continue
        prev = toks[i - 1][1] if i else ""
        if t == "mod" and i + 2 < n and toks[i + 1][0] == "id" and prev != "::":
            name, after = toks[i + 1][1], toks[i + 2][1]
            if after == ";":
                out.file_mods.append((cur, name, path_attr))
                path_attr = None
                i += 3
                continue
            if after == "{":
                child = cur + (name,)
                out.inline_mods.append(child)
                stack.append((child, depth))
                depth += 1
                path_attr = None
                i += 3
                continue
        if t == "use" and prev != "::":
            leaves = []
            j = _parse_use_tree(toks, i + 1, [], leaves, line)
            while j < n and toks[j][1] != ";":
                j += 1
            for segs, alias in leaves:
                out.uses.append((cur, segs, alias, line))
            i = j + 1
            continue
        if i + 1 < n and toks[i + 1][1] == "::" and prev != "::" and prev != ".":
            segs, i = _read_path(toks, i)
            out.paths.append((cur, segs, line))
            continue
        i += 1
    return out


# ---------------------------------------------------------------- one crate

class Crate:
    def __init__(self, label, src_dir, root_file):
        self.label = label
        self.src_dir = src_dir
        self.modules = {(): root_file}  # module path -> file
        self.scans = {}                 # file -> (FileScan, module path of the file)
        self.edges = {}                 # (from file, to file) -> (line, path text)
        self._load((), root_file, os.path.dirname(root_file))

    def _load(self, module, path, child_dir):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return
        scan = scan_file(text, module)
        self.scans[path] = (scan, module)
        for inline in scan.inline_mods:
            self.modules[inline] = path
        for parent, name, attr in scan.file_mods:
            sub = os.path.join(child_dir, *parent[len(module):])
            if attr is not None:
                target = os.path.normpath(os.path.join(os.path.dirname(path), attr))
                candidates = [target]
            else:
                candidates = [os.path.join(sub, name + ".rs"), os.path.join(sub, name, "mod.rs")]
            target = next((c for c in candidates if os.path.isfile(c)), None)
            if target is None or target in self.scans:
                continue
            self.modules[parent + (name,)] = target
            if os.path.basename(target) == "mod.rs":
                next_dir = os.path.dirname(target)
            else:
                next_dir = os.path.join(os.path.dirname(target), name)
            self._load(parent + (name,), target, next_dir)

    def resolve(self, module, segs, aliases):
        """Deepest module a path names, or None if it is not a path into this crate."""
        first, rest = segs[0], segs[1:]
        if first == "crate":
            cur = ()
        elif first in ("super", "self"):
            cur, rest = module, segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    if not cur:
                        return None
                    cur = cur[:-1]
                rest = rest[1:]
        elif module + (first,) in self.modules:
            cur = module + (first,)
        elif (module, first) in aliases:
            cur = aliases[(module, first)]
        else:
            return None
        for s in rest:
            if s == "self":
                continue
            if cur + (s,) not in self.modules:
                break
            cur = cur + (s,)
        return cur

    def build_edges(self):
        aliases = {}
        for _ in range(2):  # a second round lets `use` trees start from a bound alias
            for scan, _m in self.scans.values():
                for module, segs, alias, _line in scan.uses:
                    if segs[-1] == "*" or alias == "_":
                        continue
                    target = self.resolve(module, segs, aliases)
                    named = [s for s in segs if s != "self"]
                    if target is not None and target and named and target[-1] == named[-1]:
                        aliases[(module, alias or named[-1])] = target
        for path, (scan, _m) in sorted(self.scans.items()):
            occurrences = [(m, s, line) for m, s, _a, line in scan.uses]
            occurrences += scan.paths
            for module, segs, line in sorted(occurrences, key=lambda o: o[2]):
                target = self.resolve(module, segs, aliases)
                if target is None:
                    continue
                dest = self.modules[target]
                if dest != path and (path, dest) not in self.edges:
                    shown = segs[:-1] if segs[-1] == "self" else segs
                    self.edges[(path, dest)] = (line, "::".join(shown))

    def rel(self, path):
        return os.path.relpath(path, self.src_dir)


# ---------------------------------------------------------------- cycles

def _sccs(nodes, succ):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ.get(w, ()))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def elementary_cycles(succ, limit):
    """Johnson's algorithm; returns (cycles, complete). Each cycle starts at its smallest
    node (by sort order)."""
    nodes = sorted(succ)
    order = {v: k for k, v in enumerate(nodes)}
    cycles = []
    for s in nodes:
        allowed = {v for v in nodes if order[v] >= order[s]}
        sub = {v: [w for w in succ.get(v, ()) if w in allowed] for v in allowed}
        comp = next((c for c in _sccs(sorted(allowed), sub) if s in c), None)
        if comp is None or (len(comp) == 1 and s not in sub[s]):
            continue
        comp = set(comp)
        blocked, bmap, path = set(), {v: set() for v in comp}, [s]

        def unblock(u):
            todo = [u]
            while todo:
                x = todo.pop()
                if x in blocked:
                    blocked.discard(x)
                    todo.extend(bmap[x])
                    bmap[x].clear()

        blocked.add(s)
        stack = [(s, iter(sorted(w for w in sub[s] if w in comp)), False)]
        while stack:
            v, it, found = stack[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt == s:
                    cycles.append(list(path))
                    if len(cycles) >= limit:
                        return cycles, False
                    stack[-1] = (v, it, True)
                elif nxt not in blocked:
                    path.append(nxt)
                    blocked.add(nxt)
                    stack.append((nxt, iter(sorted(w for w in sub[nxt] if w in comp)), False))
                continue
            stack.pop()
            if found:
                unblock(v)
            else:
                for w in sub[v]:
                    if w in comp:
                        bmap[w].add(v)
            path.pop()
            if stack:
                pv, pit, pfound = stack[-1]
                stack[-1] = (pv, pit, pfound or found)
    return cycles, True


# ---------------------------------------------------------------- workspace

def crate_roots(pkg_dir):
    """(label suffix, root file) for each crate of one package."""
    with open(os.path.join(pkg_dir, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    name = manifest.get("package", {}).get("name", os.path.basename(pkg_dir))
    roots = []
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    if os.path.isfile(os.path.join(pkg_dir, lib)):
        roots.append((name, os.path.join(pkg_dir, lib)))
    bins = {}
    if os.path.isfile(os.path.join(pkg_dir, "src/main.rs")):
        bins[os.path.normpath(os.path.join(pkg_dir, "src/main.rs"))] = name
    for f in sorted(glob.glob(os.path.join(pkg_dir, "src/bin/*.rs"))):
        bins[os.path.normpath(f)] = os.path.basename(f)[:-3]
    for f in sorted(glob.glob(os.path.join(pkg_dir, "src/bin/*/main.rs"))):
        bins[os.path.normpath(f)] = os.path.basename(os.path.dirname(f))
    for b in manifest.get("bin", []):
        if "path" in b:
            bins[os.path.normpath(os.path.join(pkg_dir, b["path"]))] = b.get("name", name)
    for path, bin_name in sorted(bins.items()):
        if os.path.isfile(path):
            roots.append((f"{name} (bin {bin_name})", path))
    return name, roots


def workspace_members(root):
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    ws = manifest.get("workspace", {})
    exclude = {os.path.normpath(e) for e in ws.get("exclude", [])}
    dirs = []
    for m in ws.get("members", []):
        for d in sorted(glob.glob(os.path.join(root, m))):
            rel = os.path.normpath(os.path.relpath(d, root))
            top = rel.split(os.sep)[0]
            if top in ("fuzz", "target") or rel in exclude:
                continue
            if os.path.isfile(os.path.join(d, "Cargo.toml")):
                dirs.append(d)
    if not dirs and "package" in manifest:
        dirs.append(root)
    return dirs


def check(root, why=False, out=sys.stdout):
    """Returns the number of cycles found (printing them), or prints the all-clear."""
    packages, files, found = 0, set(), 0
    for pkg_dir in workspace_members(root):
        packages += 1
        _name, roots = crate_roots(pkg_dir)
        for label, root_file in roots:
            crate = Crate(label, os.path.join(pkg_dir, "src"), root_file)
            files.update(crate.scans)
            crate.build_edges()
            succ = {}
            for a, b in crate.edges:
                succ.setdefault(a, []).append(b)
                succ.setdefault(b, [])
            cycles, complete = elementary_cycles(succ, MAX_CYCLES)
            cycles.sort(key=lambda c: (len(c), [crate.rel(p) for p in c]))
            for cyc in cycles:
                ring = cyc + [cyc[0]]
                print(f"{label}: " + " -> ".join(crate.rel(p) for p in ring), file=out)
                if why:
                    for a, b in zip(ring, ring[1:]):
                        line, text = crate.edges[(a, b)]
                        print(f"    {crate.rel(a)}:{line}: {text}", file=out)
            if not complete:
                print(f"{label}: more than {MAX_CYCLES} cycles; only the first are shown", file=out)
            found += len(cycles)
    if not found:
        print(f"no import circle in {packages} crates ({len(files)} files)", file=out)
    return found


def main(argv):
    args = [a for a in argv if a != "--why"]
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    return 1 if check(args[0], why="--why" in argv) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
