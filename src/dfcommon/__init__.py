"""Code shared by the supernode, the dfdaemon peer and the mirror.

gRPC's C core writes its own INFO lines straight to stderr (a GOAWAY while a server shuts down, say), outside the
processes' log format: a `--log-format json` stream with such a line in it is no longer JSON lines. Unless the
user sets GRPC_VERBOSITY, it is ERROR here, before any module imports grpc (peer/__init__.py imports this package
first for dfget, whose module imports grpc before dfcommon)."""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
