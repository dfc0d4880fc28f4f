#!/usr/bin/env python3
"""Builds tests/fixtures/vocab/: tokenizer folders and the tokenizer.* GGUF metadata that llama.cpp's
convert_hf_to_gguf.py writes for them, as the reference for tests/vocab_reference.rs.

Run with the oracle venv (transformers, tokenizers, sentencepiece, protobuf, gguf-py from the sdist):

    LLM_EXPORT_LLAMA_CPP_SRC=<sdist>/vendor/llama.cpp \
        ~/.cache/llm-export/venv-oracle/bin/python tests/gen/vocab_fixtures.py

Two kinds of case:
* local: a SentencePiece model or a byte-level BPE trained here on a small corpus; every file is
  committed.
* real: vocabularies rebuilt from llama.cpp's models/ggml-vocab-*.gguf (Llama 2 SPM, Llama 3 BPE,
  Qwen2 BPE). Only the small files are committed with a `reconstruct.json` recipe; the big
  tokenizer.model / tokenizer.json are rebuilt from the sdist, here and by the Rust test, the same
  way (see `rebuild`), and `reconstruct.json` records a digest of what was rebuilt.

Each case's `expected.json` is what the converter wrote (run with --vocab-only on the folder plus a
one-tensor safetensors file), or the error it stopped with.
"""

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "vocab"
LLAMA_CPP = Path(os.environ.get(
    "LLM_EXPORT_LLAMA_CPP_SRC",
    Path.home() / ".cache/llm-export/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"))
sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
os.environ["HF_HUB_OFFLINE"] = "1"

import gguf  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as spm_pb  # noqa: E402

# The parameters the test's digest of arrays uses; keep in step with tests/vocab_reference.rs.
HEAD = 4


# ---------------------------------------------------------------- digests of GGUF values
def digest_items(kind, items):
    h = hashlib.sha256()
    for it in items:
        if kind == "str":
            h.update(struct.pack("<Q", len(it)) + it)
        elif kind == "f32":
            h.update(struct.pack("<f", it))
        elif kind == "i32":
            h.update(struct.pack("<i", it))
        else:
            raise ValueError(kind)
    return h.hexdigest()


def gguf_kvs(path):
    """The tokenizer.* KVs of a GGUF file, in file order, arrays summarised."""
    r = gguf.GGUFReader(path)
    out = []
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            sub = f.types[1]
            if sub == gguf.GGUFValueType.STRING:
                kind, items = "str", [bytes(f.parts[i]) for i in f.data]
                show = [x.decode("utf-8", "replace") for x in items]
            elif sub == gguf.GGUFValueType.FLOAT32:
                kind, items = "f32", [float(f.parts[i][0]) for i in f.data]
                show = items
            elif sub == gguf.GGUFValueType.INT32:
                kind, items = "i32", [int(f.parts[i][0]) for i in f.data]
                show = items
            else:
                raise ValueError(f"{key}: array of {sub}")
            out.append({"key": key, "type": f"[{kind}]", "len": len(items),
                        "sha256": digest_items(kind, items),
                        "head": show[:HEAD], "tail": show[-HEAD:]})
        elif t == gguf.GGUFValueType.STRING:
            out.append({"key": key, "type": "str", "value": bytes(f.parts[-1]).decode("utf-8")})
        elif t == gguf.GGUFValueType.UINT32:
            out.append({"key": key, "type": "u32", "value": int(f.parts[-1][0])})
        elif t == gguf.GGUFValueType.BOOL:
            out.append({"key": key, "type": "bool", "value": bool(f.parts[-1][0])})
        else:
            raise ValueError(f"{key}: {t}")
    return out


# ---------------------------------------------------------------- running the converter
def tiny_safetensors(path):
    header = json.dumps({"model.norm.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.0))


def run_converter(model_dir):
    """Runs convert_hf_to_gguf.py --vocab-only; returns the expected.json body."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "model"
        shutil.copytree(model_dir, work)
        tiny_safetensors(work / "model.safetensors")
        out = Path(tmp) / "vocab.gguf"
        env = dict(os.environ, PYTHONPATH=str(LLAMA_CPP / "gguf-py"))
        p = subprocess.run([sys.executable, str(LLAMA_CPP / "convert_hf_to_gguf.py"), "--vocab-only",
                            "--outfile", str(out), str(work)], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            log = p.stdout + p.stderr
            m = re.search(r"chkhsh:\s+([0-9a-f]{64})", log)
            last = [ln for ln in log.strip().splitlines() if ln.strip()][-1]
            return {"ok": False, "error": last, "chkhsh": m.group(1) if m else None}
        return {"ok": True, "kvs": gguf_kvs(out)}


# ---------------------------------------------------------------- rebuilding real vocabularies
def gguf_vocab(name):
    r = gguf.GGUFReader(LLAMA_CPP / "models" / f"ggml-vocab-{name}.gguf")
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    scores = ([float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
              if "tokenizer.ggml.scores" in f else None)
    merges = ([bytes(f["tokenizer.ggml.merges"].parts[i]).decode() for i in f["tokenizer.ggml.merges"].data]
              if "tokenizer.ggml.merges" in f else None)
    return tokens, types, scores, merges


def rebuild(recipe, case_dir):
    """Writes the big tokenizer file a recipe describes into case_dir; returns its digest.

    spm: tokenizer.model with the GGUF's first `pieces` tokens, scores and types (GGUF token types
    number like SentencePiece piece types), a BPE trainer spec with byte fallback and an identity
    normalizer. bpe: tokenizer.skeleton.json with `model.vocab` = the GGUF's first `base_vocab`
    tokens and `model.merges` = its merges as "a b" strings or [a, b] pairs.
    """
    tokens, types, scores, merges = gguf_vocab(recipe["gguf"])
    if recipe["kind"] == "spm":
        n = recipe["pieces"]
        m = spm_pb.ModelProto()
        for t, s, ty in zip(tokens[:n], scores[:n], types[:n]):
            p = m.pieces.add()
            p.piece, p.score, p.type = t, s, ty
        m.trainer_spec.model_type = spm_pb.TrainerSpec.BPE
        m.trainer_spec.vocab_size = n
        m.trainer_spec.byte_fallback = True
        m.normalizer_spec.name = "identity"
        m.normalizer_spec.add_dummy_prefix = True
        m.normalizer_spec.remove_extra_whitespaces = False
        data = m.SerializeToString()
        (case_dir / "tokenizer.model").write_bytes(data)
        return hashlib.sha256(data).hexdigest()
    skel = json.loads((case_dir / "tokenizer.skeleton.json").read_text())
    n = recipe["base_vocab"]
    skel["model"]["vocab"] = {t: i for i, t in enumerate(tokens[:n])}
    if recipe["merges"] == "pairs":
        skel["model"]["merges"] = [m.split(" ") for m in merges]
    else:
        skel["model"]["merges"] = merges
    (case_dir / "tokenizer.json").write_text(json.dumps(skel, ensure_ascii=False))
    return digest_items("str", [t.encode() for t in tokens[:n]] + [m.encode() for m in merges])


# ---------------------------------------------------------------- case folders
def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def added(i, content, special=True, normalized=False):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def decoder_entry(a):
    return {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}


def llama_config(arch, vocab_size, **extra):
    cfg = {"architectures": [arch], "model_type": {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
           "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Phi3ForCausalLM": "phi3",
           "Gemma2ForCausalLM": "gemma2", "GemmaForCausalLM": "gemma"}.get(arch, "llama"),
           "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
           "num_hidden_layers": 1, "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "head_dim": 8,
           "vocab_size": vocab_size, "torch_dtype": "float32"}
    cfg.update(extra)
    return cfg


CORPUS = "\n".join(
    f"The quick brown fox {i} jumps over the lazy dog. Héllo wörld, 你好 🚀 don't stop; x={i * 7}"
    for i in range(2000))


def train_spm(path, vocab_size, user_defined=(), control=(), ids=(0, 1, 2, -1), pieces=("<unk>", "<s>", "</s>", "<pad>")):
    import sentencepiece as spm
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(CORPUS)
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "sp"), vocab_size=vocab_size, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
            remove_extra_whitespaces=False, unk_id=ids[0], bos_id=ids[1], eos_id=ids[2], pad_id=ids[3],
            unk_piece=pieces[0], bos_piece=pieces[1], eos_piece=pieces[2], pad_piece=pieces[3],
            user_defined_symbols=list(user_defined), control_symbols=list(control), minloglevel=2)
        shutil.copy(Path(tmp) / "sp.model", path)


def case_spm_llama(d):
    """Llama 2 style SPM, small, with added tokens in all three places and config padding."""
    train_spm(d / "tokenizer.model", 400, user_defined=["<|user_sym|>"])
    adds = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"), added(400, "<|im_end|>"),
            added(401, "my▁word", special=False, normalized=True), added(402, "<|im_start|>", special=False)]
    write_json(d / "tokenizer.json", {"version": "1.0", "added_tokens": adds, "normalizer": None,
                                      "post_processor": {"type": "TemplateProcessing",
                                                         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                    {"Sequence": {"id": "A", "type_id": 0}}],
                                                         "pair": [], "special_tokens": {}}})
    write_json(d / "added_tokens.json", {"<|im_end|>": 400, "my▁word": 401, "<|im_start|>": 402, "<|far|>": 9999})
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "bos_token": "<s>", "eos_token": {"content": "<|im_end|>", "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False},
        "pad_token": None, "unk_token": "<unk>", "legacy": False, "tokenizer_class": "LlamaTokenizer"})
    (d / "chat_template.jinja").write_text("{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}")
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 512, bos_token_id=1, eos_token_id=2,
                                               pad_token_id=0))


def case_spm_mistral_prefix(d):
    """Mistral (llama converter) whose tokenizer_config sets add_prefix_space; no tokenizer.json."""
    train_spm(d / "tokenizer.model", 320)
    write_json(d / "tokenizer_config.json", {"add_prefix_space": False, "add_bos_token": True,
                                             "add_eos_token": True, "bos_token": "<s>", "eos_token": "</s>",
                                             "chat_template": "[INST] {{ messages[0].content }} [/INST]"})
    write_json(d / "config.json", llama_config("MistralForCausalLM", 320, bos_token_id=1, eos_token_id=2))


def case_spm_codellama(d):
    """vocab_size 32016 (CodeLlama): the converter adds the fill-in-the-middle ids, eot among them."""
    train_spm(d / "tokenizer.model", 320)
    write_json(d / "tokenizer_config.json", {"add_bos_token": True, "bos_token": "<s>", "eos_token": "</s>",
                                             "chat_template": "{{ messages }}"})
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 32016, bos_token_id=1, eos_token_id=2))


def case_spm_granite_size(d):
    """vocab_size 49152 (granite small, SmolLM): the converter forces add_bos_token false at the end."""
    train_spm(d / "tokenizer.model", 320)
    write_json(d / "tokenizer_config.json", {"add_bos_token": True, "add_eos_token": False,
                                             "bos_token": "<s>", "eos_token": "</s>"})
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 49152, bos_token_id=1, eos_token_id=2))


def case_spm_gemma(d):
    """Gemma (1): CodeGemma's fill-in-the-middle ids are added to every Gemma."""
    gemma_files(d, llama_config("GemmaForCausalLM", 420, bos_token_id=2, eos_token_id=1, pad_token_id=0))


GEMMA_PIECES = ("<unk>", "<bos>", "<eos>", "<pad>")


def gemma_files(d, arch_cfg):
    train_spm(d / "tokenizer.model", 420, ids=(3, 2, 1, 0), pieces=GEMMA_PIECES,
              user_defined=["<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>", "<unused1>", "▁▁"])
    adds = [added(0, "<pad>"), added(1, "<eos>"), added(2, "<bos>"), added(3, "<unk>"),
            added(4, "<mask>", special=False), added(5, "<start_of_turn>"), added(6, "<end_of_turn>"),
            added(7, "<unused0>", special=False), added(8, "<unused1>", special=False),
            added(9, "▁▁", special=False)]
    write_json(d / "tokenizer.json", {"version": "1.0", "added_tokens": adds, "normalizer": {
        "type": "Replace", "pattern": {"String": " "}, "content": "▁"}, "post_processor": {
        "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                                 {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {}}})
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "chat_template": "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.content }}<end_of_turn>{% endfor %}",
        "tokenizer_class": "GemmaTokenizer"})
    write_json(d / "config.json", arch_cfg)


def case_spm_gemma2(d):
    gemma_files(d, llama_config("Gemma2ForCausalLM", 420, bos_token_id=2, eos_token_id=1, pad_token_id=0))


def case_spm_gemma3(d):
    """Gemma 3 multimodal config: vocab_size lives in text_config, eos_token_id is a list."""
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
           "text_config": llama_config("Gemma3ForCausalLM", 430, model_type="gemma3_text"),
           "eos_token_id": [1, 6], "boi_token_index": 9}
    gemma_files(d, cfg)


def case_spm_phi3(d):
    """Phi-3's own SPM loop: added tokens from tokenizer_config then tokenizer.json, no retyping."""
    train_spm(d / "tokenizer.model", 400)
    adds = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>", special=False),
            added(400, "<|endoftext|>"), added(401, "<|assistant|>"), added(402, "<|placeholder1|>", special=False),
            added(403, "<|end|>"), added(404, "my▁word", special=False, normalized=True)]
    write_json(d / "tokenizer.json", {"version": "1.0", "added_tokens": adds, "normalizer": None,
                                      "post_processor": None})
    write_json(d / "added_tokens.json", {"<|endoftext|>": 400, "<|assistant|>": 401})
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": False, "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds[:5]},
        "bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}<|user|>{{ m.content }}<|end|>{% endfor %}",
        "tokenizer_class": "LlamaTokenizer"})
    write_json(d / "config.json", llama_config("Phi3ForCausalLM", 416, bos_token_id=1, eos_token_id=403,
                                               pad_token_id=400))


def case_hf_llama_no_spm(d, arch="LlamaForCausalLM"):
    """A Llama 2 / Mistral fine-tune saved by transformers 5: tokenizer.json (SentencePiece-style
    BPE) and tokenizer_config.json, no tokenizer.model; the converter's LlamaHfVocab path."""
    from transformers import LlamaTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        train_spm(Path(tmp) / "tokenizer.model", 400, user_defined=["<|user_sym|>"])
        t = LlamaTokenizer.from_pretrained(tmp)
    t.add_tokens(["<|im_start|>", "my word"])
    t.add_special_tokens({"additional_special_tokens": ["<|im_end|>"], "pad_token": "<pad>"})
    t.chat_template = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    t.save_pretrained(d)
    write_json(d / "config.json", llama_config(arch, 404, bos_token_id=1, eos_token_id=2))


def case_hf_mistral_no_spm(d):
    case_hf_llama_no_spm(d, "MistralForCausalLM")


def train_bpe():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex, processors
    tok = Tokenizer(models.BPE(ignore_merges=True))
    # Llama 3's pre-tokenizer split; the vocabulary is ours, so llama.cpp will not know its hash.
    split = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                                  show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
    return tok


def case_bpe_unknown(d):
    """A byte-level BPE llama.cpp has never seen: the converter must stop on its check hash."""
    train_bpe().save(str(d / "tokenizer.json"))
    write_json(d / "tokenizer_config.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                                             "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 640))


# Real vocabularies ------------------------------------------------------------------------
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def bpe_skeleton(split, added_tokens, normalizer, post_processor, ignore_merges):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": ignore_merges, "vocab": {}, "merges": []}}


def case_real_llama_spm(d):
    """Llama 2 (tokenizer.model rebuilt from ggml-vocab-llama-spm.gguf), Llama 2 HF files."""
    write_json(d / "reconstruct.json", {"kind": "spm", "gguf": "llama-spm", "pieces": 32000})
    adds = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    write_json(d / "tokenizer.json", {"version": "1.0", "added_tokens": adds, "normalizer": {
        "type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}})
    tc = lambda c: {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": False,  # noqa: E731
                    "rstrip": False, "single_word": False}
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "bos_token": tc("<s>"), "clean_up_tokenization_spaces": False, "eos_token": tc("</s>"),
        "legacy": False, "model_max_length": 1000000000000000019884624838656, "pad_token": None,
        "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
        "unk_token": tc("<unk>")})
    write_json(d / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 32000, bos_token_id=1, eos_token_id=2,
                                               pad_token_id=0))


def case_real_phi3(d):
    """Phi-3 mini: the Llama 2 tokenizer.model plus Phi-3's added tokens, vocab_size 32064."""
    write_json(d / "reconstruct.json", {"kind": "spm", "gguf": "llama-spm", "pieces": 32000})
    names = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
             "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
    adds = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>", special=False)]
    # Phi-3 marks </s> and the placeholders as non-special, and strips spaces after its chat markers.
    adds += [added(32000 + i, n, special="placeholder" not in n) for i, n in enumerate(names)]
    for a in adds:
        a["rstrip"] = a["id"] > 32000
    write_json(d / "tokenizer.json", {"version": "1.0", "added_tokens": adds, "normalizer": {
        "type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {}}})
    write_json(d / "added_tokens.json", {a["content"]: a["id"] for a in adds if a["id"] >= 32000})
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": False, "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "bos_token": "<s>", "chat_template": "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "legacy": False,
        "model_max_length": 4096, "pad_token": "<|endoftext|>", "padding_side": "left",
        "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
        "use_default_system_prompt": False})
    write_json(d / "config.json", llama_config("Phi3ForCausalLM", 32064, bos_token_id=1, eos_token_id=32000,
                                               pad_token_id=32000))


LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                  "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                  "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]


def llama3_added():
    """Llama 3.1's 256 added tokens (ids 128000..128255)."""
    names = LLAMA3_SPECIAL + [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(LLAMA3_SPECIAL))]
    return [added(128000 + i, n) for i, n in enumerate(names)]


def case_real_llama3(d):
    """Llama 3.1 Instruct: tokenizer.json rebuilt from ggml-vocab-llama-bpe.gguf ("a b" merges)."""
    adds = llama3_added()
    post = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                   "tokens": ["<|begin_of_text|>"]}}}]}
    write_json(d / "tokenizer.skeleton.json", bpe_skeleton(LLAMA3_SPLIT, adds, None, post, True))
    write_json(d / "reconstruct.json", {"kind": "bpe", "gguf": "llama-bpe", "base_vocab": 128000, "merges": "strings"})
    write_json(d / "tokenizer_config.json", {
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "bos_token": "<|begin_of_text|>",
        "chat_template": "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}",
        "clean_up_tokenization_spaces": True, "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
        "pad_token": "<|finetune_right_pad_id|>", "padding_side": "left",
        "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(d / "config.json", llama_config("LlamaForCausalLM", 128256, bos_token_id=128000,
                                               eos_token_id=[128001, 128008, 128009]))


def case_real_phi4_gpt2(d):
    """Phi-3 converter on a GPT2Tokenizer (Phi-4 style) BPE: the Llama 3 vocabulary, add_bos false."""
    case_real_llama3(d)
    tc = json.loads((d / "tokenizer_config.json").read_text())
    tc["tokenizer_class"] = "GPT2Tokenizer"
    tc["add_bos_token"] = False
    tc["add_eos_token"] = False
    tc.pop("chat_template")
    write_json(d / "tokenizer_config.json", tc)
    write_json(d / "config.json", llama_config("Phi3ForCausalLM", 128256, bos_token_id=128000,
                                               eos_token_id=128009, pad_token_id=128004))


QWEN25_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
                "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                "<|repo_name|>", "<|file_sep|>"]
QWEN3_ADDED = ["<tool_response>", "</tool_response>", "<think>", "</think>"]


def qwen_files(d, names, arch, merges):
    adds = [added(151643 + i, n, special=i < 14) for i, n in enumerate(names)]
    skel = bpe_skeleton(QWEN2_SPLIT, adds, {"type": "NFC"},
                        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
                        False)
    skel["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    write_json(d / "tokenizer.skeleton.json", skel)
    write_json(d / "reconstruct.json", {"kind": "bpe", "gguf": "qwen2", "base_vocab": 151643, "merges": merges})
    write_json(d / "tokenizer_config.json", {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): decoder_entry(a) for a in adds},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                                      "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
                                      "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
                                      "<|video_pad|>"],
        "bos_token": None,
        "chat_template": "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 131072, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None})
    write_json(d / "config.json", llama_config(arch, 151936, bos_token_id=151643, eos_token_id=151645))


def case_real_qwen25(d):
    """Qwen2.5 Instruct: tokenizer.json rebuilt from ggml-vocab-qwen2.gguf ([a, b] merges), 22 added tokens."""
    qwen_files(d, QWEN25_ADDED, "Qwen2ForCausalLM", "pairs")


def case_real_qwen3(d):
    """Qwen3: the Qwen2.5 vocabulary plus <think> and tool-response tokens, generation_config present."""
    qwen_files(d, QWEN25_ADDED + QWEN3_ADDED, "Qwen3ForCausalLM", "strings")
    write_json(d / "generation_config.json", {"bos_token_id": 151643, "eos_token_id": [151645, 151643],
                                              "pad_token_id": 151643})


CASES = {
    "spm-llama": case_spm_llama,
    "spm-mistral-prefix": case_spm_mistral_prefix,
    "spm-codellama": case_spm_codellama,
    "spm-granite-size": case_spm_granite_size,
    "spm-gemma": case_spm_gemma,
    "spm-gemma2": case_spm_gemma2,
    "spm-gemma3": case_spm_gemma3,
    "spm-phi3": case_spm_phi3,
    "bpe-unknown": case_bpe_unknown,
    "hf-llama-no-spm": case_hf_llama_no_spm,
    "hf-mistral-no-spm": case_hf_mistral_no_spm,
    "real-llama-spm": case_real_llama_spm,
    "real-phi3": case_real_phi3,
    "real-llama3": case_real_llama3,
    "real-phi4-gpt2": case_real_phi4_gpt2,
    "real-qwen25": case_real_qwen25,
    "real-qwen3": case_real_qwen3,
}


def main():
    only = sys.argv[1:]
    for name, make in CASES.items():
        if only and name not in only:
            continue
        d = FIXTURES / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        make(d)
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / name
            shutil.copytree(d, model)
            recipe = model / "reconstruct.json"
            if recipe.exists():
                r = json.loads(recipe.read_text())
                r["digest"] = rebuild(r, model)
                write_json(d / "reconstruct.json", r)
                (model / "tokenizer.skeleton.json").unlink(missing_ok=True)
            expected = run_converter(model)
        write_json(d / "expected.json", expected)
        print(name, "ok" if expected["ok"] else f"error: {expected['error']}")


if __name__ == "__main__":
    main()
