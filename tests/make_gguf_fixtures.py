#!/usr/bin/env python3
"""GGUF and program-bundle fixtures written, and C output checked, with gguf-py (pip install gguf).

  python3 tests/make_gguf_fixtures.py
      writes tests/fixtures/gguf/:
        reference.gguf      key/values of every scalar type and arrays; tensors F32, F16, BF16,
                            Q8_0 and Q4_0 (quantized by gguf.quants) with their fp32 sources
                            (src.*) and gguf-py's dequantization (deq.*)
        aligned64.gguf      general.alignment = 64
        published.paw       a bundle laid out like a published program: members in a folder,
                            an extra member, extra meta.json keys, no interpreter_config, a Q4_0
                            adapter for a tiny Qwen3 shape written by GGUFWriter from PEFT-shaped
                            arrays (lora_A [r, d_in], lora_B [d_out, r])
        published_expected.safetensors
                            gguf-py's dequantization of that adapter in paw's layout
                            (A.<module> [L, r, d_in], B.<module> [L, d_out, r])
  python3 tests/make_gguf_fixtures.py --check-gguf FILE
      reads FILE (written by tests/test_gguf.c, see there) with gguf.GGUFReader and checks it.
  python3 tests/make_gguf_fixtures.py --check-paw FILE
      unzips a bundle written by tests/test_program.c and checks its adapter with GGUFReader
      (metadata, names, ggml shapes, values) and its other members.
  python3 tests/make_gguf_fixtures.py --check-llama FILE --llama-src DIR
      end to end with llama.cpp itself (needs llama-cpp-python, transformers, and a llama.cpp
      source tree DIR for convert_hf_to_gguf.py): makes a random Qwen3 with the bundle's tiny
      shape and the real Qwen3 tokenizer, converts it to GGUF, loads the bundle's adapter.gguf
      with llama_adapter_lora_init, and compares llama.cpp's logits with transformers' logits of
      the same model with W += (alpha / r) B A merged in.
"""
import argparse
import io
import json
import math
import os
import sys
import tempfile
import zipfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "gguf")

MODULES = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
GGUF_MODULE = {"down_proj": "ffn_down", "gate_proj": "ffn_gate", "k_proj": "attn_k", "o_proj": "attn_output",
               "q_proj": "attn_q", "up_proj": "ffn_up", "v_proj": "attn_v"}
# Tiny Qwen3 shape shared with tests/test_program.c.
TINY = dict(L=2, C=64, I=96, NH=2, NKV=1, HD=32, R=32)


def module_dims(m, s):
    C, I, Q, KV = s["C"], s["I"], s["NH"] * s["HD"], s["NKV"] * s["HD"]
    return {"down_proj": (I, C), "gate_proj": (C, I), "k_proj": (C, KV), "o_proj": (Q, C),
            "q_proj": (C, Q), "up_proj": (C, I), "v_proj": (C, KV)}[m]


def q4_source(rng):
    blocks = [
        rng.standard_normal(32).astype(np.float32),
        np.zeros(32, np.float32),
        # ties in magnitude (the first wins: max = -1, d = +0.125) and the clamp at q = 16 -> 15
        np.array([-1.0, 1.0, 0.5, -0.5] + [0.0625 * k for k in range(28)], np.float32),
        # largest magnitude positive: d negative
        np.linspace(-0.3, 0.9, 32, dtype=np.float32),
        (rng.standard_normal(32) * 1e-3).astype(np.float32),
        np.full(32, 7.0, np.float32),
    ]
    return np.concatenate(blocks).reshape(6, 32)


def q8_source(rng):
    blocks = [
        rng.standard_normal(32).astype(np.float32),
        np.zeros(32, np.float32),
        np.array([127.0 / (k + 1) * (-1) ** k for k in range(32)], np.float32),
        (rng.standard_normal(32) * 50).astype(np.float32),
    ]
    return np.concatenate(blocks).reshape(2, 64)


def write_reference():
    rng = np.random.default_rng(1234)
    path = os.path.join(OUT, "reference.gguf")
    w = gguf.GGUFWriter(path, "qwen3")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -5)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "h\u00e9llo w\u00f6rld")
    w.add_uint64("test.u64", 2**40 + 3)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", math.pi)
    w.add_key_value("test.arr_u32", [1, 2, 3], VT.ARRAY, sub_type=VT.UINT32)
    w.add_key_value("test.arr_f32", [0.5, -2.0], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("test.arr_str", ["a", "bc", ""], VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("test.empty_str", "", VT.STRING)

    f32 = (np.arange(15, dtype=np.float32) - 7) * 0.25
    w.add_tensor("f32", f32.reshape(3, 5))  # ne [5, 3]
    w.add_tensor("f16", np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 2.0**-14, 2.0**-24], np.float16))
    bf = np.array([1.0, -3.140625, 2.0**-130, 3.0e38], np.float32).reshape(2, 2)
    w.add_tensor("bf16", gguf.quants.quantize(bf, QT.BF16), raw_dtype=QT.BF16)
    w.add_tensor("src.bf16", bf)
    for name, qt, src in (("q8_0", QT.Q8_0, q8_source(rng)), ("q4_0", QT.Q4_0, q4_source(rng))):
        q = gguf.quants.quantize(src, qt)
        w.add_tensor(name, q, raw_dtype=qt)
        w.add_tensor("src." + name, src)
        w.add_tensor("deq." + name, gguf.quants.dequantize(q, qt).astype(np.float32))
    w.add_tensor("three_d", np.arange(24, dtype=np.float32).reshape(2, 3, 4))  # ne [4, 3, 2]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    path = os.path.join(OUT, "aligned64.gguf")
    w = gguf.GGUFWriter(path, "qwen3")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(3, dtype=np.float32))
    w.add_tensor("b", np.arange(5, dtype=np.float32) * -1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_template():
    pseudo = "[PSEUDO_PROGRAM]\nEcho the input in upper case.\n[END_PSEUDO_PROGRAM]"
    user = pseudo + "\n\n[INPUT]\n{INPUT_PLACEHOLDER}\n[END_INPUT]"
    return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def write_published():
    rng = np.random.default_rng(99)
    s = TINY
    L, R = s["L"], s["R"]
    buf = tempfile.NamedTemporaryFile(suffix=".gguf", delete=False)
    buf.close()
    w = gguf.GGUFWriter(buf.name, "qwen3")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    w.add_string("general.name", "published-like test adapter")
    expected = {}
    for m in MODULES:
        d_in, d_out = module_dims(m, s)
        A = np.zeros((L, R, d_in), np.float32)
        B = np.zeros((L, d_out, R), np.float32)
        for l in range(L):
            a = (rng.standard_normal((R, d_in)) * 0.05).astype(np.float32)  # PEFT lora_A [r, d_in]
            b = (rng.standard_normal((d_out, R)) * 0.02).astype(np.float32)  # PEFT lora_B [d_out, r]
            for suffix, x, dst in (("lora_a", a, A), ("lora_b", b, B)):
                q = gguf.quants.quantize(x, QT.Q4_0)
                w.add_tensor(f"blk.{l}.{GGUF_MODULE[m]}.weight.{suffix}", q, raw_dtype=QT.Q4_0)
                dst[l] = gguf.quants.dequantize(q, QT.Q4_0)
        expected["A." + m] = A
        expected["B." + m] = B
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(buf.name, "rb") as f:
        adapter = f.read()
    os.unlink(buf.name)

    meta = {"interpreter": "Qwen/Qwen3-0.6B", "spec": "Echo the input in upper case.", "lora_rank": R,
            "lora_alpha": 16.0, "prefix_steps": 64, "runtime_id": "qwen3-0.6b-q6_k",
            "generation_config": {"max_new_tokens": 512}, "tags": ["test"]}
    peft = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R, "lora_alpha": 16,
            "target_modules": MODULES, "base_model_name_or_path": "Qwen/Qwen3-0.6B"}
    path = os.path.join(OUT, "published.paw")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("prog/README.md", "not part of the format\n")
        z.writestr("prog/meta.json", json.dumps(meta, indent=2))
        z.writestr("prog/prompt_template.txt", tiny_template())
        z.writestr("prog/adapter.gguf", adapter)
        z.writestr("prog/adapter_config.json", json.dumps(peft))

    from safetensors.numpy import save_file
    save_file(expected, os.path.join(OUT, "published_expected.safetensors"))


# ---------------------------------------------------------------------------------------------
# Checks of files written by the C code. The values mirror tests/test_gguf.c and test_program.c.

def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def field_value(r, key):
    f = r.get_field(key)
    if f is None:
        fail(f"missing key {key}")
    return f.contents()


def check_gguf(path):
    r = gguf.GGUFReader(path)
    want = {"general.architecture": "qwen3", "c.u32": 7, "c.i32": -7, "c.f32": 0.25, "c.u64": 2**50,
            "c.f64": 0.1, "c.bool": True, "c.str": "paw \u00e9t\u00e9", "c.arr_i32": [3, -1, 4],
            "c.arr_str": ["x", "", "yz"]}
    for k, v in want.items():
        got = field_value(r, k)
        if isinstance(v, float):
            ok = abs(got - v) < 1e-12
        else:
            ok = got == v
        if not ok:
            fail(f"{k}: got {got!r}, expected {v!r}")
    x = (np.arange(96, dtype=np.float32) - 40) / 16  # the C test's source values
    names = {t.name: t for t in r.tensors}
    for name, qt in (("t.f32", QT.F32), ("t.f16", QT.F16), ("t.bf16", QT.BF16), ("t.q8_0", QT.Q8_0),
                     ("t.q4_0", QT.Q4_0)):
        t = names.get(name)
        if t is None:
            fail(f"missing tensor {name}")
        if t.tensor_type != qt or list(t.shape) != [32, 3]:
            fail(f"{name}: type {t.tensor_type.name} ne {list(t.shape)}, expected {qt.name} [32, 3]")
        if qt in (QT.F32, QT.F16):
            got = np.asarray(t.data, dtype=np.float32).reshape(-1)
        else:
            got = gguf.quants.dequantize(np.asarray(t.data), qt).reshape(-1)
        ref = gguf.quants.dequantize(gguf.quants.quantize(x.reshape(3, 32), qt), qt).reshape(-1) \
            if qt not in (QT.F32, QT.F16) else x.astype(np.float16 if qt == QT.F16 else np.float32).astype(np.float32)
        if not np.array_equal(got, ref):
            fail(f"{name}: values differ from gguf-py's own conversion")
        if qt in (QT.Q8_0, QT.Q4_0):
            mine = np.asarray(t.data).reshape(-1).tobytes()
            theirs = gguf.quants.quantize(x.reshape(3, 32), qt).reshape(-1).tobytes()
            if mine != theirs:
                fail(f"{name}: quantized bytes differ from gguf.quants.quantize")
    t = names.get("t.4d")
    if t is None or list(t.shape) != [2, 3, 1, 2]:
        fail(f"t.4d: shape {None if t is None else list(t.shape)}, expected [2, 3, 1, 2]")
    print(f"OK: {path}: {len(r.fields)} fields, {len(r.tensors)} tensors read by gguf-py")


def check_paw(path):
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for n in ("adapter.gguf", "prompt_template.txt", "meta.json", "adapter_config.json"):
            if n not in names:
                fail(f"missing member {n}")
        if z.testzip() is not None:
            fail("bad CRC")
        meta = json.loads(z.read("meta.json"))
        peft = json.loads(z.read("adapter_config.json"))
        tmpl = z.read("prompt_template.txt").decode("utf-8")
        adapter = z.read("adapter.gguf")
    if tmpl.count("{INPUT_PLACEHOLDER}") != 1:
        fail("template must hold one placeholder")
    for k in ("interpreter", "spec", "lora_rank", "lora_alpha", "prefix_steps", "program_id", "created_at"):
        if k not in meta:
            fail(f"meta.json lacks {k}")
    if peft.get("peft_type") != "LORA" or peft.get("r") != meta["lora_rank"] or sorted(peft["target_modules"]) != MODULES:
        fail(f"adapter_config.json: {peft}")
    import hashlib
    if hashlib.sha256(adapter + tmpl.encode()).hexdigest() != meta["program_id"]:
        fail("program_id is not sha256(adapter.gguf + prompt_template.txt)")
    with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
        f.write(adapter)
        f.flush()
        r = gguf.GGUFReader(f.name)
        for k, v in (("general.type", "adapter"), ("adapter.type", "lora"), ("general.architecture", "qwen3")):
            if field_value(r, k) != v:
                fail(f"{k} = {field_value(r, k)!r}, expected {v!r}")
        alpha = field_value(r, "adapter.lora.alpha")
        if r.get_field("adapter.lora.alpha").types != [VT.FLOAT32] or alpha != meta["lora_alpha"]:
            fail(f"adapter.lora.alpha {alpha}")
        ic = meta["interpreter_config"]
        s = dict(L=ic["num_hidden_layers"], C=ic["hidden_size"], I=ic["intermediate_size"],
                 NH=ic["num_attention_heads"], NKV=ic["num_key_value_heads"], HD=ic["head_dim"])
        R = meta["lora_rank"]
        tensors = {t.name: t for t in r.tensors}
        if len(tensors) != s["L"] * 7 * 2:
            fail(f"{len(tensors)} tensors, expected {s['L'] * 14}")
        for l in range(s["L"]):
            for mi, m in enumerate(MODULES):
                d_in, d_out = module_dims(m, s)
                for suffix, ne in (("lora_a", [d_in, R]), ("lora_b", [R, d_out])):
                    t = tensors[f"blk.{l}.{GGUF_MODULE[m]}.weight.{suffix}"]
                    if list(t.shape) != ne:
                        fail(f"{t.name}: ne {list(t.shape)}, expected {ne}")
                    rows = ne[1]
                    data = np.asarray(t.data)
                    if t.tensor_type in (QT.F32, QT.F16):
                        vals = data.astype(np.float32).reshape(rows, ne[0])
                    else:
                        vals = gguf.quants.dequantize(data, t.tensor_type).reshape(rows, ne[0])
                    # tests/test_program.c fills A[m][l][i][j] and B[m][l][i][j] with this formula
                    i = np.arange(rows)[:, None]
                    j = np.arange(ne[0])[None, :]
                    sign = 1.0 if suffix == "lora_a" else -1.0
                    ref = sign * 0.05 * np.sin(0.37 * i + 0.11 * j + 1.3 * mi + 2.1 * l)
                    err = np.max(np.abs(vals - ref))
                    if err > 0.05 / 7 + 1e-3:
                        fail(f"{t.name} ({t.tensor_type.name}): max error {err} against the formula")
    print(f"OK: {path}: {meta['adapter_dtype']} adapter with {len(tensors)} tensors read by gguf-py")


def check_llama(path, llama_src):
    import shutil
    import subprocess
    import torch
    import transformers
    import llama_cpp

    tok_dir = os.path.join(HERE, "..", "..", "shared", "data", "qwen3-tokenizer")
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("meta.json"))
        adapter = z.read("adapter.gguf")
    ic = meta["interpreter_config"]
    work = tempfile.mkdtemp(prefix="paw_llama_")
    try:
        cfg = transformers.Qwen3Config(
            vocab_size=151936, hidden_size=ic["hidden_size"], intermediate_size=ic["intermediate_size"],
            num_hidden_layers=ic["num_hidden_layers"], num_attention_heads=ic["num_attention_heads"],
            num_key_value_heads=ic["num_key_value_heads"], head_dim=ic["head_dim"], max_position_embeddings=256,
            tie_word_embeddings=True, torch_dtype="float32")
        torch.manual_seed(0)
        model = transformers.Qwen3ForCausalLM(cfg).eval()
        hf_dir = os.path.join(work, "hf")
        model.save_pretrained(hf_dir)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tok_dir, f), hf_dir)
        base = os.path.join(work, "base.gguf")
        env = dict(os.environ, PYTHONPATH=os.path.join(llama_src, "gguf-py"))
        res = subprocess.run([sys.executable, os.path.join(llama_src, "convert_hf_to_gguf.py"), hf_dir, "--outtype",
                              "f32", "--outfile", base], env=env, capture_output=True, text=True)
        if res.returncode:
            fail("convert_hf_to_gguf.py failed:\n" + res.stderr[-3000:])
        ad_path = os.path.join(work, "adapter.gguf")
        with open(ad_path, "wb") as f:
            f.write(adapter)

        ids = [9707, 11, 1879, 0, 42, 1000, 77, 5, 300, 12]
        llm = llama_cpp.Llama(model_path=base, n_ctx=64, logits_all=True, verbose=False, n_threads=2)

        def llama_logits():
            llm.reset()
            llm.eval(ids)
            return np.array(llm.scores[:len(ids)], dtype=np.float64)

        plain = llama_logits()
        ad = llama_cpp.llama_adapter_lora_init(llm.model, ad_path.encode())
        if not ad:
            fail("llama_adapter_lora_init refused the adapter")
        if hasattr(llama_cpp, "llama_set_adapters_lora"):
            import ctypes
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(ad)
            rc = llama_cpp.llama_set_adapters_lora(llm.ctx, arr, 1, (ctypes.c_float * 1)(1.0))
        else:
            rc = llama_cpp.llama_set_adapter_lora(llm.ctx, ad, 1.0)
        if rc not in (None, 0):
            fail(f"setting the adapter failed: {rc}")
        adapted = llama_logits()

        # transformers with the dequantized adapter merged in
        r = gguf.GGUFReader(ad_path)
        alpha = float(r.get_field("adapter.lora.alpha").contents())
        tensors = {t.name: t for t in r.tensors}

        def values(t):
            d = np.asarray(t.data)
            rows, cols = int(t.shape[1]), int(t.shape[0])
            if t.tensor_type in (QT.F32, QT.F16):
                return d.astype(np.float32).reshape(rows, cols)
            return gguf.quants.dequantize(d, t.tensor_type).reshape(rows, cols)

        hf_mod = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
                  "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
        with torch.no_grad():
            ii = torch.tensor([ids])
            hf_plain = model(ii).logits[0].double().numpy()
            for l, layer in enumerate(model.model.layers):
                for m in MODULES:
                    A = values(tensors[f"blk.{l}.{GGUF_MODULE[m]}.weight.lora_a"])
                    B = values(tensors[f"blk.{l}.{GGUF_MODULE[m]}.weight.lora_b"])
                    lin = getattr(getattr(layer, hf_mod[m]), m)
                    lin.weight += torch.from_numpy(alpha / A.shape[0] * (B @ A))
            hf_adapted = model(ii).logits[0].double().numpy()
        effect = np.max(np.abs(hf_adapted - hf_plain))
        e0 = np.max(np.abs(plain - hf_plain))
        e1 = np.max(np.abs(adapted - hf_adapted))
        print(f"max |logit| change from the adapter {effect:.4g}; llama.cpp vs transformers: "
              f"base {e0:.3g}, with adapter {e1:.3g}")
        if not (effect > 20 * e1 and e1 < 1e-2):
            fail("llama.cpp's adapted logits do not match the merged transformers model")
        print(f"OK: {path}: llama.cpp applies the adapter as y = W x + (alpha / r) B (A x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-gguf")
    ap.add_argument("--check-paw")
    ap.add_argument("--check-llama")
    ap.add_argument("--llama-src")
    a = ap.parse_args()
    if a.check_gguf:
        check_gguf(a.check_gguf)
    elif a.check_paw:
        check_paw(a.check_paw)
    elif a.check_llama:
        check_llama(a.check_llama, a.llama_src)
    else:
        os.makedirs(OUT, exist_ok=True)
        write_reference()
        write_published()
        print("wrote", OUT)


if __name__ == "__main__":
    main()
