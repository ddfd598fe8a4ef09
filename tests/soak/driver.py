"""The soak run: set up a real cluster, warm up, inject faults at random under load, stop them, check that
everything recovers, and summarise. Nothing here imports Dandelion's own code: only its commands and ports."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fixtures.clients import Dockerd, missing_binaries, run_dockerd, unmount_all_under
from fixtures.images import build_and_push
from fixtures.origin import read_stats_log, write_random_file
from fixtures.registry import Registry, registry_config

from . import budget
from .cluster import (
    Cluster,
    Service,
    mount_tmpfs,
    origin_service,
    peer_service,
    registry_service,
    seed_service,
    supernode_service,
    unmount,
    wait_for,
)
from .config import SoakConfig
from .faults import INJECTORS, FaultContext, FaultRecord
from .invariants import Watcher, wait_slots_idle
from .summary import build_summary, print_summary
from .workload import (
    OK,
    VIOLATIONS,
    Ledger,
    OriginFile,
    recheck_linked_outputs,
    run_dfget,
    run_docker_pull,
    run_skopeo,
)

MiB = 1 << 20
TMPFS_MIB = 128
IMAGE_LAYERS = ([3 * MiB, 1 * MiB], [2 * MiB, MiB // 2])


MARKER = ".dandelion-soak"


def fresh_out_dir(path: Path) -> Path:
    """An empty output directory: a previous soak's one is wiped (caches, counters and outputs must not carry
    over); any other non-empty directory is refused."""
    path = path.resolve()
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise SystemExit(f"soak: {path} is not empty and holds no earlier soak run; choose another --out")
        unmount_all_under(path)
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("output of a Dandelion soak run; wiped by the next run that uses it\n")
    return path


class Soak:
    """One soak run; run() returns the summary (a JSON-ready dict) and writes it to out_dir/summary.json."""

    def __init__(self, config: SoakConfig, log: Any = print) -> None:
        """Prepare the run's directories; log is where progress lines go."""
        self.cfg = config
        self.log = log
        self.out = fresh_out_dir(config.out_dir)
        self.ledger = Ledger()
        self.files: list[OriginFile] = []
        self.files_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.faults: list[FaultRecord] = []
        self.final_violations: list[str] = []
        self.harness_errors: list[str] = []
        self.docker: Dockerd | None = None
        self.run_id = 0
        self.run_id_lock = threading.Lock()

    # ------------------------------------------------------------------ setup

    def add_file(self, rng: random.Random) -> OriginFile:
        """Write a new random file of 1 MiB to max_file_mib (odd sizes) under the origin root."""
        index = len(self.files) + 1
        size = rng.randint(1 * MiB, self.cfg.max_file_mib * MiB) + rng.randint(1, 4095)
        sha = write_random_file(self.content / f"f{index}.bin", size, seed=rng.randrange(1 << 30))
        item = OriginFile(f"/f{index}.bin", size, sha)
        with self.files_lock:
            self.files.append(item)
        return item

    def setup(self, stack: ExitStack) -> None:
        """Origin, registry with pushed images, supernode, dfdaemons (one on a tmpfs), dockerd."""
        rng = random.Random(self.cfg.seed)
        self.content = self.out / "content"
        for _ in range(self.cfg.files):
            self.add_file(rng)
        socket_dir = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
        stack.callback(shutil.rmtree, socket_dir, True)
        self.cluster = Cluster(self.out, socket_dir)
        stack.callback(self.cluster.stop_all)
        origin = self.cluster.add(origin_service(self.cluster, self.content))
        origin.start()
        self.registry = self._registry()
        self.images = [
            build_and_push(self.out / "images", self.registry.addr, f"soak/img{i}", sizes)
            for i, sizes in enumerate(IMAGE_LAYERS)
        ]
        # With seed peers of their own, the supernode runs none in-process: the role "seed" is then the only one.
        own_seed = ("--no-seed-peer",) if self.cfg.seed_peers else ()
        self.cluster.add(supernode_service(self.cluster, (*own_seed, *self.cfg.supernode_args))).start()
        for index in range(self.cfg.seed_peers):
            self.cluster.add(seed_service(self.cluster, index, self.cfg.peer_args)).start()
        self.fill_peer: Service | None = None
        for index in range(self.cfg.peers):
            on_tmpfs = index == self.cfg.peers - 1 and {"fill_disk", "fill_disk_long"} & set(self.cfg.faults)
            # The tmpfs peer keeps a quarter of its disk free for the junk file to fill.
            quota = ("--cache-quota", f"{TMPFS_MIB * 3 // 4}MiB") if on_tmpfs else ()
            peer = peer_service(self.cluster, index, self.registry.url, (*quota, *self.cfg.peer_args))
            if on_tmpfs:
                assert peer.data_dir is not None
                mount_tmpfs(peer.data_dir, TMPFS_MIB)
                stack.callback(unmount, peer.data_dir)
                self.fill_peer = peer
            self.cluster.add(peer).start()
        if self.cfg.docker and not missing_binaries("dockerd", "docker"):
            self.docker = stack.enter_context(run_dockerd(self.out / "docker"))
        self.log(
            f"soak: cluster up ({self.cfg.peers} peers, {self.cfg.seed_peers} seed peers, {len(self.files)} files, "
            f"{len(self.images)} images)"
        )

    def _registry(self) -> Registry:
        root = self.out / "registry"
        root.mkdir(parents=True, exist_ok=True)
        from fixtures.processes import free_port

        host, port = "127.0.0.1", free_port("127.0.0.1")
        config = root / "config.yml"
        config.write_text(json.dumps(registry_config(root, host, port, None), indent=1))
        log_path = self.out / "logs" / "registry.log"
        self.cluster.add(registry_service(self.cluster, config, log_path, host, port)).start()
        return Registry(host, port, root, log_path, None)

    # ------------------------------------------------------------------ clients

    def out_dir(self, label: str) -> Path:
        """A fresh directory for one client run's output."""
        with self.run_id_lock:
            self.run_id += 1
            return self.out / "runs" / f"{self.run_id:05d}-{label}"

    def origin_url(self) -> str:
        """http://host:port of the origin."""
        port = self.cluster.role("origin").port("http")
        return f"http://{port.host}:{port.port}"

    def dfget(self, item: OriginFile, peer: Service, phase: str, deadline: float) -> str:
        """One dfget run; returns its status."""
        out = self.out_dir(f"dfget-{peer.role}")
        return run_dfget(self.ledger, self.origin_url(), item, peer, out, phase, deadline).status

    def dfget_worker(self, index: int) -> None:
        """Download random files through random peers until the fault phase ends."""
        rng = random.Random(self.cfg.seed * 1000 + index)
        while not self.stop_event.is_set():
            with self.files_lock:
                item = rng.choice(self.files)
            self.dfget(item, rng.choice(self.cluster.peers), "faults", self.cfg.download_deadline)
            self.stop_event.wait(rng.uniform(0.0, 0.5))

    def pull_worker(self) -> None:
        """skopeo copies of random images through random mirrors until the fault phase ends; a docker pull
        instead every docker_every seconds when that is set."""
        rng = random.Random(self.cfg.seed * 1000 + 999)
        last_docker = time.monotonic()
        while not self.stop_event.is_set():
            image, node = rng.choice(self.images), rng.choice(self.cluster.peers)
            every = self.cfg.docker_every
            if self.docker is not None and every > 0 and time.monotonic() - last_docker >= every:
                last_docker = time.monotonic()
                run_docker_pull(self.ledger, self.docker, image, node, "faults", self.cfg.download_deadline)
            else:
                run_skopeo(self.ledger, image, node, self.out_dir("skopeo"), "faults", self.cfg.download_deadline)
            self.stop_event.wait(rng.uniform(1.0, 3.0))

    def file_adder(self) -> None:
        """A new origin file every new_file_every seconds, so new tasks keep starting under faults."""
        rng = random.Random(self.cfg.seed * 1000 + 998)
        while not self.stop_event.wait(self.cfg.new_file_every):
            item = self.add_file(rng)
            self.log(f"soak: t={self.ledger.now():.0f}s new origin file {item.path} ({item.size} bytes)")

    # ------------------------------------------------------------------ phases

    def warm_up(self) -> None:
        """Every file once through some peer, every image once with skopeo, one docker pull."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            for i, item in enumerate(self.files):
                peer = self.cluster.peers[i % len(self.cluster.peers)]
                pool.submit(self.dfget, item, peer, "warmup", self.cfg.download_deadline)
        for i, image in enumerate(self.images):
            node = self.cluster.peers[i % len(self.cluster.peers)]
            run_skopeo(self.ledger, image, node, self.out_dir("skopeo"), "warmup", self.cfg.download_deadline)
        if self.docker is not None:
            run_docker_pull(self.ledger, self.docker, self.images[0], self.cluster.peers[0], "warmup", 120)

    def fault_phase(self, ctx: FaultContext) -> None:
        """Clients and the file adder in threads; faults one after another here until the time is up."""
        threads = [threading.Thread(target=self.dfget_worker, args=(i,), daemon=True)
                   for i in range(self.cfg.dfget_parallel)]  # fmt: skip
        threads += [threading.Thread(target=self.pull_worker, daemon=True)]
        threads += [threading.Thread(target=self.file_adder, daemon=True)]
        for thread in threads:
            thread.start()
        rng = random.Random(self.cfg.seed)
        end = time.monotonic() + self.cfg.seconds
        bag: list[str] = []
        while time.monotonic() < end:
            if self.cfg.faults:
                # Shuffled rounds of every enabled kind: random order, yet each kind comes up once per round.
                if not bag:
                    bag = list(self.cfg.faults)
                    rng.shuffle(bag)
                kind = bag.pop()
                try:
                    record = INJECTORS[kind](ctx, rng)
                except Exception as exc:
                    self.harness_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    record = FaultRecord(kind, "?", self.ledger.now(), detail=f"injector error: {exc}")
                self.faults.append(record)
                self.log(f"soak: t={record.started:.0f}s fault {record.kind} {record.target}: {record.detail}")
            time.sleep(min(rng.uniform(*self.cfg.fault_gap), max(0.0, end - time.monotonic())))
        self.stop_event.set()
        for thread in threads:
            thread.join(timeout=self.cfg.download_deadline + 30)

    def settle(self) -> None:
        """Every service continued, alive and ready (a dead one was already reported by the watcher)."""
        for service in self.cluster.services.values():
            if service.stopped:
                service.signal(18)  # SIGCONT
                service.stopped = False
        self.watcher.sample()
        for service in self.cluster.services.values():
            if not wait_for(service.ready, 30):
                self.final_violations.append(f"{service.role} not ready 30s after the faults stopped")
        time.sleep(2.0)

    def final_round(self) -> None:
        """After the faults: every file through every peer, every image through a mirror, within final_deadline."""
        deadline = self.cfg.final_deadline
        jobs = [(item, peer) for item in self.files for peer in self.cluster.peers]
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda job: self.dfget(job[0], job[1], "final", deadline), jobs))
        for i, image in enumerate(self.images):
            node = self.cluster.peers[(i + 1) % len(self.cluster.peers)]
            run_skopeo(self.ledger, image, node, self.out_dir("skopeo"), "final", deadline)
        if self.docker is not None:
            self.docker.remove_all_images()
            for i, image in enumerate(self.images):
                node = self.cluster.peers[(i + 2) % len(self.cluster.peers)]
                run_docker_pull(self.ledger, self.docker, image, node, "final", deadline)
        for outcome in self.ledger.outcomes:
            if outcome.phase == "final" and outcome.status != OK:
                self.final_violations.append(
                    f"final round: {outcome.client} {outcome.target} via {outcome.via} {outcome.status} "
                    f"after {outcome.duration:.1f}s: {outcome.detail}"
                )

    def run(self) -> dict[str, Any]:
        """The whole soak; returns the summary."""
        self.log(f"soak: seed {self.cfg.seed} (replay with --seed {self.cfg.seed}), {self.cfg.seconds:.0f}s of "
                 f"faults: {', '.join(self.cfg.faults) or 'none'}; output in {self.out}")  # fmt: skip
        with ExitStack() as stack:
            self.setup(stack)
            self.watcher = Watcher(self.cluster, self.ledger)
            self.watcher.start()
            stack.callback(self.watcher.stop)
            self.warm_up()
            warmup_end = self.ledger.now()
            self.log(f"soak: warm-up done at t={warmup_end:.0f}s")
            ctx = FaultContext(self.cluster, self.ledger, self.images, self.fill_peer, self.out,
                               self.cfg.download_deadline, self.cfg.strict_grpc)  # fmt: skip
            self.fault_phase(ctx)
            faults_end = self.ledger.now()
            self.log(f"soak: faults stopped at t={faults_end:.0f}s; final round")
            self.settle()
            self.final_round()
            metered = [s for s in self.cluster.services.values() if s.metrics_url]
            gauges, slot_problems = wait_slots_idle(metered, timeout=20)
            self.watcher.sample(scrape_metrics=True)
            self.watcher.stop()
            rss, rss_problems = self.watcher.rss_report(warmup_end)
            budgets, budget_problems = self.budgets(ctx)
            changed = recheck_linked_outputs(self.ledger)
        violations = [
            *(f"{o.client} {o.target} via {o.via} ({o.phase}, t={o.started:.0f}s): {o.status}: {o.detail}"
              for o in self.ledger.outcomes if o.status in VIOLATIONS and o.phase != "final"),
            *ctx.violations, *self.watcher.violations, *self.final_violations,
            *slot_problems, *rss_problems, *budget_problems,
            *(f"output changed after dfget finished (hard link to a cache file rewritten): {p}" for p in changed),
        ]  # fmt: skip
        summary = build_summary(
            self, ctx, warmup_end, faults_end, gauges, rss, budgets, violations, sorted(self.watcher.gauge_names)
        )
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print_summary(summary, self.log)
        return summary

    def budgets(self, ctx: FaultContext) -> tuple[dict[str, Any], list[str]]:
        """Origin bytes per file and registry bytes per blob against the budget formula."""
        fills = sum(1 for f in self.faults if f.kind.startswith("fill_disk"))
        direct = budget.direct_downloads(self.ledger.outcomes, ctx.down_windows)
        origin_terms = budget.terms_for(self.cluster, ctx.kills, fills, "origin")
        served = read_stats_log(self.out / "origin-bytes.log")
        files, problems = budget.check(served, {f.path: f.size for f in self.files}, origin_terms, direct, "file")
        registry_terms = budget.terms_for(self.cluster, ctx.kills, fills, "registry")
        sizes = {d: s for image in self.images for d, s in zip(image.layer_digests, image.layer_sizes, strict=True)}
        layers, layer_problems = budget.check(self.registry.blob_bytes(), sizes, registry_terms, {}, "layer")
        report = {
            "formula": budget.FORMULA,
            "origin_terms": origin_terms.__dict__,
            "registry_terms": registry_terms.__dict__,
            "files": files,
            "layers": layers,
        }
        return report, problems + layer_problems
