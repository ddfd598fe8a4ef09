"""The registry of the swarm: hosts, tasks and peers by id, and the indexes kept in step with them.

Indexes: which peers hold which piece (Task.holders, counts, buckets), which trusted peers have a free upload slot
(Task.free_parents) and, per piece, those that hold it (Task.free_holders, free_counts), the peers of each host,
the tasks no peer is in (idle, oldest first) and the host at each address. No policy here: who fetches what from
whom is the scheduler's. Costs are O(pieces held) big-integer operations per change, never O(peers) or O(hosts), and
a few when a host's upload slots fill or free (see update_free).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from supernode.resource.host import Host
from supernode.resource.peer import Peer, PeerState
from supernode.resource.task import Task


class Registry:
    """Hosts, tasks and peers, with their indexes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.hosts: dict[str, Host] = {}
        # The host registered at each (ip, port): a host that registers again replaces the one there, and 10,000
        # hosts registering at once would otherwise each compare every host held (0.9 ms at 10,000).
        self.by_address: dict[tuple[str, int], Host] = {}
        self.tasks: dict[str, Task] = {}
        self.peers: dict[str, Peer] = {}
        # Tasks with no peer -> since when, oldest first (a task that gets idle again moves to the end).
        self.idle: dict[str, float] = {}

    # Adding and removing ------------------------------------------------------------

    def add_host(self, host: Host) -> None:
        """Register a host (the caller dropped any other host at its address first)."""
        self.hosts[host.host_id] = host
        self.by_address[(host.ip, host.port)] = host

    def remove_host(self, host: Host) -> None:
        """Forget a host (its peers are gone already)."""
        self.hosts.pop(host.host_id, None)
        if self.by_address.get((host.ip, host.port)) is host:
            del self.by_address[(host.ip, host.port)]

    def host_at(self, ip: str, port: int) -> Host | None:
        """The host registered at ip:port, if any."""
        return self.by_address.get((ip, port))

    def add_task(self, task: Task) -> None:
        """Register a task (idle until a peer joins)."""
        self.tasks[task.task_id] = task
        self.idle[task.task_id] = self.clock()

    def add_peer(self, task: Task, peer: Peer) -> None:
        """Register a peer of a task."""
        self._attach(task, peer)
        self.idle.pop(task.task_id, None)

    def _attach(self, task: Task, peer: Peer) -> None:
        task.peers[peer.peer_id] = peer
        if peer.host.seed_peer:
            task.seed_peer_ids.add(peer.peer_id)
        self.peers[peer.peer_id] = peer
        peer.host.peer_ids.add(peer.peer_id)
        self.update_free(task, peer)

    def detach_peer(self, task: Task, peer: Peer) -> None:
        """Remove a (LEFT) peer that serves and fetches nothing any more from every index."""
        self.update_free(task, peer)
        task.remove_holders(peer.held, peer.peer_id)
        if not peer.host.seed_peer:
            task.plain_held -= peer.held_count
        del task.peers[peer.peer_id]
        task.seed_peer_ids.discard(peer.peer_id)
        task.starved.pop(peer.peer_id, None)
        self.peers.pop(peer.peer_id, None)
        peer.host.peer_ids.discard(peer.peer_id)
        if not task.peers:
            self.idle.pop(task.task_id, None)
            self.idle[task.task_id] = self.clock()

    def drop_task(self, task: Task) -> None:
        """Forget a task whose peers are detached."""
        self.tasks.pop(task.task_id, None)
        self.idle.pop(task.task_id, None)

    def idle_for(self, ttl: float, now: float | None = None) -> list[Task]:
        """Tasks that have had no peer for at least ttl seconds, oldest first."""
        limit = (self.clock() if now is None else now) - ttl
        out = []
        for tid, since in self.idle.items():
            if since > limit:
                break
            out.append(self.tasks[tid])
        return out

    def oldest_idle(self) -> Iterator[Task]:
        """Tasks with no peer, idle the longest first (stop iterating before forgetting one)."""
        return (self.tasks[tid] for tid in self.idle)

    def keep(self, task: Task) -> None:
        """The idle task is still in use (a preheat awaits it): its idle time starts again."""
        if self.idle.pop(task.task_id, None) is not None:
            self.idle[task.task_id] = self.clock()

    # Who can serve ------------------------------------------------------------------

    def update_free(self, task: Task, peer: Peer) -> None:
        """Keep task.free_parents, free_counts and free_holders in step with the peer.

        A host's upload slots fill and free around nearly every piece it sends, and that costs a few big-integer
        operations (Task.free_counts), not a walk over the pieces the peer holds: such walks were 48% of the
        scheduler's CPU with 512 pieces a task (bench/scheduler_cpu_bench.py). A busy peer keeps its entries in
        free_holders (see Task.evict_busy); one that cannot serve at all (left, distrusted, unreachable, holding
        nothing) leaves them at once."""
        serves = can_serve(task, peer)
        free = serves and peer.host.free_slots > 0
        if free != (peer.peer_id in task.free_parents):
            if free:
                task.free_parents.add(peer.peer_id)
            else:
                task.free_parents.discard(peer.peer_id)
            if peer.host.seed_peer:
                self._seed_changed(task)
                return  # a seed peer's pieces are not in free_holders (see servable)
            if free:
                task.free_counts.add(peer.held)
                self._index(task, peer)
            else:
                task.free_counts.sub(peer.held)
        if not serves and peer.indexed:
            self._unindex(task, peer)

    @staticmethod
    def _index(task: Task, peer: Peer) -> None:
        """The peer is a free parent: its held pieces into free_holders, at the back (when it was there already,
        only those a choice moved out meanwhile and those it got meanwhile)."""
        free_holders = task.free_holders
        peer_id = peer.peer_id
        if peer.indexed:
            for number in peer.evicted:
                if peer.held >> number & 1:
                    free_holders[number][peer_id] = None
        else:
            held = peer.held
            while held:
                low = held & -held
                held ^= low
                free_holders[low.bit_length() - 1][peer_id] = None
        peer.indexed = True
        peer.evicted = []

    @staticmethod
    def _unindex(task: Task, peer: Peer) -> None:
        """The peer can serve nothing: out of the free_holders of every piece it holds."""
        free_holders = task.free_holders
        peer_id = peer.peer_id
        held = peer.held
        while held:
            low = held & -held
            held ^= low
            free_holders[low.bit_length() - 1].pop(peer_id, None)
        peer.indexed = False
        peer.evicted = []

    def refresh_host(self, host: Host) -> list[Task]:
        """Re-evaluate whether each of the host's peers can serve; returns their tasks."""
        tasks = []
        for peer_id in host.peer_ids:
            peer = self.peers.get(peer_id)
            task = self.tasks.get(peer.task_id) if peer is not None else None
            if peer is not None and task is not None:
                self.update_free(task, peer)
                tasks.append(task)
        return tasks

    def serves(self, host: Host, task: Task) -> bool:
        """True when one of the host's peers belongs to the task."""
        return any((peer := self.peers.get(p)) is not None and peer.task_id == task.task_id for p in host.peer_ids)

    def _seed_changed(self, task: Task) -> None:
        """Recompute the pieces free seed peers hold (a task has one or a few seed peers)."""
        mask = 0
        for peer_id in task.seed_peer_ids:
            if peer_id in task.free_parents:
                mask |= task.peers[peer_id].held
        task.seed_servable = mask

    @staticmethod
    def servable(task: Task) -> int:
        """Pieces that some free, trusted parent holds (a seed peer: while it sends it to fewer than the fan-out)."""
        return task.free_counts.nonzero | (task.seed_servable & ~task.seed_saturated)

    # Who holds what -----------------------------------------------------------------

    def hold(self, task: Task, peer: Peer, number: int) -> bool:
        """The peer holds a piece now; True when others may fetch it from there (new, and the peer trusted)."""
        if peer.holds(number):
            return False
        peer.held |= 1 << number
        peer.held_count += 1
        if not peer.host.seed_peer:
            task.plain_held += 1
        if peer.peer_id in task.bad_parents:
            return False
        task.add_holder(number, peer.peer_id)
        was_free = peer.peer_id in task.free_parents
        if not was_free:
            self.update_free(task, peer)
        elif peer.host.seed_peer:
            task.seed_servable |= 1 << number
        if peer.peer_id in task.free_parents and not peer.host.seed_peer:
            if was_free:
                task.free_counts.add(1 << number)  # else update_free just counted all it holds
            holders = task.free_holders[number]  # looked at first for this piece: it sends it to no one yet
            holders[peer.peer_id] = None
            holders.move_to_end(peer.peer_id, last=False)
        elif peer.indexed:
            peer.evicted.append(number)  # its host is busy: into free_holders when a slot frees
        return True

    def unhold(self, task: Task, peer: Peer, number: int) -> None:
        """The peer does not hold the piece after all (its cache lost it): never offer it from there again."""
        if not peer.holds(number):
            return
        bit = 1 << number
        peer.held &= ~bit
        peer.held_count -= 1
        if not peer.host.seed_peer:
            task.plain_held -= 1
        if peer.peer_id in task.bad_parents:
            return
        task.remove_holder(number, peer.peer_id)
        if peer.host.seed_peer:
            self._seed_changed(task)
        else:
            if peer.peer_id in task.free_parents:
                task.free_counts.sub(bit)
            if peer.indexed:
                task.free_holders[number].pop(peer.peer_id, None)
        if peer.held_count == 0:
            self.update_free(task, peer)

    def unhold_all(self, task: Task, peer: Peer) -> None:
        """The peer is no longer a holder of any piece (its uploads are already cancelled)."""
        held = peer.held
        while held:
            low = held & -held
            self.unhold(task, peer, low.bit_length() - 1)
            held ^= low
        self.update_free(task, peer)

    def untrust(self, task: Task, peer: Peer) -> bool:
        """The peer served bad bytes: it is no parent of the task any more; False when that was known already."""
        if peer.peer_id in task.bad_parents:
            return False
        task.bad_parents.add(peer.peer_id)
        self.update_free(task, peer)
        task.remove_holders(peer.held, peer.peer_id)
        return True


def can_serve(task: Task, peer: Peer) -> bool:
    """True when the peer may be chosen as a parent of the task, free slot or not: it holds something, has not
    left, is trusted, and its host is reachable."""
    return (
        peer.held_count > 0
        and peer.state is not PeerState.LEFT
        and peer.peer_id not in task.bad_parents
        and not peer.host.unreachable
    )
