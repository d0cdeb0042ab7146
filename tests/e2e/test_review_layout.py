"""Issue 33, finding 8: at 1280x800 the Review page's image and its decision buttons must be on the first
screen (they started ~1,600 px down, so the first key press decided an image nobody could see)."""
import pytest
from playwright.sync_api import expect

from e2e_support import detected_run_without_training, item_caption, screenshot, wait_idle

pytestmark = [pytest.mark.e2e]
expect.set_options(timeout=90_000)   # a shared 2-core machine


@pytest.fixture
def layout_run(app_home, monkeypatch):
    monkeypatch.setenv("NOISYLAB_HOME", str(app_home))
    return detected_run_without_training(app_home / "runs", "layout", noise={"model": "symmetric", "rate": 0.4},
                                         seed=2)


def test_the_item_and_its_buttons_are_on_the_first_screen_at_1280x800(page, app_url, layout_run):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{app_url}/review?run={layout_run.name}&reviewer=lia")
    expect(item_caption(page)).to_contain_text("Item 1 of ")
    wait_idle(page)
    screenshot(page, "review-first-screen-1280x800")
    main = page.locator('[data-testid="stMain"]')
    assert main.evaluate("el => el.scrollTop") == 0   # nothing scrolled: what a reviewer sees on arrival
    image = page.locator('[data-testid="stImage"] img').first
    accept = page.get_by_role("button", name="Accept:")
    for what, element in (("image", image), ("Accept button", accept)):
        box = element.bounding_box()
        assert box is not None, what
        assert box["y"] + min(box["height"], 120) <= 800, f"the {what} starts at {box['y']:.0f} px"
    assert accept.bounding_box()["y"] + accept.bounding_box()["height"] <= 800
