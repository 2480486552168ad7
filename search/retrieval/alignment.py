"""One shared frame for every encoder's gallery map (pure functions over arrays).

Each encoder's t-SNE map is laid out on its own, so its rotation and mirror are arbitrary: the same landmark can sit
top-right under one encoder and bottom-left under another. Generalised Procrustes analysis turns, mirrors, scales
and shifts every map onto their consensus (the mean of the aligned maps, found by iterating), fitted on the photos
all the maps hold. A similarity transform changes no distance ratio on a map, so every map stays exactly as
faithful to its own encoder as it was (its trustworthiness and neighbours are unchanged), and no map is made to look
like another: only where it lies and which way it faces change. After it, a further rotation or mirror of one map
onto another gains next to nothing (`rotation_gain`): what still differs between two maps is what the encoders see
differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes


@dataclass(frozen=True)
class Similarity:
    """x -> scale * (x - centre) @ rotation + offset: a turn or mirror (`rotation`, orthogonal), a uniform scale and
    a shift, the only changes alignment makes to a map."""

    centre: np.ndarray    # (2,)
    rotation: np.ndarray  # (2, 2), orthogonal (a determinant of -1 is a mirror)
    scale: float
    offset: np.ndarray    # (2,)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        out = self.scale * (np.asarray(coords, np.float64) - self.centre) @ self.rotation + self.offset
        return out.astype(np.float32)


def _unit(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centred coordinates of unit Frobenius norm, the centre, and the norm."""
    centre = coords.mean(axis=0)
    centred = coords - centre
    norm = float(np.linalg.norm(centred)) or 1.0
    return centred / norm, centre, norm


def consensus_transforms(maps: Mapping[str, np.ndarray], tol: float = 1e-10,
                         max_iter: int = 100) -> dict[str, Similarity]:
    """Generalised Procrustes analysis of maps of the same photos (same row order): per map, the similarity that
    puts it on the consensus of all of them. The shared frame is centred on the origin, has the maps' mean spread,
    and faces the way the first map does (which is only shifted and scaled)."""
    names = list(maps)
    units, centres, norms = zip(*(_unit(np.asarray(maps[n], np.float64)) for n in names))
    consensus = units[0]
    rotations = [np.eye(2)] * len(names)
    for _ in range(max_iter):
        rotations = [orthogonal_procrustes(u, consensus)[0] for u in units]
        mean = np.mean([u @ r for u, r in zip(units, rotations)], axis=0)
        mean /= np.linalg.norm(mean) or 1.0
        done = np.linalg.norm(mean - consensus) < tol
        consensus = mean
        if done:
            break
    frame = rotations[0].T  # the consensus turned back to the first map's orientation
    spread = float(np.mean(norms))
    return {n: Similarity(c, r @ frame, spread / norm, np.zeros(2))
            for n, c, r, norm in zip(names, centres, rotations, norms)}


def align_maps(coords: Mapping[str, np.ndarray], paths: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Every map in the shared frame: the transforms are fitted on the photos every map holds (each index may hold
    others too), then applied to all of a map's rows. Fewer than 3 shared photos leave the maps as they are."""
    if len(coords) < 2:
        return {n: np.asarray(c, np.float32) for n, c in coords.items()}
    shared = set.intersection(*(set(p) for p in paths.values()))
    if len(shared) < 3:
        return {n: np.asarray(c, np.float32) for n, c in coords.items()}
    first = next(iter(paths.values()))
    order = [p for p in first if p in shared]
    rows = {n: {p: i for i, p in enumerate(ps)} for n, ps in paths.items()}
    fitted = consensus_transforms({n: np.asarray(coords[n], np.float64)[[rows[n][p] for p in order]]
                                   for n in coords})
    return {n: fitted[n](coords[n]) for n in coords}


def rotation_gain(a: np.ndarray, b: np.ndarray) -> float:
    """How much a further rotation or mirror of map `a` onto map `b` (same photos, same rows) improves their fit
    over the best fit by shift and scale alone: 0 when the maps already face the same way, near 1 when one is the
    other turned or mirrored."""
    a = np.asarray(a, np.float64) - np.mean(a, axis=0)
    b = np.asarray(b, np.float64) - np.mean(b, axis=0)
    aa = float((a * a).sum()) or 1.0
    scale_only = float(((a * ((a * b).sum() / aa) - b) ** 2).sum())
    rotation, singular_sum = orthogonal_procrustes(a, b)
    with_rotation = float(((a @ rotation * (singular_sum / aa) - b) ** 2).sum())
    return (scale_only - with_rotation) / scale_only if scale_only > 0 else 0.0
