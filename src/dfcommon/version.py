"""The installed package's version, for --version and the build_info metric."""

from __future__ import annotations

import argparse
from functools import cache

PACKAGE = "dandelion"


@cache
def version() -> str:
    """The version from the installed package's metadata ("unknown" when it is not installed)."""
    from importlib import metadata  # only --version and the build_info metric ask

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """argparse's "version" action, reading the package metadata only when --version is given: the lookup scans
    every installed distribution (about 20 ms), which every dfget start would pay otherwise."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {version()}")  # on stdout, as argparse's own version action
        parser.exit()


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """--version prints 'PROG VERSION' and exits 0."""
    parser.add_argument("--version", action=_VersionAction)
