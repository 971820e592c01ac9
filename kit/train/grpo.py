"""Stage `grpo`: online reinforcement learning from a reward (RLHF's second half), run with GRPO.

Named for what it runs. LLaMA-Factory's `stage: ppo` is classic PPO with a value head, which this kit
does not have: a config with `stage: ppo` is refused (kit.train.config), never run as GRPO.

PPO (Schulman et al. 2017, arXiv:1707.06347; used for RLHF by Ouyang et al. 2022) trains four models
at once: the policy, a frozen reference, a reward model and a *value model* (critic) that predicts
the reward to come at every token. Each step it samples answers, scores them, estimates advantages
with the critic, and takes clipped policy-gradient steps, with a KL penalty to the reference.
TRL 1.x dropped its PPOTrainer. Its successors keep the sampling, the reward and the clipped update but
replace the critic by a baseline taken from *several answers to the same prompt*:

    GRPO (Shao et al. 2024, arXiv:2402.03300): advantage_i = r_i - mean(r_group) (÷ std(r_group))
    RLOO (Ahmadian et al. 2024, arXiv:2402.14740): advantage_i = r_i - mean of the *other* answers

This stage runs `trl.GRPOTrainer`. Reward, from `reward_model`:
    a folder      an `rm` run's output_dir (full model or LoRA adapter with its score head); each answer
                  is encoded with OUR template after the prompt and scored (kit.train.rm.score)
    "rule:NAME"   a Python rule from REWARD_RULES (`register_reward` adds your own)

LLaMA-Factory names used: pref_beta -> KL coefficient β (0 switches the reference model off),
ppo_epochs -> num_iterations (updates per batch of samples), ppo_score_norm -> scale_rewards
("group": divide by the group's std, else "none"), max_new_tokens / temperature / top_p / top_k ->
sampling. `num_generations` (answers per prompt, >= 2) has no LLaMA-Factory name: set it in
`config.extra["num_generations"]`; by default the largest of 8..2 that divides the generation batch
(per_device_train_batch_size x gradient_accumulation_steps).
Not here: the value model and GAE of classic PPO, adaptive KL control (ppo_target), ppo_buffer_size,
ppo_whiten_rewards, reward APIs (reward_model_type="api"), vLLM generation.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from kit.train.context import StageContext, register_stage

REWARD_RULES: dict[str, Callable[[str, list], float]] = {}


def register_reward(name: str, rule: Callable[[str, list], float]) -> None:
    """Add a rule `rule(answer_text, prompt_messages) -> float`, usable as reward_model="rule:NAME"."""
    REWARD_RULES[name] = rule


def _length_rule(answer: str, messages: list, target_words: int = 30) -> float:
    """0 for an answer of `target_words` words, down to -1 (and below) as it gets longer or shorter."""
    return -abs(len(answer.split()) - target_words) / target_words


def _no_repeat_rule(answer: str, messages: list) -> float:
    """Share of distinct words (1.0 = no word repeated; a looping answer scores low)."""
    words = answer.lower().split()
    return len(set(words)) / len(words) if words else 0.0


register_reward("length", _length_rule)
register_reward("no_repeat", _no_repeat_rule)


# ----------------------------------------------------------------------------- rewards

def rule_reward(name: str):
    """A TRL reward function from a registered rule."""
    if name not in REWARD_RULES:
        raise ValueError(f"field 'reward_model' = 'rule:{name}' names no rule; known rules: "
                         f"{', '.join(sorted(REWARD_RULES))} (kit.train.grpo.register_reward adds one)")
    rule = REWARD_RULES[name]

    def reward(prompts, completions, messages=None, **_):
        messages = messages or [[] for _ in completions]
        return [float(rule(text, msgs)) for text, msgs in zip(completions, messages)]

    reward.__name__ = f"rule_{name}"
    return reward


def model_reward(reward_model, tokenizer, template, cutoff_len: int):
    """A TRL reward function that scores prompt + answer with a trained reward model."""
    from kit.train import rm

    def reward(prompts, completions, messages, system=None, **_):
        systems = system or [""] * len(completions)
        scores = []
        for text, msgs, sys_prompt in zip(completions, messages, systems):
            convo = list(msgs) + [{"role": "assistant", "content": text}]
            scores += rm.score(reward_model, tokenizer, template, [convo], system=sys_prompt or None,
                               cutoff_len=cutoff_len)
        return scores

    reward.__name__ = "reward_model"
    return reward


def reward_function(ctx: StageContext):
    config = ctx.config
    source = getattr(config, "reward_model", None)
    if not source:
        raise ValueError("field 'reward_model' = None is not allowed for stage grpo: give the output_dir of a "
                         "stage='rm' run, or a rule such as 'rule:length' (rules: "
                         f"{', '.join(sorted(REWARD_RULES))})")
    if source.startswith("rule:"):
        return rule_reward(source[len("rule:"):])
    if getattr(config, "reward_model_type", "lora") == "api":
        raise ValueError("field 'reward_model_type' = 'api' is not supported by this kit: use a folder or a rule")
    if not Path(source).is_dir():
        raise FileNotFoundError(f"field 'reward_model' = {source!r}: no such folder (expected an rm run's "
                                f"output_dir or 'rule:NAME')")
    from kit.train import rm

    device = str(next(ctx.model.parameters()).device)
    model, _ = rm.load_reward_model(source, base_model=config.model_name_or_path, device=device,
                                    quantization_bit=getattr(config, "reward_model_quantization_bit", None))
    return model_reward(model, ctx.tokenizer, ctx.template, config.cutoff_len)


# ----------------------------------------------------------------------------- data

def prompt_text(template, tokenizer, messages, system=None, tools=None) -> str:
    """The prompt rendered by OUR template, up to the generation prompt, as the text GRPO tokenizes
    (a BOS the tokenizer adds by itself is not written twice)."""
    text = template.render(messages, system=system, tools=tools, add_generation_prompt=True, tokenizer=tokenizer)
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    if adds_bos and text.startswith(bos):
        text = text[len(bos):]
    return text


def grpo_features(rows, ctx: StageContext):
    """Prompt rows -> prompt (rendered text), messages and system (passed on to the reward)."""
    from datasets import Dataset

    from kit.templates.template import PROMPT_ROLES

    cols = {"prompt": [], "messages": [], "system": []}
    for index, row in enumerate(rows):
        messages = row.get("messages") or []
        if not messages or messages[-1].get("role") not in PROMPT_ROLES:
            raise ValueError(f"stage 'grpo': row {index} does not end with a user turn (last role: "
                             f"{messages[-1].get('role') if messages else None!r}); load prompts with "
                             f"kit.data.load_dataset(..., stage='grpo')")
        cols["prompt"].append(prompt_text(ctx.template, ctx.tokenizer, messages, row.get("system") or None,
                                          row.get("tools") or None))
        cols["messages"].append([{"role": m["role"], "content": m["content"]} for m in messages])
        cols["system"].append(row.get("system") or "")
    return Dataset.from_dict(cols)


def num_generations(ctx: StageContext) -> int:
    args = ctx.training_args
    batch = args.get("per_device_train_batch_size", 1) * args.get("gradient_accumulation_steps", 1)
    wanted = ctx.config.extra.get("num_generations") if hasattr(ctx.config, "extra") else None
    if wanted is not None:
        wanted = int(wanted)
        if wanted < 2 or batch % wanted:
            raise ValueError(f"num_generations = {wanted} must be >= 2 and divide per_device_train_batch_size x "
                             f"gradient_accumulation_steps = {batch}")
        return wanted
    for n in range(min(8, batch), 1, -1):
        if batch % n == 0:
            return n
    raise ValueError(f"stage grpo needs per_device_train_batch_size x gradient_accumulation_steps >= 2 (got {batch}): "
                     "GRPO compares several answers to the same prompt")


def build_trainer(ctx: StageContext):
    from trl import GRPOConfig, GRPOTrainer

    config = ctx.config
    if not getattr(config, "do_sample", True):
        raise ValueError("field 'do_sample' = False is not allowed for stage grpo: GRPO needs different "
                         "sampled answers to the same prompt to compare")
    for name, default in (("ppo_buffer_size", 1), ("ppo_whiten_rewards", False)):
        if getattr(config, name, default) != default:
            warnings.warn(f"{name} = {getattr(config, name)!r} has no equivalent in GRPO and is not used", UserWarning)
    args = ctx.make_training_arguments(
        GRPOConfig, num_generations=num_generations(ctx), max_completion_length=config.max_new_tokens,
        temperature=config.temperature, top_p=config.top_p, top_k=config.top_k, beta=config.pref_beta,
        num_iterations=config.ppo_epochs, scale_rewards="group" if config.ppo_score_norm else "none",
        remove_unused_columns=False, log_completions=False)
    train = grpo_features(ctx.train_dataset, ctx)
    evaluation = grpo_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    return GRPOTrainer(model=ctx.model, reward_funcs=[reward_function(ctx)], args=args, train_dataset=train,
                       eval_dataset=evaluation, processing_class=ctx.tokenizer, callbacks=ctx.callbacks)


register_stage("grpo", build_trainer)
