"""Where a host is: "region|zone|rack", from the left (dfdaemon --location; supernode --location for its in-process
seed peer). The scheduler ranks parents by the levels they share with the child (supernode.scheduling.evaluator)."""

from __future__ import annotations

from dfcommon.errors import InvalidArgument

MAX_LOCATION = 256  # characters; the scheduler refuses a longer HostInfo.location


def check_location(location: str) -> str:
    """location when it can be sent in HostInfo; InvalidArgument with one line otherwise."""
    if len(location) > MAX_LOCATION:
        raise InvalidArgument(f"--location must be at most {MAX_LOCATION} characters, got {len(location)}")
    if not location.isprintable():
        raise InvalidArgument(f"--location must be printable text like region|zone|rack, got {location!r}")
    return location
