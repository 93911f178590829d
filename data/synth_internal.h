// Helpers shared by the synthetic task families (data/synth_fam_*.c); not a public interface.
#ifndef PAW_DATA_SYNTH_INTERNAL_H
#define PAW_DATA_SYNTH_INTERNAL_H

#include "data/synth.h"

enum { SYNTH_WORD = 48, SYNTH_MAXW = 40 };

int synth_list_len(const char *const *l);
const char *synth_pick(SynthRng *r, const char *const *l);
int synth_in_list(const char *w, const char *const *l);  // index of w in l, or -1
// k distinct entries of l (k <= its length) in random order.
void synth_pick_distinct(SynthRng *r, const char *const *l, const char **out, int k);
// Splits s at spaces (runs of spaces count once); returns the number of words (at most maxw).
int synth_split_words(const char *s, char w[][SYNTH_WORD], int maxw);
// Splits s at character sep, trimming spaces around each piece.
int synth_split_on(const char *s, char sep, char w[][SYNTH_WORD], int maxw);
// How many items of about item_chars (separator included) fit into max_chars, clamped to [lo, hi]
// and then drawn uniformly in [lo, that].
int synth_fit_count(SynthRng *r, int max_chars, int item_chars, int lo, int hi);
int synth_range(SynthRng *r, int lo, int hi);  // uniform in [lo, hi]
void synth_lower(char *s);
void synth_upper(char *s);
int synth_is_number(const char *s);  // optional '-' then digits
// Appends n space-separated words drawn from l.
void synth_add_words(SynthRng *r, SynthBuf *b, const char *const *l, int n);
// Appends n space-separated words, each an adjective or a noun.
void synth_add_phrase(SynthRng *r, SynthBuf *b, int n);
// Joins words with sep into b.
void synth_join(SynthBuf *b, char w[][SYNTH_WORD], int n, const char *sep);

// Shared small word lists, so that the vocabulary stays small and repetitive.
extern const char *const synth_nouns[];
extern const char *const synth_adjs[];
extern const char *const synth_names[];
extern const char *const synth_cities[];
extern const char *const synth_rooms[];
extern const char *const synth_fruits[];
extern const char *const synth_animals[];
extern const char *const synth_colors[];
extern const char *const synth_tools[];
extern const char *const synth_keys[];

#define SYNTH_LIST(name, ...) static const char *const name[] = {__VA_ARGS__, NULL}

// One area's families, collected by data/synth_families.c.
typedef struct {
    const SynthFamily *fams;
    int n;
} SynthFamilyTable;
extern const SynthFamilyTable synth_text_table, synth_search_table, synth_classify_table, synth_code_table,
    synth_safety_table, synth_agent_table, synth_format_table;

#endif
