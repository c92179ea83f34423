"""Compile the C task shim (``shim.c``) once per source version.

The binary is named after a hash of the source, so upgrading hatoba builds a new shim while
running containers keep the old one; concurrent builders each compile to a temporary name
and rename atomically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path


class ShimBuildError(RuntimeError):
    """The shim could not be compiled."""


def shim_source() -> bytes:
    return resources.files("hatoba.drivers.process").joinpath("shim.c").read_bytes()


def find_compiler() -> str | None:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def ensure_shim(bin_dir: Path) -> Path:
    """Path of the compiled shim in ``bin_dir``, compiling it first if needed."""
    source = shim_source()
    target = bin_dir / f"hatoba-shim-{hashlib.sha256(source).hexdigest()[:12]}"
    if os.access(target, os.X_OK):
        return target
    compiler = find_compiler()
    if compiler is None:
        raise ShimBuildError(
            "hatoba's process driver needs a C compiler to build its task shim once; "
            "none was found (install gcc, e.g. `apt-get install gcc`, or set CC)"
        )
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bin_dir, prefix=".build-") as tmp:
        src = Path(tmp) / "shim.c"
        out = Path(tmp) / "hatoba-shim"
        src.write_bytes(source)
        # Static first: no dynamic loader on every task start. Fall back to a dynamic
        # build where no static libc is installed.
        for extra in (["-static"], []):
            result = subprocess.run(
                [compiler, "-O2", "-Wall", *extra, "-o", str(out), str(src)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                break
        if result.returncode != 0:
            raise ShimBuildError(f"compiling the task shim failed:\n{result.stderr}")
        os.replace(out, target)
    return target
