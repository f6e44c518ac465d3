"""The policies behind the registry aliases the experiment's arms serve, kept current by polling.

Each alias (``champion``, ``challenger``, ...) of ``register.policy_model`` resolves to a
registered version; that version's policy folder (the ``policy`` artifact of the pyfunc model
the register stage logged) is downloaded through MLflow and loaded as the raw torch model and
vocabulary, because serving needs sampling and slot probabilities, not the pyfunc's greedy
``predict``. A poll every ``serve.poll_seconds`` moves an alias to its new version without a
restart: the new version is loaded beside the old one and swapped in one assignment, so a
batch always decodes with one consistent policy. A failed load keeps the old version serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.policy.vocab import ItemVocab
from components.registry import client as registry
from components.sampler.sampling import Sampler

log = logging.getLogger("encore.serve.policies")


@dataclass(frozen=True)
class LoadedPolicy:
    """One registered policy version, ready to decode."""

    version: int
    model: Any
    vocab: ItemVocab
    sampler: Sampler  # decodes and samples slates as the service serves them
    ranker: Any = None  # the reward model in the policy's ranker/ (serve.decoding: rank), else None


def load_policy(path, version: int, rank: bool = False) -> LoadedPolicy:
    """A policy folder (model, tokenizer, ``item_vocab.json``) as a :class:`LoadedPolicy` on the CPU;
    with ``rank``, also the reward model it carries in ``ranker/`` (none: it is served sampled, and
    the service says so)."""
    from components.policy.model import RANKER_DIR, load
    from components.reward.model import RewardModel

    path = Path(path)
    model, _, vocab = load(path, device="cpu")
    ranker = None
    if rank:
        if (path / RANKER_DIR).is_dir():
            ranker = RewardModel.load(path / RANKER_DIR, device="cpu")
        else:
            log.warning(
                "policy carries no ranker: served sampled",
                extra={"version": version, "missing": str(path / RANKER_DIR)},
            )
    return LoadedPolicy(
        version=version, model=model, vocab=vocab, sampler=Sampler.of(model, vocab), ranker=ranker
    )


class AliasWatcher:
    """``alias -> LoadedPolicy`` for the aliases the arms serve, refreshed every ``poll_seconds``.

    ``on_change(alias, old_version, new_version)`` is called after a swap (metrics, logs)."""

    def __init__(
        self,
        client: Any,
        model_name: str,
        aliases: list[str],
        poll_seconds: float,
        check: Callable[[LoadedPolicy], None] = lambda p: None,
        on_change: Callable[[str, int | None, int], None] = lambda a, old, new: None,
        rank: bool = False,
    ):
        self.client, self.model_name = client, model_name
        self.aliases = list(dict.fromkeys(aliases))
        self.poll_seconds, self.check, self.on_change = poll_seconds, check, on_change
        self.rank = rank  # load each version's ranker/ too (serve.decoding: rank)
        self.current: dict[str, LoadedPolicy] = {}
        self.problems: dict[str, str] = {}  # alias -> why it is not (or not newly) loaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, alias: str) -> LoadedPolicy | None:
        return self.current.get(alias)

    def ready(self) -> bool:
        return all(a in self.current for a in self.aliases)

    def refresh(self) -> None:
        """Resolve every alias once; load what moved (a version two aliases share loads once)."""
        by_version = {p.version: p for p in self.current.values()}
        for alias in self.aliases:
            try:
                found = registry.version_by_alias(self.client, self.model_name, alias)
                if found is None:
                    self._problem(alias, f"models:/{self.model_name}@{alias} does not exist (yet)")
                    continue
                version = int(found.version)
                old = self.current.get(alias)
                if old is not None and old.version == version:
                    self.problems.pop(alias, None)
                    continue
                policy = by_version.get(version) or self._load(version)
                by_version[version] = policy
                self.current = {**self.current, alias: policy}  # one assignment: readers see old or new
                self.problems.pop(alias, None)
                log.info(
                    "alias loaded",
                    extra={"alias": alias, "version": version, "previous": old and old.version},
                )
                self.on_change(alias, old and old.version, version)
            except Exception as exc:  # noqa: BLE001 - keep serving the old version, say why
                self._problem(alias, f"{type(exc).__name__}: {exc}")

    def _load(self, version: int) -> LoadedPolicy:
        path = registry.downloaded_policy(self.client, self.model_name, str(version))
        policy = load_policy(path, version, rank=self.rank)
        self.check(policy)
        return policy

    def _problem(self, alias: str, why: str) -> None:
        if self.problems.get(alias) != why:
            log.warning("alias not loaded", extra={"alias": alias, "reason": why})
        self.problems[alias] = why

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alias-watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
