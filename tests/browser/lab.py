"""Driving JupyterLab and ipywidgets from Playwright: open a notebook, run cells, find a control by
its label, wait for the kernel, read outputs."""
from __future__ import annotations

import time

TOKEN = "kit-browser-tests"


def open_notebook(page, lab: str, name: str) -> None:
    page.goto(f"{lab}/lab/tree/notebooks/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
    wait_kernel_idle(page)
    # When the kernel connects, JupyterLab's widget manager asks it for the widgets it holds. Widgets
    # created by a cell run before that answer arrives can be overwritten by it, children unresolved
    # ("Error: widget model not found", part of a panel never drawn: jupyter-widgets/ipyleaflet#968
    # describes the race). A learner never clicks that fast; the tests wait as a learner would.
    time.sleep(2.0)


def command(page, name: str, args: dict | None = None):
    """Run a JupyterLab command (the app is exposed with --LabApp.expose_app_in_browser)."""
    return page.evaluate("([n, a]) => window.jupyterapp.commands.execute(n, a)", [name, args or {}])


def wait_kernel_idle(page, timeout: float = 600) -> None:
    """Until the kernel is started and idle and no cell shows [*]."""
    deadline = time.time() + timeout
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=timeout * 1000)
    quiet = 0  # the kernel is idle for a moment between two queued cells: idle must hold for 3 looks
    while time.time() < deadline:
        state = page.evaluate("""() => {
            const w = window.jupyterapp.shell.currentWidget;
            const status = w.sessionContext.session && w.sessionContext.session.kernel
                ? w.sessionContext.session.kernel.status : 'none';
            // cells scrolled out of view may not be in the page: ask the cell models too
            const cells = w.content && w.content.model ? [...w.content.model.cells] : [];
            const running = cells.some(c => c.type === 'code' && c.executionState === 'running');
            const busy = running || [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
            return {status, busy};
        }""")
        quiet = quiet + 1 if state["status"] == "idle" and not state["busy"] else 0
        if quiet >= 3:
            return
        time.sleep(0.5)
    raise TimeoutError(f"kernel still busy after {timeout} s")


def run_all(page, timeout: float = 900) -> None:
    command(page, "notebook:run-all-cells")
    time.sleep(1.0)
    wait_kernel_idle(page, timeout)


def run_through(page, index: int, timeout: float = 600) -> None:
    """Run cells 0..index (inclusive)."""
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)
    command(page, "notebook:run-all-above")
    wait_kernel_idle(page, timeout)
    command(page, "notebook:run-cell")
    time.sleep(0.5)
    wait_kernel_idle(page, timeout)


def tracebacks(page) -> list[str]:
    """Text of every output that shows a Python error or traceback."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:2000] for t in texts if "Traceback" in t or "Error:" in t and "Error: " in t.split("\n")[0]]


def assert_no_tracebacks(page) -> None:
    found = tracebacks(page)
    assert not found, "Python errors in outputs:\n" + "\n---\n".join(found)


def control(page, label: str, kind: str = "input", within=None):
    """The input / select / button of the ipywidget whose visible label is `label`."""
    scope = within or page
    box = scope.locator(".widget-inline-hbox, .jupyter-widgets.widget-checkbox").filter(visible=True).filter(
        has=page.locator(f"label.widget-label:text-is('{label}'), label:text-is('{label}')")).first
    return box.locator(kind).first


def set_text(page, label: str, value: str, within=None) -> None:
    """Type into a text / number box and commit it (Enter), as a learner does."""
    box = control(page, label, "input", within)
    box.click()
    box.fill(str(value))
    box.press("Enter")
    box.press("Tab")


def select(page, label: str, option: str, within=None) -> None:
    control(page, label, "select", within).select_option(label=option)


def click_tab(page, title: str) -> None:
    page.locator(".lm-TabBar-tab, .p-TabBar-tab").filter(has_text=title).first.click()


def button(page, text: str):
    return page.locator("button.jupyter-button, button.widget-button").filter(has_text=text).first


def open_section(page, title: str) -> None:
    """Expand an Accordion section by its title (ipywidgets 8 Collapse header)."""
    header = page.locator(".jupyter-widget-Collapse-header, .p-Collapse-header, .lm-Collapse-header").filter(
        visible=True).filter(has_text=title).first
    header.click()
