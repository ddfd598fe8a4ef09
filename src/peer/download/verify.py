"""The check of a download's whole content against its digest: hashed here, or vouched for by the seed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dfcommon.digest import parse_digest
from dfcommon.errors import DandelionError
from peer.storage import TaskStore


class ContentCheck:
    """Whether the content matches the request's digest (docs/protocol.md, step 5). Two ways:
    - hash it here, in order, as its pieces arrive (overlapping the download);
    - the seed's word: TaskInfo SUCCEEDED with the digest asked for, on one unbroken stream, after every piece was
      verified against a digest the seed published. An origin read, a piece without a usable digest, a failed seed,
      a reader's digests (which never vouch for the whole) all mean hashing here.
    `changed` returns the event set at the download's next change (a piece stored)."""

    def __init__(self, digest: str, changed: Callable[[], asyncio.Event]) -> None:
        self.digest = digest
        self._changed = changed
        self.hashes: dict[int, str] = {}  # piece number -> the digest this peer checked it against, or computed
        self.seed_vouches = False  # the seed said SUCCEEDED with our digest, on the current stream
        self.unhashed = False  # some piece was assigned without a digest (or with two): hash the content here
        self.swarm_only = False  # every piece so far came through the swarm (the eager hashing waits)
        self._hashing: asyncio.Task[str] | None = None

    @property
    def hashing(self) -> asyncio.Task[str] | None:
        """The running or finished hash of the content, once started."""
        return self._hashing

    def begin_swarm(self) -> None:
        """The download starts in the swarm: hashing waits, in case the seed vouches."""
        self.swarm_only = bool(self.digest)

    def watch(self, store: TaskStore) -> None:
        """A store is in use: hash it as it fills, unless the seed may vouch for it."""
        if self.digest and not store.complete and not self.swarm_only:
            self.start(store)

    def start(self, store: TaskStore) -> None:
        """Hash the content in order as it arrives (from disk), unless that already runs."""
        if self._hashing is None and self.digest:
            self._hashing = asyncio.create_task(self._follow(store))

    def distrust_seed(self, store: TaskStore | None) -> None:
        """From now on the digest is checked here: the swarm path was left, the seed failed, or the origin was read."""
        self.seed_vouches = False
        self.swarm_only = False
        if store is not None and not store.complete:
            self.start(store)

    def seed_checked(self, digest: str) -> None:
        """The supernode says the seed checked the whole content against digest (TaskInfo SUCCEEDED)."""
        if not self.swarm_only:
            return
        try:
            self.seed_vouches = parse_digest(digest) == parse_digest(self.digest)
        except DandelionError:
            self.seed_vouches = False

    def assigned(self, number: int, digest: str) -> None:
        """A piece was assigned with this digest ("" none): two different digests for one piece, or none, mean the
        content is hashed here."""
        if not digest:
            self.unhashed = True
            return
        if self.hashes.setdefault(number, digest) != digest:
            self.unhashed = True

    def seed_verified(self, store: TaskStore) -> bool:
        """True when the content is verified without hashing it here: the seed vouched for the digest and every
        piece was checked against the digest the seed published for it (so none came from elsewhere)."""
        if not (self.seed_vouches and self.swarm_only) or self.unhashed:
            return False
        count = store.meta.piece_count
        return store.meta.content_length >= 0 and all(number in self.hashes for number in range(count))

    def cancel(self) -> None:
        """Stop hashing (the download ended, or the seed's word makes it unneeded)."""
        if self._hashing is not None and not self._hashing.done():
            self._hashing.cancel()

    async def result(self, store: TaskStore) -> str:
        """The content's digest, "<algorithm>:<hex>" (hashing what is left)."""
        self.start(store)
        assert self._hashing is not None
        return await self._hashing

    async def _follow(self, store: TaskStore) -> str:
        digest = parse_digest(self.digest)
        hasher = digest.hasher()
        number = 0
        while True:
            count = store.meta.piece_count
            if store.meta.content_length >= 0 and number >= count:
                return f"{digest.algorithm}:{hasher.hexdigest()}"
            if store.has(number):
                offset, size = store.span(number)

                def update(offset: int = offset, size: int = size) -> None:
                    hasher.update(store.read(offset, size))

                await asyncio.to_thread(update)
                number += 1
            else:
                await self._changed().wait()
