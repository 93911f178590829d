#!/usr/bin/env python3
"""Expected token segments for `paw data build`, from Hugging Face tokenizers + the Qwen3 chat template.

Writes tests/fixtures/shard/examples.jsonl (a few FuzzyBench-style lines) and
tests/fixtures/shard/expected_segments.json: for each line, the four segments of data/shard.h as
Hugging Face encodes the rendered strings. The interpreter prompt string is checked against the
tokenizer's own chat template (apply_chat_template, enable_thinking=False) first.

usage: python3 tests/make_shard_fixtures.py [--tokenizer-dir ../shared/data/qwen3-tokenizer]
"""
import argparse
import json
import os

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

EXAMPLES = [
    {"spec": "Classify the sentiment of a review as positive or negative.", "input": "I loved it!",
     "output": "positive", "family": "classify", "task_id": "sent-1",
     "pseudo_program": "[PSEUDO_PROGRAM]\nSay positive or negative.\nExample: \"great\" -> positive\n[END_PSEUDO_PROGRAM]"},
    {"spec": "Repair the broken JSON.", "input": "{\"a\": 1,, \"b\": [2, 3}", "output": "{\"a\": 1, \"b\": [2, 3]}",
     "family": "repair"},
    {"spec": "Translate to French: keep names.  Trailing spaces   ", "input": "  leading spaces\n\nand\ttabs",
     "output": "  des espaces\n", "task_id": "fr"},
    {"spec": "Échange les mots — unicode 日本語 🙂", "input": "naïve café", "output": "café naïve"},
    {"spec": "Empty output allowed.", "input": "", "output": ""},
]


def chat(user):
    return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", default=os.path.join(HERE, "..", "..", "shared", "data", "qwen3-tokenizer"))
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    try:  # the interpreter prompt must be what the Qwen3 chat template renders
        from transformers import PreTrainedTokenizerFast
        hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.tokenizer_dir, "tokenizer.json"))
        with open(os.path.join(args.tokenizer_dir, "tokenizer_config.json")) as f:
            hf.chat_template = json.load(f)["chat_template"]
    except ImportError:
        hf = None

    out_dir = os.path.join(HERE, "fixtures", "shard")
    os.makedirs(out_dir, exist_ok=True)
    expected = []
    with open(os.path.join(out_dir, "examples.jsonl"), "w") as f:
        for ex in EXAMPLES:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")
            pp = ex.get("pseudo_program") or "[PSEUDO_PROGRAM]\n" + ex["spec"] + "\n[END_PSEUDO_PROGRAM]"
            compiler_prompt = chat("[SPEC]\n" + ex["spec"] + "\n[END_SPEC]\n\n[PSEUDO_PROGRAM]")
            user = pp + "\n\n[INPUT]\n" + ex["input"] + "\n[END_INPUT]"
            interp_prompt = chat(user) + "<think>\n\n</think>\n\n"
            if hf is not None:
                ref = hf.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=False)
                assert ref == interp_prompt, (ref, interp_prompt)
            segs = [compiler_prompt, pp + "<|im_end|>", interp_prompt, ex["output"] + "<|im_end|>"]
            expected.append({"segments": [tok.encode(s, add_special_tokens=False).ids for s in segs], "text": segs})
    with open(os.path.join(out_dir, "expected_segments.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in expected) + "\n]\n")
    print("wrote", out_dir, "checked against chat template:", hf is not None)


if __name__ == "__main__":
    main()
