// Text processing / NLP families: casing, reversal, counting, word picking, replacement.
#include <ctype.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

// ---- uppercase
SYNTH_LIST(ph_upper, "Convert the text to uppercase.", "Make every letter in the input a capital letter.",
           "Rewrite the input in all caps.", "Return the input with all of its letters uppercased.",
           "Change each lowercase letter to uppercase.", "Print the given words in capital letters.");
SYNTH_LIST(dt_upper, "Keep the spaces as they are.", "Only the letter case changes.");
static void in_upper(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 1, 4));
}
static int so_upper(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    synth_buf_add(b, in);
    synth_upper(b->buf);
    return 0;
}

// ---- lowercase
SYNTH_LIST(ph_lower, "Convert the text to lowercase.", "Make every letter small.", "Rewrite the input without any capital letters.",
           "Return the input with all letters lowercased.", "Change each uppercase letter to lowercase.",
           "Print the given words in small letters only.");
static void in_lower(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 6, 1, 4);
    for (int i = 0; i < n; i++) {
        char w[SYNTH_WORD];
        strcpy(w, synth_pick(r, i % 2 ? synth_nouns : synth_adjs));
        int style = (int)synth_rng_below(r, 3);
        if (style == 0 || i == 0) synth_upper(w);
        else if (style == 1) w[0] = (char)toupper((unsigned char)w[0]);
        if (i) synth_buf_addc(b, ' ');
        synth_buf_add(b, w);
    }
}
static int so_lower(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    synth_buf_add(b, in);
    synth_lower(b->buf);
    return 0;
}

// ---- reverse_string
SYNTH_LIST(ph_revstr, "Reverse the characters of the input.", "Write the text backwards, letter by letter.",
           "Return the input string reversed.", "Spell the input from the last character to the first.",
           "Flip the order of the characters.", "Output the mirror image of the string, last letter first.");
SYNTH_LIST(dt_revstr, "Spaces are characters too.", "Keep the letter case.");
static void in_revstr(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 1, 2));
}
static int so_revstr(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    for (size_t i = strlen(in); i > 0; i--) synth_buf_addc(b, in[i - 1]);
    return 0;
}

// ---- reverse_words
SYNTH_LIST(ph_revwords, "Reverse the order of the words.", "Write the words in the opposite order.",
           "Return the words from last to first.", "Flip the word order but keep each word intact.",
           "Put the last word first, and so on.", "List the words of the input backwards.");
SYNTH_LIST(dt_revwords, "Separate words with single spaces.", "Do not reverse the letters inside a word.");
static void in_revwords(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 2, 5));
}
static int so_revwords(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    for (int i = n - 1; i >= 0; i--) {
        if (i != n - 1) synth_buf_addc(b, ' ');
        synth_buf_add(b, w[i]);
    }
    return 0;
}

// ---- count_words
SYNTH_LIST(ph_cwords, "Count the words in the input.", "How many words are there?", "Return the number of words.",
           "Give the word count of the text.", "Tell me how many space-separated words the input has.",
           "Output the total number of words as a number.");
SYNTH_LIST(dt_cwords, "Answer with digits.", "Words are separated by spaces.");
static void in_cwords(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 1, 8));
}
static int so_cwords(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    synth_buf_addf(b, "%d", synth_split_words(in, w, SYNTH_MAXW));
    return 0;
}

// ---- count_vowels
SYNTH_LIST(ph_cvowels, "Count the vowels in the text.", "How many vowels does the input contain?",
           "Return the number of a, e, i, o and u letters.", "Give the vowel count.",
           "Tell me how many vowels appear in the input.", "Output how many letters are vowels.");
SYNTH_LIST(dt_cvowels, "The vowels are a, e, i, o, u; y is not a vowel.", "Upper and lower case both count.");
static void in_cvowels(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 1, 3));
}
static int so_cvowels(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    int n = 0;
    for (; *in; in++)
        if (strchr("aeiou", tolower((unsigned char)*in))) n++;
    synth_buf_addf(b, "%d", n);
    return 0;
}

// ---- first_word / last_word
SYNTH_LIST(ph_first, "Return the first word.", "What is the first word of the input?", "Give me only the opening word.",
           "Output the word that comes first.", "Extract the first word of the text.", "Keep just the initial word and drop the rest.");
SYNTH_LIST(ph_last, "Return the last word.", "What is the final word of the input?", "Give me only the closing word.",
           "Output the word that comes last.", "Extract the last word of the text.", "Keep just the final word and drop the rest.");
static void in_words25(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_phrase(r, b, synth_fit_count(r, max, 6, 2, 5));
}
static int so_first(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    if (synth_split_words(in, w, SYNTH_MAXW) < 1) return -1;
    synth_buf_add(b, w[0]);
    return 0;
}
static int so_last(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    if (n < 1) return -1;
    synth_buf_add(b, w[n - 1]);
    return 0;
}

// ---- title_case
SYNTH_LIST(ph_title, "Capitalize the first letter of every word.", "Convert the text to title case.",
           "Make each word start with a capital letter.", "Uppercase the initial letter of each word.",
           "Rewrite the words so every one begins with a capital.", "Turn the input into a title: capital first letters.");
SYNTH_LIST(dt_title, "Leave the other letters lowercase.");
static int so_title(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    int start = 1;
    for (; *in; in++) {
        synth_buf_addc(b, (char)(start ? toupper((unsigned char)*in) : tolower((unsigned char)*in)));
        start = *in == ' ';
    }
    return 0;
}

// ---- initials
SYNTH_LIST(ph_init, "Return the initials of the words.", "Make an acronym from the first letters.",
           "Take the first letter of each word and join them in capitals.", "Abbreviate the phrase to its initials.",
           "Output the uppercase first letter of every word, with no spaces.", "Build the acronym of the input.");
static int so_init(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    for (int i = 0; i < n; i++) synth_buf_addc(b, (char)toupper((unsigned char)w[i][0]));
    return 0;
}

// ---- count_char
SYNTH_LIST(ph_cchar, "Count how many times the letter '{P}' appears.", "How many '{P}' letters are in the input?",
           "Return the number of occurrences of '{P}'.", "Tell me the count of the character {P} in the text.",
           "Count the letter {P} in the input.", "Give the number of times {P} shows up.");
SYNTH_LIST(dt_cchar, "Ignore letter case.", "Answer with a number.");
static void pa_cchar(SynthRng *r, SynthParams *p) {
    static const char letters[] = "aeiorstnl";
    p->p[0] = letters[synth_rng_below(r, sizeof letters - 1)];
    p->p[1] = 0;
}
static int so_cchar(const SynthParams *p, const char *in, SynthBuf *b);
// Most inputs contain the letter, so that the answer is not mostly 0.
static void in_cchar(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int want = synth_rng_below(r, 4) != 0;
    for (int tries = 0; tries < 30; tries++) {
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        in_cvowels(r, p, max, b);
        if (!want || strchr(b->buf, p->p[0])) return;
    }
}
static int so_cchar(const SynthParams *p, const char *in, SynthBuf *b) {
    int n = 0;
    for (; *in; in++)
        if (tolower((unsigned char)*in) == tolower((unsigned char)p->p[0])) n++;
    synth_buf_addf(b, "%d", n);
    return 0;
}

// ---- replace_word
SYNTH_LIST(ph_repl, "Replace every '{P}' with '{Q}'.", "Change the word {P} to {Q} wherever it appears.",
           "Swap each occurrence of the word '{P}' for '{Q}'.", "Substitute {Q} for {P}.",
           "Rewrite the text with {P} replaced by {Q}.", "Wherever you see the word {P}, write {Q} instead.");
SYNTH_LIST(dt_repl, "Only whole words match.", "Leave every other word unchanged.");
static void pa_repl(SynthRng *r, SynthParams *p) {
    const char *two[2];
    synth_pick_distinct(r, synth_nouns, two, 2);
    strcpy(p->p, two[0]);
    strcpy(p->q, two[1]);
}
static void in_repl(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 6, 2, 5);
    int at = (int)synth_rng_below(r, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, ' ');
        synth_buf_add(b, i == at || synth_rng_below(r, 5) == 0 ? p->p : synth_pick(r, synth_rng_below(r, 2) ? synth_nouns : synth_adjs));
    }
}
static int so_repl(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, ' ');
        synth_buf_add(b, strcmp(w[i], p->p) ? w[i] : p->q);
    }
    return 0;
}

static const SynthFamily fams[] = {
    {"uppercase", SYNTH_AREA_TEXT, "Convert every letter of the input to uppercase.", ph_upper, dt_upper, NULL, in_upper, so_upper},
    {"lowercase", SYNTH_AREA_TEXT, "Convert every letter of the input to lowercase.", ph_lower, no_details, NULL, in_lower, so_lower},
    {"reverse_string", SYNTH_AREA_TEXT, "Reverse the input character by character.", ph_revstr, dt_revstr, NULL, in_revstr, so_revstr},
    {"reverse_words", SYNTH_AREA_TEXT, "Reverse the order of the words; keep each word unchanged.", ph_revwords, dt_revwords, NULL, in_revwords, so_revwords},
    {"count_words", SYNTH_AREA_TEXT, "Count the space-separated words and output the number.", ph_cwords, dt_cwords, NULL, in_cwords, so_cwords},
    {"count_vowels", SYNTH_AREA_TEXT, "Count the letters a, e, i, o, u (any case) and output the number.", ph_cvowels, dt_cvowels, NULL, in_cvowels, so_cvowels},
    {"first_word", SYNTH_AREA_TEXT, "Output the first word of the input.", ph_first, no_details, NULL, in_words25, so_first},
    {"last_word", SYNTH_AREA_TEXT, "Output the last word of the input.", ph_last, no_details, NULL, in_words25, so_last},
    {"title_case", SYNTH_AREA_TEXT, "Capitalize the first letter of each word, lowercase the rest.", ph_title, dt_title, NULL, in_words25, so_title},
    {"initials", SYNTH_AREA_TEXT, "Output the first letter of each word, uppercased, joined without spaces.", ph_init, no_details, NULL, in_words25, so_init},
    {"count_char", SYNTH_AREA_TEXT, "Count the occurrences of the letter '{P}' (any case) and output the number.", ph_cchar, dt_cchar, pa_cchar, in_cchar, so_cchar},
    {"replace_word", SYNTH_AREA_TEXT, "Replace each whole word '{P}' with '{Q}'; keep the other words.", ph_repl, dt_repl, pa_repl, in_repl, so_repl},
};
const SynthFamilyTable synth_text_table = {fams, (int)(sizeof fams / sizeof fams[0])};
