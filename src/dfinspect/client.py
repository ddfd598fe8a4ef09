"""The supernode's inspection RPCs (ListTasks, GetTask, ListHosts) over one blocking channel, every page read, ids
found from prefixes, and gRPC failures turned into one line a person reads."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from dandelion.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from dfcommon.channels import CHANNEL_OPTIONS
from dfcommon.tls import TlsConfig

SERVER_PREFIX = 12  # GetTask resolves a unique prefix this long itself (the supernode's logs print 12 characters)
PAGE_SIZE = 1000

T = TypeVar("T")


class InspectError(Exception):
    """What went wrong, as the one line dfinspect prints."""


class SupernodeClient:
    """Inspection calls against one supernode; use as a context manager (closes the channel)."""

    def __init__(self, target: str, tls: TlsConfig | None = None, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            options += tls.channel_options()
            self._channel = grpc.secure_channel(target, tls.channel_credentials(), options=options)
        self._stub = scheduler_pb2_grpc.SchedulerServiceStub(self._channel)

    def __enter__(self) -> SupernodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as err:
            raise InspectError(self._explain(what, err)) from None

    def _explain(self, what: str, err: grpc.RpcError) -> str:
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        details = str(err.details() or "").strip()  # type: ignore[attr-defined]
        if code is grpc.StatusCode.UNAVAILABLE:
            return f"cannot reach the supernode at {self.target}: {first_line(details) or 'unavailable'}"
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the supernode at {self.target} did not answer {what} within {self.timeout:g}s"
        if code is grpc.StatusCode.PERMISSION_DENIED:
            return f"the supernode at {self.target} refused {what}: {first_line(details)}"
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return f"{self.target} does not serve {what}: is it a supernode (not a dfdaemon's port)?"
        return f"{what} failed ({code.name}): {first_line(details)}"

    def _pages(self, what: str, fetch: Callable[[str], tuple[list[T], str]]) -> Iterator[T]:
        token = ""
        while True:
            items, token = self._call(what, functools.partial(fetch, token))
            yield from items
            if not token:
                return

    def tasks(self) -> list[scheduler_pb2.TaskInfo]:
        """Every task, all pages read."""

        def fetch(token: str) -> tuple[list[scheduler_pb2.TaskInfo], str]:
            request = scheduler_pb2.ListTasksRequest(page_size=PAGE_SIZE, page_token=token)
            reply = self._stub.ListTasks(request, timeout=self.timeout)
            return list(reply.tasks), reply.next_page_token

        return list(self._pages("ListTasks", fetch))

    def hosts(self) -> list[scheduler_pb2.HostInfo]:
        """Every registered host, all pages read."""

        def fetch(token: str) -> tuple[list[scheduler_pb2.HostInfo], str]:
            request = scheduler_pb2.ListHostsRequest(page_size=PAGE_SIZE, page_token=token)
            reply = self._stub.ListHosts(request, timeout=self.timeout)
            return list(reply.hosts), reply.next_page_token

        return list(self._pages("ListHosts", fetch))

    def task(self, given: str) -> scheduler_pb2.GetTaskResponse:
        """One task with its swarm: given is a task id, a prefix of one (any length) or the task's URL."""
        given = given.strip()
        if not given:
            raise InspectError("a task id, id prefix or URL is needed")
        if "://" in given:
            task_id = self._only([t.task_id for t in self.tasks() if t.url == given], given, "URL")
        elif len(given) < SERVER_PREFIX:
            task_id = self._only([t.task_id for t in self.tasks() if t.task_id.startswith(given)], given, "prefix")
        else:
            task_id = given
        request = scheduler_pb2.GetTaskRequest(task_id=task_id)
        try:
            reply: scheduler_pb2.GetTaskResponse = self._stub.GetTask(request, timeout=self.timeout)
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                raise InspectError(f"no task matches {given!r} on {self.target}") from None
            raise InspectError(self._explain("GetTask", err)) from None
        return reply

    def _only(self, matches: list[str], given: str, kind: str) -> str:
        if not matches:
            raise InspectError(f"no task matches {given!r} on {self.target}")
        if len(matches) > 1:
            shown = ", ".join(m[:SERVER_PREFIX] for m in sorted(matches)[:5])
            raise InspectError(f"{kind} {given!r} matches {len(matches)} tasks ({shown}...): give more characters")
        return matches[0]


def match_hosts(hosts: list[scheduler_pb2.HostInfo], given: str) -> list[scheduler_pb2.HostInfo]:
    """The hosts whose id starts with given, or whose hostname or IP is given ("" or "*": all of them)."""
    if given in ("", "*"):
        return hosts
    return [h for h in hosts if h.host_id.startswith(given) or given in (h.hostname, h.ip, f"{h.ip}:{h.port}")]


def first_line(text: str) -> str:
    """The first line of a status's details, at most 300 characters."""
    return text.splitlines()[0][:300] if text else ""
