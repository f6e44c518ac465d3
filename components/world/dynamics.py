"""The listening world: one vectorised day at a time, for the whole population.

A day: churn draws, activity draws (rising with satisfaction and habits), one or more
slates per active listener from the policy under test, browsing with position bias,
stream/skip/save, organic plays from habits and a little search, then the state moves:
satisfaction follows experienced value, habits build on enjoyed distinct days and decay,
fatigue builds per genre (and, when ``artist_fatigue_gain`` > 0, per artist) and decays. Only
the loop over days is a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.params import SimulateParams
from components.protocol import Contexts, Policy
from components.world.catalogue import Catalogue, Population, make_catalogue, make_population
from components.world.exact import power
from components.world.response import respond
from components.world.rng import poisson_from_uniform, sigmoid, stream
from components.world.state import UserState

SECONDS_PER_DAY = 86_400
MAX_ORGANIC_PER_DAY = 30
MAX_SEARCH_PER_DAY = 8
SOURCE_REC, SOURCE_ORGANIC, SOURCE_SEARCH = 0, 1, 2


@dataclass
class DayEvents:
    """Everything that happened on one day. Times are seconds since the first logged day."""

    day: int
    policy_id: int
    # impressions, one row per (session, position)
    imp_user: np.ndarray
    imp_session: np.ndarray  # index of the session within the day
    imp_position: np.ndarray
    imp_ts: np.ndarray
    imp_track: np.ndarray
    imp_propensity: np.ndarray  # NaN when the policy does not know its propensities
    imp_streamed: np.ndarray
    imp_skipped: np.ndarray
    imp_saved: np.ndarray
    imp_ms: np.ndarray
    # plays (streams only), sorted by (user, ts)
    play_user: np.ndarray
    play_ts: np.ndarray
    play_track: np.ndarray
    play_ms: np.ndarray
    play_source: np.ndarray
    play_value: np.ndarray
    # per-user outcome counters (U,)
    active: np.ndarray
    n_streams: np.ndarray
    n_skips: np.ndarray
    n_saves: np.ndarray
    imp_policy: np.ndarray | None = None  # per impression, when the slates came from several policies

    @property
    def n_impressions(self) -> int:
        return len(self.imp_user)


class World:
    """Catalogue + population (immutable truth) and the mutable per-user state."""

    def __init__(
        self, params: SimulateParams, catalogue: Catalogue, population: Population, state: UserState
    ):
        self.params = params
        self.catalogue = catalogue
        self.population = population
        self.state = state
        self.seed = params.seed  # the A/B runner re-keys its arms' randomness with its own seed
        self._by_artist = catalogue.by_artist()
        self._by_genre = catalogue.by_genre()
        k = params.slate_size
        self.examine_prob = power(1.0 + np.arange(k), -params.dynamics.position_decay)

    @classmethod
    def create(cls, params: SimulateParams) -> "World":
        cat = make_catalogue(params.catalogue, params.seed)
        pop = make_population(params.users, cat, params.seed, params.days)
        state = UserState.fresh(
            pop.n_users,
            cat.n_artists,
            cat.n_genres,
            params.dynamics.history_length,
            artist_fatigue=params.dynamics.artist_fatigue_gain > 0,
        )
        return cls(params, cat, pop, state)

    def clone(self) -> "World":
        """Same catalogue and listeners, independent copy of the state (an A/B arm)."""
        twin = World(self.params, self.catalogue, self.population, self.state.clone())
        twin.seed = self.seed
        return twin

    def live(self, day: int) -> np.ndarray:
        return (~self.state.churned) & (self.population.signup_day <= day)

    def contexts(self, users: np.ndarray, session_index: np.ndarray, day: int) -> Contexts:
        return Contexts(
            user_ids=users,
            session_index=session_index,
            day=day,
            history=self.state.recent(users),
            slate_size=self.params.slate_size,
            n_tracks=self.catalogue.n_tracks,
        )

    # ------------------------------------------------------------------ one day

    def step(self, day: int, policy: Policy) -> DayEvents:
        """Advance the world by one day under ``policy`` and return what happened."""
        P, dyn, st, pop = self.params, self.params.dynamics, self.state, self.population
        U, S, k, seed = pop.n_users, P.max_sessions_per_day, P.slate_size, self.seed

        live = self.live(day)
        hazard = sigmoid(dyn.churn_bias - dyn.churn_satisfaction * st.satisfaction)
        st.churned |= live & (stream(seed, day, "churn").random(U) < hazard)
        live &= ~st.churned

        habit_total = st.habit.sum(axis=1)
        p_active = sigmoid(
            pop.activity + dyn.activity_satisfaction * st.satisfaction + dyn.activity_habit * habit_total
        )
        active = live & (stream(seed, day, "active").random(U) < p_active)
        users = np.flatnonzero(active)

        n_sess = 1 + (stream(seed, day, "sessions").random((U, S - 1)) < dyn.extra_session_prob).sum(axis=1)
        sess_user = np.repeat(users, n_sess[users])
        sess_idx = np.arange(len(sess_user)) - np.repeat(
            np.cumsum(n_sess[users]) - n_sess[users], n_sess[users]
        )
        tod = np.sort(stream(seed, day, "time_of_day").random((U, S)), axis=1)
        sess_ts = day * SECONDS_PER_DAY + tod[sess_user, sess_idx] * (SECONDS_PER_DAY - 3600)

        slates = policy.recommend(self.contexts(sess_user, sess_idx, day))
        tracks = self._checked(slates.tracks, len(sess_user), policy)
        imp = self._browse(day, sess_user, sess_idx, tracks)

        rec = imp["streamed"]
        rec_user = np.broadcast_to(sess_user[:, None], tracks.shape)[rec]
        rec_ts = (sess_ts[:, None] + 180.0 * np.arange(k)[None, :])[rec]
        org = self._organic_and_search(day, users, habit_total)
        play_user = np.concatenate([rec_user, org["user"]])
        play_track = np.concatenate([tracks[rec], org["track"]])
        play_ts = np.concatenate([rec_ts, org["ts"]])
        play_source = np.concatenate([np.full(len(rec_user), SOURCE_REC), org["source"]])
        play_value = np.concatenate([imp["value"][rec], org["value"]])
        play_ms = np.concatenate([imp["ms"][rec], org["ms"]])
        order = np.lexsort((play_ts, play_user))
        play_user, play_track, play_ts = play_user[order], play_track[order], play_ts[order]
        play_source, play_value, play_ms = play_source[order], play_value[order], play_ms[order]

        n_skips = np.bincount(sess_user, weights=imp["skipped"].sum(axis=1), minlength=U)
        self._update_state(live, play_user, play_track, play_value, n_skips)

        props = slates.propensities if slates.propensities is not None else np.full(tracks.shape, np.nan)
        return DayEvents(
            day=day,
            policy_id=policy.policy_id,
            imp_user=np.repeat(sess_user, k),
            imp_session=np.repeat(np.arange(len(sess_user)), k),
            imp_position=np.tile(np.arange(k), len(sess_user)),
            imp_ts=np.repeat(sess_ts, k),
            imp_track=tracks.ravel(),
            imp_propensity=np.asarray(props, np.float64).ravel(),
            imp_policy=None
            if slates.policy_ids is None
            else np.repeat(slates.policy_ids, k).astype(np.int64),
            imp_streamed=imp["streamed"].ravel(),
            imp_skipped=imp["skipped"].ravel(),
            imp_saved=imp["saved"].ravel(),
            imp_ms=imp["ms"].ravel(),
            play_user=play_user,
            play_ts=play_ts,
            play_track=play_track,
            play_ms=play_ms,
            play_source=play_source,
            play_value=play_value,
            active=active,
            n_streams=np.bincount(play_user, minlength=U),
            n_skips=n_skips.astype(np.int64),
            n_saves=np.bincount(sess_user, weights=imp["saved"].sum(axis=1), minlength=U).astype(np.int64),
        )

    def _checked(self, tracks: np.ndarray, n: int, policy: Policy) -> np.ndarray:
        """Refuse malformed slates loudly: a policy bug must not look like a world effect."""
        tracks = np.asarray(tracks)
        k, T = self.params.slate_size, self.catalogue.n_tracks
        name = type(policy).__name__
        if tracks.shape != (n, k):
            raise ValueError(f"{name} returned slates of shape {tracks.shape}, expected {(n, k)}")
        if n and (tracks.min() < 0 or tracks.max() >= T):
            raise ValueError(f"{name} returned track ids outside [0, {T})")
        srt = np.sort(tracks, axis=1)
        if (srt[:, 1:] == srt[:, :-1]).any():
            raise ValueError(f"{name} returned a slate with a repeated track")
        return tracks.astype(np.int64)

    def _browse(self, day: int, users: np.ndarray, sess: np.ndarray, tracks: np.ndarray) -> dict:
        """Examine with position bias; stream, skip or save; how long each track was played."""
        P, dyn, cat = self.params, self.params.dynamics, self.catalogue
        U, S, k, seed = self.population.n_users, P.max_sessions_per_day, P.slate_size, self.seed
        draw = {
            name: stream(seed, day, name).random((U, S, k), dtype=np.float32)[users, sess]
            for name in ("examine", "stream", "save", "listen")
        }
        resp = respond(dyn, cat, self.population, self.state, users, tracks)
        examined = draw["examine"] < self.examine_prob[None, :]
        streamed = examined & (draw["stream"] < resp.p_stream)
        skipped = examined & ~streamed
        saved = streamed & (draw["save"] < sigmoid(dyn.save_bias + dyn.save_value * resp.value))
        dur = cat.duration_ms[tracks]
        frac = sigmoid(resp.value + 2.0 * (draw["listen"] - 0.5))
        ms = np.where(
            streamed, 30_000 + (dur - 30_000) * frac, np.where(skipped, 1_000 + 28_000 * draw["listen"], 0)
        )
        return {
            "streamed": streamed,
            "skipped": skipped,
            "saved": saved,
            "ms": ms.astype(np.int64),
            "value": resp.value,
        }

    def _organic_and_search(self, day: int, users: np.ndarray, habit_total: np.ndarray) -> dict:
        """Plays the listener starts on their own: artists they have a habit for, and search."""
        dyn, cat, pop, st = self.params.dynamics, self.catalogue, self.population, self.state
        U, seed = pop.n_users, self.seed
        n_org = poisson_from_uniform(
            stream(seed, day, "organic_n").random(U)[users],
            dyn.organic_rate * habit_total[users],
            MAX_ORGANIC_PER_DAY,
        )
        n_search = poisson_from_uniform(
            stream(seed, day, "search_n").random(U)[users],
            np.full(len(users), dyn.search_rate),
            MAX_SEARCH_PER_DAY,
        )

        # organic: artist ~ habit strength, then track of that artist ~ popularity
        ou = np.repeat(users, n_org)
        orank = np.arange(len(ou)) - np.repeat(np.cumsum(n_org) - n_org, n_org)
        with_org = users[n_org > 0]
        cum = np.cumsum(st.habit[with_org], axis=1)
        cum = np.arange(len(with_org))[:, None] + cum / np.maximum(cum[:, -1:], 1e-12)
        row = np.repeat(np.arange(len(with_org)), n_org[n_org > 0])
        u_art = stream(seed, day, "organic_artist").random((U, MAX_ORGANIC_PER_DAY))[ou, orank]
        artist = np.searchsorted(cum.ravel(), row + np.clip(u_art, 1e-9, 1 - 1e-9)) - row * cat.n_artists
        artist = np.minimum(artist, cat.n_artists - 1)
        o_track = self._by_artist.draw(
            artist, stream(seed, day, "organic_track").random((U, MAX_ORGANIC_PER_DAY))[ou, orank]
        )

        # search: genre ~ the user's genre mixture, then track of that genre ~ popularity
        su = np.repeat(users, n_search)
        srank = np.arange(len(su)) - np.repeat(np.cumsum(n_search) - n_search, n_search)
        gcum = np.cumsum(pop.genre_weights[su], axis=1)
        u_gen = stream(seed, day, "search_genre").random((U, MAX_SEARCH_PER_DAY))[su, srank]
        genre = np.minimum((gcum < (u_gen * gcum[:, -1])[:, None]).sum(axis=1), cat.n_genres - 1)
        s_track = self._by_genre.draw(
            genre, stream(seed, day, "search_track").random((U, MAX_SEARCH_PER_DAY))[su, srank]
        )

        user = np.concatenate([ou, su])
        track = np.concatenate([o_track, s_track])
        rank = np.concatenate([orank, MAX_ORGANIC_PER_DAY + srank])
        u_time = stream(seed, day, "self_time").random((U, MAX_ORGANIC_PER_DAY + MAX_SEARCH_PER_DAY))[
            user, rank
        ]
        value = respond(dyn, cat, pop, st, user, track[:, None]).value[:, 0]
        frac = sigmoid(value + 2.0 * (u_time - 0.5))
        ms = 30_000 + (cat.duration_ms[track] - 30_000) * frac
        return {
            "user": user,
            "track": track,
            "ts": day * SECONDS_PER_DAY + u_time * (SECONDS_PER_DAY - 600),
            "source": np.concatenate([np.full(len(ou), SOURCE_ORGANIC), np.full(len(su), SOURCE_SEARCH)]),
            "value": value,
            "ms": ms.astype(np.int64),
        }

    def _update_state(
        self, live: np.ndarray, user: np.ndarray, track: np.ndarray, value: np.ndarray, n_skips: np.ndarray
    ) -> None:
        """Satisfaction follows value; habits build on enjoyed days and decay; fatigue per genre."""
        dyn, cat, pop, st = self.params.dynamics, self.catalogue, self.population, self.state
        U, A, G = pop.n_users, cat.n_artists, cat.n_genres
        day_value = np.bincount(user, weights=value, minlength=U) - dyn.skip_cost * n_skips
        s = dyn.satisfaction_decay * st.satisfaction + dyn.satisfaction_gain * day_value
        st.satisfaction = np.where(live, np.clip(s, -5.0, 5.0), st.satisfaction).astype(np.float32)

        st.habit *= np.float32(dyn.habit_decay)
        enjoyed = np.unique(
            user[value > dyn.habit_enjoy_threshold] * A
            + cat.track_artist[track[value > dyn.habit_enjoy_threshold]]
        )
        eu, ea = enjoyed // A, enjoyed % A
        gain = dyn.habit_gain * (1.0 + pop.openness[eu])
        st.habit[eu, ea] += (gain * (1.0 - st.habit[eu, ea])).astype(np.float32)
        np.minimum(st.habit, 1.0, out=st.habit)

        per_genre = np.bincount(user * G + cat.track_genre[track], minlength=U * G).reshape(U, G)
        st.fatigue = (dyn.fatigue_decay * st.fatigue + dyn.fatigue_gain * per_genre).astype(np.float32)
        if st.artist_fatigue.size:
            per_artist = np.bincount(user * A + cat.track_artist[track], minlength=U * A).reshape(U, A)
            st.artist_fatigue = (
                dyn.artist_fatigue_decay * st.artist_fatigue + dyn.artist_fatigue_gain * per_artist
            ).astype(np.float32)
        st.append_history(user, track)
