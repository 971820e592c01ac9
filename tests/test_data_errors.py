"""Every malformed case of issue 3 gives its documented error, naming the file, row and field.

Non-strict mode drops a bad row only while reporting it; strict mode raises on the first bad row.
"""
import json

import pytest

from kit import data

GOOD = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}


def make(tmp_path, rows, entry=None, name="d", file="d.json"):
    path = tmp_path / file
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows, ensure_ascii=False))
    entry = entry or {"file_name": file, "formatting": "sharegpt"}
    (tmp_path / "dataset_info.json").write_text(json.dumps({name: entry}))
    return path


def test_unknown_name_suggests_closest(tmp_path):
    make(tmp_path, [GOOD], name="alpaca_en_demo")
    with pytest.raises(data.DataError, match="Undefined dataset 'alpaca_en_dem'") as err:
        data.load_dataset("alpaca_en_dem", dataset_dir=tmp_path)
    assert "alpaca_en_demo" in err.value.fix
    assert isinstance(err.value, ValueError) and err.value.field == "alpaca_en_dem"


def test_missing_file(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "nope.json"}}))
    with pytest.raises(data.DataError, match="does not exist") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "file_name" and err.value.file.endswith("nope.json")


def test_missing_registry(tmp_path):
    with pytest.raises(data.DataError, match="no dataset_info.json"):
        data.load_dataset("d", dataset_dir=tmp_path)


def test_bad_json_names_the_line(tmp_path):
    text = '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n'
    make(tmp_path, text, entry={"file_name": "d.json"})
    with pytest.raises(data.DataError, match="line 3") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.file.endswith("d.json")


def test_bad_jsonl_line_is_a_reported_row(tmp_path):
    text = '{"instruction": "a", "output": "b"}\n{"instruction": "c", \n{"instruction": "e", "output": "f"}\n'
    make(tmp_path, text, entry={"file_name": "d.jsonl"}, file="d.jsonl")
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True)
    assert len(ds) == 2 and report.num_invalid == 1
    issue = report.issues[0]
    assert (issue.row, issue.field) == (1, "json") and "line 2" in issue.reason
    with pytest.raises(data.DataError, match="line 2") as err:
        data.load_dataset("d", dataset_dir=tmp_path, strict=True)
    assert err.value.row == 1


def test_missing_mapped_column(tmp_path):
    make(tmp_path, [{"q": "x", "a": "y"}], entry={"file_name": "d.json", "columns": {"prompt": "question",
                                                                                     "response": "a"}})
    with pytest.raises(data.DataError, match="column 'question'") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "columns.prompt" and "'q'" in str(err.value)


def test_missing_default_column_hints_at_mapping(tmp_path):
    make(tmp_path, [{"question": "x", "answer": "y"}], entry={"file_name": "d.json"})
    with pytest.raises(data.DataError, match="column 'instruction'") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert "columns" in err.value.fix


def test_wrong_role_order_names_the_row(tmp_path):
    bad = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hello?"}]}
    make(tmp_path, [GOOD, bad, GOOD])
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True)
    assert len(ds) == 2 and report.rows() == [1]
    assert "wrong role order" in report.issues[0].reason and report.issues[0].field == "conversations"
    with pytest.raises(data.DataError, match="wrong role order") as err:
        data.load_dataset("d", dataset_dir=tmp_path, strict=True)
    assert (err.value.row, err.value.field) == (1, "conversations") and err.value.file.endswith("d.json")


def test_unknown_role_tag(tmp_path):
    bad = {"conversations": [{"from": "user", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    make(tmp_path, [GOOD, bad])
    report = data.check_dataset("d", dataset_dir=tmp_path)
    assert report.rows() == [1] and "'user'" in report.issues[0].reason and "tags" in report.issues[0].fix


def test_wrong_message_count(tmp_path):
    bad = {"conversations": GOOD["conversations"] + [{"from": "human", "value": "And?"}]}
    make(tmp_path, [bad, GOOD])
    report = data.check_dataset("d", dataset_dir=tmp_path)
    assert report.rows() == [0] and "wrong message count" in report.issues[0].reason
    with pytest.raises(data.DataError, match="wrong message count") as err:
        data.load_dataset("d", dataset_dir=tmp_path, strict=True)
    assert err.value.row == 0


def test_ranking_prompt_must_end_with_user(tmp_path):
    row = {"conversations": GOOD["conversations"], "chosen": {"from": "gpt", "value": "a"},
           "rejected": {"from": "gpt", "value": "b"}}
    make(tmp_path, [row], entry={"file_name": "d.json", "formatting": "sharegpt", "ranking": True,
                                 "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}})
    with pytest.raises(data.DataError, match="Cannot find valid samples.*wrong message count") as err:
        data.load_dataset("d", dataset_dir=tmp_path, stage="dpo")
    assert err.value.row == 0


def test_empty_answer(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "  "}]
    make(tmp_path, rows, entry={"file_name": "d.json"})
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True)
    assert len(ds) == 1 and report.num_invalid == 1
    issue = report.issues[0]
    assert (issue.row, issue.field) == (1, "output") and "empty answer" in issue.reason
    assert "row 1" in str(issue) and "d.json" in str(issue)


def test_media_count_must_match_placeholders(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    rows = [{"messages": [{"role": "user", "content": "<image>What?"}, {"role": "assistant", "content": "A."}],
             "images": ["a.png"]},
            {"messages": [{"role": "user", "content": "What?"}, {"role": "assistant", "content": "A."}],
             "images": ["a.png"]},
            {"messages": [{"role": "user", "content": "<image>What?"}, {"role": "assistant", "content": "A."}],
             "images": ["missing.png"]}]
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    make(tmp_path, rows, entry={"file_name": "d.json", "formatting": "sharegpt",
                                "columns": {"messages": "messages", "images": "images"}, "tags": tags})
    report = data.check_dataset("d", dataset_dir=tmp_path)
    assert report.num_valid == 1 and report.rows() == [1, 2]
    assert "1 images but 0 <image>" in report.issues[0].reason and report.issues[0].field == "images"
    assert "does not exist" in report.issues[1].reason


def test_ranking_data_for_sft_and_the_reverse(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Q"}], "chosen": {"from": "gpt", "value": "a"},
           "rejected": {"from": "gpt", "value": "b"}}
    make(tmp_path, [row], name="pairs", entry={"file_name": "d.json", "formatting": "sharegpt", "ranking": True,
                                               "columns": {"messages": "conversations", "chosen": "chosen",
                                                           "rejected": "rejected"}})
    with pytest.raises(data.DataError, match="ranking dataset") as err:
        data.load_dataset("pairs", dataset_dir=tmp_path, stage="sft")
    assert err.value.field == "ranking" and "stage='dpo'" in err.value.fix
    assert len(data.load_dataset("pairs", dataset_dir=tmp_path, stage="dpo")) == 1
    make(tmp_path, [GOOD], name="plain")
    with pytest.raises(data.DataError, match="not a ranking dataset") as err:
        data.load_dataset("plain", dataset_dir=tmp_path, stage="rm")
    assert err.value.field == "ranking"


def test_kto_needs_tag_and_bool_labels(tmp_path):
    make(tmp_path, [GOOD], name="plain")
    with pytest.raises(data.DataError, match="kto_tag"):
        data.load_dataset("plain", dataset_dir=tmp_path, stage="kto")
    rows = [{"instruction": "q", "output": "a", "ok": True}, {"instruction": "q", "output": "a", "ok": "yes"}]
    make(tmp_path, rows, entry={"file_name": "d.json", "columns": {"prompt": "instruction", "response": "output",
                                                                   "kto_tag": "ok"}})
    report = data.check_dataset("d", dataset_dir=tmp_path, stage="kto")
    assert report.num_valid == 1 and report.rows() == [1] and report.issues[0].field == "ok"


def test_pretraining_text_for_sft_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text("Some text.\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"t": {"file_name": "t.txt", "columns": {"prompt": "text"}}}))
    with pytest.raises(data.DataError, match="no response column") as err:
        data.load_dataset("t", dataset_dir=tmp_path, stage="sft")
    assert "stage='pt'" in err.value.fix


def test_all_rows_invalid_is_an_error_not_an_empty_dataset(tmp_path):
    make(tmp_path, [{"instruction": "a", "output": ""}], entry={"file_name": "d.json"})
    with pytest.raises(data.DataError, match="Cannot find valid samples") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert (err.value.row, err.value.field) == (0, "output")


def test_unknown_entry_keys_and_bad_formatting(tmp_path):
    make(tmp_path, [GOOD], entry={"file_name": "d.json", "formating": "sharegpt"})
    with pytest.raises(data.DataError, match="unknown key") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "formating"
    make(tmp_path, [GOOD], entry={"file_name": "d.json", "formatting": "chatml"})
    with pytest.raises(data.DataError, match="formatting 'chatml'"):
        data.load_dataset("d", dataset_dir=tmp_path)


def test_hub_offline_script_and_cloud(tmp_path, monkeypatch):
    from kit import env

    monkeypatch.setattr(env, "hub_reachable", lambda timeout=3.0: False)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "s.py").write_text(
        "def generate_examples():\n    yield {'instruction': 'q', 'output': 'a'}\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "hub": {"hf_hub_url": "llamafactory/alpaca_en", "ms_hub_url": "llamafactory/alpaca_en"},
        "ms": {"ms_hub_url": "llamafactory/alpaca_en"},
        "script": {"script_url": "s"},
        "cloud": {"cloud_file_name": "s3://bucket/data.json"}}))
    with pytest.raises(data.DataError, match="not reachable") as err:
        data.load_dataset("hub", dataset_dir=tmp_path)
    assert err.value.field == "hf_hub_url" and "file_name" in err.value.fix
    with pytest.raises(data.DataError, match="ms_hub_url"):
        data.load_dataset("ms", dataset_dir=tmp_path)
    with pytest.raises(data.DataError, match="allow_script"):
        data.load_dataset("script", dataset_dir=tmp_path)
    assert data.load_dataset("script", dataset_dir=tmp_path, allow_script=True)[0]["messages"][1]["content"] == "a"
    with pytest.raises(data.DataError, match="not supported"):
        data.load_dataset("cloud", dataset_dir=tmp_path)


def test_report_summary_and_table(tmp_path, capsys):
    rows = [GOOD, {"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}]
    make(tmp_path, rows)
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True)
    printed = capsys.readouterr().out
    assert "1 valid, 1 invalid" in printed and "row 1" in printed  # the one-line summary is printed
    table = report.table()
    assert table[0]["row"] == 1 and table[0]["fix"] and table[0]["file"].endswith("d.json")
    assert report.per_dataset["d"] == {"valid": 1, "invalid": 1, "files": [str(tmp_path / "d.json")]}
