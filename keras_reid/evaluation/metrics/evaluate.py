"""Features and tables in, one row of a results table out.

``evaluate`` is what the ``keras-reid evaluate`` command and the paper
scripts call: it never needs the model, only the features it produced (test-
time augmentation, if any, happens when the features are extracted).
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics.distance import pairwise_distance
from keras_reid.evaluation.metrics.ranking import cuhk03_single_shot, rank_metrics_for_rules
from keras_reid.evaluation.metrics.rerank import re_rank
from keras_reid.evaluation.metrics.video import pool_tracklets

logger = logging.getLogger("keras_reid.evaluation.metrics")

PROTOCOLS = ("market", "cuhk03", "video")
RERANK_OPTIONS = ("k1", "k2", "lambda_value")


def _check_table(table, features, name):
    missing = [c for c in ("pid", "camid") if c not in table.columns]
    if missing:
        raise ReIDError(
            f"{name} table lacks column(s) {', '.join(missing)} (expected the dataset table "
            "contract: path, pid, camid, dataset)."
        )
    if len(table) == 0:
        raise ReIDError(f"the {name} table is empty.")
    if np.ndim(features) != 2 or np.shape(features)[0] != len(table):
        raise ReIDError(
            f"{name} features of shape {np.shape(features)} do not match the {name} table "
            f"of {len(table)} rows (expected ({len(table)}, d))."
        )


def _rerank_options(rerank):
    if rerank is True:
        return {}
    if isinstance(rerank, dict):
        unknown = sorted(set(rerank) - set(RERANK_OPTIONS))
        if unknown:
            raise ReIDError(
                f"unknown re-ranking option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(RERANK_OPTIONS)}."
            )
        return dict(rerank)
    raise ReIDError(
        f"rerank must be False, True or a dict of {', '.join(RERANK_OPTIONS)}. "
        f"Received: rerank={rerank!r}"
    )


def _warn_self_matches(query_table, gallery_table):
    """Queries inside the gallery with unknown cameras would match themselves."""
    if "path" not in query_table.columns or "path" not in gallery_table.columns:
        return
    unknown = set(query_table.loc[query_table.camid == -1, "path"])
    unknown &= set(gallery_table["path"])
    unknown |= set(query_table["path"]) & set(gallery_table.loc[gallery_table.camid == -1, "path"])
    if unknown:
        logger.warning(
            "%d query image(s) are also in the gallery with an unknown camera (camid -1), "
            "so each matches itself at rank 1, e.g. %s; remove them from the gallery.",
            len(unknown),
            sorted(unknown)[0],
        )


@dataclass
class ProtocolRanking:
    """What a protocol ranks and its scores: the source of results tables and figures.

    Attributes:
        dist: (num_query, num_gallery) distances the protocol ranks (after
            tracklet pooling and re-ranking, when they apply); None where
            they were scored in blocks and never held whole
            (:func:`keras_reid.serving.gallery.evaluate_with_index`).
        query_table, gallery_table: the rows of ``dist``: the dataset tables,
            or for the video protocol one row per tracklet (from
            :func:`~keras_reid.evaluation.metrics.pool_tracklets`, ``path`` being the
            tracklet's middle frame).
        results: ``{"market": RankResult, "nd": RankResult}``; each result's
            ``average_precision`` is the protocol's per-query AP.
        protocol: "market", "cuhk03" or "video".
    """

    dist: np.ndarray
    query_table: pd.DataFrame
    gallery_table: pd.DataFrame
    results: dict
    protocol: str


def rank_protocol(
    query_features,
    gallery_features,
    query_table,
    gallery_table,
    metric="euclidean",
    normalize=False,
    rerank=False,
    protocol="market",
    max_rank=50,
    pooling="mean",
    num_repeats=10,
    seed=0,
):
    """Rank and score with a protocol, keeping what was ranked (see :func:`evaluate`).

    :func:`evaluate` turns the result into a results-table row; figures
    (``keras-reid evaluate --out``) draw from the same object, so a ranked
    list shows what the protocol scored: for video, tracklets, not frames.

    Args:
        query_features, gallery_features, query_table, gallery_table, metric,
        normalize, rerank, protocol, pooling, num_repeats, seed: as for :func:`evaluate`.
        max_rank: length of the CMC curves (default 50).

    Returns:
        a :class:`ProtocolRanking`.

    Example:
        >>> ranking = rank_protocol(q_feats, g_feats, mars.query, mars.gallery, protocol="video")
        >>> plot_ranked_lists(ranking.dist, ranking.query_table, ranking.gallery_table, "r.png")
    """
    if protocol not in PROTOCOLS:
        raise ReIDError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}.")
    if rerank is not False:
        rerank_options = _rerank_options(rerank)
    _check_table(query_table, query_features, "query")
    _check_table(gallery_table, gallery_features, "gallery")

    if protocol == "video":
        query_features, query_table = pool_tracklets(
            query_features, query_table, pooling, representative="middle"
        )
        gallery_features, gallery_table = pool_tracklets(
            gallery_features, gallery_table, pooling, representative="middle"
        )
    _warn_self_matches(query_table, gallery_table)

    dist = pairwise_distance(query_features, gallery_features, metric, normalize)
    if rerank is not False:
        dist = re_rank(
            dist,
            pairwise_distance(query_features, query_features, metric, normalize),
            pairwise_distance(gallery_features, gallery_features, metric, normalize),
            **rerank_options,
        )
    labels = (
        query_table["pid"].to_numpy(),
        gallery_table["pid"].to_numpy(),
        query_table["camid"].to_numpy(),
        gallery_table["camid"].to_numpy(),
    )
    if protocol == "cuhk03":
        results = {
            rule: cuhk03_single_shot(
                dist,
                *labels,
                max_rank=max_rank,
                num_repeats=num_repeats,
                seed=seed,
                different_camera_only=rule == "nd",
            )
            for rule in ("market", "nd")
        }
    else:
        results = rank_metrics_for_rules(dist, *labels, max_rank=max_rank)
    return ProtocolRanking(dist, query_table, gallery_table, results, protocol)


def evaluate(
    query_features,
    gallery_features,
    query_table,
    gallery_table,
    metric="euclidean",
    normalize=False,
    rerank=False,
    protocol="market",
    ranks=(1, 5, 10),
    pooling="mean",
    num_repeats=10,
    seed=0,
):
    """Score query features against gallery features: one results-table row.

    Both the standard score and the "-nd" score (every gallery item from the
    query's camera ignored; EmbAE paper) are computed, from one sort.

    Args:
        query_features, gallery_features: (n, d) arrays, row i for table row i.
        query_table, gallery_table: dataset tables (columns pid, camid, ...;
            video tables also tracklet).
        metric: "euclidean" (default), "sqeuclidean" or "cosine".
        normalize: L2-normalise features before scoring (default False; the
            EmbAE paper normalises ``z_id``).
        rerank: False (default), True for k-reciprocal re-ranking with the
            paper's k1=20, k2=6, lambda_value=0.3, or a dict overriding them.
        protocol: "market" (default; Market-1501 rule, also DukeMTMC-reID,
            MSMT17, CUHK03 new protocol), "cuhk03" (single-gallery-shot CMC
            averaged over ``num_repeats`` draws, mAP on the full list) or "video"
            (frame features pooled per tracklet, then the Market rule).
        ranks: the Rank-k columns to report (default (1, 5, 10)).
        pooling: "mean" (default) or "max"; video protocol only.
        num_repeats: single-shot draws per query; cuhk03 protocol only (default 10).
        seed: seed of those draws (default 0).

    Returns:
        a one-row DataFrame: rank{k} for k in ranks, mAP, mINP, the same with
        an ``_nd`` suffix, num_query, num_valid (queries with a true match),
        protocol, metric, rerank. Scores are fractions in [0, 1]; see
        :func:`format_results` for a percentage table. The per-query scores
        behind them are in :func:`rank_protocol`'s result.

    Raises:
        ReIDError: on an unknown protocol or metric, tables that do not match
            the features, invalid ranks, or when no query has a true match.

    Example:
        >>> row = evaluate(q_feats, g_feats, market.query, market.gallery, normalize=True)
        >>> print(format_results(row))
    """
    if protocol not in PROTOCOLS:
        raise ReIDError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}.")
    ranks = tuple(ranks)
    if not ranks or any(not is_int(k, minimum=1, numpy=True) for k in ranks):
        raise ReIDError(f"ranks must be positive integers. Received: ranks={ranks!r}")
    ranking = rank_protocol(
        query_features,
        gallery_features,
        query_table,
        gallery_table,
        metric=metric,
        normalize=normalize,
        rerank=rerank,
        protocol=protocol,
        max_rank=int(max(ranks)),
        pooling=pooling,
        num_repeats=num_repeats,
        seed=seed,
    )
    return results_row(ranking, ranks, metric, normalize, rerank)


def results_row(ranking, ranks=(1, 5, 10), metric="euclidean", normalize=False, rerank=False):
    """The one-row results DataFrame of :func:`evaluate` from a :func:`rank_protocol` ranking.

    For callers that also draw the ranking (a report), so it is computed once.
    ``ranking`` must have been computed with ``max_rank >= max(ranks)``.
    """
    results = ranking.results
    protocol = ranking.protocol
    row = {}
    for rule, suffix in (("market", ""), ("nd", "_nd")):
        for k in ranks:
            row[f"rank{k}{suffix}"] = float(results[rule].cmc[k - 1])
        row[f"mAP{suffix}"] = results[rule].mAP
        row[f"mINP{suffix}"] = results[rule].mINP
    row["num_query"] = len(ranking.query_table)
    row["num_valid"] = results["market"].num_valid_queries
    row["protocol"] = protocol
    row["metric"] = metric + ("+norm" if normalize else "")
    row["rerank"] = rerank is not False
    return pd.DataFrame([row])


def format_results(results, digits=1, markdown=False):
    """A results table as text, scores in percent (``format_results(evaluate(...))``).

    Args:
        results: a DataFrame from :func:`evaluate`, or several concatenated,
            optionally with extra columns such as "model" or "dataset".
        digits: decimals of the percentages (default 1, as in most papers).
        markdown: a Markdown table instead of aligned plain text.

    Example:
        >>> print(format_results(pd.concat([row_a.assign(model="a"), row_b.assign(model="b")])))
    """
    table = results.copy()
    for column in table.columns:
        if column.startswith(("rank", "mAP", "mINP")):
            table[column] = (100 * table[column].astype(float)).map(f"{{:.{digits}f}}".format)
    if not markdown:
        return table.to_string(index=False)
    rows = [list(table.columns), ["---"] * len(table.columns)]
    rows += [[str(value) for value in record] for record in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
