"""Words and styles of the page: header, in-place explanations, glossary, CSS."""

from __future__ import annotations

import re
from pathlib import Path

PAPER_URL = "https://arxiv.org/abs/2402.05271"
PAPER = (f'Beaglehole, Mitliagkas, Agarwala, <a href="{PAPER_URL}" target="_blank" rel="noopener">'
         "“Feature learning as alignment: a structural property of gradient descent in non-linear "
         "neural networks”</a>, TMLR 2024")


def header(readme_url: str) -> str:
    """Title, one-line pitch and the paper."""
    return (
        '<div class="nfa-header"><span class="nfa-title">NFA Explorer</span>'
        '<span class="nfa-pitch">watch each layer\'s weights (NFM = WᵀW) line up with its gradients '
        f'(AGOP = WᵀKW) while a small MLP trains. <a href="{readme_url}">README</a></span>'
        f'<span class="nfa-cite">Paper: {PAPER}</span></div>'
    )


def heat_help(readme_url: str) -> str:
    return (
        '<div class="nfa-help"><b>NFM</b> WᵀW: the input directions the weights amplify · <b>AGOP</b> WᵀKW: '
        "the directions the output is sensitive to · <b>K</b>: covariance of the output's gradients at the "
        "pre-activations · <b>UᵀKU</b>: K in W's singular basis, diagonal when W and K are aligned (which is what "
        "makes NFM and AGOP correlate) · <b>G*</b>: the target's true AGOP. Hover a picture for more. "
        f'<a href="{readme_url}">README</a></div>'
    )


def curves_help(readme_url: str) -> str:
    return (
        '<div class="nfa-help"><b>UC-NFA</b>: correlation of NFM and AGOP, the ansatz · <b>C-NFA</b>: the same for '
        "the weight change alone (dWᵀdW vs dWᵀK dW); high from the first steps, it pulls UC-NFA up as dW outgrows "
        "the initial weights (see the term shares) · the selected layer is drawn thick. "
        f'<a href="{readme_url}">README</a></div>'
    )


def slo_help() -> str:
    return ("**SLO** moves every layer a fixed *speed* per step and the target layer *boost* times farther: "
            "its dW outgrows W0, so its UC-NFA climbs towards C-NFA. Applies live.")


COMPARE_HELP = (
    "**⇆ Compare** runs three arms from the same initial weights and batches: the **baseline** optimiser, "
    "the **control** (SLO with boost 1: normalised steps, no boost) and **SLO** with the boost above. The "
    "control separates the effect of normalising steps from that of boosting the target layer. One colour "
    "and dash per arm; click an arm in a legend to hide it. (With boost 1 the control equals SLO and is left out.)"
)

RESET_HEAD = "**New network**: these wait for **↺ Reset** (the status line lists what is waiting)."
LIVE_HEAD = "**Live**: these apply mid-run, without losing it (so does everything in the SLO tab)."
TARGET_INFO = "in x0..x{d-1} with + - * / ** and sin cos tanh exp log abs sign relu sqrt"

SHARE_HELP = "The page address carries this setup: copy it from the address bar or below to share it."


def readme_markdown(path: Path | None = None) -> str:
    """The repository README without front matter and images, for the in-page copy."""
    path = path or Path(__file__).resolve().parents[2] / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return f"README not found. The paper: {PAPER_URL}"
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", text)
    return re.sub(r"\]\((?!https?://|#)[^)]*\)", "]()", text)


CSS = """
.gradio-container {max-width: 1500px !important; --layout-gap: 8px; padding-top: 4px !important}
.gradio-container > .main {padding-top: 2px !important}
#nfa-top .html-container, #nfa-status .html-container, #nfa-heat .html-container {padding: 0 !important}
.nfa-header {padding: 0 2px}
.nfa-title {font-size: 1.3em; font-weight: 700; margin-right: 10px}
.nfa-pitch {opacity: .9; font-size: .95em}
.nfa-cite {display: block; font-size: .78em; opacity: .75}
#nfa-transport {align-items: center; gap: 8px}
#nfa-transport button {min-width: 0}
.nfa-status {font-size: 1.02em; padding: 8px 12px; border-radius: 8px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary)}
.nfa-status.running {border-color: #2ca02c}
.nfa-status.diverged {border-color: #d62728}
.nfa-dot {display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; background: #999}
.nfa-dot.running {background: #2ca02c; box-shadow: 0 0 6px #2ca02c}
.nfa-dot.paused {background: #e6a100}
.nfa-dot.done {background: #1f77b4}
.nfa-dot.diverged {background: #d62728}
.nfa-alert {color: #d62728; font-weight: 600; padding: 4px 12px}
.nfa-notice {padding: 3px 12px; font-size: .92em}
.nfa-notice.pending {color: #b26b00; font-weight: 600}
.nfa-notice.error {color: #d62728; font-weight: 600}
.nfa-dim {opacity: .65; font-weight: normal}
.nfa-panel {padding: 4px 0}
.nfa-head {margin: 0 0 4px; font-size: .82em; display: flex; justify-content: space-between; align-items: center;
  gap: 12px; flex-wrap: wrap}
.nfa-grid5 {display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 10px}
.nfa-grid2 {display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px}
.nfa-fig {margin: 0; display: flex; flex-direction: column; gap: 3px}
.nfa-fig figcaption {font-size: .85em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis}
.nfa-img {width: 100%; aspect-ratio: 1 / 1; image-rendering: pixelated; outline: 1px solid #ccd; border: 0;
  border-radius: 0; background: #fff; display: block}
.nfa-chart {height: 222px !important; min-height: 222px; overflow: hidden; border: 1px solid #e3e6ea;
  border-radius: 6px; background: #fff}
.nfa-chart-row {gap: 8px !important; flex-wrap: nowrap}
.nfa-meta {display: flex; justify-content: space-between; flex-wrap: wrap; column-gap: 6px; font-size: .8em;
  opacity: .8}
.nfa-outlier {color: #b26b00; opacity: 1}
.nfa-f {display: inline-block; text-align: left; font-variant-numeric: tabular-nums}
.nfa-num, .nfa-status, .nfa-summary td {font-variant-numeric: tabular-nums}
.nfa-gridn {display: grid; gap: 8px}
.nfa-empty {justify-content: center; align-items: center; text-align: center; border: 1px dashed #bbc;
  border-radius: 6px; padding: 12px; font-size: .85em; opacity: .75; min-height: 120px}
.nfa-cbar {display: flex; gap: 6px; align-items: center; font-size: .8em; opacity: .85}
.nfa-cbar div {height: 10px; width: 70px; border-radius: 3px}
.nfa-summary table {width: 100%; border-collapse: collapse; font-size: .9em; margin-bottom: 10px}
.nfa-summary td, .nfa-summary th {padding: 3px 6px; border-bottom: 1px solid #e3e6ea; text-align: right}
.nfa-summary td:first-child, .nfa-summary th:first-child {text-align: left}
.nfa-help {font-size: .84em; opacity: .8; margin: 6px 2px 10px; line-height: 1.35}
.nfa-help a, .nfa-pitch a, .nfa-cite a {text-decoration: underline}
#nfa-status {min-height: 62px}
.nfa-status {padding: 6px 12px}
.nfa-panel {padding: 0}
#nfa-viewctl {gap: 6px}
@media (max-width: 900px) {.nfa-grid5 {grid-template-columns: repeat(3, minmax(0, 1fr))}
  .nfa-grid2 {grid-template-columns: 1fr} .nfa-chart-row {flex-wrap: wrap} #nfa-side {order: -1} #nfa-viewctl {order: 5}}
"""
