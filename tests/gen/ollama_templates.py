#!/usr/bin/env python3
"""Builds the chat-template fixtures of the Ollama tests and renders them with Hugging Face's own
Jinja code path (transformers' `render_jinja_template`, the function behind `apply_chat_template`).

Writes, under tests/fixtures/ollama/:
  templates/<name>.jinja   the template texts (see README.md for where each comes from)
  templates.json           name -> family we expect, bos/eos strings, provenance
  renders.json             name -> conversation -> rendered prompt (null where the template raises)

Run with the oracle venv:  /root/.cache/llm-export/venv-oracle/bin/python tests/gen/ollama_templates.py
"""
import ast
import datetime
import json
import os
import re
import sys

import transformers.utils.chat_template_utils as hf_chat
from transformers.utils.chat_template_utils import render_jinja_template


class _PinnedClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2025, 3, 7)


# transformers' `strftime_now` reads `datetime.now()` of its module: pin it so renders are stable.
hf_chat.datetime = _PinnedClock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "ollama")
LLAMA_CPP = os.environ.get(
    "LLAMA_CPP",
    os.path.expanduser("~/.cache/llm-export/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"),
)

# Token strings as the models' tokenizers define them.
TOK = {
    "llama2": ("<s>", "</s>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen": ("", "<|im_end|>"),
    "gemma": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<end_of_turn>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "phi4": ("<|endoftext|>", "<|im_end|>"),
    "chatml": ("<s>", "<|im_end|>"),
    "none": ("<s>", "</s>"),
}

# (fixture name, source, expected family, tokens)
LLAMA_CPP_FILES = [
    ("llama-3.1-8b-instruct", "meta-llama-Llama-3.1-8B-Instruct", "llama3.1", "llama3"),
    ("llama-3.2-3b-instruct", "meta-llama-Llama-3.2-3B-Instruct", "llama3.1", "llama3"),
    ("llama-3.3-70b-instruct", "meta-llama-Llama-3.3-70B-Instruct", "llama3.1", "llama3"),
    ("qwen2.5-7b-instruct", "Qwen-Qwen2.5-7B-Instruct", "chatml", "qwen"),
    ("qwen3-0.6b", "Qwen-Qwen3-0.6B", "qwen3", "qwen"),
    ("gemma-2-2b-it", "google-gemma-2-2b-it", "gemma", "gemma"),
    ("phi-3.5-mini-instruct", "microsoft-Phi-3.5-mini-instruct", "phi3", "phi3"),
    ("mistral-nemo-instruct-2407", "mistralai-Mistral-Nemo-Instruct-2407", "mistral-v3-tekken", "llama2"),
    ("mistral-small-3.2-24b-instruct", "Mistral-Small-3.2-24B-Instruct-2506", "mistral-v7-tekken", "llama2"),
    ("devstral-small-2507", "unsloth-mistral-Devstral-Small-2507", "mistral-v7-tekken", "llama2"),
    ("deepseek-r1-distill-llama-8b", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "unknown", "none"),
    ("command-r7b-tool-use", "CohereForAI-c4ai-command-r7b-12-2024-tool_use", "unknown", "none"),
    ("gpt-oss-120b", "openai-gpt-oss-120b", "unknown", "none"),
]

# Test cases of llama.cpp's tests/test-chat-template.cpp, by their `.name`.
LLAMA_CPP_TESTS = [
    ("openhermes-2.5-mistral-7b", "teknium/OpenHermes-2.5-Mistral-7B", "chatml", "chatml"),
    ("mistral-7b-instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)", "mistral", "llama2"),
    ("mistral-v1", "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)", "mistral-v1", "llama2"),
    ("mistral-large-2407-v3", "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at start)", "mistral-v3", "llama2"),
    ("mistral-large-2411-v7", "mistralai/Mistral-Large-Instruct-2411 (mistralai 'v7' template)", "mistral-v7", "llama2"),
    ("gemma-7b-it", "google/gemma-7b-it", "gemma", "gemma"),
    ("vicuna-13b-v1.1", "eachadea/vicuna-13b-1.1", "vicuna", "none"),
    ("vicuna-orca", "Orca-Vicuna", "vicuna", "none"),
    ("llama-3-test", "Llama-3", "llama3", "llama3"),
    ("phi-3-mini", "Phi-3-mini", "phi3", "phi3"),
    ("phi-3-small", "Phi-3-small", "phi3", "phi3"),
    ("phi-3-medium", "Phi-3-medium", "phi3", "phi3"),
    ("phi-3-vision", "Phi-3-vision", "phi3", "phi3"),
    ("phi-4", "phi-4", "phi4", "phi4"),
    ("alphamonarch-7b", "mlabonne/AlphaMonarch-7B", "unknown", "none"),
    ("openchat-3.5-0106", "openchat/openchat-3.5-0106", "unknown", "none"),
    ("deepseek-coder-33b-instruct", "deepseek-ai/deepseek-coder-33b-instruct", "unknown", "none"),
    ("command-r-plus", "CohereForAI/c4ai-command-r-plus", "unknown", "none"),
]

# Hugging Face templates as collected in ollama/ollama template/index.json (data, transcribed).
INDEX_JSON = [
    ("zephyr-7b-beta", "zephyr", "none",
     "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
    ("zephyr-no-system", "zephyr", "none",
     "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
    ("qwen2-instruct", "chatml", "qwen",
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    ("llama-2-chat", "llama2", "llama2",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    ("llama-2-chat-trim", "llama2", "llama2",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content | trim + ' ' + eos_token }}{% endif %}{% endfor %}"),
    ("mistral-instruct-eos-space", "mistral", "llama2",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
    ("llama-3-8b-instruct", "llama3", "llama3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    ("granite-instruct", "unknown", "none",
     "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ 'Question:\n' + message['content'] + '\n\n' }}{% elif message['role'] == 'system' %}\n{{ 'System:\n' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Answer:\n'  + message['content'] + '\n\n' }}{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ 'Answer:\n' }}{% endif %}{% endfor %}"),
    ("alfred", "unknown", "none",
     "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<start_user>' + message['content'].strip() + '<end_message>' }}{% elif message['role'] == 'system' %}{{ '<start_system>' + message['content'].strip() + '<end_message>' }}{% elif message['role'] == 'assistant' %}{{ '<start_assistant>'  + message['content'] + '<end_message>' }}{% else %}{{ raise_exception('Only system, user and assistant roles are supported.') }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<start_assistant>' }}{% endif %}{% endfor %}"),
]

# Written from knowledge of the published templates (no copy was available offline).
RECONSTRUCTED = [
    ("gemma-3-it", "gemma3", "gemma3",
     "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\\n'}}\n{%- endif -%}\n"),
    ("alpaca", "alpaca", "none",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% set loop_messages = messages[1:] %}{% else %}{{ 'Below are some instructions that describe some tasks. Write responses that appropriately complete each request.\\n\\n' }}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"),
]


def cpp_test_templates():
    src = open(os.path.join(LLAMA_CPP, "tests", "test-chat-template.cpp"), encoding="utf-8").read()
    found = {}
    pattern = re.compile(
        r'/\* \.name= \*/ ("(?:[^"\\]|\\.)*"),\s*(?://[^\n]*\n\s*)*/\* \.template_str= \*/ (?:U8C\()?("(?:[^"\\]|\\.)*")'
    )
    for m in pattern.finditer(src):
        found[ast.literal_eval(m.group(1))] = ast.literal_eval(m.group(2))
    return found


S = "You are a terse assistant."
U1, A1, U2, A2, U3 = "What is 2+2?", "It is 4.", "And times 3?", "That makes 12.", "Thanks! One more:\nwhat is \"10/2\"?"
CONVERSATIONS = {
    "user": ([("user", U1)], "generate"),
    "system-user": ([("system", S), ("user", U1)], "generate"),
    "user-assistant-user": ([("user", U1), ("assistant", A1), ("user", U2)], "generate"),
    "system-user-assistant-user": ([("system", S), ("user", U1), ("assistant", A1), ("user", U2)], "generate"),
    "long": ([("system", S), ("user", U1), ("assistant", A1), ("user", U2), ("assistant", A2), ("user", U3)], "generate"),
    "prefill": ([("user", U1), ("assistant", A1)], "continue"),
    "system-prefill": ([("system", S), ("user", U1), ("assistant", A1), ("user", U2), ("assistant", A2)], "continue"),
    "user/no-thinking": ([("user", U1)], "no-thinking"),
}


def render(template, bos, eos, messages, mode):
    chat = [{"role": r, "content": c} for r, c in messages]
    # Dates are inputs of a template, not part of it: llama 3.x templates take `date_string` (their
    # fallback is what the Ollama template writes), others call `strftime_now`; both are pinned.
    kwargs = dict(bos_token=bos, eos_token=eos, date_string="26 Jul 2024")
    if mode == "no-thinking":
        kwargs["enable_thinking"] = False
    try:
        return render_jinja_template(
            conversations=[chat],
            chat_template=template,
            add_generation_prompt=mode != "continue",
            continue_final_message=mode == "continue",
            **kwargs,
        )[0][0]
    except Exception:  # the template refuses this conversation (raise_exception, missing fields)
        return None


def main():
    tests = cpp_test_templates()
    entries = []
    for name, stem, family, tok in LLAMA_CPP_FILES:
        text = open(os.path.join(LLAMA_CPP, "models", "templates", stem + ".jinja"), encoding="utf-8").read()
        entries.append((name, text, family, tok, f"llama.cpp models/templates/{stem}.jinja"))
    for name, test_name, family, tok in LLAMA_CPP_TESTS:
        entries.append((name, tests[test_name], family, tok, f"llama.cpp tests/test-chat-template.cpp: {test_name}"))
    for name, family, tok, text in INDEX_JSON:
        entries.append((name, text, family, tok, "ollama/ollama template/index.json (Hugging Face template)"))
    for name, family, tok, text in RECONSTRUCTED:
        entries.append((name, text, family, tok, "reconstructed"))

    os.makedirs(os.path.join(OUT, "templates"), exist_ok=True)
    manifest, renders = {}, {}
    for name, text, family, tok, source in entries:
        bos, eos = TOK[tok]
        with open(os.path.join(OUT, "templates", name + ".jinja"), "w", encoding="utf-8") as f:
            f.write(text)
        manifest[name] = {"family": family, "bos": bos, "eos": eos, "source": source}
        renders[name] = {
            conv: render(text, bos, eos, messages, mode) for conv, (messages, mode) in CONVERSATIONS.items()
        }
    with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    with open(os.path.join(OUT, "renders.json"), "w", encoding="utf-8") as f:
        json.dump({"conversations": {k: [[r, c] for r, c in m] + [[mode]] for k, (m, mode) in CONVERSATIONS.items()},
                   "renders": renders}, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    print(f"{len(entries)} templates", file=sys.stderr)


if __name__ == "__main__":
    main()
