#!/usr/bin/env python3
"""Counts cycles among each crate's top-level modules.

A module depends on another when its files name `crate::other` (in a `use` or a path) or, inside
a module directory, `super::sibling`. Cycles are the strongly connected components of more than one
module. Prints each cycle; exits 1 when there is one and --check is given.
"""
import pathlib
import re
import sys

CRATES = {
    "intune-rotate": pathlib.Path("src"),
    "graph-batch": pathlib.Path("crates/graph-batch/src"),
    "graph-client": pathlib.Path("crates/graph-client/src"),
    "rotation": pathlib.Path("crates/rotation/src"),
    "graph-sim": pathlib.Path("crates/graph-sim/src"),
}
ROOTS = {"lib.rs", "main.rs"}


def modules(root):
    """Top-level module name -> its files."""
    out = {}
    for f in root.rglob("*.rs"):
        rel = f.relative_to(root)
        if rel.parts[0] in ROOTS and len(rel.parts) == 1:
            continue
        name = rel.parts[0].removesuffix(".rs")
        out.setdefault(name, []).append(f)
    return out


def strip_tests(text):
    """The text before a `#[cfg(test)]` module: tests may reach anywhere."""
    cut = text.find("#[cfg(test)]\nmod tests")
    return text if cut < 0 else text[:cut]


def reexports(root):
    """Names the crate root re-exports -> the module they come from (`pub use m::{A, B as C}`)."""
    out = {}
    for r in ROOTS:
        f = root / r
        if not f.exists():
            continue
        text = re.sub(r"//.*", "", f.read_text())
        for m, body in re.findall(r"pub use ([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)", text, re.S):
            for item in re.split(r"[,{}\s]+", body):
                if not item or item == "as":
                    continue
                out.setdefault(item, m)
            for alias in re.findall(r"as\s+([A-Za-z_][A-Za-z0-9_]*)", body):
                out[alias] = m
    return out


def edges(mods, exported):
    names = set(mods)
    deps = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            text = strip_tests(f.read_text())
            text = re.sub(r"//.*", "", text)
            for used in re.findall(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)", text):
                used = exported.get(used, used)
                if used in names and used != m:
                    deps[m].add(used)
            # `use crate::{a, b::c}` groups.
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text, re.S):
                for used in re.findall(r"(?:^|[,{\s])([A-Za-z_][A-Za-z0-9_]*)(?=::|\s*[,}]|\s+as\b|$)", group):
                    used = exported.get(used, used)
                    if used in names and used != m:
                        deps[m].add(used)
    return deps


def sccs(deps):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in deps:
        if v not in index:
            visit(v)
    return out


def main():
    total = 0
    for crate, root in CRATES.items():
        for comp in sccs(edges(modules(root), reexports(root))):
            total += 1
            print(f"{crate}: {' <-> '.join(comp)}")
    print(f"module cycles: {total}")
    if "--check" in sys.argv and total:
        sys.exit(1)


if __name__ == "__main__":
    main()
