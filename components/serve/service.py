"""The serving process's state and its batch path: store, policies, batcher, logs, metrics.

:class:`Service` owns everything that lives as long as the process: the Feast online store,
the alias watcher, the micro-batcher's worker, the two log writers and the Prometheus
metrics. :meth:`Service.serve_batch` is what the worker runs for each micro-batch: assign
arms, read the listeners' features in one online-store call, decode each policy's share of
the batch in one forward pass per slot, log the rows, answer every request.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.errors import EncoreError
from components.params import Params
from components.policy.decoding import slot_probabilities
from components.sampler.ranked import rank_slates
from components.sampler.sampling import SampledSlates
from components.serve import core
from components.serve.batcher import MicroBatcher
from components.serve.logbook import FEEDBACK, IMPRESSIONS, PartWriter
from components.serve.policies import AliasWatcher, LoadedPolicy
from components.serve.ranking import SCORED_VIEWS, online_scorer, ranker_features, view_refs

log = logging.getLogger("encore.serve")
POLICY_SERVICE = "policy"  # the Feast feature service of the policy's prompt (featurestore.definitions)


class NotReady(RuntimeError):
    """The arm's alias has no loaded policy (yet): the request gets a 503."""


@dataclass(frozen=True)
class SlateRequest:
    """What the batch path needs of a validated request."""

    user_id: int
    history: list[int] | None


class Metrics:
    """Prometheus metrics (own registry: one service per process, several in a test)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        ms = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
        self.latency = Histogram(
            "encore_serve_request_seconds", "request latency", ["endpoint"], buckets=ms, registry=r
        )
        self.slates = Counter("encore_serve_slates", "slates served", ["arm", "alias"], registry=r)
        self.cold = Counter(
            "encore_serve_cold_starts", "slates for listeners the store did not know", registry=r
        )
        self.errors = Counter("encore_serve_errors", "requests answered with an error", ["kind"], registry=r)
        self.feedback = Counter("encore_serve_feedback", "feedback events recorded", registry=r)
        self.batch = Histogram(
            "encore_serve_batch_size",
            "requests per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.decode = Histogram(
            "encore_serve_batch_seconds", "features + decoding per batch", buckets=ms, registry=r
        )
        self.version = Gauge(
            "encore_serve_policy_version", "registered version per alias", ["alias"], registry=r
        )
        self.reloads = Counter("encore_serve_policy_reloads", "alias moves picked up", ["alias"], registry=r)
        self.logged = Counter(
            "encore_serve_log_rows_written", "rows written to log parts", ["table"], registry=r
        )


class Service:
    """Everything :mod:`components.serve.app` serves from (see the module docstring)."""

    def __init__(self, params: Params, features_dir: Path, log_dir: Path, tracking_uri: str):
        self.params, self.sp = params, params.serve
        self.features_dir, self.log_dir, self.tracking_uri = Path(features_dir), Path(log_dir), tracking_uri
        self.metrics = Metrics()
        self.generator = torch.Generator().manual_seed(secrets.randbits(63))
        self.store: Any = None
        self.feature_service: Any = None
        self.watcher: AliasWatcher | None = None
        self.batcher: MicroBatcher | None = None
        lp = self.sp.log
        self.impressions = PartWriter(
            self.log_dir / "impressions",
            IMPRESSIONS,
            lp.flush_rows,
            lp.flush_seconds,
            on_write=self.metrics.logged.labels("impressions").inc,
        )
        self.feedback = PartWriter(
            self.log_dir / "feedback",
            FEEDBACK,
            lp.flush_rows,
            lp.flush_seconds,
            on_write=self.metrics.logged.labels("feedback").inc,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop) -> None:
        """Open the store and the registry, load the aliases, start the worker threads."""
        from components.featurestore.store import open_store, repo_config
        from components.registry.client import connect

        torch.set_num_threads(self.sp.torch_threads)
        self.store = open_store(repo_config(self.params.features, self.features_dir / "feast"))
        self.feature_service = self.store.get_feature_service(POLICY_SERVICE)
        self.served_features = {
            f.name for p in self.feature_service.feature_view_projections for f in p.features
        }
        self.watcher = AliasWatcher(
            connect(self.tracking_uri),
            self.params.register_.policy_model,
            [a.alias for a in self.sp.experiment.arms],
            self.sp.poll_seconds,
            check=self._check,
            on_change=self._moved,
            rank=self.sp.decoding == "rank",
        )
        self.watcher.refresh()
        self.watcher.start()
        b = self.sp.batch
        self.batcher = MicroBatcher(
            self.serve_batch,
            b.max_size,
            b.max_wait_ms / 1000,
            b.max_queue,
            on_batch=self.metrics.batch.observe,
        )
        self.batcher.start(loop)
        self.impressions.start()
        self.feedback.start()
        log.info(
            "serving",
            extra={
                "model": self.params.register_.policy_model,
                "aliases": {a: p.version for a, p in self.watcher.current.items()},
                "store": self.params.features.store,
                "decoding": self.sp.decoding,
                "log_dir": str(self.log_dir),
            },
        )

    def stop(self) -> None:
        """Decode what is queued, stop polling, write every buffered row (graceful shutdown)."""
        if self.batcher is not None:
            self.batcher.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.impressions.close()
        self.feedback.close()
        log.info("stopped: every served row written", extra={"log_dir": str(self.log_dir)})

    def readiness(self) -> tuple[bool, dict]:
        if self.watcher is None:
            return False, {"problems": {"startup": "not started"}}
        versions = {a: p.version for a, p in self.watcher.current.items()}
        return self.watcher.ready(), {"aliases": versions, "problems": dict(self.watcher.problems)}

    @cached_property
    def ranker_views(self) -> dict[str, list[str]]:
        """The online store's feature refs for a ranker, per view (resolved once, on first use)."""
        return view_refs(self.store)

    def _check(self, policy: LoadedPolicy) -> None:
        missing = sorted(set(policy.vocab.features) - self.served_features)
        if missing:
            raise EncoreError(
                f"version {policy.version} reads prompt features {missing} that the Feast feature "
                f"service '{POLICY_SERVICE}' does not serve"
            )
        if policy.ranker is not None:
            served = {ref.split(":", 1)[1] for refs in self.ranker_views.values() for ref in refs}
            missing = sorted(ranker_features(policy.ranker) - served)
            if missing:
                raise EncoreError(
                    f"version {policy.version}'s ranker (ranker/) reads features {missing} that the "
                    f"online store's views {list(SCORED_VIEWS)} do not serve"
                )

    def _moved(self, alias: str, old: int | None, new: int) -> None:
        self.metrics.version.labels(alias).set(new)
        if old is not None:
            self.metrics.reloads.labels(alias).inc()

    # ------------------------------------------------------------------ the batch path

    def features(self, user_ids: list[int]) -> dict[str, list]:
        """The policy feature service's online values for ``user_ids`` (None where unknown).

        Calls Feast's ``get_online_features`` with the service resolved once at start-up:
        resolving it per call (``featurestore.store.online``) costs ~8 ms, the read itself ~1."""
        rows = [{"user_id": u} for u in user_ids]
        return self.store.get_online_features(features=self.feature_service, entity_rows=rows).to_dict()

    def serve_batch(self, requests: list[SlateRequest]) -> list[dict | Exception]:
        """Answer a micro-batch (the batcher's worker thread): one response dict per request."""
        t0 = time.perf_counter()
        exp = self.sp.experiment
        arms = [core.assign_arm(r.user_id, exp) for r in requests]
        current = self.watcher.current  # one snapshot for the whole batch
        policies = [current.get(exp.arms[a].alias) for a in arms]
        out: list[dict | Exception] = [
            NotReady(f"models:/{self.params.register_.policy_model}@{exp.arms[a].alias} is not loaded")
            for a in arms
        ]
        todo = [i for i, p in enumerate(policies) if p is not None]
        if not todo:
            return out
        values = self.features([requests[i].user_id for i in todo])
        row_of = {i: j for j, i in enumerate(todo)}
        ts_us = time.time_ns() // 1000
        for version in sorted({policies[i].version for i in todo}):
            idx = [i for i in todo if policies[i].version == version]
            self._decode(requests, idx, arms, policies[idx[0]], values, row_of, ts_us, out)
        self.metrics.decode.observe(time.perf_counter() - t0)
        return out

    def _decode(self, requests, idx, arms, policy: LoadedPolicy, values, row_of, ts_us, out) -> None:
        sp, exp = self.sp, self.sp.experiment
        cols = [*policy.vocab.features, "recent_tracks"]
        sub = {c: [values[c][row_of[i]] for i in idx] for c in cols if c in values}
        histories = [requests[i].history for i in idx]
        prompts, cold = core.prompts(policy.vocab, sub, histories)
        if policy.ranker is not None:  # serve.decoding: rank, and this version carries a ranker
            users = np.array([requests[i].user_id for i in idx], dtype=np.int64)
            recent = core.request_histories(sub, histories, policy.vocab.history_length)
            slates = self._ranked(policy, prompts, users, recent, ts_us)
        else:
            slates = policy.sampler.sample(prompts, sp.temperature, sp.epsilon, self.generator)
        tracks = policy.sampler.to_track(slates.tokens)
        served = core.Served(
            request_ids=[uuid.uuid4().hex for _ in idx],
            user_ids=np.array([requests[i].user_id for i in idx], dtype=np.int64),
            ts_us=ts_us,
            arm=[exp.arms[arms[i]].name for i in idx],
            alias=[exp.arms[arms[i]].alias for i in idx],
            version=np.full(len(idx), policy.version),
            policy_id=np.array([core.policy_id(exp.id, arms[i], policy.version) for i in idx]),
            cold_start=cold,
        )
        self.impressions.append(
            core.impression_rows(served, tracks, slates, exp.id, sp.temperature, sp.epsilon)
        )
        served_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_us / 1e6)) + f".{ts_us % 10**6:06d}Z"
        for j, i in enumerate(idx):
            self.metrics.slates.labels(served.arm[j], served.alias[j]).inc()
            if cold[j]:
                self.metrics.cold.inc()
            out[i] = {
                "request_id": served.request_ids[j],
                "user_id": requests[i].user_id,
                "tracks": tracks[j].tolist(),
                "propensities": slates.propensity[j].tolist(),
                "arm": served.arm[j],
                "alias": served.alias[j],
                "policy_version": policy.version,
                "policy_id": int(served.policy_id[j]),
                "experiment_id": exp.id,
                "cold_start": bool(cold[j]),
                "served_at": served_at,
            }

    def _ranked(self, policy: LoadedPolicy, prompts, users, recent, ts_us: int) -> SampledSlates:
        """Generate-then-rank (``serve.decoding: rank``): ``rank_draws`` sampled slates ranked by the
        policy's reward model on online features, with the Monte-Carlo propensity of every slot
        and the policy's own probability of it (what ``policy_probability`` logs)."""
        sp = self.sp
        now = datetime.fromtimestamp(ts_us / 1e6, tz=timezone.utc)
        score = online_scorer(policy.ranker, self.store, users, recent, now, self.ranker_views)
        ranked = rank_slates(
            policy.sampler,
            prompts,
            score,
            sp.rank_draws,
            sp.temperature,
            sp.epsilon,
            self.generator,
            propensity_draws=sp.rank_propensity_draws,
        )
        tracks = policy.sampler.to_track(ranked.tokens)
        alone = slot_probabilities(
            policy.model, policy.vocab, prompts, tracks, temperature=sp.temperature or None
        )  # T 0: the argmax
        return SampledSlates(
            tokens=ranked.tokens,
            propensity=ranked.propensity,
            policy_probability=alone,
            explored=ranked.explored,
        )

    def record_feedback(self, request_id: str, position: int, outcome: dict) -> None:
        """Buffer one feedback event (joined to its impression when the parts are exported)."""
        self.feedback.append(
            {
                "request_id": [request_id],
                "position": [position],
                "ts": [time.time_ns() // 1000],
                **{k: [v] for k, v in outcome.items()},
            }
        )
        self.metrics.feedback.inc()
