"""Command lines parsed from dataclasses (kit.cli over HfArgumentParser): flags, YAML + overrides,
`python -m kit env`, and the serve socket. No model is loaded here (the commands' work is mocked)."""
import subprocess
import sys

import pytest
import yaml
from transformers import HfArgumentParser

from kit import cli, course, export, serve
from kit.train import cli as train_cli

TRAIN_YAML = {"model_name_or_path": "smollm2-135m-instruct", "stage": "sft", "finetuning_type": "lora",
              "dataset": "identity", "template": "smollm2", "output_dir": "out", "max_steps": 3, "lora_rank": 8}


def test_every_command_parser_is_an_hf_argument_parser():
    for parser in (train_cli.parser(), cli.dataclass_parser("p", "d", export.ExportCommand, export.ExportConfig),
                   cli.dataclass_parser("p", "d", course.CourseArgs)):
        assert isinstance(parser, HfArgumentParser)


def test_train_yaml_then_set_then_flags_override(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(TRAIN_YAML))
    assert train_cli.main([str(path), "--set", "lora_rank=4", "--set", "max_steps=7", "--learning_rate", "0.001",
                           "--preview"]) == 0
    out = capsys.readouterr().out
    assert "--lora_rank 4" in out and "--max_steps 7" in out and "--learning_rate 0.001" in out
    config = train_cli.read_config(str(path), {"lora_rank": 16})
    assert config.lora_rank == 16 and config.max_steps == 3  # override wins, the rest comes from the YAML


def test_train_bad_values_exit_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(TRAIN_YAML))
    assert train_cli.main([str(path), "--set", "lora_rank=0"]) == 2
    assert "'lora_rank' = 0" in capsys.readouterr().err
    assert train_cli.main([str(path), "--set", "lora_rank"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_export_yaml_keys_and_flags(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(export, "merge_and_save", lambda a, e, **o: calls.append((a, e, o)) or "done")
    path = tmp_path / "merge.yaml"
    path.write_text("model_name_or_path: smollm2-135m-instruct\nadapter_name_or_path: ad\ntemplate: smollm2\n"
                    "finetuning_type: lora\nexport_dir: ex\nexport_size: 1\nunknown_thing: 3\n")
    assert export.cli_main([str(path), "--export_dir", "other", "--no_verify", "--no_modelfile"]) == 0
    adapter, export_dir, options = calls[-1]
    assert (adapter, export_dir) == ("ad", "other")  # the flag wins over the YAML
    assert options["export_size"] == 1.0 and options["template"] == "smollm2"
    assert options["verify"] is False and options["ollama_modelfile"] is False
    assert "unknown_thing" in capsys.readouterr().err
    assert export.cli_main(["--adapter_name_or_path", "a", "--export_dir", "b", "--export_size", "200MB",
                            "--overwrite", "--bnb_quantization_bit", "4"]) == 0
    options = calls[-1][2]
    assert options["export_size"] == "200MB" and options["overwrite"] is True and options["bnb_quantization_bit"] == 4
    with pytest.raises(SystemExit):
        export.cli_main(["--export_dir", "b"])  # no adapter


def test_key_values_forms():
    assert cli.key_values(["--a", "1", "--b=x", "--c", "[1, 2]"]) == {"a": 1, "b": "x", "c": [1, 2]}
    assert cli.key_values(["k=3"], flag="") == {"k": 3}
    with pytest.raises(ValueError, match="no value"):
        cli.key_values(["--a"])


def test_serve_binds_its_own_socket_and_refuses_public_hosts():
    sock = serve.bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        with pytest.raises(OSError, match="port in use"):
            serve.bind("127.0.0.1", port)
    finally:
        sock.close()
    with pytest.raises(ValueError, match="loopback"):
        serve.bind("0.0.0.0", 0)


def test_course_flags(monkeypatch):
    from kit import __main__ as main

    seen = {}
    monkeypatch.setattr(course, "run_course", lambda **kw: seen.update(kw) or [])
    assert main.main(["course", "--quick", "--only", "00", "06", "--timeout", "60"]) == 0
    assert seen == {"quick": True, "out": "build/course", "only": ["00", "06"], "timeout": 60}
    args, _, _ = cli.parse(cli.dataclass_parser("p", "d", course.CourseArgs), ["--student", "out_dir"])
    assert args.student == "out_dir" and args.quick is False


def test_python_m_kit_env_prints_the_report():
    proc = subprocess.run([sys.executable, "-m", "kit", "env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("python ") and any(line.startswith("device ") for line in lines)
    import torch
    assert any(line.split()[:2] == ["torch", torch.__version__] for line in lines), proc.stdout


def test_package_versions_names_what_is_missing():
    import importlib.metadata as md

    from kit.env import package_versions

    found = package_versions(("torch", "no-such-package-kit-test"), missing=None)
    assert found == {"torch": md.version("torch"), "no-such-package-kit-test": None}
    assert package_versions(("no-such-package-kit-test",))["no-such-package-kit-test"] == "MISSING"
