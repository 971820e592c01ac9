"""kit.train: configs under LLaMA-Factory's names, SFT with full / freeze / LoRA / QLoRA on the
built-in model (CPU, 3 steps, cutoff 64), resume, output-dir safety and `python -m kit train`."""
import json
import math
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import yaml

from kit.train import ConfigError, TrainConfig
from kit.train.lf_defaults import default as lf_default

TINY = dict(dataset="alpaca_en_demo", max_samples=8, cutoff_len=64, per_device_train_batch_size=2,
            gradient_accumulation_steps=1, max_steps=3, logging_steps=1, save_steps=100,
            learning_rate=1e-4, report_to="none", seed=0)


def tiny(tmp_path, name="run", **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "output_dir": str(tmp_path / name), **changes})


# ----------------------------------------------------------------------------- config -> YAML

LF_CASES = [
    ("lora_rank", 16), ("lora_alpha", 32), ("lora_dropout", 0.05), ("lora_target", "q_proj,v_proj"),
    ("quantization_bit", 4), ("quantization_type", "fp4"), ("double_quantization", False),
    ("cutoff_len", 96), ("learning_rate", 2.0e-4), ("num_train_epochs", 2.0), ("max_steps", 7),
    ("per_device_train_batch_size", 3), ("gradient_accumulation_steps", 4), ("lr_scheduler_type", "linear"),
    ("warmup_ratio", 0.1), ("warmup_steps", 5), ("max_grad_norm", 0.5), ("weight_decay", 0.01),
    ("use_dora", True), ("use_rslora", True), ("neftune_noise_alpha", 5.0), ("train_on_prompt", True),
    ("mask_history", True), ("packing", True), ("val_size", 0.1), ("logging_steps", 2), ("save_steps", 9),
    ("seed", 7), ("report_to", "none"), ("flash_attn", "sdpa"), ("disable_gradient_checkpointing", False),
    ("bf16", True), ("pure_bf16", True), ("template", "qwen"), ("dataset", "identity,alpaca_en_demo"),
    ("output_dir", "saves/x"), ("stage", "dpo"), ("pref_beta", 0.2), ("use_galore", True),
    ("galore_rank", 32), ("galore_scale", 0.25), ("galore_update_interval", 50),
    ("enable_liger_kernel", True), ("neat_packing", True), ("use_reentrant_gc", False),
]


@pytest.mark.parametrize("key,value", LF_CASES, ids=[c[0] for c in LF_CASES])
def test_llamafactory_yaml_keeps_value_under_its_name(key, value):
    config = TrainConfig(**{"dataset": "identity", "output_dir": "saves/run", key: value})
    lf = yaml.safe_load(config.to_llamafactory_yaml())
    if value == lf_default(key, config.stage):  # LLaMA-Factory's own default: not written
        assert key not in lf and key not in config.command_preview()
    else:
        assert lf[key] == value
        assert config.llamafactory_dict()[key] == value
    # and it reads back as the same value when read as LLaMA-Factory reads it
    assert getattr(TrainConfig.from_dict(lf, warn=False, defaults="llamafactory"), key) == value


def test_llamafactory_yaml_freeze_and_builtin_model():
    config = TrainConfig(dataset="identity", output_dir="o", finetuning_type="freeze",
                         freeze_trainable_layers=3, freeze_trainable_modules="mlp,self_attn",
                         freeze_extra_modules="embed_tokens")
    lf = yaml.safe_load(config.to_llamafactory_yaml())
    assert (lf["finetuning_type"], lf["freeze_trainable_layers"]) == ("freeze", 3)
    assert (lf["freeze_trainable_modules"], lf["freeze_extra_modules"]) == ("mlp,self_attn", "embed_tokens")
    assert lf["model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # LLaMA-Factory needs the hub id
    assert "adapter_name_or_path" not in lf  # None = LLaMA-Factory's own default
    preview = config.command_preview()
    assert preview.startswith("llamafactory-cli train")
    assert "--freeze_trainable_layers 3" in preview and "--finetuning_type freeze" in preview


def test_our_yaml_round_trips(tmp_path):
    config = TrainConfig(dataset="identity", output_dir="o", lora_rank=4, learning_rate=3e-4,
                         quantization_bit=4, extra={"ray_num_workers": 2})
    path = tmp_path / "ours.yaml"
    config.to_yaml(path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        back = TrainConfig.from_yaml(path)
    assert back.to_dict() == config.to_dict() and back.extra == {"ray_num_workers": 2}


# ----------------------------------------------------------------------------- LLaMA-Factory examples

FIXTURES = Path(__file__).parent / "fixtures"
LF_LORA = (FIXTURES / "llama3_lora_sft.yaml").read_text()  # LLaMA-Factory's examples/train_lora file
LF_QLORA = LF_LORA.replace("trust_remote_code: true", "quantization_bit: 4\nquantization_method: bnb") \
    .replace("# val_size: 0.1\n# per_device_eval_batch_size: 1\n# eval_strategy: steps\n# eval_steps: 500",
             "val_size: 0.1\nper_device_eval_batch_size: 1\neval_strategy: steps\neval_steps: 500")
LF_FULL = LF_LORA.replace("finetuning_type: lora\nlora_rank: 8\nlora_target: all",
                          "finetuning_type: full\ndeepspeed: examples/deepspeed/ds_z3_config.json") \
    .replace("learning_rate: 1.0e-4", "learning_rate: 1.0e-5").replace("lora/sft", "full/sft")
NOT_USED = {"overwrite_cache", "preprocessing_num_workers", "save_only_model", "ddp_timeout"}
# dataloader_num_workers (4 in these examples) is a kit setting since 2026-11-30


@pytest.mark.parametrize("name,text,expected", [
    ("llama3_lora_sft.yaml", LF_LORA, dict(finetuning_type="lora", lora_rank=8, learning_rate=1e-4,
                                           trust_remote_code=True, bf16=True, quantization_bit=None)),
    ("llama3_lora_sft_otfq.yaml", LF_QLORA, dict(quantization_bit=4, quantization_method="bnb",
                                                 val_size=0.1, eval_strategy="steps", eval_steps=500)),
    ("llama3_full_sft.yaml", LF_FULL, dict(finetuning_type="full", learning_rate=1e-5,
                                           deepspeed="examples/deepspeed/ds_z3_config.json")),
])
def test_from_yaml_reads_llamafactory_examples(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.warns(UserWarning, match="not used by kit.train") as record:
        config = TrainConfig.from_yaml(path)
    unused = NOT_USED  # deepspeed is a kit field now (kit.train.distributed)
    assert set(config.unknown_keys) == unused  # reported, not dropped...
    message = str(record[0].message)
    assert all(key in message for key in unused)
    lf = yaml.safe_load(config.to_llamafactory_yaml())
    source = yaml.safe_load(text)
    for key in unused:  # ...and passed on to LLaMA-Factory, unless it is LLaMA-Factory's own default
        if source[key] == lf_default(key):
            assert key not in lf, key
        else:
            assert lf[key] == source[key], key
    common = dict(dataset="identity,alpaca_en_demo", template="llama3", cutoff_len=2048, max_samples=1000,
                  output_dir="saves/llama3-8b/" + ("full" if "full" in name else "lora") + "/sft",
                  logging_steps=10, save_steps=500, plot_loss=True, overwrite_output_dir=True,
                  per_device_train_batch_size=1, num_train_epochs=3.0, lr_scheduler_type="cosine",
                  warmup_ratio=0.1, report_to="none", resume_from_checkpoint=None, stage="sft",
                  model_name_or_path="meta-llama/Meta-Llama-3-8B-Instruct")
    for key, value in {**common, **expected}.items():
        assert getattr(config, key) == value, key
    assert isinstance(config.learning_rate, float)
    config.validate()


@pytest.mark.parametrize("changes,field_name,allowed", [
    (dict(lora_rank=0), "lora_rank", "[1, 4096]"),
    (dict(learning_rate=5.0), "learning_rate", "[0.0, 1.0]"),
    (dict(finetuning_type="qlora"), "finetuning_type", "'lora', 'freeze', 'full'"),
    (dict(quantization_bit=3), "quantization_bit", "[None, 8, 4]"),
    (dict(finetuning_type="full", quantization_bit=4), "quantization_bit", "LoRA"),
    (dict(warmup_ratio=1.5), "warmup_ratio", "[0.0, 0.999]"),
    (dict(max_steps=0), "max_steps", "-1"),
    (dict(stage="rlhf"), "stage", "'grpo'"),
    (dict(report_to="neptune"), "report_to", "'tensorboard'"),
    (dict(freeze_trainable_layers=0), "freeze_trainable_layers", "non-zero"),
    (dict(bf16=True, fp16=True), "fp16", "at most one"),
    (dict(eval_strategy="steps"), "eval_strategy", "val_size"),
    (dict(dataset=None), "dataset", "dataset_info.json"),
])
def test_validate_names_field_value_and_range(changes, field_name, allowed):
    config = TrainConfig(**{"dataset": "identity", "output_dir": "o", **changes})
    with pytest.raises(ConfigError) as err:
        config.validate()
    text = str(err.value)
    assert f"'{field_name}'" in text and allowed in text
    bad = changes.get(field_name, next(iter(changes.values())))
    assert repr(bad) in text


def test_bad_yaml_value_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: identity\nlora_rank: eight\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'lora_rank' = 'eight'"):
        TrainConfig.from_yaml(path)


# ----------------------------------------------------------------------------- training

def check_outputs(result, files):
    out = Path(result.output_dir)
    assert result.global_step == 3 and not result.interrupted
    assert result.losses and all(math.isfinite(x) for x in result.losses)
    for name in files + ["trainer_log.jsonl", "training_loss.png", "run_result.json", "kit_config.yaml",
                         "llamafactory_config.yaml", "trainer_state.json"]:
        assert (out / name).is_file(), name
    assert (out / "training_loss.png").read_bytes()[:4] == b"\x89PNG"
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in log if "loss" in r][-1] == 3
    assert all(r["total_steps"] == 3 for r in log)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "freeze", "lora", "qlora4"])
def test_sft_each_method_trains(tmp_path, method):
    from kit.train import run

    changes = {"full": dict(finetuning_type="full"),
               "freeze": dict(finetuning_type="freeze", freeze_trainable_layers=1),
               "lora": dict(finetuning_type="lora", lora_rank=4),
               "qlora4": dict(finetuning_type="lora", lora_rank=4, quantization_bit=4)}[method]
    result = run(tiny(tmp_path, **changes))
    adapter = method in ("lora", "qlora4")
    check_outputs(result, ["adapter_model.safetensors", "adapter_config.json"] if adapter
                  else ["model.safetensors", "config.json"])
    share = result.trainable_params / result.total_params
    expected = {"full": (0.999, 1.0), "freeze": (0.005, 0.1), "lora": (0.001, 0.02), "qlora4": (0.001, 0.02)}
    low, high = expected[method]
    assert low <= share <= high, share
    if method == "qlora4":
        config = json.loads((Path(result.output_dir) / "adapter_config.json").read_text())
        assert config["r"] == 4
        assert "quantization_bit: 4" in (Path(result.output_dir) / "llamafactory_config.yaml").read_text()


def test_existing_output_dir_is_refused(tmp_path):
    from kit.train import run

    config = tiny(tmp_path)
    out = Path(config.output_dir)
    out.mkdir()
    (out / "learner_notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite_output_dir=True"):
        run(config)
    assert [p.name for p in out.iterdir()] == ["learner_notes.txt"]
    assert (out / "learner_notes.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(config, resume=True)
    assert [p.name for p in out.iterdir()] == ["learner_notes.txt"]


class _AbortAt:
    """Sets the abort flag at the end of step `step` (kit's AbortCallback then stops at step+1)."""

    def __init__(self, flag, step):
        from transformers import TrainerCallback

        class Cb(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= step:
                    flag.set()

        self.callback = Cb()


@pytest.mark.slow
def test_abort_then_resume_continues_step_and_optimizer(tmp_path):
    from kit.train import run

    # 16 rows / batch 2 = 8 steps per epoch: steps 1-5 stay in one epoch, so the data order matches
    settings = dict(finetuning_type="lora", lora_rank=4, max_steps=5, save_steps=2, learning_rate=5e-3,
                    max_samples=16)
    straight = run(tiny(tmp_path, "straight", **settings))
    assert straight.global_step == 5

    config = tiny(tmp_path, "stopped", **settings)
    flag = threading.Event()
    stopped = run(config, abort=flag, callbacks=[_AbortAt(flag, 2).callback])
    out = Path(config.output_dir)
    assert stopped.interrupted and stopped.global_step == 3
    assert stopped.checkpoint == str(out / "checkpoint-3")
    assert (out / "checkpoint-3" / "optimizer.pt").is_file() and (out / "checkpoint-2").is_dir()
    assert not (out / "run_result.json").exists()  # not a finished run
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3

    with pytest.raises(FileExistsError):  # a stopped run is not thrown away by accident
        run(config)
    resumed = run(config, resume=True)
    assert resumed.global_step == 5 and not resumed.interrupted
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 5
    steps = [e["step"] for e in resumed.log_history if "loss" in e]
    assert steps == [1, 2, 3, 4, 5]  # history of steps 1-3 kept, continued at 4
    # same global step, optimizer/scheduler/RNG state: steps 4-5 match the uninterrupted run
    losses = {e["step"]: e["loss"] for e in resumed.log_history if "loss" in e}
    reference = {e["step"]: e["loss"] for e in straight.log_history if "loss" in e}
    for step in (4, 5):
        assert losses[step] == pytest.approx(reference[step], rel=1e-3), step
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_cli_trains_from_yaml(tmp_path):
    config = tiny(tmp_path, "cli", finetuning_type="lora", lora_rank=4)
    path = tmp_path / "cfg.yaml"
    text = yaml.safe_dump({k: v for k, v in config.llamafactory_dict().items()}) + "ddp_timeout: 180000000\n"
    path.write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "kit", "train", str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished at step 3" in proc.stdout
    assert "ddp_timeout" in proc.stderr  # the unused key is reported
    assert (tmp_path / "cli" / "adapter_model.safetensors").is_file()
    again = subprocess.run([sys.executable, "-m", "kit", "train", str(path), "--preview"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "--lora_rank 4" in again.stdout
    bad = subprocess.run([sys.executable, "-m", "kit", "train", str(path), "--set", "lora_rank=0"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "'lora_rank' = 0" in bad.stderr


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    from transformers import TrainerCallback

    from kit.train import run

    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    config = tiny(tmp_path, finetuning_type="lora", lora_rank=4)
    stopped = run(config, callbacks=[CtrlC()])
    out = Path(config.output_dir)
    assert stopped.interrupted and stopped.global_step == 2 and stopped.checkpoint == str(out / "checkpoint-2")
    assert (out / "checkpoint-2" / "optimizer.pt").is_file() and (out / "checkpoint-2" / "scheduler.pt").is_file()
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    resumed = run(config, resume=True)
    # step 2's loss was never logged (Ctrl-C came before its log); the history goes on from the checkpoint
    assert resumed.global_step == 3 and [e["step"] for e in resumed.log_history if "loss" in e] == [1, 3]
    assert (out / "adapter_model.safetensors").is_file() and (out / "run_result.json").is_file()
