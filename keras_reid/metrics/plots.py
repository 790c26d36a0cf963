"""CMC curves and ranked-list figures, written atomically.

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing
here needs a display or changes the user's pyplot backend. Files are written
to a temporary name in the target folder and moved into place with
``os.replace``, so an interrupted run never leaves half a PNG behind.
"""

import os

import numpy as np

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output
from keras_reid.metrics.ranking import RankResult, _same_camera, check_ranking_inputs, rank_metrics

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
            :class:`~keras_reid.metrics.RankResult`.
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
):
    """Draw queries and their top-k gallery images, framed by outcome.

    Each row is a query (blue frame) followed by its k nearest gallery images
    in the raw ranking: green frame for a true match, red for a wrong id and
    grey for an item the protocol ignores (junk, or same id and same camera;
    with ``different_camera_only`` any item from the query's camera), so one
    sees what the metric skips. Titles give the query's pid, camera and AP, and
    each gallery item's rank and distance.

    Args:
        dist: (num_query, num_gallery) distances.
        query_table, gallery_table: tables with path, pid and camid columns.
        out_path: image file to write, replaced atomically.
        num_queries: rows to draw (default 8).
        top_k: gallery images per row (default 10).
        worst_first: draw the queries with the lowest AP (default False: a
            random sample, drawn with ``seed``, of the queries with a true match).
        different_camera_only: score and frame with the "-nd" rule.
        query_indices: explicit query rows to draw (overrides the choice above).
        seed: seed of the random sample (default 0).
        image_size: (height, width) of each thumbnail (default (128, 64)).

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
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(
        dist, query_table["pid"], gallery_table["pid"], query_table["camid"], gallery_table["camid"]
    )
    result = rank_metrics(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=1,
        different_camera_only=different_camera_only,
    )  # fmt: skip
    chosen = _choose_queries(
        result.average_precision, num_queries, worst_first, query_indices, seed
    )
    ap = result.average_precision
    top_k = min(int(top_k), dist.shape[1])

    q_paths = query_table["path"].to_numpy()
    g_paths = gallery_table["path"].to_numpy()
    border = max(2, image_size[1] // 20)
    figure = _figure(0.75 * (top_k + 1) + 0.5, 1.6 * len(chosen) + 0.3)
    grid = figure.add_gridspec(len(chosen), top_k + 1, wspace=0.08, hspace=0.35)
    for row, q in enumerate(chosen):
        ranked = np.argsort(dist[q], kind="stable")[:top_k]
        same_cam = _same_camera(q_camids[q], g_camids[ranked])
        same_id = g_pids[ranked] == q_pids[q]
        ignored = (g_pids[ranked] == -1) | (
            same_cam if different_camera_only else same_cam & same_id
        )
        axes = figure.add_subplot(grid[row, 0])
        axes.imshow(_framed(_read_rgb(q_paths[q], image_size), QUERY, border))
        ap_text = "no match" if np.isnan(ap[q]) else f"AP {100 * ap[q]:.0f}%"
        axes.set_title(f"q{q} id {q_pids[q]}\ncam {q_camids[q]} {ap_text}", fontsize=6)
        axes.axis("off")
        for col, g in enumerate(ranked, start=1):
            colour = IGNORED if ignored[col - 1] else HIT if same_id[col - 1] else MISS
            axes = figure.add_subplot(grid[row, col])
            axes.imshow(_framed(_read_rgb(g_paths[g], image_size), colour, border))
            axes.set_title(f"{col}: id {g_pids[g]}\n{dist[q, g]:.3g}", fontsize=6)
            axes.axis("off")
    return _save(figure, out_path)
