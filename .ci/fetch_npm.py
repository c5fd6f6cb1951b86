"""Fetch one package tarball from the npm registry and check its integrity: for machines without npm.

Usage: python .ci/fetch_npm.py NAME VERSION INTEGRITY DEST_DIR   (writes DEST_DIR/NAME-VERSION.tgz)
"""
from __future__ import annotations

import base64
import hashlib
import sys
import urllib.request
from pathlib import Path


def main(name: str, version: str, integrity: str, dest: str) -> int:
    algo, _, want = integrity.partition("-")
    url = f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=120) as r:
        data = r.read()
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        print(f"error: {url} failed its integrity check ({algo})", file=sys.stderr)
        return 1
    (Path(dest) / f"{name}-{version}.tgz").write_bytes(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
