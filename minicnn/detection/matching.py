"""Which reference boxes learn which object, and which of them a loss sees: the matcher and the balanced sampler of
Faster R-CNN (Ren et al. 2015, "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
section 3.1.2), shared by the region proposal network (anchors) and the RoI heads (proposals).

Matcher (torchvision's det_utils.Matcher, on a batch at once). For a quality matrix q [..., G, N] (the IoU of G
ground-truth boxes with N anchors or proposals) each of the N takes the ground truth of highest quality, m(n) =
argmax_g q[g, n], and keeps it when q[m(n), n] >= high; below `low` it is background (BELOW_LOW_THRESHOLD = -1),
in between it is ignored (BETWEEN_THRESHOLDS = -2). With allow_low_quality_matches (the RPN) every ground truth
also claims the anchors of highest IoU with it, ties included, so that no object is left without an anchor: such
an anchor gets back m(n), its own best ground truth, as in the paper ("the anchor/anchors with the highest IoU
overlap with a ground-truth box") and torchvision. Padding rows (images with fewer objects than the batch's most)
hold a quality of -1 and are never matched. One difference from torchvision: a ground truth that overlaps no
anchor at all (highest IoU 0) claims none, where torchvision would make every anchor of IoU 0 a positive.

BalancedPositiveNegativeSampler (torchvision's, vectorised over images): per image, at most
batch_size_per_image * positive_fraction positives drawn at random from those labelled 1, and negatives (labelled 0)
to fill the batch of batch_size_per_image; labels -1 are never drawn. Draws come from minicnn's host generator, so
mc.manual_seed makes them repeatable.
"""
import numpy as np

from .. import backend
from ..backend import xp_of


class Matcher:
    """matches = Matcher(high_threshold, low_threshold, allow_low_quality_matches)(quality [..., G, N]): int64
    [..., N], the matched ground truth in [0, G), -1 below low_threshold, -2 between the thresholds.

        >>> iou = np.array([[0.9, 0.5, 0.1, 0.2]])      # one object, four anchors
        >>> Matcher(0.7, 0.3)(iou).tolist()
        [0, -2, -1, -1]
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        if not 0 <= low_threshold <= high_threshold <= 1:
            raise ValueError(f"Matcher: expected 0 <= low_threshold <= high_threshold <= 1, got low {low_threshold} "
                             f"and high {high_threshold}")
        self.high_threshold, self.low_threshold = float(high_threshold), float(low_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, quality):
        xp = xp_of(quality)
        if quality.ndim < 2:
            raise ValueError(f"Matcher: expected a quality matrix [..., G, N], got shape {tuple(quality.shape)}")
        if quality.shape[-2] == 0:  # no ground truth: everything is background
            return xp.full(quality.shape[:-2] + quality.shape[-1:], self.BELOW_LOW_THRESHOLD, dtype=np.int64)
        best = quality.argmax(axis=-2)
        best_quality = quality.max(axis=-2)
        matches = xp.where(best_quality >= self.high_threshold, best, self.BETWEEN_THRESHOLDS)
        matches = xp.where(best_quality < self.low_threshold, self.BELOW_LOW_THRESHOLD, matches)
        if self.allow_low_quality_matches:
            highest = quality.max(axis=-1, keepdims=True)  # per ground truth [..., G, 1]
            claimed = ((quality == highest) & (highest > 0)).any(axis=-2)
            matches = xp.where(claimed, best, matches)
        return matches.astype(np.int64)


def rank_within(groups, keys):
    """The rank of each element among the elements of its group, by increasing key (ties by position): int64 [K].

        >>> rank_within(np.array([0, 1, 0, 0]), np.array([0.5, 0.1, 0.2, 0.9])).tolist()
        [1, 0, 0, 2]
    """
    xp = xp_of(groups)
    order = xp.lexsort(xp.stack([keys, groups]))  # the last row is the primary key
    sorted_groups = groups[order]
    first = xp.searchsorted(sorted_groups, sorted_groups, side="left")
    ranks = xp.empty(len(groups), dtype=np.int64)
    ranks[order] = xp.arange(len(groups)) - first
    return ranks


class BalancedPositiveNegativeSampler:
    """(positive, negative) = sampler(labels, image_index): boolean masks of the elements drawn for the loss.

    labels: [B, N] (one row per image) or [K] with image_index [K] saying which image each element belongs to;
    1 positive, 0 negative, -1 ignored. Per image i with P_i positives and Q_i negatives, with n the
    batch_size_per_image:

        positives drawn  p_i = min(P_i, floor(n * positive_fraction))
        negatives drawn  q_i = min(Q_i, n - p_i)

    each a uniformly random subset (the p_i positives of lowest random key), as torchvision's randperm draw.
    """

    def __init__(self, batch_size_per_image, positive_fraction):
        if not isinstance(batch_size_per_image, (int, np.integer)) or batch_size_per_image < 1:
            raise ValueError(f"BalancedPositiveNegativeSampler: batch_size_per_image must be an int >= 1, got "
                             f"{batch_size_per_image!r}")
        if not 0 <= positive_fraction <= 1:
            raise ValueError(f"BalancedPositiveNegativeSampler: positive_fraction must lie in [0, 1], got "
                             f"{positive_fraction!r}")
        self.batch_size_per_image, self.positive_fraction = int(batch_size_per_image), float(positive_fraction)

    def __call__(self, labels, image_index=None):
        xp = xp_of(labels)
        shape = labels.shape
        if image_index is None:
            if labels.ndim != 2:
                raise ValueError(f"BalancedPositiveNegativeSampler: expected labels [B, N] without image_index, got "
                                 f"shape {tuple(shape)}")
            image_index = xp.repeat(xp.arange(shape[0]), shape[1])
        labels = labels.reshape(-1)
        if image_index.shape != labels.shape:
            raise ValueError(f"BalancedPositiveNegativeSampler: image_index {tuple(image_index.shape)} must give the "
                             f"image of each of the {labels.size} labels")
        positive, negative = labels == 1, labels == 0
        images = int(image_index.max()) + 1 if image_index.size else 0
        num_pos = xp.minimum(xp.bincount(image_index[positive], minlength=images),
                             int(self.batch_size_per_image * self.positive_fraction))
        num_neg = xp.minimum(xp.bincount(image_index[negative], minlength=images), self.batch_size_per_image - num_pos)
        keys = xp.asarray(backend.uniform(labels.size, dtype=np.float64))
        category = xp.where(positive, 1, xp.where(negative, 0, 2))
        rank = rank_within(image_index * 3 + category, keys)
        take_pos = positive & (rank < num_pos[image_index])
        take_neg = negative & (rank < num_neg[image_index])
        return take_pos.reshape(shape), take_neg.reshape(shape)
