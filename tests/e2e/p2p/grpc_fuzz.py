"""Hostile gRPC traffic for tests: every method of every service (from the generated descriptors), called with
random bytes, mutated valid messages and hostile field values, all as raw bytes."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from dandelion.peer.v1 import peer_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from google.protobuf import descriptor, message, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

SERVICES = [
    scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"],
    peer_pb2.DESCRIPTOR.services_by_name["PeerService"],
    peer_pb2.DESCRIPTOR.services_by_name["DaemonService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]
HOSTILE_STRINGS = [
    "",
    "x" * 300_000,
    "http://h:99999/x",
    "http://[::1",
    "http://127.0.0.1:-5/x",
    "http://127.0.0.1:1/" + "9" * 5000,
    "9" * 5000,
    "9" * 5000 + "-" + "9" * 5000,
    "-1",
    "\x00\r\n\t",
    "sha256:" + "z" * 64,
    "\u202e\U0001f600",
    "0.0.0.0",
    "::",
    "127.0.0.1",
]
HOSTILE_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1, -(2**63), 2**64 - 1]
SAFE_URL = "http://127.0.0.1:1/fuzz"  # loopback, nothing listens on port 1: fails fast, reaches nothing


@dataclass
class Reply:
    """How one call ended."""

    method: str
    code: grpc.StatusCode
    details: str


def methods() -> Iterator[descriptor.MethodDescriptor]:
    """Every method of every service."""
    for service in SERVICES:
        yield from service.methods


def message_class(method: descriptor.MethodDescriptor) -> type[message.Message]:
    """The request class of method."""
    return message_factory.GetMessageClass(method.input_type)


def fill(msg: message.Message, rng: random.Random, hostile: bool, depth: int = 0) -> None:
    """Set every field of msg (recursively) to a random or hostile value."""
    for field in msg.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        values = [_value(msg, field, rng, hostile, depth) for _ in range(rng.choice((1, 1, 3)))]
        values = [v for v in values if v is not None]
        if not values:
            continue
        if field.is_repeated:
            target = getattr(msg, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for v in values:
                    key = "x-" + str(rng.randrange(10**6)) if not hostile else rng.choice(HOSTILE_STRINGS)[:100]
                    target[key] = v if isinstance(v, str) else str(v)
            elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                for v in values:
                    target.add().CopyFrom(v)
            else:
                target.extend(values)
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            getattr(msg, field.name).CopyFrom(values[0])
        else:
            setattr(msg, field.name, values[0])


def _value(
    msg: message.Message, field: descriptor.FieldDescriptor, rng: random.Random, hostile: bool, depth: int
) -> object:
    kind = field.type
    if kind == descriptor.FieldDescriptor.TYPE_MESSAGE:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            return rng.choice(HOSTILE_STRINGS)[:1000] if hostile else "v"
        if depth > 3:
            return None
        sub = message_factory.GetMessageClass(entry)()
        fill(sub, rng, hostile, depth + 1)
        return sub
    if kind == descriptor.FieldDescriptor.TYPE_STRING:
        if hostile:
            return rng.choice(HOSTILE_STRINGS)
        return SAFE_URL if field.name == "url" else "".join(rng.choices("abcdef0123456789", k=rng.randrange(1, 40)))
    if kind == descriptor.FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randrange(0, 64))
    if kind == descriptor.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == descriptor.FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values])
    if kind in (descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e308, float("inf"), float("nan")]) if hostile else rng.random()
    unsigned = kind in (
        descriptor.FieldDescriptor.TYPE_UINT32,
        descriptor.FieldDescriptor.TYPE_UINT64,
        descriptor.FieldDescriptor.TYPE_FIXED32,
        descriptor.FieldDescriptor.TYPE_FIXED64,
    )
    bits = (
        32
        if kind
        in (
            descriptor.FieldDescriptor.TYPE_INT32,
            descriptor.FieldDescriptor.TYPE_UINT32,
            descriptor.FieldDescriptor.TYPE_SINT32,
            descriptor.FieldDescriptor.TYPE_FIXED32,
            descriptor.FieldDescriptor.TYPE_SFIXED32,
        )
        else 64
    )
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    candidates = [v for v in HOSTILE_INTS if low <= v <= high] if hostile else [rng.randrange(0, 100)]
    return rng.choice(candidates)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """data with a few bytes flipped, cut, or inserted."""
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        choice = rng.random()
        if not buf or choice < 0.3:
            buf[rng.randrange(len(buf) + 1) :] = rng.randbytes(rng.randrange(1, 8))
        elif choice < 0.6:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            del buf[rng.randrange(len(buf)) :]
        else:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _strings(msg: message.Message) -> Iterator[str]:
    for field, value in msg.ListFields():
        items = (
            value.values()
            if hasattr(value, "values") and callable(value.values)
            else (value if field.is_repeated else [value])
        )
        if hasattr(value, "keys") and callable(value.keys):
            yield from (k for k in value if isinstance(k, str))
        for item in items:
            if isinstance(item, str):
                yield item
            elif isinstance(item, message.Message):
                yield from _strings(item)


def stays_on_loopback(cls: type[message.Message], data: bytes) -> bool:
    """False when data parses into a request naming an origin or host outside 127.0.0.0/8 (a test must send no
    traffic elsewhere, and a mutated URL could name any host)."""
    try:
        msg = cls.FromString(data)
    except Exception:
        return True  # the server cannot parse it either
    for text in _strings(msg):
        host = text
        if "://" in text:
            try:
                parts = urlsplit(text)
                parts.port  # noqa: B018 - a URL with a bad port cannot be fetched at all
            except ValueError:
                continue
            host = parts.hostname or ""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if "://" in text and host and host != "localhost":
                return False  # a host name: resolving it could leave the machine
            continue
        if not (address.is_loopback or address.is_unspecified):
            return False
    return True


def payloads(method: descriptor.MethodDescriptor, rng: random.Random, count: int) -> Iterator[bytes]:
    """count request payloads for method: random bytes, mutated valid messages, hostile values."""
    cls = message_class(method)
    for index in range(count):
        kind = index % 3
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 300))
        else:
            msg = cls()
            fill(msg, rng, hostile=kind == 2)
            data = msg.SerializeToString()
            if kind == 1:
                data = mutate(data, rng)
        yield data if stays_on_loopback(cls, data) else b"\xff\xff\xff\xff\xff"


CLIENT_RACE = "Internal error from Core"


async def call(channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, data: bytes) -> Reply:
    """One raw call of method with data; how it ended.

    A client-streaming call that the server ends while the client still sends is reported by grpc's client as
    INTERNAL "Internal error from Core", whatever status the server sent; such a call is tried again, up to three
    times.
    """
    for _ in range(3):
        reply = await _call_once(channel, method, data)
        if not (method.client_streaming and reply.code == grpc.StatusCode.INTERNAL and reply.details == CLIENT_RACE):
            break
    return reply


async def _late(data: bytes) -> AsyncIterator[bytes]:
    """data as a request stream, sent a moment after the call opens (a server's immediate answer, such as
    UNIMPLEMENTED, then arrives before the client writes, and the client reports that answer)."""
    await asyncio.sleep(0.05)
    yield data


async def _call_once(channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, data: bytes) -> Reply:
    path = f"/{method.containing_service.full_name}/{method.name}"
    timeout = 1.0 if method.server_streaming or method.client_streaming else 5.0
    try:
        if method.client_streaming:
            stream = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
            async for _ in stream(_late(data), timeout=timeout):
                pass
        elif method.server_streaming:
            single = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(
                data, timeout=timeout
            )
            async for _ in single:
                pass
        else:
            await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(data, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        return Reply(path, err.code(), err.details() or "")
    return Reply(path, grpc.StatusCode.OK, "")


async def fuzz(target: str, seed: int, per_method: int, concurrency: int = 16) -> list[Reply]:
    """Call every method of every service at target per_method times; every reply."""
    rng = random.Random(seed)
    jobs = [(m, data) for m in methods() for data in payloads(m, rng, per_method)]
    rng.shuffle(jobs)
    gate = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:

        async def one(method: descriptor.MethodDescriptor, data: bytes) -> Reply:
            async with gate:
                return await call(channel, method, data)

        return list(await asyncio.gather(*(one(m, d) for m, d in jobs)))
