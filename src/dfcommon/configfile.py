"""Options from a config file (TOML or YAML) and the environment, with the same names as the flags.

Precedence, highest first: command-line flags, environment variables (PREFIX + option name in
upper case with '-' as '_', e.g. DFDAEMON_UPLOAD_LIMIT), the config file (--config FILE or
PREFIX + CONFIG; keys are the long flag names, with '-' or '_'), then built-in defaults. A repeatable flag takes a
list, or a table for flags whose entries are KEY=VALUE.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dfcommon.errors import InvalidArgument

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML (.toml) or YAML (.yaml/.yml) mapping of option names to values."""
    try:
        text = path.read_text()
    except OSError as err:
        raise InvalidArgument(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidArgument(f"config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("_", "-"): v for k, v in data.items()}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Long option name (without --) → action, for every configurable flag."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--config":
                found[flag[2:]] = action
    return found


def _as_default(action: argparse.Action, name: str, value: Any, source: str) -> Any:
    """Convert a file or environment value to what argparse expects as the action's default."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise InvalidArgument(f"{source}: {name} must be true or false, not {value!r}")
    if isinstance(action, argparse._AppendAction):
        # A table is a list of KEY=VALUE entries (registry-map = {"docker.io" = "https://hub.internal"}).
        items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, dict) else value
        items = items if isinstance(items, list) else [items]
        return [action.type(str(v)) if callable(action.type) else str(v) for v in items]
    if isinstance(value, (dict, list)):
        raise InvalidArgument(f"{source}: {name} takes a single value")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if action.choices is not None and text not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise InvalidArgument(f"{source}: {name} must be one of {choices}, not {text!r}")
    return text  # argparse applies action.type to string defaults


def parse_args_with_config(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """Parse argv with defaults taken from the environment and an optional config file."""
    env = os.environ if environ is None else environ
    if "--config" not in parser._option_string_actions:
        parser.add_argument(
            "--config",
            metavar="FILE",
            help=f"TOML or YAML file of options (keys are flag names); also {env_prefix}CONFIG",
        )
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    config_path = known.config or env.get(f"{env_prefix}CONFIG")
    options = _options(parser)
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_path:
        from_file = load_config_file(Path(config_path))
        unknown = sorted(set(from_file) - set(options))
        if unknown:
            raise InvalidArgument(f"config file {config_path}: unknown option {unknown[0]!r}")
        layers.append((f"config file {config_path}", from_file))
    from_env = {name: env[var] for name in options if (var := env_prefix + name.upper().replace("-", "_")) in env}
    layers.append(("environment", from_env))
    for source, values in layers:  # later layers (environment) override earlier ones (file)
        for name, value in values.items():
            action = options[name]
            parser.set_defaults(**{action.dest: _as_default(action, name, value, source)})
            action.required = False
    return parser.parse_args(argv)


class ReplacingAppend(argparse._AppendAction):
    """append, except that the first use on the command line replaces a list from the environment or config file
    (flags win over those, as for every other option) instead of adding to it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        """Start from an empty list on first use, then append."""
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, [])
        super().__call__(parser, namespace, values, option_string)
