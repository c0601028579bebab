"""HTML building blocks of the report: escaping, numbers, tables, figures and the page."""

import base64
import html

import numpy as np
import pandas as pd

from pipeline.records import UNDEFINED

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; padding: 4px; background: #fafafa; }
figcaption { font-size: .8em; max-width: 600px; word-break: break-all; }
.flag { background: #fff3e0; border-left: 4px solid #e65100; padding: .4em .8em; margin: .4em 0; }
.ok { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: .4em .8em; }
.verdict { font-size: 1.05em; background: #eef3fb; border-left: 4px solid #1a4f9c;
           padding: .5em .8em; }
.note { color: #555; font-size: .9em; }
"""


def png_data_uri(png_bytes):
    """PNG bytes -> a ``data:`` URI, so the page needs no files beside it."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def esc(value):
    return html.escape(str(value))


def undefined(value):
    """Whether a cell holds no value (None, NaN, pandas' NA or NaT), shown as ``UNDEFINED``."""
    return value is None or (np.ndim(value) == 0 and not isinstance(value, str)
                             and bool(pd.isna(value)))


def number(value, digits=3):
    if undefined(value):
        return UNDEFINED
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def table(header, rows, text_columns=(0,)):
    """An HTML table; cells are escaped; columns in ``text_columns`` are left-aligned."""
    def cell(tag, index, value):
        css = ' class="text"' if index in text_columns else ""
        return f"<{tag}{css}>{esc(UNDEFINED if undefined(value) else value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(link, caption):
    return (f'<figure><img src="{esc(link)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def method_line(manifest):
    """The report's method fact: the method in words (``gbp_ops.sanity.method_description``)
    and, when the gate rule is on, how many ReLUs were guided and other activations gated;
    None without a method."""
    if not manifest.get("method"):
        return None
    from gbp_ops.sanity import method_description

    text = method_description(manifest["method"], manifest.get("method_settings"))
    gated = len(manifest.get("gated_sites") or ())
    if gated:
        guided = len(manifest.get("guided_sites") or ())
        text += (f" ({guided} guided ReLU{'' if guided == 1 else 's'}, {gated} gated "
                 f"activation{'' if gated == 1 else 's'})")
    return text


def page(manifest, sections):
    facts = [
        ("method", method_line(manifest)),
        ("explained space", manifest.get("explained_space")),
        ("reduction", manifest.get("config", {}).get("explain", {}).get("reduction")),
        ("map shape", "x".join(str(v) for v in manifest.get("map_shape", [])) or None),
        ("model", manifest.get("config", {}).get("model", {}).get("path")),
        ("model sha256", manifest.get("model_sha256")),
        ("wall time (s)", manifest.get("wall_time_seconds")),
    ]
    facts_table = table(("run", ""), [(k, v) for k, v in facts if v is not None],
                         text_columns=(0, 1))
    body = "\n".join(section for section in sections if section)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>gbp-audit report</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>gbp-audit report</h1>\n"
            f"{facts_table}\n{body}\n</body></html>\n")
