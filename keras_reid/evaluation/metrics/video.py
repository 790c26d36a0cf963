"""Video re-ID: frame features pooled into one feature per tracklet.

The video protocol (MARS, Zheng et al., ECCV 2016) ranks tracklets, not
frames: each tracklet's frame features are averaged (or max-pooled) and the
tracklets are then scored with the Market-1501 rule of
:func:`~keras_reid.evaluation.metrics.rank_metrics` (MARS marks junk tracklets with pid
-1 and distractors with pid 0, like Market-1501, and its gallery holds the
query tracklets, which that rule ignores as same id and same camera).
"""

import numpy as np
import pandas as pd

from keras_reid.errors import ReIDError

POOLING = ("mean", "max")
REPRESENTATIVE = ("first", "middle")


def pool_tracklets(features, table, method="mean", representative="first"):
    """Pool frame features into tracklet features.

    Args:
        features: (num_frames, d) array, row i being the feature of ``table``'s row i.
        table: a video table (columns path, pid, camid, dataset, tracklet[, frame]);
            a tracklet is identified by (dataset, tracklet).
        method: "mean" (default, the usual choice) or "max" (element-wise).
        representative: the frame whose path stands for the tracklet: "first"
            (default) or "middle" (frame ``(n - 1) // 2`` of ``n``, the lower of
            two middles, counted in frame-number order when the table has a
            ``frame`` column, else in table order; what ranked-list figures show).

    Returns:
        ``(pooled, tracklets)``: a float32 (num_tracklets, d) array and a table
        with one row per tracklet, in order of first appearance: path (the
        tracklet's representative frame), pid, camid, dataset, tracklet, num_frames.

    Raises:
        ReIDError: on an unknown method, a table without a tracklet column,
            a length mismatch, or a tracklet whose frames disagree on pid or camid.

    Example:
        >>> q_feats, q_tracks = pool_tracklets(frame_feats, mars.query)
        >>> g_feats, g_tracks = pool_tracklets(gallery_frame_feats, mars.gallery)
        >>> dist = pairwise_distance(q_feats, g_feats)
        >>> rank_metrics(dist, q_tracks.pid, g_tracks.pid, q_tracks.camid, g_tracks.camid)
    """
    if method not in POOLING:
        raise ReIDError(f"unknown pooling {method!r}; expected one of: {', '.join(POOLING)}.")
    if representative not in REPRESENTATIVE:
        raise ReIDError(
            f"unknown representative frame {representative!r}; "
            f"expected one of: {', '.join(REPRESENTATIVE)}."
        )
    if "tracklet" not in table.columns:
        raise ReIDError(
            "pool_tracklets needs a video table with a 'tracklet' column; got columns "
            f"{', '.join(map(str, table.columns))}."
        )
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(table):
        raise ReIDError(
            f"pool_tracklets: features of shape {features.shape} do not match a table of "
            f"{len(table)} frames (expected ({len(table)}, d))."
        )
    if len(table) == 0:
        raise ReIDError("pool_tracklets: the table is empty.")
    keys = ["dataset", "tracklet"] if "dataset" in table.columns else ["tracklet"]
    codes = table.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    sizes = np.diff(np.r_[starts, len(order)])
    ordered = features[order]
    if method == "mean":
        pooled = np.add.reduceat(ordered, starts, axis=0) / sizes[:, None]
    else:
        pooled = np.maximum.reduceat(ordered, starts, axis=0)

    frames = table.iloc[order].reset_index(drop=True)
    for column in ("pid", "camid"):
        values = frames[column].to_numpy()
        mixed = np.flatnonzero(
            np.minimum.reduceat(values, starts) != np.maximum.reduceat(values, starts)
        )
        if mixed.size:
            first = frames.iloc[starts[mixed[0]]]
            raise ReIDError(
                f"pool_tracklets: {mixed.size} tracklet(s) mix several {column} values, e.g. "
                f"tracklet {first['tracklet']} (first frame {first['path']}); check the parser."
            )
    first_frames = frames.iloc[starts]
    tracklets = pd.DataFrame(
        {
            column: first_frames[column].to_numpy()
            for column in ("path", "pid", "camid", "dataset", "tracklet")
            if column in first_frames.columns
        }
    )
    if representative == "middle" and "path" in frames.columns:
        # Within each tracklet, frames in frame-number order (table order on ties).
        within = frames["frame"].to_numpy() if "frame" in frames.columns else np.arange(len(frames))
        by_frame = np.lexsort((np.arange(len(frames)), within, np.repeat(starts, sizes)))
        tracklets["path"] = frames["path"].to_numpy()[by_frame[starts + (sizes - 1) // 2]]
    tracklets["num_frames"] = sizes
    return pooled.astype(np.float32, copy=False), tracklets
