"""Registry request grammar: repository names, tags and digests, checked before anything goes upstream."""

from __future__ import annotations

import re

from registryclient.errors import RegistryError

MAX_NAME_LENGTH = 255

# distribution/reference: path components of lowercase alphanumerics joined by '.', '_', '__' or dashes.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([A-Za-z0-9=_-]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}


def validate_name(name: str) -> str:
    """A repository name like "library/alpine"; NAME_INVALID otherwise (this also rules out '..' and '//')."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise RegistryError.name_invalid(name)
    return name


def validate_digest(text: str, algorithms: tuple[str, ...] = ("sha256", "sha512")) -> str:
    """A content digest "ALGO:HEX" of one of algorithms with lowercase hex of the right length; DIGEST_INVALID else."""
    match = _DIGEST.match(text)
    if not match:
        raise RegistryError.digest_invalid(text, "want ALGORITHM:HEX")
    algorithm, hex_part = match.groups()
    if algorithm not in algorithms:
        raise RegistryError.digest_invalid(text, f"unsupported algorithm {algorithm!r}: want {' or '.join(algorithms)}")
    if len(hex_part) != _HEX_LENGTH[algorithm] or not re.fullmatch(r"[0-9a-f]+", hex_part):
        raise RegistryError.digest_invalid(text, f"want {_HEX_LENGTH[algorithm]} lowercase hex digits")
    return text


def is_digest_reference(reference: str) -> bool:
    """Whether a manifest reference names a digest rather than a tag."""
    return ":" in reference


def validate_reference(reference: str) -> str:
    """A manifest reference: a tag or a digest; TAG_INVALID / DIGEST_INVALID otherwise."""
    if is_digest_reference(reference):
        return validate_digest(reference)
    if not _TAG.match(reference):
        raise RegistryError.tag_invalid(reference)
    return reference
