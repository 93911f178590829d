// Random numbers, the bounded string builder and word helpers for the synthetic families.
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/synth_internal.h"

uint64_t synth_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void synth_rng_seed(SynthRng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = synth_splitmix64(&st);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t synth_rng_next(SynthRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t synth_rng_below(SynthRng *r, uint32_t n) {
    if (n == 0) return 0;
    // Multiply-shift maps 32 random bits onto [0, n); the bias (n / 2^32) is far below anything
    // these small lists could show.
    return (uint32_t)(((synth_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

double synth_rng_unit(SynthRng *r) { return (double)(synth_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

int synth_range(SynthRng *r, int lo, int hi) { return hi <= lo ? lo : lo + (int)synth_rng_below(r, (uint32_t)(hi - lo + 1)); }

void synth_buf_init(SynthBuf *b, char *buf, size_t cap) {
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = 0;
    if (cap) buf[0] = 0;
}

void synth_buf_addn(SynthBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void synth_buf_add(SynthBuf *b, const char *s) { synth_buf_addn(b, s, strlen(s)); }
void synth_buf_addc(SynthBuf *b, char c) { synth_buf_addn(b, &c, 1); }

void synth_buf_addf(SynthBuf *b, const char *fmt, ...) {
    char tmp[SYNTH_FIELD];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->overflow = 1;
        return;
    }
    synth_buf_addn(b, tmp, (size_t)n);
}

int synth_list_len(const char *const *l) {
    int n = 0;
    while (l[n]) n++;
    return n;
}

const char *synth_pick(SynthRng *r, const char *const *l) { return l[synth_rng_below(r, (uint32_t)synth_list_len(l))]; }

int synth_in_list(const char *w, const char *const *l) {
    for (int i = 0; l[i]; i++)
        if (!strcmp(w, l[i])) return i;
    return -1;
}

void synth_pick_distinct(SynthRng *r, const char *const *l, const char **out, int k) {
    const char *all[128];
    int n = synth_list_len(l);
    if (n > 128) n = 128;
    for (int i = 0; i < n; i++) all[i] = l[i];
    for (int i = 0; i < k && i < n; i++) {  // partial Fisher-Yates
        int j = i + (int)synth_rng_below(r, (uint32_t)(n - i));
        const char *t = all[i];
        all[i] = all[j];
        all[j] = t;
        out[i] = all[i];
    }
}

int synth_split_words(const char *s, char w[][SYNTH_WORD], int maxw) {
    int n = 0;
    while (*s) {
        while (*s == ' ') s++;
        if (!*s) break;
        size_t len = strcspn(s, " ");
        if (n < maxw) {
            size_t k = len < SYNTH_WORD - 1 ? len : SYNTH_WORD - 1;
            memcpy(w[n], s, k);
            w[n][k] = 0;
            n++;
        }
        s += len;
    }
    return n;
}

int synth_split_on(const char *s, char sep, char w[][SYNTH_WORD], int maxw) {
    int n = 0;
    for (;;) {
        const char *e = strchr(s, sep);
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *a = s, *z = s + len;
        while (a < z && *a == ' ') a++;
        while (z > a && z[-1] == ' ') z--;
        if (n < maxw) {
            size_t k = (size_t)(z - a) < SYNTH_WORD - 1 ? (size_t)(z - a) : SYNTH_WORD - 1;
            memcpy(w[n], a, k);
            w[n][k] = 0;
            n++;
        }
        if (!e) break;
        s = e + 1;
    }
    return n;
}

int synth_fit_count(SynthRng *r, int max_chars, int item_chars, int lo, int hi) {
    if (max_chars > 0 && item_chars > 0) {
        int fit = max_chars / item_chars;
        if (fit < hi) hi = fit;
    }
    if (hi < lo) hi = lo;
    return synth_range(r, lo, hi);
}

void synth_lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}
void synth_upper(char *s) {
    for (; *s; s++) *s = (char)toupper((unsigned char)*s);
}

int synth_is_number(const char *s) {
    if (*s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

const char *const synth_nouns[] = {"cat", "dog", "bird", "fish", "tree", "car", "book", "door", "lamp", "cup",
                                   "ball", "hat", "box", "key", "bed", "map", "pen", "sun", "road", "boat", NULL};
const char *const synth_adjs[] = {"red", "blue", "green", "big", "small", "old", "new", "fast", "slow", "hot",
                                  "cold", "dark", "soft", "tall", "short", NULL};
const char *const synth_names[] = {"ann", "bob", "eva", "tom", "mia", "sam", "lee", "zoe", "max", "ivy", NULL};
const char *const synth_cities[] = {"paris", "rome", "oslo", "tokyo", "lima", "cairo", "berlin", "madrid", "delhi", "sydney", NULL};
const char *const synth_rooms[] = {"kitchen", "bedroom", "garage", "office", "hall", "bathroom", NULL};
const char *const synth_fruits[] = {"apple", "pear", "plum", "grape", "lemon", "mango", "peach", "kiwi", NULL};
const char *const synth_animals[] = {"cat", "dog", "horse", "cow", "sheep", "goat", "duck", "mouse", NULL};
const char *const synth_colors[] = {"red", "blue", "green", "yellow", "black", "white", "pink", "brown", NULL};
const char *const synth_tools[] = {"hammer", "saw", "drill", "wrench", "shovel", "rake", "axe", "pliers", NULL};
const char *const synth_keys[] = {"name", "age", "city", "id", "color", "size", "price", "count", NULL};

void synth_add_words(SynthRng *r, SynthBuf *b, const char *const *l, int n) {
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, ' ');
        synth_buf_add(b, synth_pick(r, l));
    }
}

void synth_add_phrase(SynthRng *r, SynthBuf *b, int n) {
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, ' ');
        synth_buf_add(b, synth_pick(r, synth_rng_below(r, 2) ? synth_nouns : synth_adjs));
    }
}

void synth_join(SynthBuf *b, char w[][SYNTH_WORD], int n, const char *sep) {
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_add(b, sep);
        synth_buf_add(b, w[i]);
    }
}
