"""The run cache's part in a step's lifecycle: find an earlier run with the same fingerprint
(here or in a remote cache), put its outputs in place, keep new runs, push them.

With a remote (`--remote`), its traffic runs beside the make (runcache/remote_pool.py): the
steps it may restore are looked up when the make starts, several at once (`prefetch`), and
each kept run is pushed as soon as it is kept; the make waits for the uploads at its end
(`finish`). A remote that fails is told once and not asked again in that make.

It is given what it uses, and never calls the step lifecycle (step.py): the plan, the make's
stores, the reporter, and the rebuilder's decision on a step as things are now (to know
which steps to look up ahead: step_facts.py). Restoring puts the outputs in place; recording
the step is the lifecycle's part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tipi.errors import ProcessFailure, TipiError
from tipi.uptodate.rebuilder import Decision, StepFacts

if TYPE_CHECKING:
    from pathlib import Path

    from tipi.planning import Plan
    from tipi.report import Reporter
    from tipi.runcache.content import CachedRun
    from tipi.runcache.lookahead import Lookahead, Prospect
    from tipi.runcache.remote_pool import Outage, PooledRemote, Relay, Uploads
    from tipi.state.stores import State

Decide = Callable[[str], tuple[Decision, StepFacts]]  # a step's decision as things are now

RESTORE_SLOT = 999  # the staging slot the driver restores cached runs through


class RunCache:
    """Restores and keeps the runs of one make's steps.

    Args:
        state: the make's stores (run cache, staging, stat cache), read when used: a sweep
            gives a variant's make shared ones after this is made.
        decide: the rebuilder's decision on a step, reading only (`prefetch`).
        remote: the remote cache's URL (`--remote`), if any.
        enabled: False with `--no-run-cache`: nothing is looked up or kept.
        dry_run: look up only; nothing is downloaded.
    """

    def __init__(
        self,
        plan: Plan,
        state: State,
        reporter: Reporter,
        decide: Decide,
        *,
        remote: str | None = None,
        enabled: bool = True,
        dry_run: bool = False,
    ) -> None:
        self.plan = plan
        self.state = state
        self.reporter = reporter
        self.decide = decide
        self.enabled = enabled
        self.dry_run = dry_run
        self.kept: list[CachedRun] = []  # the runs this make kept (each pushed when kept)
        self.remote: PooledRemote | None = None
        self.relay: Relay | None = None
        self.outage: Outage | None = None
        self.uploads: Uploads | None = None
        self._lookahead: Lookahead | None = None
        self._index: dict[str, int] = {}
        self._keys: dict[str, tuple[StepFacts, str]] = {}  # name → (facts, run key)
        self._url: str | None = remote or None
        if self._url:
            from tipi.runcache.remote_pool import Outage, Relay
            from tipi.runcache.remote_url import check_url

            check_url(self._url)  # a URL that can never work: refused before any step runs
            self.relay = Relay(reporter.warning)
            self.outage = Outage(self._url, self.relay)

    @property
    def _remote(self) -> PooledRemote | None:
        """The remote while it works, opened when first needed: a make with nothing to
        look up or push (every step up to date, or restored from the local store) never
        imports its client (0.3 s for s3fs)."""
        if self._url is None or self.outage:
            return None
        if self.remote is None:
            from tipi.runcache.remote_pool import PooledRemote, Uploads

            try:
                remote = PooledRemote(self._url, self.relay)  # type: ignore[arg-type]
            except TipiError as exc:  # what check_url cannot see (a chained URL)
                self.outage.declare(exc)  # type: ignore[union-attr]
                return None
            local = self.state.run_cache
            self.uploads = Uploads(remote, local, self.outage, self.relay)  # type: ignore[arg-type]
            self.remote = remote
        return self.remote

    def prefetch(self, order: Sequence[str]) -> None:
        """Look up on the remote, at once and several at a time, every step of `order` that
        may be restored: one that must run now, or one after such a step (asked as soon as
        the remote has the step before it: runcache/lookahead.py). Reads only."""
        if self._url is None or self.outage or not self.enabled:
            return
        from tipi.runcache.lookahead import Lookahead

        try:
            prospects = list(self._prospects(order))
        except TipiError:  # the step's own turn reports it
            return
        remote = self._remote if prospects else None  # nothing to ask: not even opened
        if remote is None:
            return
        self._index = {name: i for i, name in enumerate(order)}
        self._lookahead = Lookahead(
            remote,
            self.plan.permanences,
            self.state.run_cache,
            self.relay,  # type: ignore[arg-type]
            download=not self.dry_run,
        )
        remote.expect(len(prospects))  # many: one listing of the remote answers all
        self._lookahead.start(prospects)

    def _prospects(self, order: Sequence[str]) -> Iterator[Prospect]:
        """The steps of `order` that may be restored, as known now (`decide` only reads; a
        step's own turn decides again)."""
        from tipi.runcache.lookahead import Prospect

        plan, dry = self.plan, self.dry_run
        remade: set[str] = set()  # paths a step of this make before may (re)make
        for index, name in enumerate(order):
            step = plan.steps[name]
            upstream = frozenset(p for p in step.inputs.values() if p in remade)
            decision, facts = self.decide(name)
            if not upstream and not decision.run:
                continue
            remade.update(step.outputs.values())
            # A forced step runs: what it makes is unknown. A dry run looks up the steps
            # after one that would run with unknown inputs: a guess would not be its key.
            if facts.forced or facts.volatile or (upstream and dry):
                continue
            yield Prospect(name, index, _keyed(self, facts), facts.inputs, upstream, step.outputs)

    def lookup(self, name: str, facts: StepFacts, fetch: bool = True) -> CachedRun | None:
        """An earlier successful run with this fingerprint, from the run cache (or the
        remote one, copied here unless `fetch` is false: a dry run only says what it would
        restore); None for steps that must run (forced, volatile)."""
        if self._lookahead is not None and name in self._index:
            self._lookahead.reached(self._index[name])
        if facts.forced or facts.volatile or not self.enabled:
            return None
        key = self._key_of(name, facts)
        names = self.plan.steps[name].outputs
        record = self.state.run_cache.lookup(key, self.plan.permanences, names)
        remote = self._remote if record is None else None
        if remote is not None:
            from tipi.runcache.record import CorruptCache

            try:
                if not fetch:
                    record = remote.find(key, self.plan.permanences, names)
                else:
                    record = remote.fetch(key, self.plan.permanences, self.state.run_cache, names)
            except CorruptCache as exc:  # that run's files: the step runs instead
                self.reporter.warning(f"remote cache {remote.url}: {exc}")
            except OSError as exc:  # RemoteUnavailable, or a failure it did not say
                self.outage.declare(exc)  # type: ignore[union-attr]
        if self.relay is not None:
            self.relay.flush()
        return record

    def key(self, facts: StepFacts) -> str:
        """Inputs enter by name and content, not path: a sweep variant reads its inputs from
        its own folder, and a run with the same content elsewhere is the same run."""
        from tipi.runcache.content import run_key

        step = self.plan.steps[facts.name]
        named = {k: facts.inputs.get(p) for k, p in step.inputs.items()}
        params = facts.params
        if facts.rerun_on_env:  # then a run of another environment is another result
            params = {**params, "(environment)": dict(facts.environment)}
        return run_key(facts.type, facts.code, params, named, step.outputs)

    def _key_of(self, name: str, facts: StepFacts, last: bool = False) -> str:
        """`key(facts)`, computed once for the facts a step's lookup and keep share (`last`:
        the keep, after which the facts are not held any longer)."""
        known = self._keys.pop(name, None) if last else self._keys.get(name)
        if known is not None and known[0] is facts:
            return known[1]
        key = self.key(facts)
        if not last:
            self._keys[name] = (facts, key)
        return key

    def restore(self, name: str, record: CachedRun, outputs: dict[str, Path]) -> bool:
        """Put an earlier run's outputs in place (at `outputs`, the step's own paths)
        instead of running the step; False when that failed and the step must run."""
        staging = self.state.staging
        staged, _ = staging.prepare(name, outputs, slot=RESTORE_SLOT)
        try:
            self.state.run_cache.restore(record, staged)
            staging.commit(name, staged, outputs)
        except (OSError, ProcessFailure) as exc:
            self.reporter.warning(f"could not restore '{name}' from the run cache: {exc}")
            return False
        finally:
            staging.discard(staged)
        return True

    def keep(
        self, name: str, facts: StepFacts, configs: dict, seconds: float, outputs: dict[str, Path]
    ) -> None:
        """Put a successful run's outputs (at `outputs`) in the run cache (a failure here
        is a warning)."""
        try:
            record = self.state.run_cache.save(
                self._key_of(name, facts, last=True),
                name,
                configs,
                outputs,
                lambda path: self.state.stat.hash_path(path),
                seconds,
            )
        except OSError as exc:
            self.reporter.warning(f"could not keep the outputs of '{name}' in the run cache: {exc}")
            return
        self.kept.append(record)
        if self._remote is not None and self.uploads is not None:
            self.uploads.submit(record)  # pushed while the next steps run
            self.relay.flush()  # type: ignore[union-attr]

    def finish(self, push: bool = True) -> None:
        """End the make's remote traffic: drop the lookups nobody needs and (with `push`)
        wait for the uploads of the runs this make kept, then say what they sent."""
        if self.remote is None or self.uploads is None or self.relay is None:
            return
        self.remote.stop_asking()
        if not push:
            self.uploads.close()
            self.relay.flush()
            return
        sent = self.uploads.wait(self.reporter.notice, self.relay.flush)
        self.relay.flush()
        if sent.records:
            self.reporter.notice(
                f"pushed {sent.records} run(s), {sent.objects} file(s) to {self.remote.url}"
            )


def _keyed(cache: RunCache, facts: StepFacts) -> Callable[[Mapping[str, str | None]], str]:
    """The run key of `facts` with its inputs' hashes replaced (a Prospect's `key`)."""

    def key(inputs: Mapping[str, str | None]) -> str:
        return cache.key(replace(facts, inputs=dict(inputs)))

    return key


def restorable(record: CachedRun) -> str:
    """The reason a restored step shows."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.finished))
    took = f"{record.seconds:.1f}s"
    return f"restored from the run cache: same fingerprint as a run of {when} ({took})"
