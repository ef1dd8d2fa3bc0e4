"""Reading the web page's heatmaps back from a browser tab: what was drawn, pixel by pixel."""

from __future__ import annotations

import base64

import numpy as np

from core.plots import heatmap_palette

HEATMAPS = "#nfa-heat canvas.nfa-img[data-drawn]"
"""The heatmap panel's pictures once the page script has drawn them."""

_READ_JS = """els => els.map(c => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let s = ""; for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
  return {w: c.width, h: c.height, idx: c.dataset.idx || "", rgba: btoa(s), bottom: c.getBoundingClientRect().bottom};
})"""


def drawn_pictures(tab, selector: str = HEATMAPS) -> list[dict]:
    """Each canvas's pixels as the browser holds them (``rgb``), checked equal to its palette indices.

    The indices come from the server (``app.web.views.canvas``); the palette is
    ``core.plots.heatmap_palette``, so a wrong or missing draw in the page script fails here.
    """
    out = []
    for c in tab.eval_on_selector_all(selector, _READ_JS):
        rgba = np.frombuffer(base64.b64decode(c["rgba"]), dtype=np.uint8).reshape(c["h"], c["w"], 4)
        idx = np.frombuffer(base64.b64decode(c["idx"]), dtype=np.uint8).reshape(c["h"], c["w"])
        assert (rgba[..., 3] == 255).all(), "a heatmap pixel was left transparent"
        np.testing.assert_array_equal(rgba[..., :3], heatmap_palette()[idx])
        out.append({"rgb": rgba[..., :3], "bottom": c["bottom"]})
    return out
