"""A figure per claim, paper style: a panel per layer, mean over seeds with a +-1 std band."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from app.reproduce import claims as C  # noqa: E402
from app.reproduce.results import Group, band  # noqa: E402
from core.history import History  # noqa: E402

SGD_STYLE = {"color": "tab:gray", "label": "SGD"}
SLO_STYLE = {"color": "tab:red", "label": "SLO"}


def _grid(rows: int, cols: int, width: float = 2.9, height: float = 2.3):
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 0.6, height * rows + 0.35), squeeze=False)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    return fig, axes


def _plot_band(ax, group: Group, key: str, layer: int, color: str, label: str, style: str = "-") -> None:
    steps, mean, std = band(group, key, layer)
    if steps.size == 0:
        return
    ax.plot(steps, mean, style, color=color, label=label, lw=1.4)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def _depth(group: Group) -> int:
    return max((max(h.layers(), default=0) for h in group.values()), default=0)


def _finish(fig, axes, title: str):
    inches = fig.get_figheight()
    for ax in axes.flat:
        if not ax.has_data():
            ax.axis("off")
    handles, labels = next(((h, l) for h, l in (ax.get_legend_handles_labels() for ax in axes.flat) if h), ([], []))
    if handles:
        fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(0.995, 1.0), fontsize=8,
                   ncol=len(labels), frameon=False)
    fig.suptitle(title, fontsize=10, x=0.01, y=1 - 0.06 / inches, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.32 / inches))
    return fig


def fig_early(groups: dict[str, Group], fraction: float = C.EARLY_FRACTION):
    """Claim 1: UC-NFA and C-NFA over the first quarter of training, early window shaded."""
    cols = max((_depth(g) for g in groups.values()), default=1)
    fig, axes = _grid(len(groups) or 1, cols)
    for row, (exp, g) in zip(axes, groups.items()):
        last = max((h.last_step or 0) for h in g.values())
        for l in range(1, _depth(g) + 1):
            ax = row[l - 1]
            _plot_band(ax, g, "uc_nfa", l, "tab:blue", "UC-NFA")
            _plot_band(ax, g, "c_nfa", l, "tab:orange", "C-NFA", "--")
            ax.axvspan(0, fraction * last, color="tab:green", alpha=0.08)
            ax.set_xlim(0, 0.25 * last)
            ax.set_title(f"{exp}, layer {l}", fontsize=8)
    return _finish(fig, axes, f"Claim 1: SGD, first quarter of training; shaded: the early window "
                              f"(first {fraction:.0%})")


def fig_uc_rise(groups: dict[str, Group]):
    """Claim 2: UC-NFA over the whole run (SGD), a panel per layer."""
    cols = max((_depth(g) for g in groups.values()), default=1)
    fig, axes = _grid(len(groups) or 1, cols)
    for row, (exp, g) in zip(axes, groups.items()):
        for l in range(1, _depth(g) + 1):
            _plot_band(row[l - 1], g, "uc_nfa", l, "tab:blue", "UC-NFA")
            row[l - 1].set_title(f"{exp}, layer {l}", fontsize=8)
    return _finish(fig, axes, "Claim 2: UC-NFA during SGD training (mean ± std over seeds)")


def fig_identity(finals: list[dict[str, np.ndarray]]):
    """Claim 3: the two cosine correlations against each other, a panel per layer."""
    pairs = [C.identity_gaps(f) for f in finals]
    depth = max((len(p) for p in pairs), default=1)
    fig, axes = _grid(1, depth, width=2.6, height=2.6)
    for l in range(depth):
        ax = axes[0][l]
        xy = np.array([p[l] for p in pairs if len(p) > l])
        if xy.size == 0:
            continue
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:purple", label="run (final step)")
        worst = np.max(np.abs(xy[:, 0] - xy[:, 1]))
        ax.set_title(f"layer {l + 1}: max |diff| {worst:.1e}", fontsize=8)
        ax.set_xlabel("rho_cos(NFM, AGOP)", fontsize=7)
    axes[0][0].set_ylabel("rho_cos(S², S UᵀKU S)", fontsize=7)
    return _finish(fig, axes, "Claim 3: the NFA identity (cosine correlation)")


def fig_share_gap(by_seed: dict[int, list[History]]):
    """Claim 4: |C-NFA - UC-NFA| against the centered share, a panel per layer, band over seeds."""
    depth = max((max(h.layers(), default=0) for hs in by_seed.values() for h in hs), default=1)
    fig, axes = _grid(1, depth)
    centres = np.array([(lo + hi) / 2 for lo, hi in zip(C.SHARE_BINS, C.SHARE_BINS[1:])])
    for l in range(1, depth + 1):
        ax = axes[0][l - 1]
        table = np.full((len(by_seed), centres.size), np.nan)
        for i, hs in enumerate(by_seed.values()):
            share, gap = C.share_gap_points([_only_layer(h, l) for h in hs])
            ax.scatter(share, gap, s=3, color="0.6", alpha=0.3)
            for lo, hi, g, _ in C.binned_gaps(share, gap):
                table[i, C.SHARE_BINS.index(lo)] = g
        _band_rows(ax, centres, table)
        ax.set_title(f"layer {l}", fontsize=8)
        ax.set_xlabel("centered share of NFM", fontsize=7)
        ax.set_xlim(0, 1)
    axes[0][0].set_ylabel("|C-NFA - UC-NFA|", fontsize=7)
    return _finish(fig, axes, "Claim 4: the gap against the centered term's share (all runs; dots: measurements)")


def _only_layer(h: History, layer: int) -> History:
    return History([r for r in h.rows if r["layer"] == layer])


def _band_rows(ax, x: np.ndarray, table: np.ndarray) -> None:
    ok = np.isfinite(table).any(axis=0)
    if not ok.any():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bin empty in every seed but one
        mean = np.nanmean(table[:, ok], axis=0)
        std = np.nan_to_num(np.nanstd(table[:, ok], axis=0, ddof=1)) if table.shape[0] > 1 else 0 * mean
    ax.plot(x[ok], mean, "o-", color="tab:blue", ms=3, label="mean gap per share bin")
    ax.fill_between(x[ok], mean - std, mean + std, color="tab:blue", alpha=0.2, lw=0)


def fig_slo_layers(base: dict[str, Group], slo: dict[str, dict[int, Group]]):
    """Claim 5: layer l's UC-NFA, SGD against SLO targeted at l (rows: experiments)."""
    cols = max((max(t, default=1) for t in slo.values()), default=1)
    fig, axes = _grid(len(slo) or 1, cols)
    for row, (exp, targets) in zip(axes, slo.items()):
        for l, g in sorted(targets.items()):
            _plot_band(row[l - 1], base.get(exp, {}), "uc_nfa", l, **SGD_STYLE)
            _plot_band(row[l - 1], g, "uc_nfa", l, color="tab:red", label="SLO on this layer")
            row[l - 1].set_title(f"{exp}, layer {l} (SLO target {l})", fontsize=8)
    return _finish(fig, axes, "Claim 5: UC-NFA of layer l, SGD vs SLO targeted at l, same initialisation")


def fig_feature_quality(base: dict[str, Group], slo: dict[str, Group]):
    """Claim 6: feature quality and test loss against step, SGD vs SLO on layer 1 (rows: targets)."""
    fig, axes = _grid(len(slo) or 1, 2)
    for row, (exp, g) in zip(axes, slo.items()):
        for key, ax in (("feature_quality", row[0]), ("test_loss", row[1])):
            _plot_band(ax, base.get(exp, {}), key, 1, **SGD_STYLE)
            _plot_band(ax, g, key, 1, **SLO_STYLE)
            ax.set_title(f"{exp}: {key.replace('_', ' ')}", fontsize=8)
        row[1].set_yscale("log")
    return _finish(fig, axes, "Claim 6: feature quality rho(NFM_1, G*) and test loss, SGD vs SLO on layer 1")


def fig_real_data(base: Group, slo: Group, name: str = "digits"):
    """Claim 7: UC-NFA per layer and test accuracy on real data, SGD vs SLO on layer 1."""
    depth = max(_depth(base), _depth(slo), 1)
    fig, axes = _grid(1, depth + 1)
    for l in range(1, depth + 1):
        _plot_band(axes[0][l - 1], base, "uc_nfa", l, **SGD_STYLE)
        _plot_band(axes[0][l - 1], slo, "uc_nfa", l, **SLO_STYLE)
        axes[0][l - 1].set_title(f"{name}, layer {l}: UC-NFA", fontsize=8)
    _plot_band(axes[0][depth], base, "test_accuracy", 1, **SGD_STYLE)
    _plot_band(axes[0][depth], slo, "test_accuracy", 1, **SLO_STYLE)
    axes[0][depth].set_title("test accuracy", fontsize=8)
    return _finish(fig, axes, f"Claim 7: {name}, SGD vs SLO on layer 1")
