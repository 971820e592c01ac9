"""No row changed or dropped silently (issue 17, item 5): each case is an error naming the file,
row and field, or a reported conversion."""
import json

import pytest

from kit import data

ALPACA = {"instruction": "Say hi", "output": "Hi!"}
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
OPENAI = {"file_name": "d.json", "formatting": "openai"}


def registry(tmp_path, entry, name="d", text=None):
    (tmp_path / "dataset_info.json").write_text(text or json.dumps({name: entry}))


def write(tmp_path, file, content):
    path = tmp_path / file
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("value", [-1, 0, 1.5, "3", True])
def test_bad_num_samples_is_an_error(tmp_path, value):
    write(tmp_path, "d.json", json.dumps([ALPACA] * 3))
    registry(tmp_path, {"file_name": "d.json", "num_samples": value})
    with pytest.raises(data.DataError, match="num_samples") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "num_samples" and err.value.dataset == "d"
    assert err.value.file.endswith("dataset_info.json")


def test_num_samples_argument_below_one_is_an_error(tmp_path):
    write(tmp_path, "d.json", json.dumps([ALPACA] * 3))
    registry(tmp_path, {"file_name": "d.json"})
    with pytest.raises(data.DataError, match="num_samples = -1"):
        data.load_dataset("d", dataset_dir=tmp_path, num_samples=-1)


def test_duplicate_name_in_dataset_info_is_an_error(tmp_path):
    write(tmp_path, "a.json", json.dumps([ALPACA]))
    write(tmp_path, "b.json", json.dumps([ALPACA]))
    registry(tmp_path, None, text='{"d": {"file_name": "a.json"},\n "d": {"file_name": "b.json"}}')
    with pytest.raises(data.DataError, match="'d' is defined twice") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "d" and err.value.file.endswith("dataset_info.json")


def test_null_message_content_is_a_row_error(tmp_path):
    bad = {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "Hello!"}]}
    write(tmp_path, "d.json", json.dumps([CHAT, bad]))
    registry(tmp_path, OPENAI)
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True, verbose=False)
    assert len(ds) == 1 and report.num_invalid == 1
    issue = report.issues[0]
    assert (issue.row, issue.field) == (1, "messages") and "message 0's content is null" in issue.reason


def test_repeated_key_in_a_row_is_a_row_error(tmp_path):
    text = '[{"instruction": "a", "output": "first", "output": "second"}, {"instruction": "b", "output": "c"}]'
    write(tmp_path, "d.json", text)
    registry(tmp_path, {"file_name": "d.json"})
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True, verbose=False)
    assert len(ds) == 1 and ds[0]["messages"][-1]["content"] == "c"
    issue = report.issues[0]
    assert (issue.row, issue.field) == (0, "output") and "more than once" in issue.reason
    nested = '{"messages": [{"role": "user", "role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}]}\n'
    write(tmp_path, "n.jsonl", nested)
    registry(tmp_path, {"file_name": "n.jsonl", "formatting": "openai"})
    with pytest.raises(data.DataError, match="'role' appears more than once") as err:
        data.load_dataset("d", dataset_dir=tmp_path, strict=True)
    assert err.value.field == "messages.0.role" and err.value.row == 0


def test_system_column_beside_a_leading_system_message_is_a_row_error(tmp_path):
    row = {"system": "Be brief.", "messages": [{"role": "system", "content": "Be long."}, *CHAT["messages"]]}
    write(tmp_path, "d.json", json.dumps([row]))
    registry(tmp_path, {**OPENAI, "columns": {"messages": "messages", "system": "system"}})
    with pytest.raises(data.DataError, match="both a 'system' column and a leading system message") as err:
        data.load_dataset("d", dataset_dir=tmp_path, strict=True)
    assert (err.value.row, err.value.field) == (0, "system")


def test_utf8_bom_keeps_row_0(tmp_path):
    lines = "\n".join(json.dumps({**ALPACA, "instruction": f"q{i}"}) for i in range(3)) + "\n"
    write(tmp_path, "d.jsonl", b"\xef\xbb\xbf" + lines.encode())
    registry(tmp_path, {"file_name": "d.jsonl"})
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True, verbose=False)
    assert len(ds) == 3 and report.num_invalid == 0
    assert ds[0]["messages"][0]["content"] == "q0"


def test_top_level_data_object_is_one_clear_error(tmp_path):
    write(tmp_path, "d.json", json.dumps({"data": [ALPACA, ALPACA]}, indent=2))
    registry(tmp_path, {"file_name": "d.json"})
    with pytest.raises(data.DataError, match="one JSON object whose key 'data' holds 2 rows") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.field == "data" and err.value.file.endswith("d.json")


def test_latin1_file_is_a_clear_error_naming_line_and_encoding(tmp_path):
    text = json.dumps({"instruction": "Bonjour", "output": "Ça va"}, ensure_ascii=False) + "\n"
    write(tmp_path, "d.jsonl", (json.dumps(ALPACA) + "\n" + text).encode("latin-1"))
    registry(tmp_path, {"file_name": "d.jsonl"})
    with pytest.raises(data.DataError, match=r"not UTF-8 text: byte 0xc7 at line 2") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.file.endswith("d.jsonl") and "utf-8" in err.value.fix


def test_utf16_with_bom_is_read(tmp_path):
    write(tmp_path, "d.json", json.dumps([ALPACA], ensure_ascii=False).encode("utf-16"))
    registry(tmp_path, {"file_name": "d.json"})
    assert len(data.load_dataset("d", dataset_dir=tmp_path, verbose=False)) == 1


def test_lone_surrogate_is_a_row_error(tmp_path):
    write(tmp_path, "d.jsonl", json.dumps(ALPACA) + "\n" + '{"instruction": "bad \\ud800 text", "output": "x"}\n')
    registry(tmp_path, {"file_name": "d.jsonl"})
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True, verbose=False)
    assert len(ds) == 1
    issue = report.issues[0]
    assert (issue.row, issue.field) == (1, "instruction") and "lone surrogate" in issue.reason


def test_deep_nesting_is_a_row_error_not_a_crash(tmp_path):
    deep = "[" * 5000 + "]" * 5000
    write(tmp_path, "d.jsonl", json.dumps(ALPACA) + "\n" + '{"instruction": "a", "output": "b", "x": ' + deep + "}\n"
          + '{"instruction": "a", "output": "b", "x": ' + "[" * 100 + "]" * 100 + "}\n")
    registry(tmp_path, {"file_name": "d.jsonl"})
    ds, report = data.load_dataset("d", dataset_dir=tmp_path, return_report=True, verbose=False)
    assert len(ds) == 1 and [i.row for i in report.issues] == [1, 2]
    assert "nested too deeply" in report.issues[0].reason and "deeper than" in report.issues[1].reason
    write(tmp_path, "a.json", "[" + deep + "]")
    registry(tmp_path, {"file_name": "a.json"})
    with pytest.raises(data.DataError, match="nested too deeply") as err:
        data.load_dataset("d", dataset_dir=tmp_path)
    assert err.value.file.endswith("a.json")
