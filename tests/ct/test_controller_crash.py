"""The controller killed (SIGKILL) at every state and restarted: the loop ends in a
consistent state with exactly one champion.

Each case runs ``crash_driver.py`` (a simulated server and the controller in one process,
its prediction log kept on disk) on a fresh home until the controller leaves the chosen
state, where the driver SIGKILLs itself just before the state change commits (the step's
effects done, not recorded) or just after it — or, for a few states, inside the step after
its first effect; then runs it again, without a kill, to the end of the stream. Three
scenarios between them visit every state: ``promote`` (gate, approval, shadow, canary,
promotion), ``reject`` (the approver says no) and ``rollback`` (the shadow disagrees too
much). Two restarts are another holder, which has to wait for the dead one's lease.

The store must then be consistent — the controller watching with no cycle or request
pending and its lease released, exactly one champion, the deployment on ``MODEL@champion``
alone, each step recorded at most once per cycle and each cycle ended once, one status tag
per challenger, the one its ending recorded — and tell the story of an uninterrupted run
of the same scenario: the same events with the same numbers at the same simulated times,
the same champion, the same plan revisions and alias moves, no model version registered
twice. One exception: killed inside the fit step after it registered its version but
before the step was recorded as done, the restarted pipeline cannot reuse that step, so it
trains and registers another version; the first is left behind, untagged and never served,
and the versions after it are numbered one higher (compared renumbered).

The cases are independent pairs of processes: a module fixture runs them in a small
thread pool, in the background while each test waits for its own. The runs are children
of "fork servers" (the driver with its imports done once, forking a child per run), which
keeps the module near a minute on two cores; the shared prefix (the first champion and the
quiet ticks before the concept change) runs once, through the plain command line, and each
run continues a copy of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

import pytest

from ratchet.ct.controller import (
    APPROVAL,
    CANARY_STATE,
    CHAMPION,
    CYCLE_TAG,
    GATING,
    PROMOTING,
    REJECTING,
    ROLLING_BACK,
    SHADOW,
    STATES,
    STATUS_TAG,
    TRAINING,
    WATCHING,
)
from ratchet.workspace import Workspace

DRIVER = Path(__file__).with_name("crash_driver.py")
MODEL = "crashy"
PROMOTE, REJECT, ROLLBACK = "promote", "reject", "rollback"
WORKERS = min(4, (os.cpu_count() or 2) + 1)
TIMEOUT_S = 180
PREFIX_TICKS = 3  # the quiet ticks before the first retrain: run once, copied by each case
# The lease: a restart by the same holder takes it back at once, so those runs hold a
# roomy one (a loaded machine must not make a live controller lose it); a takeover waits
# for it to expire, so those hold a short one.
LEASE_MS, TAKEOVER_LEASE_MS = 10_000, 5_000
TERMINAL = {"promoted", "rejected", "rolled-back"}


@dataclass(frozen=True)
class Case:
    scenario: str
    kill: str              # STATE:before|after|during[:N] (see crash_driver.install_kill)
    takeover: bool = False  # the restart is another holder: it waits for the lease

    @property
    def state(self) -> str:
        return self.kill.split(":")[0]

    @property
    def when(self) -> str:
        return self.kill.split(":")[1]

    @property
    def id(self) -> str:
        return f"{self.scenario}-{self.kill.replace(':', '-')}" + (
            "-new-holder" if self.takeover else "")


def _cases() -> list[Case]:
    out = []
    for when in ("before", "after"):
        # training commits twice: its data (datasets logged), then the challenger (the
        # pipeline ran and registered a version); shadow and canary's first commits set
        # the deployment's plan.
        for kill in (WATCHING, TRAINING, f"{TRAINING}:{when}:2", GATING, APPROVAL, SHADOW,
                     CANARY_STATE, PROMOTING):
            spec = kill if kill.count(":") == 2 else f"{kill}:{when}"
            out.append(Case(PROMOTE, spec, takeover=spec == f"{TRAINING}:before:2"))
        out.append(Case(REJECT, f"{REJECTING}:{when}"))
        out.append(Case(ROLLBACK, f"{ROLLING_BACK}:{when}", takeover=when == "before"))
    # Inside a step, after its first effect: the rest of its effects not done.
    out += [Case(PROMOTE, f"{TRAINING}:during"),    # the fit step registered a version
            Case(PROMOTE, f"{GATING}:during"),      # one of two importance tags set
            Case(PROMOTE, f"{PROMOTING}:during"),   # the alias moved, the plan not reset
            Case(ROLLBACK, f"{ROLLING_BACK}:during")]  # the plan reset, no status tag
    return out


CASES = _cases()


# ----------------------------------------------------------------------------- running
@dataclass
class Proc:
    returncode: int
    out: str
    seconds: float


@dataclass
class CrashRun:
    home: Path
    killed: Proc
    resumed: Proc
    seconds: float


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}


class ForkServer:
    """``crash_driver.py --fork-server``: the driver's imports paid once; each run is a
    child process of it (killed by a real SIGKILL), one at a time."""

    def __init__(self, directory: Path) -> None:
        self.errors = directory / "fork-server.err"
        with open(self.errors, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(DRIVER), "--fork-server"], cwd=directory, env=_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)

    def run(self, argv: list[str], log: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "log": str(log),
                                          "timeout": TIMEOUT_S}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server died:\n{self.errors.read_text()}")
        return int(json.loads(answer)["returncode"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _driver(servers: Queue[ForkServer] | None, home: Path, scenario: str, *extra: str,
            lease_ms: int = LEASE_MS, log: str = "driver") -> Proc:
    """One run of the driver: a child of a fork server, or (``servers`` None) a fresh
    ``python crash_driver.py ...``."""
    argv = ["--home", str(home), "--scenario", scenario, "--lease-ms", str(lease_ms), *extra]
    began = time.perf_counter()
    if servers is None:
        done = subprocess.run([sys.executable, str(DRIVER), *argv], cwd=home.parent,
                              env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
        return Proc(done.returncode, done.stdout + done.stderr, time.perf_counter() - began)
    server = servers.get()
    try:
        path = home.parent / f"{log}.log"
        code = server.run(argv, path)
    finally:
        servers.put(server)
    return Proc(code, path.read_text(), time.perf_counter() - began)


def _copy(template: Path, home: Path) -> Path:
    home.parent.mkdir(parents=True)
    shutil.copytree(template, home)
    return home


def _reference(servers: Queue[ForkServer], root: Path, template: Path, scenario: str
               ) -> Proc:
    return _driver(servers, _copy(template, root / "reference" / scenario / "home"),
                   scenario, log="reference")


def _crash(servers: Queue[ForkServer], root: Path, template: Path, case: Case) -> CrashRun:
    began = time.perf_counter()
    home = _copy(template, root / case.id / "home")
    # A takeover case: the restart is another holder, started at once, while the dead
    # one's lease (renewed every third of it) still runs: it has to wait for it to expire.
    lease = TAKEOVER_LEASE_MS if case.takeover else LEASE_MS
    killed = _driver(servers, home, case.scenario, "--kill-at", case.kill, "--holder",
                     "first", lease_ms=lease, log="killed")
    resumed = _driver(servers, home, case.scenario, "--holder",
                      "second" if case.takeover else "first", lease_ms=lease, log="resumed")
    return CrashRun(home, killed, resumed, time.perf_counter() - began)


@dataclass
class Runs:
    root: Path
    template: Proc
    references: dict[str, Future[Proc]] = field(default_factory=dict)
    crashes: dict[str, Future[CrashRun]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Runs]:
    """The selected cases and the references they compare with, all started at once (in
    the background: each test waits for its own)."""
    params = [item.callspec.params for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec")]
    wanted = [p["case"] for p in params if "case" in p]
    scenarios = {p["scenario"] for p in params if "scenario" in p} | \
        {c.scenario for c in wanted}
    root = tmp_path_factory.mktemp("ct-crash")
    servers: Queue[ForkServer] = Queue()
    started = [ForkServer(root) for _ in range(WORKERS)]  # importing while the prefix runs
    for server in started:
        servers.put(server)
    try:
        # The first champion, its deployment and the quiet ticks before the concept change
        # are the same in every run: done once (by the plain command line), each run
        # continues a copy.
        template = root / "template" / "home"
        template.parent.mkdir()
        prefix = _driver(None, template, PROMOTE, "--ticks", str(PREFIX_TICKS))
        assert prefix.returncode == 0, prefix.out
        result = Runs(root, prefix)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for scenario in sorted(scenarios, key=[PROMOTE, REJECT, ROLLBACK].index):
                result.references[scenario] = pool.submit(_reference, servers, root,
                                                          template, scenario)
            for case in sorted(wanted, key=lambda c: not c.takeover):  # the slow ones first
                result.crashes[case.id] = pool.submit(_crash, servers, root, template, case)
            try:
                yield result
            finally:
                for future in result.crashes.values():
                    future.cancel()
    finally:
        for server in started:
            server.close()


# ----------------------------------------------------------------------------- inspecting
@dataclass
class Store:
    state: Any
    champion: int
    champions: list[int]              # versions carrying the champion alias
    aliases: dict[str, int]
    alias_moves: list[tuple[int | None, int | None]]
    versions: dict[int, dict[str, str]]  # version -> tags
    plan: dict[str, Any]
    revisions: list[dict[str, Any]]
    events: list[Any]


def _inspect(home: Path) -> Store:
    from ratchet.config import load_settings
    from ratchet.registry import RegistryClient
    from ratchet.serving.deployments import DeploymentClient
    from ratchet.store.ct_event_store import CTEventStore
    from ratchet.store.ct_state_store import CTStateStore

    settings = load_settings(cwd=home, env={"RATCHET_HOME": str(home)})
    registry = RegistryClient(Workspace(settings))
    deployments = DeploymentClient(registry.workspace)
    db = registry.tracking.store.db
    resolved = registry.resolve(f"models:/{MODEL}@{CHAMPION}")
    assert resolved.version is not None
    versions = registry.list_versions(MODEL)
    return Store(
        state=CTStateStore(db).get(MODEL), champion=resolved.version.version,
        champions=[v.version for v in versions if CHAMPION in v.aliases],
        aliases=dict(registry.get_model(MODEL).aliases),
        alias_moves=[(e.from_version, e.to_version)
                     for e in registry.alias_history(MODEL, CHAMPION)],
        versions={v.version: dict(v.tags or {}) for v in versions},
        plan=deployments.status(MODEL).plan.to_dict(),
        revisions=[r.plan for r in deployments.history(MODEL)],
        events=CTEventStore(db).history(MODEL))


def _cycles(events: list[Any]) -> dict[int, list[str]]:
    """Event kinds per retrain cycle: a cycle starts with its trigger ("retrain #N: ...")
    and owns every event up to the next trigger."""
    cycles: dict[int, list[str]] = {}
    current = None
    for e in events:
        if e.kind == "trigger":
            number = int(e.summary.split("#", 1)[1].split(":", 1)[0])
            assert number not in cycles, f"cycle {number} triggered twice: {e.summary}"
            current = number
            cycles[current] = []
        if current is not None:
            cycles[current].append(e.kind)
    return cycles


def _timeline(events: list[Any]) -> list[tuple[str, str, int]]:
    return [(e.kind, e.summary, e.at) for e in events]


def _check_consistent(store: Store) -> None:
    """What any run must end in, interrupted or not."""
    from ratchet.serving.traffic_plan import TrafficPlan

    state = store.state
    assert state is not None
    assert state.state == WATCHING, state
    assert "cycle" not in state.data, state.data          # no cycle half done
    assert state.requests == [], state.requests           # every answer consumed
    assert state.lease_holder is None                     # released at the end
    # Exactly one champion, the one the alias resolves to.
    assert store.champions == [store.champion]
    assert store.aliases == {CHAMPION: store.champion}
    assert store.plan == TrafficPlan.single(f"{MODEL}@{CHAMPION}").to_dict()
    # Every step recorded once per cycle.
    cycles = _cycles(store.events)
    assert cycles, [e.kind for e in store.events]
    for number, kinds in cycles.items():
        repeated = {k: n for k, n in Counter(kinds).items() if n > 1}
        assert not repeated, f"cycle {number}: {repeated} in {kinds}"
        assert len(TERMINAL & set(kinds)) == 1, f"cycle {number}: {kinds}"
    assert state.cycle == max(cycles)
    # One status per challenger, the one its cycle's ending recorded; one challenger per
    # cycle; the champion moved once per promotion.
    endings = {(e.evidence["version"], e.kind) for e in store.events if e.kind in TERMINAL}
    statuses = {(v, tags[STATUS_TAG]) for v, tags in store.versions.items()
                if STATUS_TAG in tags}
    assert statuses == endings
    challengers = Counter(tags[CYCLE_TAG] for tags in store.versions.values()
                          if CYCLE_TAG in tags)
    assert all(n == 1 for n in challengers.values()), challengers
    promoted = [e.evidence for e in store.events if e.kind == "promoted"]
    assert store.alias_moves[1:] == [(p["previous"], p["version"]) for p in promoted]


# ----------------------------------------------------------------------------- tests
def test_every_state_is_killed_at() -> None:
    assert {c.state for c in CASES} == set(STATES)
    for state in STATES:
        assert {c.when for c in CASES if c.state == state} >= {"before", "after"}, state
    assert any(c.takeover for c in CASES)


@pytest.mark.parametrize("scenario", [PROMOTE, REJECT, ROLLBACK])
def test_uninterrupted_reference(runs: Runs, scenario: str) -> None:
    """The scenarios do what the crash cases rely on: visit the states they kill at."""
    proc = runs.references[scenario].result()
    assert proc.returncode == 0, proc.out
    store = _inspect(_home_of(runs, scenario))
    _check_consistent(store)
    kinds = [e.kind for e in store.events]
    ending = {PROMOTE: "promoted", REJECT: "rejected", ROLLBACK: "rolled-back"}[scenario]
    assert kinds.count("trigger") == 1 and ending in kinds, kinds
    cycle = ["trigger", "data", "retrained", "gate"]
    assert kinds[:kinds.index(ending) + 1] == cycle + {
        PROMOTE: ["approve-requested", "approved", "shadow-started", "shadow-passed",
                  "canary-started", "canary-passed", "promoted"],
        REJECT: ["reject-requested", "disapproved", "rejected"],
        ROLLBACK: ["approve-requested", "approved", "shadow-started", "shadow-failed",
                   "rolled-back"]}[scenario]
    assert sorted(store.versions) == [1, 2]
    assert store.champion == (2 if scenario == PROMOTE else 1)


def _home_of(runs: Runs, scenario: str) -> Path:
    return runs.root / "reference" / scenario / "home"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_killed_and_restarted(runs: Runs, case: Case) -> None:
    run = runs.crashes[case.id].result()
    killed, resumed = run.killed, run.resumed
    assert killed.returncode == -9, f"the driver was not SIGKILLed:\n{killed.out}"
    assert (run.home / f"crash-killed-{case.kill.replace(':', '-')}").exists()
    assert resumed.returncode == 0, resumed.out
    start = json.loads(next(line for line in resumed.out.splitlines()
                            if line.startswith('{"start"')))
    if case.when != "after":  # the step's effects were done, its state change was not
        assert start["start"] == case.state, resumed.out
    if case.takeover:  # another holder: it waited for the dead one's lease to expire
        assert "lease held by first" in resumed.out, resumed.out

    store = _inspect(run.home)
    _check_consistent(store)

    reference = runs.references[case.scenario].result()
    assert reference.returncode == 0, reference.out
    expected = _inspect(_home_of(runs, case.scenario))
    # Each cycle's challenger here and in the reference. A training step redone after a
    # kill reuses its version (the pipeline's steps are cached), except when the kill came
    # inside the fit step after it registered its version and before the step was recorded
    # as done: the redone step registers another version, and the first is left behind,
    # untagged, never served (see the module's note).
    ours, theirs = _challengers(store), _challengers(expected)
    assert len(ours) == len(theirs)
    mapping = dict(zip(ours, theirs, strict=True))
    orphans = set(store.versions) - set(mapping) - (set(expected.versions) - set(theirs))
    if case.kill != f"{TRAINING}:during":
        assert mapping == {v: v for v in theirs} and not orphans, (mapping, orphans)
    for orphan in orphans:
        assert store.versions[orphan] == {}, store.versions[orphan]
        assert f"{MODEL}/{orphan}" not in json.dumps(store.revisions)
        assert all(orphan not in move for move in store.alias_moves)
    # The same story as without the crash: the same steps with the same numbers at the same
    # (simulated) times, the same champion, no plan revision or alias move made twice.
    assert _renumber(_timeline(store.events), mapping) == _renumber(
        _timeline(expected.events), {})
    assert mapping.get(store.champion, store.champion) == expected.champion
    assert _renumber(store.revisions, mapping) == _renumber(expected.revisions, {})
    assert [tuple(mapping.get(v, v) for v in move) for move in store.alias_moves] == \
        expected.alias_moves
    assert {mapping.get(v, v): t.get(STATUS_TAG) for v, t in store.versions.items()
            if v not in orphans} == \
        {v: t.get(STATUS_TAG) for v, t in expected.versions.items()}


def _challengers(store: Store) -> list[int]:
    return [e.evidence["version"] for e in store.events if e.kind == "retrained"]


def _renumber(value: Any, mapping: dict[int, int]) -> str:
    """``value`` as JSON, with the model versions in ``mapping`` (``v3``, ``MODEL/3``)
    renamed."""
    def rename(match: re.Match[str]) -> str:
        number = int(match.group(2))
        return f"{match.group(1)}{mapping.get(number, number)}"

    return re.sub(rf"(\bv|\b{MODEL}/)(\d+)\b", rename, json.dumps(value, sort_keys=True))
