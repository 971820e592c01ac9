"""kit.ui.templates: the previewer widget reacts to its controls (no browser needed)."""
from kit import templates as T

MESSAGES = [{"role": "user", "content": "Hi <b>there</b>"}, {"role": "assistant", "content": "Hello!"}]


def test_spans_html_marks_trained_masked_and_special(tokenizer):
    from kit.ui.templates import MASKED, TRAINED, spans_html

    html = spans_html(T.preview("smollm2", tokenizer, MESSAGES))
    assert TRAINED in html and MASKED in html and "border:1px solid #c00" in html
    assert "&lt;b&gt;there&lt;/b&gt;" in html  # content is escaped, not interpreted
    assert html.count('class="kit-span') == len(T.preview("smollm2", tokenizer, MESSAGES))


def test_comparer_updates_on_control_changes(tokenizer):
    from kit.ui.templates import TRAINED, compare

    w = compare(tokenizer, MESSAGES, left="smollm2", right="qwen")
    assert "identical" in w.left_html.value and "first difference" in w.right_html.value
    w.right.value = "llama3"
    assert "<b>llama3</b>" in w.right_html.value
    assert "| masked |" in w.left_html.value
    w.train_on_prompt.value = True
    n_tokens = len(T.encode("smollm2", tokenizer, MESSAGES)[0])
    assert f"{n_tokens} tokens, {n_tokens} trained" in w.left_html.value
    assert "| masked |" not in w.left_html.value and TRAINED in w.left_html.value
    w.right.value = "glm4"  # efficient_eos refuses train_on_prompt: the panel says so
    assert "does not support train_on_prompt" in w.right_html.value
