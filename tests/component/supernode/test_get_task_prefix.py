"""GetTask takes the task id as the logs print it: a unique prefix of 12 characters or more."""

from __future__ import annotations

import grpc
import pytest
from conftest import Running
from dandelion.common.v1 import common_pb2
from dandelion.scheduler.v1 import scheduler_pb2
from origin_server import Origin

from dfcommon.errors import InvalidArgument
from supernode.rpc.scheduler_service import task_id_from_prefix


async def test_get_task_by_prefix(supernode: Running, origin: Origin) -> None:
    origin.blobs["/a"] = b"a" * 1000
    origin.blobs["/b"] = b"b" * 1000
    host = scheduler_pb2.HostInfo(hostname="h", ip="127.0.0.1", port=1, upload_slots=4)
    host_id = (await supernode.scheduler.RegisterHost(scheduler_pb2.RegisterHostRequest(host=host))).host_id
    ids = []
    for path in ("/a", "/b"):
        meta = common_pb2.UrlMeta(url=f"{origin.base}{path}")
        request = scheduler_pb2.RegisterTaskRequest(host_id=host_id, url_meta=meta)
        reply = await supernode.scheduler.RegisterTask(request)
        ids.append(reply.task.task_id)
    for task_id in ids:
        for given in (task_id, task_id[:12], task_id[:20]):
            got = await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=given))
            assert got.task.task_id == task_id
    for given in (ids[0][:11], ids[0][:12] + "x"):  # too short to be a prefix; matches nothing
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await supernode.scheduler.GetTask(scheduler_pb2.GetTaskRequest(task_id=given))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_ambiguous_prefix_is_refused() -> None:
    tasks = {"abcdef0123456789" + "0" * 48: 1, "abcdef0123456789" + "1" * 48: 2}
    with pytest.raises(InvalidArgument, match="matches 2 tasks"):
        task_id_from_prefix(tasks, "abcdef012345")
    assert task_id_from_prefix(tasks, "abcdef01234567890") == "abcdef0123456789" + "0" * 48
