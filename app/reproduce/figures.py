"""A figure per claim, paper style: a panel per layer, mean over seeds with a +-1 std band."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from app.reproduce import dynamics as Y  # noqa: E402
from app.reproduce.comparisons import CONTROL, slo_arm, targets  # noqa: E402
from app.reproduce.dynamics import BASELINE, layers_of  # noqa: E402
from app.reproduce.identities import alignment_pairs  # noqa: E402
from app.reproduce.results import ExpRuns, Group, band  # noqa: E402
from core.arms import PALETTE  # noqa: E402

DASHES = {"dash": "--", "dot": ":", "solid": "-", "dashdot": "-.", "longdash": (0, (8, 3))}
"""core.arms.PALETTE's dash names as matplotlib line styles."""

ARM_INDEX = {BASELINE: 0, CONTROL: 1}
"""Palette index per arm name; every SLO arm takes the SLO colour (index 2)."""


def arm_style(arm: str) -> dict:
    """Colour, line style and label of an arm, from core.arms.PALETTE (SLO arms share index 2)."""
    color, dash = PALETTE[ARM_INDEX.get(arm, 2)]
    label = {BASELINE: "baseline", CONTROL: "control (SLO boost 1)"}.get(arm, f"SLO on layer {arm[3:]}")
    return {"color": color, "style": DASHES[dash], "label": label}


def _grid(rows: int, cols: int, width: float = 2.9, height: float = 2.3):
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 0.6, height * rows + 0.35), squeeze=False)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    return fig, axes


def _plot_band(ax, group: Group, key: str, layer: int, color: str, label: str, style="-") -> None:
    steps, mean, std = band(group, key, layer)
    if steps.size == 0:
        return
    ax.plot(steps, mean, linestyle=style, color=color, label=label, lw=1.4)
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


def _plot_arms(ax, exp: ExpRuns, arms: list[str], key: str, layer: int) -> None:
    for arm in arms:
        if exp.arm(arm):
            _plot_band(ax, exp.arm(arm), key, layer, **arm_style(arm))


def _mark_early(ax, exp: ExpRuns) -> None:
    ax.axvline(exp.early_step, color="tab:green", lw=0.8, alpha=0.7)


def _cols(exps: dict[str, ExpRuns]) -> int:
    return max((_depth(e.arm(BASELINE)) for e in exps.values()), default=1) or 1


def fig_early(exps: dict[str, ExpRuns]):
    """Claim 1: baseline UC-NFA and C-NFA over the first quarter of training; green line: the early point."""
    fig, axes = _grid(len(exps) or 1, _cols(exps))
    for row, e in zip(axes, exps.values()):
        g = e.arm(BASELINE)
        last = max((h.last_step or 0) for h in g.values()) if g else 1
        for l in layers_of(g):
            ax = row[l - 1]
            _plot_band(ax, g, "uc_nfa", l, "tab:blue", "UC-NFA")
            _plot_band(ax, g, "c_nfa", l, "tab:orange", "C-NFA", "--")
            _mark_early(ax, e)
            ax.set_xlim(0, max(0.25 * last, 2 * e.early_step))
            ax.set_title(f"{e.name}, layer {l}", fontsize=8)
    return _finish(fig, axes, "Claim 1: baseline, first quarter of training; green: the early point "
                              "(end of the warm-up epoch)")


def fig_uc_rise(exps: dict[str, ExpRuns]):
    """Claim 2: baseline UC-NFA over the whole run, a panel per layer; green line: the early point."""
    fig, axes = _grid(len(exps) or 1, _cols(exps))
    for row, e in zip(axes, exps.values()):
        for l in layers_of(e.arm(BASELINE)):
            _plot_band(row[l - 1], e.arm(BASELINE), "uc_nfa", l, "tab:blue", "UC-NFA")
            _plot_band(row[l - 1], e.arm(BASELINE), "nfm_identity", l, "0.5", "rho(NFM, I)", ":")
            _mark_early(row[l - 1], e)
            row[l - 1].set_title(f"{e.name}, layer {l}", fontsize=8)
    return _finish(fig, axes, "Claim 2: baseline UC-NFA during training, with the identity baseline rho(NFM, I)")


def fig_identity(finals: list[dict[str, np.ndarray]]):
    """Identity A: the two cosine correlations against each other, a panel per layer."""
    pairs = [alignment_pairs(f) for f in finals]
    depth = max((len(p) for p in pairs), default=1)
    fig, axes = _grid(1, depth, width=2.6, height=2.6)
    for l in range(depth):
        ax = axes[0][l]
        xy = np.array([p[l] for p in pairs if len(p) > l])
        if xy.size == 0:
            continue
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:purple", label="run (last step)")
        worst = np.max(np.abs(xy[:, 0] - xy[:, 1]))
        ax.set_title(f"layer {l + 1}: max |diff| {worst:.1e}", fontsize=8)
        ax.set_xlabel("rho_cos(NFM, AGOP)", fontsize=7)
    axes[0][0].set_ylabel("rho_cos(S², S UᵀKU S)", fontsize=7)
    return _finish(fig, axes, "Identity A (a check of this code): cosine correlation and alignment")


def fig_share_gap(exps: dict[str, ExpRuns]):
    """Claim 3: |C-NFA - UC-NFA| against the centered share, a panel per layer, every arm pooled."""
    depth = max((_depth(g) for e in exps.values() for g in e.arms.values()), default=1) or 1
    fig, axes = _grid(1, depth)
    centres = np.array([(lo + hi) / 2 for lo, hi in zip(Y.SHARE_BINS, Y.SHARE_BINS[1:])])
    seeds = sorted({s for e in exps.values() for g in e.arms.values() for s in g})
    for l in range(1, depth + 1):
        ax = axes[0][l - 1]
        table = np.full((len(seeds), centres.size), np.nan)
        only = [_only_layer(e, l) for e in exps.values()]
        for i, seed in enumerate(seeds):
            share, gap, _ = Y.share_gap_points(only, seed)
            ax.scatter(share, gap, s=3, color="0.6", alpha=0.3)
            for lo, hi, g, _ in Y.binned_gaps(share, gap):
                table[i, Y.SHARE_BINS.index(lo)] = g
        _band_rows(ax, centres, table)
        ax.set_title(f"layer {l}", fontsize=8)
        ax.set_xlabel("centered share of NFM", fontsize=7)
        ax.set_xlim(0, 1)
    axes[0][0].set_ylabel("|C-NFA - UC-NFA|", fontsize=7)
    return _finish(fig, axes, "Claim 3: the gap against the centered term's share (all arms; dots: measurements)")


def _only_layer(e: ExpRuns, layer: int) -> ExpRuns:
    arms = {a: {s: h.for_layer(layer) for s, h in g.items()}
            for a, g in e.arms.items()}
    return ExpRuns(e.name, arms, e.early_step, e.input_dim, e.width)


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


def fig_slo_layers(exps: dict[str, ExpRuns]):
    """Claim 4: layer l's UC-NFA, baseline, control and SLO targeted at l (rows: experiments)."""
    cols = max((max(targets(e), default=1) for e in exps.values()), default=1)
    fig, axes = _grid(len(exps) or 1, cols)
    for row, e in zip(axes, exps.values()):
        for l in targets(e):
            _plot_arms(row[l - 1], e, [BASELINE, CONTROL, slo_arm(l)], "uc_nfa", l)
            row[l - 1].set_title(f"{e.name}, layer {l} (SLO target {l})", fontsize=8)
    return _finish(fig, axes, "Claim 4: UC-NFA of layer l: baseline, control and SLO on l, one initialisation")


def fig_feature_quality(exps: dict[str, ExpRuns]):
    """Claim 5: feature quality and test loss against step, three arms (rows: targets)."""
    fig, axes = _grid(len(exps) or 1, 2)
    for row, e in zip(axes, exps.values()):
        for key, ax in (("feature_quality", row[0]), ("test_loss", row[1])):
            _plot_arms(ax, e, [BASELINE, CONTROL, slo_arm(1)], key, 1)
            ax.set_title(f"{e.name}: {key.replace('_', ' ')}", fontsize=8)
        row[1].set_yscale("log")
    return _finish(fig, axes, "Claim 5: feature quality rho(NFM_1, G*) and test loss, three arms")


def fig_real_data(exp: ExpRuns | None):
    """Claim 6: UC-NFA per layer and test accuracy on real data, three arms."""
    if exp is None:
        return _finish(*_grid(1, 1), "Claim 6: no real-data runs")
    depth = max(_depth(exp.arm(BASELINE)), 1)
    fig, axes = _grid(1, depth + 1)
    arms = [BASELINE, CONTROL, slo_arm(1)]
    for l in range(1, depth + 1):
        _plot_arms(axes[0][l - 1], exp, arms, "uc_nfa", l)
        axes[0][l - 1].set_title(f"{exp.name}, layer {l}: UC-NFA", fontsize=8)
    _plot_arms(axes[0][depth], exp, arms, "test_accuracy", 1)
    axes[0][depth].set_title("test accuracy", fontsize=8)
    return _finish(fig, axes, f"Claim 6: {exp.name}, baseline, control and SLO on layer 1")
