"""The dfdaemon's peer: downloads through the swarm, serves pieces; and dfget (src/dfdaemon adds the mirror)."""

import dfcommon  # noqa: F401  (first: it keeps gRPC's C core to error lines, see its docstring)
