// Format repair and validation families: JSON repair/validation/extraction, emails, dates,
// brackets, phone numbers, CSV fields, whitespace, clock times.
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

#define W(name) char name[SYNTH_MAXW][SYNTH_WORD]

static const char *const no_details[] = {NULL};

// ---- small flat JSON objects
static int numeric_key(const char *k) { return strcmp(k, "name") && strcmp(k, "city") && strcmp(k, "color"); }
static const char *string_value(SynthRng *r, const char *k) {
    return synth_pick(r, !strcmp(k, "name") ? synth_names : !strcmp(k, "city") ? synth_cities : synth_colors);
}
// defects: bit 0 trailing comma, 1 single quotes, 2 bare keys, 3 no closing brace, 4 '=' for ':', 5 bare string values
static void add_object(SynthRng *r, SynthBuf *b, const char **keys, int n, unsigned defects) {
    char q = defects & 2 ? '\'' : '"';
    synth_buf_addc(b, '{');
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_add(b, ", ");
        if (defects & 4) synth_buf_add(b, keys[i]);
        else synth_buf_addf(b, "%c%s%c", q, keys[i], q);
        synth_buf_add(b, defects & 16 ? "=" : ": ");
        if (numeric_key(keys[i])) synth_buf_addf(b, "%d", synth_range(r, 1, 99));
        else if (defects & 32) synth_buf_add(b, string_value(r, keys[i]));
        else synth_buf_addf(b, "%c%s%c", q, string_value(r, keys[i]), q);
    }
    if (defects & 1) synth_buf_addc(b, ',');
    if (!(defects & 8)) synth_buf_addc(b, '}');
}
static unsigned random_defects(SynthRng *r) {
    unsigned d = 1u << synth_rng_below(r, 6);
    if (synth_rng_below(r, 3) == 0) d |= 1u << synth_rng_below(r, 6);
    return d;
}

// ---- repair_json
SYNTH_LIST(ph_rep, "Repair the broken JSON object.", "Fix the JSON so that it parses.", "Correct the syntax errors in this JSON.",
           "Turn the malformed object into valid compact JSON.", "Clean up the JSON: quotes, commas and braces.", "Output the fixed JSON.");
SYNTH_LIST(dt_rep, "Write it compactly with double quotes and no spaces.", "Numbers stay unquoted.");
static void in_rep(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    const char *k[3];
    int n = synth_fit_count(r, max, 14, 1, 3);
    synth_pick_distinct(r, synth_keys, k, n);
    add_object(r, b, k, n, random_defects(r));
}
static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    return s;
}
// Reads a quoted ('...' or "...") or bare token into out; returns the position after it.
static const char *read_token(const char *s, char *out, size_t cap, int *quoted) {
    size_t k = 0;
    *quoted = *s == '"' || *s == '\'';
    if (*quoted) {
        char q = *s++;
        while (*s && *s != q)
            if (k + 1 < cap) out[k++] = *s++;
            else s++;
        if (*s != q) return NULL;
        s++;
    } else {
        while (isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.')
            if (k + 1 < cap) out[k++] = *s++;
            else s++;
    }
    out[k] = 0;
    return s;
}
static int so_rep(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    const char *s = skip_ws(in);
    if (*s == '{') s++;
    synth_buf_addc(b, '{');
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s || *s == '}') break;
        char key[SYNTH_WORD], val[SYNTH_WORD];
        int kq, vq;
        if (!(s = read_token(s, key, sizeof key, &kq)) || !key[0]) return -1;
        s = skip_ws(s);
        if (*s != ':' && *s != '=') return -1;
        s = skip_ws(s + 1);
        if (!(s = read_token(s, val, sizeof val, &vq)) || (!vq && !val[0])) return -1;
        int literal = !vq && (synth_is_number(val) || !strcmp(val, "true") || !strcmp(val, "false") || !strcmp(val, "null"));
        synth_buf_addf(b, "%s\"%s\":", n++ ? "," : "", key);
        synth_buf_addf(b, literal ? "%s" : "\"%s\"", val);
    }
    synth_buf_addc(b, '}');
    return 0;
}

// ---- validate_json
SYNTH_LIST(ph_vj, "Is the input valid JSON? Answer valid or invalid.", "Validate the JSON object.", "Check whether the text parses as strict JSON.",
           "Say valid if this is well-formed JSON, otherwise invalid.", "Lint the JSON: valid or invalid?", "Does this JSON have syntax errors? Output invalid if so, else valid.");
SYNTH_LIST(dt_vj, "Single quotes, bare keys and trailing commas are not allowed.");
static void in_vj(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    const char *k[3];
    int n = synth_fit_count(r, max, 14, 1, 3);
    synth_pick_distinct(r, synth_keys, k, n);
    add_object(r, b, k, n, synth_rng_below(r, 2) ? 0 : random_defects(r));
}
static int so_vj(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(in, &end, 1);
    synth_buf_add(b, j && cJSON_IsObject(j) ? "valid" : "invalid");
    cJSON_Delete(j);
    return 0;
}

// ---- json_field
SYNTH_LIST(ph_jf, "Extract the value of the field '{P}' from the JSON.", "What is the {P} in this JSON object?", "Return the {P} field.",
           "Read the JSON and output the value under \"{P}\".", "Get {P} from the record.", "Pull the '{P}' value out of the object.");
SYNTH_LIST(dt_jf, "Output strings without quotes.");
static void pa_key(SynthRng *r, SynthParams *p) { strcpy(p->p, synth_pick(r, synth_keys)); }
static void in_jf(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    const char *k[3];
    int n = synth_fit_count(r, max, 14, 1, 3), have = 0;
    synth_pick_distinct(r, synth_keys, k, n);
    for (int i = 0; i < n; i++) have |= !strcmp(k[i], p->p);
    if (!have) k[synth_rng_below(r, (uint32_t)n)] = p->p;
    add_object(r, b, k, n, 0);
}
static int so_jf(const SynthParams *p, const char *in, SynthBuf *b) {
    cJSON *j = cJSON_Parse(in);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, p->p);
    int rc = 0;
    if (cJSON_IsString(v)) synth_buf_add(b, v->valuestring);
    else if (cJSON_IsNumber(v)) synth_buf_addf(b, "%g", v->valuedouble);
    else if (j && cJSON_IsObject(j)) synth_buf_add(b, "none");
    else rc = -1;
    cJSON_Delete(j);
    return rc;
}

// ---- validate_email
SYNTH_LIST(ph_em, "Is this a valid email address?", "Validate the email: output valid or invalid.", "Check the address format.",
           "Say valid if the text is a well-formed email, else invalid.", "Does the input look like a proper email address?",
           "Verify the email syntax.");
SYNTH_LIST(dt_em, "It needs one @, a name before it and a domain with a dot and a 2+ letter ending.");
SYNTH_LIST(em_hosts, "mail", "web", "box", "post");
SYNTH_LIST(em_tlds, "com", "org", "net", "io");
static void in_em(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    char local[SYNTH_WORD], dom[SYNTH_WORD];
    snprintf(local, sizeof local, "%s%s", synth_pick(r, synth_names), synth_rng_below(r, 3) ? "" : ".x");
    snprintf(dom, sizeof dom, "%s.%s", synth_pick(r, em_hosts), synth_pick(r, em_tlds));
    switch (synth_rng_below(r, 2) ? 0 : synth_range(r, 1, 7)) {
    case 0: synth_buf_addf(b, "%s@%s", local, dom); break;
    case 1: synth_buf_addf(b, "%s%s", local, dom); break;
    case 2: synth_buf_addf(b, "%s@@%s", local, dom); break;
    case 3: synth_buf_addf(b, "%s@%s", local, synth_pick(r, em_hosts)); break;
    case 4: synth_buf_addf(b, "%s@%s.c", local, synth_pick(r, em_hosts)); break;
    case 5: synth_buf_addf(b, "%s @%s", local, dom); break;
    case 6: synth_buf_addf(b, "@%s", dom); break;
    default: synth_buf_addf(b, "%s@%s..%s", local, synth_pick(r, em_hosts), synth_pick(r, em_tlds)); break;
    }
}
static int email_ok(const char *s) {
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@')) return 0;
    for (const char *c = s; c < at; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_') return 0;
    if (s[0] == '.' || at[-1] == '.') return 0;
    int labels = 0;
    const char *lab = at + 1;
    for (;;) {
        const char *e = lab;
        while (isalnum((unsigned char)*e) || *e == '-') e++;
        if (e == lab) return 0;  // empty label or a bad character
        labels++;
        if (!*e) {
            if (labels < 2 || e - lab < 2) return 0;
            for (const char *c = lab; c < e; c++)
                if (!isalpha((unsigned char)*c)) return 0;
            return 1;
        }
        if (*e != '.') return 0;
        lab = e + 1;
    }
}
static int so_em(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    synth_buf_add(b, email_ok(in) ? "valid" : "invalid");
    return 0;
}

// ---- normalize_date
SYNTH_LIST(ph_date, "Convert the date to YYYY-MM-DD.", "Normalize the date into ISO format.", "Rewrite the date as year-month-day with dashes.",
           "Output the date in ISO 8601 form.", "Standardize this date to YYYY-MM-DD.", "Reformat the date: four-digit year, then month, then day.");
SYNTH_LIST(dt_date, "Numeric dates like 05/03/2021 are day/month/year.", "Pad month and day to two digits.");
SYNTH_LIST(months, "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december");
static void in_date(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    int y = synth_range(r, 1990, 2030), m = synth_range(r, 1, 12), d = synth_range(r, 1, 28);
    char mon[16];
    snprintf(mon, sizeof mon, "%s", months[m - 1]);
    mon[0] = (char)toupper((unsigned char)mon[0]);
    switch (synth_rng_below(r, 6)) {
    case 0: synth_buf_addf(b, "%04d-%02d-%02d", y, m, d); break;
    case 1: synth_buf_addf(b, "%s %d, %d", mon, d, y); break;
    case 2: synth_buf_addf(b, "%d %s %d", d, mon, y); break;
    case 3: synth_buf_addf(b, "%.3s %d %d", mon, d, y); break;
    case 4: synth_buf_addf(b, "%02d/%02d/%d", d, m, y); break;
    default: synth_buf_addf(b, "%d/%d/%d", y, m, d); break;
    }
}
static int month_of(const char *w) {
    char low[SYNTH_WORD];
    snprintf(low, sizeof low, "%s", w);
    synth_lower(low);
    if (strlen(low) < 3) return 0;
    for (int i = 0; months[i]; i++)
        if (!strncmp(months[i], low, strlen(low))) return i + 1;
    return 0;
}
static int so_date(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char buf[SYNTH_FIELD];
    snprintf(buf, sizeof buf, "%s", in);
    for (char *s = buf; *s; s++)
        if (*s == ',' || *s == '-' || *s == '/') *s = ' ';
    W(w);
    int n = synth_split_words(buf, w, SYNTH_MAXW), y = 0, m = 0, d = 0;
    if (n != 3) return -1;
    int mi = -1;
    for (int i = 0; i < 3; i++)
        if (month_of(w[i])) mi = i;
    if (mi >= 0) {
        m = month_of(w[mi]);
        for (int i = 0; i < 3; i++)
            if (i != mi) {
                if (!synth_is_number(w[i])) return -1;
                if (strlen(w[i]) == 4) y = atoi(w[i]);
                else d = atoi(w[i]);
            }
    } else {
        for (int i = 0; i < 3; i++)
            if (!synth_is_number(w[i])) return -1;
        if (strlen(w[0]) == 4) y = atoi(w[0]), m = atoi(w[1]), d = atoi(w[2]);
        else d = atoi(w[0]), m = atoi(w[1]), y = atoi(w[2]);
    }
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
    synth_buf_addf(b, "%04d-%02d-%02d", y, m, d);
    return 0;
}

// ---- balanced_brackets
SYNTH_LIST(ph_br, "Are the brackets balanced? Answer yes or no.", "Check that every bracket is closed in the right order.",
           "Validate the nesting of (), [] and {}.", "Say yes if the bracket string is well formed, else no.",
           "Do the parentheses match up?", "Verify the brackets pair up correctly.");
static void in_br(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    static const char open[] = "([{", close[] = ")]}";
    int pairs = synth_fit_count(r, max, 2, 1, 5), depth = 0, left = pairs;
    char stack[16];
    while (left || depth) {
        if (left && (!depth || synth_rng_below(r, 2))) {
            int k = (int)synth_rng_below(r, 3);
            stack[depth++] = close[k];
            synth_buf_addc(b, open[k]);
            left--;
        } else synth_buf_addc(b, stack[--depth]);
    }
    if (synth_rng_below(r, 2) && b->len >= 2) {  // break it half of the time
        size_t at = synth_rng_below(r, (uint32_t)b->len);
        switch (synth_rng_below(r, 3)) {
        case 0: memmove(b->buf + at, b->buf + at + 1, b->len - at), b->len--; break;
        case 1: b->buf[at] = "()[]{}"[synth_rng_below(r, 6)]; break;
        default: {
            size_t j = (at + 1) % b->len;
            char t = b->buf[at];
            b->buf[at] = b->buf[j];
            b->buf[j] = t;
        }
        }
    }
}
static int so_br(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char st[SYNTH_FIELD];
    int d = 0, ok = 1;
    for (const char *s = in; *s && ok; s++) {
        const char *o = strchr("([{", *s), *c = strchr(")]}", *s);
        if (o && *s) st[d++] = ")]}"[o - "([{"];
        else if (c && *s) ok = d > 0 && st[--d] == *s;
        else return -1;
    }
    synth_buf_add(b, ok && d == 0 ? "yes" : "no");
    return 0;
}

// ---- normalize_phone
SYNTH_LIST(ph_phone, "Normalize the phone number to XXX-XXX-XXXX.", "Format the phone number with dashes.",
           "Rewrite the number as three digits, three digits, four digits separated by dashes.", "Clean up the phone number.",
           "Standardize the US phone number.", "Output the phone number in 555-123-4567 style.");
SYNTH_LIST(dt_phone, "Drop a leading +1 country code.");
static void in_phone(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    int a = synth_range(r, 200, 999), c = synth_range(r, 200, 999), d = synth_range(r, 0, 9999);
    switch (synth_rng_below(r, 5)) {
    case 0: synth_buf_addf(b, "(%d) %d-%04d", a, c, d); break;
    case 1: synth_buf_addf(b, "%d.%d.%04d", a, c, d); break;
    case 2: synth_buf_addf(b, "%d%d%04d", a, c, d); break;
    case 3: synth_buf_addf(b, "%d %d %04d", a, c, d); break;
    default: synth_buf_addf(b, "+1 %d %d %04d", a, c, d); break;
    }
}
static int so_phone(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char d[SYNTH_FIELD];
    int n = 0;
    for (const char *s = in; *s; s++)
        if (isdigit((unsigned char)*s)) d[n++] = *s;
    const char *x = d;
    if (n == 11 && d[0] == '1') x++, n--;
    if (n != 10) return -1;
    synth_buf_addf(b, "%.3s-%.3s-%.4s", x, x + 3, x + 6);
    return 0;
}

// ---- csv_column
SYNTH_LIST(ph_csv, "Return the {P} field of the comma-separated row.", "Extract the {P} column from the CSV line.",
           "What is the {P} value in the row?", "Split on commas and output the {P} item.", "Give me column {P} of this record.",
           "Pick the {P} entry of the CSV row.");
SYNTH_LIST(ordinals, "first", "second", "third", "last");
static void pa_csv(SynthRng *r, SynthParams *p) { strcpy(p->p, synth_pick(r, ordinals)); }
static void in_csv(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 6, 3, 4);
    for (int i = 0; i < n; i++) {
        if (i) synth_buf_addc(b, ',');
        int k = (int)synth_rng_below(r, 3);
        if (k == 0) synth_buf_addf(b, "%d", synth_range(r, 1, 99));
        else synth_buf_add(b, synth_pick(r, k == 1 ? synth_names : synth_cities));
    }
}
static int so_csv(const SynthParams *p, const char *in, SynthBuf *b) {
    W(w);
    int n = synth_split_on(in, ',', w, SYNTH_MAXW), k = synth_in_list(p->p, ordinals);
    if (k < 0) return -1;
    int idx = k == 3 ? n - 1 : k;
    if (idx >= n) return -1;
    synth_buf_add(b, w[idx]);
    return 0;
}

// ---- squeeze_spaces
SYNTH_LIST(ph_sq, "Collapse repeated spaces and trim the ends.", "Normalize the whitespace to single spaces.",
           "Remove extra spaces between and around the words.", "Clean the spacing: one space between words, none at the ends.",
           "Fix the irregular spacing.", "Squeeze runs of spaces down to one.");
static void in_sq(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p;
    int n = synth_fit_count(r, max, 8, 2, 4);
    for (int i = 0; i <= n; i++) {
        int sp = i == 0 || i == n ? (int)synth_rng_below(r, 3) : synth_range(r, 1, 3);
        for (int k = 0; k < sp; k++) synth_buf_addc(b, ' ');
        if (i < n) synth_buf_add(b, synth_pick(r, synth_rng_below(r, 2) ? synth_nouns : synth_adjs));
    }
}
static int so_sq(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    W(w);
    synth_join(b, w, synth_split_words(in, w, SYNTH_MAXW), " ");
    return 0;
}

// ---- time_24h
SYNTH_LIST(ph_24, "Convert the time to 24-hour HH:MM format.", "Rewrite the clock time in 24-hour notation.", "Express this am/pm time as HH:MM.",
           "Change the 12-hour time into military time.", "Output the time on a 24-hour clock.", "Normalize the time to two-digit hours and minutes.");
SYNTH_LIST(dt_24, "12 am is 00:00 and 12 pm is 12:00.");
static void in_24(SynthRng *r, const SynthParams *p, int max, SynthBuf *b) {
    (void)p, (void)max;
    int h = synth_range(r, 1, 12), m = 5 * synth_range(r, 0, 11);
    const char *ap = synth_rng_below(r, 2) ? "am" : "pm";
    const char *sp = synth_rng_below(r, 2) ? " " : "";
    if (m == 0 && synth_rng_below(r, 2)) synth_buf_addf(b, "%d%s%s", h, sp, ap);
    else synth_buf_addf(b, "%d:%02d%s%s", h, m, sp, ap);
}
static int so_24(const SynthParams *p, const char *in, SynthBuf *b) {
    (void)p;
    char *e;
    long h = strtol(in, &e, 10), m = 0;
    if (e == in || h < 1 || h > 12) return -1;
    if (*e == ':') {
        char *f;
        m = strtol(e + 1, &f, 10);
        if (f != e + 3 || m < 0 || m > 59) return -1;
        e = f;
    }
    while (*e == ' ') e++;
    if (!strcmp(e, "am")) h = h == 12 ? 0 : h;
    else if (!strcmp(e, "pm")) h = h == 12 ? 12 : h + 12;
    else return -1;
    synth_buf_addf(b, "%02ld:%02ld", h, m);
    return 0;
}

static const SynthFamily fams[] = {
    {"repair_json", SYNTH_AREA_FORMAT, "Fix the JSON object (quotes, bare keys, '=', trailing commas, missing brace) and print it compactly.", ph_rep, dt_rep, NULL, in_rep, so_rep},
    {"validate_json", SYNTH_AREA_FORMAT, "Output valid if the input is a strict JSON object, else invalid.", ph_vj, dt_vj, NULL, in_vj, so_vj},
    {"json_field", SYNTH_AREA_FORMAT, "Output the value of the JSON field \"{P}\" (strings without quotes).", ph_jf, dt_jf, pa_key, in_jf, so_jf},
    {"validate_email", SYNTH_AREA_FORMAT, "Output valid if the input is a well-formed email address, else invalid.", ph_em, dt_em, NULL, in_em, so_em},
    {"normalize_date", SYNTH_AREA_FORMAT, "Output the date as YYYY-MM-DD; numeric d/m/y dates are day first.", ph_date, dt_date, NULL, in_date, so_date},
    {"balanced_brackets", SYNTH_AREA_FORMAT, "Output yes if the brackets (), [], {} are balanced and properly nested, else no.", ph_br, no_details, NULL, in_br, so_br},
    {"normalize_phone", SYNTH_AREA_FORMAT, "Output the 10-digit phone number as XXX-XXX-XXXX (drop a leading +1).", ph_phone, dt_phone, NULL, in_phone, so_phone},
    {"csv_column", SYNTH_AREA_FORMAT, "Split the row on commas and output the {P} field.", ph_csv, no_details, pa_csv, in_csv, so_csv},
    {"squeeze_spaces", SYNTH_AREA_FORMAT, "Output the words separated by single spaces, with no leading or trailing spaces.", ph_sq, no_details, NULL, in_sq, so_sq},
    {"time_24h", SYNTH_AREA_FORMAT, "Convert the 12-hour time to 24-hour HH:MM.", ph_24, dt_24, NULL, in_24, so_24},
};
const SynthFamilyTable synth_format_table = {fams, (int)(sizeof fams / sizeof fams[0])};
