"""Disentanglement metrics: how well each code dimension captures one ground-truth factor.

All metrics take codes ``[N, D]`` (float: a representation, usually the encoder means) and
factors ``[N, F]`` (integer indices, factor ``k`` in ``0 .. factor_sizes[k] - 1``), as numpy
arrays or torch tensors, and return a small dataclass of floats plus the matrices behind
them (numpy). The protocols and defaults are disentanglement_lib's (Locatello et al. 2019),
the reference implementation behind most published numbers; where it deviates from sense
(a pruning index bug, a 0/0), the docstring says what this module does instead.

- **MIG** (Chen et al. 2018): for each factor, the gap between the largest and the
  second-largest mutual information I(z_j; v_k) over code dimensions, divided by the
  factor's entropy; the mean over factors. One dimension per factor scores 1; a factor
  shared by two dimensions scores 0. Two conventions exist and give different numbers:

  * ``mig`` -- disentanglement_lib's: the codes (encoder means) are discretized into
    20 histogram bins per dimension, MI and H(v_k) are the plug-in discrete estimates,
    every factor counts.
  * ``mig_sampled`` -- Chen et al.'s own estimator (rtqichen/beta-tcvae): each data point
    contributes its Gaussian posterior q(z | x_n), H(z_j) and H(z_j | v_k) are Monte Carlo
    estimates under the aggregate posterior, MI is normalized by log(factor size) (the
    entropy of a uniform factor), and their dSprites number leaves out the shape factor.

- **DCI** (Eastwood & Williams 2018): a gradient-boosted-tree classifier per factor gives
  an importance matrix R [D, F]; *disentanglement* is the importance-weighted mean over
  codes of 1 - H_F(code's row), *completeness* the mean over factors of 1 - H_D(factor's
  column), *informativeness* the classifiers' accuracy.
- **SAP** (Kumar et al. 2018): a score per (code, factor) pair -- the test accuracy of a
  linear classifier from that one dimension (discrete factors) or the squared
  correlation (continuous) -- and the mean over factors of the top-two gap.
- **Modularity and explicitness** (Ridgeway & Mozer 2018): a code is modular when its
  mutual information is concentrated on one factor; explicitness is the ROC-AUC of a
  logistic regression from all codes to each factor.
- **FactorVAE score** (Kim & Mnih 2018): fix one factor in a batch, find the code
  dimension with the smallest normalized variance, and score the accuracy of a
  majority-vote classifier from that dimension to the fixed factor.
- **beta-VAE score** (Higgins et al. 2017): fix one factor across pairs, average the
  absolute code differences, and score a linear classifier that predicts the factor.

The first group works on codes already computed (``sample_codes`` draws them from a
``FactorData`` and a representation function); the FactorVAE and beta-VAE scores need to
choose which factors vary, so they sample from the data set themselves.

References:
    Chen, Li, Grosse, Duvenaud (2018). Isolating Sources of Disentanglement in Variational
    Autoencoders. NeurIPS.
    Eastwood, Williams (2018). A Framework for the Quantitative Evaluation of Disentangled
    Representations. ICLR.
    Kumar, Sattigeri, Balakrishnan (2018). Variational Inference of Disentangled Latent
    Concepts from Unlabeled Observations. ICLR.
    Ridgeway, Mozer (2018). Learning Deep Disentangled Embeddings with the F-Statistic
    Loss. NeurIPS.
    Kim, Mnih (2018). Disentangling by Factorising. ICML.
    Higgins et al. (2017). beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework. ICLR.
    Locatello et al. (2019). Challenging Common Assumptions in the Unsupervised Learning
    of Disentangled Representations. ICML. (disentanglement_lib)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor

from ..data.factors import FactorData, require_factors, sample_factors

Array: TypeAlias = "np.ndarray | Tensor"
"""A numpy array or a torch tensor (moved to the CPU and converted)."""

Representation: TypeAlias = Callable[[Tensor], Tensor]
"""Observations ``[N, D_x]`` -> codes ``[N, D]``."""

MAX_REPRESENT_BATCH = 1000
"""The most observations the sampling metrics pass to ``represent`` in one call."""

ZERO_VARIANCE = 1e-12
"""A code dimension whose variance is at most this carries no information (SAP)."""

_ENTROPY_EPS = 1e-11  # disentanglement_lib's smoothing of the DCI importance distributions


# --------------------------------------------------------------------------- inputs


def _numpy(x: Array | Sequence[Any]) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _codes(x: Array, name: str = "codes") -> np.ndarray:
    a = _numpy(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D] (one row per data point), got shape {a.shape}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _factors(x: Array, name: str = "factors") -> np.ndarray:
    a = _numpy(x)
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [N, F] (integer factor indices per data point), got shape {a.shape}"
        )
    if not np.issubdtype(a.dtype, np.integer):
        if not (np.isfinite(a).all() and np.array_equal(a, np.round(a))):
            raise ValueError(f"{name} must hold integer factor indices, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check_rows(a: np.ndarray | Tensor, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of rows (data points): "
            f"{a.shape[0]} != {b.shape[0]}"
        )


def _train_test(
    codes_train: Array, factors_train: Array, codes_test: Array, factors_test: Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ctr, ftr = _codes(codes_train, "codes_train"), _factors(factors_train, "factors_train")
    cte, fte = _codes(codes_test, "codes_test"), _factors(factors_test, "factors_test")
    _check_rows(ctr, ftr, "codes_train", "factors_train")
    _check_rows(cte, fte, "codes_test", "factors_test")
    if ctr.shape[1] != cte.shape[1]:
        raise ValueError(
            f"codes_train and codes_test must have the same dimension: {ctr.shape[1]} != {cte.shape[1]}"
        )
    if ftr.shape[1] != fte.shape[1]:
        raise ValueError(
            f"factors_train and factors_test must have the same number of factors: "
            f"{ftr.shape[1]} != {fte.shape[1]}"
        )
    if ctr.shape[0] == 0 or cte.shape[0] == 0:
        raise ValueError("the training and test sets must not be empty")
    return ctr, ftr, cte, fte


def _require_varying(factors: np.ndarray, name: str) -> None:
    for k in range(factors.shape[1]):
        if np.unique(factors[:, k]).size < 2:
            raise ValueError(
                f"factor {k} takes a single value in {name}: a classifier needs at least two "
                "(sample more points, or leave the constant factor out)"
            )


def _require_two_codes(codes: np.ndarray | Tensor, what: str) -> None:
    if codes.shape[1] < 2:
        raise ValueError(
            f"{what} compares the two most informative code dimensions and needs D >= 2, "
            f"got D = {codes.shape[1]}"
        )


# --------------------------------------------------------------------------- discrete MI


def discretize(codes: Array, bins: int = 20) -> np.ndarray:
    """Each code dimension binned into ``bins`` equal-width bins over its range: ``[N, D]`` int.

    disentanglement_lib's ``_histogram_discretize``: the edges are ``np.histogram``'s for
    that dimension, and a value's bin is ``np.digitize`` against all edges but the last, so
    bins are numbered 1 .. ``bins`` (the maximum falls in the last bin).
    """
    c = _codes(codes)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    out = np.empty(c.shape, dtype=np.int64)
    for d in range(c.shape[1]):
        edges = np.histogram(c[:, d], bins)[1]
        out[:, d] = np.digitize(c[:, d], edges[:-1])
    return out


def mutual_information_matrix(discrete_codes: Array, factors: Array) -> np.ndarray:
    """Plug-in mutual information I(c_d; v_k) in nats between discrete codes and factors: ``[D, F]``."""
    from sklearn.metrics import mutual_info_score

    c, f = _factors(discrete_codes, "discrete_codes"), _factors(factors)
    _check_rows(c, f, "discrete_codes", "factors")
    m = np.zeros((c.shape[1], f.shape[1]))
    for d in range(c.shape[1]):
        for k in range(f.shape[1]):
            m[d, k] = mutual_info_score(f[:, k], c[:, d])
    return m


def factor_entropies(factors: Array) -> np.ndarray:
    """Plug-in entropy H(v_k) in nats of each factor's empirical distribution: ``[F]``."""
    from sklearn.metrics import mutual_info_score

    f = _factors(factors)
    return np.array([mutual_info_score(f[:, k], f[:, k]) for k in range(f.shape[1])])


# --------------------------------------------------------------------------- MIG


@dataclass
class MIGResult:
    """Mutual information gap.

    Attributes:
        score: MIG, the mean of ``per_factor``.
        per_factor: (I_top1 - I_top2) / normalizer for each factor in ``factors_used``.
        mutual_information: I(z_j; v_k) in nats, ``[D, len(factors_used)]``.
        normalizer: each used factor's H(v_k) (disentanglement_lib) or log of its size
            (Chen et al.), nats.
        factors_used: the factor indices the columns refer to.
        convention: which estimator produced it (see the module docstring).
    """

    score: float
    per_factor: np.ndarray
    mutual_information: np.ndarray
    normalizer: np.ndarray
    factors_used: tuple[int, ...]
    convention: str = "disentanglement_lib"


def _gaps(mi: np.ndarray, normalizer: np.ndarray) -> np.ndarray:
    top = -np.sort(-mi, axis=0)  # descending over code dimensions
    return (top[0] - top[1]) / normalizer


def mig(codes: Array, factors: Array, bins: int = 20) -> MIGResult:
    """The mutual information gap in disentanglement_lib's convention (Chen et al. 2018).

    The codes (pass the encoder means) are discretized into ``bins`` histogram bins per
    dimension (``discretize``); for every factor, the gap between the largest and
    second-largest discrete I(z_j; v_k) is divided by the factor's empirical entropy, and
    MIG is the mean over all factors. disentanglement_lib uses 10000 points and 20 bins.

    Raises:
        ValueError: for bad shapes, D < 2, or a factor that is constant over the points
            (zero entropy: its gap would be 0/0).

    References:
        Chen et al. (2018), Isolating Sources of Disentanglement in VAEs, Sec. 5;
        Locatello et al. (2019), disentanglement_lib ``mig.py``.
    """
    c, f = _codes(codes), _factors(factors)
    _check_rows(c, f, "codes", "factors")
    _require_two_codes(c, "MIG")
    entropy = factor_entropies(f)
    constant = [k for k in range(f.shape[1]) if entropy[k] <= 1e-12]
    if constant:
        raise ValueError(
            f"factor(s) {constant} take a single value over the {f.shape[0]} points (zero "
            "entropy), so their normalized gap is undefined; sample more points or drop them"
        )
    mi = mutual_information_matrix(discretize(c, bins), f)
    per_factor = _gaps(mi, entropy)
    return MIGResult(
        score=float(per_factor.mean()),
        per_factor=per_factor,
        mutual_information=mi,
        normalizer=entropy,
        factors_used=tuple(range(f.shape[1])),
    )


def _device_of(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


def _sampled_entropy(
    loc: Tensor,
    scale: Tensor,
    z: Tensor,
    num_samples: int,
    generator: torch.Generator | None,
    chunk: int,
) -> Tensor:
    """-E log q(z_j) per dimension, q(z_j) = (1/M) sum_m N(z_j; loc_mj, scale_mj^2): ``[D]``.

    ``z`` holds one draw from each point's posterior; up to ``num_samples`` of them (a
    random subset, without replacement) are scored against all M points.
    """
    m, d = loc.shape
    if num_samples < m:
        pick = torch.randperm(m, generator=generator, device=_device_of(generator, loc.device))
        z = z[pick[:num_samples].to(loc.device)]
    s = z.shape[0]
    log_norm = -scale.log() - 0.5 * math.log(2 * math.pi)
    inv_scale = scale.reciprocal()
    s_block = max(1, chunk // max(1, m * d))
    m_block = max(1, min(m, chunk // (s_block * d)))
    total = torch.zeros(d, dtype=loc.dtype, device=loc.device)
    for s0 in range(0, s, s_block):
        zs = z[s0 : s0 + s_block]
        acc = torch.full(zs.shape, -math.inf, dtype=loc.dtype, device=loc.device)
        for m0 in range(0, m, m_block):
            sl = slice(m0, m0 + m_block)
            u = (zs[None] - loc[sl, None]) * inv_scale[sl, None]  # [m, s, D]
            acc = torch.logaddexp(acc, torch.logsumexp(log_norm[sl, None] - 0.5 * u * u, 0))
        total += (math.log(m) - acc).sum(0)
    return total / s


@torch.no_grad()
def mig_sampled(
    loc: Array,
    scale: Array,
    factors: Array,
    factor_sizes: Sequence[int],
    factors_used: Sequence[int] | None = None,
    num_samples: int = 10000,
    generator: torch.Generator | None = None,
    chunk: int = 2**22,
) -> MIGResult:
    """The mutual information gap with Chen et al.'s own estimator (rtqichen/beta-tcvae).

    Each data point n has a diagonal Gaussian posterior q(z | x_n) = N(loc_n, scale_n^2);
    one draw z_n ~ q(z | x_n) is taken per point. The marginal entropy
    H(z_j) = -E_{q(z_j)} log q(z_j), with q(z_j) = (1/N) sum_n q(z_j | x_n), is estimated
    from ``num_samples`` of those draws (a random subset; all when there are fewer points)
    with a log-sum-exp over all N points. H(z_j | v_k = a) is the same estimate over the
    points whose factor k is a, and H(z_j | v_k) its average over a weighted by the
    empirical frequencies (Chen et al. use the full grid, where they are uniform). Then
    I(z_j; v_k) = max(H(z_j) - H(z_j | v_k), 0), normalized by log(factor_sizes[k]) -- the
    entropy of a uniform factor, as in their code -- and MIG is the mean over
    ``factors_used`` of the top-two gap.

    Chen et al. report dSprites without the shape factor: with this library's dSprites
    factors (shape, scale, orientation, x, y) pass ``factors_used=(1, 2, 3, 4)``. Their
    numbers use every image of the grid (N = 737280); the cost is about
    N * min(N, num_samples) * D Gaussian log-densities for H(z_j), and less for each factor.

    Args:
        loc, scale: the posterior means and standard deviations, ``[N, D]`` (``scale > 0``).
            Computed in float64 on ``loc``'s device (a CUDA tensor runs there).
        factors: ``[N, F]`` factor indices.
        factor_sizes: the number of values of each of the F factors.
        factors_used: the factors to average over (default all).
        num_samples: posterior draws per entropy estimate (10000 in their code).
        generator: for the posterior draws and the subsets.
        chunk: the most log-density entries (points x draws x D) held at once.

    References:
        Chen et al. (2018), Isolating Sources of Disentanglement in VAEs, Sec. 5 and
        ``disentanglement_metrics.py`` / ``metric_helpers/mi_metric.py``.
    """
    loc_t = torch.as_tensor(loc if isinstance(loc, Tensor) else _numpy(loc)).detach()
    if loc_t.ndim != 2:
        raise ValueError(
            f"loc must be 2-D [N, D] (one row per data point), got shape {tuple(loc_t.shape)}"
        )
    loc_t = loc_t.to(torch.float64)
    scale_t = torch.as_tensor(scale if isinstance(scale, Tensor) else _numpy(scale)).detach()
    scale_t = scale_t.to(device=loc_t.device, dtype=torch.float64)
    if scale_t.shape != loc_t.shape:
        raise ValueError(
            f"scale must have loc's shape {tuple(loc_t.shape)}, got {tuple(scale_t.shape)}"
        )
    if not (torch.isfinite(loc_t).all() and torch.isfinite(scale_t).all()):
        raise ValueError("loc and scale must be finite")
    if not (scale_t > 0).all():
        raise ValueError("scale must be > 0 everywhere (standard deviations of q(z | x))")
    f = _factors(factors)
    _check_rows(loc_t, f, "loc", "factors")
    _require_two_codes(loc_t, "MIG")
    sizes = tuple(int(s) for s in factor_sizes)
    if len(sizes) != f.shape[1]:
        raise ValueError(f"factor_sizes has {len(sizes)} entries for {f.shape[1]} factors")
    if f.size and (f.min() < 0 or (f >= np.array(sizes)).any()):
        raise ValueError(f"factor indices must lie in 0 .. factor_sizes - 1 = {sizes}")
    used = tuple(range(f.shape[1])) if factors_used is None else tuple(int(k) for k in factors_used)
    if not used or len(set(used)) != len(used) or not all(0 <= k < f.shape[1] for k in used):
        raise ValueError(f"factors_used must be distinct factor indices in 0 .. {f.shape[1] - 1}")
    single = [k for k in used if sizes[k] < 2]
    if single:
        raise ValueError(f"factor(s) {single} have one value: log(size) = 0 cannot normalize")
    if num_samples < 1 or chunk < 1:
        raise ValueError("num_samples and chunk must be >= 1")

    n = loc_t.shape[0]
    eps = torch.randn(
        loc_t.shape,
        generator=generator,
        dtype=torch.float64,
        device=_device_of(generator, loc_t.device),
    ).to(loc_t.device)
    z = loc_t + scale_t * eps
    marginal = _sampled_entropy(loc_t, scale_t, z, num_samples, generator, chunk)
    conditional = torch.zeros(loc_t.shape[1], len(used), dtype=torch.float64, device=loc_t.device)
    for col, k in enumerate(used):
        for value in np.unique(f[:, k]):
            idx = torch.as_tensor(np.flatnonzero(f[:, k] == value), device=loc_t.device)
            h = _sampled_entropy(loc_t[idx], scale_t[idx], z[idx], num_samples, generator, chunk)
            conditional[:, col] += h * (len(idx) / n)
    mi = (marginal[:, None] - conditional).clamp(min=0).cpu().numpy()
    normalizer = np.log(np.array([sizes[k] for k in used], dtype=np.float64))
    per_factor = _gaps(mi, normalizer)
    return MIGResult(
        score=float(per_factor.mean()),
        per_factor=per_factor,
        mutual_information=mi,
        normalizer=normalizer,
        factors_used=used,
        convention="Chen et al. 2018",
    )


# --------------------------------------------------------------------------- DCI


@dataclass
class DCIResult:
    """Disentanglement, completeness and informativeness.

    Attributes:
        disentanglement: sum_d rho_d (1 - H_F(P_d.)).
        completeness: sum_k w_k (1 - H_D(P_.k)), w_k the factor's share of the importance
            (1/F when every classifier's importances sum to one, as trees' do).
        informativeness_train, informativeness_test: mean classification accuracy over
            factors (disentanglement_lib's ``informativeness_*``; they are accuracies).
        importance_matrix: R [D, F], ``|feature_importances_|`` of factor k's classifier.
        disentanglement_per_code: 1 - H_F(P_d.) ``[D]``.
        completeness_per_factor: 1 - H_D(P_.k) ``[F]``.
    """

    disentanglement: float
    completeness: float
    informativeness_train: float
    informativeness_test: float
    importance_matrix: np.ndarray
    disentanglement_per_code: np.ndarray
    completeness_per_factor: np.ndarray


def _one_minus_entropy(weights: np.ndarray) -> np.ndarray:
    """1 - H(p) / log(n) for each row of ``weights`` [R, n], p the row normalized (+1e-11).

    With n == 1 the distribution is a point mass: entropy 0, score 1.
    """
    n = weights.shape[1]
    if n == 1:
        return np.ones(weights.shape[0])
    p = weights + _ENTROPY_EPS
    p = p / p.sum(1, keepdims=True)
    return 1.0 - (-(p * np.log(p)).sum(1) / math.log(n))


def _disentanglement_completeness(
    importance: np.ndarray,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    per_code = _one_minus_entropy(importance)
    per_factor = _one_minus_entropy(importance.T)
    total = importance.sum()
    if total <= 0:  # no classifier used any code: nothing is disentangled or complete
        return 0.0, 0.0, per_code, per_factor
    rho = importance.sum(1) / total
    w = importance.sum(0) / total
    return float(rho @ per_code), float(w @ per_factor), per_code, per_factor


def dci(
    codes_train: Array,
    factors_train: Array,
    codes_test: Array,
    factors_test: Array,
    model: Callable[[], Any] | None = None,
) -> DCIResult:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    As in disentanglement_lib: for each factor, a classifier (default scikit-learn's
    ``GradientBoostingClassifier()`` with default arguments, the published protocol) is fit
    on the training codes; its ``|feature_importances_|`` is that factor's column of the
    importance matrix R [D, F]. With P_d. the row of R normalized and rho_d = row sum /
    total, disentanglement = sum_d rho_d (1 - H_F(P_d.)) (entropy base F);
    completeness = sum_k w_k (1 - H_D(P_.k)) with columns normalized, base D, and
    w_k = column sum / total (disentanglement_lib's weighting, the plain mean over factors
    when each column sums to one). Informativeness is the mean train / test accuracy.
    A zero importance matrix (no classifier split on any code) scores 0 on both.
    disentanglement_lib uses 10000 training and 5000 test points.

    Args:
        model: a factory ``() -> classifier`` with ``fit``, ``predict`` and
            ``feature_importances_`` (e.g. a faster or seeded tree ensemble); one is built
            per factor.

    References:
        Eastwood, Williams (2018), A Framework for the Quantitative Evaluation of
        Disentangled Representations, Sec. 2; disentanglement_lib ``dci.py``.
    """
    ctr, ftr, cte, fte = _train_test(codes_train, factors_train, codes_test, factors_test)
    _require_varying(ftr, "factors_train")
    if model is None:
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier
    d, nf = ctr.shape[1], ftr.shape[1]
    importance = np.zeros((d, nf))
    acc_train, acc_test = [], []
    for k in range(nf):
        clf = model()
        clf.fit(ctr, ftr[:, k])
        imp = np.abs(np.asarray(clf.feature_importances_, dtype=np.float64))
        if imp.shape != (d,):
            raise ValueError(f"the classifier gave {imp.shape} feature importances for D = {d}")
        importance[:, k] = imp
        acc_train.append(float(np.mean(clf.predict(ctr) == ftr[:, k])))
        acc_test.append(float(np.mean(clf.predict(cte) == fte[:, k])))
    dis, com, per_code, per_factor = _disentanglement_completeness(importance)
    return DCIResult(
        disentanglement=dis,
        completeness=com,
        informativeness_train=float(np.mean(acc_train)),
        informativeness_test=float(np.mean(acc_test)),
        importance_matrix=importance,
        disentanglement_per_code=per_code,
        completeness_per_factor=per_factor,
    )


# --------------------------------------------------------------------------- SAP


@dataclass
class SAPResult:
    """Separated attribute predictability.

    Attributes:
        score: SAP, the mean of ``per_factor``.
        per_factor: top-1 minus top-2 score over code dimensions, per factor ``[F]``.
        score_matrix: S [D, F], the predictability of factor k from code dimension d alone.
    """

    score: float
    per_factor: np.ndarray
    score_matrix: np.ndarray


def sap(
    codes_train: Array,
    factors_train: Array,
    codes_test: Array,
    factors_test: Array,
    continuous: bool = False,
) -> SAPResult:
    """The SAP score (Kumar et al. 2018), as in disentanglement_lib.

    The score matrix S [D, F]: for discrete factors (``continuous=False``, the protocol for
    dSprites), the test accuracy of ``LinearSVC(C=0.01, class_weight="balanced")`` fit on
    the single training code dimension; for continuous factors, the R^2 of a linear fit,
    i.e. the squared correlation, on the training data (the test set is then unused).
    SAP = mean over factors of the largest minus the second-largest entry of its column.

    A code dimension whose training variance is at most ``ZERO_VARIANCE`` scores 0 for
    every factor. disentanglement_lib does this for continuous factors only; for discrete
    ones it fits the SVM anyway, which predicts a single class -- chance-level accuracy from
    a dimension that carries no information. The SVM is seeded (``random_state=0``) so the
    score is reproducible; disentanglement_lib leaves it unseeded. disentanglement_lib uses
    10000 training and 5000 test points.

    References:
        Kumar, Sattigeri, Balakrishnan (2018), Variational Inference of Disentangled Latent
        Concepts from Unlabeled Observations, Sec. 3; disentanglement_lib ``sap_score.py``.
    """
    ctr, ftr, cte, fte = _train_test(codes_train, factors_train, codes_test, factors_test)
    _require_two_codes(ctr, "SAP")
    if not continuous:
        _require_varying(ftr, "factors_train")
    from sklearn.svm import LinearSVC

    d, nf = ctr.shape[1], ftr.shape[1]
    s = np.zeros((d, nf))
    for i in range(d):
        x = ctr[:, i]
        var_x = x.var(ddof=1) if len(x) > 1 else 0.0
        if var_x <= ZERO_VARIANCE:
            continue
        for k in range(nf):
            y = ftr[:, k]
            if continuous:
                var_y = y.var(ddof=1) if len(y) > 1 else 0.0
                if var_y > ZERO_VARIANCE:
                    cov = np.cov(x, y.astype(np.float64), ddof=1)[0, 1]
                    s[i, k] = cov**2 / (var_x * var_y)
            else:
                clf = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
                clf.fit(x[:, None], y)
                s[i, k] = float(np.mean(clf.predict(cte[:, i, None]) == fte[:, k]))
    top = -np.sort(-s, axis=0)
    per_factor = top[0] - top[1]
    return SAPResult(score=float(per_factor.mean()), per_factor=per_factor, score_matrix=s)


# --------------------------------------------------------------------------- modularity


@dataclass
class ModularityResult:
    """Modularity and explicitness.

    Attributes:
        modularity: mean of ``modularity_per_code``.
        explicitness_train, explicitness_test: mean over factors of the ROC-AUC.
        modularity_per_code: 1 - deviation of each code dimension ``[D]`` (0 for a
            dimension with no mutual information with any factor).
        explicitness_per_factor_train, explicitness_per_factor_test: ``[F]``.
        mutual_information: the discrete MI matrix [D, F] (nats) modularity uses.
    """

    modularity: float
    explicitness_train: float
    explicitness_test: float
    modularity_per_code: np.ndarray
    explicitness_per_factor_train: np.ndarray
    explicitness_per_factor_test: np.ndarray
    mutual_information: np.ndarray


def _modularity_per_code(mi: np.ndarray) -> np.ndarray:
    """1 - sum_k (m_dk - t_dk)^2 / (theta_d^2 (F - 1)), t_d keeping only the max theta_d."""
    sq = np.square(mi)
    theta_sq = sq.max(1)
    nf = mi.shape[1]
    out = np.zeros(mi.shape[0])
    live = theta_sq > 0
    if nf == 1:
        out[live] = 1.0
        return out
    deviation = (sq[live].sum(1) - theta_sq[live]) / (theta_sq[live] * (nf - 1))
    out[live] = 1.0 - deviation
    return out


def _auc_per_class(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    scores = []
    for j, c in enumerate(classes):
        positive = y == c
        if positive.any() and not positive.all():
            scores.append(roc_auc_score(positive, proba[:, j]))
    return float(np.mean(scores)) if scores else math.nan


def modularity_explicitness(
    codes_train: Array,
    factors_train: Array,
    codes_test: Array,
    factors_test: Array,
    bins: int = 20,
) -> ModularityResult:
    """Modularity and explicitness (Ridgeway & Mozer 2018), as in disentanglement_lib.

    *Modularity* uses the discrete mutual information m [D, F] of the training codes
    (``discretize`` with ``bins``, then ``mutual_information_matrix``): for each code
    dimension, theta = max_k m_dk and the template t keeps only that entry;
    deviation = sum_k (m_dk - t_dk)^2 / (theta^2 (F - 1)) lies in [0, 1], and
    modularity = mean over codes of 1 - deviation. A code dimension with theta = 0 (no
    information about any factor) scores 0, i.e. counts as deviation 1 -- disentanglement_lib's
    convention: a dead dimension earns no modularity credit, where 0/0 would otherwise
    make it NaN (or, read as deviation 0, perfectly modular). With F = 1 every informative
    dimension scores 1.

    *Explicitness*: the codes are standardized with the training mean and standard
    deviation (a constant dimension is left unscaled); per factor a scikit-learn
    ``LogisticRegression()`` is fit on all codes, and the score is the ROC-AUC of each
    class's predicted probability against that class's indicator, averaged over the classes
    (one-vs-rest macro AUC, disentanglement_lib's ``MultiLabelBinarizer`` + ``roc_auc_score``);
    explicitness is the mean over factors, on the training and the test set. Classes
    absent from a set (or unseen in training) are skipped rather than raising (a set in
    which no class can be scored gives NaN).
    disentanglement_lib ran an old scikit-learn whose ``LogisticRegression()`` default was
    one-vs-rest liblinear; the current default (multinomial lbfgs) gives close but not
    identical numbers.

    References:
        Ridgeway, Mozer (2018), Learning Deep Disentangled Embeddings with the F-Statistic
        Loss, Sec. 3; disentanglement_lib ``modularity_explicitness.py``.
    """
    ctr, ftr, cte, fte = _train_test(codes_train, factors_train, codes_test, factors_test)
    _require_varying(ftr, "factors_train")
    from sklearn.linear_model import LogisticRegression

    mi = mutual_information_matrix(discretize(ctr, bins), ftr)
    per_code = _modularity_per_code(mi)
    mean, std = ctr.mean(0), ctr.std(0)
    std = np.where(std > 0, std, 1.0)
    xtr, xte = (ctr - mean) / std, (cte - mean) / std
    exp_train, exp_test = np.zeros(ftr.shape[1]), np.zeros(ftr.shape[1])
    for k in range(ftr.shape[1]):
        clf = LogisticRegression().fit(xtr, ftr[:, k])
        exp_train[k] = _auc_per_class(ftr[:, k], clf.predict_proba(xtr), clf.classes_)
        exp_test[k] = _auc_per_class(fte[:, k], clf.predict_proba(xte), clf.classes_)
    return ModularityResult(
        modularity=float(per_code.mean()),
        explicitness_train=float(exp_train.mean()),
        explicitness_test=float(exp_test.mean()),
        modularity_per_code=per_code,
        explicitness_per_factor_train=exp_train,
        explicitness_per_factor_test=exp_test,
        mutual_information=mi,
    )


# --------------------------------------------------------------------------- sampling


def _check_count(name: str, value: int, least: int) -> None:
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")


@torch.no_grad()
def _represent(represent: Representation, data: FactorData, factors: Tensor) -> np.ndarray:
    """Codes ``[N, D]`` (float64 numpy) of the observations rendered from ``factors``."""
    parts = []
    for start in range(0, factors.shape[0], MAX_REPRESENT_BATCH):
        f = factors[start : start + MAX_REPRESENT_BATCH]
        codes = torch.as_tensor(represent(data.render(f)))
        if codes.ndim != 2 or codes.shape[0] != f.shape[0]:
            raise ValueError(
                f"represent must map {f.shape[0]} observations to codes [{f.shape[0]}, D], "
                f"got shape {tuple(codes.shape)}"
            )
        parts.append(codes.detach().cpu().to(torch.float64).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0))


@torch.no_grad()
def sample_codes(
    represent: Representation,
    data: FactorData,
    num: int,
    generator: torch.Generator | None = None,
    batch_size: int = 1000,
) -> tuple[Tensor, Tensor]:
    """``num`` random factor combinations and their codes: ``(codes [num, D], factors [num, F])``.

    Factors come from ``sample_factors`` (uniform over the grid), codes from
    ``represent(data.render(factors))`` in batches of ``batch_size``; codes are returned on
    the CPU. ``represent`` receives what ``render`` returns (CPU tensors for the built-in
    data sets): move them to the model's device inside it.
    """
    data = require_factors(data, "sample_codes")
    _check_count("num", num, 1)
    _check_count("batch_size", batch_size, 1)
    factors = sample_factors(data, num, generator)
    parts = []
    for start in range(0, num, batch_size):
        f = factors[start : start + batch_size]
        codes = torch.as_tensor(represent(data.render(f)))
        if codes.ndim != 2 or codes.shape[0] != f.shape[0]:
            raise ValueError(
                f"represent must map {f.shape[0]} observations to codes [{f.shape[0]}, D], "
                f"got shape {tuple(codes.shape)}"
            )
        parts.append(codes.detach().cpu())
    return torch.cat(parts), factors


@dataclass
class FactorVAEScoreResult:
    """The FactorVAE score.

    Attributes:
        train_accuracy, eval_accuracy: of the majority-vote classifier; ``score`` is the
            evaluation accuracy (the published number).
        num_active_dims: code dimensions that survived pruning.
        active_dims: their mask ``[D]``.
        global_variances: each code dimension's variance over random observations ``[D]``.
        train_votes, eval_votes: ``[F, D]`` counts of (fixed factor, argmin dimension).
        all_pruned: no dimension was active; both accuracies are then 0.
    """

    train_accuracy: float
    eval_accuracy: float
    num_active_dims: int
    active_dims: np.ndarray
    global_variances: np.ndarray
    train_votes: np.ndarray
    eval_votes: np.ndarray
    all_pruned: bool = False

    @property
    def score(self) -> float:
        return self.eval_accuracy


def _fix_one_factor(
    data: FactorData, groups: int, batch_size: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``groups`` random factors k and batches ``[groups, batch_size, F]`` sharing factor k."""
    nf = len(data.factor_sizes)
    k = torch.randint(nf, (groups,), generator=generator)
    f = sample_factors(data, groups * batch_size, generator).reshape(groups, batch_size, nf)
    rows = torch.arange(groups)
    f[rows, :, k] = f[rows, 0, k][:, None]
    return k, f


def _factor_vae_votes(
    represent: Representation,
    data: FactorData,
    batch_size: int,
    num_points: int,
    generator: torch.Generator | None,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    nf, d = len(data.factor_sizes), global_variances.shape[0]
    active_idx = np.flatnonzero(active)
    votes = np.zeros((nf, d), dtype=np.int64)
    per_call = max(1, MAX_REPRESENT_BATCH // batch_size)
    for start in range(0, num_points, per_call):
        g = min(per_call, num_points - start)
        k, f = _fix_one_factor(data, g, batch_size, generator)
        codes = _represent(represent, data, f.reshape(g * batch_size, nf)).reshape(
            g, batch_size, -1
        )
        local = codes.var(axis=1, ddof=1)
        ratio = local[:, active_idx] / global_variances[active_idx]
        np.add.at(votes, (k.numpy(), active_idx[ratio.argmin(1)]), 1)
    return votes


@torch.no_grad()
def factor_vae_score(
    represent: Representation,
    data: FactorData,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
) -> FactorVAEScoreResult:
    """The FactorVAE disentanglement score (Kim & Mnih 2018), as in disentanglement_lib.

    The global variance of each code dimension is estimated from ``num_variance_estimate``
    random observations (unbiased). A dimension is *active* when its global standard
    deviation is at least ``prune_threshold`` -- disentanglement_lib's ``_prune_dims``
    compares sqrt(variance) >= threshold, with threshold 0.05 in its study configurations
    (its function default is 0); dimensions with zero variance are always pruned. Each vote:
    a random factor k, a batch of ``batch_size`` factor draws with factor k set to one
    random value, and the active dimension with the smallest variance of the codes divided
    by the global standard deviation (local variance / global variance) -> (k, dimension).
    The classifier maps each dimension to its majority factor over ``num_train`` votes; its
    accuracy on those and on ``num_eval`` fresh votes is reported. With no active dimension
    both accuracies are 0 and ``all_pruned`` is set.

    disentanglement_lib indexes the vote matrix with the argmin's position among the
    *active* dimensions rather than the dimension itself (equal when none is pruned) and
    reports ``num_active_dims`` as D; here both refer to the real dimensions.

    Args:
        represent: observations ``[n, D_x]`` -> codes ``[n, D]`` (e.g. the encoder mean);
            called on at most ``MAX_REPRESENT_BATCH`` (1000) observations at a time.
        data: a ``FactorData``.

    References:
        Kim, Mnih (2018), Disentangling by Factorising, Sec. 4; disentanglement_lib
        ``factor_vae.py``.
    """
    data = require_factors(data, "the FactorVAE score")
    _check_count("batch_size", batch_size, 2)
    _check_count("num_train", num_train, 1)
    _check_count("num_eval", num_eval, 1)
    _check_count("num_variance_estimate", num_variance_estimate, 2)
    codes = _represent(represent, data, sample_factors(data, num_variance_estimate, generator))
    global_variances = codes.var(0, ddof=1)
    active = (np.sqrt(global_variances) >= prune_threshold) & (global_variances > 0)
    nf, d = len(data.factor_sizes), codes.shape[1]
    if not active.any():
        empty = np.zeros((nf, d), dtype=np.int64)
        return FactorVAEScoreResult(
            0.0, 0.0, 0, active, global_variances, empty, empty.copy(), all_pruned=True
        )
    train_votes = _factor_vae_votes(
        represent, data, batch_size, num_train, generator, global_variances, active
    )
    classifier = train_votes.argmax(0)  # [D]: the majority factor of each dimension
    dims = np.arange(d)
    train_accuracy = train_votes[classifier, dims].sum() / train_votes.sum()
    eval_votes = _factor_vae_votes(
        represent, data, batch_size, num_eval, generator, global_variances, active
    )
    eval_accuracy = eval_votes[classifier, dims].sum() / eval_votes.sum()
    return FactorVAEScoreResult(
        train_accuracy=float(train_accuracy),
        eval_accuracy=float(eval_accuracy),
        num_active_dims=int(active.sum()),
        active_dims=active,
        global_variances=global_variances,
        train_votes=train_votes,
        eval_votes=eval_votes,
    )


@dataclass
class BetaVAEScoreResult:
    """The beta-VAE score: accuracy of the linear classifier; ``score`` is ``eval_accuracy``."""

    train_accuracy: float
    eval_accuracy: float

    @property
    def score(self) -> float:
        return self.eval_accuracy


def _beta_vae_points(
    represent: Representation,
    data: FactorData,
    batch_size: int,
    num_points: int,
    generator: torch.Generator | None,
) -> tuple[np.ndarray, np.ndarray]:
    nf = len(data.factor_sizes)
    features, labels = [], []
    per_call = max(1, MAX_REPRESENT_BATCH // (2 * batch_size))
    for start in range(0, num_points, per_call):
        g = min(per_call, num_points - start)
        k = torch.randint(nf, (g,), generator=generator)
        f1 = sample_factors(data, g * batch_size, generator).reshape(g, batch_size, nf)
        f2 = sample_factors(data, g * batch_size, generator).reshape(g, batch_size, nf)
        rows = torch.arange(g)
        f2[rows, :, k] = f1[rows, :, k]
        both = torch.cat([f1, f2]).reshape(2 * g * batch_size, nf)
        codes = _represent(represent, data, both).reshape(2, g, batch_size, -1)
        features.append(np.abs(codes[0] - codes[1]).mean(1))
        labels.append(k.numpy())
    return np.concatenate(features), np.concatenate(labels)


@torch.no_grad()
def beta_vae_score(
    represent: Representation,
    data: FactorData,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> BetaVAEScoreResult:
    """The beta-VAE disentanglement score (Higgins et al. 2017), as in disentanglement_lib.

    Each point: a random factor k and two batches of ``batch_size`` factor draws, pair i
    of which shares factor k's value; the feature is the mean over the batch of
    |code(x1_i) - code(x2_i)| ``[D]`` and the label is k. A scikit-learn
    ``LogisticRegression()`` is fit on ``num_train`` points; the score is its accuracy
    on them and on ``num_eval`` fresh points.

    Args:
        represent: observations ``[n, D_x]`` -> codes ``[n, D]``; called on at most
            ``MAX_REPRESENT_BATCH`` (1000) observations at a time.
        data: a ``FactorData``.

    References:
        Higgins et al. (2017), beta-VAE: Learning Basic Visual Concepts with a Constrained
        Variational Framework, Sec. 3; disentanglement_lib ``beta_vae.py``.
    """
    data = require_factors(data, "the beta-VAE score")
    _check_count("batch_size", batch_size, 1)
    _check_count("num_train", num_train, 2)
    _check_count("num_eval", num_eval, 1)
    from sklearn.linear_model import LogisticRegression

    x_train, y_train = _beta_vae_points(represent, data, batch_size, num_train, generator)
    if np.unique(y_train).size < 2:
        raise ValueError(
            "every training point fixed the same factor; increase num_train (or the data "
            "set has a single factor)"
        )
    clf = LogisticRegression().fit(x_train, y_train)
    train_accuracy = float(np.mean(clf.predict(x_train) == y_train))
    x_eval, y_eval = _beta_vae_points(represent, data, batch_size, num_eval, generator)
    eval_accuracy = float(np.mean(clf.predict(x_eval) == y_eval))
    return BetaVAEScoreResult(train_accuracy=train_accuracy, eval_accuracy=eval_accuracy)


__all__ = [
    "BetaVAEScoreResult",
    "DCIResult",
    "FactorVAEScoreResult",
    "MIGResult",
    "ModularityResult",
    "SAPResult",
    "beta_vae_score",
    "dci",
    "discretize",
    "factor_entropies",
    "factor_vae_score",
    "mig",
    "mig_sampled",
    "modularity_explicitness",
    "mutual_information_matrix",
    "sample_codes",
    "sap",
]
