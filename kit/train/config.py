"""Training settings as dataclasses whose field names are LLaMA-Factory's argument names.

`TrainConfig` is flat, like a LLaMA-Factory YAML (`config.lora_rank`, `config.cutoff_len`), and is
made of parts (`ModelArguments`, `DataArguments`, `FinetuningArguments`, `TrainingArguments`,
`GeneratingArguments`) that the training panel shows as groups. Each field carries its default and
its help text once, in `metadata`: "help" (English), "label"/"label_zh" (panel labels), "choices" or
"min"/"max" (what `validate()` and the panel check).

    cfg = TrainConfig.from_yaml("llama3_lora_sft.yaml")   # LLaMA-Factory's examples, as they are
    cfg.unknown_keys        # keys this kit does not use (also warned about; kept in cfg.extra)
    cfg.validate()          # ConfigError naming field, value and allowed range
    print(cfg.command_preview())   # the llamafactory-cli equivalent: only what differs from
                                   # LLaMA-Factory's defaults (kit.train.lf_defaults), in its spelling
    TrainConfig.from_yaml(path, defaults="llamafactory")   # keys left out mean LLaMA-Factory's defaults

Not here: anything that loads a model or trains (kit.train.runner), widgets (kit.ui.train).
Left out of LLaMA-Factory's arguments: OFT, PiSSA, BAdam, APOLLO, LLaMA-Pro, multimodal
and inference-backend settings; they land in `extra` with a warning instead of being dropped.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kit.data.formats import TRAIN_STAGES as STAGES

PPO_REFUSED = ("stage 'ppo' is LLaMA-Factory's PPO (a value model next to the policy), which this kit does not "
               "have; its online RL stage is 'grpo' (GRPO: several answers per prompt, no value model). "
               "Set stage: grpo to run that, knowing it is a different algorithm")
BUILTIN_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what LLaMA-Factory needs for our built-in model

# LLaMA-Factory / transformers keys renamed over the years -> today's name
ALIASES = {"evaluation_strategy": "eval_strategy"}


class ConfigError(ValueError):
    """A setting is wrong: the message names the field, the value and what is allowed."""


def _f(default, help: str, label: str, label_zh: str, **meta):
    """A dataclass field with its default, help text, labels and range in one place."""
    metadata = {"help": help, "label": label, "label_zh": label_zh, **meta}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelArguments:
    model_name_or_path: str = _f("smollm2-135m-instruct", "Model to fine-tune: the built-in name, a local "
                                 "folder or a Hugging Face id.", "Model", "模型名称或路径", help_zh="要微调的模型：内置模型名、本地文件夹或 Hugging Face 模型 ID。")
    adapter_name_or_path: str | None = _f(None, "LoRA adapter folder(s) to start from (comma-separated; all "
                                          "but the last are merged).", "Adapter path", "适配器路径", help_zh="起始 LoRA 适配器文件夹（逗号分隔；除最后一个外都会先合并）。")
    trust_remote_code: bool = _f(False, "Allow model code from the hub (not needed for the built-in model).",
                                 "Trust remote code", "信任远程代码", help_zh="允许运行 Hub 上模型自带的代码（内置模型不需要）。")
    quantization_bit: int | None = _f(None, "Load the base model in 4 or 8 bits with bitsandbytes (QLoRA); "
                                      "LoRA only.", "Quantization bit", "量化等级", choices=[None, 8, 4], help_zh="用 bitsandbytes 以 4 或 8 位加载基座模型（QLoRA）；仅用于 LoRA。")
    quantization_method: str = _f("bnb", "Quantization library: bnb (bitsandbytes; the old spelling "
                                  "'bitsandbytes' is read too and exported as bnb).",
                                  "Quantization method", "量化方法", choices=["bitsandbytes", "bnb"], help_zh="量化库：bnb（bitsandbytes；旧写法 'bitsandbytes' 也能读入，导出为 bnb）。")
    quantization_type: str = _f("nf4", "4-bit data type: nf4 (QLoRA's NormalFloat) or fp4.",
                                "Quantization type", "量化数据类型", choices=["nf4", "fp4"], help_zh="4 位数据类型：nf4（QLoRA 的 NormalFloat）或 fp4。")
    double_quantization: bool = _f(True, "Quantize the 4-bit scales too (QLoRA's double quantization).",
                                   "Double quantization", "双重量化", help_zh="对 4 位量化的缩放常数再量化一次（QLoRA 的双重量化）。")
    flash_attn: str = _f("auto", "Attention implementation: auto, disabled (eager), sdpa or fa2 "
                         "(flash-attention 2, CUDA only).", "Flash attention", "加速方式",
                         choices=["auto", "disabled", "sdpa", "fa2"], help_zh="注意力实现：auto、disabled（eager）、sdpa 或 fa2（flash-attention 2，仅 CUDA）。")
    disable_gradient_checkpointing: bool | None = _f(
        None, "Turn gradient checkpointing off. None (the default) = LLaMA-Factory's default on a GPU "
        "(False: checkpointing on, each layer recomputed in backward: less memory, ~30% slower) and off on "
        "CPU, where there is no GPU memory to save.", "Disable gradient checkpointing", "禁用梯度检查点",
        choices=[None, False, True], help_zh="关闭梯度检查点。None（默认）= GPU 上按 LLaMA-Factory 的默认（开启：省显存、约慢 30%），CPU 上关闭。")
    use_reentrant_gc: bool = _f(True, "Gradient checkpointing through torch's reentrant implementation "
                                "(LLaMA-Factory's default); False = the non-reentrant one.",
                                "Reentrant checkpointing", "使用可重入梯度检查点", help_zh="用 torch 的可重入实现做梯度检查点（LLaMA-Factory 默认）；False = 非可重入实现。")
    enable_liger_kernel: bool | str = _f(False, "Liger kernels (pip install '.[gpu]'): fused linear "
                                         "cross-entropy (no logits tensor), RMSNorm, SwiGLU, RoPE in Triton. "
                                         "Needs CUDA + Triton: True fails early elsewhere; 'auto' uses them "
                                         "where they run and says so when not.", "Liger kernel",
                                         "使用 Liger Kernel", choices=[False, True, "auto"], help_zh="Liger 内核（pip install '.[gpu]'）：融合线性层与交叉熵（不存 logits 张量）、RMSNorm、SwiGLU、RoPE 的 Triton 实现。需要 CUDA + Triton；'auto' 能用时使用。")


@dataclass
class DataArguments:
    template: str = _f("smollm2", "Chat template name (kit.templates); must match the model.",
                       "Template", "对话模板", help_zh="对话模板名（kit.templates）；必须与模型匹配。")
    dataset: str | None = _f(None, "Training dataset name(s) from dataset_info.json, comma-separated.",
                             "Dataset", "数据集", help_zh="训练数据集名（dataset_info.json 中的名字），多个用逗号分隔。")
    eval_dataset: str | None = _f(None, "Evaluation dataset name(s), comma-separated.",
                                  "Eval dataset", "验证数据集", help_zh="验证数据集名，多个用逗号分隔。")
    dataset_dir: str = _f("data", "Folder holding dataset_info.json (relative paths: the current folder, "
                          "then the repository).", "Data dir", "数据路径", help_zh="存放 dataset_info.json 的文件夹（相对路径先找当前文件夹，再找仓库）。")
    cutoff_len: int = _f(2048, "Maximum tokens per example after encoding (longer ones are cut).",
                         "Cutoff length", "截断长度", min=4, max=1_000_000, help_zh="编码后每条样本的最大 token 数（更长的会被截断）。")
    max_samples: int | None = _f(None, "Use at most this many rows of each dataset.", "Max samples",
                                 "最大样本数", min=1, help_zh="每个数据集最多使用这么多行。")
    val_size: float = _f(0.0, "Share (0-1) or number (>=1) of training rows held out for evaluation.",
                         "Val size", "验证集比例", min=0.0, help_zh="从训练数据中留作验证的比例（0-1）或行数（>=1）。")
    train_on_prompt: bool = _f(False, "Also compute the loss on the prompt tokens (labels not masked).",
                               "Train on prompt", "学习提示词", help_zh="也在提示词 token 上计算损失（标签不遮盖）。")
    mask_history: bool = _f(False, "Train only on the last assistant turn of each conversation.",
                            "Mask history", "不学习历史对话", help_zh="每段对话只训练最后一轮助手回答。")
    packing: bool | None = _f(None, "Concatenate several examples into one cutoff_len sequence (greedy, in "
                              "order): no padding, but examples in one sequence attend to each other, so it "
                              "trains a slightly different model. None = LLaMA-Factory's default: on for stage "
                              "pt, off otherwise.", "Packing", "序列打包", choices=[None, False, True], help_zh="把多条样本按顺序拼接成一条 cutoff_len 长的序列：没有填充，但同一序列中的样本彼此可见。None = LLaMA-Factory 的默认：pt 阶段开启，其他关闭。")
    neat_packing: bool = _f(False, "Packing without cross-attention: each example in a packed sequence "
                            "attends only to itself (position ids restart; a block-diagonal causal mask). "
                            "Implies packing.", "Neat packing", "使用无污染打包", help_zh="无交叉注意力的打包：打包序列中每条样本只看自己（位置编号重新开始；块对角因果掩码）。隐含开启打包。")
    disable_shuffling: bool = _f(False, "Take the training rows in the dataset's order instead of shuffling them "
                                 "each epoch (LLaMA-Factory's argument).", "Disable shuffling", "不打乱顺序",
                                 help_zh="按数据集原有顺序取训练样本，不在每个 epoch 打乱（LLaMA-Factory 的参数）。")
    force_template: bool = _f(False, "Train even when the template's special markers are not single tokens "
                              "of the model's tokenizer (they are added as new tokens). Normally such a "
                              "template is refused before the model loads.", "Force template", "强制使用模板",
                              kit_only=True, help_zh="即使模板的特殊标记不是分词器中的单个 token 也训练（会作为新 token 加入）。通常这种模板在加载模型前就被拒绝。")


@dataclass
class FinetuningArguments:
    stage: str = _f("sft", "Training stage: pt, sft, rm, dpo, kto or grpo (the kit's online RL; "
                    "LLaMA-Factory's ppo is refused).", "Stage", "训练阶段",
                    choices=list(STAGES), help_zh="训练阶段：pt、sft、rm、dpo、kto 或 grpo（本套件的在线强化学习；不支持 LLaMA-Factory 的 ppo）。")
    finetuning_type: str = _f("lora", "full: every weight; freeze: the last layers only; lora: small "
                              "low-rank adapters.", "Finetuning method", "微调方法",
                              choices=["lora", "freeze", "full"], help_zh="full：全部权重；freeze：只训练最后几层；lora：训练小的低秩适配器。")
    freeze_trainable_layers: int = _f(2, "Freeze: how many layers train (positive: the last n, negative: "
                                      "the first n).", "Trainable layers", "可训练层数", min=-1000, max=1000, help_zh="部分参数微调：训练多少层（正数：最后 n 层，负数：最前 n 层）。")
    freeze_trainable_modules: str = _f("all", "Freeze: modules inside those layers that train "
                                       "(comma-separated, e.g. mlp,self_attn; all = every module).",
                                       "Trainable modules", "可训练模块", help_zh="部分参数微调：这些层中参与训练的模块（逗号分隔，如 mlp,self_attn；all 表示全部）。")
    freeze_extra_modules: str | None = _f(None, "Freeze: other modules that train too (e.g. embed_tokens,norm).",
                                          "Extra modules", "额外模块", help_zh="部分参数微调：另外参与训练的模块（如 embed_tokens,norm）。")
    lora_rank: int = _f(8, "LoRA rank r: the inner size of the B·A update.", "LoRA rank", "LoRA 秩",
                        min=1, max=4096, help_zh="LoRA 秩 r：B·A 更新的内部维度。")
    lora_alpha: int | None = _f(None, "LoRA alpha: the update is scaled by alpha/r (default 2·r).",
                                "LoRA alpha", "LoRA 缩放系数", min=1, help_zh="LoRA alpha：更新按 alpha/r 缩放（默认 2·r）。")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input.", "LoRA dropout", "LoRA 随机丢弃",
                             min=0.0, max=0.999, help_zh="LoRA 输入上的 dropout 比例。")
    lora_target: str = _f("all", "Modules that get LoRA adapters (comma-separated, e.g. q_proj,v_proj; "
                          "all = every linear layer).", "LoRA modules", "LoRA 作用模块", help_zh="加 LoRA 适配器的模块（逗号分隔，如 q_proj,v_proj；all 表示所有线性层）。")
    additional_target: str | None = _f(None, "Other modules that train fully and are saved with the "
                                       "adapter (e.g. embed_tokens).", "Additional modules", "附加模块", help_zh="完整训练并随适配器一起保存的其他模块（如 embed_tokens）。")
    use_rslora: bool = _f(False, "rsLoRA: scale by alpha/sqrt(r) instead of alpha/r.", "Use rsLoRA",
                          "使用 rslora", help_zh="rsLoRA：按 alpha/sqrt(r) 而不是 alpha/r 缩放。")
    use_dora: bool = _f(False, "DoRA: learn a magnitude and a direction (weight-decomposed LoRA).",
                        "Use DoRA", "使用 DoRA", help_zh="DoRA：分别学习幅度和方向（权重分解的 LoRA）。")
    use_galore: bool = _f(False, "GaLore: full training with low-rank projected gradients (needs "
                          "galore-torch).", "Use GaLore", "使用 GaLore", help_zh="GaLore：用低秩投影梯度做全参数训练（需要 galore-torch）。")
    galore_target: str = _f("all", "GaLore: linear modules it applies to (comma-separated or all).",
                            "GaLore modules", "GaLore 作用模块", help_zh="GaLore：作用的线性模块（逗号分隔或 all）。")
    galore_rank: int = _f(16, "GaLore: rank of the projected gradients.", "GaLore rank", "GaLore 秩",
                          min=1, help_zh="GaLore：投影梯度的秩。")
    galore_update_interval: int = _f(200, "GaLore: steps between projection updates.",
                                     "GaLore update interval", "GaLore 更新间隔", min=1, help_zh="GaLore：两次更新投影之间的步数。")
    galore_scale: float = _f(2.0, "GaLore: scale of the projected update.", "GaLore scale",
                             "GaLore 缩放系数", min=0.0, help_zh="GaLore：投影更新的缩放系数。")
    galore_proj_type: str = _f("std", "GaLore: projection type.", "GaLore projection", "GaLore 投影类型",
                               choices=["std", "reverse_std", "right", "left", "full"], help_zh="GaLore：投影类型。")
    galore_layerwise: bool = _f(False, "GaLore: update layer by layer (less memory; no gradient "
                                "accumulation).", "GaLore layerwise", "GaLore 逐层更新", help_zh="GaLore：逐层更新（更省显存；不能梯度累积）。")
    pure_bf16: bool = _f(False, "Train purely in bf16 (weights bf16, no mixed precision).", "Pure bf16",
                         "纯 bf16", help_zh="纯 bf16 训练（权重为 bf16，不用混合精度）。")
    plot_loss: bool = _f(True, "Save the loss curve as training_loss.png in output_dir.", "Plot loss",
                         "绘制损失曲线", help_zh="把损失曲线保存为输出目录中的 training_loss.png。")
    # preference / RL stages (rm, dpo, kto, ppo)
    pref_beta: float = _f(0.1, "DPO/KTO beta: how far the policy may move from the reference.",
                          "Beta", "Beta 参数", min=0.0, help_zh="DPO/KTO 的 beta：策略可以偏离参考模型多远。")
    pref_ftx: float = _f(0.0, "Weight of an added SFT loss in DPO.", "Ftx gamma", "Ftx gamma", min=0.0, help_zh="DPO 中附加 SFT 损失的权重。")
    pref_loss: str = _f("sigmoid", "DPO loss type.", "Loss type", "损失类型",
                        choices=["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"], help_zh="DPO 损失类型。")
    dpo_label_smoothing: float = _f(0.0, "cDPO label smoothing (0-0.5).", "Label smoothing", "标签平滑",
                                    min=0.0, max=0.5, help_zh="cDPO 标签平滑（0-0.5）。")
    simpo_gamma: float = _f(0.5, "SimPO target reward margin.", "SimPO gamma", "SimPO gamma", min=0.0, help_zh="SimPO 目标奖励间隔。")
    kto_chosen_weight: float = _f(1.0, "KTO weight of desirable answers.", "KTO chosen weight",
                                  "KTO 正样本权重", min=0.0, help_zh="KTO 中正样本（好回答）的权重。")
    kto_rejected_weight: float = _f(1.0, "KTO weight of undesirable answers.", "KTO rejected weight",
                                    "KTO 负样本权重", min=0.0, help_zh="KTO 中负样本（差回答）的权重。")
    ref_model: str | None = _f(None, "Reference model for DPO/KTO/PPO (default: the model before training).",
                               "Reference model", "参考模型", help_zh="DPO/KTO/PPO 的参考模型（默认：训练前的模型）。")
    ref_model_adapters: str | None = _f(None, "Adapters of the reference model.", "Reference adapters",
                                        "参考模型适配器", help_zh="参考模型的适配器。")
    ref_model_quantization_bit: int | None = _f(None, "Quantize the reference model (4 or 8 bits).",
                                                "Reference quantization", "参考模型量化", choices=[None, 8, 4], help_zh="量化参考模型（4 或 8 位）。")
    reward_model: str | None = _f(None, "Reward model (or adapter) for PPO.", "Reward model", "奖励模型", help_zh="PPO 的奖励模型（或适配器）。")
    reward_model_adapters: str | None = _f(None, "Adapters of the reward model.", "Reward adapters",
                                           "奖励模型适配器", help_zh="奖励模型的适配器。")
    reward_model_quantization_bit: int | None = _f(None, "Quantize the reward model (4 or 8 bits).",
                                                   "Reward quantization", "奖励模型量化", choices=[None, 8, 4], help_zh="量化奖励模型（4 或 8 位）。")
    reward_model_type: str = _f("lora", "Reward model kind for PPO.", "Reward model type", "奖励模型类型",
                                choices=["lora", "full", "api"], help_zh="PPO 的奖励模型类型。")
    ppo_buffer_size: int = _f(1, "PPO mini-batches per experience buffer.", "PPO buffer size",
                              "PPO 缓冲区大小", min=1, help_zh="每个经验缓冲区包含的 PPO 小批次数。")
    ppo_epochs: int = _f(4, "PPO epochs per optimisation step.", "PPO epochs", "PPO 轮数", min=1, help_zh="每个优化步的 PPO 轮数。")
    ppo_score_norm: bool = _f(False, "Normalise PPO scores.", "Score norm", "归一化分数", help_zh="归一化 PPO 分数。")
    ppo_target: float = _f(6.0, "Target KL for PPO's adaptive KL control.", "PPO target KL",
                           "PPO 目标 KL", min=0.0, help_zh="PPO 自适应 KL 控制的目标 KL。")
    ppo_whiten_rewards: bool = _f(False, "Whiten PPO rewards.", "Whiten rewards", "白化奖励", help_zh="对 PPO 奖励做白化。")


@dataclass
class TrainingArguments:
    output_dir: str = _f("", "Folder for checkpoints, logs, the adapter/model and the loss plot (empty: a "
                         "new saves/<model>/<method>/train_<time> folder for every start).",
                         "Output dir", "输出目录", help_zh="保存检查点、日志、适配器/模型和损失曲线的文件夹（留空：自动新建 saves/<模型>/<方法>/train_<时间>）。")
    overwrite_output_dir: bool = _f(False, "Delete an existing output_dir before training.",
                                    "Overwrite output dir", "覆盖输出目录", help_zh="训练前删除已存在的输出目录。")
    resume_from_checkpoint: str | None = _f(None, "Checkpoint folder to continue from.",
                                            "Resume from checkpoint", "断点路径", help_zh="从这个检查点文件夹继续训练。")
    do_train: bool = _f(True, "Train (the kit always does; kept for LLaMA-Factory YAMLs).", "Do train",
                        "执行训练", help_zh="执行训练（本套件总是训练；为兼容 LLaMA-Factory 的 YAML 而保留）。")
    learning_rate: float = _f(5e-5, "Peak learning rate of AdamW (0 measures the loss without changing "
                              "the model).", "Learning rate", "学习率", min=0.0, max=1.0, help_zh="AdamW 的峰值学习率（0 表示只测损失、不改变模型）。")
    num_train_epochs: float = _f(3.0, "Passes over the training data (ignored when max_steps > 0).",
                                 "Epochs", "训练轮数", min=0.0, help_zh="遍历训练数据的轮数（max_steps > 0 时忽略）。")
    max_steps: int = _f(-1, "Optimizer steps to run; -1 means use num_train_epochs.", "Max steps",
                        "最大步数", min=-1, help_zh="要运行的优化步数；-1 表示按训练轮数。")
    per_device_train_batch_size: int = _f(2, "Examples per forward pass on each device.", "Batch size",
                                          "批处理大小", min=1, help_zh="每个设备每次前向传播的样本数。")
    per_device_eval_batch_size: int = _f(2, "Examples per evaluation forward pass.", "Eval batch size",
                                         "验证批处理大小", min=1, help_zh="每次验证前向传播的样本数。")
    gradient_accumulation_steps: int = _f(8, "Forward passes whose gradients add up before one optimizer "
                                          "step (effective batch = batch size x this).",
                                          "Gradient accumulation", "梯度累积", min=1, help_zh="累加多少次前向传播的梯度后做一次优化（有效批大小 = 批处理大小 × 此值）。")
    lr_scheduler_type: str = _f("cosine", "How the learning rate changes over training.", "LR scheduler",
                                "学习率调节器",
                                choices=["linear", "cosine", "cosine_with_restarts", "polynomial",
                                         "constant", "constant_with_warmup", "inverse_sqrt",
                                         "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay"], help_zh="学习率在训练中如何变化。")
    warmup_ratio: float = _f(0.0, "Share of steps spent warming the learning rate up from 0.", "Warmup ratio",
                             "预热比例", min=0.0, max=0.999, help_zh="学习率从 0 预热所占的步数比例。")
    warmup_steps: float = _f(0, "Warm-up steps (overrides warmup_ratio when > 0).", "Warmup steps",
                             "预热步数", min=0, help_zh="预热步数（> 0 时覆盖预热比例）。")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this (0 = no clipping).", "Max grad norm",
                              "最大梯度范数", min=0.0, help_zh="梯度范数裁剪到这个值（0 = 不裁剪）。")
    weight_decay: float = _f(0.0, "AdamW weight decay.", "Weight decay", "权重衰减", min=0.0, help_zh="AdamW 权重衰减。")
    optim: str = _f("adamw_torch", "Optimizer name (transformers); GaLore sets its own.", "Optimizer",
                    "优化器", help_zh="优化器名（transformers）；GaLore 会设置自己的优化器。")
    torch_compile: bool = _f(False, "Compile the model with torch.compile (LLaMA-Factory passes this transformers "
                             "argument on). The kit compiles each decoder layer (regional compilation: one "
                             "compiled forward and backward serve every layer); the first steps are slow while "
                             "it compiles, later ones launch fewer, fused kernels. With Liger on, only its fused "
                             "cross-entropy is used.", "Torch compile",
                             "torch.compile 编译", help_zh="用 torch.compile 编译模型（LLaMA-Factory 原样传给 transformers 的参数）。本工具包逐层编译解码层（区域编译：一份编译好的前向与反向供所有层共用）；开头几步因编译较慢，之后启动更少、融合过的内核。同时开启 Liger 时只用它的融合交叉熵。")
    torch_compile_mode: str | None = _f(None, "torch.compile's mode (transformers' argument; setting it turns "
                                        "torch_compile on): default, reduce-overhead (CUDA graphs: replays a "
                                        "step's kernels without launching each from Python), max-autotune, "
                                        "max-autotune-no-cudagraphs. With neat_packing, compiled runs pad every "
                                        "packed row to cutoff_len, so each step has the same shape.",
                                        "Torch compile mode", "torch.compile 模式",
                                        choices=[None, "default", "reduce-overhead", "max-autotune",
                                                 "max-autotune-no-cudagraphs"],
                                        help_zh="torch.compile 的模式（transformers 的参数；设置后自动开启编译）：default、reduce-overhead（CUDA Graph：整步重放内核，不再逐个从 Python 启动）、max-autotune、max-autotune-no-cudagraphs。与 neat_packing 同用时，每个打包行都补齐到 cutoff_len，使每步形状相同。")
    cuda_graphs: bool = _f(False, "Run the decoder's forward and backward as two captured CUDA graphs (PyTorch's "
                           "make_graphed_callables): each step replays them instead of launching every kernel from "
                           "Python, with no compile time. For a single CUDA GPU with neat_packing (every row padded "
                           "to cutoff_len, so every step has one shape), gradient checkpointing off and "
                           "torch_compile off. Batches are copied without waiting; with logging_nan_inf_filter: "
                           "false as well, no step makes the CPU wait for the GPU. The kit's own switch; "
                           "LLaMA-Factory has none.", "CUDA graphs",
                           "CUDA Graph 重放", kit_only=True,
                           help_zh="把解码器的前向与反向各录成一张 CUDA Graph（PyTorch 的 make_graphed_callables）：每步重放整张图，"
                                   "不再从 Python 逐个启动内核，也没有编译时间。要求：单块 CUDA GPU、开启 neat_packing（每个打包行补齐到 "
                                   "cutoff_len，每步形状相同）、关闭梯度检查点、关闭 torch_compile。批数据以非阻塞方式拷贝；再设 "
                                   "logging_nan_inf_filter: false，每一步都不必让 CPU 等待 GPU。本工具包自有的开关，LLaMA-Factory 没有。")
    dataloader_num_workers: int = _f(0, "Worker processes that batch the data beside training (transformers' "
                                     "argument); 0 = in the training process.", "Dataloader workers",
                                     "数据加载进程数", min=0, help_zh="在训练之外并行组批的进程数（transformers 的参数）；0 = 在训练进程内组批。")
    neftune_noise_alpha: float | None = _f(None, "NEFTune: noise added to embeddings during training "
                                           "(e.g. 5); None = off.", "NEFTune alpha", "NEFTune 噪声参数",
                                           min=0.0, help_zh="NEFTune：训练时给嵌入加的噪声（如 5）；留空 = 关闭。")
    logging_steps: int = _f(5, "Log the loss every n steps.", "Logging steps", "日志间隔", min=1, help_zh="每 n 步记录一次损失。")
    logging_nan_inf_filter: bool = _f(True, "Leave a NaN or infinite step loss out of the logged average "
                                      "(transformers' argument, on by default). The check reads the loss back from "
                                      "the GPU every step, so the CPU waits for the GPU there; with cuda_graphs, "
                                      "turning it off lets the CPU prepare the next step while the GPU works.",
                                      "Filter NaN/inf losses", "过滤 NaN/inf 损失",
                                      help_zh="记录损失时跳过 NaN 或无穷大的单步损失（transformers 的参数，默认开启）。"
                                              "这项检查每步都要把损失从 GPU 读回，CPU 因此要等 GPU 算完；配合 cuda_graphs "
                                              "时关闭它，CPU 就能在 GPU 计算时准备下一步。")
    save_strategy: str = _f("steps", "When to save checkpoints: steps (every save_steps and at the end), "
                            "epoch, or no (only the final model).", "Save strategy", "保存策略",
                            choices=["steps", "epoch", "no"], help_zh="何时保存检查点：steps（每 save_steps 步及结束时）、epoch 或 no（只保存最终模型）。")
    save_steps: int = _f(100, "Save a checkpoint every n steps.", "Save steps", "保存间隔", min=1, help_zh="每 n 步保存一个检查点。")
    save_total_limit: int | None = _f(None, "Keep at most this many checkpoints.", "Save total limit",
                                      "最多保存检查点", min=1, help_zh="最多保留这么多检查点。")
    eval_strategy: str = _f("no", "When to evaluate: no, steps or epoch.", "Eval strategy", "验证策略",
                            choices=["no", "steps", "epoch"], help_zh="何时验证：no、steps 或 epoch。")
    eval_steps: int | None = _f(None, "Evaluate every n steps (default: logging_steps).", "Eval steps",
                                "验证间隔", min=1, help_zh="每 n 步验证一次（默认：logging_steps）。")
    seed: int = _f(42, "Random seed (data order, LoRA init, dropout).", "Seed", "随机种子", min=0, help_zh="随机种子（数据顺序、LoRA 初始化、dropout）。")
    report_to: str = _f("tensorboard", "Where logs also go: none, tensorboard, wandb, mlflow or swanlab.",
                        "Report to", "启用外部记录", choices=["none", "tensorboard", "wandb", "mlflow",
                                                               "swanlab", "all"], help_zh="日志同时发送到：none、tensorboard、wandb、mlflow 或 swanlab。")
    bf16: bool = _f(False, "bf16 mixed precision (recent GPUs).", "bf16", "bf16 混合精度", help_zh="bf16 混合精度（较新的 GPU）。")
    fp16: bool = _f(False, "fp16 mixed precision (older GPUs).", "fp16", "fp16 混合精度", help_zh="fp16 混合精度（较旧的 GPU）。")
    # several GPUs (kit.train.distributed): the engine is accelerate / torch.distributed / DeepSpeed
    deepspeed: str | None = _f(None, "DeepSpeed JSON config (ZeRO-0/2/3, offload): a path, or a file name from "
                               "examples/deepspeed (e.g. ds_z3_config.json). Needs several processes "
                               "(--nproc N) and the deepspeed package.", "DeepSpeed config", "DeepSpeed 配置",
                               help_zh="DeepSpeed 的 JSON 配置（ZeRO-0/2/3、卸载）：路径，或 examples/deepspeed 中的文件名"
                                       "（如 ds_z3_config.json）。需要多进程（--nproc N）和 deepspeed 包。")
    fsdp: str | None = _f(None, "FSDP options as transformers spells them, e.g. 'full_shard auto_wrap' (empty = off); "
                   "FSDP2 where accelerate has it.", "FSDP", "FSDP 选项",
                   help_zh="FSDP 选项，按 transformers 的写法，如 'full_shard auto_wrap'（留空 = 关闭）；accelerate 支持时用 FSDP2。")
    fsdp_config: str | None = _f(None, "FSDP settings JSON (transformers' fsdp_config), optional.",
                                 "FSDP config", "FSDP 配置", help_zh="FSDP 设置的 JSON（transformers 的 fsdp_config），可选。")


@dataclass
class GeneratingArguments:
    do_sample: bool = _f(True, "Sample while generating (PPO rollouts); False = greedy.", "Do sample", "采样", help_zh="生成时采样（PPO 采样回答）；False = 贪心解码。")
    temperature: float = _f(0.95, "Sampling temperature.", "Temperature", "温度系数", min=0.0, help_zh="采样温度。")
    top_p: float = _f(0.7, "Nucleus sampling mass.", "Top-p", "Top-p 采样值", min=0.0, max=1.0, help_zh="核采样的概率质量。")
    top_k: int = _f(50, "Sample among the k likeliest tokens.", "Top-k", "Top-k", min=0, help_zh="在概率最高的 k 个 token 中采样。")
    max_new_tokens: int = _f(512, "Longest answer to generate.", "Max new tokens", "最大生成长度", min=1, help_zh="生成回答的最大长度。")


PARTS = {"model": ModelArguments, "data": DataArguments, "finetuning": FinetuningArguments,
         "training": TrainingArguments, "generating": GeneratingArguments}


@dataclass
class TrainConfig(GeneratingArguments, TrainingArguments, FinetuningArguments, DataArguments, ModelArguments):
    """Every training setting, flat, under LLaMA-Factory's argument names (see the parts for groups).

    `extra` holds keys read from a YAML that the kit does not use; `unknown_keys` lists them."""

    extra: dict = field(default_factory=dict, metadata={"internal": True, "help": "keys the kit does not use"})

    def __post_init__(self):
        if self.stage == "ppo":  # never run GRPO under PPO's name
            raise ConfigError(f"field 'stage' = 'ppo': {PPO_REFUSED}")

    # ----------------------------------------------------------------------------- reading
    @classmethod
    def setting_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]

    @classmethod
    def field_map(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in cls.setting_fields()}

    @property
    def unknown_keys(self) -> list[str]:
        return list(self.extra)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "dict", warn: bool = True,
                  defaults: str = "kit") -> "TrainConfig":
        """Build a config from LLaMA-Factory-style keys; values are converted to the field types.
        A key that is neither a kit setting nor a LLaMA-Factory argument is a ConfigError naming the
        nearest known name (`learning_rat` -> `learning_rate`). LLaMA-Factory keys the kit does not
        implement go to `extra` (with one warning naming them), never silently dropped; so do the
        keys of an explicit `extra:` mapping (deliberate pass-through, e.g. a saved config).
        defaults="llamafactory": a key the file leaves out takes LLaMA-Factory's default (where the kit
        can hold it) instead of the kit's, so the config is the job LLaMA-Factory would run."""
        from kit.train import lf_keys

        if defaults not in ("kit", "llamafactory"):
            raise ConfigError(f"defaults = {defaults!r}: expected 'kit' or 'llamafactory'")
        if values.get("stage") == "ppo":
            raise ConfigError(f"{source}: field 'stage' = 'ppo': {PPO_REFUSED}")
        known, extra = {}, {}
        hints = typing.get_type_hints(cls)
        fields = cls.field_map()
        if defaults == "llamafactory":
            known.update(_llamafactory_starting_values(fields, hints, values.get("stage", "sft")))
        for key, value in dict(values).items():
            name = ALIASES.get(key, key)
            if name in fields:
                known[name] = _coerce(name, value, hints[name], source)
            elif key == "extra" and isinstance(value, dict):
                extra.update(value)
            elif isinstance(key, str) and lf_keys.is_llamafactory_key(key):
                extra[key] = value
            else:
                raise ConfigError(lf_keys.unknown_key_message(str(key), fields, source))
        config = cls(**known, extra=extra)
        if extra and warn:
            warnings.warn(f"{source}: these keys are not used by kit.train and are kept in config.extra: "
                          f"{', '.join(extra)}", UserWarning, stacklevel=3)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, defaults: str = "kit") -> "TrainConfig":
        """Read a LLaMA-Factory training YAML (or one written by `to_yaml`). defaults="llamafactory"
        fills the keys it leaves out with LLaMA-Factory's defaults (see from_dict)."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of argument: value, got {type(values).__name__}")
        return cls.from_dict(values, source=str(path), defaults=defaults)

    # ----------------------------------------------------------------------------- writing
    def to_dict(self) -> dict:
        """Every setting (not `extra`) as plain Python values."""
        return {f.name: getattr(self, f.name) for f in self.setting_fields()}

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Our YAML (every setting, grouped; unused keys last). Written to `path` when given."""
        lines = []
        for part_name, part in PARTS.items():
            lines.append(f"### {part_name}")
            block = {f.name: getattr(self, f.name) for f in dataclasses.fields(part)}
            lines.append(yaml.safe_dump(block, sort_keys=False, allow_unicode=True).rstrip())
            lines.append("")
        if self.extra:
            lines.append("### not used by kit.train (kept from the source file)")
            lines.append(yaml.safe_dump({"extra": self.extra}, sort_keys=False, allow_unicode=True).rstrip())
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    def llamafactory_dict(self) -> dict:
        """The same run as LLaMA-Factory arguments: exactly the keys whose value differs from
        LLaMA-Factory's own default (kit.train.lf_defaults), in its spelling, nothing else.

        Translated: the built-in model's alias -> its hub id, quantization_method "bitsandbytes" ->
        "bnb", pt's packing (the kit always packs pt, as LLaMA-Factory does by default) and pt's
        template (the kit's pt uses none). Refused (ConfigError): stage grpo (LLaMA-Factory has no
        GRPO; its ppo is PPO with a value head) and any setting LLaMA-Factory does not know."""
        from kit.train import lf_defaults

        if self.stage == "grpo":
            raise ConfigError(
                "stage 'grpo' cannot be exported to LLaMA-Factory: it has no GRPO stage, and its "
                "'ppo' trains PPO with a value model, a different job (kit.train.grpo runs GRPO)")
        values = dict(self.to_dict())
        values.update(self.extra)
        if str(values.get("model_name_or_path", "")).lower() in _builtin_aliases():
            values["model_name_or_path"] = BUILTIN_HUB_ID
        if values.get("quantization_method") == "bitsandbytes":
            values["quantization_method"] = "bnb"  # LLaMA-Factory >= 0.9.3 reads only "bnb"
        if values.get("enable_liger_kernel") == "auto":
            values["enable_liger_kernel"] = True  # LLaMA-Factory's field is a bool; 'auto' is the kit's fallback
        if "disable_gradient_checkpointing" in values and values["disable_gradient_checkpointing"] is None:
            values.pop("disable_gradient_checkpointing")  # None: on for GPU runs, LLaMA-Factory's default
        if values.get("packing") is None:
            values.pop("packing", None)  # None: LLaMA-Factory's own rule (on for pt only), nothing to write
        if self.stage == "pt":
            values["packing"] = True  # kit.train.pt always packs; LLaMA-Factory's pt default too
            values.pop("template", None)  # pre-training text goes through no chat template
        kit_defaults = TrainConfig().to_dict()
        out = {}
        fields = self.field_map()
        for key, value in values.items():
            if key in fields and fields[key].metadata.get("kit_only"):
                continue  # the kit's own setting (e.g. force_template): no LLaMA-Factory argument, same job
            if key in lf_defaults.LF_DEFAULTS:
                if not _same_value(value, lf_defaults.default(key, self.stage)):
                    out[key] = value
            elif key in kit_defaults and _same_value(value, kit_defaults[key]):
                continue  # a kit-only setting left at its default changes nothing
            else:
                near = difflib.get_close_matches(key, list(lf_defaults.LF_DEFAULTS), n=1)
                hint = f" (nearest LLaMA-Factory argument: {near[0]!r})" if near else ""
                raise ConfigError(f"field '{key}' = {value!r} has no LLaMA-Factory {lf_defaults.LF_VERSION} "
                                  f"argument{hint}: this run cannot be exported as it is")
        if out.get("quantization_bit") is not None:  # the one key written at its default: says how
            out.setdefault("quantization_method", values["quantization_method"])  # QLoRA loads (bnb)
        return out

    def to_llamafactory_yaml(self, path: str | Path | None = None) -> str:
        """A YAML `llamafactory-cli train` accepts: the keys that differ from LLaMA-Factory's
        defaults (see llamafactory_dict), grouped like LLaMA-Factory's examples."""
        values = self.llamafactory_dict()
        lines, done = [], set()
        for part_name, part in PARTS.items():
            names = [f.name for f in dataclasses.fields(part) if f.name in values]
            if names:
                lines.append(f"### {part_name}")
                lines.append(yaml.safe_dump({n: values[n] for n in names}, sort_keys=False,
                                            allow_unicode=True).rstrip())
                done.update(names)
        rest = {k: v for k, v in values.items() if k not in done}
        if rest:
            lines.append("### other")
            lines.append(yaml.safe_dump(rest, sort_keys=False, allow_unicode=True).rstrip())
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    def command_preview(self, yaml_path: str | None = None) -> str:
        """The llamafactory-cli command for this run: `llamafactory-cli train FILE.yaml` when a YAML
        path is given, else the long form with one `--key value` per line (as LLaMA-Factory's web UI
        previews it), holding exactly the keys of `llamafactory_dict()`. A run LLaMA-Factory cannot
        do (stage grpo) gives a one-line comment saying why."""
        if yaml_path:
            return f"llamafactory-cli train {yaml_path}"
        try:
            values = self.llamafactory_dict()
        except ConfigError as err:
            return f"# not a LLaMA-Factory run: {err}"
        lines = ["llamafactory-cli train"]
        lines += [f"    --{key} {_cli_value(value)}" for key, value in values.items()]
        return " \\\n".join(lines)

    # ----------------------------------------------------------------------------- checking
    def validate(self) -> "TrainConfig":
        """Raise ConfigError naming the first bad field, its value and the allowed range; else self."""
        for f in self.setting_fields():
            _check_field(f, getattr(self, f.name))
        c = self
        if not c.dataset:
            _fail("dataset", c.dataset, "one or more dataset names from dataset_info.json")
        if not c.output_dir:
            _fail("output_dir", c.output_dir, "a folder path")
        if not c.template:
            _fail("template", c.template, "a template name (kit.templates.names())")
        if not c.do_train:
            _fail("do_train", c.do_train, "True (kit.train only trains; use kit.evaluate to evaluate)")
        if c.max_steps <= 0 and c.num_train_epochs <= 0:
            _fail("num_train_epochs", c.num_train_epochs, "> 0 when max_steps is -1")
        if c.max_steps == 0:
            _fail("max_steps", c.max_steps, "-1 (use epochs) or >= 1")
        if c.freeze_trainable_layers == 0:
            _fail("freeze_trainable_layers", 0, "a non-zero integer (n > 0: last n layers, n < 0: first n)")
        if c.quantization_bit is not None and c.finetuning_type != "lora":
            _fail("quantization_bit", c.quantization_bit,
                  f"None with finetuning_type={c.finetuning_type!r} (quantized weights can only be trained "
                  f"through LoRA adapters: QLoRA)")
        if c.use_galore and c.finetuning_type == "lora":
            _fail("use_galore", True, "False with finetuning_type='lora' (GaLore is for full/freeze training)")
        if c.use_galore and c.galore_layerwise and c.gradient_accumulation_steps != 1:
            _fail("gradient_accumulation_steps", c.gradient_accumulation_steps, "1 with galore_layerwise=True")
        if sum([c.bf16, c.fp16, c.pure_bf16]) > 1:
            _fail("fp16" if c.fp16 else "bf16", True, "at most one of bf16, fp16, pure_bf16")
        if c.val_size >= 1 and float(c.val_size) != int(c.val_size):
            _fail("val_size", c.val_size, "a share in [0, 1) or a whole number of rows >= 1")
        if c.deepspeed and c.fsdp:
            _fail("fsdp", c.fsdp, "empty when deepspeed is set (choose DeepSpeed or FSDP, not both)")
        if c.eval_strategy != "no" and not (c.val_size or c.eval_dataset):
            _fail("eval_strategy", c.eval_strategy, "'no' unless val_size > 0 or eval_dataset is set")
        return self

    def diff(self, other: "TrainConfig") -> dict:
        """{field: (self value, other value)} for every setting that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}

    def non_defaults(self) -> dict:
        """{field: value} for the settings that differ from a default TrainConfig(), in field order:
        what a lesson prints instead of every setting (to_yaml() has them all)."""
        return {k: new for k, (new, _) in self.diff(type(self)()).items()}


# --------------------------------------------------------------------------------- helpers

def _builtin_aliases() -> set[str]:
    from kit import models

    return {a.lower() for a in models.BUILTIN_ALIASES} - {BUILTIN_HUB_ID.lower()}


def _fail(name: str, value: Any, allowed: str):
    raise ConfigError(f"field '{name}' = {value!r} is not allowed: expected {allowed}")


def _check_field(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if "choices" in meta and value not in meta["choices"]:
        _fail(f.name, value, f"one of {meta['choices']}")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        _fail(f.name, value, f"a number in {bounds}")


_BOOL = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Convert a YAML/widget value to the field's type (PyYAML reads `5e-5` as a string, lists for
    comma-separated names are joined)."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise ConfigError(f"{source}: field '{name}' = None is not allowed: expected a {base.__name__}")
    try:
        if base is bool:
            if str in args and isinstance(value, str) and value.strip().lower() == "auto":
                return "auto"  # bool | str fields (enable_liger_kernel) also take "auto"
            if isinstance(value, str) and value.strip().lower() in _BOOL:
                return _BOOL[value.strip().lower()]
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if base is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            return int(number) if name == "warmup_steps" and number == int(number) else number
        if base is str:
            if isinstance(value, (list, tuple)):
                return ",".join(str(v) for v in value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field '{name}' = {value!r} is not a valid {base.__name__}") from None
    return value


def _llamafactory_starting_values(fields: dict, hints: dict, stage: str) -> dict:
    """LLaMA-Factory's default of every kit field that can hold it (a None for a field that needs a
    value, or a value outside the field's choices, keeps the kit's default)."""
    from kit.train import lf_defaults

    out = {}
    for name, f in fields.items():
        if name not in lf_defaults.LF_DEFAULTS or name in ("template", "packing"):
            continue  # template: the kit needs one; packing: decided per stage at export
        value = lf_defaults.default(name, stage)
        if value is None and type(None) not in typing.get_args(hints[name]):
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            continue
        try:
            out[name] = _coerce(name, value, hints[name], "LLaMA-Factory defaults")
        except ConfigError:
            continue
    return out


def _same_value(value: Any, default: Any) -> bool:
    """True when a value equals LLaMA-Factory's default as LLaMA-Factory would read it (1 == 1.0)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default or (isinstance(value, bool) and isinstance(default, bool) and value == default)
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return float(value) == float(default)
    return value == default


def _cli_value(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if any(ch in text for ch in " ;|&$") or text == "" else text
