#!/usr/bin/env python3
"""Writes a CycloneDX 1.5 SBOM (JSON, stdout) for vipd's container image.

What is in the image, and where each part comes from:
- the crates compiled into /usr/bin/vipd: `cargo metadata --locked` resolved
  for x86_64-unknown-linux-gnu, walked from the vipd package over normal
  dependencies only (build scripts' dependencies and proc-macros run at
  compile time and are not in the binary), with Cargo.lock's sha256 checksum
  of each crates.io archive;
- the Debian packages the copied libraries and CA certificates come from
  (`dpkg -S`, `dpkg-query`), as pkg:deb purls;
- every file of the staged root file system, with its sha256.
Standard library only, so it runs wherever the build does.
"""

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import uuid

TARGET = "x86_64-unknown-linux-gnu"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cargo_components():
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked",
         "--filter-platform", TARGET],
        check=True, capture_output=True, text=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"] if p["name"] == "vipd")

    def normal_deps(pkg_id):
        for dep in nodes[pkg_id]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                target = packages[dep["pkg"]]
                if any("proc-macro" in t["kind"] for t in target["targets"]):
                    continue
                yield dep["pkg"]

    seen, stack = {root}, [root]
    while stack:
        for dep in normal_deps(stack.pop()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)

    checksums = {}
    lock = open("Cargo.lock").read().split("[[package]]")
    for entry in lock:
        fields = dict(
            (k.strip(), v.strip().strip('"'))
            for k, v in (line.split("=", 1) for line in entry.splitlines() if "=" in line))
        if "checksum" in fields:
            checksums[(fields["name"], fields["version"])] = fields["checksum"]

    components, dependencies = [], []
    for pkg_id in sorted(seen, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pkg_id]
        ref = f"pkg:cargo/{p['name']}@{p['version']}"
        c = {"type": "application" if pkg_id == root else "library",
             "bom-ref": ref, "name": p["name"], "version": p["version"], "purl": ref}
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if (p["name"], p["version"]) in checksums:
            c["hashes"] = [{"alg": "SHA-256", "content": checksums[(p["name"], p["version"])]}]
        if p.get("source") is None:
            c["properties"] = [{"name": "vipd:source", "value": "this repository"}]
        components.append(c)
        deps = sorted({f"pkg:cargo/{packages[d]['name']}@{packages[d]['version']}"
                       for d in normal_deps(pkg_id)})
        dependencies.append({"ref": ref, "dependsOn": deps})
    return root, packages[root], components, dependencies


def debian_component(path):
    owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if owner.returncode != 0:
        real = os.path.realpath(path)
        owner = subprocess.run(["dpkg", "-S", real], check=True, capture_output=True, text=True)
    pkg = owner.stdout.split(":")[0].strip()
    version, arch = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version} ${Architecture}", pkg],
        check=True, capture_output=True, text=True).stdout.split()
    purl = f"pkg:deb/debian/{pkg}@{version}?arch={arch}&distro=debian-12"
    return {"type": "library", "bom-ref": purl, "name": pkg, "version": version, "purl": purl}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--image-id", required=True)
    ap.add_argument("--libs", nargs="*", default=[])
    args = ap.parse_args()

    _, vipd, components, dependencies = cargo_components()
    debs = {}
    for path in args.libs + ["/usr/share/ca-certificates/mozilla"]:
        c = debian_component(path)
        debs[c["bom-ref"]] = c
    components += sorted(debs.values(), key=lambda c: c["name"])

    for dirpath, _, files in sorted(os.walk(args.rootfs)):
        for name in sorted(files):
            full = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(full, args.rootfs)
            components.append({"type": "file", "bom-ref": f"file:{rel}", "name": rel,
                               "hashes": [{"alg": "SHA-256", "content": sha256(full)}]})

    name, _, tag = args.image.rpartition(":")
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "vipd scripts/lib/sbom.py"}]},
            "component": {
                "type": "container", "bom-ref": args.image, "name": name, "version": tag,
                "properties": [{"name": "vipd:image-id", "value": args.image_id}],
            },
        },
        "components": components,
        "dependencies": [{"ref": args.image,
                          "dependsOn": [f"pkg:cargo/vipd@{vipd['version']}", *sorted(debs)]}]
        + dependencies,
    }
    json.dump(bom, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
