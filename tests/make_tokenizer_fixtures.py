#!/usr/bin/env python3
"""Reference fixtures for the Qwen3 tokenizer and the prompt templates.

Builds a varied corpus deterministically from a seed, encodes it with Hugging Face `tokenizers`
(the reference of record) in two modes, renders prompt templates with `transformers`, and writes
everything under tests/fixtures/tokenizer/:

  corpus.bin.zst   "PAWTOKC1", u32 count, then per record: u32 len + raw bytes (may be invalid UTF-8)
  ids_special.bin.zst / ids_plain.bin.zst
                   "PAWTOKI1", u32 count, then per record: u32 n + n x u32 ids
  decoded.bin.zst  "PAWTOKD1", u32 count, then per record and mode (special, plain): u32 len + bytes,
                   or u32 0xFFFFFFFF when the decoded ids equal the raw record
  templates.json   rendered chat templates for a handful of inputs
  mini_pairs.json / mini_strings.json
                   a small tokenizer (the 256 byte tokens, the first 1000 merges of the real file and
                   its added tokens) with merges written as [a, b] pairs and as "a b" strings
  mini_ids.json    HF ids of the first 300 corpus records under the mini tokenizer (special mode)

Modes: "special" is `Tokenizer.encode` of the real tokenizer.json (added tokens recognised in the
text); "plain" is the same file with its added tokens removed, i.e. normalizer + pre-tokenizer + BPE
only, so that added-token strings are ordinary text. Records holding invalid UTF-8 are given to HF as
`bytes.decode("utf-8", "replace")`, which is what the C encoder does with such bytes.

Usage: python3 tests/make_tokenizer_fixtures.py [--tokenizer-dir DIR] [--seed N] [--count N]
Needs: tokenizers, transformers (pip) and the zstd command.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "tokenizer")

WORDS = ("the of and to in is was for on that with as by at from it an be this are or have not but had "
         "his they which one you were her all she there would their we him been has when who will more no "
         "if out so said what up its about into than them can only other new some could time these two may "
         "then do first any my now such like our over man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people how too "
         "little state good very make world still own see men work long get here between both life being "
         "under never day same another know while last might us great old year off come since against go "
         "came right used take three program weights compiler interpreter tokenizer function fuzzy output "
         "input triage classify repair ticket log error warning internationalization antidisestablishment "
         "don't can't won't it's I'm you're we've they'll she'd HE'S DON'T WE'RE Isn't o'clock rock'n'roll").split()

CJK_PHRASES = ["我们今天去公园散步。", "这个函数把日志分类为错误或警告", "東京都は日本の首都です。",
               "한국어 문장을 토큰화합니다.", "机器学习模型的参数", "ひらがなとカタカナ、漢字。",
               "程序即权重：编译器与解释器", "안녕하세요, 세계!", "「引用」と『二重引用』", "（全角括号）１２３４５"]
OTHER_SCRIPTS = ["Привет, мир! Как дела?", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם",
                 "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Ça va? Où est l'hôtel?",
                 "Grüße aus Köln, Straße", "Ελληνικά: άλφα βήτα", "ქართული ენა", "Հայերեն",
                 "español: ¿Qué tal? ¡Hola!", "Ærø Øresund Åland", "İstanbul ıi Iİ", "ǅungla ǈ ǋ"]
EMOJI = ["😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "🇯🇵", "❤️", "🏳️‍🌈", "🤖", "✨", "🔥🔥🔥", "☕", "🧑🏿‍💻", "1️⃣", "©️", "🫠"]
# Pairs of (decomposed, precomposed) or sequences NFC changes: combining marks, Hangul jamo, reordering.
COMBINING = ["e\u0301", "a\u0308", "o\u0302\u0301", "A\u030a", "n\u0303", "u\u0308\u0304", "c\u0327",
             "\u1100\u1161\u11a8", "\u1112\u1161\u11ab", "a\u0323\u0302", "a\u0302\u0323", "q\u0307\u0323",
             "\u212b", "\u2126", "\u0344", "\u0958", "\u0915\u093c", "=\u0338", "<\u0338", ">\u0338",
             "\u00c5", "\u00e9", "e\u0301\u0301", "\u0301start", "i\u0307", "\u1e9b\u0323", "\u0f73", "\u30ab\u3099",
             "\uac00\u11a8", "Z\u0335\u0321", "\u05d0\u05b7", "\u0627\u0653"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
            "<|fim_suffix|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
            "<think>", "</think>", "<|im_", "<|im_end", "<think", "think>", "<|", "|>", "<<|im_end|>>",
            "<|IM_END|>", "< think>"]
UNI_SPACES = ["\u00a0", "\u2003", "\u3000", "\u2009", "\u200b", "\u2028", "\u2029", "\u0085", "\u180e",
              "\u202f", "\u205f", "\u1680", "\ufeff", "\u000b", "\u000c", "\u001c", "\u001f"]
LONG_S = ["ſ", "'ſ", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "\u2019s", "'\u212a"]


def prose(r):
    n = r.randint(3, 40)
    out = []
    for i in range(n):
        w = r.choice(WORDS)
        if i == 0 or r.random() < 0.05:
            w = w.capitalize()
        if r.random() < 0.03:
            w = w.upper()
        out.append(w)
        if r.random() < 0.1:
            out[-1] += r.choice([",", ";", ":", " -", "...", "!", "?", ")", '"'])
    s = " ".join(out) + r.choice([".", "!", "?", "", "...", " :)"])
    if r.random() < 0.2:
        s = '"' + s + '"'
    return s


def code(r):
    name = r.choice(["foo", "parse_line", "tokenize", "main", "x", "__init__", "getValue", "HTTPServer"])
    snippets = [
        f"def {name}(self, a, b=None):\n    if a is None:\n        return []\n    return [x * 2 for x in a]  # doubles\n",
        f"int {name}(int argc, char **argv) {{\n\tfor (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n\treturn 0;\n}}",
        f"const {name} = async (req, res) => {{ await db.query(`SELECT * FROM t WHERE id=${{req.id}}`); }};",
        f"    {name}.append({r.randint(0, 99999)})\n        \n\t\t  // trailing  \n",
        "#include <stdio.h>\r\n#define MAX(a,b) ((a)>(b)?(a):(b))\r\n",
        f"if (x != {r.randint(0, 9)} && y >= 0x{r.randint(0, 2**32):08X}) {{ z <<= 2; }} else {{ z >>= 1; }}",
        "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }",
        "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
        "<div class=\"row\"><span id='x'>&amp; &lt;tag&gt;</span></div>",
        "$ ls -la /usr/local/bin | grep -E '^-rwx' > out.txt 2>&1",
        "    " * r.randint(1, 6) + "return self._cache[key]",
    ]
    return r.choice(snippets)


def json_value(r, depth=0):
    k = r.random()
    if depth > 2 or k < 0.3:
        return r.choice([r.randint(-10**6, 10**6), round(r.uniform(-1e3, 1e3), r.randint(0, 6)), True, None,
                         r.choice(WORDS), "caf\u00e9 \u00fcber", "\u6c49\u5b57", "line\nbreak"])
    if k < 0.6:
        return [json_value(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {r.choice(WORDS) + str(i): json_value(r, depth + 1) for i in range(r.randint(0, 4))}


def jsonish(r):
    v = json_value(r)
    s = json.dumps(v, ensure_ascii=r.random() < 0.3, indent=r.choice([None, None, 2, "\t"]))
    if r.random() < 0.3:  # broken JSON, as in repair tasks
        s = s[: r.randint(0, len(s))] + r.choice(["", ",", "}", "'", "\"unterminated"])
    return s


def log_line(r):
    lvl = r.choice(["INFO", "WARN", "ERROR", "DEBUG", "FATAL", "info", "warn"])
    ts = f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z"
    ip = ".".join(str(r.randint(0, 255)) for _ in range(4))
    msgs = [f"connection from {ip}:{r.randint(1, 65535)} refused",
            f"GET /api/v{r.randint(1, 3)}/users/{r.randint(1, 10**9)}?q=a%20b&x=1 HTTP/1.1\" 200 {r.randint(0, 99999)}",
            f"disk /dev/sda{r.randint(1, 9)} at {r.randint(0, 100)}% capacity",
            f"worker[{r.randint(1, 64)}] exited with code {r.randint(-1, 255)} after {r.uniform(0, 1e4):.3f}s",
            f"user=\"{r.choice(WORDS)}\" action=login status=ok latency_ms={r.randint(0, 5000)}"]
    return f"{ts} [{lvl}] {r.choice(['app', 'kernel', 'sshd', 'nginx'])}: {r.choice(msgs)}"


def numbers(r):
    parts = []
    for _ in range(r.randint(1, 8)):
        k = r.randint(0, 7)
        if k == 0:
            parts.append(str(r.randint(0, 10**r.randint(1, 40))))
        elif k == 1:
            parts.append(f"{r.uniform(-1e6, 1e6):,.2f}")
        elif k == 2:
            parts.append(f"{r.uniform(0, 1):.{r.randint(1, 20)}f}")
        elif k == 3:
            parts.append(f"{r.random():e}")
        elif k == 4:
            parts.append("".join(r.choice("0123456789") for _ in range(r.randint(50, 300))))
        elif k == 5:
            parts.append(r.choice(["\u0661\u0662\u0663", "\u0967\u0968", "\uff11\uff12\uff13", "\u00bd\u00b2\u2163", "\u2460\u2461"]))
        elif k == 6:
            parts.append(f"+1 ({r.randint(100, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}")
        else:
            parts.append(f"v{r.randint(0, 9)}.{r.randint(0, 99)}.{r.randint(0, 999)}-rc{r.randint(1, 5)}")
    return r.choice([" ", ", ", "\t", "", "x"]).join(parts)


def whitespace(r):
    pieces = []
    for _ in range(r.randint(1, 10)):
        k = r.randint(0, 9)
        if k == 0:
            pieces.append(" " * r.randint(1, 200))
        elif k == 1:
            pieces.append("\t" * r.randint(1, 20))
        elif k == 2:
            pieces.append("\r\n" * r.randint(1, 5))
        elif k == 3:
            pieces.append("\n" * r.randint(1, 6))
        elif k == 4:
            pieces.append("".join(r.choice([" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000"]) for _ in range(r.randint(1, 30))))
        elif k == 5:
            pieces.append(r.choice(UNI_SPACES) * r.randint(1, 4))
        elif k == 6:
            pieces.append(" " * r.randint(0, 3) + r.choice(WORDS) + " " * r.randint(0, 3))
        elif k == 7:
            pieces.append("\r")
        elif k == 8:
            pieces.append(r.choice(["!!", "...", "--", ";"]) + "\n" * r.randint(0, 3))
        else:
            pieces.append(str(r.randint(0, 999)))
    return "".join(pieces)


def unicode_mix(r):
    pieces = []
    for _ in range(r.randint(1, 8)):
        k = r.randint(0, 6)
        if k == 0:
            pieces.append(r.choice(CJK_PHRASES))
        elif k == 1:
            pieces.append(r.choice(OTHER_SCRIPTS))
        elif k == 2:
            pieces.append("".join(r.choice(EMOJI) for _ in range(r.randint(1, 5))))
        elif k == 3:
            pieces.append(r.choice(WORDS) + "".join(r.choice(COMBINING) for _ in range(r.randint(1, 3))))
        elif k == 4:
            pieces.append("".join(chr(r.choice([r.randint(0x4e00, 0x9fa5), r.randint(0xac00, 0xd7a3),
                                                r.randint(0x3041, 0x3096), r.randint(0x0400, 0x04ff),
                                                r.randint(0x00c0, 0x024f), r.randint(0x0370, 0x03ff)]))
                                  for _ in range(r.randint(1, 20))))
        elif k == 5:
            pieces.append(r.choice(LONG_S) + r.choice(WORDS))
        else:
            pieces.append(unicodedata.normalize(r.choice(["NFD", "NFKD", "NFC"]), r.choice(OTHER_SCRIPTS)))
        pieces.append(r.choice([" ", "", "\n", ", ", "  "]))
    return "".join(pieces)


def with_specials(r):
    pieces = []
    for _ in range(r.randint(1, 8)):
        k = r.randint(0, 4)
        if k == 0:
            pieces.append(r.choice(SPECIALS))
        elif k == 1:
            pieces.append(r.choice(WORDS))
        elif k == 2:
            pieces.append(r.choice([" ", "\n", "  ", "\t", ""]))
        elif k == 3:
            pieces.append(r.choice(SPECIALS) + r.choice(["\u0338", "\u0301", "e\u0301", "!", "\n\n"]))
        else:
            pieces.append("<|im_start|>user\n" + prose(r) + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    return "".join(pieces)


def long_word(r):
    k = r.randint(0, 5)
    n = r.randint(100, 3000)
    if k == 0:
        return r.choice("abcxyz") * n
    if k == 1:
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/") for _ in range(n))
    if k == 2:
        return "https://example.com/" + "/".join(r.choice(WORDS) for _ in range(n // 20)) + "?id=" + str(r.randint(0, 10**12))
    if k == 3:
        return r.choice(["\u00e9", "\u4e2d", "\u0436"]) * (n // 4)
    if k == 4:
        return "".join(r.choice(WORDS) for _ in range(n // 10))
    return r.choice(["-", "=", "*", "#", "."]) * n


def invalid_utf8(r):
    good = prose(r).encode()
    bad = [b"\xff", b"\xfe", b"\xc0\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x9f\x98",
           b"\xf4\x90\x80\x80", b"\xf5\x80", b"\x80", b"\xbf\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\x80", b"\xc2",
           b"\xe2\x28\xa1", b"\xf8\x88\x80\x80\x80", bytes([r.randint(0x80, 0xff)])]
    out = bytearray()
    for piece in good.split(b" "):
        out += piece
        if r.random() < 0.3:
            out += r.choice(bad)
        out += b" "
    if r.random() < 0.3:
        out += bytes(r.randint(0, 255) for _ in range(r.randint(1, 40)))
    return bytes(out)


def random_codepoints(r):
    # Codepoints assigned long ago (Unicode <= 9), so that character-class tables of any recent
    # library agree; skips surrogates.
    ranges = [(0x20, 0x7e), (0xa0, 0x2ff), (0x300, 0x36f), (0x370, 0x52f), (0x1e00, 0x1fff), (0x2000, 0x206f),
              (0x2100, 0x27bf), (0x3000, 0x30ff), (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0xff00, 0xffef),
              (0x1f300, 0x1f5ff), (0x0600, 0x06ff), (0x0900, 0x097f), (0x1d400, 0x1d7ff)]
    out = []
    for _ in range(r.randint(1, 60)):
        lo, hi = r.choice(ranges)
        cp = r.randint(lo, hi)
        if unicodedata.category(chr(cp)) in ("Cn", "Co", "Cs"):
            continue
        out.append(chr(cp))
    return "".join(out)


GENERATORS = [(prose, 20), (code, 8), (jsonish, 8), (log_line, 8), (numbers, 8), (whitespace, 10),
              (unicode_mix, 12), (with_specials, 8), (long_word, 2), (invalid_utf8, 4), (random_codepoints, 6)]


def make_corpus(seed, count):
    r = random.Random(seed)
    fns = [g for g, w in GENERATORS for _ in range(w)]
    fixed = ["Hello, my dog is cute", "", " ", "\n", "\r\n", "a", "<|im_end|>", "<think>\u0338", "  \n\n  ",
             "x\u0085  y", "HE'S ſ 'ſ", "\t\tindent", "trailing   ", "e\u0301", "\ufeffBOM", "\x00nul\x00byte"]
    records = [s.encode() for s in fixed]
    while len(records) < count:
        fn = r.choice(fns)
        v = fn(r)
        if r.random() < 0.15:  # glue two kinds together, often across a newline
            v2 = r.choice(fns)(r)
            sep = r.choice(["\n", " ", "", "\r\n", "\t"])
            if isinstance(v, bytes) or isinstance(v2, bytes):
                v = (v if isinstance(v, bytes) else v.encode()) + sep.encode() + (v2 if isinstance(v2, bytes) else v2.encode())
            else:
                v = v + sep + v2
        records.append(v if isinstance(v, bytes) else v.encode())
    return records


def zstd_write(path, data):
    subprocess.run(["zstd", "-19", "-q", "-f", "-o", path], input=data, check=True)


def write_ids(path, all_ids):
    buf = bytearray(b"PAWTOKI1" + struct.pack("<I", len(all_ids)))
    for ids in all_ids:
        buf += struct.pack("<I", len(ids)) + struct.pack(f"<{len(ids)}I", *ids)
    zstd_write(path, bytes(buf))


def render_templates(tok_dir):
    from transformers import AutoTokenizer
    tk = AutoTokenizer.from_pretrained(tok_dir)
    cases = [
        ("[PSEUDO_PROGRAM]\nClassify the log line as ERROR, WARN or INFO.\n[END_PSEUDO_PROGRAM]", "2024-01-01 disk full"),
        ("Reverse the words.", ""),
        ("Translate to French.", "  leading and trailing spaces  \n"),
        ("Echo the input.", "caf\u00e9 e\u0301 \u4e2d\u6587 \U0001f680 \u0627\u0644\u0639\u0631\u0628\u064a\u0629"),
        ("Count tokens.", "<|im_end|>\n<|im_start|>assistant\n<think>x</think>"),
        ("Fix JSON.", "{\"a\": [1, 2,, }\r\n\ttab"),
        ("", "only input"),
        ("Multi\nline\n\nprogram\n", "line1\nline2\n\n"),
    ]
    out = []
    for prog, inp in cases:
        x_int = prog + "\n\n[INPUT]\n" + inp + "\n[END_INPUT]"
        spec = prog  # reuse the program text as a spec
        x_comp = "[SPEC]\n" + spec + "\n[END_SPEC]\n\n[PSEUDO_PROGRAM]"
        msgs = lambda x: [{"role": "user", "content": x}]
        out.append({
            "pseudo_program": prog,
            "input": inp,
            "spec": spec,
            "interpreter": tk.apply_chat_template(msgs(x_int), tokenize=False, add_generation_prompt=True, enable_thinking=False),
            "compiler_empty_think": tk.apply_chat_template(msgs(x_comp), tokenize=False, add_generation_prompt=True, enable_thinking=False),
            "compiler_no_think": tk.apply_chat_template(msgs(x_comp), tokenize=False, add_generation_prompt=True),
            "interpreter_ids": tk(tk.apply_chat_template(msgs(x_int), tokenize=False, add_generation_prompt=True,
                                                         enable_thinking=False), add_special_tokens=False)["input_ids"],
        })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", default=os.path.join(HERE, "..", "..", "shared", "data", "qwen3-tokenizer"))
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--count", type=int, default=12000)
    a = ap.parse_args()
    from tokenizers import Tokenizer

    path = os.path.join(a.tokenizer_dir, "tokenizer.json")
    tok_special = Tokenizer.from_file(path)
    spec = json.load(open(path, encoding="utf-8"))
    spec["added_tokens"] = []
    tok_plain = Tokenizer.from_str(json.dumps(spec))

    records = make_corpus(a.seed, a.count)
    texts = [b.decode("utf-8", "replace") for b in records]
    enc_s = [e.ids for e in tok_special.encode_batch(texts, add_special_tokens=False)]
    enc_p = [e.ids for e in tok_plain.encode_batch(texts, add_special_tokens=False)]
    assert enc_s[0] == [9707, 11, 847, 5562, 374, 18838], enc_s[0]

    os.makedirs(OUT, exist_ok=True)
    buf = bytearray(b"PAWTOKC1" + struct.pack("<I", len(records)))
    for b in records:
        buf += struct.pack("<I", len(b)) + b
    zstd_write(os.path.join(OUT, "corpus.bin.zst"), bytes(buf))
    write_ids(os.path.join(OUT, "ids_special.bin.zst"), enc_s)
    write_ids(os.path.join(OUT, "ids_plain.bin.zst"), enc_p)

    # Expected bytes of decode(ids): the decoder maps each token back to its bytes.
    vocab_bytes = {}
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    for t, i in tok_plain.get_vocab().items():
        vocab_bytes[i] = bytes(byte_decoder[c] for c in t)
    added = {i: t.content.encode() for i, t in tok_special.get_added_tokens_decoder().items()}
    buf = bytearray(b"PAWTOKD1" + struct.pack("<I", len(records)))
    n_diff = 0
    for rec, s_ids, p_ids in zip(records, enc_s, enc_p):
        for ids in (s_ids, p_ids):
            dec = b"".join(added[i] if i in added else vocab_bytes[i] for i in ids)
            if dec == rec:
                buf += struct.pack("<I", 0xFFFFFFFF)
            else:
                n_diff += 1
                buf += struct.pack("<I", len(dec)) + dec
    zstd_write(os.path.join(OUT, "decoded.bin.zst"), bytes(buf))

    write_mini(path, texts[:300])

    with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as f:
        json.dump(render_templates(a.tokenizer_dir), f, ensure_ascii=False, indent=1)
        f.write("\n")
    nbytes = sum(len(b) for b in records)
    print(f"{len(records)} records, {nbytes} bytes, {sum(map(len, enc_s))} / {sum(map(len, enc_p))} tokens "
          f"(special / plain), {n_diff} decodes differ from the raw text")


def write_mini(path, texts):
    from tokenizers import Tokenizer
    spec = json.load(open(path, encoding="utf-8"))
    merges = spec["model"]["merges"][:1000]
    names = list(bytes_to_unicode().values())
    for a, b in merges:
        if a + b not in names:
            names.append(a + b)
    spec["model"]["vocab"] = {n: i for i, n in enumerate(names)}
    spec["model"]["merges"] = merges
    spec["added_tokens"] = [dict(t, id=len(names) + k) for k, t in enumerate(spec["added_tokens"])]
    with open(os.path.join(OUT, "mini_pairs.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    ids = [e.ids for e in Tokenizer.from_str(json.dumps(spec)).encode_batch(texts, add_special_tokens=False)]
    spec["model"]["merges"] = [a + " " + b for a, b in merges]
    with open(os.path.join(OUT, "mini_strings.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    ids2 = [e.ids for e in Tokenizer.from_str(json.dumps(spec)).encode_batch(texts, add_special_tokens=False)]
    assert ids == ids2
    with open(os.path.join(OUT, "mini_ids.json"), "w") as f:
        json.dump(ids, f, separators=(",", ":"))
        f.write("\n")


def bytes_to_unicode():
    """The GPT-2 byte <-> printable character table used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


if __name__ == "__main__":
    main()
