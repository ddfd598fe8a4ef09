from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]

class PeerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_STATE_UNSPECIFIED: _ClassVar[PeerState]
    PEER_STATE_RUNNING: _ClassVar[PeerState]
    PEER_STATE_SUCCEEDED: _ClassVar[PeerState]
    PEER_STATE_FAILED: _ClassVar[PeerState]
    PEER_STATE_BACK_TO_SOURCE: _ClassVar[PeerState]
    PEER_STATE_LEFT: _ClassVar[PeerState]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
PEER_STATE_UNSPECIFIED: PeerState
PEER_STATE_RUNNING: PeerState
PEER_STATE_SUCCEEDED: PeerState
PEER_STATE_FAILED: PeerState
PEER_STATE_BACK_TO_SOURCE: PeerState
PEER_STATE_LEFT: PeerState

class UrlMeta(_message.Message):
    __slots__ = ("url", "headers", "digest", "filtered_query_params", "range")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    FILTERED_QUERY_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    url: str
    headers: _containers.ScalarMap[str, str]
    digest: str
    filtered_query_params: _containers.RepeatedScalarFieldContainer[str]
    range: str
    def __init__(self, url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., digest: _Optional[str] = ..., filtered_query_params: _Optional[_Iterable[str]] = ..., range: _Optional[str] = ...) -> None: ...

class PieceInfo(_message.Message):
    __slots__ = ("number", "offset", "size", "sha256", "digest")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    number: int
    offset: int
    size: int
    sha256: str
    digest: str
    def __init__(self, number: _Optional[int] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class PeerAddress(_message.Message):
    __slots__ = ("peer_id", "host_id", "ip", "port")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    host_id: str
    ip: str
    port: int
    def __init__(self, peer_id: _Optional[str] = ..., host_id: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class AccessGrant(_message.Message):
    __slots__ = ("claims", "signature")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    claims: bytes
    signature: bytes
    def __init__(self, claims: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GrantClaims(_message.Message):
    __slots__ = ("task_id", "host_id", "expires_at_unix_ms", "key_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    host_id: str
    expires_at_unix_ms: int
    key_id: str
    def __init__(self, task_id: _Optional[str] = ..., host_id: _Optional[str] = ..., expires_at_unix_ms: _Optional[int] = ..., key_id: _Optional[str] = ...) -> None: ...
