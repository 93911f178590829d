// Custom classification and filtering families: severity, sentiment, topic, spam, language,
// questions, list filters, parity.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

static int any_in(char w[][SYNTH_WORD], int n, const char *const *l) {
    for (int i = 0; i < n; i++)
        if (synth_in_list(w[i], l) >= 0) return 1;
    return 0;
}
static int count_in(char w[][SYNTH_WORD], int n, const char *const *l) {
    int c = 0;
    for (int i = 0; i < n; i++) c += synth_in_list(w[i], l) >= 0;
    return c;
}
// Appends n words: the `must` words at random positions, fillers elsewhere.
static void mix_words(SynthRng *r, SynthBuf *b, const char **must, int nmust, const char *const *filler, int n) {
    const char *w[SYNTH_MAXW];
    if (n < nmust) n = nmust;
    for (int i = 0; i < n; i++) w[i] = synth_pick(r, filler);
    int pos[SYNTH_MAXW];
    for (int i = 0; i < n; i++) pos[i] = i;
    for (int i = 0; i < nmust; i++) {
        int j = i + (int)synth_rng_below(r, (uint32_t)(n - i));
        int t = pos[i];
        pos[i] = pos[j];
        pos[j] = t;
        w[pos[i]] = must[i];
    }
    for (int i = 0; i < n; i++) synth_buf_addf(b, "%s%s", i ? " " : "", w[i]);
}

// ---- log_severity
SYNTH_LIST(ph_log, "Classify the log line as ERROR, WARNING or INFO.", "What is the severity of this log message?",
           "Label the log entry with its level: ERROR, WARNING, or INFO.", "Decide whether the log line is an error, a warning or info.",
           "Tag the message with a severity level.", "Read the log line and output its level in capitals.");
SYNTH_LIST(dt_log, "Failures and crashes are errors; slowness and low resources are warnings.", "Answer with one word in capitals.");
SYNTH_LIST(log_err, "failed", "fatal", "crash", "error", "denied", "corrupt");
SYNTH_LIST(log_warn, "slow", "low", "retry", "deprecated", "high", "timeout");
SYNTH_LIST(log_comp, "db", "api", "disk", "auth", "cache", "net", "app");
SYNTH_LIST(log_err_phrase, "connection failed", "fatal crash", "write error", "access denied", "file corrupt", "login failed", "crash on start");
SYNTH_LIST(log_warn_phrase, "slow response", "low memory", "high load", "retry later", "deprecated call", "disk low", "timeout soon");
SYNTH_LIST(log_info_phrase, "started", "user logged in", "connected", "request done", "cache cleared", "saved ok", "job finished");
static void in_log(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    int k = (int)synth_rng_below(r, 3);
    synth_buf_addf(b, "%s: %s", synth_pick(r, log_comp), synth_pick(r, k == 0 ? log_err_phrase : k == 1 ? log_warn_phrase : log_info_phrase));
}
static int so_log(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    synth_buf_add(b, any_in(w, n, log_err) ? "ERROR" : any_in(w, n, log_warn) ? "WARNING" : "INFO");
    return 0;
}

// ---- sentiment
SYNTH_LIST(ph_sent, "Classify the sentiment as positive, negative or neutral.", "Is this text positive, negative or neutral?",
           "Decide the mood of the sentence: positive, negative, or neutral.", "Label the opinion expressed in the input.",
           "Tell me whether the review is positive or negative, or neutral if neither.", "What is the sentiment of the text?");
SYNTH_LIST(dt_sent, "Use neutral when no opinion words appear.", "Answer with one lowercase word.");
SYNTH_LIST(sent_pos, "good", "great", "love", "happy", "nice", "fun", "best");
SYNTH_LIST(sent_neg, "bad", "awful", "hate", "sad", "boring", "worst", "poor");
SYNTH_LIST(sent_fill, "the", "movie", "food", "day", "was", "it", "this", "show", "very", "so", "my", "trip");
static void in_sent(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 5, 2, 6), k = (int)synth_rng_below(r, 3);
    const char *must[3];
    int nm = 0;
    if (k < 2) {
        const char *const *win = k == 0 ? sent_pos : sent_neg, *const *lose = k == 0 ? sent_neg : sent_pos;
        must[nm++] = synth_pick(r, win);
        if (n >= 3 && synth_rng_below(r, 2)) must[nm++] = synth_pick(r, win);
        if (nm == 2 && n >= 4 && synth_rng_below(r, 2)) must[nm++] = synth_pick(r, lose);
    }
    mix_words(r, b, must, nm, sent_fill, n);
}
static int so_sent(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), d = count_in(w, n, sent_pos) - count_in(w, n, sent_neg);
    synth_buf_add(b, d > 0 ? "positive" : d < 0 ? "negative" : "neutral");
    return 0;
}

// ---- topic
SYNTH_LIST(ph_topic, "Classify the topic as sports, food, tech or weather.", "Which topic is this text about?",
           "Assign one of the categories sports, food, tech, weather.", "Label the subject of the sentence.",
           "Decide what the message is about: sports, food, tech or weather.", "Output the topic label of the input.");
SYNTH_LIST(top_sports, "goal", "team", "match", "score", "coach", "ball");
SYNTH_LIST(top_food, "pizza", "soup", "bread", "cheese", "salad", "cake");
SYNTH_LIST(top_tech, "laptop", "code", "phone", "app", "server", "wifi");
SYNTH_LIST(top_weather, "rain", "snow", "wind", "storm", "sunny", "cloud");
SYNTH_LIST(top_fill, "the", "was", "today", "a", "great", "my", "new", "big", "so");
SYNTH_LIST(top_names, "sports", "food", "tech", "weather");
static const char *const *top_lists[] = {top_sports, top_food, top_tech, top_weather};
static void in_topic(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 5, 2, 5), t = (int)synth_rng_below(r, 4);
    const char *must[2] = {synth_pick(r, top_lists[t]), synth_pick(r, top_lists[t])};
    mix_words(r, b, must, 1 + (n >= 3 && synth_rng_below(r, 2)), top_fill, n);
}
static int so_topic(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < 4; t++)
            if (synth_in_list(w[i], top_lists[t]) >= 0) {
                synth_buf_add(b, top_names[t]);
                return 0;
            }
    synth_buf_add(b, "other");
    return 0;
}

// ---- spam
SYNTH_LIST(ph_spam, "Is this message spam or ham?", "Classify the message as spam or ham.", "Detect spam: answer spam or ham.",
           "Label the text spam if it looks like junk mail, otherwise ham.", "Filter junk: output spam or ham for the message.",
           "Decide whether the message is unwanted spam or a normal ham message.");
SYNTH_LIST(dt_spam, "Prize, cash and free offers are spam.");
SYNTH_LIST(spam_words, "free", "win", "prize", "cash", "click", "offer", "winner", "urgent");
SYNTH_LIST(ham_words, "meeting", "lunch", "report", "tomorrow", "hello", "thanks", "project", "call", "see", "you", "at", "the", "notes");
static void in_spam(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 6, 3, 6);
    const char *must[2] = {synth_pick(r, spam_words), synth_pick(r, spam_words)};
    mix_words(r, b, must, synth_rng_below(r, 2) ? 0 : 1 + (int)synth_rng_below(r, 2), ham_words, n);
}
static int so_spam(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    synth_buf_add(b, any_in(w, n, spam_words) ? "spam" : "ham");
    return 0;
}

// ---- language
SYNTH_LIST(ph_lang, "Which language is this text in?", "Identify the language: english, french, spanish or german.",
           "Detect the language of the input.", "Name the language the words are written in.",
           "Tell me if the text is english, french, spanish or german.", "Output the language of the phrase.");
SYNTH_LIST(lang_en, "the", "cat", "is", "good", "and", "house", "water", "day");
SYNTH_LIST(lang_fr, "le", "chat", "est", "bon", "et", "maison", "eau", "jour");
SYNTH_LIST(lang_es, "el", "gato", "es", "bueno", "y", "casa", "agua", "dia");
SYNTH_LIST(lang_de, "der", "katze", "ist", "gut", "und", "haus", "wasser", "tag");
SYNTH_LIST(lang_names, "english", "french", "spanish", "german");
static const char *const *lang_lists[] = {lang_en, lang_fr, lang_es, lang_de};
static void in_lang(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_words(r, b, lang_lists[synth_rng_below(r, 4)], synth_fit_count(r, max, 5, 2, 4));
}
static int so_lang(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), best = 0, bc = -1;
    for (int l = 0; l < 4; l++) {
        int c = count_in(w, n, lang_lists[l]);
        if (c > bc) bc = c, best = l;
    }
    if (bc <= 0) return -1;
    synth_buf_add(b, lang_names[best]);
    return 0;
}

// ---- is_question
SYNTH_LIST(ph_quest, "Is the sentence a question? Answer yes or no.", "Say yes if the input asks something, no if it states something.",
           "Decide whether this is a question (yes/no).", "Does the text ask a question?",
           "Answer yes for questions and no for statements.", "Check if the input is a question.");
SYNTH_LIST(dt_quest, "A question may lack its question mark.");
SYNTH_LIST(q_start, "what", "where", "who", "why", "how", "when", "is", "are", "can", "do");
SYNTH_LIST(s_start, "i", "we", "they", "it", "the", "my", "you");
SYNTH_LIST(q_fill, "cat", "door", "open", "going", "home", "late", "here", "ready", "book", "red");
static void in_quest(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int q = (int)synth_rng_below(r, 2);
    synth_buf_add(b, synth_pick(r, q ? q_start : s_start));
    synth_buf_addc(b, ' ');
    synth_add_words(r, b, q_fill, synth_fit_count(r, max - 6, 5, 1, 3));
    if (q) synth_buf_add(b, synth_rng_below(r, 4) ? "?" : "");
    else synth_buf_add(b, synth_rng_below(r, 2) ? "." : "");
}
static int so_quest(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW);
    size_t L = strlen(in);
    synth_buf_add(b, (L && in[L - 1] == '?') || (n && synth_in_list(w[0], q_start) >= 0) ? "yes" : "no");
    return 0;
}

// ---- filter_even
SYNTH_LIST(ph_even, "Keep only the even numbers.", "Filter the list down to its even numbers.", "Remove the odd numbers.",
           "Return the numbers divisible by two, in order.", "Output the even values from the input.", "Drop every odd number and keep the rest.");
SYNTH_LIST(dt_filter, "Keep the original order, separated by spaces.", "Output none if nothing is left.");
static void in_nums(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 3, 3, 6);
    for (int i = 0; i < n; i++) synth_buf_addf(b, "%s%d", i ? " " : "", synth_range(r, 0, 99));
}
static int so_even(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), k = 0;
    for (int i = 0; i < n; i++) {
        if (!synth_is_number(w[i])) return -1;
        if (atoi(w[i]) % 2 == 0) synth_buf_addf(b, "%s%s", k++ ? " " : "", w[i]);
    }
    if (!k) synth_buf_add(b, "none");
    return 0;
}

// ---- filter_longer
SYNTH_LIST(ph_flong, "Keep only the words longer than {P} letters.", "Remove every word with {P} or fewer letters.",
           "Filter the words: keep those with more than {P} characters.", "Output the words whose length exceeds {P}.",
           "Drop the short words (length {P} or less).", "Return the words that have over {P} letters.");
static void pa_flong(SynthRng *r, SynthParams *p) { snprintf(p->p, sizeof p->p, "%d", synth_range(r, 3, 5)); }
SYNTH_LIST(flong_pool, "cat", "sun", "tree", "lamp", "bird", "apple", "horse", "table", "garden", "window", "orange", "blue", "kitchen", "map");
static void in_flong(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    synth_add_words(r, b, flong_pool, synth_fit_count(r, max, 6, 2, 5));
}
static int so_flong(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), k = 0, lim = atoi(p->p);
    for (int i = 0; i < n; i++)
        if ((int)strlen(w[i]) > lim) synth_buf_addf(b, "%s%s", k++ ? " " : "", w[i]);
    if (!k) synth_buf_add(b, "none");
    return 0;
}

// ---- filter_prefix
SYNTH_LIST(ph_fpre, "Keep only the words that start with '{P}'.", "Filter the list to words beginning with the letter {P}.",
           "Output the words whose first letter is {P}.", "Remove every word that does not start with {P}.",
           "Return the {P}- words only.", "Which words begin with {P}? List them.");
static void pa_fpre(SynthRng *r, SynthParams *p) {
    static const char letters[] = "bcsptm";
    p->p[0] = letters[synth_rng_below(r, sizeof letters - 1)];
    p->p[1] = 0;
}
SYNTH_LIST(fpre_pool, "bed", "box", "ball", "cat", "cup", "car", "sun", "sock", "pen", "pig", "tree", "top", "map", "mug", "dog", "key");
static void in_fpre(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    int n = synth_fit_count(r, max, 4, 3, 6), want = synth_rng_below(r, 5) != 0;
    for (int tries = 0; tries < 30; tries++) {  // most inputs have a match, so that none is not the usual answer
        b->len = 0, b->buf[0] = 0, b->overflow = 0;
        synth_add_words(r, b, fpre_pool, n);
        if (!want || b->buf[0] == p->p[0] || strstr(b->buf, (char[]){' ', p->p[0], 0})) return;
    }
}
static int so_fpre(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_words(in, w, SYNTH_MAXW), k = 0;
    for (int i = 0; i < n; i++)
        if (w[i][0] == p->p[0]) synth_buf_addf(b, "%s%s", k++ ? " " : "", w[i]);
    if (!k) synth_buf_add(b, "none");
    return 0;
}

// ---- parity
SYNTH_LIST(ph_par, "Is the number even or odd?", "Classify the number as even or odd.", "Output even for even numbers and odd otherwise.",
           "Tell me the parity of the input.", "Say whether the integer is divisible by two (even) or not (odd).", "Even or odd?");
static void in_par(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    synth_buf_addf(b, "%d", synth_range(r, 0, 999));
}
static int so_par(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    if (!synth_is_number(in)) return -1;
    synth_buf_add(b, atoi(in) % 2 ? "odd" : "even");
    return 0;
}

static const SynthFamily fams[] = {
    {"log_severity", SYNTH_AREA_CLASSIFY, "Output ERROR for failures/crashes/denials, WARNING for slowness/low resources/retries, else INFO.", ph_log, dt_log, NULL, in_log, so_log},
    {"sentiment", SYNTH_AREA_CLASSIFY, "Output positive, negative or neutral by which opinion words dominate.", ph_sent, dt_sent, NULL, in_sent, so_sent},
    {"topic", SYNTH_AREA_CLASSIFY, "Output the topic of the text: sports, food, tech or weather.", ph_topic, no_details, NULL, in_topic, so_topic},
    {"spam", SYNTH_AREA_CLASSIFY, "Output spam if the message has promotional words (free, win, prize, cash...), else ham.", ph_spam, dt_spam, NULL, in_spam, so_spam},
    {"language", SYNTH_AREA_CLASSIFY, "Output the language of the words: english, french, spanish or german.", ph_lang, no_details, NULL, in_lang, so_lang},
    {"is_question", SYNTH_AREA_CLASSIFY, "Output yes if the sentence is a question (ends with ? or starts with a question word), else no.", ph_quest, dt_quest, NULL, in_quest, so_quest},
    {"filter_even", SYNTH_AREA_CLASSIFY, "Output the even numbers in order, space-separated; none if there are none.", ph_even, dt_filter, NULL, in_nums, so_even},
    {"filter_longer", SYNTH_AREA_CLASSIFY, "Output the words longer than {P} letters in order; none if there are none.", ph_flong, dt_filter, pa_flong, in_flong, so_flong},
    {"filter_prefix", SYNTH_AREA_CLASSIFY, "Output the words starting with '{P}' in order; none if there are none.", ph_fpre, dt_filter, pa_fpre, in_fpre, so_fpre},
    {"parity", SYNTH_AREA_CLASSIFY, "Output even or odd for the number.", ph_par, no_details, NULL, in_par, so_par},
};
const SynthFamilyTable synth_classify_table = {fams, (int)(sizeof fams / sizeof fams[0])};
