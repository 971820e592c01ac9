"""kit.data tools: identity filling, registering, conversion round trips, split, preview (+ widget), stats."""
import json

import pytest

from kit import data, env


def test_fill_placeholders_is_pure_and_strict():
    rows = [{"output": "I am {{name}} by {{ author }}.", "n": 3, "history": [["{{name}}?", "yes"]]}]
    filled = data.fill_placeholders(rows, "Aurora", "Lab 7")
    assert filled == [{"output": "I am Aurora by Lab 7.", "n": 3, "history": [["Aurora?", "yes"]]}]
    assert rows[0]["output"].startswith("I am {{name}}")  # input untouched
    with pytest.raises(data.DataError, match="unknown placeholder"):
        data.fill_placeholders("{{model}}", "A", "B")
    with pytest.raises(data.DataError, match="non-empty"):
        data.fill_placeholders("x", "", "B")


def test_make_identity_dataset_works_for_training_and_never_clobbers(tmp_path):
    out, name = data.make_identity_dataset("Aurora", "Lab 7", out_dir=tmp_path / "id")
    assert name == "identity" and out == tmp_path / "id"
    ds = data.load_dataset("identity,alpaca_en_demo", dataset_dir=out)
    texts = " ".join(m["content"] for row in ds for m in row["messages"])
    assert "Aurora" in texts and "Lab 7" in texts and "{{" not in texts
    n_identity = len(data.load_dataset("identity", dataset_dir=env.data_dir()))
    assert len(ds) == n_identity + len(data.load_dataset("alpaca_en_demo"))
    assert len(data.load_dataset("mllm_demo", dataset_dir=out)) > 0  # media still resolve from the copy
    assert data.make_identity_dataset("Aurora", "Lab 7", out_dir=out)[0] == out  # same content: fine
    with pytest.raises(data.DataError, match="already exists"):
        data.make_identity_dataset("Nova", "Lab 7", out_dir=out)
    data.make_identity_dataset("Nova", "Lab 7", out_dir=out, overwrite=True)
    assert "Nova" in (out / "identity.json").read_text()
    assert "{{name}}" in (env.data_dir() / "identity.json").read_text()  # the source stays a template


def test_register_dataset_never_clobbers(tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps([{"q": "Hi", "a": "Hello"}]))
    entry = data.register_dataset("mine", "mine.json", dataset_dir=tmp_path, columns={"prompt": "q", "response": "a"})
    assert entry == {"file_name": "mine.json", "columns": {"prompt": "q", "response": "a"}}
    assert data.load_dataset("mine", dataset_dir=tmp_path)[0]["messages"][1]["content"] == "Hello"
    data.register_dataset("mine", "mine.json", dataset_dir=tmp_path, columns={"prompt": "q", "response": "a"})
    with pytest.raises(data.DataError, match="already registered"):
        data.register_dataset("mine", "mine.json", dataset_dir=tmp_path)
    data.register_dataset("mine", "mine.json", dataset_dir=tmp_path, columns={"prompt": "q"}, overwrite=True)
    assert data.read_dataset_info(tmp_path)["mine"]["columns"] == {"prompt": "q"}
    with pytest.raises(data.DataError, match="does not exist"):
        data.register_dataset("other", "missing.json", dataset_dir=tmp_path)


@pytest.mark.parametrize("to", ["alpaca", "sharegpt", "openai"])
@pytest.mark.parametrize("name,stage", [("sharegpt_demo", "sft"), ("dpo_en_demo", "dpo"), ("kto_en_demo", "kto"),
                                        ("mllm_demo", "sft"), ("alpaca_zh_demo", "sft")])
def test_conversion_round_trip(tmp_path, to, name, stage):
    out = tmp_path / f"{name}.{'jsonl' if to == 'openai' else 'json'}"
    entry = data.convert_dataset(name, out, to, stage=stage, register_as="converted")
    assert data.read_dataset_info(tmp_path)["converted"]["file_name"] == out.name
    assert entry["file_name"] == out.name
    before = data.load_dataset(name, stage=stage).to_list()
    after = data.load_dataset("converted", dataset_dir=tmp_path, stage=stage).to_list()
    assert after == before
    with pytest.raises(data.DataError, match="already exists"):
        data.convert_dataset(name, out, to, stage=stage)


def test_conversion_refusals():
    tool_rows = data.load_dataset("glaive_toolcall_en_demo").to_list()
    with pytest.raises(data.DataError, match="alpaca") as err:
        data.to_format(tool_rows, "alpaca")
    assert err.value.row == 0
    assert data.to_format(data.load_dataset("c4_demo", stage="pt").to_list()[:1], "alpaca")[0].keys() == {"text"}


def test_split_dataset():
    ds = data.load_dataset("alpaca_en_demo")
    parts = data.split_dataset(ds, val_size=0.1, seed=0)
    assert set(parts) == {"train", "validation"}
    assert len(parts["train"]) + len(parts["validation"]) == len(ds)
    assert len(data.split_dataset(ds, val_size=10)["validation"]) == 10
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.split_dataset(ds, val_size=1.5)


def test_preview_pages_and_widget():
    ds = data.load_dataset("dpo_en_demo", stage="dpo")
    page = data.preview(ds, page=1, page_size=4)
    assert page.start == 4 and len(page.rows) == 4 and page.num_pages == -(-len(ds) // 4)
    assert "CHOSEN:" in page.texts[0] and "REJECTED:" in page.texts[0]
    assert data.preview(ds, page=999, page_size=4).page == page.num_pages - 1  # clamped
    from kit.ui.data import preview_widget, report_widget

    panel = preview_widget(ds, page_size=4)
    assert (panel.page.min, panel.page.value) == (1, 1)  # pages count from 1, as "page 1/N" says
    panel.page.value = 3
    assert panel.current.start == 8 and "row 8" in panel.body.value and "page 3/" in panel.body.value
    panel.next_button.click()
    assert panel.page.value == 4
    panel.prev_button.click()
    panel.prev_button.click()
    assert panel.current.page == 1
    report = data.check_dataset("alpaca_en_demo")
    assert "0 invalid" in report_widget(report).value


def test_render_row_shows_tools_and_media():
    tool_row = data.load_dataset("glaive_toolcall_en_demo")[0]
    text = data.render_row(tool_row)
    assert "TOOLS:" in text and "USER:" in text
    mllm_row = data.load_dataset("mllm_demo")[0]
    assert "IMAGES: " in data.render_row(mllm_row)


def test_token_stats(tokenizer):
    ds = data.load_dataset("alpaca_en_demo", max_samples=40)
    stats = data.token_stats(ds, tokenizer, cutoff_len=64)
    assert stats.num_rows == 40
    row = ds[0]
    expected = len(tokenizer.apply_chat_template(data.tools.chat_messages(row), tokenize=True, return_dict=True)["input_ids"])
    assert stats.lengths[0] == expected
    summary = stats.summary()
    assert summary["min"] <= summary["p50"] <= summary["p95"] <= summary["max"]
    counts, edges = stats.histogram(bins=5)
    assert sum(counts) == 40 and len(edges) == 6
    assert 0.0 <= stats.over_cutoff <= 1.0
    pt = data.token_stats(data.load_dataset("c4_demo", stage="pt", max_samples=3), tokenizer)
    text = data.load_dataset("c4_demo", stage="pt")[0]["messages"][0]["content"]
    assert pt.lengths[0] == len(tokenizer(text)["input_ids"]) + 1


def test_demo_images_are_reproducible(tmp_path):
    from PIL import Image, ImageChops

    from kit.data.demo import build_mllm_demo

    rows = build_mllm_demo(tmp_path)
    committed = json.loads((env.data_dir() / "mllm_demo.json").read_text())
    assert rows == committed
    for name in ("red_circle.png", "green_triangle.png"):
        a = Image.open(tmp_path / "mllm_demo_data" / name).convert("RGB")
        b = Image.open(env.data_dir() / "mllm_demo_data" / name).convert("RGB")
        assert ImageChops.difference(a, b).getbbox() is None
