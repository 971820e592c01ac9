"""kit.data reads LLaMA-Factory's own files and registry entries into the canonical rows.

Each test writes small files in LLaMA-Factory's schema (data/README.md of hiyouga/LLaMA-Factory) with
LLaMA-Factory's own dataset_info.json entries into tmp_path, loads them and checks roles, system prompts,
tools, media and labels.
"""
import json

import pytest

from kit import data

LF_CHAT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}

# The entries exactly as LLaMA-Factory's data/dataset_info.json has them.
LF_ENTRIES = {
    "identity": {"file_name": "identity.json"},
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "glaive_toolcall_en_demo": {"file_name": "glaive_toolcall_en_demo.json", "formatting": "sharegpt",
                                "columns": {"messages": "conversations", "tools": "tools"}},
    "mllm_demo": {"file_name": "mllm_demo.json", "formatting": "sharegpt",
                  "columns": {"messages": "messages", "images": "images"}, "tags": LF_CHAT_TAGS},
    "dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
    "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                    "columns": {"messages": "messages", "kto_tag": "label"}, "tags": LF_CHAT_TAGS},
    "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
    "wiki_demo": {"file_name": "wiki_demo.txt", "columns": {"prompt": "text"}},
}

TOOLS = json.dumps([{"name": "get_weather", "description": "Weather in a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])


@pytest.fixture
def lf_dir(tmp_path):
    """A data folder in LLaMA-Factory's layout with one or two rows per demo file."""
    from PIL import Image

    def dump(name, obj):
        (tmp_path / name).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")

    dump("identity.json", [{"instruction": "hi", "input": "",
                            "output": "Hello! I am {{name}}, an AI assistant developed by {{author}}."}])
    dump("alpaca_en_demo.json", [
        {"instruction": "Describe a process.", "input": "Photosynthesis", "output": "Plants turn light into sugar."},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"}])
    dump("glaive_toolcall_en_demo.json", [{"conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
        {"from": "observation", "value": json.dumps({"temperature": 3})},
        {"from": "gpt", "value": "It is 3 °C in Oslo."}], "tools": TOOLS}])
    (tmp_path / "mllm_demo_data").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "mllm_demo_data" / "1.jpg")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "mllm_demo_data" / "2.jpg")
    dump("mllm_demo.json", [{"messages": [
        {"content": "<image>Who are they?", "role": "user"},
        {"content": "Two footballers.", "role": "assistant"},
        {"content": "What are they doing?<image>", "role": "user"},
        {"content": "Celebrating.", "role": "assistant"}],
        "images": ["mllm_demo_data/1.jpg", "mllm_demo_data/2.jpg"]}])
    dump("dpo_en_demo.json", [{"conversations": [{"from": "human", "value": "2+2?"}],
                               "chosen": {"from": "gpt", "value": "4."},
                               "rejected": {"from": "gpt", "value": "5, go away."}}])
    dump("kto_en_demo.json", [
        {"messages": [{"content": "Capital of France?", "role": "user"},
                      {"content": "Paris.", "role": "assistant"}], "label": True},
        {"messages": [{"content": "Capital of France?", "role": "user"},
                      {"content": "Berlin.", "role": "assistant"}], "label": False}])
    (tmp_path / "c4_demo.jsonl").write_text('{"text": "First document."}\n{"text": "Second document."}\n')
    (tmp_path / "wiki_demo.txt").write_text("Line one of the wiki.\n\nLine two of the wiki.\n")
    dump("dataset_info.json", LF_ENTRIES)
    return tmp_path


def test_alpaca_joins_instruction_and_input(lf_dir):
    ds = data.load_dataset("alpaca_en_demo", dataset_dir=lf_dir)
    assert list(ds.features) == list(data.features())
    assert ds[0]["messages"] == [{"role": "user", "content": "Describe a process.\nPhotosynthesis"},
                                 {"role": "assistant", "content": "Plants turn light into sugar."}]
    assert ds[1]["messages"][0]["content"] == "Say hi."  # empty input adds no newline
    assert ds[0]["system"] == "" and ds[0]["tools"] == "" and ds[0]["images"] == [] and ds[0]["chosen"] is None


def test_identity_keeps_placeholders_until_filled(lf_dir):
    row = data.load_dataset("identity", dataset_dir=lf_dir)[0]
    assert "{{name}}" in row["messages"][1]["content"]


def test_glaive_toolcall_roles_and_tools(lf_dir):
    row = data.load_dataset("glaive_toolcall_en_demo", dataset_dir=lf_dir)[0]
    assert [m["role"] for m in row["messages"]] == ["user", "function", "observation", "assistant"]
    assert json.loads(row["messages"][1]["content"])["name"] == "get_weather"
    assert json.loads(row["tools"])[0]["name"] == "get_weather"


def test_mllm_images_resolved_and_counted(lf_dir):
    row = data.load_dataset("mllm_demo", dataset_dir=lf_dir)[0]
    assert row["images"] == [str((lf_dir / "mllm_demo_data" / n).resolve()) for n in ("1.jpg", "2.jpg")]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user", "assistant"]


def test_dpo_rows_hold_prompt_and_pair(lf_dir):
    row = data.load_dataset("dpo_en_demo", dataset_dir=lf_dir, stage="dpo")[0]
    assert row["messages"] == [{"role": "user", "content": "2+2?"}]
    assert row["chosen"] == {"role": "assistant", "content": "4."}
    assert row["rejected"] == {"role": "assistant", "content": "5, go away."}
    assert data.load_dataset("dpo_en_demo", dataset_dir=lf_dir, stage="rm")[0]["chosen"]["content"] == "4."


def test_kto_labels(lf_dir):
    ds = data.load_dataset("kto_en_demo", dataset_dir=lf_dir, stage="kto")
    assert ds["kto_label"] == [True, False]
    assert ds[1]["messages"][-1] == {"role": "assistant", "content": "Berlin."}


def test_pretraining_text_jsonl_and_txt(lf_dir):
    c4 = data.load_dataset("c4_demo", dataset_dir=lf_dir, stage="pt")
    assert c4["messages"] == [[{"role": "assistant", "content": "First document."}],
                              [{"role": "assistant", "content": "Second document."}]]
    wiki = data.load_dataset("wiki_demo", dataset_dir=lf_dir, stage="pt")
    assert [m[0]["content"] for m in wiki["messages"]] == ["Line one of the wiki.", "Line two of the wiki."]


def test_openai_format_system_message_and_tool_calls(tmp_path):
    rows = [{"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
        {"role": "tool", "content": "{\"temperature\": 20}"},
        {"role": "assistant", "content": "20 °C."}], "tools": json.loads(TOOLS)}]
    (tmp_path / "chat.json").write_text(json.dumps(rows))
    data.register_dataset("chat", "chat.json", dataset_dir=tmp_path, formatting="openai",
                          columns={"messages": "messages", "tools": "tools"})
    row = data.load_dataset("chat", dataset_dir=tmp_path)[0]
    assert row["system"] == "Be brief."
    assert [m["role"] for m in row["messages"]] == ["user", "function", "observation", "assistant"]
    assert json.loads(row["messages"][1]["content"])[0]["name"] == "get_weather"
    assert json.loads(row["tools"])[0]["name"] == "get_weather"  # a list column becomes JSON text


def test_sharegpt_openai_style_tags_with_system_tag(tmp_path):
    """LLaMA-Factory's README 'OpenAI format': sharegpt + tags incl. system_tag."""
    rows = [{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello."}]}]
    (tmp_path / "o.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"o": {
        "file_name": "o.json", "formatting": "sharegpt", "columns": {"messages": "messages"},
        "tags": {**LF_CHAT_TAGS, "system_tag": "system"}}}))
    row = data.load_dataset("o", dataset_dir=tmp_path)[0]
    assert row["system"] == "You are terse." and len(row["messages"]) == 2


def test_alpaca_system_history_and_custom_columns(tmp_path):
    rows = [{"question": "And 3+3?", "answer": "6.", "sys": "Math tutor.", "hist": [["2+2?", "4."]]}]
    (tmp_path / "a.csv").write_text("question,answer\nWhat is up?,The sky.\n")
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "a": {"file_name": "a.json", "columns": {"prompt": "question", "response": "answer", "system": "sys",
                                                 "history": "hist"}},
        "csv": {"file_name": "a.csv", "columns": {"prompt": "question", "response": "answer"}}}))
    row = data.load_dataset("a", dataset_dir=tmp_path)[0]
    assert row["system"] == "Math tutor."
    assert [m["content"] for m in row["messages"]] == ["2+2?", "4.", "And 3+3?", "6."]
    assert data.load_dataset("csv", dataset_dir=tmp_path)[0]["messages"][1]["content"] == "The sky."


def test_alpaca_ranking_with_system(tmp_path):
    """Like LLaMA-Factory's orca_pairs entry: alpaca columns with chosen / rejected strings."""
    (tmp_path / "p.json").write_text(json.dumps([{"question": "Q?", "chosen": "Good.", "rejected": "Bad.",
                                                  "system": "S"}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"p": {"file_name": "p.json", "ranking": True, "columns": {
        "prompt": "question", "chosen": "chosen", "rejected": "rejected", "system": "system"}}}))
    row = data.load_dataset("p", dataset_dir=tmp_path, stage="rm")[0]
    assert (row["system"], row["messages"][0]["content"], row["chosen"]["content"]) == ("S", "Q?", "Good.")


def test_mix_folder_num_samples_and_parquet(lf_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = lf_dir / "parts"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.Table.from_pylist([{"instruction": f"q{i}{j}", "output": f"a{i}{j}"} for j in range(3)]),
                       folder / f"part{i}.parquet")
    info = json.loads((lf_dir / "dataset_info.json").read_text())
    info["parts"] = {"file_name": "parts"}
    info["alpaca_x5"] = {"file_name": "alpaca_en_demo.json", "num_samples": 5}
    (lf_dir / "dataset_info.json").write_text(json.dumps(info))
    parts = data.load_dataset("parts", dataset_dir=lf_dir)
    assert [m[0]["content"] for m in parts["messages"]] == ["q00", "q01", "q02", "q10", "q11", "q12"]
    assert len(data.load_dataset("alpaca_x5", dataset_dir=lf_dir)) == 5  # more than the 2 rows: repeats
    mixed, report = data.load_dataset(["alpaca_en_demo", "identity"], dataset_dir=lf_dir, return_report=True)
    assert len(mixed) == 3 and report.num_valid == 3 and report.ok
    assert len(data.load_dataset("alpaca_en_demo,parts", dataset_dir=lf_dir, num_samples=1)) == 2
    assert len(data.load_dataset("parts", dataset_dir=lf_dir, max_samples=4)) == 4


def test_stage_shapes_for_ppo_and_pt_from_sft_data(lf_dir):
    ppo = data.load_dataset("alpaca_en_demo", dataset_dir=lf_dir, stage="ppo")[0]
    assert ppo["messages"] == [{"role": "user", "content": "Describe a process.\nPhotosynthesis"}]
    pt = data.load_dataset("alpaca_en_demo", dataset_dir=lf_dir, stage="pt")[0]
    assert pt["messages"] == [{"role": "assistant", "content": "Describe a process.\nPhotosynthesis"}]


def test_repo_demo_registry_loads_every_entry():
    """The project's own data/: every local entry loads for its stage with no invalid rows."""
    stages = {"dpo_en_demo": "dpo", "kto_en_demo": "kto", "c4_demo": "pt", "c4_demo_eval": "pt"}
    info = data.read_dataset_info(data_dir := __import__("kit").env.data_dir())
    for name in ("alpaca_en_demo", "alpaca_zh_demo", "identity", "sharegpt_demo", "dpo_en_demo", "kto_en_demo",
                 "glaive_toolcall_en_demo", "c4_demo", "c4_demo_eval", "mllm_demo"):
        assert name in info
        ds, report = data.load_dataset(name, dataset_dir=data_dir, stage=stages.get(name, "sft"), return_report=True)
        assert report.ok, report
        assert len(ds) >= 10, name
    assert len(data.load_dataset("alpaca_en_demo,alpaca_zh_demo")) >= 300
    assert len(data.load_dataset("dpo_en_demo", stage="dpo")) >= 40
    assert len(data.load_dataset("c4_demo", stage="pt")) + len(data.load_dataset("c4_demo_eval", stage="pt")) >= 200
    mllm = data.load_dataset("mllm_demo")
    assert all(len(r["images"]) >= 1 for r in mllm)
    multi = data.load_dataset("sharegpt_demo")
    assert max(len(r["messages"]) for r in multi) >= 4
