"""--location, where a host is: checked where it is given (dfdaemon, supernode), one line when refused."""

from __future__ import annotations

import pytest

from dfcommon.errors import InvalidArgument
from dfcommon.location import MAX_LOCATION, check_location
from dfdaemon.flags import build_parser, config_from_args


@pytest.mark.parametrize("location", ["", "eu", "eu|eu-1a", "eu|eu-1a|rack 7", "é|z", "r|" + "z" * (MAX_LOCATION - 2)])
def test_locations_taken(location: str) -> None:
    assert check_location(location) == location


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("r|" + "z" * MAX_LOCATION, "--location must be at most 256 characters, got 258"),
        ("eu|eu-1a\n", "--location must be printable text like region|zone|rack, got 'eu|eu-1a\\n'"),
        ("eu\x00", "--location must be printable text"),
    ],
)
def test_locations_refused_with_one_line(location: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_location(location)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_dfdaemon_refuses_a_location_the_scheduler_would_refuse() -> None:
    """Refused at start-up, not at every registration with the supernode."""
    parser = build_parser()
    args = [
        "--supernode",
        "127.0.0.1:8002",
        "--listen",
        "127.0.0.2",
        "--data-dir",
        "d",
        "--location",
        "eu|" + "z" * 300,
    ]
    with pytest.raises(InvalidArgument, match="--location must be at most 256 characters"):
        config_from_args(parser.parse_args(args))
    assert config_from_args(parser.parse_args([*args[:-1], "eu|eu-1a"])).location == "eu|eu-1a"
