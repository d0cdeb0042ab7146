"""Presenter mode in a real browser at 1280x800 (issue 33, finding 11): it enlarges tables (a canvas that reads
the root font size once, when drawn), chart text and metrics, a reload keeps it, and the charts still fit.

Screenshots: test-output/e2e/presenter-{off,on,reloaded}.png.
"""
import pytest

from e2e_support import screenshot, wait_idle

pytestmark = pytest.mark.e2e

# What a class reads from the back of the room, measured in the browser: the noise-matrix editor's cell font
# (glide-data-grid's --gdg-base-font-style, e.g. "400 14px"), the largest text in the charts, a metric's value.
SIZES_JS = """() => {
    const grid = [...document.querySelectorAll('[data-testid=stDataFrame] *')]
        .map(e => getComputedStyle(e).getPropertyValue('--gdg-base-font-style')).find(Boolean);
    const chart = Math.max(...[...document.querySelectorAll('[data-testid=stVegaLiteChart] svg text')]
        .map(t => parseFloat(getComputedStyle(t).fontSize)));
    const metric = document.querySelector('[data-testid=stMetricValue]');
    const right = document.querySelector('[data-testid=stMain]').getBoundingClientRect().right;
    const cut = [...document.querySelectorAll('[data-testid=stVegaLiteChart] svg')]
        .filter(c => c.getBoundingClientRect().right > right + 1).length;
    return {root: parseFloat(getComputedStyle(document.documentElement).fontSize),
            table: grid ? parseFloat(grid.split(' ')[1]) : null, chart,
            metric: metric ? parseFloat(getComputedStyle(metric).fontSize) : null, cut};
}"""


def _sizes(page) -> dict:
    wait_idle(page)
    page.get_by_text("Realized noise matrix").wait_for()
    page.locator("[data-testid=stDataFrame]").first.wait_for()
    page.wait_for_timeout(1500)                       # the charts draw after the script ends
    return page.evaluate(SIZES_JS)


def _switch(page) -> None:
    page.get_by_text("Presenter mode (larger type)").click()
    wait_idle(page)


def test_presenter_mode_enlarges_tables_charts_and_metrics_and_survives_a_reload(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(app_url + "/data?noise=matrix")     # the noise-matrix editor: a table with no run needed
        off = _sizes(page)
        screenshot(page, "presenter-off")
        assert off["root"] == 16 and off["table"] and off["metric"] and off["chart"] > 0 and not off["cut"], off

        _switch(page)
        page.wait_for_url("**presenter=true**")
        on = _sizes(page)
        screenshot(page, "presenter-on")
        for what in ("root", "table", "chart", "metric"):
            assert on[what] >= 1.2 * off[what], (what, off, on)
        assert not on["cut"], on                       # the ten-class heatmap is not cut at the right

        page.reload()                                 # the address keeps it: still on, tables still large
        again = _sizes(page)
        screenshot(page, "presenter-reloaded")
        assert "presenter=true" in page.url and again == on, (on, again)

        _switch(page)                                 # and off again: the table comes back to its size
        assert _sizes(page) == off
        assert "presenter" not in page.url
    finally:
        ctx.close()
