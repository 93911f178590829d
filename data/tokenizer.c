// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json, following the pipeline of
// HF `tokenizers`: (added tokens split out of the raw text) -> NFC -> split regex (Isolated) ->
// GPT-2 byte mapping -> BPE by merge rank. Vocabulary strings are turned into raw bytes at load
// time, so encoding works on bytes and never builds the mapped strings.
// Character classes come from PCRE2 and NFC from utf8proc. Against HF they agree on every
// assigned codepoint of Unicode 14 but U+1DF6, whose NFC ordering differs in HF's older tables.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "common/fileio.h"

#ifndef PAW_DEFAULT_TOKENIZER
#define PAW_DEFAULT_TOKENIZER "tokenizer.json"
#endif

typedef struct {
    int32_t id;
    uint32_t len;
    char *text;  // raw bytes (added tokens are matched on the un-normalized text)
} AddedToken;

typedef struct {
    uint64_t key;  // left id << 32 | right id; 0 marks an empty slot (pair 0,0 is stored +1)
    int32_t rank, merged;
} MergeSlot;

struct PawTokenizer {
    int32_t vocab_size;  // largest id + 1
    char **names;        // per id: the tokenizer.json string, NULL for an unused id
    char **bytes;        // per id: the raw bytes it stands for
    uint32_t *nbytes;
    int32_t byte_id[256];  // the id of each single-byte token
    // name -> id, open addressing over names[]
    int32_t *name_slots;
    size_t name_mask;
    MergeSlot *merges;
    size_t merge_mask;
    int32_t nmerges;
    AddedToken *added;  // longest first, so the first match at a position is the longest
    int nadded;
    uint8_t added_first[256];  // which bytes can start an added token
    int nfc;                   // normalizer is NFC (else none)
    pcre2_code *split_re;
};

void paw_ids_push(PawIds *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
    }
    v->ids[v->n++] = id;
}

void paw_ids_free(PawIds *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

const char *paw_tokenizer_default_path(void) {
    const char *p = getenv("PAW_TOKENIZER");
    return p && *p ? p : PAW_DEFAULT_TOKENIZER;
}

// ---------------------------------------------------------------------------------------------
// Hash tables

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 29);
}

static size_t table_size_for(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    return cap;
}

static int32_t name_lookup(const PawTokenizer *t, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & t->name_mask;; i = (i + 1) & t->name_mask) {
        int32_t id = t->name_slots[i];
        if (id < 0) return -1;
        const char *name = t->names[id];
        if (strlen(name) == n && memcmp(name, s, n) == 0) return id;
    }
}

// Inserts or overrides (an added token wins over a vocabulary entry of the same name, as in HF).
static void name_insert(PawTokenizer *t, int32_t id) {
    const char *s = t->names[id];
    size_t n = strlen(s);
    for (size_t i = hash_bytes(s, n) & t->name_mask;; i = (i + 1) & t->name_mask) {
        int32_t old = t->name_slots[i];
        if (old < 0 || strcmp(t->names[old], s) == 0) {
            t->name_slots[i] = id;
            return;
        }
    }
}

static const MergeSlot *merge_lookup(const PawTokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (size_t i = hash_pair(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const MergeSlot *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == 0) return NULL;
    }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode table: printable Latin-1 bytes map to themselves, the others to U+0100...

static void byte_unicode_table(uint32_t cp_of_byte[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of_byte[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

// Turns a byte-level token string into its raw bytes; -1 if a character is outside the table.
static int unmap_token(const char *name, const int16_t byte_of_cp[324], char **out, uint32_t *out_len) {
    size_t n = strlen(name);
    char *buf = xmalloc(n + 1);
    uint32_t k = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)name;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t step = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (step <= 0 || cp < 0 || cp >= 324 || byte_of_cp[cp] < 0) {
            free(buf);
            return -1;
        }
        buf[k++] = (char)byte_of_cp[cp];
        i += (size_t)step;
    }
    buf[k] = 0;
    *out = buf;
    *out_len = k;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Loading

void paw_tokenizer_free(PawTokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->vocab_size; i++) {
        free(t->names ? t->names[i] : NULL);
        free(t->bytes ? t->bytes[i] : NULL);
    }
    free(t->names);
    free(t->bytes);
    free(t->nbytes);
    free(t->name_slots);
    free(t->merges);
    for (int i = 0; i < t->nadded; i++) free(t->added[i].text);
    free(t->added);
    if (t->split_re) pcre2_code_free(t->split_re);
    free(t);
}

static const char *json_type_name(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsNull(j)) return "null";
    return "a boolean";
}

static int valid_id(const cJSON *j) {
    return cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble < 16777216.0 &&
           j->valuedouble == (double)(int32_t)j->valuedouble;
}

// Checks the normalizer: NFC, or none at all.
static int load_normalizer(PawTokenizer *t, const cJSON *norm) {
    if (!norm || cJSON_IsNull(norm)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    return paw_error("normalizer: expected NFC or null, found %s",
                     cJSON_IsString(type) ? type->valuestring : json_type_name(type));
}

// HF runs the split regex with Oniguruma, whose \s is the Unicode White_Space property; PCRE2's
// \s (with UCP) also takes U+180E, which left White_Space in Unicode 6.3. So \s and \S are
// spelled out as White_Space before compiling. Returns a new pattern, or NULL + paw_error.
#define WHITE_SPACE_ITEMS "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static char *spell_out_whitespace(const char *pattern) {
    size_t n = strlen(pattern), o = 0;
    char *out = xmalloc(n * (sizeof WHITE_SPACE_ITEMS + 4) + 1);
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            char e = pattern[++i];
            if (e == 's' || e == 'S') {
                if (in_class && e == 'S') {
                    free(out);
                    paw_error("pre_tokenizer: \\S inside a character class is not supported");
                    return NULL;
                }
                o += (size_t)sprintf(out + o, in_class ? "%s" : e == 's' ? "[%s]" : "[^%s]", WHITE_SPACE_ITEMS);
            } else {
                out[o++] = c;
                out[o++] = e;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            out[o++] = c;
            if (i + 1 < n && pattern[i + 1] == '^') out[o++] = pattern[++i];
            if (i + 1 < n && pattern[i + 1] == ']') out[o++] = pattern[++i];  // a leading ] is literal
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pattern[i + 1] == ':') {  // [:alpha:] inside a class
            const char *end = strstr(pattern + i + 2, ":]");
            size_t stop = end ? (size_t)(end - pattern) + 2 : n;
            while (i < stop) out[o++] = pattern[i++];
            i--;
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        out[o++] = c;
    }
    out[o] = 0;
    return out;
}

// The pre-tokenizer this code implements: Sequence[Split(Regex, Isolated), ByteLevel(no regex)].
static int load_pre_tokenizer(PawTokenizer *t, const cJSON *pre) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "Sequence") != 0)
        return paw_error("pre_tokenizer: expected a Sequence of Split and ByteLevel, found %s",
                         cJSON_IsString(type) ? type->valuestring : json_type_name(pre));
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const char *pattern = NULL;
    int byte_level = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, list) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(p, "type");
        const char *name = cJSON_IsString(pt) ? pt->valuestring : "";
        if (strcmp(name, "Split") == 0 && !pattern && !byte_level) {
            const cJSON *re = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
            const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
            const cJSON *inv = cJSON_GetObjectItemCaseSensitive(p, "invert");
            if (!cJSON_IsString(re)) return paw_error("pre_tokenizer: Split without a Regex pattern");
            if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 || cJSON_IsTrue(inv))
                return paw_error("pre_tokenizer: only Split with behavior Isolated and invert false is supported");
            pattern = re->valuestring;
        } else if (strcmp(name, "ByteLevel") == 0 && !byte_level) {
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space")) ||
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "use_regex")))
                return paw_error("pre_tokenizer: ByteLevel with add_prefix_space or use_regex is not supported");
            byte_level = 1;
        } else {
            return paw_error("pre_tokenizer: unsupported step '%s', expected Split then ByteLevel", name);
        }
    }
    if (!pattern || !byte_level) return paw_error("pre_tokenizer: expected a Split regex and a ByteLevel step");
    char *spelled = spell_out_whitespace(pattern);
    if (!spelled) return -1;
    int err;
    PCRE2_SIZE off;
    t->split_re = pcre2_compile((PCRE2_SPTR)spelled, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    free(spelled);
    if (!t->split_re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        (void)off;
        return paw_error("pre_tokenizer: split regex \"%.200s\" does not compile: %s", pattern, (char *)msg);
    }
    pcre2_jit_compile(t->split_re, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if no JIT
    return 0;
}

static int load_model(PawTokenizer *t, const cJSON *model, const cJSON *added_list) {
    if (!cJSON_IsObject(model)) return paw_error("expected a \"model\" object, found %s", json_type_name(model));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return paw_error("model.type: expected BPE, found %s", cJSON_IsString(type) ? type->valuestring : json_type_name(type));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return paw_error("model.vocab: expected an object, found %s", json_type_name(vocab));
    if (!cJSON_IsArray(merges)) return paw_error("model.merges: expected an array, found %s", json_type_name(merges));

    // Size the id space from the vocabulary and the added tokens.
    int32_t max_id = -1, count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!valid_id(e)) return paw_error("model.vocab[\"%s\"]: expected an id, found %s", e->string, json_type_name(e));
        if ((int32_t)e->valuedouble > max_id) max_id = (int32_t)e->valuedouble;
        count++;
    }
    cJSON_ArrayForEach(e, added_list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!valid_id(id) || !cJSON_IsString(content) || !content->valuestring[0])
            return paw_error("added_tokens: expected entries with an id and a non-empty content");
        // Matching is exact on the raw text; the whitespace-absorbing variants are not implemented,
        // so refuse them rather than tokenize differently from HF. ("normalized" tokens are also
        // matched on the raw text, which is the same for NFC and plain ASCII token strings.)
        const char *flags[] = {"lstrip", "rstrip", "single_word"};
        for (int f = 0; f < 3; f++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, flags[f])))
                return paw_error("added_tokens: \"%s\" has %s set, which is not supported", content->valuestring, flags[f]);
        if ((int32_t)id->valuedouble > max_id) max_id = (int32_t)id->valuedouble;
        count++;
    }
    if (max_id < 0) return paw_error("model.vocab: empty vocabulary");
    t->vocab_size = max_id + 1;
    t->names = xcalloc((size_t)t->vocab_size, sizeof *t->names);
    t->bytes = xcalloc((size_t)t->vocab_size, sizeof *t->bytes);
    t->nbytes = xcalloc((size_t)t->vocab_size, sizeof *t->nbytes);
    size_t nslots = table_size_for((size_t)count);
    t->name_slots = xmalloc(nslots * sizeof *t->name_slots);
    memset(t->name_slots, 0xff, nslots * sizeof *t->name_slots);
    t->name_mask = nslots - 1;

    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[324];
    byte_unicode_table(cp_of_byte);
    for (int i = 0; i < 324; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;

    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (t->names[id]) return paw_error("model.vocab: id %d appears twice (\"%s\")", id, e->string);
        if (unmap_token(e->string, byte_of_cp, &t->bytes[id], &t->nbytes[id]) < 0)
            return paw_error("model.vocab[\"%s\"]: not a byte-level token", e->string);
        t->names[id] = xstrdup(e->string);
        name_insert(t, id);
        if (t->nbytes[id] == 1) t->byte_id[(uint8_t)t->bytes[id][0]] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) return paw_error("model.vocab: no token for byte 0x%02x, expected all 256 bytes", b);

    // Added tokens: their ids may coincide with vocabulary ids (then the added content wins).
    t->nadded = cJSON_GetArraySize(added_list);
    t->added = xcalloc((size_t)t->nadded + 1, sizeof *t->added);
    int k = 0;
    cJSON_ArrayForEach(e, added_list) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        free(t->names[id]);
        free(t->bytes[id]);
        t->names[id] = xstrdup(content);
        t->bytes[id] = xstrdup(content);
        t->nbytes[id] = (uint32_t)strlen(content);
        name_insert(t, id);
        t->added[k].id = id;
        t->added[k].text = xstrdup(content);
        t->added[k].len = (uint32_t)strlen(content);
        t->added_first[(uint8_t)content[0]] = 1;
        k++;
    }
    // Longest first (insertion sort: a few dozen entries).
    for (int i = 1; i < t->nadded; i++)
        for (int j = i; j > 0 && t->added[j].len > t->added[j - 1].len; j--) {
            AddedToken tmp = t->added[j];
            t->added[j] = t->added[j - 1];
            t->added[j - 1] = tmp;
        }

    // Merges, as "a b" strings or [a, b] pairs; rank = position in the list.
    t->nmerges = cJSON_GetArraySize(merges);
    size_t mslots = table_size_for((size_t)t->nmerges);
    t->merges = xcalloc(mslots, sizeof *t->merges);
    t->merge_mask = mslots - 1;
    int32_t rank = 0;
    char *joined = NULL;
    size_t joined_cap = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(e)) {
            a = e->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(joined);
                return paw_error("model.merges[%d]: expected \"left right\", found \"%s\"", rank, a);
            }
            alen = (size_t)(sp - a);
            b = sp + 1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            alen = strlen(a);
        } else {
            free(joined);
            return paw_error("model.merges[%d]: expected a string or a pair of strings, found %s", rank, json_type_name(e));
        }
        blen = strlen(b);
        if (alen + blen + 1 > joined_cap) {
            joined_cap = (alen + blen + 1) * 2;
            joined = xrealloc(joined, joined_cap);
        }
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        joined[alen + blen] = 0;
        int32_t ia = name_lookup(t, a, alen), ib = name_lookup(t, b, blen), im = name_lookup(t, joined, alen + blen);
        if (ia < 0 || ib < 0 || im < 0) {
            paw_error("model.merges[%d]: \"%.*s\" + \"%s\": %s not in the vocabulary", rank, (int)alen, a, b,
                      ia < 0 ? "left part" : ib < 0 ? "right part" : "merged token");
            free(joined);
            return -1;
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1;
        for (size_t i = hash_pair(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
            if (t->merges[i].key == key) break;  // a repeated merge keeps its first (best) rank
            if (t->merges[i].key == 0) {
                t->merges[i] = (MergeSlot){key, rank, im};
                break;
            }
        }
        rank++;
    }
    free(joined);
    return 0;
}

PawTokenizer *paw_tokenizer_load(const char *path) {
    size_t size;
    char *text = paw_read_file(path, &size);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, size);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + size ? (size_t)(at - text) : 0;
        free(text);
        paw_error("%s: malformed JSON near byte %zu", path, off);
        return NULL;
    }
    free(text);
    PawTokenizer *t = xcalloc(1, sizeof *t);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int rc = 0;
    if (!cJSON_IsObject(root)) rc = paw_error("expected a JSON object at the top level");
    if (!rc && added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        rc = paw_error("added_tokens: expected an array, found %s", json_type_name(added));
    if (!rc) rc = load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), cJSON_IsArray(added) ? added : NULL);
    if (!rc) rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (!rc) rc = load_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    cJSON_Delete(root);
    if (rc) {
        paw_error_context("%s", path);
        paw_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int32_t paw_tokenizer_token_id(const PawTokenizer *t, const char *token) {
    return name_lookup(t, token, strlen(token));
}

int32_t paw_tokenizer_vocab_size(const PawTokenizer *t) { return t->vocab_size; }

// ---------------------------------------------------------------------------------------------
// Encoding

// Replaces each maximal ill-formed subsequence by U+FFFD, as Python's
// bytes.decode("utf-8", "replace") does. Returns NULL when the text is already valid.
static char *utf8_repair(const char *text, size_t len, size_t *out_len) {
    const uint8_t *s = (const uint8_t *)text;
    char *out = NULL;
    size_t o = 0, copied = 0;  // text[copied..i) is valid and not yet copied out
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int need;
        uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else need = -1;
        size_t k = 1;  // bytes of a valid prefix
        if (need > 0) {
            for (; k <= (size_t)need && i + k < len; k++) {
                uint8_t d = s[i + k];
                if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
            }
            if (k == (size_t)need + 1) {
                i += k;
                continue;
            }
        }
        // text[i..i+k) is a maximal ill-formed subpart: one U+FFFD.
        if (!out) out = xmalloc(len * 3 + 1);
        memcpy(out + o, text + copied, i - copied);
        o += i - copied;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k;
        copied = i;
    }
    if (!out) return NULL;
    memcpy(out + o, text + copied, len - copied);
    o += len - copied;
    out[o] = 0;
    *out_len = o;
    return out;
}

typedef struct {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
} Sym;

typedef struct {
    int32_t rank, pos;
    int32_t left, right;  // the ids the pair had when pushed, to spot stale entries
} Cand;

typedef struct {
    Sym *syms;
    size_t sym_cap;
    Cand *heap;
    size_t heap_n, heap_cap;
    pcre2_match_data *md;
} Scratch;

static int cand_less(const Cand *a, const Cand *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static void heap_push(Scratch *s, Cand c) {
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static Cand heap_pop(Scratch *s) {
    Cand top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const Cand *bc = &last;
        if (l < n && cand_less(&s->heap[l], bc)) best = l, bc = &s->heap[l];
        if (l + 1 < n && cand_less(&s->heap[l + 1], bc)) best = l + 1;
        if (best == i) break;
        s->heap[i] = s->heap[best];
        i = best;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void push_pair(const PawTokenizer *t, Scratch *s, int32_t pos) {
    int32_t next = s->syms[pos].next;
    if (next < 0) return;
    const MergeSlot *m = merge_lookup(t, s->syms[pos].id, s->syms[next].id);
    if (m) heap_push(s, (Cand){m->rank, pos, s->syms[pos].id, s->syms[next].id});
}

// BPE of one pre-token: start from byte tokens, repeatedly apply the lowest-ranked merge
// (leftmost on ties), as HF's priority-queue BPE does. O(n log n) in the word length.
static void bpe_word(const PawTokenizer *t, Scratch *s, const uint8_t *w, size_t n, PawIds *out) {
    if (n == 1) {
        paw_ids_push(out, t->byte_id[w[0]]);
        return;
    }
    if (n > s->sym_cap) {
        s->sym_cap = n * 2;
        s->syms = xrealloc(s->syms, s->sym_cap * sizeof *s->syms);
    }
    for (size_t i = 0; i < n; i++) s->syms[i] = (Sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, s, (int32_t)i);
    while (s->heap_n) {
        Cand c = heap_pop(s);
        Sym *a = &s->syms[c.pos];
        if (a->id != c.left || a->next < 0) continue;  // merged away or changed since pushed
        Sym *b = &s->syms[a->next];
        if (b->id != c.right) continue;
        a->id = merge_lookup(t, c.left, c.right)->merged;
        int32_t dead = a->next;
        a->next = b->next;
        if (b->next >= 0) s->syms[b->next].prev = c.pos;
        s->syms[dead].id = -1;
        if (a->prev >= 0) push_pair(t, s, a->prev);
        push_pair(t, s, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) paw_ids_push(out, s->syms[i].id);
}

// Does NFC change anything here? Characters below U+0300 (lead bytes below 0xCC) are stable and
// never combine with each other, so pure ASCII/Latin-1 text skips utf8proc.
static int may_need_nfc(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return 1;
    return 0;
}

// Normalizer, split regex and BPE for text that holds no added tokens.
static int encode_plain(const PawTokenizer *t, Scratch *s, const char *text, size_t len, PawIds *out) {
    if (len == 0) return 0;
    utf8proc_uint8_t *norm = NULL;
    if (t->nfc && may_need_nfc((const uint8_t *)text, len)) {
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &norm,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) return paw_error("tokenizer: NFC normalization failed: %s", utf8proc_errmsg(m));
        text = (const char *)norm;
        len = (size_t)m;
    }
    const uint8_t *u = (const uint8_t *)text;
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        int r = pcre2_match(t->split_re, u, len, pos, PCRE2_NO_UTF_CHECK, s->md, NULL);
        size_t ms, me;
        if (r == PCRE2_ERROR_NOMATCH) {
            ms = me = len;
        } else if (r < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(r, msg, sizeof msg);
            rc = paw_error("tokenizer: split regex failed at byte %zu: %s", pos, (char *)msg);
            break;
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
            ms = ov[0];
            me = ov[1];
        }
        if (ms > pos) bpe_word(t, s, u + pos, ms - pos, out);  // text between matches is a piece too
        if (me > ms) bpe_word(t, s, u + ms, me - ms, out);
        if (me == ms && ms < len) {  // an empty match: step over one character
            size_t step = 1;
            while (ms + step < len && (u[ms + step] & 0xC0) == 0x80) step++;
            bpe_word(t, s, u + ms, step, out);
            me = ms + step;
        }
        pos = me;
    }
    free(norm);
    return rc;
}

int paw_tokenizer_encode(const PawTokenizer *t, const char *text, size_t len, int allow_special, PawIds *out) {
    size_t fixed_len;
    char *fixed = utf8_repair(text, len, &fixed_len);
    if (fixed) {
        text = fixed;
        len = fixed_len;
    }
    Scratch s = {0};
    s.md = pcre2_match_data_create(1, NULL);
    if (!s.md) paw_die("out of memory creating PCRE2 match data");
    int rc = 0;
    size_t start = 0;  // text[start..i) is waiting to be encoded as plain text
    if (allow_special && t->nadded) {
        for (size_t i = 0; i < len && rc == 0; i++) {
            if (!t->added_first[(uint8_t)text[i]]) continue;
            for (int k = 0; k < t->nadded; k++) {
                const AddedToken *a = &t->added[k];
                if (a->len <= len - i && memcmp(text + i, a->text, a->len) == 0) {
                    rc = encode_plain(t, &s, text + start, i - start, out);
                    paw_ids_push(out, a->id);
                    start = i + a->len;
                    i = start - 1;
                    break;
                }
            }
        }
    }
    if (rc == 0) rc = encode_plain(t, &s, text + start, len - start, out);
    pcre2_match_data_free(s.md);
    free(s.syms);
    free(s.heap);
    free(fixed);
    return rc;
}

char *paw_tokenizer_decode(const PawTokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->bytes[ids[i]]) {
            paw_error("tokenizer: id %d at position %zu is not in the vocabulary (0..%d)", ids[i], i, t->vocab_size - 1);
            return NULL;
        }
        total += t->nbytes[ids[i]];
    }
    char *buf = xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + o, t->bytes[ids[i]], t->nbytes[ids[i]]);
        o += t->nbytes[ids[i]];
    }
    buf[o] = 0;
    if (len) *len = o;
    return buf;
}
