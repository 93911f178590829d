"""The CPU baseline of `paw bench cpu`: the same measurements with PyTorch + HF transformers.

Random weights of the real Qwen3-0.6B shape, B=1, T=128, the same protocol as `paw bench cpu`
(the best of --iters timed iterations after one warm-up, all cores the process may use):
  - forward with the loss over all positions (no autograd graph),
  - forward + backward, every weight trainable (gradients freed by zero_grad, torch's default,
    and kept and zeroed in place),
  - forward + backward, frozen weights: activation gradients only (the gradient is taken
    with respect to the input embeddings, so the backward runs through every layer),
  - greedy decoding of --decode tokens after a T-token prompt with a KV cache, one sequence
    and --rows sequences together, with fp32 weights and with bf16 weights (torch's own bf16
    kernels), seconds per step excluding the prefill.
Prints one table. Needs `pip install torch transformers`; not a dependency of paw itself.
Run it alternately with `paw bench cpu --decode 64 --lora-rank 0` for the ratios in the README.
"""
import argparse, inspect, os, time
import torch
from transformers import DynamicCache, Qwen3Config, Qwen3ForCausalLM


def config():
    c = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                    num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                    max_position_embeddings=40960, rms_norm_eps=1e-6, initializer_range=0.02)
    c._attn_implementation = "sdpa"
    return c


def best_seconds(fn, iters):
    best = float("inf")
    for it in range(iters + 1):  # iteration 0 warms up
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if it > 0:
            best = min(best, dt)
    return best


def decode_step_seconds(m, prompt, n, iters):
    """Greedy decoding of n tokens after the prompt (rows x T): the best seconds per step."""
    # transformers renamed past_key_values to cache (5.x); take whichever this version has.
    key = "cache" if "cache" in inspect.signature(m.forward).parameters else "past_key_values"
    best = float("inf")
    with torch.no_grad():
        for it in range(iters + 1):
            cache = DynamicCache()
            out = m(input_ids=prompt, **{key: cache}, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            for _ in range(n):
                out = m(input_ids=nxt, **{key: cache}, use_cache=True)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            dt = (time.perf_counter() - t0) / n
            if it > 0:
                best = min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, default=128)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    m = Qwen3ForCausalLM(config()).float()
    T = a.T
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, 151643, (1, T + a.rows), generator=g)
    x, y = ids[:, :T], ids[:, 1:T + 1]
    rows = []

    def forward():
        with torch.no_grad():
            m(input_ids=x, labels=y)
    rows.append(("forward", best_seconds(forward, a.iters)))

    def train():
        m.zero_grad(set_to_none=True)
        m(input_ids=x, labels=y).loss.backward()
    rows.append(("forward + backward (trainable)", best_seconds(train, a.iters)))

    def train_kept():  # gradients zeroed in place instead of freed and allocated again
        m.zero_grad(set_to_none=False)
        m(input_ids=x, labels=y).loss.backward()
    rows.append(("forward + backward (trainable, gradients kept)", best_seconds(train_kept, a.iters)))
    m.zero_grad(set_to_none=True)

    m.requires_grad_(False)
    def frozen():
        e = m.model.embed_tokens(x).detach().requires_grad_()
        m(inputs_embeds=e, labels=y).loss.backward()
    rows.append(("forward + backward (frozen)", best_seconds(frozen, a.iters)))

    prompts = {1: ids[:, :T], a.rows: torch.stack([ids[0, b:b + T] for b in range(a.rows)])}
    dec = []
    for dtype in (torch.float32, torch.bfloat16):
        m.to(dtype)
        for r in (1, a.rows):
            dec.append((str(dtype).split(".")[1], r, decode_step_seconds(m, prompts[r], a.decode, a.iters)))

    print(f"PyTorch {torch.__version__}, transformers (sdpa), Qwen3-0.6B shape, B=1 T={T}, fp32, "
          f"{torch.get_num_threads()} threads")
    print("| pass | ms/step | tokens/s |\n|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {1e3 * s:.0f} | {T / s:.1f} |")
    print(f"\ngreedy decoding after a {T}-token prompt, {a.decode} new tokens")
    print("| weights | rows | ms/step | tokens/s |\n|---|---|---|---|")
    for dtype, r, s in dec:
        print(f"| {dtype} | {r} | {1e3 * s:.1f} | {r / s:.1f} |")


if __name__ == "__main__":
    main()
