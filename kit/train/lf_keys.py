"""Which setting names exist: the kit's own (TrainConfig fields) and LLaMA-Factory's arguments the
kit knows but does not implement. Used by TrainConfig loading to make unknown keys an error:

    check_keys(["learning_rat"], known=TrainConfig.field_map())
    -> ConfigError: unknown setting 'learning_rat' (did you mean 'learning_rate'?)

A LLaMA-Factory key the kit does not implement (`ddp_timeout`, `deepspeed`, ...) is no error: it is
kept in `config.extra` and passed on to LLaMA-Factory, with a warning (see TrainConfig.from_dict).
Names are LLaMA-Factory's hparams (model, data, finetuning, generating, training arguments, as of
2025) plus every field of transformers' Seq2SeqTrainingArguments, which LLaMA-Factory inherits.
"""
from __future__ import annotations

import difflib
from functools import lru_cache

# LLaMA-Factory's own argument names (src/llamafactory/hparams/*_args.py), beyond transformers'
LLAMAFACTORY_KEYS = frozenset("""
model_name_or_path adapter_name_or_path adapter_folder cache_dir use_fast_tokenizer resize_vocab
split_special_tokens add_tokens add_special_tokens new_special_tokens_config init_special_tokens model_revision
low_cpu_mem_usage rope_scaling flash_attn shift_attn mixture_of_depths use_unsloth use_unsloth_gc
enable_liger_kernel moe_aux_loss_coef disable_gradient_checkpointing use_reentrant_gc upcast_layernorm
upcast_lmhead_output train_from_scratch infer_backend offload_folder use_kv_cache use_v1_kernels infer_dtype
hf_hub_token ms_hub_token om_hub_token print_param_status trust_remote_code
quantization_method quantization_bit quantization_type double_quantization quantization_device_map
fp8 fp8_backend fp8_enable_fsdp_float8_all_gather
image_max_pixels image_min_pixels image_do_pan_and_scan crop_to_patches video_max_pixels video_min_pixels
video_fps video_maxlen use_audio_in_video audio_sampling_rate
export_dir export_size export_device export_quantization_bit export_quantization_dataset
export_quantization_nsamples export_quantization_maxlen export_legacy_format export_hub_model_id
vllm_maxlen vllm_gpu_util vllm_enforce_eager vllm_max_lora_rank vllm_config
sglang_maxlen sglang_mem_fraction sglang_tp_size sglang_config sglang_lora_backend
use_kt kt_optimize_rule cpu_infer chunk_size mode kt_maxlen kt_use_cuda_graph kt_mode kt_force_think
template dataset eval_dataset dataset_dir media_dir cutoff_len train_on_prompt mask_history streaming
buffer_size mix_strategy interleave_probs overwrite_cache preprocessing_batch_size preprocessing_num_workers
max_samples eval_num_beams ignore_pad_token_for_loss val_size eval_on_each_dataset packing neat_packing
tool_format tokenized_path default_system enable_thinking
freeze_trainable_layers freeze_trainable_modules freeze_extra_modules additional_target lora_alpha
lora_dropout lora_rank lora_target loraplus_lr_ratio loraplus_lr_embedding use_rslora use_dora pissa_init
pissa_iter pissa_convert create_new_adapter module_dropout oft_rank oft_block_size oft_target
pref_beta pref_ftx pref_bco_weight pref_loss dpo_label_smoothing kto_chosen_weight kto_rejected_weight
simpo_gamma ppo_buffer_size ppo_epochs ppo_score_norm ppo_target ppo_whiten_rewards ref_model
ref_model_adapters ref_model_quantization_bit reward_model reward_model_adapters
reward_model_quantization_bit reward_model_type ld_alpha
use_galore galore_target galore_rank galore_update_interval galore_scale galore_proj_type galore_layerwise
use_apollo apollo_target apollo_rank apollo_update_interval apollo_scale apollo_proj apollo_proj_type
apollo_scale_type apollo_layerwise apollo_scale_front
use_badam badam_mode badam_start_block badam_switch_mode badam_switch_interval badam_update_ratio
badam_mask_mode badam_verbose
use_swanlab swanlab_project swanlab_workspace swanlab_run_name swanlab_mode swanlab_api_key swanlab_logdir
swanlab_lark_webhook_url swanlab_lark_secret
pure_bf16 stage finetuning_type use_llama_pro use_adam_mini use_mca use_muon use_dft_loss
freeze_vision_tower freeze_multi_modal_projector freeze_language_model compute_accuracy disable_shuffling
early_stopping_steps plot_loss include_effective_tokens_per_second
do_sample temperature top_p top_k num_beams max_length max_new_tokens repetition_penalty length_penalty
skip_special_tokens system_message
ray_run_name ray_storage_path ray_storage_filesystem ray_num_workers resources_per_worker
placement_strategy ray_init_kwargs overwrite_output_dir
task task_dir batch_size seed lang n_shot save_dir download_mode
""".split())


@lru_cache(maxsize=1)
def _transformers_training_keys() -> frozenset:
    import dataclasses
    import warnings

    with warnings.catch_warnings():  # importing transformers may warn about optional packages: not ours
        warnings.simplefilter("ignore")
        from transformers import Seq2SeqTrainingArguments

    return frozenset(f.name for f in dataclasses.fields(Seq2SeqTrainingArguments))


def is_llamafactory_key(name: str) -> bool:
    """True for an argument name LLaMA-Factory (or the transformers trainer under it) accepts."""
    return name in LLAMAFACTORY_KEYS or name in _transformers_training_keys()


def nearest(name: str, candidates) -> str | None:
    """The closest name in `candidates` (difflib ratio >= 0.6), or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_message(name: str, kit_names, source: str = "settings") -> str:
    """'source: unknown setting 'learning_rat' (did you mean 'learning_rate'?)', preferring the
    kit's own names as suggestions, then LLaMA-Factory's."""
    guess = nearest(name, kit_names) or nearest(name, LLAMAFACTORY_KEYS | _transformers_training_keys())
    hint = f" (did you mean '{guess}'?)" if guess else ""
    return (f"{source}: unknown setting '{name}'{hint}. It is neither a kit.train setting nor a LLaMA-Factory "
            "argument; fix the name (kit.train.TrainConfig.field_map() lists the kit's settings)")
