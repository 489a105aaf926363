"""SODA_c (Fujita et al., "SODA: Story Oriented Dense Video Captioning Evaluation Framework",
ECCV 2020), written from the paper's definition.

Dense captioning is judged as a story: the predicted events, in temporal order, are matched
one-to-one and order-preservingly to the ground-truth events, choosing the matching that
maximises the sum of IoU(g, p) x caption_score(g, p). With S that maximal sum,
precision = S / |P|, recall = S / |G|, and SODA_c is their F-measure. Redundant or missing
events lower it, which per-pair metrics averaged over tIoU thresholds do not see.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards.captions import CaptionScorer, get_caption_scorer
from rewards.iou import interval_iou
from rlvid.data.sample import Event


def optimal_matching(weights: Sequence[Sequence[float]]) -> tuple[float, list[tuple[int, int]]]:
    """Order-preserving one-to-one matching of rows to columns maximising the summed weight.

    Dynamic programming as for a longest common subsequence: best[i][j] is the best total using
    the first i rows and first j columns, = max(best[i-1][j], best[i][j-1],
    best[i-1][j-1] + w[i-1][j-1]). Returns the best total and the matched (row, column) pairs in
    order (pairs of weight 0 are left out).
    """
    m = len(weights)
    n = len(weights[0]) if m else 0
    best = [[0.0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        row, prev, w = best[i], best[i - 1], weights[i - 1]
        for j in range(1, n + 1):
            diag = prev[j - 1] + w[j - 1]
            up, left = prev[j], row[j - 1]
            row[j] = diag if diag > up and diag > left else (up if up >= left else left)
    pairs: list[tuple[int, int]] = []
    i, j = m, n
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            if weights[i - 1][j - 1] > 0:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
    pairs.reverse()
    return best[m][n], pairs


def _sorted(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.start, e.end))


def _f_measure(total: float, n_pred: int, n_gt: int) -> float:
    if total <= 0.0:
        return 0.0
    p, r = total / n_pred, total / n_gt
    return 2.0 * p * r / (p + r)


def soda_c_many(
    preds: Sequence[Sequence[Event]],
    gts: Sequence[Sequence[Event]],
    scorer: str | CaptionScorer = "meteor",
) -> list[float]:
    """SODA_c of each (predicted events, ground-truth events) video. Caption scores are only
    computed for pairs that overlap; with a batchable scorer (METEOR) in one call for all videos."""
    scorer = get_caption_scorer(scorer)
    jobs = []  # per video: sorted gt, sorted pred, overlapping (i, j, iou)
    for p_events, g_events in zip(preds, gts, strict=True):
        p_sorted, g_sorted = _sorted(p_events), _sorted(g_events)
        cells = []
        for i, g in enumerate(g_sorted):
            for j, p in enumerate(p_sorted):
                iou = interval_iou((p.start, p.end), (g.start, g.end))
                if iou > 0.0:
                    cells.append((i, j, iou))
        jobs.append((g_sorted, p_sorted, cells))

    def caption_scores(job_ids: list[int]) -> list[list[float]]:
        hyps = [jobs[k][1][j].caption for k in job_ids for _, j, _ in jobs[k][2]]
        refs = [jobs[k][0][i].caption for k in job_ids for i, _, _ in jobs[k][2]]
        flat = scorer.pairs(hyps, refs) if hyps else []
        out, pos = [], 0
        for k in job_ids:
            out.append(flat[pos : pos + len(jobs[k][2])])
            pos += len(jobs[k][2])
        return out

    if scorer.batchable:
        per_video = caption_scores(list(range(len(jobs))))
    else:
        per_video = [caption_scores([k])[0] for k in range(len(jobs))]

    results = []
    for (g_sorted, p_sorted, cells), scores in zip(jobs, per_video, strict=True):
        if not g_sorted or not p_sorted:
            results.append(0.0)
            continue
        weights = [[0.0] * len(p_sorted) for _ in g_sorted]
        for (i, j, iou), s in zip(cells, scores, strict=True):
            weights[i][j] = iou * s
        total, _ = optimal_matching(weights)
        results.append(_f_measure(total, len(p_sorted), len(g_sorted)))
    return results


def soda_c(pred: Sequence[Event], gt: Sequence[Event], scorer: str | CaptionScorer = "meteor") -> float:
    """SODA_c of one video's predicted events against its ground-truth events."""
    return soda_c_many([pred], [gt], scorer)[0]
