"""Rank-k (CMC), mAP and mINP from a query-gallery distance matrix.

The rules (where they are computed: :func:`_positive_ranks`; :func:`ignored_gallery`)
-------------------------------------------------------------------------------------

For every query, each gallery item is a *positive*, a *negative* or *ignored*:

* ignored: junk (gallery pid -1), and gallery items of the query's pid seen
  by the query's camera (Market-1501's rule: finding the same person in the
  same camera is too easy to count). With ``different_camera_only=True``
  (the EmbAE paper's "-nd" score) every gallery item from the query's camera
  is ignored, whatever its pid.
* positive: same pid, not ignored.
* negative: everything else. Market-1501 distractors (pid 0) are negatives
  simply because no query has pid 0; pid 0 is not special-cased, so a
  dataset whose ids start at 0 is scored correctly.
* camid -1 means "camera unknown" (custom datasets). The same-camera rule
  cannot be applied to such a pair, so a query or gallery camid of -1 is never
  "the same camera": nothing is ignored because of the camera, and for -nd a
  -1 camera is never the query's camera. With unknown cameras, keep the query
  images out of the gallery, or each query finds itself at rank 1.

Ranks are counted after removing the ignored items (as torchreid does), and
ties in distance are broken by gallery order (a stable sort). A query with no
positive left is skipped and counted in ``num_skipped``.

* CMC@k: the fraction of (non-skipped) queries whose first positive is at
  rank <= k.
* AP: the non-interpolated mean, over the positives, of the precision at each
  positive's rank: ``AP = mean_m (m / rank_m)``; mAP is its mean over queries.
* INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and
  Outlook", TPAMI 2021): ``num_positives / rank of the hardest positive``;
  mINP is its mean over queries.

How it is fast
--------------

Every metric depends only on the ranks of the positives (about 15 per query
in Market-1501), and a positive's rank is the number of valid items closer
than it, plus the valid items at the same distance earlier in the gallery,
plus one. Each query's row is sorted once, per camera (float32 sorts are
SIMD-fast and need no index array), and the positives' distances are located
in the sorted rows with ``np.searchsorted``. The per-camera split lets both
the Market rule and the -nd rule be answered from the same sort: -nd drops
the query's own camera block. The few same-id same-camera items the Market
rule ignores are subtracted explicitly; exact ties are resolved from the
unsorted row, which only happens for the rare positives that tie.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.evaluation.metrics")

RULES = ("market", "nd")

# Query rows sorted at a time: 256 x a 16k gallery is 16 MB of float32.
_CHUNK_ROWS = 256


@dataclass
class RankResult:
    """Ranking metrics of one evaluation, as fractions in [0, 1].

    Attributes:
        cmc: float array of length ``max_rank``; ``cmc[k - 1]`` is Rank-k.
        mAP: mean average precision over the non-skipped queries.
        mINP: mean inverse negative penalty over the non-skipped queries.
        num_valid_queries: queries with at least one true match.
        num_skipped: queries without one (not included in any average).
        average_precision: per-query AP, NaN for skipped queries (used to
            pick the worst queries in :func:`~keras_reid.evaluation.metrics.plot_ranked_lists`).

    Example:
        >>> result = rank_metrics(dist, q_pids, g_pids, q_camids, g_camids)
        >>> result.rank(1), result.mAP
        (0.9412, 0.8433)
        >>> print(result)
        Rank-1 94.12%  Rank-5 97.95%  Rank-10 98.69%  mAP 84.33%  mINP 57.10%  (3368 queries)
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped: int
    average_precision: np.ndarray = field(default=None, repr=False)

    def rank(self, k):
        """Rank-k accuracy, ``cmc[k - 1]``."""
        if not 1 <= k <= len(self.cmc):
            raise ReIDError(f"rank {k} is outside the computed CMC (ranks 1..{len(self.cmc)}).")
        return float(self.cmc[k - 1])

    def __str__(self):
        ranks = "  ".join(
            f"Rank-{k} {100 * self.cmc[k - 1]:.2f}%" for k in (1, 5, 10) if k <= len(self.cmc)
        )
        skipped = f", {self.num_skipped} skipped" if self.num_skipped else ""
        return (
            f"{ranks}  mAP {100 * self.mAP:.2f}%  mINP {100 * self.mINP:.2f}%  "
            f"({self.num_valid_queries} queries{skipped})"
        )


def _as_labels(values, name, length=None):
    values = np.asarray(values)
    if values.ndim != 1:
        raise ReIDError(f"{name} must be 1-D; got shape {values.shape}.")
    if length is not None and values.shape[0] != length:
        raise ReIDError(
            f"{name} has {values.shape[0]} entries but the distance matrix needs {length}."
        )
    if values.dtype.kind not in "iu":
        if values.dtype.kind != "f" or not np.all(
            np.isfinite(values) & (values == np.round(values))
        ):
            raise ReIDError(f"{name} must hold integers; got dtype {values.dtype}.")
    return values.astype(np.int64)


def check_ranking_inputs(dist, q_pids, g_pids, q_camids, g_camids):
    """Validate a distance matrix and its labels; return them as arrays.

    Raises:
        ReIDError: one line naming the problem: a non-2-D or empty matrix,
            label arrays whose lengths do not match its shape, non-integer
            labels, or NaN distances (with how many and where the first is).
    """
    dist = np.asarray(dist)
    if dist.ndim != 2:
        raise ReIDError(
            f"the distance matrix must be 2-D (queries x gallery); got shape {dist.shape}."
        )
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        side = "query" if dist.shape[0] == 0 else "gallery"
        raise ReIDError(f"the {side} is empty (distance matrix of shape {dist.shape}).")
    if dist.dtype.kind not in "fiu":
        raise ReIDError(f"the distance matrix must be numeric; got dtype {dist.dtype}.")
    num_query, num_gallery = dist.shape
    q_pids = _as_labels(q_pids, "q_pids", num_query)
    g_pids = _as_labels(g_pids, "g_pids", num_gallery)
    q_camids = _as_labels(q_camids, "q_camids", num_query)
    g_camids = _as_labels(g_camids, "g_camids", num_gallery)
    if dist.dtype.kind == "f" and np.isnan(dist).any():
        nan = np.isnan(dist)
        row, col = np.argwhere(nan)[0]
        raise ReIDError(
            f"the distance matrix {dist.shape} has {int(nan.sum())} NaN value(s), the first at "
            f"query {row}, gallery {col}; check the features for NaN."
        )
    return dist, q_pids, g_pids, q_camids, g_camids


def _same_camera(q_camids, g_camids):
    """Elementwise "same known camera": equal camids, neither unknown (-1)."""
    return (q_camids == g_camids) & (q_camids != -1)


def ignored_gallery(q_pid, q_camid, g_pids, g_camids, different_camera_only=False):
    """The gallery items one query ignores: the rule of this module's docstring.

    Junk (pid -1) always; under the Market rule the items of the query's pid
    seen by the query's known camera; under "-nd" (``different_camera_only``)
    every item of the query's known camera.

    Args:
        q_pid, q_camid: the query's pid and camid (-1 = unknown camera).
        g_pids, g_camids: integer arrays of the gallery's pids and camids.
        different_camera_only: the "-nd" rule (default False).

    Returns:
        a boolean array over the gallery, True where the item is ignored.

    Example:
        >>> ignored_gallery(1, 0, np.array([1, 1, 2, -1]), np.array([0, 1, 0, 1]))
        array([ True, False, False,  True])
    """
    same_cam = _same_camera(q_camid, g_camids)
    return (g_pids == -1) | (same_cam if different_camera_only else same_cam & (g_pids == q_pid))


def query_ranking(distances, q_pid, q_camid, g_pids, g_camids, different_camera_only=False):
    """One query's ranked gallery, as :func:`rank_metrics` ranks it.

    The gallery is sorted by distance, ties by gallery order (a stable sort);
    ignored items (:func:`ignored_gallery`) keep their place in the order but
    take no rank, so the ranks of the positives are the ones AP, CMC and INP
    are computed from.

    Args:
        distances: (num_gallery,) distances of the query to the gallery.
        q_pid, q_camid, g_pids, g_camids, different_camera_only: as for
            :func:`ignored_gallery`.

    Returns:
        ``(order, ranks, positive, ignored)``: gallery indices from nearest to
        farthest; for each of them its 1-based rank (0 when ignored), whether
        it is a positive (same pid, not ignored) and whether it is ignored.

    Example:
        >>> order, ranks, positive, ignored = query_ranking(
        ...     dist[q], q_pids[q], q_camids[q], g_pids, g_camids)
        >>> ranks[positive]  # the ranks AP is computed from
    """
    order = np.argsort(np.asarray(distances), kind="stable")
    g_pids, g_camids = np.asarray(g_pids)[order], np.asarray(g_camids)[order]
    ignored = ignored_gallery(q_pid, q_camid, g_pids, g_camids, different_camera_only)
    ranks = np.where(ignored, 0, np.cumsum(~ignored))
    positive = ~ignored & (g_pids == q_pid)
    return order, ranks, positive, ignored


def _matching_pairs(q_pids, g_pids, junk):
    """Every (query, gallery) pair with the same pid, gallery item not junk.

    Returns query and gallery indices, sorted by query then gallery index.
    """
    g_idx = np.flatnonzero(~junk)
    g_idx = g_idx[np.argsort(g_pids[g_idx], kind="stable")]
    sorted_pids = g_pids[g_idx]
    lo = np.searchsorted(sorted_pids, q_pids, side="left")
    counts = np.searchsorted(sorted_pids, q_pids, side="right") - lo
    pair_q = np.repeat(np.arange(len(q_pids)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_g = g_idx[np.repeat(lo, counts) + within]
    return pair_q, pair_g


def _pointers(pair_q, num_query):
    """CSR-style offsets: pairs of query i are ``ptr[i]:ptr[i + 1]``."""
    return np.concatenate([[0], np.cumsum(np.bincount(pair_q, minlength=num_query))])


def _positive_ranks(dist, q_pids, g_pids, q_camids, g_camids, rules):
    """The rank of every positive of every query, under each requested rule.

    The rule (see the module docstring) is applied here: junk (g pid -1) is
    dropped for every query; under "market" same-pid items of the query's
    known camera are ignored; under "nd" every item of the query's known
    camera is ignored. Positives (same pid, other or unknown camera) are the
    same set under both rules; only their ranks differ.

    Returns:
        ``(pair_q, ranks)``: the query index of every positive (sorted by
        query) and a dict rule -> 1-based ranks of those positives.
    """
    num_query, _ = dist.shape
    junk = g_pids == -1
    pair_q, pair_g = _matching_pairs(q_pids, g_pids, junk)
    same_cam = _same_camera(q_camids[pair_q], g_camids[pair_g])
    pos_q, pos_g = pair_q[~same_cam], pair_g[~same_cam]
    # Same id, same camera: ignored under both rules, but still inside the
    # sorted rows, so the Market rule subtracts them.
    ign_q, ign_g = pair_q[same_cam], pair_g[same_cam]
    pos_d = dist[pos_q, pos_g]
    ign_d = dist[ign_q, ign_g]
    pos_ptr = _pointers(pos_q, num_query)
    ign_ptr = _pointers(ign_q, num_query)

    # Columns kept (non-junk), grouped by camera when -nd needs per-camera counts.
    columns = np.flatnonzero(~junk)
    if "nd" in rules:
        columns = columns[np.argsort(g_camids[columns], kind="stable")]
        block_cams, block_starts = np.unique(g_camids[columns], return_index=True)
    else:
        block_cams, block_starts = np.array([-1]), np.array([0])
    bounds = list(zip(block_starts, np.append(block_starts[1:], len(columns)), strict=True))

    num_pos = len(pos_q)
    left = np.zeros((len(bounds), num_pos), dtype=np.int64)
    right = np.zeros((len(bounds), num_pos), dtype=np.int64)
    ign_less = np.zeros(num_pos, dtype=np.int64)
    ign_equal = np.zeros(num_pos, dtype=np.int64)
    has_pos = np.flatnonzero(pos_ptr[1:] > pos_ptr[:-1])
    for start in range(0, len(has_pos), _CHUNK_ROWS):
        queries = has_pos[start : start + _CHUNK_ROWS]
        rows = np.take(dist[queries], columns, axis=1)
        for lo, hi in bounds:
            rows[:, lo:hi].sort(axis=1)
        for row, q in zip(rows, queries, strict=True):
            ps, pe = pos_ptr[q], pos_ptr[q + 1]
            d = pos_d[ps:pe]
            for b, (lo, hi) in enumerate(bounds):
                segment = row[lo:hi]
                left[b, ps:pe] = np.searchsorted(segment, d, side="left")
                right[b, ps:pe] = np.searchsorted(segment, d, side="right")
            js, je = ign_ptr[q], ign_ptr[q + 1]
            if je > js:
                ignored = ign_d[js:je, None]
                ign_less[ps:pe] = (ignored < d).sum(axis=0)
                ign_equal[ps:pe] = (ignored == d).sum(axis=0)

    less_all = left.sum(axis=0)
    equal_all = (right - left).sum(axis=0)
    ranks = {}
    for rule in rules:
        if rule == "market":
            less = less_all - ign_less
            equal = equal_all - ign_equal
        else:
            # The query camera's block, when the camera is known and present.
            cam = q_camids[pos_q]
            block = np.searchsorted(block_cams, cam)
            present = (cam != -1) & (block < len(block_cams))
            present[present] = block_cams[block[present]] == cam[present]
            at = np.flatnonzero(present)
            less = less_all.copy()
            equal = equal_all.copy()
            less[at] -= left[block[at], at]
            equal[at] -= right[block[at], at] - left[block[at], at]
        # `equal` counts the positive itself; more means a tie to resolve.
        ties = np.zeros(num_pos, dtype=np.int64)
        tied = np.flatnonzero(equal > 1)
        if tied.size:
            ties[tied] = _earlier_ties(
                dist, q_pids, g_pids, q_camids, g_camids, rule,
                pos_q[tied], pos_g[tied], pos_d[tied],
            )  # fmt: skip
        ranks[rule] = less + ties + 1
    return pos_q, ranks


def _earlier_ties(dist, q_pids, g_pids, q_camids, g_camids, rule, tq, tg, td):
    """For tied positives: valid items at the same distance earlier in the gallery."""
    out = np.zeros(len(tq), dtype=np.int64)
    gallery_index = np.arange(dist.shape[1])
    for q in np.unique(tq):
        sel = np.flatnonzero(tq == q)
        ignored = ignored_gallery(q_pids[q], q_camids[q], g_pids, g_camids, rule == "nd")
        equal = dist[q][None, :] == td[sel, None]
        earlier = gallery_index[None, :] < tg[sel, None]
        out[sel] = (equal & earlier & ~ignored[None, :]).sum(axis=1)
    return out


def _metrics_from_ranks(pair_q, ranks, num_query, max_rank):
    """CMC, mAP, mINP and per-query AP from the ranks of every positive."""
    order = np.lexsort((ranks, pair_q))
    pair_q, ranks = pair_q[order], ranks[order]
    counts = np.bincount(pair_q, minlength=num_query)
    valid = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)])[valid]
    ends = starts + counts[valid]
    position = np.arange(len(ranks)) - np.repeat(starts, counts[valid]) + 1
    ap = np.add.reduceat(position / ranks, starts) / counts[valid]
    inp = counts[valid] / ranks[ends - 1]
    first = ranks[starts]
    cmc = (first[:, None] <= np.arange(1, max_rank + 1)[None, :]).mean(axis=0)
    per_query_ap = np.full(num_query, np.nan)
    per_query_ap[valid] = ap
    return RankResult(
        cmc=cmc,
        mAP=float(ap.mean()),
        mINP=float(inp.mean()),
        num_valid_queries=int(len(valid)),
        num_skipped=int(num_query - len(valid)),
        average_precision=per_query_ap,
    )


def _check_max_rank(max_rank):
    if not is_int(max_rank, minimum=1, numpy=True):
        raise ReIDError(f"max_rank must be a positive integer. Received: max_rank={max_rank!r}")
    return int(max_rank)


def _no_match_error(q_pids, g_pids, num_query):
    shown = ", ".join(str(p) for p in np.unique(q_pids)[:5])
    return ReIDError(
        f"no query has a true match in the gallery: all {num_query} queries were skipped "
        f"(query pids e.g. {shown}; the gallery has {len(np.unique(g_pids))} distinct pids); "
        "check that the query and gallery tables come from the same dataset and that the "
        "gallery holds each id from another camera."
    )


def rank_metrics_for_rules(dist, q_pids, g_pids, q_camids, g_camids, max_rank=50, rules=RULES):
    """:func:`rank_metrics` for several rules from one sort: ``{rule: RankResult}``.

    ``rules`` is a subset of ``("market", "nd")``; ``evaluate`` uses both at once,
    which costs little more than one.
    """
    checked = check_ranking_inputs(dist, q_pids, g_pids, q_camids, g_camids)
    return rank_metrics_in_blocks([(0, checked[0])], *checked[1:], max_rank=max_rank, rules=rules)


def rank_metrics_in_blocks(blocks, q_pids, g_pids, q_camids, g_camids, max_rank=50, rules=RULES):
    """:func:`rank_metrics_for_rules` from the distance matrix in blocks of query rows.

    ``blocks`` yields ``(start, dist)``: the distances of queries
    ``start .. start + len(dist) - 1`` to the whole gallery, in order and
    covering every query once. A positive's rank depends on its query's row
    alone, so the result equals the one from the whole matrix exactly, while
    only one block is in memory: a gallery of millions needs no
    ``num_query x num_gallery`` matrix.

    Example:
        >>> blocks = ((s, pairwise_distance(q[s:s + 100], g)) for s in range(0, len(q), 100))
        >>> rank_metrics_in_blocks(blocks, q_pids, g_pids, q_camids, g_camids)["market"].mAP
    """
    max_rank = _check_max_rank(max_rank)
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ReIDError(f"rules must be a non-empty subset of {RULES}. Received: rules={rules!r}")
    q_pids, q_camids = np.asarray(q_pids), np.asarray(q_camids)
    pairs, ranks, covered = [], {rule: [] for rule in rules}, 0
    for start, dist in blocks:
        if start != covered:
            raise ReIDError(
                f"distance blocks must cover the queries in order: expected a block starting "
                f"at query {covered}, got one at {start}."
            )
        stop = start + len(dist)
        checked = check_ranking_inputs(
            dist, q_pids[start:stop], g_pids, q_camids[start:stop], g_camids
        )
        pair_q, block_ranks = _positive_ranks(*checked, tuple(rules))
        pairs.append(pair_q + start)
        for rule in rules:
            ranks[rule].append(block_ranks[rule])
        covered = stop
    if covered != len(q_pids):
        raise ReIDError(
            f"distance blocks cover {covered} of {len(q_pids)} queries; pass a block for each."
        )
    if not pairs:
        raise ReIDError("no query to score: the distance blocks are empty.")
    pair_q = np.concatenate(pairs)
    if len(pair_q) == 0:
        raise _no_match_error(q_pids, g_pids, len(q_pids))
    return {
        rule: _metrics_from_ranks(pair_q, np.concatenate(ranks[rule]), len(q_pids), max_rank)
        for rule in rules
    }


def rank_metrics(
    dist, q_pids, g_pids, q_camids, g_camids, max_rank=50, different_camera_only=False
):
    """CMC (Rank-1..max_rank), mAP and mINP under the Market-1501 rule.

    The rule, and the choices for unknown cameras (camid -1), ties and skipped
    queries, are in this module's docstring; in short: junk (pid -1) and
    same-id same-camera gallery items are ignored, ranks are counted after
    removing them, ties go by gallery order.

    Args:
        dist: (num_query, num_gallery) distances, smaller is closer.
        q_pids, g_pids: integer person ids of the queries and gallery items.
        q_camids, g_camids: integer camera ids (-1 = unknown camera).
        max_rank: length of the returned CMC (default 50).
        different_camera_only: the "-nd" score of the EmbAE paper: ignore every
            gallery item from the query's camera (default False).

    Returns:
        a :class:`RankResult` (fractions, not percentages).

    Raises:
        ReIDError: on mismatched shapes or lengths, NaN distances, an empty
            query or gallery, or when no query has a true match.

    Example:
        >>> dist = pairwise_distance(q_feats, g_feats)
        >>> result = rank_metrics(dist, query.pid, gallery.pid, query.camid, gallery.camid)
        >>> print(result)
        Rank-1 94.12%  Rank-5 97.95%  Rank-10 98.69%  mAP 84.33%  mINP 57.10%  (3368 queries)

    References:
        Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015
        (the Market-1501 protocol); Ye et al., TPAMI 2021 (mINP).
    """
    rule = "nd" if different_camera_only else "market"
    return rank_metrics_for_rules(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, rules=(rule,)
    )[rule]


def cuhk03_single_shot(
    dist,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank=50,
    num_repeats=10,
    seed=0,
    different_camera_only=False,
):
    """CUHK03's single-gallery-shot protocol: CMC over one random image per identity.

    For every query and every repeat, one gallery image of each identity is
    drawn at random from the items the query may see (the rule of
    :func:`rank_metrics`: junk and same-id same-camera items, or with
    ``different_camera_only`` every same-camera item, are out); the rank of the
    drawn true match among the drawn images gives that repeat's CMC, and the
    CMC is averaged over repeats and then over queries (as in torchreid's
    ``eval_cuhk03``, drawing per query). Ties go by gallery order. mAP and mINP
    are computed on the full gallery list, exactly as :func:`rank_metrics`.
    pid 0 is an identity like any other here (CUHK03 has no distractors).

    Args:
        dist, q_pids, g_pids, q_camids, g_camids: as for :func:`rank_metrics`.
        max_rank: length of the CMC (default 50).
        num_repeats: draws per query (default 10).
        seed: seed of the draws (default 0); the same seed gives the same CMC.
        different_camera_only: the "-nd" rule (default False).

    Returns:
        a :class:`RankResult` whose ``cmc`` is the single-shot CMC.

    Example:
        >>> cuhk03_single_shot(dist, q.pid, g.pid, q.camid, g.camid, num_repeats=10).rank(1)
        0.6125

    Reference:
        Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person
        Re-identification", CVPR 2014.
    """
    max_rank = _check_max_rank(max_rank)
    if not is_int(num_repeats, minimum=1):
        raise ReIDError(
            f"num_repeats must be a positive integer. Received: num_repeats={num_repeats!r}"
        )
    full = rank_metrics(dist, q_pids, g_pids, q_camids, g_camids, max_rank, different_camera_only)
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(
        dist, q_pids, g_pids, q_camids, g_camids
    )
    rng = np.random.default_rng(seed)
    junk = g_pids == -1
    pair_q, pair_g = _matching_pairs(q_pids, g_pids, junk)
    positive = ~_same_camera(q_camids[pair_q], g_camids[pair_g])
    pos_q, pos_g = pair_q[positive], pair_g[positive]
    pos_ptr = _pointers(pos_q, len(q_pids))
    valid_queries = np.flatnonzero(pos_ptr[1:] > pos_ptr[:-1])

    # The identities a query may see depend on its camera only under -nd.
    if different_camera_only:
        contexts = [(c, valid_queries[q_camids[valid_queries] == c]) for c in np.unique(q_camids)]
    else:
        contexts = [(-1, valid_queries)]
    hits = np.zeros((len(q_pids), max_rank))
    thresholds = np.arange(1, max_rank + 1)
    for camera, queries in contexts:
        visible = ~junk
        if camera != -1:
            visible &= ~_same_camera(camera, g_camids)
        members = np.flatnonzero(visible)
        members = members[np.argsort(g_pids[members], kind="stable")]
        group_pids, group_starts, group_sizes = np.unique(
            g_pids[members], return_index=True, return_counts=True
        )
        for start in range(0, len(queries), 64):
            chunk = queries[start : start + 64]
            draw = rng.random((len(chunk), num_repeats, len(group_pids)))
            picked = members[group_starts + (draw * group_sizes).astype(np.int64)]
            picked_d = dist[chunk[:, None, None], picked]
            counts = pos_ptr[chunk + 1] - pos_ptr[chunk]
            which = pos_ptr[chunk][:, None] + (
                rng.random((len(chunk), num_repeats)) * counts[:, None]
            ).astype(np.int64)
            true_g = pos_g[which][..., None]
            true_d = dist[chunk[:, None], pos_g[which]][..., None]
            before = (picked_d < true_d) | ((picked_d == true_d) & (picked < true_g))
            # The query's own identity is represented by the drawn true match.
            before &= (group_pids[None, :] != q_pids[chunk][:, None])[:, None, :]
            rank = 1 + before.sum(axis=2)
            hits[chunk] = (rank[:, :, None] <= thresholds).mean(axis=1)
    return RankResult(
        cmc=hits[valid_queries].mean(axis=0),
        mAP=full.mAP,
        mINP=full.mINP,
        num_valid_queries=full.num_valid_queries,
        num_skipped=full.num_skipped,
        average_precision=full.average_precision,
    )
