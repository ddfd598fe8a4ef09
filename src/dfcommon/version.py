"""The installed package's version, for --version and the build_info metric."""

from __future__ import annotations

import argparse
from functools import cache
from importlib import metadata

PACKAGE = "dandelion"


@cache
def version() -> str:
    """The version from the installed package's metadata ("unknown" when it is not installed)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """--version prints 'PROG VERSION' and exits 0."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
