"""kit.ollama: the Modelfile TEMPLATE (a Go template) renders exactly the training text of every
template the kit can export; the renderer follows Go's rules (checked against Go itself where Go is
installed) and catches the old Modelfile's `{{-` newline bug."""
import shutil
import subprocess
from pathlib import Path

import pytest

from kit import ollama, templates

# The Modelfile kit.export wrote for the built-in template before this check existed: `{{-` in Go
# trims the newline after "<|im_start|>assistant", so Ollama prompted without it.
OLD_MODELFILE = '''FROM .

TEMPLATE """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
<|im_start|>assistant
{{- else if eq .Role "assistant" }}{{ .Content }}<|im_end|>
{{ end }}{{ end }}"""

SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""

PARAMETER stop "<|im_end|>"
'''


@pytest.mark.parametrize("name", templates.names())
def test_modelfile_renders_the_training_text(name):
    template = templates.get(name)
    text = ollama.modelfile(template, source="./model.gguf")
    parsed = ollama.parse_modelfile(text)
    assert parsed["from"] == "./model.gguf"
    assert parsed["stop"][: len(template.stop_words)] == list(template.stop_words)
    for messages, system in ollama.CHECK_CONVERSATIONS:
        rendered = ollama.render(parsed["template"], messages, system)
        assert rendered == ollama.expected(template, messages, system), (name, messages)
    assert ollama.check(template, text) == []


def test_with_the_builtin_tokenizer(tokenizer):
    """BOS/EOS written as the tokenizer's tokens, as merge_and_save and to_gguf write them."""
    template = templates.get("smollm2")
    text = ollama.modelfile(template, tokenizer)
    assert ollama.check(template, text, tokenizer=tokenizer) == []
    go = ollama.parse_modelfile(text)["template"]
    prompt = ollama.render(go, [{"role": "user", "content": "Who are you?"}])
    assert prompt.endswith("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_the_old_modelfile_fails_the_check():
    bad = ollama.check("smollm2", OLD_MODELFILE)
    assert bad, "the renderer must catch the {{- newline bug"
    assert bad[0]["expected"].endswith("<|im_start|>assistant\n")
    assert bad[0]["rendered"].endswith("<|im_start|>assistant")


def test_renderer_follows_go_rules():
    run = ollama.execute
    assert run("a\n {{- if true }}b{{ end }}", {}) == "ab"  # {{- trims all white space before
    assert run("{{ if true -}} \n b{{ end }}", {}) == "b"
    assert run('{{ $x := 1 }}{{ range $i, $m := .L }}{{ if eq $m "y" }}{{ $x = $i }}{{ end }}{{ end }}{{ $x }}',
               {"L": ["x", "y", "z"]}) == "1"  # = assigns the outer variable across iterations
    assert run("{{ if .S }}yes{{ else if .T }}t{{ else }}no{{ end }}", {"S": "", "T": []}) == "no"
    assert run("{{ len (slice .L 1) }}", {"L": [1, 2, 3]}) == "2"
    with pytest.raises(ollama.ModelfileError, match="can't evaluate field System"):
        run("{{ range $i, $m := .M }}{{ .System }}{{ end }}", {"M": [{"Role": "user"}]})
    with pytest.raises(ollama.ModelfileError, match="end"):
        run("{{ if true }}x", {})
    with pytest.raises(ollama.ModelfileError, match="not supported"):
        run("{{ printf .X }}", {"X": 1})


def test_unsupported_roles_are_refused():
    with pytest.raises(ollama.ModelfileError, match="messages\\[1\\].*function"):
        ollama.render("x", [{"role": "user", "content": "a"}, {"role": "function", "content": "{}"}])


def _go_binary(tmp_path) -> str:
    source = Path(__file__).resolve().parents[1] / "bench" / "gotemplate" / "main.go"
    binary = tmp_path / "gotemplate"
    subprocess.run(["go", "build", "-o", str(binary), str(source)], check=True, capture_output=True, timeout=600,
                   cwd=source.parent)
    return str(binary)


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed: the Python renderer is not "
                    "cross-checked against Go's text/template here (apt install golang-go to run it)")
def test_python_renderer_matches_go_text_template(tmp_path):
    binary = _go_binary(tmp_path)
    cases = list(ollama.CHECK_CONVERSATIONS)
    for name in templates.names():
        go = ollama.go_template(name)
        assert ollama.go_render(go, cases, binary) == [ollama.render(go, m, s) for m, s in cases], name
    old = ollama.parse_modelfile(OLD_MODELFILE)["template"]
    assert ollama.go_render(old, cases, binary) == [ollama.render(old, m, s) for m, s in cases]
