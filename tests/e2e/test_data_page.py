"""A new user on the Data & noise page, in a real browser: 40% pair noise on the built-in shapes."""
from e2e_support import screenshot, wait_idle


def test_inject_pair_noise_and_see_heatmap_and_flipped_examples(page, app_url, app_home):
    page.goto(app_url + "/data")
    page.get_by_text("Realized rate").wait_for()
    wait_idle(page)
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Noise model")
    box.click()
    page.get_by_role("option", name="pair", exact=True).click()
    page.get_by_text("40% of each class is relabelled as the next class").wait_for()
    wait_idle(page)
    assert "noise=pair" in page.url                       # the setup is shareable
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Realized rate")
    assert "40.00%" in metric.inner_text()
    page.get_by_text("Realized noise matrix").wait_for()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    assert page.get_by_text("circle → ring").count() >= 1   # a flipped example, true → given
    screenshot(page, "data")
    page.get_by_role("button", name="Use these labels").click()
    page.get_by_text("The Train page will use this label set").wait_for()
    assert list((app_home / "labels").glob("*/labels.csv"))

    # the shared link reproduces the setup in a fresh tab
    other = page.context.new_page()
    other.goto(page.url)
    other.get_by_text("40% of each class is relabelled as the next class").wait_for()
    other.close()
