#!/usr/bin/env python3
"""Import circles between the top-level modules of each crate (a -> b -> ... -> a),
from `crate::x` / `super::x` paths in the non-test source (comments stripped).
Cargo already refuses circles between crates; this checks inside them (issue 10).
Exit status 1 when there is one."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'crates')
bad = 0
for crate in sorted(os.listdir(root)):
    src = os.path.join(root, crate, 'src')
    if not os.path.isdir(src): continue
    mods = {}
    for dp, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith('.rs') or f == 'tests.rs' or f.endswith('_tests.rs'): continue
            rel = os.path.relpath(os.path.join(dp, f), src)
            top = rel.split(os.sep)[0].removesuffix('.rs')
            if top in ('lib', 'main'): continue
            text = open(os.path.join(dp, f)).read()
            text = re.sub(r'//.*', '', text)
            text = re.split(r'#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod tests', text)[0]  # unit tests may use anything
            # submodule files' `super::` at depth 1 means the top module itself; only crate:: paths cross tops
            refs = set(re.findall(r'\bcrate::([a-z_][a-z0-9_]*)', text))
            if os.sep not in rel:  # a top-level file: super:: is the crate root
                refs |= set(re.findall(r'\bsuper::([a-z_][a-z0-9_]*)', text))
            mods.setdefault(top, set()).update(r for r in refs if r != top)
    tops = set(mods)
    g = {m: {r for r in rs if r in tops} for m, rs in mods.items()}
    # cycle detection (Tarjan-lite via DFS)
    color = {}
    def dfs(u, stack):
        global bad
        color[u] = 1; stack.append(u)
        for v in sorted(g.get(u, ())):
            if color.get(v) == 1:
                print(f"{crate}: circle {' -> '.join(stack[stack.index(v):] + [v])}"); bad += 1
            elif v not in color:
                dfs(v, stack)
        stack.pop(); color[u] = 2
    for m in sorted(g):
        if m not in color: dfs(m, [])
print("no circles" if not bad else f"{bad} circles")
sys.exit(1 if bad else 0)
