"""CMC curves and ranked-list figures, written atomically.

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing
here needs a display or changes the user's pyplot backend. Files are written
to a temporary name in the target folder and moved into place with
``os.replace``, so an interrupted run never leaves half a PNG behind.
"""

import os
from dataclasses import dataclass

import numpy as np

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics.ranking import (
    RankResult,
    check_ranking_inputs,
    query_ranking,
    rank_metrics,
)
from keras_reid.fileio import atomic_output

# Border colours of the ranked-list figure (RGB).
HIT = (46, 160, 67)
MISS = (214, 39, 40)
IGNORED = (150, 150, 150)
QUERY = (31, 119, 180)


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, out_path):
    """Write ``figure`` to ``out_path`` atomically; the format comes from the extension."""
    out_path = os.path.abspath(os.fspath(out_path))
    fmt = os.path.splitext(out_path)[1].lstrip(".").lower()
    supported = figure.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ReIDError(
            f"cannot write a figure to {out_path}: unknown extension {fmt!r}; "
            f"expected one of: {', '.join(sorted(supported))}."
        )
    with atomic_output(out_path, suffix=f".{fmt}") as tmp:
        figure.savefig(tmp, format=fmt, bbox_inches="tight")
    return out_path


def plot_cmc(results, out_path, title="CMC", max_rank=None):
    """Plot CMC curves, one per named result, to an image file.

    Args:
        results: dict name -> CMC array (``cmc[k - 1]`` = Rank-k, fractions) or
            :class:`~keras_reid.evaluation.metrics.RankResult`.
        out_path: file to write (.png, .pdf, .svg, ...), replaced atomically.
        title: figure title (default "CMC").
        max_rank: last rank shown (default: the longest curve).

    Returns:
        the absolute path written.

    Example:
        >>> plot_cmc({"baseline": base.cmc, "+ re-ranking": rr.cmc}, "out/cmc.png")
    """
    if not results:
        raise ReIDError("plot_cmc: no results to plot (got an empty dict).")
    curves = {}
    for name, cmc in results.items():
        cmc = np.asarray(cmc.cmc if isinstance(cmc, RankResult) else cmc, dtype=float)
        if cmc.ndim != 1 or cmc.size == 0:
            raise ReIDError(f"plot_cmc: {name!r} is not a 1-D CMC array (shape {cmc.shape}).")
        curves[name] = cmc
    last = max_rank or max(len(c) for c in curves.values())
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    for name, cmc in curves.items():
        shown = cmc[:last]
        ranks = np.arange(1, len(shown) + 1)
        axes.plot(ranks, 100 * shown, label=f"{name} (R1 {100 * shown[0]:.1f}%)", linewidth=1.5)
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate (%)")
    axes.set_xlim(1, last)
    axes.grid(True, alpha=0.3)
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, out_path)


def _read_rgb(path, size):
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ReIDError(f"plot_ranked_lists: cannot read image {path} (missing or not an image).")
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _framed(image, colour, width):
    framed = np.empty((image.shape[0] + 2 * width, image.shape[1] + 2 * width, 3), np.uint8)
    framed[:] = colour
    framed[width:-width, width:-width] = image
    return framed


def _choose_queries(ap, num_queries, worst_first, query_indices, seed):
    """Query rows to draw: explicit, the lowest AP first, or a seeded sample.

    Queries without a true match (AP NaN) are drawn only when asked for by index.
    """
    if query_indices is not None:
        chosen = np.asarray(query_indices, dtype=np.int64).ravel()
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= len(ap):
            raise ReIDError(
                f"plot_ranked_lists: query_indices must be in [0, {len(ap)}). "
                f"Received: {chosen.tolist()[:10]}"
            )
        return chosen
    valid = np.flatnonzero(~np.isnan(ap))
    if worst_first:
        return valid[np.argsort(ap[valid], kind="stable")[:num_queries]]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(valid, size=min(num_queries, len(valid)), replace=False))


@dataclass
class RankedList:
    """One row of the ranked-list figure: a query and the gallery entries shown after it.

    Attributes:
        query: the query's row in the distance matrix.
        average_precision: the protocol's AP of the query (NaN: no true match).
        gallery: gallery rows shown, nearest first.
        ranks: each one's rank under the protocol, 1-based; 0 for an ignored entry.
        matches: each one is a true match the protocol counts (same id, not ignored).
        ignored: each one is ignored by the protocol (junk, same id and camera, or
            under -nd any item of the query's camera).
        distances: each one's distance to the query.
    """

    query: int
    average_precision: float
    gallery: np.ndarray
    ranks: np.ndarray
    matches: np.ndarray
    ignored: np.ndarray
    distances: np.ndarray


def ranked_lists(
    dist,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    num_queries=8,
    top_k=10,
    worst_first=False,
    different_camera_only=False,
    query_indices=None,
    seed=0,
    show_ignored=True,
):
    """What :func:`plot_ranked_lists` draws: per chosen query, its ranked gallery entries.

    The order, ranks and ignore rule are the protocol's own
    (:func:`~keras_reid.evaluation.metrics.ranking.query_ranking`) and the AP is
    :func:`~keras_reid.evaluation.metrics.rank_metrics`' per-query AP, so the figure and
    the metrics cannot disagree.

    Args:
        dist, q_pids, g_pids, q_camids, g_camids: as for :func:`rank_metrics`
            (for video: tracklet distances and labels, see
            :func:`~keras_reid.evaluation.metrics.evaluate.rank_protocol`).
        num_queries, top_k, worst_first, different_camera_only, query_indices,
        seed, show_ignored: as for :func:`plot_ranked_lists`.

    Returns:
        a list of :class:`RankedList`, one per drawn query, in drawing order.

    Example:
        >>> rows = ranked_lists(dist, q.pid, g.pid, q.camid, g.camid, top_k=5)
        >>> rows[0].ranks, rows[0].matches, rows[0].average_precision
    """
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(
        dist, q_pids, g_pids, q_camids, g_camids
    )
    if not is_int(top_k, minimum=1, numpy=True):
        raise ReIDError(f"top_k must be a positive integer. Received: top_k={top_k!r}")
    ap = rank_metrics(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=1,
        different_camera_only=different_camera_only,
    ).average_precision  # fmt: skip
    rows = []
    for q in _choose_queries(ap, num_queries, worst_first, query_indices, seed):
        order, ranks, positive, ignored = query_ranking(
            dist[q], q_pids[q], q_camids[q], g_pids, g_camids, different_camera_only
        )
        shown = np.arange(len(order)) if show_ignored else np.flatnonzero(~ignored)
        shown = shown[:top_k]
        rows.append(
            RankedList(
                query=int(q),
                average_precision=float(ap[q]),
                gallery=order[shown],
                ranks=ranks[shown],
                matches=positive[shown],
                ignored=ignored[shown],
                distances=dist[q, order[shown]],
            )
        )
    return rows


def _one_row_per_tracklet(table, name):
    """A video table of frames instead of tracklets would rank frames: refuse it."""
    if "tracklet" not in table.columns:
        return
    keys = ["dataset", "tracklet"] if "dataset" in table.columns else ["tracklet"]
    repeated = table.duplicated(keys)
    if repeated.any():
        first = table[repeated].iloc[0]
        raise ReIDError(
            f"plot_ranked_lists: the {name} table has several rows (frames) per tracklet, "
            f"e.g. tracklet {first['tracklet']}; the video protocol ranks tracklets: pass "
            "rank_protocol(..., protocol='video')'s dist and tables (or pool_tracklets')."
        )


def _label(table, row):
    """An entry's id, and for a tracklet its number and length, as title lines."""
    text = f"id {table['pid'].iat[row]}"
    if "tracklet" in table.columns:
        text += f"\nT{table['tracklet'].iat[row]}"
        if "num_frames" in table.columns:
            frames = table["num_frames"].iat[row]
            text += f", {frames} frame{'s' if frames != 1 else ''}"
    return text


def plot_ranked_lists(
    dist,
    query_table,
    gallery_table,
    out_path,
    num_queries=8,
    top_k=10,
    worst_first=False,
    different_camera_only=False,
    query_indices=None,
    seed=0,
    image_size=(128, 64),
    show_ignored=True,
):
    """Draw queries and their top-k gallery entries, framed by outcome, as the protocol ranks them.

    Each row is a query (blue frame) followed by the first ``top_k`` entries
    of its ranked gallery (distance order, ties by gallery order): green
    frame for a true match, red for a wrong id. Entries the protocol ignores
    (junk pid -1, same id and same camera; with ``different_camera_only``
    every item of the query's camera) are, by default, kept in their place
    with a grey frame and the title "ignored" and take no rank, so one sees
    what the metric skips (on MARS, the query's own tracklet, which the
    gallery holds); a row then shows fewer than ``top_k`` ranks. With
    ``show_ignored=False`` they are left out and a row shows ranks 1 to
    ``top_k``. The rank printed above an entry is its rank under the
    protocol, and the query's AP the protocol's AP (:func:`ranked_lists`
    gives these numbers). Titles also give each entry's id and distance.

    For video, pass the tracklet distances and tables the video protocol
    ranks (:func:`~keras_reid.evaluation.metrics.evaluate.rank_protocol` with
    ``protocol="video"``): each entry is then a tracklet, drawn as the frame
    in its table's ``path`` (there: the middle frame) and titled with its
    tracklet number and frame count (``T12x24``). Frame tables (several rows
    per tracklet) are refused. Under CUHK03's protocol the list is the full
    gallery list its mAP is computed on (the single-shot CMC draws are not shown).

    Args:
        dist: (num_query, num_gallery) distances.
        query_table, gallery_table: tables with path, pid and camid columns (rows of ``dist``).
        out_path: image file to write, replaced atomically.
        num_queries: rows to draw (default 8).
        top_k: gallery entries per row (default 10).
        worst_first: draw the queries with the lowest AP (default False: a
            random sample, drawn with ``seed``, of the queries with a true match).
        different_camera_only: score and frame with the "-nd" rule.
        query_indices: explicit query rows to draw (overrides the choice above).
        seed: seed of the random sample (default 0).
        image_size: (height, width) of each thumbnail (default (128, 64)).
        show_ignored: draw ignored entries grey in their place (default True)
            or leave them out.

    Returns:
        the absolute path written.

    Example:
        >>> plot_ranked_lists(dist, market.query, market.gallery, "out/worst.png",
        ...                   worst_first=True)
    """
    for name, table in (("query", query_table), ("gallery", gallery_table)):
        missing = [c for c in ("path", "pid", "camid") if c not in table.columns]
        if missing:
            raise ReIDError(f"plot_ranked_lists: the {name} table lacks {', '.join(missing)}.")
        _one_row_per_tracklet(table, name)
    rows = ranked_lists(
        dist,
        query_table["pid"],
        gallery_table["pid"],
        query_table["camid"],
        gallery_table["camid"],
        num_queries=num_queries,
        top_k=top_k,
        worst_first=worst_first,
        different_camera_only=different_camera_only,
        query_indices=query_indices,
        seed=seed,
        show_ignored=show_ignored,
    )
    columns = max(len(r.gallery) for r in rows)
    q_paths = query_table["path"].to_numpy()
    g_paths = gallery_table["path"].to_numpy()
    border = max(2, image_size[1] // 20)
    lines = 4 if "tracklet" in gallery_table.columns else 3
    figure = _figure(0.8 * (columns + 1) + 0.5, (1.45 + 0.1 * lines) * len(rows) + 0.3)
    grid = figure.add_gridspec(len(rows), columns + 1, wspace=0.1, hspace=0.1 * lines + 0.15)
    for line, row in enumerate(rows):
        q = row.query
        axes = figure.add_subplot(grid[line, 0])
        axes.imshow(_framed(_read_rgb(q_paths[q], image_size), QUERY, border))
        ap = row.average_precision
        ap_text = "no match" if np.isnan(ap) else f"AP {100 * ap:.0f}%"
        axes.set_title(
            f"query {q}, {ap_text}\n{_label(query_table, q)}\ncam {query_table['camid'].iat[q]}",
            fontsize=6,
        )
        axes.axis("off")
        for col, g in enumerate(row.gallery, start=1):
            i = col - 1
            colour = IGNORED if row.ignored[i] else HIT if row.matches[i] else MISS
            rank = "ignored" if row.ignored[i] else f"rank {row.ranks[i]}"
            axes = figure.add_subplot(grid[line, col])
            axes.imshow(_framed(_read_rgb(g_paths[g], image_size), colour, border))
            axes.set_title(
                f"{rank}\n{_label(gallery_table, g)}\nd {row.distances[i]:.3g}", fontsize=6
            )
            axes.axis("off")
    return _save(figure, out_path)


def plot_scores(results, out_path, columns, title="scores"):
    """A grouped bar chart of score columns (fractions) per model, written atomically.

    Args:
        results: a DataFrame with a "model" column and the score ``columns``.
        out_path: the PNG (or any Matplotlib format) to write.
        columns: the score columns, one bar each per model.
        title: the chart's title.

    Example:
        >>> plot_scores(results, "results.png", ("rank1", "mAP"), "EmbAE")
    """
    figure = _figure(1.2 + 1.1 * len(results), 3.6)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(columns)
    positions = np.arange(len(results))
    for index, name in enumerate(columns):
        offset = (index - (len(columns) - 1) / 2) * width
        axes.bar(positions + offset, results[name], width, label=name)
    axes.set_xticks(positions, results["model"])
    # Room above the highest bar for the legend; scores are fractions.
    axes.set_ylim(0, min(1.0, np.ceil(float(results[list(columns)].max().max()) * 13) / 10))
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(ncols=len(columns), fontsize="small", loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, out_path)
