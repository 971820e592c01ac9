"""Lessons 03, 04 and 10 in JupyterLab: every cell runs, the panels react to the page, no errors."""
import time

import pytest

from conftest import ConsoleLog
import lab as jl

pytestmark = pytest.mark.browser


def test_a_javascript_console_error_is_caught(page, lab):
    page.goto(f"{lab}/lab?token={jl.TOKEN}")
    page.wait_for_selector(".jp-LabShell, #main", state="attached")
    page.evaluate("console.error('kit browser test: deliberate error')")
    page.wait_for_timeout(200)
    with pytest.raises(AssertionError, match="deliberate error"):
        page.console_log.check()
    page.console_log.errors.clear()  # caught on purpose; the fixture must not fail this test


def test_lesson_03_template_comparer(page, lab):
    jl.open_notebook(page, lab, "03_chat_templates.ipynb")
    jl.run_all(page)
    jl.assert_no_tracebacks(page)
    # the comparer is the innermost VBox holding the "left" dropdown: legend, left panel, right panel
    comparer = page.locator(".widget-vbox").filter(has=page.locator("label:text-is('left')")).last
    comparer.scroll_into_view_if_needed()
    before = comparer.text_content()
    assert "<|im_start|>" in before
    jl.select(page, "left", "llama3")
    page.wait_for_function("(b) => !document.body.innerText.includes(b) || true", arg=before[:40])
    time.sleep(1.0)
    after = comparer.text_content()
    assert after != before and "<|start_header_id|>" in after  # the left panel now shows llama3's encoding


def test_lesson_04_memory_calculator(page, lab):
    jl.open_notebook(page, lab, "04_precision_quantization_vram.ipynb")
    jl.run_all(page)
    jl.assert_no_tracebacks(page)
    summary = page.locator(".widget-html-content").filter(has_text="at the peak").first
    before = summary.inner_text()
    jl.set_text(page, "batch_size", "8")
    page.wait_for_function("(b) => [...document.querySelectorAll('.widget-html-content')].some("
                           "e => e.innerText.includes('at the peak') && e.innerText !== b)", arg=before)
    assert page.locator(".kit-help").filter(has_text="sequences per step").count() >= 1  # help on the page
    jl.select(page, "quantization_bit", "none")
    page.get_by_text("needs quantization_bit 4 or 8").first.wait_for()


def test_lesson_10_chat_panel(page, lab):
    jl.open_notebook(page, lab, "10_evaluate_and_chat.ipynb")
    jl.run_all(page, timeout=1200)
    jl.assert_no_tracebacks(page)
    box = jl.control(page, "Message")
    box.fill("Hello, who are you?")
    box.press("Enter")  # Enter sends
    page.get_by_text("Hello, who are you?").first.wait_for()
