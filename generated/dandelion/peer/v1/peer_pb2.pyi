from dandelion.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DownloadPiecesRequest(_message.Message):
    __slots__ = ("task_id", "piece_numbers", "requester_peer_id", "grant", "requester_host_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PIECE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    piece_numbers: _containers.RepeatedScalarFieldContainer[int]
    requester_peer_id: str
    grant: _common_pb2.AccessGrant
    requester_host_id: str
    def __init__(self, task_id: _Optional[str] = ..., piece_numbers: _Optional[_Iterable[int]] = ..., requester_peer_id: _Optional[str] = ..., grant: _Optional[_Union[_common_pb2.AccessGrant, _Mapping]] = ..., requester_host_id: _Optional[str] = ...) -> None: ...

class DownloadPiecesResponse(_message.Message):
    __slots__ = ("piece_number", "offset", "data")
    PIECE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    piece_number: int
    offset: int
    data: bytes
    def __init__(self, piece_number: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StreamTaskRequest(_message.Message):
    __slots__ = ("task_id", "requester_peer_id", "take_over")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    requester_peer_id: str
    take_over: bool
    def __init__(self, task_id: _Optional[str] = ..., requester_peer_id: _Optional[str] = ..., take_over: _Optional[bool] = ...) -> None: ...

class StreamTaskResponse(_message.Message):
    __slots__ = ("content_length", "offset", "data", "piece_size", "handed_over")
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HANDED_OVER_FIELD_NUMBER: _ClassVar[int]
    content_length: int
    offset: int
    data: bytes
    piece_size: int
    handed_over: bool
    def __init__(self, content_length: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., piece_size: _Optional[int] = ..., handed_over: _Optional[bool] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("url_meta", "no_back_source", "rate_limit", "local_copy")
    URL_META_FIELD_NUMBER: _ClassVar[int]
    NO_BACK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_COPY_FIELD_NUMBER: _ClassVar[int]
    url_meta: _common_pb2.UrlMeta
    no_back_source: bool
    rate_limit: int
    local_copy: bool
    def __init__(self, url_meta: _Optional[_Union[_common_pb2.UrlMeta, _Mapping]] = ..., no_back_source: _Optional[bool] = ..., rate_limit: _Optional[int] = ..., local_copy: _Optional[bool] = ...) -> None: ...

class LocalFile(_message.Message):
    __slots__ = ("path", "device", "inode")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    INODE_FIELD_NUMBER: _ClassVar[int]
    path: str
    device: int
    inode: int
    def __init__(self, path: _Optional[str] = ..., device: _Optional[int] = ..., inode: _Optional[int] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("task_id", "content_length", "completed_length", "offset", "data", "done", "local_file", "readable_length")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_LENGTH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FILE_FIELD_NUMBER: _ClassVar[int]
    READABLE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    content_length: int
    completed_length: int
    offset: int
    data: bytes
    done: bool
    local_file: LocalFile
    readable_length: int
    def __init__(self, task_id: _Optional[str] = ..., content_length: _Optional[int] = ..., completed_length: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., local_file: _Optional[_Union[LocalFile, _Mapping]] = ..., readable_length: _Optional[int] = ...) -> None: ...

class ListCacheRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheEntry(_message.Message):
    __slots__ = ("task_id", "url", "content_length", "complete", "idle_seconds")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    url: str
    content_length: int
    complete: bool
    idle_seconds: float
    def __init__(self, task_id: _Optional[str] = ..., url: _Optional[str] = ..., content_length: _Optional[int] = ..., complete: _Optional[bool] = ..., idle_seconds: _Optional[float] = ...) -> None: ...

class ListCacheResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CacheEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[CacheEntry, _Mapping]]] = ...) -> None: ...
