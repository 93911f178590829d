// The family table: every area's families (data/synth_fam_*.c) behind one index.
#include <string.h>

#include "data/synth_internal.h"

static const SynthFamilyTable *const tables[] = {&synth_text_table,   &synth_search_table, &synth_classify_table, &synth_code_table,
                                                 &synth_safety_table, &synth_agent_table,  &synth_format_table};
enum { NTABLES = (int)(sizeof tables / sizeof tables[0]) };

int synth_family_count(void) {
    int n = 0;
    for (int t = 0; t < NTABLES; t++) n += tables[t]->n;
    return n;
}

const SynthFamily *synth_family(int i) {
    if (i < 0) return NULL;
    for (int t = 0; t < NTABLES; t++) {
        if (i < tables[t]->n) return &tables[t]->fams[i];
        i -= tables[t]->n;
    }
    return NULL;
}

int synth_find_family(const char *name) {
    int n = synth_family_count();
    for (int i = 0; i < n; i++)
        if (!strcmp(synth_family(i)->name, name)) return i;
    return -1;
}

int synth_phrasing_count(int family) {
    const SynthFamily *f = synth_family(family);
    return f ? synth_list_len(f->phrasings) : 0;
}

static const char *const area_names[SYNTH_NAREAS] = {"text", "search", "classify", "code", "safety", "agent", "format"};
static const char *const area_descriptions[SYNTH_NAREAS] = {
    "text processing / NLP",       "search and matching",          "custom classification and filtering",
    "code and natural-language commands", "safety and verification", "agentic / tool use",
    "format repair and validation"};

const char *synth_area_name(SynthArea a) { return a >= 0 && a < SYNTH_NAREAS ? area_names[a] : "?"; }
const char *synth_area_description(SynthArea a) { return a >= 0 && a < SYNTH_NAREAS ? area_descriptions[a] : "?"; }
