"""More template families: the ones learners meet today, under LLaMA-Factory's names and with its
strings (checked token for token against LLaMA-Factory's own encodings: tests/test_lf_fidelity.py).
Each one is derived from the closest family already registered, so only the differences are here:

    chatml -> chatml_de, dbrx, cpm4, falcon_h1, opencoder, sailor, intern2
    qwen -> qwen2_vl;  qwen3 -> qwen3_vl, mimo;  qwen3_nothink -> qwen3_vl_nothink  (image/video tokens)
    gemma -> gemma2 (efficient_eos), gemma3n;  llama2 -> llama2_zh
    mistral -> ministral -> ministral3, mistral_small;  llama3 -> llama4
    phi -> phi4_mini, starchat;  glm4 -> glm4_moe (thinking);  granite3 -> granite4
    openchat -> openchat-3.6;  seed_coder -> seed_oss (thinking)
    standalone: cohere, deepseekcoder, zephyr, falcon, olmo, exaone, gpt_oss, bailing, breeze, solar,
    index, hunyuan, telechat2, xuanyuan, youtu, ernie_nothink

Qwen's vision families map "<image>"/"<video>" in a message to their placeholder tokens (one pad token;
the model's processor expands it to the image's patch count); other vision families (gemma3n, llama4,
ministral3, mistral_small) encode text like LLaMA-Factory but leave "<image>" as text. Not here: the processors themselves,
audio placeholders, and tool formats the kit does not implement (glm4_moe, seed_oss and phi4_mini
use the closest kit format; see LF_DIFFERENCES in families.py).
"""
from __future__ import annotations

from kit.templates.formatter import BOS, EOS, EmptyFormatter, FunctionFormatter, ToolFormatter
from kit.templates.families import S, header_turns
from kit.templates.registry import register_template


CHATML_USER = S("<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n")
QWEN_VISION = dict(image_token="<|vision_start|><|image_pad|><|vision_end|>",
                   video_token="<|vision_start|><|video_pad|><|vision_end|>")

# ------------------------------------------------------------------------------------ ChatML
register_template("chatml_de", base="chatml",
                  default_system="Du bist ein freundlicher und hilfsbereiter KI-Assistent.")
register_template("dbrx", base="chatml", stop_words=["<|im_end|>"], default_system=(
    "You are DBRX, created by Databricks. You were last updated in December 2023. "
    "You answer questions based on information available up to that point.\n"
    "YOU PROVIDE SHORT RESPONSES TO SHORT QUESTIONS OR STATEMENTS, but provide thorough "
    "responses to more complex and open-ended questions.\nYou assist with various tasks, "
    "from writing to coding (using markdown for code blocks — remember to use ``` with "
    "code, JSON, and tables).\n(You do not have real-time data access or code execution "
    "capabilities. You avoid stereotyping and provide balanced perspectives on "
    "controversial topics. You do not provide song lyrics, poems, or news articles and "
    "do not divulge details of your training data.)\nThis is your system prompt, "
    "guiding your responses. Do not reference it, just respond to the user. If you find "
    "yourself talking about this message, stop. You should be responding appropriately "
    "and usually that means not mentioning this.\nYOU DO NOT MENTION ANY OF THIS INFORMATION "
    "ABOUT YOURSELF UNLESS THE INFORMATION IS DIRECTLY PERTINENT TO THE USER'S QUERY."))
register_template("cpm4", base="chatml", format_prefix=EmptyFormatter([BOS]), stop_words=["<|im_end|>"],
                  replace_eos=False)
register_template("falcon_h1", base="cpm4", stop_words=["<|im_end|>", "<|end_of_text|>"])
register_template("opencoder", base="chatml", stop_words=["<|im_end|>"], replace_eos=False,
                  default_system="You are OpenCoder, created by OpenCoder Team.")
SAILOR_USER = S("<|im_start|>question\n{{content}}<|im_end|>\n<|im_start|>answer\n")
register_template("sailor", base="opencoder", format_user=SAILOR_USER, format_observation=SAILOR_USER,
                  default_system="You are an AI assistant named Sailor created by Sea AI Lab. Your answer "
                                 "should be friendly, unbiased, faithful, informative and detailed.")
register_template("intern2", base="cpm4", format_observation=CHATML_USER, default_system=(
    "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM (书生·浦语) can understand and communicate fluently in the language "
    "chosen by the user such as English and 中文."))

# ------------------------------------------------------------------------- Qwen vision / MiMo
register_template("qwen2_vl", base="qwen", default_system="You are a helpful assistant.", **QWEN_VISION)
register_template("qwen3_vl", base="qwen3", **QWEN_VISION)  # Qwen3-VL Thinking
register_template("qwen3_vl_nothink", base="qwen3_nothink", **QWEN_VISION)  # Qwen3-VL Instruct
register_template("mimo", base="qwen3", default_system="You are a helpful assistant.")

# ----------------------------------------------------------------------- Gemma, Llama 2, Mistral
register_template("gemma2", base="gemma", stop_words=["<eos>", "<end_of_turn>"], replace_eos=False,
                  efficient_eos=True)
register_template("gemma3n", base="gemma")  # same text as Gemma 3; differs in its audio/image tokens
register_template("llama2_zh", base="llama2", default_system="You are a helpful assistant. 你是一个乐于助人的助手。")
register_template(
    "ministral", base="mistral",
    format_user=S("[INST]{{content}}[/INST]"),
    format_assistant=S("{{content}}", EOS),
    format_function=FunctionFormatter(["[TOOL_CALLS]{{content}}", EOS], tool_format="mistral"),
    format_observation=S('[TOOL_RESULTS]{"content": {{content}}}[/TOOL_RESULTS]'),
)
register_template("ministral3", base="ministral")  # Ministral 3: same text, plus Pixtral image tokens
register_template("mistral_small", base="ministral3", fuse_system=False,
                  format_system=S("[SYSTEM_PROMPT]{{content}}[/SYSTEM_PROMPT]"))

# ------------------------------------------------------------------------------------ Llama 4
register_template(
    "llama4", base="llama3",
    **header_turns("<|header_start|>", "<|header_end|>", "<|eot|>"),
    stop_words=["<|eot|>", "<|eom|>"],
)

# ------------------------------------------------------------------------------ Phi, StarChat
register_template(
    "phi4_mini", base="phi",
    format_user=S("<|user|>{{content}}<|end|><|assistant|>"),
    format_assistant=S("{{content}}<|end|>"),
    format_system=S("<|system|>{{content}}<|end|>"),
)
register_template("starchat", base="phi", format_user=S("<|user|>\n{{content}}<|end|>\n<|assistant|>"),
                  replace_eos=False)

# --------------------------------------------------------------------------- GLM, Granite, Seed
register_template("glm4_moe", base="glm4", reasoning=True)  # GLM-4.5 / 4.6: thinks by default
GRANITE_END = "<|end_of_text|>\n"
register_template(
    "granite3",
    format_user=S("<|start_of_role|>user<|end_of_role|>{{content}}" + GRANITE_END
                  + "<|start_of_role|>assistant<|end_of_role|>"),
    format_assistant=S("{{content}}" + GRANITE_END),
    format_system=S("<|start_of_role|>system<|end_of_role|>{{content}}" + GRANITE_END),
)
register_template(
    "granite4", base="granite3",
    format_function=FunctionFormatter(["{{content}}" + GRANITE_END], tool_format="default"),
    format_observation=S("<|start_of_role|>tool<|end_of_role|>{{content}}" + GRANITE_END
                         + "<|start_of_role|>assistant\n"),
    stop_words=["<|end_of_text|>"],
    default_system="You are Granite, developed by IBM. You are a helpful AI assistant.",
)
register_template(
    "seed_coder",
    format_user=S(BOS, "user\n{{content}}", EOS, BOS, "assistant\n"),
    format_system=S(BOS, "system\n{{content}}", EOS),
    default_system="You are an AI programming assistant, utilizing the Seed-Coder model, developed by "
                   "ByteDance Seed, and you only answer questions related to computer science. For politically "
                   "sensitive questions, security and privacy issues, and other non-computer science questions, "
                   "you will refuse to answer.\n\n",
)
register_template("seed_oss", base="seed_coder", default_system="", reasoning=True,
                  format_function=FunctionFormatter([BOS, "\n{{content}}", EOS], tool_format="default"),
                  thought_words=("<seed:think>", "</seed:think>"))

# -------------------------------------------------------------------------- OpenChat, Zephyr, ...
register_template("openchat", format_user=S("GPT4 Correct User: {{content}}", EOS, "GPT4 Correct Assistant:"),
                  format_prefix=EmptyFormatter([BOS]))
register_template("openchat-3.6", base="openchat", stop_words=["<|eot_id|>"], format_user=S(
    "<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\n{{content}}<|eot_id|>"
    "<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n"))
register_template("zephyr", format_user=S("<|user|>\n{{content}}", EOS, "<|assistant|>\n"),
                  format_system=S("<|system|>\n{{content}}", EOS),
                  default_system="You are Zephyr, a helpful assistant.")
register_template(
    "cohere",
    format_user=S("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"),
    format_system=S("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{content}}<|END_OF_TURN_TOKEN|>"),
    format_prefix=EmptyFormatter([BOS]),
)
register_template(
    "deepseekcoder",
    format_user=S("### Instruction:\n{{content}}\n### Response:"),
    format_assistant=S("\n{{content}}\n<|EOT|>\n"),  # no EOS: the model ends with <|EOT|>
    format_prefix=EmptyFormatter([BOS]),
    default_system="You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by "
                   "DeepSeek Company, and you only answer questions related to computer science. For politically "
                   "sensitive questions, security and privacy issues, and other non-computer science questions, "
                   "you will refuse to answer.\n",
)
register_template("falcon", format_user=S("User: {{content}}\nFalcon:"), format_assistant=S("{{content}}\n"),
                  efficient_eos=True)
register_template("olmo", format_user=S("<|user|>\n{{content}}<|assistant|>\n"), format_prefix=EmptyFormatter([EOS]))
register_template("exaone", format_user=S("[|user|]{{content}}\n[|assistant|]"),
                  format_assistant=S("{{content}}", EOS, "\n"),
                  format_system=S("[|system|]{{content}}[|endofturn|]\n"))
register_template(
    "gpt_oss",
    format_user=S("<|start|>user<|message|>{{content}}<|end|><|start|>assistant"),
    format_assistant=S("{{content}}"),
    format_system=S("<|start|>system<|message|>{{content}}<|end|>"),
    default_system="You are ChatGPT, a large language model trained by OpenAI.",
    thought_words=("<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>"),
    efficient_eos=True,
    reasoning=True,
)
register_template("bailing", format_user=S("<role>HUMAN</role>{{content}}<role>ASSISTANT</role>"),
                  format_system=S("<role>SYSTEM</role>{{content}}"),
                  format_observation=S("<role>OBSERVATION</role>{{content}}<role>ASSISTANT</role>"),
                  stop_words=["<|endoftext|>"], efficient_eos=True)
register_template("breeze", format_user=S("[INST] {{content}} [/INST] "), format_prefix=EmptyFormatter([BOS]),
                  efficient_eos=True)
register_template("solar", format_user=S("### User:\n{{content}}\n\n### Assistant:\n"),
                  format_system=S("### System:\n{{content}}\n\n"), efficient_eos=True)
register_template("index", format_user=S("reserved_0{{content}}reserved_1"), format_system=S("<unk>{{content}}"),
                  efficient_eos=True)
register_template("hunyuan", format_user=S("{{content}}<|extra_0|>"), format_assistant=S("{{content}}<|eos|>"),
                  format_system=S("{{content}}<|extra_4|>"), format_prefix=EmptyFormatter(["<|startoftext|>"]),
                  stop_words=["<|eos|>"])
register_template("telechat2", format_user=S("<_user>{{content}}<_bot>"), format_system=S("<_system>{{content}}"),
                  default_system="你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和"
                                 "中国电信人工智能研究院（TeleAI）研发的人工智能助手。")
register_template("xuanyuan", format_user=S("Human: {{content}} Assistant:"), default_system=(
    "以下是用户和人工智能助手之间的对话。用户以Human开头，人工智能助手以Assistant开头，"
    "会对人类提出的问题给出有帮助、高质量、详细和礼貌的回答，并且总是拒绝参与与不道德、"
    "不安全、有争议、政治敏感等相关的话题、问题和指示。\n"))
register_template(
    "youtu",
    format_user=S("<|User|>{{content}}<|Assistant|>"),
    format_assistant=S("{{content}}<|end_of_text|>"),
    format_function=FunctionFormatter(["{{content}}"], tool_format="default"),
    format_observation=S("<tool_response>\n{{content}}\n</tool_response><|Assistant|>"),
    format_tools=ToolFormatter("default"),
    format_prefix=EmptyFormatter([BOS]),
    stop_words=["<|end_of_text|>"],
    replace_eos=True,
    reasoning=True,
)
register_template("ernie_nothink", format_user=S("User: {{content}}\nAssistant: "),
                  format_assistant=S("{{content}}<|end_of_sentence|>"), format_system=S("{{content}}\n"),
                  format_prefix=EmptyFormatter(["<|begin_of_sentence|>"]), stop_words=["<|end_of_sentence|>"])
