"""The demo-preset report in a real browser (headless Chromium, Debian's ``chromium``): every
image decodes, the page has its sections, and nothing points outside the file.

The report itself has no scripts; the test renders a copy with a probe script appended that
writes what the browser decoded into the DOM, which ``--dump-dom`` prints.
"""

import html.parser
import json
import shutil
import subprocess

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.browser

SECTIONS = ("Counts", "Flags", "Per-class attention", "Distributions",
            "Most suspicious examples")
PROBE = """<script>
window.addEventListener('load', () => {
  const images = Array.from(document.images).map(
    (img) => ({complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
  const links = Array.from(document.querySelectorAll('[href]')).map((a) => a.getAttribute('href'));
  const headings = Array.from(document.querySelectorAll('h2')).map((h) => h.textContent);
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({images, links, headings});
  document.body.appendChild(out);
});
</script>"""


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Probe(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self._inside = False
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self._inside = tag == "pre" and dict(attrs).get("id") == "probe"

    def handle_data(self, data):
        if self._inside:
            self.text += data

    def handle_endtag(self, tag):
        self._inside = False


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    helpers.shapes_inputs(tmp_path, 24, seed=6, num_shards=2)
    output = tmp_path / "out"
    helpers.run_demo_preset(str(tmp_path / "data" / "*.tfrecord"), str(tmp_path / "model.keras"),
                            output, "explain.batch_size=8", "explain.target=label")
    page = (output / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Probe()
    parser.feed(result.stdout)
    found = json.loads(parser.text)
    assert len(found["images"]) >= 2 + 3 + 16  # mean maps, histograms, examples
    assert all(image["complete"] and image["width"] > 0 and image["height"] > 0
               for image in found["images"])
    assert all(link.startswith("#") for link in found["links"])
    assert all(section in found["headings"] for section in SECTIONS)
