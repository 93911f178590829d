// Search and matching families: best match, position, membership, nearest, fuzzy spelling.
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

static void pa_noun(SynthRng *r, SynthParams *p) { strcpy(p->p, synth_pick(r, synth_nouns)); }

// ---- best_match: "query: option, option, option" -> the option sharing most words with the query
SYNTH_LIST(ph_best, "Pick the option that best matches the query before the colon.",
           "Which of the listed items shares the most words with the query?", "Return the closest matching option to the query.",
           "Given a query and candidates, output the best candidate.", "Find the candidate most similar to the query.",
           "Choose the item that overlaps the query the most.");
SYNTH_LIST(dt_best, "The query comes before ':' and the options are separated by commas.", "Similarity is the number of shared words.");
static int best_index(char q[][SYNTH_WORD], int nq, char o[][SYNTH_WORD], int no, int *unique) {
    int best = -1, bscore = -1, ties = 0;
    for (int i = 0; i < no; i++) {
        W(ow);
        int n = synth_split_words(o[i], ow, SYNTH_MAXW), score = 0;
        for (int k = 0; k < n; k++)
            for (int j = 0; j < nq; j++)
                if (!strcmp(ow[k], q[j])) {
                    score++;
                    break;
                }
        if (score > bscore) bscore = score, best = i, ties = 0;
        else if (score == bscore) ties++;
    }
    *unique = ties == 0 && bscore > 0;
    return best;
}
static int split_query(const char *in, char q[][SYNTH_WORD], int *nq, char o[][SYNTH_WORD], int *no) {
    const char *colon = strchr(in, ':');
    if (!colon) return -1;
    char head[SYNTH_FIELD];
    size_t hl = (size_t)(colon - in) < sizeof head - 1 ? (size_t)(colon - in) : sizeof head - 1;
    memcpy(head, in, hl);
    head[hl] = 0;
    *nq = synth_split_words(head, q, SYNTH_MAXW);
    *no = synth_split_on(colon + 1, ',', o, SYNTH_MAXW);
    return 0;
}
static void in_best(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int nopt = synth_fit_count(r, max, 12, 2, 4);
    for (int tries = 0; tries < 50; tries++) {
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        const char *qa = synth_pick(r, synth_adjs), *qn = synth_pick(r, synth_nouns);
        synth_buf_addf(b, "%s %s:", qa, qn);
        for (int i = 0; i < nopt; i++) {
            const char *a = synth_rng_below(r, 2) ? qa : synth_pick(r, synth_adjs);
            const char *n = synth_rng_below(r, 2) ? qn : synth_pick(r, synth_nouns);
            synth_buf_addf(b, "%s %s %s", i ? "," : "", a, n);
        }
        W(q);
        W(o);
        int nq, no, unique;
        if (split_query(b->buf, q, &nq, o, &no) == 0) {
            best_index(q, nq, o, no, &unique);
            if (unique) return;
        }
    }
}
static int so_best(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(q);
    W(o);
    int nq, no, unique;
    if (split_query(in, q, &nq, o, &no)) return -1;
    synth_buf_add(b, o[best_index(q, nq, o, no, &unique)]);
    return 0;
}

// ---- word_position
SYNTH_LIST(ph_pos, "At which position does the word '{P}' appear? Count from 1.", "Return the index of '{P}' in the list, starting at 1.",
           "Find the word {P} and output its position.", "Give the 1-based position of {P} among the words.",
           "Which place in the sequence does {P} occupy?", "Locate '{P}' and report where it is, first word being 1.");
SYNTH_LIST(dt_pos, "If the word is missing, output 0.");
static void in_pos(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 5, 3, 6);
    const char *w[8];
    synth_pick_distinct(r, synth_nouns, w, n);
    int at = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i], p->p)) at = i;
    if (at < 0) w[synth_rng_below(r, (uint32_t)n)] = p->p;
    for (int i = 0; i < n; i++) synth_buf_addf(b, "%s%s", i ? " " : "", w[i]);
}
static int so_pos(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), at = 0;
    for (int i = 0; i < n && !at; i++)
        if (!strcmp(w[i], p->p)) at = i + 1;
    synth_buf_addf(b, "%d", at);
    return 0;
}

// ---- contains_word
SYNTH_LIST(ph_has, "Does the input contain the word '{P}'? Answer yes or no.", "Say yes if '{P}' is one of the words, otherwise no.",
           "Check whether {P} appears in the text (yes/no).", "Is the word {P} present? Reply yes or no.",
           "Search the input for '{P}' and tell me yes or no.", "Answer yes when the text mentions {P} and no when it does not.");
static void in_has(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 5, 2, 5);
    int put = synth_rng_below(r, 2) ? (int)synth_rng_below(r, (uint32_t)n) : -1;
    for (int i = 0; i < n; i++) {
        const char *w = synth_pick(r, synth_nouns);
        if (i != put)
            while (!strcmp(w, p->p)) w = synth_pick(r, synth_nouns);
        synth_buf_addf(b, "%s%s", i ? " " : "", i == put ? p->p : w);
    }
}
static int so_has(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), found = 0;
    for (int i = 0; i < n; i++) found |= !strcmp(w[i], p->p);
    synth_buf_add(b, found ? "yes" : "no");
    return 0;
}

// ---- closest_number: "target: a b c"
SYNTH_LIST(ph_close, "Which number in the list is closest to the target before the colon?",
           "Return the list value nearest to the target.", "Find the number with the smallest distance to the target.",
           "Given 'target: numbers', output the closest number.", "Pick the candidate nearest the target value.",
           "Output whichever listed number is nearest to the first number.");
static int closest(const char *in, int *out, int *unique) {
    const char *colon = strchr(in, ':');
    if (!colon) return -1;
    int t = atoi(in), best = 0, bd = 1 << 30, ties = 0, n = 0;
    W(w);
    int k = synth_split_words(colon + 1, w, SYNTH_MAXW);
    for (int i = 0; i < k; i++) {
        if (!synth_is_number(w[i])) return -1;
        int v = atoi(w[i]), d = abs(v - t);
        if (d < bd) bd = d, best = v, ties = 0;
        else if (d == bd && v != best) ties++;
        n++;
    }
    if (!n) return -1;
    *out = best;
    *unique = !ties;
    return 0;
}
static void in_close(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max - 4, 3, 3, 5);
    for (int tries = 0; tries < 50; tries++) {
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        synth_buf_addf(b, "%d:", synth_range(r, 0, 99));
        for (int i = 0; i < n; i++) synth_buf_addf(b, " %d", synth_range(r, 0, 99));
        int v, u;
        if (closest(b->buf, &v, &u) == 0 && u) return;
    }
}
static int so_close(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    int v, u;
    if (closest(in, &v, &u)) return -1;
    synth_buf_addf(b, "%d", v);
    return 0;
}

// ---- longest_word
SYNTH_LIST(ph_long, "Return the longest word.", "Which word has the most letters?", "Find the longest word in the input.",
           "Output the word with the greatest length.", "Pick the lengthiest of the words.", "Give me the word that is longest.");
SYNTH_LIST(dt_long, "If several tie, take the first.");
static int so_long(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), best = 0;
    if (!n) return -1;
    for (int i = 1; i < n; i++)
        if (strlen(w[i]) > strlen(w[best])) best = i;
    synth_buf_add(b, w[best]);
    return 0;
}
static void in_long(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    static const char *const pool[] = {"cat", "dog", "sun", "tree", "lamp", "bird", "apple", "horse", "table", "garden",
                                       "window", "orange", "picture", "kitchen", "blanket", "elephant", NULL};
    int n = synth_fit_count(r, max, 7, 2, 5);
    for (int tries = 0; tries < 50; tries++) {
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        synth_add_words(r, b, pool, n);
        W(w);
        int k = synth_split_words(b->buf, w, SYNTH_MAXW), ties = 0;
        size_t m = 0;
        for (int i = 0; i < k; i++) m = strlen(w[i]) > m ? strlen(w[i]) : m;
        for (int i = 0; i < k; i++) ties += strlen(w[i]) == m;
        if (ties == 1) return;
    }
}

// ---- spell_match: "typo: cand, cand, cand" -> the candidate with the smallest edit distance
SYNTH_LIST(ph_spell, "The word before the colon is misspelled; return the candidate it was meant to be.",
           "Correct the misspelled word by choosing from the options.", "Which candidate is closest in spelling to the first word?",
           "Fix the typo: pick the option nearest to the misspelled word.", "Match the garbled word to the right option.",
           "Return the listed word that the typo most likely stands for.");
SYNTH_LIST(dt_spell, "Closeness is the number of single-letter edits.");
static const char *const spell_pool[] = {"apple", "pear", "plum", "grape", "lemon", "mango", "peach", "horse", "sheep", "goat",
                                         "mouse", "tiger", "zebra", "camel", NULL};
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), prev[SYNTH_WORD + 1], cur[SYNTH_WORD + 1];
    if (la > SYNTH_WORD || lb > SYNTH_WORD) return 1 << 20;
    for (int j = 0; j <= lb; j++) prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
    }
    return prev[lb];
}
static int spell_best(const char *in, int *unique, char o[][SYNTH_WORD]) {
    const char *colon = strchr(in, ':');
    if (!colon) return -1;
    char typo[SYNTH_WORD];
    size_t tl = (size_t)(colon - in) < SYNTH_WORD - 1 ? (size_t)(colon - in) : SYNTH_WORD - 1;
    memcpy(typo, in, tl);
    typo[tl] = 0;
    int no = synth_split_on(colon + 1, ',', o, SYNTH_MAXW), best = -1, bd = 1 << 30, ties = 0;
    for (int i = 0; i < no; i++) {
        int d = edit_distance(typo, o[i]);
        if (d < bd) bd = d, best = i, ties = 0;
        else if (d == bd) ties++;
    }
    *unique = !ties;
    return best;
}
static void in_spell(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max - 6, 7, 2, 4);
    for (int tries = 0; tries < 50; tries++) {
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        const char *c[6];
        synth_pick_distinct(r, spell_pool, c, n);
        char typo[SYNTH_WORD];
        strcpy(typo, c[synth_rng_below(r, (uint32_t)n)]);
        size_t L = strlen(typo), at = synth_rng_below(r, (uint32_t)L);
        if (synth_rng_below(r, 2)) memmove(typo + at, typo + at + 1, L - at);  // drop a letter
        else typo[at] = "aeioubcdfgklmnprst"[synth_rng_below(r, 18)];       // change a letter
        synth_buf_addf(b, "%s:", typo);
        for (int i = 0; i < n; i++) synth_buf_addf(b, "%s %s", i ? "," : "", c[i]);
        W(o);
        int u;
        if (spell_best(b->buf, &u, o) >= 0 && u && synth_in_list(typo, spell_pool) < 0) return;
    }
}
static int so_spell(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(o);
    int u, i = spell_best(in, &u, o);
    if (i < 0) return -1;
    synth_buf_add(b, o[i]);
    return 0;
}

// ---- max_number
SYNTH_LIST(ph_max, "Return the largest number.", "Which number in the list is the biggest?", "Find the maximum value.",
           "Output the highest of the numbers.", "Pick the greatest number from the input.", "Give me the max of these numbers.");
static void in_nums(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 3, 3, 6);
    for (int i = 0; i < n; i++) synth_buf_addf(b, "%s%d", i ? " " : "", synth_range(r, 0, 99));
}
static int so_max(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), m = 0;
    if (!n) return -1;
    for (int i = 0; i < n; i++) {
        if (!synth_is_number(w[i])) return -1;
        if (i == 0 || atoi(w[i]) > m) m = atoi(w[i]);
    }
    synth_buf_addf(b, "%d", m);
    return 0;
}

// ---- category_pick
SYNTH_LIST(ph_cat, "Which of the words is a {P}?", "Return the word that names a {P}.", "Pick the {P} from the list.",
           "Find the only {P} among the words.", "Output the item that belongs to the category {P}.",
           "One of these is a {P}; which one?");
static const char *const cat_names[] = {"fruit", "animal", "color", "tool", NULL};
static const char *const *cat_list(const char *name) {
    switch (synth_in_list(name, cat_names)) {
    case 0: return synth_fruits;
    case 1: return synth_animals;
    case 2: return synth_colors;
    case 3: return synth_tools;
    default: return NULL;
    }
}
static void pa_cat(SynthRng *r, SynthParams *p) { strcpy(p->p, synth_pick(r, cat_names)); }
static void in_cat(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 7, 3, 4), at = (int)synth_rng_below(r, (uint32_t)n);
    int own = synth_in_list(p->p, cat_names);
    for (int i = 0; i < n; i++) {
        int c = own;
        while (i != at && c == own) c = (int)synth_rng_below(r, 4);
        synth_buf_addf(b, "%s%s", i ? " " : "", synth_pick(r, cat_list(cat_names[c])));
    }
}
static int so_cat(const SynthParams *p, const char *in, SynthBuf *b) {
    const char *const *l = cat_list(p->p);
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    if (!l) return -1;
    for (int i = 0; i < n; i++)
        if (synth_in_list(w[i], l) >= 0) {
            synth_buf_add(b, w[i]);
            return 0;
        }
    synth_buf_add(b, "none");
    return 0;
}

// ---- lookup_key: "key=value key=value" -> the value of {P}
SYNTH_LIST(ph_look, "Look up the value of '{P}'.", "What is {P} set to?", "Return the value stored under the key {P}.",
           "Find {P} in the key=value pairs and output its value.", "Read the {P} entry and give its value.",
           "Output whatever value follows '{P}='.");
static void pa_key(SynthRng *r, SynthParams *p) { strcpy(p->p, synth_pick(r, synth_keys)); }
static void in_look(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 10, 2, 4), at = (int)synth_rng_below(r, (uint32_t)n);
    const char *k[8];
    synth_pick_distinct(r, synth_keys, k, 8);
    int have = 0;
    for (int i = 0; i < n; i++) have |= !strcmp(k[i], p->p);
    if (!have) k[at] = p->p;
    for (int i = 0; i < n; i++) {
        if (synth_rng_below(r, 2)) synth_buf_addf(b, "%s%s=%d", i ? " " : "", k[i], synth_range(r, 1, 99));
        else synth_buf_addf(b, "%s%s=%s", i ? " " : "", k[i], synth_pick(r, synth_rng_below(r, 2) ? synth_names : synth_colors));
    }
}
static int so_look(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    size_t kl = strlen(p->p);
    for (int i = 0; i < n; i++)
        if (!strncmp(w[i], p->p, kl) && w[i][kl] == '=') {
            synth_buf_add(b, w[i] + kl + 1);
            return 0;
        }
    synth_buf_add(b, "none");
    return 0;
}

static const SynthFamily fams[] = {
    {"best_match", SYNTH_AREA_SEARCH, "Input is 'query: option, option, ...'. Output the option sharing the most words with the query.", ph_best, dt_best, NULL, in_best, so_best},
    {"word_position", SYNTH_AREA_SEARCH, "Output the 1-based position of the word '{P}' in the input (0 if absent).", ph_pos, dt_pos, pa_noun, in_pos, so_pos},
    {"contains_word", SYNTH_AREA_SEARCH, "Output yes if the word '{P}' is in the input, else no.", ph_has, no_details, pa_noun, in_has, so_has},
    {"closest_number", SYNTH_AREA_SEARCH, "Input is 'target: numbers'. Output the number closest to the target.", ph_close, no_details, NULL, in_close, so_close},
    {"longest_word", SYNTH_AREA_SEARCH, "Output the longest word of the input.", ph_long, dt_long, NULL, in_long, so_long},
    {"spell_match", SYNTH_AREA_SEARCH, "Input is 'typo: option, option, ...'. Output the option with the fewest letter edits from the typo.", ph_spell, dt_spell, NULL, in_spell, so_spell},
    {"max_number", SYNTH_AREA_SEARCH, "Output the largest number in the input.", ph_max, no_details, NULL, in_nums, so_max},
    {"category_pick", SYNTH_AREA_SEARCH, "Output the word that is a {P}.", ph_cat, no_details, pa_cat, in_cat, so_cat},
    {"lookup_key", SYNTH_AREA_SEARCH, "Input is key=value pairs. Output the value of the key '{P}'.", ph_look, no_details, pa_key, in_look, so_look},
};
const SynthFamilyTable synth_search_table = {fams, (int)(sizeof fams / sizeof fams[0])};
