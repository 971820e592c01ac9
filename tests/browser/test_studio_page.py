"""The studio in JupyterLab: set values through the page, train, watch the loss plot, abort, resume,
chat with streaming tokens, export; help lines in English and Chinese; no errors."""
import re
import time

import pytest

import lab as jl

pytestmark = pytest.mark.browser

STUDIO_CELL = 4  # the cell that shows `Studio(preset="tiny run on CPU")`


def _plot_src(page) -> str | None:
    img = page.locator(".kit-studio img.widget-image, .kit-studio .widget-image img, .kit-studio img").first
    if not img.count() or not img.is_visible():
        return None
    return img.get_attribute("src")


def _wait_plot_change(page, previous, timeout=300) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        src = _plot_src(page)
        if src and src != previous:
            return src
        time.sleep(0.3)
    raise TimeoutError("the loss plot did not update")


def _status_has(page, text: str, timeout=600) -> None:
    page.locator(".kit-studio .widget-html-content").filter(has_text=text).first.wait_for(timeout=timeout * 1000)


def test_studio_train_abort_resume_chat_export(page, lab):
    jl.open_notebook(page, lab, "studio.ipynb")
    jl.run_through(page, STUDIO_CELL)
    jl.assert_no_tracebacks(page)
    studio = page.locator(".kit-studio").first
    studio.wait_for()
    assert page.locator("img[src='']").count() == 0  # no broken-image icon before a run

    # help lines are on the page, then in Chinese
    assert studio.locator(".kit-help").filter(has_text="Quantization library").count() == 1
    jl.select(page, "Language", "中文")
    studio.locator(".kit-help").filter(has_text="量化").first.wait_for()
    jl.select(page, "语言", "English")
    studio.locator(".kit-help").filter(has_text="Model to fine-tune").first.wait_for()

    # Train tab: settings through the page
    jl.click_tab(page, "Train")
    jl.set_text(page, "Max samples", "16")
    jl.open_section(page, "Hyper-parameters")
    jl.set_text(page, "Max steps", "12")
    assert "GiB" in studio.inner_text()  # the memory estimate beside the settings
    page.screenshot(path=str(jl_shot("studio_train_tab")), full_page=True)
    jl.button(page, "Start").click()
    first = _wait_plot_change(page, None)
    _wait_plot_change(page, first)  # the plot redraws as the loss comes in
    jl.button(page, "Abort").click()
    _status_has(page, "Stopped early")

    stopped = studio.locator(".widget-html-content").filter(has_text="Stopped early").first.inner_text()
    step = int(re.search(r"at step (\d+)", stopped).group(1))
    jl.set_text(page, "Max steps", str(step + 2))  # resume for two more steps
    page.locator("label:has-text('Resume from last checkpoint') input[type=checkbox]").filter(visible=True).first.check()
    before = _plot_src(page)
    jl.button(page, "Start").click()
    _wait_plot_change(page, before)
    _status_has(page, "Finished")
    page.screenshot(path=str(jl_shot("studio_after_resume")), full_page=True)

    # Chat: the adapter of the finished run; Enter sends, tokens stream
    jl.click_tab(page, "Chat")
    jl.select(page, "Model", "adapter")
    jl.button(page, "Load model").click()
    box = jl.control(page, "Message")
    box.wait_for(timeout=300_000)
    page.evaluate("""() => {
        window.__kitSnapshots = [];
        const target = document.querySelector('.kit-studio');
        new MutationObserver(() => {
            const t = target.innerText;
            if (t.includes('▌')) window.__kitSnapshots.push(t.length);
        }).observe(target, {subtree: true, childList: true, characterData: true});
    }""")
    box.fill("Who are you?")
    box.press("Enter")
    page.wait_for_function("() => window.__kitSnapshots.length > 0", timeout=300_000)
    jl.wait_kernel_idle(page)
    streamed = page.evaluate("() => new Set(window.__kitSnapshots).size")
    assert streamed >= 2, f"the answer appeared in {streamed} piece(s), not streamed"

    # Export: merge, verify, Modelfile
    jl.click_tab(page, "Export")
    jl.button(page, "Merge, verify and export").click()
    _status_has(page, "verification")
    jl.wait_kernel_idle(page)
    assert "OK" in studio.locator("pre.kit-export").inner_text()
    assert "FROM" in studio.locator("textarea").last.input_value()
    jl.assert_no_tracebacks(page)


def jl_shot(name: str):
    from conftest import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{name}.png"
