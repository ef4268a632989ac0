#!/usr/bin/env bash
# check-layers: the shape of the house, checked from the code's own includes
# (docs/HACKING.md, "Layers"). Fails, naming each offence, on:
#   - an include that points up a layer or across into a sibling module:
#       core            -> core
#       config          -> core, config
#       relay           -> core, config, relay
#       transcoder/hls  -> core, config, transcoder/hls
#       transcoder      -> core, config, relay, transcoder/hls, transcoder
#       chat            -> core, config, chat
#       daemon          -> everything
#   - an include of another folder's internal header (NAME_int.h), which
#     only the files beside it may include;
#   - an include that names no file of the repository;
#   - an include circle between files. A file's unit is its NAME.c with its
#     NAME.h; a header without a NAME.c of its own (an internal header, a
#     model of types) leads to the units that define the functions it
#     declares. Two units that reach each other through includes are a
#     circle.
# Tests and benchmarks may include anything: they stand outside the layers.
#
#   scripts/check-layers.sh        # exit 0 when clean, 1 with the offences
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$root" <<'EOF'
import os, re, sys

root = sys.argv[1]
allowed = {
    "core": {"core"},
    "config": {"core", "config"},
    "relay": {"core", "config", "relay"},
    "transcoder/hls": {"core", "config", "transcoder/hls"},
    "transcoder": {"core", "config", "relay", "transcoder/hls", "transcoder"},
    "chat": {"core", "config", "chat"},
    "daemon": {"core", "config", "relay", "transcoder/hls", "transcoder", "chat", "daemon"},
}

files = []
for folder in allowed:
    d = os.path.join(root, folder)
    for name in sorted(os.listdir(d)):
        if name.endswith((".c", ".h")):
            files.append(f"{folder}/{name}")
fileset = set(files)

include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
def includes(path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        text = f.read()
    folder = os.path.dirname(path)
    out = []
    for name in include_re.findall(text):
        # a bare name is the file beside the includer; else from the root
        target = f"{folder}/{name}" if "/" not in name else name
        out.append((name, target))
    return out

problems = []
graph_inc = {}
for path in files:
    folder = os.path.dirname(path)
    graph_inc[path] = []
    for name, target in includes(path):
        if target not in fileset:
            if os.path.exists(os.path.join(root, target)):
                problems.append(f"{path}: includes {name}, which is outside the layered folders")
            else:
                problems.append(f"{path}: includes {name}, which is no file of the repository")
            continue
        tfolder = os.path.dirname(target)
        if tfolder not in allowed[folder]:
            problems.append(f"{path}: includes {target}: {folder}/ may include only "
                            + ", ".join(sorted(f"{a}/" for a in allowed[folder])))
        if target.endswith("_int.h") and tfolder != folder:
            problems.append(f"{path}: includes {target}, an internal header of {tfolder}/")
        graph_inc[path].append(target)

# Units: NAME.c + NAME.h. Which units define a function (for headers
# without a NAME.c of their own).
def unit_of(path):
    return path[:-2]
definition_re = re.compile(r'^(?!static\b)(?!typedef\b)[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\s*\([^;{]*\)\s*\{', re.M)
declaration_re = re.compile(r'^(?!typedef\b)(?!#)[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\s*\([^;{]*\)\s*;', re.M)
defined_in = {}
for path in files:
    if path.endswith(".c"):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            for fn in definition_re.findall(f.read()):
                defined_in.setdefault(fn, set()).add(unit_of(path))

def header_units(h):
    own = h[:-2] + ".c"
    if own in fileset:
        return {unit_of(own)}
    with open(os.path.join(root, h), encoding="utf-8") as f:
        decls = declaration_re.findall(f.read())
    units = set()
    for fn in decls:
        units |= defined_in.get(fn, set())
    return units

edges = {}
for path, targets in graph_inc.items():
    u = unit_of(path)
    edges.setdefault(u, set())
    for t in targets:
        for v in (header_units(t) if t.endswith(".h") else {unit_of(t)}):
            if v != u:
                edges[u].add(v)
                edges.setdefault(v, set())

# Tarjan's strongly connected components: every one with two or more units
# is a circle.
index, low, on_stack, stack, sccs = {}, {}, set(), [], []
counter = [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on_stack.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on_stack.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
for v in sorted(edges):
    if v not in index:
        visit(v)
for comp in sccs:
    problems.append("include circle: " + " <-> ".join(comp))

for p in problems:
    print(f"check-layers: {p}")
print(f"check-layers: {len(files)} files, {len(sccs)} circle(s), {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
EOF
