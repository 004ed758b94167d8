"""The facts of each step of one make, as the rebuilder decides on them (uptodate/rebuilder.py):
content hashes, taken once per make (in a chain, one step's output is the next one's input),
params and permanences with their secrets concealed, and whether a step's code changed while
it ran. The step lifecycle (step.py) and the run cache's lookahead (step_cache.py) ask here;
neither asks the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tipi.planning import Plan, absolute
from tipi.redact import conceal, secret_values
from tipi.uptodate.rebuilder import Decision, StepFacts, decide

if TYPE_CHECKING:
    from tipi.state.layout import Layout
    from tipi.state.stores import State

RAN_OR_RESTORED = ("ran", "restored")


class FactReader:
    """Each step's facts in one make, and the rebuilder's decision on them.

    Args:
        forced: the steps forced from the command line (`-f`).
        outcomes: the make's outcomes so far (read live: a step's inputs are pending while
            the step that makes them would run, remade once it ran or was restored).
    """

    def __init__(
        self,
        plan: Plan,
        state: State,
        layout: Layout,
        forced: frozenset[str],
        outcomes: Mapping[str, str],
    ) -> None:
        self.plan = plan
        self.state = state
        self.layout = layout
        self.root = layout.root
        self.forced = forced
        self.outcomes = outcomes
        self._known: dict[str, str | None] = {}
        # Caches and records keep a digest of a secret, never its value (tipi.redact).
        self.secrets = secret_values()
        self.configs = {
            k: conceal(v, self.secrets) for k, v in plan.permanences.items() if v is not None
        }

    def decide(self, name: str) -> tuple[Decision, StepFacts]:
        """The rebuilder's decision on `name` as things are now, and the facts it read."""
        facts = self.facts(name)
        return decide(facts, self.state.traces.get(self.layout.key(name))), facts

    def facts(self, name: str) -> StepFacts:
        step = self.plan.steps[name]
        pending: dict[str, str] = {}
        remade: dict[str, str] = {}
        inputs = {}
        for path in step.inputs.values():
            producer = self.plan.producers.get(path)
            outcome = self.outcomes.get(producer) if producer is not None else None
            if outcome == "would run":
                pending[path] = producer  # type: ignore[assignment]
                inputs[path] = None
                continue
            if outcome in RAN_OR_RESTORED:
                remade[path] = producer  # type: ignore[assignment]
            inputs[path] = self.hash(path)
        forced = name in self.forced or step.force
        params, inert = step.params, {}
        if step.inert:  # they name loggers and the like: kept, but out of the fingerprint
            inert = {k: params[k] for k in step.inert if k in params}
            params = {k: v for k, v in params.items() if k not in inert}
        return StepFacts(
            name=name,
            type=step.type,
            code=step.code,
            params=conceal(params, self.secrets),
            inert=conceal(inert, self.secrets) if inert else inert,
            inputs=inputs,
            outputs={p: self.hash(p) for p in step.outputs.values()},
            permanences=self.configs,
            pending=pending,
            remade=remade,
            forced=forced,
            volatile=step.volatile,
            force_reason="force = true" if step.force and name not in self.forced else "",
            environment=self.plan.environments.get(step.env, {}),
            rerun_on_env=self.plan.rerun_on_env,
            codes=self.state.codes,
            input_names=dict(step.inputs),
        )

    def hash(self, path: str) -> str | None:
        """The content hash of a project path, once per make: in a chain, one step's output
        is the next one's input. `rehash` refreshes it after a step rewrote the file."""
        try:
            return self._known[path]
        except KeyError:
            return self.rehash(path)

    def rehash(self, path: str) -> str | None:
        digest = self._known[path] = self.state.stat.hash_path(absolute(path, self.root))
        return digest

    def forget(self) -> None:
        """Hash every path again: another make may have changed files (it held the lock)."""
        self._known.clear()

    def unchanged(self, paths: Iterable[str]) -> bool:
        """Whether each of `paths` (as the plan spells them) is a file that still holds what
        this make decided on: one edited since (by the user, while a later step ran) must not
        be vouched for by the clean record, which is checked by stat alone."""
        for path in paths:
            full = absolute(path, self.root)
            if path not in self._known or not (os.path.isfile(full) or os.path.isdir(full)):
                return False  # not judged by this make, or gone (a folder's hash is its files')
            if self.state.stat.hash_path(full) != self._known[path]:
                return False
        return True

    def code_moved(self, name: str) -> str | None:
        """A code file of the step (or of a permanence) that changed since the plan: the
        step may have imported it while it ran, so its fingerprint may not describe it."""
        from tipi.config.planned import stat_dep

        files = set(self.plan.code_files.get(self.plan.steps[name].code, ()))
        for config in self.configs.values():
            files.update(self.plan.code_files.get(config.get("code", ""), ()))
        if not files:
            return None
        planned = {d[0]: list(d) for d in self.plan.deps}
        for path in sorted(files):
            if path in planned and stat_dep(path) != planned[path]:
                return path
        return None


def declare_secrets_of(plan: Plan, overrides: tuple[str, ...]) -> None:
    """A failure's text, or a step's output shown, hides the pipeline's secret params too; a
    plan read from its cache was parsed by an earlier make, so they are read (when first
    needed) from the text the plan was made from."""
    from tipi.redact import declare_secrets

    declare_secrets(
        lambda: _secret_params(plan.source, overrides, plan.steps.values()),
        key=("params of", plan.pipeline, plan.source, overrides),  # a later make's replaces it
    )


def _secret_params(source: str, overrides: tuple[str, ...], planned: Iterable[Any]) -> set[str]:
    """The values of secret-named params in the pipeline's text with its `--set` overrides
    (those of permanences that do not affect results, such as loggers, are in no plan), and
    in its planned steps."""
    from tipi.errors import TipiError
    from tipi.redact import secret_params

    found = secret_params([step.params for step in planned])
    try:
        import tomllib

        from tipi.config.loader import apply_overrides

        data = tomllib.loads(source)
        apply_overrides(data, overrides)
    except (ValueError, TipiError):  # it was planned from: an error here is a plan's, not ours
        return found
    return found | secret_params(data)
