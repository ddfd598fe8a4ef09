from dandelion.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PieceFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIECE_FAILURE_UNSPECIFIED: _ClassVar[PieceFailure]
    PIECE_FAILURE_TIMEOUT: _ClassVar[PieceFailure]
    PIECE_FAILURE_BAD_DIGEST: _ClassVar[PieceFailure]
    PIECE_FAILURE_PARENT_UNAVAILABLE: _ClassVar[PieceFailure]
    PIECE_FAILURE_PARENT_MISSING_PIECE: _ClassVar[PieceFailure]
    PIECE_FAILURE_PARENT_BUSY: _ClassVar[PieceFailure]
    PIECE_FAILURE_LOCAL: _ClassVar[PieceFailure]
PIECE_FAILURE_UNSPECIFIED: PieceFailure
PIECE_FAILURE_TIMEOUT: PieceFailure
PIECE_FAILURE_BAD_DIGEST: PieceFailure
PIECE_FAILURE_PARENT_UNAVAILABLE: PieceFailure
PIECE_FAILURE_PARENT_MISSING_PIECE: PieceFailure
PIECE_FAILURE_PARENT_BUSY: PieceFailure
PIECE_FAILURE_LOCAL: PieceFailure

class HostInfo(_message.Message):
    __slots__ = ("host_id", "hostname", "ip", "port", "upload_slots", "location", "idle_seconds", "seed")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_SLOTS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    hostname: str
    ip: str
    port: int
    upload_slots: int
    location: str
    idle_seconds: float
    seed: bool
    def __init__(self, host_id: _Optional[str] = ..., hostname: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., upload_slots: _Optional[int] = ..., location: _Optional[str] = ..., idle_seconds: _Optional[float] = ..., seed: _Optional[bool] = ...) -> None: ...

class RegisterHostRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: HostInfo
    def __init__(self, host: _Optional[_Union[HostInfo, _Mapping]] = ...) -> None: ...

class RegisterHostResponse(_message.Message):
    __slots__ = ("host_id", "heartbeat_interval_ms", "grant_public_key", "grant_key_id", "stream_heartbeats")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    GRANT_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    GRANT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    heartbeat_interval_ms: int
    grant_public_key: bytes
    grant_key_id: str
    stream_heartbeats: bool
    def __init__(self, host_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., grant_public_key: _Optional[bytes] = ..., grant_key_id: _Optional[str] = ..., stream_heartbeats: _Optional[bool] = ...) -> None: ...

class HeartbeatHostRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class HeartbeatHostResponse(_message.Message):
    __slots__ = ("heartbeat_interval_ms",)
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_ms: int
    def __init__(self, heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class LeaveHostRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class LeaveHostResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("task_id", "url", "digest", "content_length", "piece_size", "piece_count", "state", "seed_pieces", "peer_count", "error")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PIECE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEED_PIECES_FIELD_NUMBER: _ClassVar[int]
    PEER_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    url: str
    digest: str
    content_length: int
    piece_size: int
    piece_count: int
    state: _common_pb2.TaskState
    seed_pieces: int
    peer_count: int
    error: str
    def __init__(self, task_id: _Optional[str] = ..., url: _Optional[str] = ..., digest: _Optional[str] = ..., content_length: _Optional[int] = ..., piece_size: _Optional[int] = ..., piece_count: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.TaskState, str]] = ..., seed_pieces: _Optional[int] = ..., peer_count: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class RegisterTaskRequest(_message.Message):
    __slots__ = ("host_id", "url_meta", "no_back_source")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    URL_META_FIELD_NUMBER: _ClassVar[int]
    NO_BACK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    url_meta: _common_pb2.UrlMeta
    no_back_source: bool
    def __init__(self, host_id: _Optional[str] = ..., url_meta: _Optional[_Union[_common_pb2.UrlMeta, _Mapping]] = ..., no_back_source: _Optional[bool] = ...) -> None: ...

class RegisterTaskResponse(_message.Message):
    __slots__ = ("task", "peer_id", "grant")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    peer_id: str
    grant: _common_pb2.AccessGrant
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ..., peer_id: _Optional[str] = ..., grant: _Optional[_Union[_common_pb2.AccessGrant, _Mapping]] = ...) -> None: ...

class PieceResult(_message.Message):
    __slots__ = ("piece_number", "parent_peer_id", "success", "failure", "duration_ms", "digest")
    PIECE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARENT_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    piece_number: int
    parent_peer_id: str
    success: bool
    failure: PieceFailure
    duration_ms: int
    digest: str
    def __init__(self, piece_number: _Optional[int] = ..., parent_peer_id: _Optional[str] = ..., success: _Optional[bool] = ..., failure: _Optional[_Union[PieceFailure, str]] = ..., duration_ms: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class OriginAnswer(_message.Message):
    __slots__ = ("content_length", "piece_size")
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    content_length: int
    piece_size: int
    def __init__(self, content_length: _Optional[int] = ..., piece_size: _Optional[int] = ...) -> None: ...

class SyncPiecesRequest(_message.Message):
    __slots__ = ("peer_id", "results", "window", "origin", "heartbeat", "read_ranges_applied")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    READ_RANGES_APPLIED_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    results: _containers.RepeatedCompositeFieldContainer[PieceResult]
    window: int
    origin: OriginAnswer
    heartbeat: bool
    read_ranges_applied: _containers.RepeatedCompositeFieldContainer[PieceRange]
    def __init__(self, peer_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[PieceResult, _Mapping]]] = ..., window: _Optional[int] = ..., origin: _Optional[_Union[OriginAnswer, _Mapping]] = ..., heartbeat: _Optional[bool] = ..., read_ranges_applied: _Optional[_Iterable[_Union[PieceRange, _Mapping]]] = ...) -> None: ...

class PieceAssignment(_message.Message):
    __slots__ = ("piece", "parent")
    PIECE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    piece: _common_pb2.PieceInfo
    parent: _common_pb2.PeerAddress
    def __init__(self, piece: _Optional[_Union[_common_pb2.PieceInfo, _Mapping]] = ..., parent: _Optional[_Union[_common_pb2.PeerAddress, _Mapping]] = ...) -> None: ...

class PieceAssignments(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[PieceAssignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[PieceAssignment, _Mapping]]] = ...) -> None: ...

class BackToSource(_message.Message):
    __slots__ = ("reason", "offer_pieces", "piece_digest", "read_ranges", "piece_size")
    REASON_FIELD_NUMBER: _ClassVar[int]
    OFFER_PIECES_FIELD_NUMBER: _ClassVar[int]
    PIECE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    READ_RANGES_FIELD_NUMBER: _ClassVar[int]
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    offer_pieces: bool
    piece_digest: str
    read_ranges: _containers.RepeatedCompositeFieldContainer[PieceRange]
    piece_size: int
    def __init__(self, reason: _Optional[str] = ..., offer_pieces: _Optional[bool] = ..., piece_digest: _Optional[str] = ..., read_ranges: _Optional[_Iterable[_Union[PieceRange, _Mapping]]] = ..., piece_size: _Optional[int] = ...) -> None: ...

class PieceRange(_message.Message):
    __slots__ = ("first", "last")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    first: int
    last: int
    def __init__(self, first: _Optional[int] = ..., last: _Optional[int] = ...) -> None: ...

class SyncPiecesResponse(_message.Message):
    __slots__ = ("task", "assignments", "back_to_source", "grant", "heartbeat_interval_ms")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    BACK_TO_SOURCE_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    assignments: PieceAssignments
    back_to_source: BackToSource
    grant: _common_pb2.AccessGrant
    heartbeat_interval_ms: int
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ..., assignments: _Optional[_Union[PieceAssignments, _Mapping]] = ..., back_to_source: _Optional[_Union[BackToSource, _Mapping]] = ..., grant: _Optional[_Union[_common_pb2.AccessGrant, _Mapping]] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class ReportPeerResultRequest(_message.Message):
    __slots__ = ("peer_id", "success", "bytes_from_peers", "bytes_from_origin", "duration_ms", "error", "content_digest_mismatch")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FROM_PEERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FROM_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONTENT_DIGEST_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    success: bool
    bytes_from_peers: int
    bytes_from_origin: int
    duration_ms: int
    error: str
    content_digest_mismatch: bool
    def __init__(self, peer_id: _Optional[str] = ..., success: _Optional[bool] = ..., bytes_from_peers: _Optional[int] = ..., bytes_from_origin: _Optional[int] = ..., duration_ms: _Optional[int] = ..., error: _Optional[str] = ..., content_digest_mismatch: _Optional[bool] = ...) -> None: ...

class ReportPeerResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveTaskRequest(_message.Message):
    __slots__ = ("peer_id",)
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    def __init__(self, peer_id: _Optional[str] = ...) -> None: ...

class LeaveTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PreheatTaskRequest(_message.Message):
    __slots__ = ("url_meta",)
    URL_META_FIELD_NUMBER: _ClassVar[int]
    url_meta: _common_pb2.UrlMeta
    def __init__(self, url_meta: _Optional[_Union[_common_pb2.UrlMeta, _Mapping]] = ...) -> None: ...

class PreheatTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("peer_id", "address", "state", "pieces", "piece_count", "uploads_ok", "uploads_failed", "is_seed")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PIECES_FIELD_NUMBER: _ClassVar[int]
    PIECE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_OK_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FAILED_FIELD_NUMBER: _ClassVar[int]
    IS_SEED_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    address: _common_pb2.PeerAddress
    state: _common_pb2.PeerState
    pieces: bytes
    piece_count: int
    uploads_ok: int
    uploads_failed: int
    is_seed: bool
    def __init__(self, peer_id: _Optional[str] = ..., address: _Optional[_Union[_common_pb2.PeerAddress, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.PeerState, str]] = ..., pieces: _Optional[bytes] = ..., piece_count: _Optional[int] = ..., uploads_ok: _Optional[int] = ..., uploads_failed: _Optional[int] = ..., is_seed: _Optional[bool] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task", "peers")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ...) -> None: ...

class ListHostsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SeedTasksRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class SeedTasksResponse(_message.Message):
    __slots__ = ("task_id", "url_meta")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    URL_META_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    url_meta: _common_pb2.UrlMeta
    def __init__(self, task_id: _Optional[str] = ..., url_meta: _Optional[_Union[_common_pb2.UrlMeta, _Mapping]] = ...) -> None: ...

class ListHostsResponse(_message.Message):
    __slots__ = ("hosts", "next_page_token")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[HostInfo]
    next_page_token: str
    def __init__(self, hosts: _Optional[_Iterable[_Union[HostInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
