"""Why the web page's renderer grows while playing: how Chromium keeps replaced heatmap pictures.

Run by hand (not in CI):  python benchmarks/browser_images.py [--seconds 60] [--gc]

A static page replaces 5 heatmap-sized pictures (128x128 random PNGs, drawn 256 px wide)
every 300 ms, as the web app's heatmap panel does on each update, in one of these ways:

- ``img``: new ``<img src="data:image/png;base64,...">`` elements, fresh pictures (the app until
  its heatmaps became canvases drawn from palette indices, ``app.web.views.canvas``)
- ``same``: new ``<img>`` elements, always the same data URL
- ``blob``: new ``<img>`` elements with blob: URLs, the previous ones revoked
- ``cnew``: new ``<canvas data-png="...">`` elements, drawn by script through
  ``createImageBitmap`` (the bitmap closed after drawing); no URL is ever loaded
- ``none``: nothing changes (the baseline)

and prints the headless Chromium renderer's resident memory every 10 s (``--gc`` forces a
garbage collection before each sample). Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import time

from playwright.sync_api import sync_playwright

from web_longplay import renderer_rss_mib  # benchmarks/, next to this file

PAGE = """<html><body><div id=h></div><script>
const MODE = %r;
const c = document.createElement('canvas'); c.width = 128; c.height = 128; const x = c.getContext('2d');
function uri() { const d = x.createImageData(128, 128);
  for (let i = 0; i < d.data.length; i++) d.data[i] = (Math.random() * 255) | 0;
  x.putImageData(d, 0, 0); return c.toDataURL('image/png'); }
function blobOf(u) { const b = atob(u.split(',')[1]); const a = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i); return new Blob([a], {type: 'image/png'}); }
const fixed = uri(); let old = [];
setInterval(async () => {
  const h = document.getElementById('h');
  if (MODE === 'none') return;
  if (MODE === 'cnew') {
    let s = ''; for (let i = 0; i < 5; i++)
      s += '<canvas class=x width=128 height=128 style="width:256px" data-png="' + uri().split(',')[1] + '"></canvas>';
    h.innerHTML = s;
    for (const cv of h.querySelectorAll('canvas.x')) {
      const bm = await createImageBitmap(blobOf('x,' + cv.dataset.png)); cv.getContext('2d').drawImage(bm, 0, 0); bm.close(); }
    return;
  }
  let s = ''; const urls = [];
  for (let i = 0; i < 5; i++) {
    let u = MODE === 'same' ? fixed : uri();
    if (MODE === 'blob') { u = URL.createObjectURL(blobOf(u)); urls.push(u); }
    s += '<img width=256 src="' + u + '">';
  }
  h.innerHTML = s; old.forEach(URL.revokeObjectURL); old = urls;
}, 300);
</script></body></html>"""


def run(mode: str, seconds: float, gc: bool) -> None:
    args = ["--no-sandbox", "--headless", "--disable-gpu"] + (["--js-flags=--expose-gc"] if gc else [])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.set_content(PAGE % mode)
        start, samples = time.time(), []
        while time.time() - start < seconds:
            time.sleep(10)
            if gc:
                page.evaluate("gc()")
            samples.append((time.time() - start, renderer_rss_mib()))
        browser.close()
    (t0, m0), (t1, m1) = samples[0], samples[-1]
    print(f"{mode:5s} renderer {m0:.0f} -> {m1:.0f} MiB: {(m1 - m0) / (t1 - t0) * 60:+.0f} MiB a minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--gc", action="store_true", help="force a garbage collection before each sample")
    parser.add_argument("--modes", default="none,img,same,blob,cnew")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        run(mode, args.seconds, args.gc)


if __name__ == "__main__":
    main()
