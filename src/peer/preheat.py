"""`dfget preheat REF`: load an image's blobs (or one URL) into the supernode's cache before a rollout."""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import uvloop
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon import ring
from dfcommon.channels import channel
from dfcommon.content import ContentRequest
from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError, InvalidArgument, Unavailable
from dfcommon.identity import request_task_id, validate_url
from dfcommon.malloc import tune_malloc
from dfcommon.tls import TlsConfig, add_tls_arguments, tls_from_args
from dfcommon.urlmeta import from_url_meta, to_url_meta
from dfcommon.version import add_version_flag
from peer.config import parse_supernodes
from peer.membership import Membership
from registryclient.config import ClientConfig, validate_registry_url
from registryclient.credentials import Credentials
from registryclient.errors import RegistryError
from registryclient.names import validate_name, validate_reference
from registryclient.upstream import Upstream

if TYPE_CHECKING:
    from dandelion.scheduler.v1.scheduler_pb2_grpc import SchedulerServiceAsyncStub

DOCKER_HUB = "docker.io"
DEFAULT_HUB_REGISTRY = "https://registry-1.docker.io"
INDEX_TYPES = {
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
}
IMAGE_TYPES = {
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
}
ACCEPT = [*sorted(IMAGE_TYPES), *sorted(INDEX_TYPES)]
PARALLEL_PREHEATS = 3
# A preheat returns once the seed holds the whole blob: large layers on a slow registry take a while.
PREHEAT_TIMEOUT_S = 3600.0

EXAMPLES = """examples:
  dfget preheat 10.0.0.9:5000/team/app:v2 --supernode 10.0.0.5:8002
  echo "$PASSWORD" | dfget preheat registry.example.com/team/app:v2 --username ci --password-stdin \\
      --supernode 10.0.0.5:8002
  dfget preheat nginx:1.27 --supernode 10.0.0.5:8002 --platform linux/arm64
  dfget preheat https://example.com/big.iso --digest sha256:9f86d0...a08 --supernode 10.0.0.5:8002
"""


@dataclass(frozen=True)
class ImageReference:
    """An image reference split the way Docker does: registry base URL, repository, tag or digest."""

    base: str
    name: str
    reference: str


def parse_image_reference(text: str, hub_registry: str) -> ImageReference:
    """Split [HOST[:PORT]/]NAME[:TAG][@DIGEST]; Docker Hub names get library/ and hub_registry."""
    rest, _, digest = text.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
    else:
        host, path = DOCKER_HUB, rest
    last = path.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if host == DOCKER_HUB:
        base = hub_registry
        if "/" not in path:
            path = f"library/{path}"
    else:
        base = f"{'http' if _is_loopback(host) else 'https'}://{host}"
    reference = digest or tag or "latest"
    try:
        validate_name(path)
        validate_reference(reference)
    except RegistryError as err:
        raise InvalidArgument(f"invalid image reference {text!r}: {err.message}") from None
    return ImageReference(validate_registry_url(base), path, reference)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


async def image_blobs(
    upstream: Upstream, image: ImageReference, creds: Credentials, platform: str
) -> list[common_pb2.UrlMeta]:
    """What to preheat for an image: its config and layers, with the fetch URL and auth for each."""
    manifest = await upstream.manifest("GET", image.base, image.name, image.reference, ACCEPT, creds)
    document = json.loads(manifest.body)
    media_type = manifest.media_type.split(";")[0].strip()
    if media_type in INDEX_TYPES or "manifests" in document:
        wanted_os, _, wanted_arch = platform.partition("/")
        chosen = [
            entry["digest"]
            for entry in document.get("manifests", [])
            if entry.get("platform", {}).get("os") == wanted_os
            and entry.get("platform", {}).get("architecture") == wanted_arch
        ]
        if not chosen:
            raise InvalidArgument(f"{image.name}:{image.reference} has no image for platform {platform}")
        manifest = await upstream.manifest("GET", image.base, image.name, chosen[0], ACCEPT, creds)
        document = json.loads(manifest.body)
    if "layers" not in document or "config" not in document:
        raise InvalidArgument(f"{image.name}:{image.reference}: unsupported manifest type {manifest.media_type}")
    digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]
    metas = []
    for digest in dict.fromkeys(digests):  # unique, in order
        grant = await upstream.authorize_blob(image.base, image.name, digest, creds)
        metas.append(to_url_meta(grant.content(digest)))
    return metas


async def _preheat_one(cluster: PreheatRoute, limit: asyncio.Semaphore, meta: common_pb2.UrlMeta, quiet: bool) -> int:
    async with limit:
        reply, address = await cluster.preheat(meta)
    if not quiet:
        shown = meta.digest or reply.task.url
        print(f"preheated {shown} ({reply.task.content_length:,} bytes) on supernode {address}", file=sys.stderr)
    return int(reply.task.content_length)


class PreheatRoute:
    """Each blob to its task's supernode: the owner on the task's ring (dfcommon.ring) over the members, as every
    peer computes it, or the next one when the owner does not answer."""

    def __init__(self, members: Sequence[str], tls: TlsConfig | None) -> None:
        self.members = list(members)
        self.tls = tls
        self.down: set[str] = set()
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, address: str) -> SchedulerServiceAsyncStub:
        if address not in self._channels:
            self._channels[address] = channel(address, tls=self.tls)
        stub: SchedulerServiceAsyncStub = scheduler_pb2_grpc.SchedulerServiceStub(self._channels[address])  # type: ignore[assignment]
        return stub

    async def preheat(self, meta: common_pb2.UrlMeta) -> tuple[scheduler_pb2.PreheatTaskResponse, str]:
        """PreheatTask at the blob's supernode: the answer and that supernode's address."""
        request = from_url_meta(meta)
        tid = request_task_id(request)
        ranked = ring.ranked(tid, self.members)
        last: grpc.aio.AioRpcError | None = None
        for address in [a for a in ranked if a not in self.down] + [a for a in ranked if a in self.down]:
            try:
                request_pb = scheduler_pb2.PreheatTaskRequest(url_meta=meta)
                reply = await self._stub(address).PreheatTask(request_pb, timeout=PREHEAT_TIMEOUT_S)
                return reply, address
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise DandelionError(f"supernode {address}: {err.details()}", err.code()) from None
                self.down.add(address)
                last = err
        raise Unavailable(f"no supernode answered ({', '.join(self.members)}): {last}")

    async def close(self) -> None:
        """Close the channels."""
        for chan in self._channels.values():
            await chan.close(None)


async def preheat_all(
    supernodes: Sequence[str], metas: Sequence[common_pb2.UrlMeta], quiet: bool, tls: TlsConfig | None = None
) -> int:
    """PreheatTask each one (a few at a time) at its task's supernode (supernodes: `--supernode` entries; over
    mutual TLS when tls is given); returns bytes now cached."""
    membership = Membership(supernodes)
    await membership.refresh()
    members = membership.members()
    if not members:
        raise Unavailable(f"no supernode address found ({', '.join(supernodes)})")
    cluster = PreheatRoute(members, tls)
    limit = asyncio.Semaphore(PARALLEL_PREHEATS)
    try:
        return sum(await asyncio.gather(*(_preheat_one(cluster, limit, m, quiet) for m in metas)))
    finally:
        await cluster.close()


def build_parser() -> argparse.ArgumentParser:
    """The `dfget preheat` command line."""
    parser = argparse.ArgumentParser(
        prog="dfget preheat",
        description="Load an image's layers (or a file) into the supernode's cache, so the first pulls "
        "of a rollout find them in the swarm.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ref", help="image reference [HOST[:PORT]/]NAME[:TAG|@DIGEST], or an http(s) URL")
    add_version_flag(parser)
    parser.add_argument(
        "--supernode",
        required=True,
        help="supernode HOST:PORT[,HOST:PORT...] or dns:///NAME:PORT, as the dfdaemons are given: each blob goes "
        "to its task's supernode",
    )
    parser.add_argument("--username", help="registry user (the password comes from --password-stdin or DFGET_PASSWORD)")
    parser.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    parser.add_argument("--header", action="append", default=[], help="'Key: Value' for a URL's origin")
    parser.add_argument("--digest", default="", help="sha256:HEX or md5:HEX of a URL's content")
    parser.add_argument("--platform", default="linux/amd64", help="image platform OS/ARCH (default %(default)s)")
    parser.add_argument(
        "--registry", default=DEFAULT_HUB_REGISTRY, help="registry URL for Docker Hub names (default %(default)s)"
    )
    parser.add_argument("--registry-ca", default=None, help="CA bundle for the registry's TLS")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification of the registry")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    add_tls_arguments(parser, "the call to the supernode")
    return parser


def _credentials(args: argparse.Namespace) -> Credentials:
    if args.username is None:
        if args.password_stdin:
            raise InvalidArgument("--password-stdin needs --username")
        return Credentials()
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else os.environ.get("DFGET_PASSWORD")
    if not password:
        raise InvalidArgument("--username needs a password: --password-stdin or DFGET_PASSWORD")
    token = base64.b64encode(f"{args.username}:{password}".encode()).decode()
    return Credentials.from_header(f"Basic {token}")


def _headers(lines: Sequence[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise InvalidArgument(f"invalid --header {key.strip()[:40]!r}: want 'Key: Value'")
        headers[key.strip()] = value.strip()
    return headers


async def run(args: argparse.Namespace) -> int:
    """Resolve what to preheat and ask the supernode to cache it."""
    supernodes = parse_supernodes(args.supernode)
    if not supernodes:
        raise InvalidArgument("--supernode needs at least one HOST:PORT")
    tls = tls_from_args(args)
    if "://" in args.ref:
        digest = str(parse_digest(args.digest)) if args.digest else ""
        request = ContentRequest(url=validate_url(args.ref), headers=_headers(args.header), digest=digest)
        metas = [to_url_meta(request)]
    else:
        image = parse_image_reference(args.ref, validate_registry_url(args.registry))
        config = ClientConfig(registry=image.base, registry_ca=args.registry_ca, insecure=args.insecure).validate()
        upstream = Upstream(config)
        try:
            metas = await image_blobs(upstream, image, _credentials(args), args.platform)
        except RegistryError as err:
            raise DandelionError(f"{image.base}/{image.name}:{image.reference}: {err.message}") from None
        finally:
            await upstream.aclose()
    total = await preheat_all(supernodes, metas, args.quiet, tls)
    if not args.quiet:
        print(f"preheated {len(metas)} blob(s), {total:,} bytes, into the supernode's cache", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dfget preheat`."""
    tune_malloc()
    args = build_parser().parse_args(argv)
    try:
        return uvloop.run(run(args))
    except DandelionError as err:
        print(f"dfget preheat: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
