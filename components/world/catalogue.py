"""The catalogue (genres -> artists -> tracks) and the listener population, with their truth.

Everything here is *hidden truth* except the few fields the raw-log contract exposes
(ids, genre, duration, release date, signup date, country, age bucket). Only
``components.world`` and the evaluation code may read the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.params import CatalogueParams, PopulationParams
from components.world.exact import exp, log, unit_on_grid
from components.world.rng import stream

COUNTRIES = ("SE", "US", "GB", "DE", "BR", "MX", "JP", "FR", "IN", "AU")
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")


def _unit(x: np.ndarray) -> np.ndarray:
    """Unit rows on the exact-dot grid (see ``components.world.exact``)."""
    return unit_on_grid(x)


def _correlated_pairs(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    """(n, 2) standard normal pairs with correlation ``rho``, by the explicit Cholesky factor.

    ``Generator.multivariate_normal`` factors the covariance with LAPACK, whose kernels differ
    by CPU in the last bits; the factor of ``[[1, rho], [rho, 1]]`` needs only a square root.
    """
    z = rng.normal(size=(n, 2))
    return np.stack([z[:, 0], rho * z[:, 0] + np.sqrt(1.0 - rho * rho) * z[:, 1]], axis=1)


class SegmentSampler:
    """Draw an item from a chosen segment (an artist, a genre) with given item weights.

    Items are sorted by segment once; each segment's cumulative weights are shifted by the
    segment number, so one ``searchsorted`` serves any number of draws from any segments.
    """

    def __init__(self, segment_of_item: np.ndarray, weight: np.ndarray):
        self.order = np.argsort(segment_of_item, kind="stable")
        seg = segment_of_item[self.order]
        w = weight[self.order].astype(np.float64)
        totals = np.bincount(seg, weights=w)
        cum = np.cumsum(w)
        starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
        self.cum = seg + (cum - starts[seg]) / totals[seg]

    def draw(self, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Item ids, one per (segment, uniform) pair."""
        pos = np.searchsorted(self.cum, segment + np.clip(u, 1e-9, 1 - 1e-9), side="left")
        return self.order[np.minimum(pos, len(self.order) - 1)]


@dataclass(frozen=True)
class Catalogue:
    """Genres, artists and tracks. Vectors are unit-norm float32 in the taste space."""

    genre_centres: np.ndarray  # (G, D)
    artist_genre: np.ndarray  # (A,)
    artist_vec: np.ndarray  # (A, D)
    track_artist: np.ndarray  # (T,)
    track_genre: np.ndarray  # (T,)
    track_vec: np.ndarray  # (T, D)
    log_popularity: np.ndarray  # (T,) standardised log popularity
    catchiness: np.ndarray  # (T,) immediate appeal, standardised
    depth: np.ndarray  # (T,) lasting value, standardised
    duration_ms: np.ndarray  # (T,)
    release_day: np.ndarray  # (T,) days relative to the first logged day (negative = before)

    @property
    def n_tracks(self) -> int:
        return len(self.track_artist)

    @property
    def n_artists(self) -> int:
        return len(self.artist_genre)

    @property
    def n_genres(self) -> int:
        return len(self.genre_centres)

    def artist_depth(self) -> np.ndarray:
        """(A,) mean depth of each artist's tracks."""
        return (
            np.bincount(self.track_artist, weights=self.depth, minlength=self.n_artists)
            / np.maximum(np.bincount(self.track_artist, minlength=self.n_artists), 1)
        ).astype(np.float32)

    def by_artist(self) -> SegmentSampler:
        """Tracks of an artist, drawn by popularity (organic listening)."""
        return SegmentSampler(self.track_artist, exp(self.log_popularity))

    def by_genre(self) -> SegmentSampler:
        """Tracks of a genre, drawn by popularity (search listening)."""
        return SegmentSampler(self.track_genre, exp(self.log_popularity))


@dataclass(frozen=True)
class Population:
    """Listeners' latent tastes and traits."""

    taste: np.ndarray  # (U, D) unit-norm float32
    genre_weights: np.ndarray  # (U, G) mixture over genres
    activity: np.ndarray  # (U,) logit of base daily activity
    openness: np.ndarray  # (U,) in (0, 1): speeds up habit formation with new artists
    signup_day: np.ndarray  # (U,) days relative to the first logged day
    country: np.ndarray  # (U,) index into COUNTRIES
    age_bucket: np.ndarray  # (U,) index into AGE_BUCKETS

    @property
    def n_users(self) -> int:
        return len(self.activity)


def make_catalogue(p: CatalogueParams, seed: int) -> Catalogue:
    """Draw a catalogue: genre centres, artists around them, tracks around their artist."""
    rng = stream(seed, 0, "catalogue")
    G, A, T, D = p.n_genres, p.n_artists, p.n_tracks, p.latent_dim
    centres = _unit(rng.normal(size=(G, D)))
    # Every genre gets an artist and every artist a track; the rest are assigned with a
    # heavy tail so a few artists have big catalogues.
    artist_genre = np.concatenate([np.arange(G), rng.integers(0, G, size=A - G)])
    artist_vec = _unit(centres[artist_genre] + p.artist_spread * rng.normal(size=(A, D)) / np.sqrt(D))
    artist_share = rng.pareto(1.5, size=A) + 1.0
    extra = rng.choice(A, size=T - A, p=artist_share / artist_share.sum())
    track_artist = np.concatenate([np.arange(A), extra])
    track_vec = _unit(artist_vec[track_artist] + p.track_spread * rng.normal(size=(T, D)) / np.sqrt(D))

    log_pop = p.artist_popularity_sigma * rng.normal(size=A)[
        track_artist
    ] + p.track_popularity_sigma * rng.normal(size=T)
    log_pop = (log_pop - log_pop.mean()) / (log_pop.std() + 1e-9)

    # Catchiness and depth share an artist component and are mildly anti-correlated.
    rho = p.catchiness_depth_corr
    artist_cd = _correlated_pairs(rng, rho, A)
    track_cd = _correlated_pairs(rng, rho, T)
    cd = 0.6 * artist_cd[track_artist] + 0.8 * track_cd  # unit variance, same correlation
    duration = np.clip(exp(log(p.mean_duration_s) + 0.3 * rng.normal(size=T)), 60, 900) * 1000
    release = -np.floor(rng.exponential(700.0, size=T)).astype(np.int64) - 1
    return Catalogue(
        genre_centres=centres,
        artist_genre=artist_genre.astype(np.int64),
        artist_vec=artist_vec,
        track_artist=track_artist.astype(np.int64),
        track_genre=artist_genre[track_artist].astype(np.int64),
        track_vec=track_vec,
        log_popularity=log_pop.astype(np.float32),
        catchiness=cd[:, 0].astype(np.float32),
        depth=cd[:, 1].astype(np.float32),
        duration_ms=duration.astype(np.int64),
        release_day=release,
    )


def make_population(p: PopulationParams, catalogue: Catalogue, seed: int, days: int) -> Population:
    """Draw listeners: a sparse genre mixture as taste, base activity, openness, signup day."""
    rng = stream(seed, 0, "population")
    U, G, D = p.n_users, catalogue.n_genres, catalogue.genre_centres.shape[1]
    weights = rng.dirichlet(np.full(G, p.genre_concentration), size=U)
    mixture = np.zeros((U, D))
    for g in range(G):  # a fixed order of IEEE adds, not a BLAS kernel: the same bits on every CPU
        mixture += weights[:, g : g + 1] * catalogue.genre_centres[g]
    taste = _unit(mixture + p.taste_noise * rng.normal(size=(U, D)) / np.sqrt(D))
    is_new = rng.random(U) < p.new_user_fraction
    signup = np.where(
        is_new,
        rng.integers(0, max(1, days // 2), size=U),
        -rng.integers(1, 1500, size=U),
    )
    return Population(
        taste=taste,
        genre_weights=weights.astype(np.float32),
        activity=rng.normal(p.activity_mean, p.activity_sd, size=U).astype(np.float32),
        openness=rng.beta(p.openness_alpha, p.openness_beta, size=U).astype(np.float32),
        signup_day=signup.astype(np.int64),
        country=rng.choice(len(COUNTRIES), size=U, p=_country_mix()).astype(np.int64),
        age_bucket=rng.choice(len(AGE_BUCKETS), size=U, p=[0.05, 0.3, 0.3, 0.17, 0.1, 0.08]),
    )


def _country_mix() -> np.ndarray:
    w = np.array([3, 10, 5, 5, 6, 4, 4, 3, 6, 2], dtype=np.float64)
    return w / w.sum()
